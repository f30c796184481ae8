"""Single sign-on ("Passport") through any OpenID Connect provider.

The authorization-code flow with PKCE, state and nonce, using authlib for the protocol work:
the provider is configured by its issuer URL, client id and secret; its endpoints and keys come
from its discovery document. The pending request's state lives in a signed, short-lived cookie,
so no server-side session store is needed. The ID token's signature, issuer, audience, expiry
and nonce are checked before `services.sso_login` links or creates the local account.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated
from urllib.parse import urlencode

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Depends, Query, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.responses import RedirectResponse

from astrocloud.core.config import OIDCProviderSettings
from astrocloud.core.errors import DomainError, NotFound
from astrocloud.core.i18n import _
from astrocloud.core.identity import services
from astrocloud.core.identity.operations import IdentityOps as Ops
from astrocloud.core.identity.pages import safe_next, set_session_cookie
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import PUBLIC, uses
from astrocloud.core.web.templating import render

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]

FLOW_COOKIE = "astrocloud_oidc"
FLOW_MAX_AGE = 600
METADATA_TTL = 3600
HTTP_TIMEOUT = 15

_metadata_cache: dict[str, tuple[float, dict, dict]] = {}


class SSOFailed(DomainError):
    status = 400
    code = "sso-failed"
    title = _("Single sign-on did not work")


def provider(request: Request, name: str) -> OIDCProviderSettings:
    for p in request.app.state.settings.oidc_providers:
        if p.name == name:
            return p
    raise NotFound("There is no sign-in provider called “%(name)s”.", name=name)


def discover(p: OIDCProviderSettings) -> tuple[dict, dict]:
    """The provider's discovery document and signing keys (cached for an hour)."""
    cached = _metadata_cache.get(p.issuer)
    if cached and time.monotonic() - cached[0] < METADATA_TTL:
        return cached[1], cached[2]
    url = p.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        metadata = httpx.get(url, timeout=HTTP_TIMEOUT).raise_for_status().json()
        keys = httpx.get(metadata["jwks_uri"], timeout=HTTP_TIMEOUT).raise_for_status().json()
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise SSOFailed("The sign-in provider %(name)s cannot be reached (%(error)s). Try again "
                        "later, or sign in with your password.", name=p.title,
                        error=type(exc).__name__) from None
    if metadata.get("issuer", "").rstrip("/") != p.issuer.rstrip("/"):
        raise SSOFailed("The sign-in provider's discovery document names another issuer.")
    _metadata_cache[p.issuer] = (time.monotonic(), metadata, keys)
    return metadata, keys


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.settings.effective_secret_key(),
                                  salt="astrocloud-oidc-flow")


def _redirect_uri(request: Request, name: str) -> str:
    return request.app.state.settings.base_url.rstrip("/") + f"/auth/oidc/{name}/callback"


@pages.get("/auth/oidc/{name}/login", openapi_extra=PUBLIC)
def start(request: Request, name: str, next: Annotated[str | None, Query(max_length=2000)] = None):
    """Send the browser to the provider, remembering state, nonce and PKCE verifier."""
    p = provider(request, name)
    metadata, _keys = discover(p)
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(48)
    params = {
        "response_type": "code", "client_id": p.client_id, "scope": p.scope,
        "redirect_uri": _redirect_uri(request, name), "state": state, "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
    }
    response = RedirectResponse(f"{metadata['authorization_endpoint']}?{urlencode(params)}",
                                status_code=303)
    flow = _serializer(request).dumps({"p": name, "s": state, "n": nonce, "v": verifier,
                                       "next": safe_next(next)})
    response.set_cookie(FLOW_COOKIE, flow, max_age=FLOW_MAX_AGE, httponly=True, samesite="lax",
                        secure=request.app.state.settings.cookie_secure, path="/auth/oidc/")
    return response


def _claims(request: Request, p: OIDCProviderSettings, code: str, flow: dict) -> dict:
    """Exchange the code (client_secret_basic + PKCE) and verify the ID token."""
    metadata, keys = discover(p)
    try:
        response = httpx.post(metadata["token_endpoint"], auth=(p.client_id, p.client_secret),
                              timeout=HTTP_TIMEOUT, data={
                                  "grant_type": "authorization_code", "code": code,
                                  "redirect_uri": _redirect_uri(request, p.name),
                                  "code_verifier": flow["v"]})
        token = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SSOFailed("The sign-in provider cannot be reached (%(error)s).",
                        error=type(exc).__name__) from None
    if response.status_code != 200 or not isinstance(token, dict):
        error = token.get("error", response.status_code) if isinstance(token, dict) else \
            response.status_code
        raise SSOFailed("The sign-in provider refused the sign-in (%(error)s).", error=error)
    raw = token.get("id_token")
    if not raw:
        raise SSOFailed("The sign-in provider returned no ID token.")
    try:
        decoded = jwt.decode(raw, KeySet.import_key_set(keys))
        jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": metadata["issuer"]},
            aud={"essential": True, "value": p.client_id},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": flow["n"]},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise SSOFailed("The ID token from the sign-in provider is not valid (%(error)s).",
                        error=getattr(exc, "error", type(exc).__name__)) from None
    return dict(decoded.claims)


@pages.get("/auth/oidc/{name}/callback", openapi_extra=uses(Ops.SSO_LOGIN))
def callback(request: Request, ctx: Ctx, name: str,
             code: Annotated[str | None, Query(max_length=2000)] = None,
             state: Annotated[str | None, Query(max_length=200)] = None,
             error: Annotated[str | None, Query(max_length=200)] = None):
    """Finish the flow: check state, exchange the code, verify the ID token, sign in."""
    p = provider(request, name)
    try:
        flow = _serializer(request).loads(request.cookies.get(FLOW_COOKIE, ""),
                                          max_age=FLOW_MAX_AGE)
    except BadSignature:
        flow = None

    def verified_claims() -> dict:
        if error:
            raise SSOFailed("The sign-in provider answered: %(error)s.", error=error)
        if not flow or flow.get("p") != name or not state or \
                not secrets.compare_digest(state, flow.get("s", "")):
            raise SSOFailed("This sign-in attempt has expired or did not start here. "
                            "Please start again.")
        if not code:
            raise SSOFailed("The sign-in provider sent no authorization code.")
        return _claims(request, p, code, flow)

    try:
        _user, session_token = services.sso_login(
            ctx, provider=name, claims=verified_claims,
            user_agent=request.headers.get("user-agent", ""))
    except DomainError as exc:
        from astrocloud.core.i18n import gettext

        response = render(request, "account/message.html", status_code=exc.status,
                          title=gettext(ctx.language, exc.title),
                          message=gettext(ctx.language, exc.message, **exc.params), login=True)
        response.delete_cookie(FLOW_COOKIE, path="/auth/oidc/")
        return response
    response = RedirectResponse(flow["next"], status_code=303)
    response.delete_cookie(FLOW_COOKIE, path="/auth/oidc/")
    set_session_cookie(request, response, session_token)
    return response
