"""Domain errors raised by services; one handler in `core.web.errors` maps them to HTTP.

Messages are written for the person who will read them: what went wrong and what to do.
They are translatable (`message` is an English msgid; `params` fill its placeholders).
"""

from __future__ import annotations

from typing import Any

from astrocloud.core.i18n import _


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    status = 400
    code = "bad-request"
    title = _("Bad request")

    def __init__(self, message: str, /, **params: Any):
        super().__init__(message % params if params else message)
        self.message = message
        self.params = params
        self.extra: dict[str, Any] = {}

    @property
    def detail(self) -> str:
        return str(self)

    def translated(self, language: str) -> str:
        """The message in `language` (English when the catalogue has no translation)."""
        from astrocloud.core.i18n import gettext

        try:
            return gettext(language, self.message, **self.params)
        except (KeyError, TypeError, ValueError):
            return self.detail


class NotAuthenticated(DomainError):
    status = 401
    code = "not-authenticated"
    title = _("Sign-in required")


class PermissionDenied(DomainError):
    status = 403
    code = "permission-denied"
    title = _("Permission denied")

    def __init__(self, message: str, /, *, operation: str, rules: list[str] | None = None, **p):
        super().__init__(message, operation=operation, **p)
        self.extra = {"operation": operation, "failed_rules": rules or []}


class NotFound(DomainError):
    status = 404
    code = "not-found"
    title = _("Not found")


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = _("Conflict")


class ValidationFailed(DomainError):
    """Every problem with the input at once, as `errors: [{field, message}]`."""

    status = 422
    code = "validation-failed"
    title = _("Some input is not valid")

    def __init__(self, errors: list[dict[str, str]] | str, /, **params: Any):
        # A single message keeps its msgid, so it can be shown in the reader's language.
        self.msgid: tuple[str, dict] | None = None
        if isinstance(errors, str):
            field = params.pop("field", "")
            self.msgid = (errors, dict(params))
            errors = [{"field": field, "message": errors % params if params else errors}]
        super().__init__(_joined(errors))
        self.errors = errors
        self.extra = {"errors": errors}

    def localized(self, language: str) -> list[dict[str, str]]:
        """The errors in `language` (lists built by services are translated already)."""
        if self.msgid is None:
            return self.errors
        from astrocloud.core.i18n import gettext

        message, params = self.msgid
        try:
            text = gettext(language, message, **params)
        except (KeyError, TypeError, ValueError):
            return self.errors
        return [{**self.errors[0], "message": text}]

    def translated(self, language: str) -> str:
        return _joined(self.localized(language))


def _joined(errors: list[dict[str, str]]) -> str:
    return "; ".join(f"{e['field']}: {e['message']}" if e.get("field") else e["message"]
                     for e in errors)


class TooManyRequests(DomainError):
    status = 429
    code = "too-many-requests"
    title = _("Too many attempts")

    def __init__(self, message: str, /, *, retry_after: int, **params: Any):
        super().__init__(message, **params)
        self.retry_after = retry_after
        self.extra = {"retry_after": retry_after}
