"""The storage layer's records: data-center sites, logical files and their physical replicas,
and the placement rules that say how many copies go where."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from astrocloud.core.db import Base, utcnow
from astrocloud.core.security.resources import register_resource

SITE_STATUSES = ("up", "draining", "down")
REPLICA_STATUSES = ("ok", "pending", "failed", "corrupt", "missing")


@register_resource("site")
class Site(Base):
    """A data center holding a share of the platform's storage."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    city: Mapped[str] = mapped_column(sa.String(100), default="")
    latitude: Mapped[float] = mapped_column(default=0.0)
    longitude: Mapped[float] = mapped_column(default=0.0)
    # file:///path, s3://bucket/prefix?endpoint_url=…, or http(s)://host:port for a site agent
    storage_url: Mapped[str] = mapped_column(sa.String(500))
    capacity_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    status: Mapped[str] = mapped_column(sa.String(16), default="up")
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def readable(self) -> bool:
        return self.status in ("up", "draining")

    @property
    def writable(self) -> bool:
        return self.status == "up"


@register_resource("stored_file")
class StoredFile(Base):
    """A logical file (`ac://<namespace>/<path>`), whatever sites hold its bytes."""

    __tablename__ = "stored_files"
    __table_args__ = (sa.Index("ix_stored_files_namespace_path", "namespace", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uri: Mapped[str] = mapped_column(sa.String(1100), unique=True)
    namespace: Mapped[str] = mapped_column(sa.String(32))
    path: Mapped[str] = mapped_column(sa.String(1024))
    object_key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    # "<algorithm>:<hex>" (storage.checksums): xxh3-128, blake3 or sha256
    checksum: Mapped[str] = mapped_column(sa.String(80))
    content_type: Mapped[str] = mapped_column(sa.String(200), default="application/octet-stream")
    origin_site_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sites.id",
                                                                     ondelete="SET NULL"))
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    copies_wanted: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    replicas: Mapped[list[Replica]] = relationship(back_populates="file",
                                                   cascade="all, delete-orphan")


class Replica(Base):
    """One physical copy of a file at one site."""

    __tablename__ = "replicas"
    __table_args__ = (sa.UniqueConstraint("file_id", "site_id"),
                      sa.Index("ix_replicas_status", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_files.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"),
                                         index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(sa.String(500), default="")
    verified_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    file: Mapped[StoredFile] = relationship(back_populates="replicas")
    site: Mapped[Site] = relationship()


class PlacementRule(Base):
    """For logical names under `prefix`: how many copies, at which sites first."""

    __tablename__ = "placement_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(sa.String(500), unique=True)
    copies: Mapped[int] = mapped_column(default=2)
    preferred_sites: Mapped[str] = mapped_column(sa.String(500), default="")  # comma-separated
    description: Mapped[str] = mapped_column(sa.Text, default="")


class SiteCost(Base):
    """An operator's transfer cost between two sites; overrides great-circle distance."""

    __tablename__ = "site_costs"
    __table_args__ = (sa.UniqueConstraint("from_site_id", "to_site_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    from_site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"))
    to_site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"))
    cost: Mapped[float]
