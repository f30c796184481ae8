"""The usage log's read side: the admin listing and the figures behind the statistics page."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from astrocloud.core.db import utcnow
from astrocloud.core.errors import ValidationFailed
from astrocloud.core.identity.models import LoginAttempt, User, WebSession
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, Page, operation, paginate
from astrocloud.core.usage.models import OUTCOMES, UsageEvent


class UsageOps(OperationSet):
    LIST = Query("core.usage.list", resource="usage_event",
                 doc="Read the usage log (everyone sees their own entries).")
    STATS = Action("core.usage.stats", doc="See platform-wide usage figures.")


@operation(UsageOps.LIST)
def list_events(ctx: Context, *, user_id: int | None = None, operation_name: str | None = None,
                channel: str | None = None, outcome: str | None = None,
                since: dt.datetime | None = None, until: dt.datetime | None = None,
                page: int = 1, per_page: int = 50) -> Page:
    """Usage events the caller may see, newest first, filtered and paginated in SQL."""
    ctx.authorize_listing()
    if outcome is not None and outcome not in OUTCOMES:
        raise ValidationFailed("Unknown outcome; choose from %(choices)s.", field="outcome",
                               choices=", ".join(OUTCOMES))
    stmt = ctx.visible(sa.select(UsageEvent).order_by(UsageEvent.at.desc(), UsageEvent.id.desc()))
    if user_id is not None:
        stmt = stmt.where(UsageEvent.user_id == user_id)
    if operation_name:
        escaped = operation_name[:128].replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_").replace("*", "%")
        stmt = stmt.where(UsageEvent.operation.like(escaped, escape="\\"))
    if channel:
        stmt = stmt.where(UsageEvent.channel == channel[:32])
    if outcome:
        stmt = stmt.where(UsageEvent.outcome == outcome)
    if since is not None:
        stmt = stmt.where(UsageEvent.at >= since)
    if until is not None:
        stmt = stmt.where(UsageEvent.at < until)
    return paginate(ctx.db, stmt, page, per_page)


@operation(UsageOps.STATS)
def statistics(ctx: Context, *, days: int = 30) -> dict:
    """Registered and online users, sign-ins, and operations per channel over `days` days."""
    ctx.authorize()
    if not 1 <= days <= 3660:
        raise ValidationFailed("Choose between 1 and 3660 days.", field="days")
    now = utcnow()
    since = now - dt.timedelta(days=days)
    online_since = now - dt.timedelta(minutes=ctx.settings.online_window_minutes)
    db = ctx.db
    per_channel = dict(db.execute(
        sa.select(UsageEvent.channel, sa.func.count())
        .where(UsageEvent.at >= since).group_by(UsageEvent.channel)).all())
    per_outcome = dict(db.execute(
        sa.select(UsageEvent.outcome, sa.func.count())
        .where(UsageEvent.at >= since).group_by(UsageEvent.outcome)).all())
    return {
        "days": days,
        "registered_users": db.scalar(sa.select(sa.func.count()).select_from(User)
                                      .where(User.is_service.is_(False))),
        "active_users": db.scalar(sa.select(sa.func.count(sa.distinct(UsageEvent.user_id)))
                                  .where(UsageEvent.at >= since, UsageEvent.user_id.is_not(None))),
        "online_users": db.scalar(sa.select(sa.func.count(sa.distinct(WebSession.user_id)))
                                  .where(WebSession.last_seen_at >= online_since)),
        "new_users": db.scalar(sa.select(sa.func.count()).select_from(User)
                               .where(User.created_at >= since, User.is_service.is_(False))),
        "logins": db.scalar(sa.select(sa.func.count()).select_from(LoginAttempt)
                            .where(LoginAttempt.at >= since, LoginAttempt.success.is_(True))),
        "failed_logins": db.scalar(sa.select(sa.func.count()).select_from(LoginAttempt)
                                   .where(LoginAttempt.at >= since,
                                          LoginAttempt.success.is_(False))),
        "operations_per_channel": per_channel,
        "outcomes": per_outcome,
    }
