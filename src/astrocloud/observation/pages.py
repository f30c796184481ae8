"""The Observation channel's pages.

    /observation                   the calls open now (each linked to its page) and the
                                   caller's own proposals
    /observation/calls/<id>        one call: its dates (UTC and the telescope's local time),
                                   hours per instrument, categories, form and review set-up,
                                   and the instruments' parameters

What is shown is what the caller may see: every page goes through the channel's services.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request

from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import uses
from astrocloud.core.web.templating import render
from astrocloud.observation import calls
from astrocloud.observation.calls import CallOps

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]


def local(value: dt.datetime, zone: str) -> dt.datetime:
    """`value` in the time zone `zone` (UTC when the zone is unknown)."""
    try:
        return value.astimezone(ZoneInfo(zone))
    except (KeyError, ValueError):
        return value


@pages.get("/observation", openapi_extra=uses(CallOps.READ), name="observation_landing")
def landing(request: Request, ctx: Ctx):
    open_calls = calls.list_calls(ctx, open_only=True)
    return render(request, "observation/landing.html", calls=open_calls, now=ctx.now())


@pages.get("/observation/calls/{call_id}", openapi_extra=uses(CallOps.READ))
def call_page(request: Request, call_id: int, ctx: Ctx):
    call = calls.get_call(ctx, call_id)
    return render(request, "observation/call.html", call=call, now=ctx.now(),
                  is_open=calls.is_open(call, ctx.now()),
                  local=lambda value: local(value, call.telescope.time_zone))
