"""HTTP routes of the Observation channel: its landing page (calls and proposals come with
their own issue) and the JSON API for telescopes, instruments and programmes.

    GET   /api/v1/observation/telescopes                 every telescope with its instruments
    GET   /api/v1/observation/telescopes/<name>
    PATCH /api/v1/observation/telescopes/<name>          header mapping, proprietary period,
                                                         new instruments (its managers)
    PUT   /api/v1/observation/telescopes/<name>/instruments/<instrument>/qc   QC limits
    GET   /api/v1/observation/programmes
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field

from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.inputs import StrictModel
from astrocloud.core.web.pages import channel_landing_router
from astrocloud.core.web.routing import uses
from astrocloud.observation import services
from astrocloud.observation.services import ObservationOps

pages = channel_landing_router("observation")
api = APIRouter(prefix="/api/v1/observation", tags=["observation"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
Name = Annotated[str, Field(max_length=64)]


def telescope_out(t) -> dict[str, Any]:
    return {"name": t.name, "title": t.title, "longitude": t.longitude, "latitude": t.latitude,
            "elevation": t.elevation, "aperture": t.aperture, "time_zone": t.time_zone,
            "proprietary_months": t.proprietary_months, "header_mapping": t.header_mapping,
            "instruments": [{"name": i.name, "kind": i.kind, "qc_config": i.qc_config}
                            for i in t.instruments]}


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


@api.patch("/telescopes/{name}", openapi_extra=uses(ObservationOps.TELESCOPE_UPDATE),
           summary="Change a telescope's header mapping, proprietary period or instruments")
def patch_telescope(name: str, body: TelescopeChange, ctx: Ctx):
    return telescope_out(services.update_telescope(
        ctx, name, header_mapping=body.header_mapping,
        proprietary_months=body.proprietary_months, add_instruments=body.add_instruments))


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
