"""What the TAP service keeps: its asynchronous (UWS) jobs, and TAP_SCHEMA — the description of
every published table and column, generated from the archive's and the catalogs' metadata and
kept in real tables so that ADQL can query it like any other table.

TAP_SCHEMA's rows carry the catalog they describe (`catalog_id`, NULL for tables everyone
sees): a caller's view of TAP_SCHEMA holds only the catalogs they may read."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from astrocloud.core.db import Base, utcnow
from astrocloud.core.security.resources import register_resource

#: UWS 1.1 execution phases
PHASES = ("PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED", "UNKNOWN",
          "HELD", "SUSPENDED", "ARCHIVED")
FINAL_PHASES = ("COMPLETED", "ERROR", "ABORTED", "ARCHIVED")


@register_resource("tap_job")
class TapJob(Base):
    """An asynchronous TAP query (a UWS job): its parameters, phase, times, limits, and where
    its result is (a file in the data-access layer, `ac://jobs/tap/<id>/…`)."""

    __tablename__ = "tap_jobs"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                                 index=True)
    run_id: Mapped[str] = mapped_column(sa.String(64), default="")
    phase: Mapped[str] = mapped_column(sa.String(16), default="PENDING", index=True)
    lang: Mapped[str] = mapped_column(sa.String(16), default="ADQL")
    query: Mapped[str] = mapped_column(sa.Text, default="")
    maxrec: Mapped[int | None] = mapped_column()
    response_format: Mapped[str] = mapped_column(sa.String(128), default="")
    upload: Mapped[str] = mapped_column(sa.Text, default="")
    # further parameters, as given (name → value), and the uploaded tables' stored files
    parameters: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    uploads: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    start_time: Mapped[dt.datetime | None] = mapped_column()
    end_time: Mapped[dt.datetime | None] = mapped_column()
    destruction: Mapped[dt.datetime] = mapped_column(index=True)
    execution_duration: Mapped[int] = mapped_column(default=600)  # seconds
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    result_uri: Mapped[str | None] = mapped_column(sa.String(1024))
    result_type: Mapped[str | None] = mapped_column(sa.String(128))
    result_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    row_count: Mapped[int | None] = mapped_column(sa.BigInteger)
    overflow: Mapped[bool] = mapped_column(default=False)
    platform_job_id: Mapped[int | None] = mapped_column(doc="the job system's job running it")


class TapSchemaSchema(Base):
    __tablename__ = "tap_schema_schemas"

    schema_name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    utype: Mapped[str | None] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.Text)
    schema_index: Mapped[int | None] = mapped_column()


class TapSchemaTable(Base):
    __tablename__ = "tap_schema_tables"

    table_name: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    schema_name: Mapped[str] = mapped_column(sa.String(64))
    table_type: Mapped[str] = mapped_column(sa.String(16), default="table")
    utype: Mapped[str | None] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.Text)
    table_index: Mapped[int | None] = mapped_column()
    catalog_id: Mapped[int | None] = mapped_column(index=True)


class TapSchemaColumn(Base):
    __tablename__ = "tap_schema_columns"

    table_name: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    column_name: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    datatype: Mapped[str] = mapped_column(sa.String(32))
    arraysize: Mapped[str | None] = mapped_column(sa.String(16))
    xtype: Mapped[str | None] = mapped_column(sa.String(32))
    size: Mapped[int | None] = mapped_column()
    description: Mapped[str | None] = mapped_column(sa.Text)
    utype: Mapped[str | None] = mapped_column(sa.String(255))
    unit: Mapped[str | None] = mapped_column(sa.String(64))
    ucd: Mapped[str | None] = mapped_column(sa.String(255))
    indexed: Mapped[int] = mapped_column(default=0)
    principal: Mapped[int] = mapped_column(default=0)
    std: Mapped[int] = mapped_column(default=0)
    column_index: Mapped[int | None] = mapped_column()
    catalog_id: Mapped[int | None] = mapped_column(index=True)


class TapSchemaKey(Base):
    __tablename__ = "tap_schema_keys"

    key_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    from_table: Mapped[str] = mapped_column(sa.String(128))
    target_table: Mapped[str] = mapped_column(sa.String(128))
    utype: Mapped[str | None] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.Text)
    catalog_id: Mapped[int | None] = mapped_column(index=True)


class TapSchemaKeyColumn(Base):
    __tablename__ = "tap_schema_key_columns"

    key_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    from_column: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    target_column: Mapped[str] = mapped_column(sa.String(128))
    catalog_id: Mapped[int | None] = mapped_column(index=True)


class TapSchemaState(Base):
    """Which catalogs the stored TAP_SCHEMA describes (a fingerprint), so that it is rewritten
    only when they change."""

    __tablename__ = "tap_schema_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
