"""Route declarations: every route says which operations it invokes, or that it is public.

    @router.get("/api/v1/me", openapi_extra=uses(IdentityOps.ME_READ))
    @router.get("/api/health", openapi_extra=PUBLIC)

The declaration is checked twice: a test walks the route table and fails on any route that has
neither, and (with `strict_security_audit`) every request to a `uses` route must really invoke
one of its operations, so a declaration cannot drift away from the code.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from astrocloud.core.security.operations import Operation

MAX_ID = 2**31 - 1  # primary keys are 32-bit `integer` on PostgreSQL
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A numeric identifier.")]

OPERATIONS_KEY = "x-operations"
PUBLIC_KEY = "x-public"

PUBLIC: dict = {PUBLIC_KEY: True}


def uses(*operations: Operation) -> dict:
    if not operations:
        raise ValueError("name at least one operation, or mark the route PUBLIC")
    return {OPERATIONS_KEY: [op.name for op in operations]}


def route_declaration(route) -> tuple[bool, list[str]]:
    """(public, operations) of a Starlette/FastAPI route."""
    extra = getattr(route, "openapi_extra", None) or {}
    public = bool(extra.get(PUBLIC_KEY)) or bool(getattr(route, "astrocloud_public", False))
    return public, list(extra.get(OPERATIONS_KEY, []))


def iter_routes(routes) -> list:
    """Every concrete route of an application, through included routers."""
    out = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # FastAPI keeps included routers as a branch
            out.extend(iter_routes(included.routes))
        else:
            out.append(route)
    return out
