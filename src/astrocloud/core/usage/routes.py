"""HTTP routes of the usage log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from astrocloud.core.errors import ValidationFailed
from astrocloud.core.service import Context
from astrocloud.core.usage import services
from astrocloud.core.usage.services import UsageOps as Ops
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import MAX_ID, uses

api = APIRouter(prefix="/api/v1/usage", tags=["usage"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]


class UsageEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: dt.datetime
    user_id: int | None
    username: str
    operation: str
    channel: str
    target_type: str
    target_id: str
    outcome: str
    detail: str
    duration_ms: float
    client_addr: str
    via: str


class UsagePage(BaseModel):
    total: int
    page: int
    per_page: int
    items: list[UsageEventOut]


class UsageStats(BaseModel):
    days: int
    registered_users: int
    active_users: int
    online_users: int
    new_users: int
    logins: int
    failed_logins: int
    operations_per_channel: dict[str, int]
    outcomes: dict[str, int]


@api.get("", response_model=UsagePage, openapi_extra=uses(Ops.LIST),
         summary="The usage log (your own entries; everything for operators)")
def list_usage(
    ctx: Ctx,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    operation: Annotated[str | None, Query(max_length=128)] = None,
    channel: Annotated[str | None, Query(max_length=32)] = None,
    outcome: Annotated[str | None, Query(max_length=16)] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
):
    result = services.list_events(ctx, user_id=user_id, operation_name=operation,
                                  channel=channel, outcome=outcome, since=_aware(since),
                                  until=_aware(until), page=page, per_page=per_page)
    return UsagePage(total=result.total, page=result.page, per_page=result.per_page,
                     items=[UsageEventOut.model_validate(e) for e in result.items])


@api.get("/stats", response_model=UsageStats, openapi_extra=uses(Ops.STATS),
         summary="Registered, active and online users, sign-ins, operations per channel")
def usage_stats(ctx: Ctx, days: Annotated[int, Query(ge=1, le=3660)] = 30):
    return services.statistics(ctx, days=days)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValidationFailed("The date is out of range.", field="since/until") from None
