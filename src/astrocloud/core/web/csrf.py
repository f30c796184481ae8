"""CSRF protection for cookie-authenticated requests.

A request authenticated by the session cookie (or an anonymous browser form post), with an
unsafe method and no Authorization header, must send the CSRF token (the `X-CSRF-Token`
header, or the `csrf_token` form field). The token is an HMAC of the browser's random CSRF
cookie, so nothing is stored. Requests authenticated by an
API token carry no ambient authority and need none.
"""

from __future__ import annotations

from fastapi import Request

from astrocloud.core.errors import DomainError
from astrocloud.core.i18n import _
from astrocloud.core.identity.secrets import constant_time_equal
from astrocloud.core.web.context import UNSAFE_METHODS
from astrocloud.core.web.middleware import CSRF_COOKIE
from astrocloud.core.web.templating import csrf_token

# Machine interfaces: an anonymous call there carries no ambient authority. The VO protocols
# are among them: pyvo and TOPCAT keep the cookies a GET gave them and then POST queries.
API_PREFIXES = ("/api/", "/vospace/", "/dav/", "/tap/", "/scs/", "/sia/", "/ssa",
                "/datalink/", "/oai")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class CSRFFailed(DomainError):
    status = 403
    code = "csrf-failed"
    title = _("This form has expired")


async def csrf_protect(request: Request) -> None:
    """FastAPI dependency applied to every router."""
    if request.method not in UNSAFE_METHODS or request.headers.get("authorization"):
        return
    settings = request.app.state.settings
    signed_in_by_cookie = settings.session_cookie in request.cookies
    # Anonymous browser forms are checked too (no forged sign-ins); anonymous API calls carry
    # no ambient authority and are not.
    anonymous_form = CSRF_COOKIE in request.cookies and \
        not request.url.path.startswith(API_PREFIXES)
    if not (signed_in_by_cookie or anonymous_form):
        return
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or CSRF_COOKIE not in request.cookies or \
            not constant_time_equal(sent, csrf_token(request)):
        raise CSRFFailed("This form has expired or did not come from this site. Reload the "
                         "page and try again.")
