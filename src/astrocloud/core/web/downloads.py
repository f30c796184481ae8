"""Serving users' files safely from the platform's own origin.

A stored file keeps the type its uploader gave it, but anything a browser would run (HTML,
scripts, SVG, XML) is sent as `application/octet-stream`, and every download carries a sandbox
CSP, so an uploaded file can never act as a page of the platform."""

from __future__ import annotations

import re

ACTIVE_TYPES = re.compile(r"html|javascript|ecmascript|xml|svg|multipart|x-shockwave", re.I)
DOWNLOAD_HEADERS = {"content-security-policy": "sandbox; default-src 'none'",
                    "x-content-type-options": "nosniff"}


def served_type(content_type: str | None) -> str:
    """The Content-Type to send for a stored file."""
    ctype = content_type or "application/octet-stream"
    return "application/octet-stream" if ACTIVE_TYPES.search(ctype) else ctype
