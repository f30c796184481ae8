"""The catalogs' pages: every catalog one may see, and a catalog's page with its columns (units,
UCDs, descriptions) and a cone search.

    /data/catalogs                 the catalogs
    /data/catalogs/<name>          one catalog; ?position=&radius= runs a cone search
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BeforeValidator, Field

from astrocloud.core import errors
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.inputs import StrictModel
from astrocloud.core.web.routing import uses
from astrocloud.core.web.templating import render
from astrocloud.data.archive import services as archive
from astrocloud.data.catalogs import services
from astrocloud.data.catalogs.services import CatalogOps

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
SHOWN = 100  # rows of a cone shown on the page


def _blank_is_none(value):
    return None if isinstance(value, str) and not value.strip() else value


class ConeForm(StrictModel):
    position: str = Field("", max_length=100)
    radius: Annotated[float | None, BeforeValidator(_blank_is_none)] = Field(
        None, gt=0, le=10, description="degrees")
    lang: str = Field("", max_length=16)


@pages.get("/data/catalogs", openapi_extra=uses(CatalogOps.READ))
def catalogs_page(request: Request, ctx: Ctx):
    return render(request, "data/catalogs.html", catalogs=services.list_catalogs(ctx))


@pages.get("/data/catalogs/{name}", openapi_extra=uses(CatalogOps.READ))
def catalog_page(request: Request, name: str, ctx: Ctx, form: Annotated[ConeForm, Query()]):
    catalog = services.get_catalog(ctx, name[:64])
    result = problem = None
    if form.position.strip():
        try:
            ra, dec = archive.resolve(form.position)
            result = services.cone(ctx, catalog.name, ra, dec, form.radius or 0.1, SHOWN)
        except errors.ValidationFailed as exc:
            problem = exc.localized(ctx.language)
    return render(request, "data/catalog.html", catalog=catalog, form=form, result=result,
                  problem=problem, shown=SHOWN)
