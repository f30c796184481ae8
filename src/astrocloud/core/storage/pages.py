"""Admin pages of the storage layer: the data-center sites, their health, integrity sweeps."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from astrocloud.core.errors import ValidationFailed
from astrocloud.core.i18n import gettext
from astrocloud.core.identity.pages import field_errors, flash_redirect
from astrocloud.core.service import Context
from astrocloud.core.storage import services
from astrocloud.core.storage.models import SITE_STATUSES
from astrocloud.core.storage.services import StorageOps as Ops
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.inputs import FormText
from astrocloud.core.web.routing import Id, uses
from astrocloud.core.web.templating import render

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]


def _page(request: Request, ctx: Context, status_code: int = 200, **extra):
    return render(request, "admin/sites.html", status_code=status_code,
                  sites=services.list_sites(ctx), health=services.site_health(ctx),
                  statuses=SITE_STATUSES, can_manage=ctx.can(Ops.SITE_MANAGE),
                  can_sweep=ctx.can(Ops.SWEEP), form=extra.pop("form", {}),
                  errors=extra.pop("errors", {}), **extra)


@pages.get("/admin/sites", openapi_extra=uses(Ops.SITE_LIST))
def sites(request: Request, ctx: Ctx, notice: str | None = None):
    return _page(request, ctx, notice=notice)


def _number(value: str, field: str, kind=float):
    try:
        return kind(value)
    except ValueError:
        raise ValidationFailed("Enter a number.", field=field) from None


@pages.post("/admin/sites", openapi_extra=uses(Ops.SITE_MANAGE, Ops.SITE_LIST))
def create_site(request: Request, ctx: Ctx, name: FormText = "", city: FormText = "",
                latitude: FormText = "", longitude: FormText = "", storage_url: FormText = "",
                capacity_gb: FormText = "0"):
    form = {"name": name, "city": city, "latitude": latitude, "longitude": longitude,
            "storage_url": storage_url, "capacity_gb": capacity_gb}
    try:
        services.create_site(ctx, name=name.strip(), city=city.strip(),
                             latitude=_number(latitude, "latitude"),
                             longitude=_number(longitude, "longitude"),
                             storage_url=storage_url.strip(),
                             capacity_bytes=int(_number(capacity_gb or "0", "capacity_gb")
                                                * 1024**3))
    except ValidationFailed as exc:
        return _page(request, ctx, status_code=422, form=form, errors=field_errors(exc))
    return flash_redirect("/admin/sites", gettext(ctx.language, "The site is added."))


@pages.post("/admin/sites/{site_id}", openapi_extra=uses(Ops.SITE_MANAGE, Ops.SITE_LIST))
def update_site(request: Request, ctx: Ctx, site_id: Id, status: FormText = "",
                capacity_gb: FormText = "", city: FormText = ""):
    try:
        services.update_site(
            ctx, site_id=site_id, status=status or None, city=city or None,
            capacity_bytes=int(_number(capacity_gb, "capacity_gb") * 1024**3)
            if capacity_gb.strip() else None)
    except ValidationFailed as exc:
        return _page(request, ctx, status_code=422, errors=field_errors(exc))
    return flash_redirect("/admin/sites", gettext(ctx.language, "The site is saved."))


@pages.post("/admin/storage/sweep", openapi_extra=uses(Ops.SWEEP))
def sweep(request: Request, ctx: Ctx, deep: FormText = ""):
    job_id = services.request_sweep(ctx, deep=bool(deep))
    return flash_redirect(f"/jobs/{job_id}", gettext(ctx.language, "The sweep is queued."))
