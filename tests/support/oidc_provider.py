"""A real OpenID Connect provider for the tests, served over HTTP on loopback.

The application's "single sign-on through any OpenID Connect provider" is tested end to end
against this provider rather than against mocked HTTP: the application discovers it through
``/.well-known/openid-configuration``, sends the browser to its authorization endpoint, exchanges
the code at its token endpoint (authenticating with the client secret), verifies the RS256
signature of the ID token against its JWKS and may call its UserInfo endpoint.

The protocol work is done by Authlib's server components (``AuthorizationServer`` for Flask,
``AuthorizationCodeGrant`` with the ``OpenIDCode`` and PKCE extensions, ``UserInfoEndpoint``),
so requests are validated and errors are answered the way the specifications say:

* ``/.well-known/openid-configuration`` – the discovery document;
* ``/jwks`` – the public half of an RSA key generated for each provider instance;
* ``/authorize`` – authorization code flow only; checks ``client_id`` and the exact
  ``redirect_uri``, echoes ``state``, binds ``nonce`` (and an optional S256 PKCE challenge) to
  the code. It shows a small login page for the user currently "signed in" at the provider
  (see :meth:`OIDCProvider.set_user`) with a "Sign in" and a "Cancel" button, or, with
  ``auto_approve=True``, redirects back with the code at once. ``prompt=none`` is honoured;
* ``/token`` – ``client_secret_basic`` or ``client_secret_post``; codes are single-use, expire
  after ``code_lifetime`` seconds, and replaying one revokes the tokens it produced;
* ``/userinfo`` – bearer access token with the ``openid`` scope.

Error answers are the standard OAuth 2.0 / OpenID Connect ones: an unknown client or a
redirect URI that is not registered gets a 400 JSON error and no redirect; a bad client secret
gets ``401 invalid_client``; a used, expired or foreign code gets ``400 invalid_grant``; a
refusal by the user comes back to the client as ``error=access_denied``.

Usage::

    with OIDCProvider(client_id="astrocloud", client_secret="s3cret",
                      redirect_uris=["http://127.0.0.1:8000/auth/oidc/callback"],
                      auto_approve=True) as provider:
        provider.set_user(sub="alice-sub", email="alice@example.org", name="Alice Liddell",
                          preferred_username="alice", email_verified=True)
        provider.issuer          # "http://127.0.0.1:<port>"
        provider.discovery_url   # what to give as ``server_metadata_url``

The provider is plain test support: all state lives in memory and ends with the instance.
"""

from __future__ import annotations

import html
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    TokenMixin,
    list_to_scope,
    scope_to_list,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo, UserInfoEndpoint
from flask import Flask, Response, jsonify, request
from joserfc.jwk import RSAKey
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["OIDCProvider", "ProviderUser"]

SCOPES = ("openid", "email", "profile")
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
SIGNING_ALG = "RS256"


@dataclass(frozen=True)
class ProviderUser:
    """The person signed in at the provider. ``claims`` holds any further OIDC claims
    (``given_name``, ``locale``, or non-standard ones such as ``groups``)."""

    sub: str
    email: str | None = None
    name: str | None = None
    preferred_username: str | None = None
    email_verified: bool = True
    claims: Mapping[str, Any] = field(default_factory=dict)
    #: when the user "authenticated" at the provider (the ``auth_time`` claim)
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def all_claims(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.claims)
        data["sub"] = self.sub
        for key in ("email", "name", "preferred_username"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.email is not None:
            data["email_verified"] = self.email_verified
        return data


# --- the records Authlib's grant and endpoints work with --------------------------------------


class _Client(ClientMixin):
    """The one registered relying party; it reads its redirect URIs from the provider so
    they can change while the provider runs."""

    def __init__(self, provider: OIDCProvider):
        self._provider = provider
        self.client_id = provider.client_id
        # RFC 7591 client metadata; Authlib's UserInfo endpoint reads it (no signed userinfo).
        self.client_metadata: dict[str, Any] = {
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "scope": " ".join(SCOPES),
        }

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        # OpenID Connect makes redirect_uri mandatory in the authentication request.
        return None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        return list_to_scope([s for s in scope_to_list(scope) if s in SCOPES])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison, as OpenID Connect Core 3.1.2.1 requires.
        return redirect_uri in self._provider.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(
            self._provider.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method in self._provider.token_endpoint_auth_methods
        return True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: ProviderUser
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    used: bool = False

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.user.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd"]


@dataclass
class _AccessToken(TokenMixin):
    access_token: str
    client: _Client
    scope: str
    user: ProviderUser
    code: str | None
    issued_at: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client) -> bool:
        return client.get_client_id() == self.client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> ProviderUser:
        return self.user

    def get_client(self) -> _Client:
        return self.client


# --- Authlib server components bound to one provider ------------------------------------------


class _CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(TOKEN_AUTH_METHODS)

    @property
    def provider(self) -> OIDCProvider:
        return self.server.provider

    def save_authorization_code(self, code: str, request) -> None:
        data = request.payload.data
        self.provider._save_code(_AuthorizationCode(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            user=request.user,
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            expires_at=time.time() + self.provider.code_lifetime,
        ))

    def query_authorization_code(self, code: str, client) -> _AuthorizationCode | None:
        return self.provider._find_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: _AuthorizationCode) -> None:
        self.provider._use_code(authorization_code)

    def authenticate_user(self, authorization_code: _AuthorizationCode) -> ProviderUser:
        return authorization_code.user


class _S256Only(CodeChallenge):
    """PKCE, optional for our confidential client; only the S256 method is accepted."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]


class _IDTokenIssuer(OpenIDCode):
    """Adds the RS256-signed ID token to the token response."""

    def __init__(self, provider: OIDCProvider):
        super().__init__(require_nonce=False)
        self.provider = provider
        self.DEFAULT_EXPIRES_IN = provider.id_token_lifetime

    def exists_nonce(self, nonce: str, request) -> bool:
        return self.provider._nonce_seen(request.payload.client_id, nonce)

    def resolve_client_private_key(self, client):
        return self.provider._key

    def get_client_algorithm(self, client) -> str:
        return SIGNING_ALG

    def get_encode_header(self, client) -> dict[str, str]:
        return {"alg": SIGNING_ALG, "kid": self.provider._key.kid, "typ": "JWT"}

    def get_client_claims(self, client) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.provider.issuer,
            "aud": client.get_client_id(),
            "azp": client.get_client_id(),
            "iat": now,
            "exp": now + self.provider.id_token_lifetime,
        }

    def generate_user_info(self, user: ProviderUser, scope: str) -> UserInfo:
        return self.provider._user_info(user, scope)


class _UserInfo(UserInfoEndpoint):
    def __init__(self, provider: OIDCProvider, protector: ResourceProtector):
        super().__init__(resource_protector=protector)
        self.provider = provider

    def get_issuer(self) -> str:
        return self.provider.issuer

    def resolve_private_key(self):
        return self.provider._key

    def generate_user_info(self, user: ProviderUser, scope: str) -> UserInfo:
        return self.provider._user_info(user, scope)


class _BearerValidator(BearerTokenValidator):
    def __init__(self, provider: OIDCProvider):
        super().__init__()
        self.provider = provider

    def authenticate_token(self, token_string: str) -> _AccessToken | None:
        return self.provider._find_token(token_string)


class _Server(AuthorizationServer):
    provider: OIDCProvider


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-") -> None:  # no access log in test output
        pass


# --- the provider -----------------------------------------------------------------------------


class OIDCProvider:
    """An OpenID Connect provider with one registered confidential client, served by werkzeug
    in a daemon thread on 127.0.0.1 (a free port unless ``port`` is given).

    :param client_id: the registered client's identifier.
    :param client_secret: its secret, checked at the token endpoint.
    :param redirect_uris: the registered redirect URIs (exact match). They may be changed
        while the provider runs: assign :attr:`redirect_uris` or call
        :meth:`add_redirect_uri`.
    :param auto_approve: when true, ``/authorize`` issues the code for the signed-in user at
        once instead of showing the login page. May be changed at any time.
    :param user: who is signed in at the provider; defaults to Alice (see :meth:`set_user`).
    :param token_endpoint_auth_methods: accepted client authentication methods.
    :param code_lifetime, access_token_lifetime, id_token_lifetime: in seconds.
    """

    def __init__(
        self,
        client_id: str = "astrocloud",
        client_secret: str = "astrocloud-oidc-secret",
        redirect_uris: Iterable[str] = (),
        *,
        auto_approve: bool = False,
        user: ProviderUser | None = None,
        token_endpoint_auth_methods: Iterable[str] = TOKEN_AUTH_METHODS,
        code_lifetime: int = 600,
        access_token_lifetime: int = 3600,
        id_token_lifetime: int = 3600,
        port: int = 0,
    ):
        methods = tuple(token_endpoint_auth_methods)
        unknown = set(methods) - set(TOKEN_AUTH_METHODS)
        if unknown or not methods:
            raise ValueError(f"unsupported token endpoint auth methods: {sorted(unknown)}")
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_endpoint_auth_methods = methods
        self.auto_approve = auto_approve
        self.code_lifetime = code_lifetime
        self.access_token_lifetime = access_token_lifetime
        self.id_token_lifetime = id_token_lifetime
        #: every authorization request received, as a dict of its parameters (newest last)
        self.authorization_requests: list[dict[str, str]] = []

        self._lock = threading.RLock()
        self._redirect_uris: list[str] = list(redirect_uris)
        self._user: ProviderUser | None = user or ProviderUser(
            sub="alice-sub", email="alice@example.org", name="Alice Liddell",
            preferred_username="alice", email_verified=True)
        self._codes: dict[str, _AuthorizationCode] = {}
        self._nonces: set[tuple[str, str]] = set()
        self._tokens: dict[str, _AccessToken] = {}
        self._key = RSAKey.generate_key(
            2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": SIGNING_ALG},
            private=True)

        self._requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._client = _Client(self)
        self.app = self._create_app()

    # --- lifecycle

    def start(self) -> OIDCProvider:
        if self._server is not None:
            raise RuntimeError("the provider is already running")
        self._server = make_server("127.0.0.1", self._requested_port, self.app, threaded=True,
                                   request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"oidc-provider-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> OIDCProvider:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # --- addresses

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the provider is not running; call start() first")
        return self._server.server_port

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.issuer}/userinfo"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    # --- configuration while running

    @property
    def redirect_uris(self) -> list[str]:
        with self._lock:
            return list(self._redirect_uris)

    @redirect_uris.setter
    def redirect_uris(self, uris: Iterable[str]) -> None:
        with self._lock:
            self._redirect_uris = list(uris)

    def add_redirect_uri(self, uri: str) -> None:
        with self._lock:
            if uri not in self._redirect_uris:
                self._redirect_uris.append(uri)

    @property
    def user(self) -> ProviderUser | None:
        with self._lock:
            return self._user

    def set_user(
        self,
        sub: str = "alice-sub",
        email: str | None = "alice@example.org",
        name: str | None = "Alice Liddell",
        preferred_username: str | None = "alice",
        email_verified: bool = True,
        **claims: Any,
    ) -> ProviderUser:
        """Sign this person in at the provider; later authorizations are for them.
        Extra keyword arguments become further claims (``given_name="Alice"``, ...)."""
        user = ProviderUser(sub=sub, email=email, name=name,
                            preferred_username=preferred_username,
                            email_verified=email_verified, claims=dict(claims))
        with self._lock:
            self._user = user
        return user

    def sign_out(self) -> None:
        """Nobody is signed in: the login page offers only "Cancel", auto-approval answers
        ``access_denied`` and ``prompt=none`` answers ``login_required``."""
        with self._lock:
            self._user = None

    def revoke_tokens(self) -> None:
        """Revoke every access token issued so far (UserInfo then answers 401)."""
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    # --- documents

    @property
    def jwks(self) -> dict[str, Any]:
        """The public key set, as served at ``/jwks``."""
        return {"keys": [self._key.as_dict(private=False)]}

    def metadata(self) -> dict[str, Any]:
        """The discovery document, as served at ``/.well-known/openid-configuration``."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "userinfo_endpoint": self.userinfo_endpoint,
            "jwks_uri": self.jwks_uri,
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [SIGNING_ALG],
            "token_endpoint_auth_methods_supported": list(self.token_endpoint_auth_methods),
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash",
                "email", "email_verified", "name", "preferred_username",
            ],
            "prompt_values_supported": ["none", "login", "consent"],
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "claims_parameter_supported": False,
        }

    # --- storage used by the Authlib components

    def _save_code(self, item: _AuthorizationCode) -> None:
        with self._lock:
            self._codes[item.code] = item
            if item.nonce:
                self._nonces.add((item.client_id, item.nonce))

    def _find_code(self, code: str, client_id: str) -> _AuthorizationCode | None:
        with self._lock:
            item = self._codes.get(code)
            if item is None or item.client_id != client_id:
                return None
            if item.used:
                # RFC 6749 4.1.2: a code presented twice revokes what it produced.
                for token in self._tokens.values():
                    if token.code == code:
                        token.revoked = True
                return None
            if time.time() >= item.expires_at:
                return None
            return item

    def _use_code(self, item: _AuthorizationCode) -> None:
        with self._lock:
            item.used = True

    def _nonce_seen(self, client_id: str, nonce: str) -> bool:
        with self._lock:
            return (client_id, nonce) in self._nonces

    def _save_token(self, token: dict[str, Any], oauth_request) -> None:
        code = oauth_request.authorization_code
        with self._lock:
            self._tokens[token["access_token"]] = _AccessToken(
                access_token=token["access_token"], client=oauth_request.client,
                scope=token.get("scope", ""), user=oauth_request.user,
                code=code.code if code is not None else None,
                issued_at=time.time(), expires_in=int(token["expires_in"]))

    def _find_token(self, access_token: str) -> _AccessToken | None:
        with self._lock:
            return self._tokens.get(access_token)

    def _query_client(self, client_id: str) -> _Client | None:
        return self._client if client_id == self.client_id else None

    @staticmethod
    def _user_info(user: ProviderUser, scope: str) -> UserInfo:
        claims = user.all_claims()
        info = UserInfo(claims).filter(scope)
        # Claims no scope maps to (e.g. "groups") are released whenever "openid" is granted.
        standard = {c for cs in UserInfo.SCOPES_CLAIMS_MAPPING.values() for c in cs}
        info.update({k: v for k, v in claims.items() if k not in standard})
        info["sub"] = user.sub
        return info

    # --- the web application

    def _create_app(self) -> Flask:
        app = Flask(f"oidc_provider_{id(self)}")
        app.config.update(
            OAUTH2_SCOPES_SUPPORTED=list(SCOPES),
            OAUTH2_TOKEN_EXPIRES_IN={"authorization_code": self.access_token_lifetime},
        )
        server = _Server(app, query_client=self._query_client, save_token=self._save_token)
        server.provider = self
        server.register_grant(_CodeGrant, [_IDTokenIssuer(self), _S256Only(required=False)])
        protector = ResourceProtector()
        protector.register_token_validator(_BearerValidator(self))
        server.register_endpoint(_UserInfo(self, protector))

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify(self.metadata())

        @app.get("/jwks")
        def jwks():
            return jsonify(self.jwks)

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize():
            params = {k: v for k, v in request.values.items() if k != "decision"}
            if "decision" not in request.form:
                with self._lock:
                    self.authorization_requests.append(params)
            user = self.user
            try:
                grant = server.get_consent_grant(end_user=user)
            except OAuth2Error as error:
                return server.handle_error_response(None, error)
            decision = request.form.get("decision")
            silent = self.auto_approve or request.values.get("prompt") == "none"
            if decision is None and not silent:
                return self._login_page(user, grant.client)
            grant_user = user if decision in (None, "approve") else None
            return server.create_authorization_response(grant=grant, grant_user=grant_user)

        @app.post("/token")
        def token():
            return server.create_token_response()

        @app.route("/userinfo", methods=["GET", "POST"])
        def userinfo():
            return server.create_endpoint_response("userinfo")

        return app

    def _login_page(self, user: ProviderUser | None, client: _Client) -> Response:
        """The provider's sign-in page: the authorization request travels on in hidden
        fields, and the button pressed decides."""
        esc = html.escape
        hidden = "".join(
            f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
            for k in request.values if k != "decision" for v in request.values.getlist(k))
        if user is None:
            who = "<p>Nobody is signed in at this provider.</p>"
            sign_in = ""
        else:
            who = (f'<p>Continue to <b>{esc(client.client_id)}</b> as '
                   f'<b id="user-name">{esc(user.name or user.sub)}</b>'
                   f'{f" ({esc(user.email)})" if user.email else ""}.</p>')
            sign_in = '<button type="submit" name="decision" value="approve">Sign in</button>'
        body = (
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Test OpenID Provider – Sign in</title></head><body>"
            "<h1>Test OpenID Provider</h1>"
            f'<form method="post" action="/authorize">{hidden}{who}{sign_in} '
            '<button type="submit" name="decision" value="deny">Cancel</button>'
            "</form></body></html>"
        )
        return Response(body, status=200, content_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})
