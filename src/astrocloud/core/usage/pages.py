"""Admin pages of the usage log: the overview of the platform's figures and the log itself.

The figures are for those granted `core.usage.stats`; the log is open to everyone with a grant
of `core.usage.list`, filtered by the service to what each may see (an astronomer, their own
entries; an operator, everything).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BeforeValidator, Field

from astrocloud.core.errors import ValidationFailed
from astrocloud.core.identity.pages import field_errors
from astrocloud.core.service import Context, Page
from astrocloud.core.usage import services
from astrocloud.core.usage.models import OUTCOMES
from astrocloud.core.usage.services import UsageOps as Ops
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import MAX_ID, uses
from astrocloud.core.web.templating import render

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]

EVENTS_PER_PAGE = 50
PERIODS = (1, 7, 30, 90, 365)


@pages.get("/admin", openapi_extra=uses(Ops.STATS))
def overview(request: Request, ctx: Ctx,
             days: Annotated[int, Query(ge=1, le=3660)] = 30,
             notice: Annotated[str | None, Query(max_length=300)] = None):
    stats = services.statistics(ctx, days=days)
    return render(request, "admin/overview.html", stats=stats, periods=PERIODS, notice=notice)


def _blank_is_none(value):
    """A filter form sends empty fields; an empty field is no filter."""
    return None if isinstance(value, str) and not value.strip() else value


UserIdFilter = Annotated[Annotated[int, Field(ge=1, le=MAX_ID)] | None,
                         BeforeValidator(_blank_is_none), Query()]
DateFilter = Annotated[dt.date | None, BeforeValidator(_blank_is_none), Query()]


def _day_start(day: dt.date | None) -> dt.datetime | None:
    return None if day is None else dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


@pages.get("/admin/usage", openapi_extra=uses(Ops.LIST))
def usage(request: Request, ctx: Ctx, user_id: UserIdFilter = None,
          operation: Annotated[str, Query(max_length=128)] = "",
          channel: Annotated[str, Query(max_length=32)] = "",
          outcome: Annotated[str, Query(max_length=16)] = "",
          since: DateFilter = None, until: DateFilter = None,
          page: Annotated[int, Query(ge=1, le=1_000_000)] = 1):
    filters = {"user_id": user_id or "", "operation": operation, "channel": channel,
               "outcome": outcome, "since": since or "", "until": until or ""}
    try:
        result = services.list_events(
            ctx, user_id=user_id, operation_name=operation.strip() or None,
            channel=channel.strip() or None, outcome=outcome or None, since=_day_start(since),
            # "until" a date includes that whole day
            until=_day_start(until + dt.timedelta(days=1)) if until else None,
            page=page, per_page=EVENTS_PER_PAGE)
    except ValidationFailed as exc:
        return render(request, "admin/usage.html", status_code=422, filters=filters,
                      outcomes=OUTCOMES, errors=field_errors(exc),
                      result=Page(total=0, items=[], page=1, per_page=EVENTS_PER_PAGE))
    return render(request, "admin/usage.html", filters=filters, outcomes=OUTCOMES, errors={},
                  result=result)
