"""Per-request plumbing: who is calling (cookie session, Bearer token or HTTP Basic with a
token), in which language, and the `Context` handed to services."""

from __future__ import annotations

import base64
import binascii
import contextvars
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from astrocloud.core.errors import NotAuthenticated
from astrocloud.core.i18n import DEFAULT_LANGUAGE, normalise
from astrocloud.core.identity import services as identity
from astrocloud.core.security.engine import load_subject
from astrocloud.core.service import Context
from astrocloud.core.web.routing import route_declaration

current_language: contextvars.ContextVar[str] = contextvars.ContextVar(
    "astrocloud_language", default=DEFAULT_LANGUAGE
)

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def client_addr(request: Request) -> str:
    return request.client.host if request.client else ""


def _credentials(request: Request) -> tuple[str, str | None, str | None]:
    """("bearer"|"basic"|"", token, basic user name) from the Authorization header."""
    header = request.headers.get("authorization")
    if not header:
        return "", None, None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return "bearer", value, None
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise NotAuthenticated(
                "The Authorization header is not valid Basic credentials.") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise NotAuthenticated("The Authorization header is not valid Basic credentials.")
        return "basic", password, username
    raise NotAuthenticated(
        "Unsupported Authorization scheme: send 'Bearer <token>' or HTTP Basic with your "
        "API token as the password.")


def authenticate(ctx: Context, request: Request) -> None:
    """Set `ctx.subject` from the request's credentials; bad credentials are a 401."""
    scheme, token, basic_user = _credentials(request)
    user = None
    if scheme:
        user = identity.user_for_api_token(ctx.db, token or "")
        if user is not None and scheme == "basic" and basic_user and \
                basic_user.lower() not in (user.username, user.email):
            user = None
        if user is None:
            raise NotAuthenticated(
                "The API token is not valid: it may be mistyped, revoked or expired.")
        ctx.via = "api"
    else:
        cookie = request.cookies.get(ctx.settings.session_cookie)
        if cookie:
            user = identity.user_for_session(ctx.db, cookie)
            request.state.stale_session = user is None
        ctx.via = "web" if user is not None or not request.url.path.startswith("/api/") else "api"
    if user is not None:
        ctx.subject = load_subject(ctx.db, user)
        if not request.state.explicit_language and user.language:
            ctx.language = user.language
            request.state.language = user.language
            current_language.set(user.language)
    if ctx.session is not None and ctx.session.in_transaction():
        ctx.session.commit()  # end the read transaction before the service starts its own


def _anonymous(request: Request, settings) -> bool:
    """True when the request carries neither credentials nor a session cookie: then
    `authenticate` needs no database and can run on the event loop."""
    return not request.headers.get("authorization") and \
        not request.cookies.get(settings.session_cookie)


async def request_context(request: Request) -> AsyncIterator[Context]:
    """FastAPI dependency: the caller's `Context`, closed when the request is done.

    An async dependency, so that an anonymous request (a VO client's cone search, a public
    page) is not sent to a worker thread twice more (to enter and to leave a synchronous
    dependency) besides the one its endpoint runs in: only database work goes to a thread."""
    app = request.app
    ctx = Context(database=app.state.database, settings=app.state.settings,
                  runtime=app.state.runtime,
                  client_addr=client_addr(request),
                  language=getattr(request.state, "language", DEFAULT_LANGUAGE))
    request.state.ctx = ctx
    try:
        if _anonymous(request, ctx.settings):
            authenticate(ctx, request)
        else:
            await run_in_threadpool(authenticate, ctx, request)
            current_language.set(ctx.language)  # the worker thread's setting stays there
        yield ctx
    finally:
        if ctx.session is not None and ctx.session.in_transaction():
            await run_in_threadpool(ctx.close)  # a rollback may wait for the database
        else:
            ctx.close()


class AuditedRoute(APIRoute):
    """A route that, in strict mode, fails when it invoked none of its declared operations."""

    def get_route_handler(self):
        handler = super().get_route_handler()
        public, declared = route_declaration(self)

        async def audited(request: Request) -> Response:
            response = await handler(request)
            settings = request.app.state.settings
            if settings.strict_security_audit and not public:
                ctx = getattr(request.state, "ctx", None)
                invoked = set(ctx.invoked) if ctx is not None else set()
                if not invoked & set(declared):
                    return JSONResponse(
                        {"title": "Security audit failed", "status": 500,
                         "detail": f"{self.path} declares {declared} but invoked "
                                   f"{sorted(invoked)}"},
                        status_code=500, media_type="application/problem+json")
            return response

        return audited


def language_for(request: Request, default: str) -> tuple[str, bool]:
    """(language, chosen explicitly by ?lang= or cookie)."""
    from astrocloud.core.i18n import LANGUAGE_COOKIE, from_accept_language

    explicit = normalise(request.query_params.get("lang")) or normalise(
        request.cookies.get(LANGUAGE_COOKIE))
    if explicit:
        return explicit, True
    return from_accept_language(request.headers.get("accept-language")) or default, False
