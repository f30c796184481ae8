"""HTTP routes of the Observation channel: the JSON API for telescopes, instruments,
programmes, calls, proposals, reviews, allocations and the observation log (its pages are in
`observation.pages`).

    GET   /api/v1/observation/telescopes                 every telescope with its instruments
    GET   /api/v1/observation/telescopes/<name>
    PATCH /api/v1/observation/telescopes/<name>          header mapping, proprietary period,
                                                         new instruments (its managers)
    PUT   /api/v1/observation/telescopes/<name>/instruments/<instrument>/qc   QC limits
    PUT   /api/v1/observation/telescopes/<name>/instruments/<instrument>/schema  back-end
                                                         parameters and overheads
    GET   /api/v1/observation/programmes
    GET   /api/v1/observation/calls[?telescope=&open=true]   calls; POST opens one
    GET   /api/v1/observation/calls/<id>; PATCH changes it (the telescope's managers)
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.inputs import StrictModel
from astrocloud.core.web.routing import uses
from astrocloud.observation import calls, services
from astrocloud.observation.calls import CallOps
from astrocloud.observation.pages import pages  # noqa: F401 - the channel's pages
from astrocloud.observation.services import ObservationOps

api = APIRouter(prefix="/api/v1/observation", tags=["observation"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
Name = Annotated[str, Field(max_length=64)]


def telescope_out(t) -> dict[str, Any]:
    return {"name": t.name, "title": t.title, "longitude": t.longitude, "latitude": t.latitude,
            "elevation": t.elevation, "aperture": t.aperture, "time_zone": t.time_zone,
            "proprietary_months": t.proprietary_months, "header_mapping": t.header_mapping,
            "open_for_proposals": t.open_for_proposals,
            "instruments": [{"name": i.name, "kind": i.kind, "qc_config": i.qc_config,
                             "setup_schema": i.setup_schema} for i in t.instruments]}


@api.get("/telescopes", openapi_extra=uses(ObservationOps.TELESCOPE_READ),
         summary="The telescopes and their instruments")
def get_telescopes(ctx: Ctx):
    return [telescope_out(t) for t in services.list_telescopes(ctx)]


@api.get("/telescopes/{name}", openapi_extra=uses(ObservationOps.TELESCOPE_READ),
         summary="One telescope")
def get_telescope(name: str, ctx: Ctx):
    return telescope_out(services.telescope_named(ctx, name))


class TelescopeChange(StrictModel):
    header_mapping: dict[str, list[Name] | Name] | None = Field(None, max_length=40)
    proprietary_months: int | None = Field(None, ge=0, le=120)
    add_instruments: list[Name] = Field(default_factory=list, max_length=20)
    title: str | None = Field(None, max_length=200)
    longitude: float | None = None
    latitude: float | None = None
    elevation: float | None = None
    aperture: float | None = None
    time_zone: str | None = Field(None, max_length=64)
    open_for_proposals: bool | None = None


@api.patch("/telescopes/{name}", openapi_extra=uses(ObservationOps.TELESCOPE_UPDATE),
           summary="Change a telescope's header mapping, proprietary period or instruments")
def patch_telescope(name: str, body: TelescopeChange, ctx: Ctx):
    return telescope_out(services.update_telescope(
        ctx, name, header_mapping=body.header_mapping,
        proprietary_months=body.proprietary_months, add_instruments=body.add_instruments,
        title=body.title, longitude=body.longitude, latitude=body.latitude,
        elevation=body.elevation, aperture=body.aperture, time_zone=body.time_zone,
        open_for_proposals=body.open_for_proposals))


class SchemaBody(StrictModel):
    setup_schema: dict[str, Any]
    kind: str | None = Field(None, max_length=32)


@api.put("/telescopes/{name}/instruments/{instrument}/schema",
         openapi_extra=uses(ObservationOps.TELESCOPE_UPDATE),
         summary="Set an instrument's back-end parameters and overheads")
def put_schema(name: str, instrument: str, body: SchemaBody, ctx: Ctx):
    target = services.set_instrument_schema(ctx, name, instrument, body.setup_schema, body.kind)
    return {"name": target.name, "kind": target.kind, "setup_schema": target.setup_schema}


@api.put("/telescopes/{name}/instruments/{instrument}/qc",
         openapi_extra=uses(ObservationOps.TELESCOPE_UPDATE),
         summary="Set an instrument's quality-control limits")
def put_qc(name: str, instrument: str, body: dict[str, Any], ctx: Ctx):
    target = services.set_instrument_qc(ctx, name, instrument, body)
    return {"name": target.name, "qc_config": target.qc_config}


@api.get("/programmes", openapi_extra=uses(ObservationOps.PROGRAMME_READ),
         summary="The observing programmes")
def get_programmes(ctx: Ctx):
    return [{"code": p.code, "title": p.title, "telescope": p.telescope.name,
             "proprietary_months": p.proprietary_months} for p in services.list_programmes(ctx)]


# ---- calls ------------------------------------------------------------------------------------


def call_out(c, now=None) -> dict[str, Any]:
    from astrocloud.observation.calls import is_open

    return {"id": c.id, "telescope": c.telescope.name, "name": c.name, "title": c.title,
            "description": c.description, "opens_at": c.opens_at, "closes_at": c.closes_at,
            "is_open": is_open(c, now) if now is not None else None,
            "semester_start": c.semester_start, "semester_end": c.semester_end,
            "review_deadline": c.review_deadline, "instrument_hours": c.instrument_hours,
            "categories": c.categories, "form": c.form, "review_setup": c.review_setup,
            "allocation_setup": c.allocation_setup,
            "proprietary_months": c.proprietary_months,
            "results_published_at": c.results_published_at,
            "instruments": [{"name": i.name, "kind": i.kind, "setup_schema": i.setup_schema}
                            for i in c.telescope.instruments]}


class CallFields(StrictModel):
    name: str | None = Field(None, max_length=64)
    title: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    opens_at: dt.datetime | None = None
    closes_at: dt.datetime | None = None
    semester_start: dt.datetime | None = None
    semester_end: dt.datetime | None = None
    review_deadline: dt.datetime | None = None
    instrument_hours: dict[str, float] | None = Field(None, max_length=50)
    categories: list[Annotated[str, Field(max_length=100)]] | None = Field(None, max_length=50)
    form: dict[str, Any] | None = None
    review_setup: dict[str, Any] | None = None
    allocation_setup: dict[str, Any] | None = None
    proprietary_months: int | None = Field(None, ge=0, le=120)


class CallCreate(CallFields):
    telescope: Name
    name: str = Field(max_length=64)
    opens_at: dt.datetime
    closes_at: dt.datetime
    semester_start: dt.datetime
    semester_end: dt.datetime
    review_deadline: dt.datetime


@api.get("/calls", openapi_extra=uses(CallOps.READ), summary="Calls for proposals")
def get_calls(ctx: Ctx, telescope: Annotated[str | None, Query(max_length=64)] = None,
              open: bool = False):
    now = ctx.now()
    return {"items": [call_out(c, now) for c in calls.list_calls(
        ctx, telescope=telescope, open_only=open)]}


@api.post("/calls", status_code=201, openapi_extra=uses(CallOps.CREATE),
          summary="Open a call on a telescope")
def post_call(body: CallCreate, ctx: Ctx):
    call = calls.create_call(ctx, **body.model_dump())
    return call_out(call, ctx.now())


@api.get("/calls/{call_id}", openapi_extra=uses(CallOps.READ), summary="One call")
def get_one_call(call_id: int, ctx: Ctx):
    return call_out(calls.get_call(ctx, call_id), ctx.now())


@api.patch("/calls/{call_id}", openapi_extra=uses(CallOps.UPDATE), summary="Change a call")
def patch_call(call_id: int, body: CallFields, ctx: Ctx):
    call = calls.update_call(ctx, call_id, **body.model_dump(exclude_none=True))
    return call_out(call, ctx.now())
