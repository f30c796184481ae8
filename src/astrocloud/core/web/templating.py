"""Server-rendered pages: one Jinja2 environment for the kernel's and every channel's templates,
translated per request through gettext."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse

from astrocloud.core import i18n
from astrocloud.core.identity.secrets import csrf_token_for
from astrocloud.core.web.context import current_language

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def _gettext(message: str, **params: Any) -> str:
    return i18n.gettext(current_language.get(), message, **params)


def _ngettext(singular: str, plural: str, n: int, **params: Any) -> str:
    return i18n.ngettext(current_language.get(), singular, plural, n, **params)


def _format_datetime(value, fmt: str = "medium") -> str:
    if value is None:
        return "—"
    from babel.dates import format_datetime

    return format_datetime(value, format=fmt, locale=i18n.babel_locale(current_language.get()))


def make_environment(extra_dirs: list[Path]) -> Environment:
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(TEMPLATE_DIR))]
                            + [FileSystemLoader(str(d)) for d in extra_dirs if d.is_dir()]),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)
    env.filters["datetime"] = _format_datetime
    return env


def csrf_token(request: Request) -> str:
    cookie = request.scope.get("state", {}).get("csrf_cookie", "")
    return csrf_token_for(cookie, request.app.state.settings.effective_secret_key())


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with the values every page needs (user, language, CSRF token, channels)."""
    env: Environment = request.app.state.templates
    ctx = getattr(request.state, "ctx", None)
    subject = ctx.subject if ctx is not None else None
    token = csrf_token(request)
    # The language may have been settled after the middleware ran (a user's saved choice).
    language = getattr(request.state, "language", None) or current_language.get()
    current_language.set(language)
    base = {
        "request": request,
        "subject": subject,
        "user": getattr(subject, "user", None),
        "language": language,
        "languages": i18n.LANGUAGES,
        "csrf_token": token,
        "csrf_field": Markup(f'<input type="hidden" name="csrf_token" value="{token}">'),
        "channels": request.app.state.channels,
        "settings": request.app.state.settings,
        "path": request.url.path,
        "can": (lambda op, resource=None: ctx.can(op, resource)) if ctx is not None else (
            lambda op, resource=None: False),
    }
    base.update(context)
    html = env.get_template(template).render(base)
    return HTMLResponse(html, status_code=status_code)
