"""The portal shell: the front page, the dashboard and the health check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from astrocloud.core.identity import services as identity
from astrocloud.core.identity.operations import IdentityOps
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import PUBLIC, uses
from astrocloud.core.web.templating import render

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
api = APIRouter(tags=["platform"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]


@api.get("/api/health", openapi_extra=PUBLIC, summary="Liveness check")
def health():
    return {"status": "ok"}


@pages.get("/", openapi_extra=PUBLIC)
def front_page(request: Request, ctx: Ctx):
    return render(request, "index.html")


@pages.get("/dashboard", openapi_extra=uses(IdentityOps.ME_READ))
def dashboard(request: Request, ctx: Ctx):
    user = identity.me(ctx)
    return render(request, "dashboard.html", me=user)


def channel_landing_router(key: str) -> APIRouter:
    """A channel's landing page before its services exist: what it will offer, and when."""
    router = APIRouter(include_in_schema=False, route_class=AuditedRoute)

    @router.get(f"/{key}", openapi_extra=PUBLIC, name=f"{key}_landing")
    def landing(request: Request, ctx: Ctx):
        return render(request, "channel_placeholder.html", channel_key=key)

    return router
