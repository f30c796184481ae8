"""HTTP routes of the storage layer: sites and integrity sweeps."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from astrocloud.core.service import Context
from astrocloud.core.storage import services
from astrocloud.core.storage.services import StorageOps as Ops
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.inputs import StrictModel
from astrocloud.core.web.routing import Id, uses

api = APIRouter(prefix="/api/v1", tags=["storage"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]


class SiteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    city: str
    latitude: float
    longitude: float
    storage_url: str
    capacity_bytes: int
    status: str
    created_at: dt.datetime


class SiteCreate(StrictModel):
    name: str = Field(max_length=64)
    city: str = Field(default="", max_length=100)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=360)
    storage_url: str = Field(max_length=500)
    capacity_bytes: int = Field(default=0, ge=0, le=2**62)


class SiteUpdate(StrictModel):
    city: str | None = Field(default=None, max_length=100)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=360)
    storage_url: str | None = Field(default=None, max_length=500)
    capacity_bytes: int | None = Field(default=None, ge=0, le=2**62)
    status: str | None = Field(default=None, max_length=16)


class PlacementRuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    prefix: str
    copies: int
    preferred_sites: str
    description: str


class PlacementRuleIn(StrictModel):
    prefix: str = Field(max_length=500)
    copies: int = Field(ge=1, le=10)
    preferred_sites: list[str] = Field(default_factory=list, max_length=20)
    description: str = Field(default="", max_length=2000)


class SweepIn(StrictModel):
    deep: bool = False


class JobRef(BaseModel):
    job_id: int


@api.get("/sites", response_model=list[SiteOut], openapi_extra=uses(Ops.SITE_LIST))
def list_sites(ctx: Ctx):
    return services.list_sites(ctx)


@api.post("/sites", response_model=SiteOut, status_code=201, openapi_extra=uses(Ops.SITE_MANAGE))
def create_site(body: SiteCreate, ctx: Ctx):
    return services.create_site(ctx, **body.model_dump())


@api.patch("/sites/{site_id}", response_model=SiteOut, openapi_extra=uses(Ops.SITE_MANAGE))
def update_site(site_id: Id, body: SiteUpdate, ctx: Ctx):
    return services.update_site(ctx, site_id=site_id, **body.model_dump(exclude_unset=True))


@api.post("/storage/sweep", response_model=JobRef, status_code=202,
          openapi_extra=uses(Ops.SWEEP), summary="Queue an integrity sweep")
def sweep(body: SweepIn, ctx: Ctx):
    return JobRef(job_id=services.request_sweep(ctx, deep=body.deep))


@api.delete("/sites/{site_id}", status_code=204, openapi_extra=uses(Ops.SITE_MANAGE))
def delete_site(site_id: Id, ctx: Ctx):
    services.delete_site(ctx, site_id=site_id)
    return Response(status_code=204)


@api.get("/placement-rules", response_model=list[PlacementRuleOut],
         openapi_extra=uses(Ops.SITE_LIST), summary="How many copies go where")
def placement_rules(ctx: Ctx):
    return services.list_placement_rules(ctx)


@api.put("/placement-rules", response_model=PlacementRuleOut,
         openapi_extra=uses(Ops.SITE_MANAGE), summary="Create or change a placement rule")
def set_placement_rule(body: PlacementRuleIn, ctx: Ctx):
    return services.set_placement_rule(ctx, **body.model_dump())
