"""One place that turns errors into responses: RFC 9457 problem+json for the API, a friendly
page for browsers. Never a stack trace; an unexpected error is logged and answered with 500."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response

from astrocloud.core import errors
from astrocloud.core.i18n import _, gettext
from astrocloud.core.web.context import current_language

log = logging.getLogger("astrocloud.web")

PROBLEM = "application/problem+json"

_HTTP_TITLES = {
    400: _("Bad request"), 401: _("Sign-in required"), 403: _("Permission denied"),
    404: _("Not found"), 405: _("Method not allowed"), 406: _("Not acceptable"),
    409: _("Conflict"), 413: _("Request too large"), 415: _("Unsupported media type"),
    422: _("Some input is not valid"), 429: _("Too many attempts"), 500: _("Internal error"),
}

# Other packages (the VO services) register renderers for their own path prefixes.
ERROR_RENDERERS: list[tuple[str, object]] = []


def request_language(request: Request) -> str:
    language = getattr(request.state, "language", None) or current_language.get()
    current_language.set(language)
    return language


def wants_html(request: Request) -> bool:
    if request.url.path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("accept", "")


def problem(request: Request, status: int, title: str, detail: str, code: str,
            extra: dict | None = None, headers: dict | None = None) -> Response:
    lang = request_language(request)
    body = {"type": f"/problems/{code}", "title": gettext(lang, title), "status": status,
            "detail": detail, "instance": request.url.path}
    body.update(extra or {})
    for prefix, renderer in ERROR_RENDERERS:
        if request.url.path.startswith(prefix):
            return renderer(request, status, body, headers)  # type: ignore[operator]
    if wants_html(request):
        if status == 401 and request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        from astrocloud.core.web.templating import render

        return render(request, "error.html", status_code=status, problem=body,
                      headers=headers)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _translated(request: Request, exc: errors.DomainError) -> str:
    lang = request_language(request)
    if isinstance(exc, errors.ValidationFailed):
        exc.extra = {"errors": exc.localized(lang)}
    return exc.translated(lang)


async def domain_error(request: Request, exc: errors.DomainError) -> Response:
    headers = {}
    if isinstance(exc, errors.NotAuthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="AstroCloud", Basic realm="AstroCloud"'
    if isinstance(exc, errors.TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    return problem(request, exc.status, exc.title, _translated(request, exc), exc.code, exc.extra,
                   headers or None)


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts)


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    lang = request_language(request)
    items = exc.errors()
    if any(e.get("type") == "json_invalid" for e in items):
        return problem(request, 400, "Bad request",
                       gettext(lang, "The request body is not valid JSON."), "invalid-json")
    found = []
    for e in items[:50]:
        message = e.get("msg", "invalid")
        if e.get("type") == "extra_forbidden":
            message = gettext(lang, "Unknown field.")
        elif e.get("type") == "missing":
            message = gettext(lang, "This field is required.")
        found.append({"field": _field(e.get("loc", ())), "message": message})
    detail = "; ".join(f"{f['field']}: {f['message']}" if f["field"] else f["message"]
                       for f in found)
    return problem(request, 422, "Some input is not valid", detail, "validation-failed",
                   {"errors": found})


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    lang = request_language(request)
    status = exc.status_code
    title = _HTTP_TITLES.get(status, _("Error"))
    if status == 404:
        detail = gettext(lang, "There is nothing at this address.")
    elif status == 405:
        detail = gettext(lang, "This address does not accept %(method)s requests.",
                         method=request.method)
    else:
        detail = exc.detail if isinstance(exc.detail, str) else gettext(lang, title)
    return problem(request, status, title, detail, title.lower().replace(" ", "-"),
                   headers=getattr(exc, "headers", None))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    lang = request_language(request)
    return problem(request, 500, "Internal error",
                   gettext(lang, "Something went wrong on our side. It has been logged; "
                                 "please try again later."), "internal-error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
