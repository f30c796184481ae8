"""The usage log: one row per operation call, the raw material of the usage statistics."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from astrocloud.core.db import Base, utcnow
from astrocloud.core.security.resources import register_resource

OUTCOMES = ("ok", "denied", "invalid", "not_found", "conflict", "error", "unauthenticated")


@register_resource("usage_event")
class UsageEvent(Base):
    """Who called which operation on what, with what outcome, how long it took, from where."""

    __tablename__ = "usage_events"
    __table_args__ = (
        sa.Index("ix_usage_events_at", "at"),
        sa.Index("ix_usage_events_channel_at", "channel", "at"),
        sa.Index("ix_usage_events_user_at", "user_id", "at"),
        sa.Index("ix_usage_events_operation_at", "operation", "at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None]  # no foreign key: the log outlives deleted accounts
    username: Mapped[str] = mapped_column(sa.String(64), default="")
    operation: Mapped[str] = mapped_column(sa.String(128))
    channel: Mapped[str] = mapped_column(sa.String(32))
    target_type: Mapped[str] = mapped_column(sa.String(32), default="")
    target_id: Mapped[str] = mapped_column(sa.String(128), default="")
    outcome: Mapped[str] = mapped_column(sa.String(16))
    detail: Mapped[str] = mapped_column(sa.String(500), default="")
    duration_ms: Mapped[float] = mapped_column(default=0.0)
    client_addr: Mapped[str] = mapped_column(sa.String(64), default="")
    via: Mapped[str] = mapped_column(sa.String(16), default="")  # web, api, cli, worker
