"""ASGI middleware: request size limits, language choice, the CSRF cookie, security headers."""

from __future__ import annotations

import json
import secrets
from http.cookies import SimpleCookie

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from astrocloud.core.i18n import LANGUAGE_COOKIE, gettext
from astrocloud.core.web.context import current_language, language_for

CSRF_COOKIE = "astrocloud_csrf"


class BodyTooLarge(HTTPException):
    """Raised while a streamed body passes the limit (FastAPI lets HTTPExceptions through)."""

    def __init__(self, limit: int, language: str):
        super().__init__(413, gettext(language, "The request body is larger than the limit of "
                                                "%(n)s bytes.", n=limit))


def _wants_html(scope: Scope) -> bool:
    path = scope.get("path", "")
    if path.startswith("/api/"):
        return False
    for name, value in scope.get("headers", []):
        if name == b"accept":
            return b"text/html" in value
    return False


class PlatformMiddleware:
    """One pass over every HTTP request, outside the router.

    * refuses bodies over `max_body_bytes` (by Content-Length, and while streaming) with 413;
    * picks the language (?lang=, cookie, Accept-Language) and remembers an explicit choice;
    * gives every browser a random CSRF cookie that forms' tokens are derived from;
    * adds security headers.
    """

    def __init__(self, app: ASGIApp, *, settings, body_limits: dict[str, int] | None = None):
        self.app = app
        self.settings = settings
        self.body_limits = sorted((body_limits or {}).items(), key=lambda kv: -len(kv[0]))

    def _limit(self, path: str) -> int:
        for prefix, limit in self.body_limits:
            if path.startswith(prefix):
                return limit
        return self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        request = Request(scope)
        language, explicit = language_for(request, self.settings.default_language)
        state = scope.setdefault("state", {})
        state["language"] = language
        state["explicit_language"] = explicit
        current_language.set(language)
        csrf_cookie = request.cookies.get(CSRF_COOKIE)
        new_csrf = None
        if not csrf_cookie and not scope.get("path", "").startswith("/api/"):
            new_csrf = secrets.token_urlsafe(24)
            csrf_cookie = new_csrf
        state["csrf_cookie"] = csrf_cookie or ""
        set_lang = normalise_lang = None
        if "lang" in request.query_params and explicit:
            normalise_lang = language
            set_lang = True

        raw_query = scope.get("query_string", b"")
        if b"%00" in raw_query or b"\x00" in raw_query or "\x00" in scope.get("path", ""):
            await self._refuse(scope, receive, send, 400, gettext(
                language, "NUL characters are not allowed in an address."), language,
                errors=[{"field": "path", "message": "NUL"}])
            return

        limit = self._limit(scope.get("path", ""))
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = True
            if too_big:
                await self._too_large(scope, receive, send, limit, language)
                return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, language)
            return message

        started = False
        secure = self.settings.cookie_secure
        wants_html = _wants_html(scope)
        path = scope.get("path", "")

        async def wrapped_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                cookies = SimpleCookie()
                if new_csrf:
                    cookies[CSRF_COOKIE] = new_csrf
                    cookies[CSRF_COOKIE].update({"path": "/", "httponly": True,
                                                 "samesite": "Lax", "max-age": 31536000})
                    if secure:
                        cookies[CSRF_COOKIE]["secure"] = True
                if set_lang:
                    cookies[LANGUAGE_COOKIE] = normalise_lang
                    cookies[LANGUAGE_COOKIE].update({"path": "/", "samesite": "Lax",
                                                     "max-age": 31536000})
                for morsel in cookies.values():
                    headers.append((b"set-cookie", morsel.OutputString().encode()))
                existing = {k.lower() for k, _ in headers}
                for name, value in (
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ):
                    if name not in existing:
                        headers.append((name, value))
                if wants_html and not path.startswith("/api/docs") and \
                        b"content-security-policy" not in existing:
                    headers.append((b"content-security-policy",
                                    b"default-src 'self'; img-src 'self' data:; "
                                    b"frame-ancestors 'none'; form-action 'self' http: https:"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, limited_receive, wrapped_send)
        except BodyTooLarge:
            if not started:
                await self._too_large(scope, receive, send, limit, language)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int,
                         language: str) -> None:
        detail = gettext(language, "The request body is larger than the limit of %(n)s bytes.",
                         n=limit)
        await self._refuse(scope, receive, send, 413, detail, language)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, detail: str,
                      language: str, errors: list | None = None) -> None:
        """Answer before the application sees the request: in the protocol's own error format
        where a service registered one (VOSpace faults), else problem+json or a plain page."""
        from starlette.requests import Request

        from astrocloud.core.web.errors import ERROR_RENDERERS

        title = gettext(language, "Request too large") if status == 413 else \
            gettext(language, "Bad request")
        path = scope.get("path", "")
        for prefix, renderer in ERROR_RENDERERS:
            if path.startswith(prefix):
                code = "validation-failed" if errors else (
                    "payload-too-large" if status == 413 else "bad-request")
                body = {"type": f"/problems/{code}", "title": title, "status": status,
                        "detail": detail, "instance": path, "errors": errors or []}
                response = renderer(Request(scope, receive), status, body, None)
                await response(scope, receive, send)
                return
        if _wants_html(scope):
            body = (f"<!doctype html><meta charset=utf-8><title>{status} {title}</title>"
                    f"<p>{detail}</p><p><a href=\"/\">AstroCloud</a></p>").encode()
            ctype = b"text/html; charset=utf-8"
        else:
            code = "payload-too-large" if status == 413 else "bad-request"
            body = json.dumps({"type": f"/problems/{code}", "title": title,
                               "status": status, "detail": detail,
                               "instance": scope.get("path", "")}).encode()
            ctype = b"application/problem+json"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
