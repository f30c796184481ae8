"""HTTP routes of the source catalogs (JSON API).

    GET /api/v1/data/catalogs                       the catalogs the caller may see:
                                                    {"total": N, "items": [...]}
    GET /api/v1/data/catalogs/<name>                one catalog's metadata and its columns
    GET /api/v1/data/catalogs/<name>/cone?ra=&dec=&radius=[&limit=]
                                                    its rows within `radius` degrees of
                                                    (ra, dec), nearest first, with `_distance`

Routes parse and render; the catalog services decide who may see what (a proprietary catalog
is "not found" for those who may not see it). Importing and deleting are CLI commands.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import uses
from astrocloud.data.catalogs import services
from astrocloud.data.catalogs.models import Catalog, CatalogColumn
from astrocloud.data.catalogs.services import CatalogOps

api = APIRouter(prefix="/api/v1/data/catalogs", tags=["catalogs"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
READ = CatalogOps.READ
MAX_API_LIMIT = 10_000
CatalogName = Annotated[str, Path(max_length=64, description="The catalog's name.",
                                  examples=["lamost_dr1"])]


class ColumnOut(BaseModel):
    """A column as TAP_SCHEMA.columns describes it (VOTable datatype, arraysize, xtype)."""

    name: str
    original_name: str = Field(description="its name in the imported file")
    position: int
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    unit: str
    ucd: str
    description: str
    indexed: bool


class CatalogOut(BaseModel):
    """A source catalog. `public` is false while its proprietary date lies ahead."""

    name: str
    title: str
    description: str
    table_name: str
    n_rows: int
    n_columns: int
    ra_column: str
    dec_column: str
    index_kind: str
    healpix_order: int | None = None
    public: bool
    proprietary_until: dt.datetime | None = None
    owner: str | None = None
    source_name: str
    source_format: str
    created_at: dt.datetime
    updated_at: dt.datetime
    url: str


class CatalogDetail(CatalogOut):
    columns: list[ColumnOut]
    groups: list[str] | None = Field(default=None, description="the groups it is granted to "
                                     "(shown to whoever may change them)")


class CatalogList(BaseModel):
    total: int
    items: list[CatalogOut]


class ConeOut(BaseModel):
    """The rows within the cone, nearest first; `truncated` when more than `limit` lie in it.
    Each row maps the catalog's column names (and `_distance`, in degrees) to values."""

    catalog: str
    ra: float
    dec: float
    radius: float
    limit: int
    count: int
    truncated: bool
    columns: list[str]
    rows: list[dict[str, Any]]


def _column_out(column: CatalogColumn) -> ColumnOut:
    return ColumnOut(name=column.name, original_name=column.original_name,
                     position=column.position, datatype=column.datatype,
                     arraysize=column.arraysize, xtype=column.xtype, unit=column.unit,
                     ucd=column.ucd, description=column.description, indexed=column.indexed)


def _catalog_fields(ctx: Context, catalog: Catalog) -> dict[str, Any]:
    return {"name": catalog.name, "title": catalog.title, "description": catalog.description,
            "table_name": catalog.table_name, "n_rows": catalog.n_rows,
            "n_columns": len(catalog.columns), "ra_column": catalog.ra_column,
            "dec_column": catalog.dec_column, "index_kind": catalog.index_kind,
            "healpix_order": catalog.healpix_order, "public": catalog.is_public(ctx.now()),
            "proprietary_until": catalog.proprietary_until,
            "owner": catalog.owner.username if catalog.owner is not None else None,
            "source_name": catalog.source_name, "source_format": catalog.source_format,
            "created_at": catalog.created_at, "updated_at": catalog.updated_at,
            "url": f"/api/v1/data/catalogs/{catalog.name}"}


@api.get("", response_model=CatalogList, openapi_extra=uses(READ),
         summary="The source catalogs you may see")
def list_catalogs(ctx: Ctx):
    items = [CatalogOut(**_catalog_fields(ctx, c)) for c in services.list_catalogs(ctx)]
    return CatalogList(total=len(items), items=items)


@api.get("/{name}", response_model=CatalogDetail, openapi_extra=uses(READ),
         summary="A catalog's metadata and columns")
def read_catalog(name: CatalogName, ctx: Ctx):
    catalog = services.get_catalog(ctx, name)
    groups = [g.name for g in catalog.groups] if ctx.can(CatalogOps.GRANT, catalog) else None
    return CatalogDetail(**_catalog_fields(ctx, catalog),
                         columns=[_column_out(c) for c in catalog.columns], groups=groups)


@api.get("/{name}/cone", response_model=ConeOut, openapi_extra=uses(READ),
         summary="A catalog's rows within a cone, nearest first")
def cone_search(
    name: CatalogName, ctx: Ctx,
    ra: Annotated[float, Query(ge=0, lt=360, allow_inf_nan=False,
                               description="Right ascension of the centre (degrees, ICRS)")],
    dec: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False,
                                description="Declination of the centre (degrees)")],
    radius: Annotated[float, Query(gt=0, le=180, allow_inf_nan=False,
                                   description="Radius of the cone (degrees)")],
    limit: Annotated[int, Query(ge=1, le=MAX_API_LIMIT,
                                description="At most this many rows")] = 1000,
):
    result = services.cone(ctx, name, ra, dec, radius, limit)
    return ConeOut(catalog=result.catalog.name, ra=ra, dec=dec, radius=radius, limit=limit,
                   count=len(result.rows), truncated=result.truncated,
                   columns=[c.name for c in result.columns] + ["_distance"], rows=result.rows)
