"""The observation archive's records: one `ArchiveFile` per archived file version (its ObsCore
metadata, lifecycle links, quality grade and release date), provenance links from derived
products to the files they came from, and one `IngestRecord` per file that reached the archive
(archived, a duplicate, or quarantined with the reason)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from astrocloud.core.db import Base, utcnow
from astrocloud.core.security.resources import BOOL, INT, Attr, Collection, register_resource
from astrocloud.observation.services import programme_readers, programme_readers_sql

QC_GRADES = ("pass", "warn", "fail")
INGEST_STATES = ("queued", "running", "archived", "duplicate", "quarantined")


def _file_readers(model):
    """SQL: who may see a proprietary file — its programme's PI, co-Is and granted groups."""
    return programme_readers_sql(model.programme_id)


def _python_file_readers(record) -> list[int]:
    from sqlalchemy.orm import object_session

    return programme_readers(object_session(record), record.programme_id)


def _in_public_release_sql(model):
    """SQL: the file is in a published data release whose release date has passed."""
    now = sa.literal(dt.datetime.now(dt.UTC), type_=DataRelease.release_date.type)
    return sa.exists().where(ReleaseFile.file_id == model.id,
                             DataRelease.id == ReleaseFile.release_id,
                             DataRelease.status == "published", DataRelease.release_date <= now)


def _in_public_release_python(record) -> bool:
    from sqlalchemy.orm import object_session

    session = object_session(record)
    if session is None or record.id is None:
        return False
    return bool(session.scalar(sa.select(_in_public_release_sql(ArchiveFile)).where(
        ArchiveFile.id == record.id)))


@register_resource("archive_file", scopes={"telescope": "telescope_id"}, extra=lambda: {
    "reader_ids": Collection(INT, python=_python_file_readers, sql=_file_readers,
                             doc="the PI, co-investigators and granted groups of its programme"),
    "in_public_release": Attr(BOOL, python=_in_public_release_python,
                              sql=_in_public_release_sql, nullable=False,
                              doc="part of a published data release whose date has passed"),
})
class ArchiveFile(Base):
    """One version of an archived file with its ObsCore metadata. Columns named as in ObsCore
    1.1 hold exactly that quantity (degrees, MJD, metres, seconds)."""

    __tablename__ = "archive_files"
    __table_args__ = (
        sa.Index("ix_archive_files_name", "telescope_id", "filename", "version"),
        sa.Index("ix_archive_files_release", "obs_release_date"),
        sa.Index("ix_archive_files_time", "t_min"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    telescope_id: Mapped[int] = mapped_column(sa.ForeignKey("telescopes.id"))
    instrument_id: Mapped[int | None] = mapped_column(sa.ForeignKey("instruments.id",
                                                                    ondelete="SET NULL"))
    programme_id: Mapped[int | None] = mapped_column(sa.ForeignKey("programmes.id",
                                                                   ondelete="SET NULL"),
                                                     index=True)
    programme_code: Mapped[str | None] = mapped_column(sa.String(64), index=True,
                                                       doc="as written in the header")
    stored_file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_files.id"))
    uri: Mapped[str] = mapped_column(sa.String(1024), unique=True)
    filename: Mapped[str] = mapped_column(sa.String(255))
    version: Mapped[int] = mapped_column(default=1)
    is_latest: Mapped[bool] = mapped_column(default=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    checksum: Mapped[str] = mapped_column(sa.String(80), index=True)
    # -- ObsCore -------------------------------------------------------------------------------
    obs_collection: Mapped[str] = mapped_column(sa.String(128))
    obs_id: Mapped[str] = mapped_column(sa.String(128))
    dataproduct_type: Mapped[str] = mapped_column(sa.String(16), default="image")
    calib_level: Mapped[int] = mapped_column(default=1)
    access_format: Mapped[str] = mapped_column(sa.String(64), default="application/fits")
    s_ra: Mapped[float | None] = mapped_column()
    s_dec: Mapped[float | None] = mapped_column()
    s_fov: Mapped[float | None] = mapped_column()
    s_region: Mapped[str | None] = mapped_column(sa.Text)
    s_resolution: Mapped[float | None] = mapped_column()
    t_min: Mapped[float | None] = mapped_column()
    t_max: Mapped[float | None] = mapped_column()
    t_exptime: Mapped[float | None] = mapped_column()
    em_min: Mapped[float | None] = mapped_column()
    em_max: Mapped[float | None] = mapped_column()
    em_res_power: Mapped[float | None] = mapped_column()
    o_ucd: Mapped[str | None] = mapped_column(sa.String(100))
    facility_name: Mapped[str] = mapped_column(sa.String(100))
    instrument_name: Mapped[str | None] = mapped_column(sa.String(100))
    target_name: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    filter_name: Mapped[str | None] = mapped_column(sa.String(32))
    observer: Mapped[str | None] = mapped_column(sa.String(100))
    date_obs: Mapped[dt.datetime] = mapped_column()
    obs_release_date: Mapped[dt.datetime] = mapped_column()
    # HEALPix (nested, order 10) of (s_ra, s_dec): the index that spares position searches a
    # scan of the table
    healpix: Mapped[int | None] = mapped_column(sa.BigInteger, index=True)
    header: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    warnings: Mapped[list] = mapped_column(sa.JSON, default=list)
    # -- quality control ----------------------------------------------------------------------
    qc_grade: Mapped[str | None] = mapped_column(sa.String(8), index=True)
    qc_auto_grade: Mapped[str | None] = mapped_column(sa.String(8))
    qc: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    qc_at: Mapped[dt.datetime | None] = mapped_column()
    qc_comment: Mapped[str] = mapped_column(sa.Text, default="")
    qc_reviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id",
                                                                     ondelete="SET NULL"))
    # -- previews (logical storage names) ------------------------------------------------------
    preview_uri: Mapped[str | None] = mapped_column(sa.String(1024))
    thumbnail_uri: Mapped[str | None] = mapped_column(sa.String(1024))
    ingested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ingested_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id",
                                                                     ondelete="SET NULL"))

    sources: Mapped[list[ArchiveFile]] = relationship(
        secondary="archive_provenance", primaryjoin="ArchiveFile.id == Provenance.product_id",
        secondaryjoin="ArchiveFile.id == Provenance.source_id", viewonly=True,
        order_by="ArchiveFile.id")
    products: Mapped[list[ArchiveFile]] = relationship(
        secondary="archive_provenance", primaryjoin="ArchiveFile.id == Provenance.source_id",
        secondaryjoin="ArchiveFile.id == Provenance.product_id", viewonly=True,
        order_by="ArchiveFile.id")

    @property
    def obs_publisher_did(self) -> str:
        return f"ivo://astrocloud/archive?{self.id}"

    @property
    def access_estsize(self) -> int:
        """kilobytes, as ObsCore has it"""
        return -(-self.size // 1024)


class Provenance(Base):
    """A derived product (calibrated frame, catalog, spectrum) made from an archived file."""

    __tablename__ = "archive_provenance"

    product_id: Mapped[int] = mapped_column(sa.ForeignKey("archive_files.id",
                                                          ondelete="CASCADE"), primary_key=True)
    source_id: Mapped[int] = mapped_column(sa.ForeignKey("archive_files.id",
                                                         ondelete="CASCADE"), primary_key=True,
                                           index=True)


@register_resource("ingest", scopes={"telescope": "telescope_id"})
class IngestRecord(Base):
    """One file that reached the archive, and what became of it. Quarantined bytes are kept
    (`held_path`) until an operator releases or deletes them: nothing is lost."""

    __tablename__ = "archive_ingests"
    __table_args__ = (sa.Index("ix_archive_ingests_status", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    telescope_id: Mapped[int] = mapped_column(sa.ForeignKey("telescopes.id"))
    source: Mapped[str] = mapped_column(sa.String(16))  # upload, drop, cli, deposit
    filename: Mapped[str] = mapped_column(sa.String(255))
    # where the bytes wait: a file of the incoming area, or the operator's own path (cli)
    path: Mapped[str] = mapped_column(sa.String(4096))
    owns_path: Mapped[bool] = mapped_column(default=True)  # ours to move and delete
    size: Mapped[int | None] = mapped_column(sa.BigInteger)
    checksum: Mapped[str | None] = mapped_column(sa.String(80))
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    code: Mapped[str] = mapped_column(sa.String(32), default="")
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    warnings: Mapped[list] = mapped_column(sa.JSON, default=list)
    file_id: Mapped[int | None] = mapped_column(sa.ForeignKey("archive_files.id",
                                                              ondelete="SET NULL"))
    derived_from: Mapped[list] = mapped_column(sa.JSON, default=list)
    held_path: Mapped[str | None] = mapped_column(sa.String(4096))
    submitted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id",
                                                                      ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()


RELEASE_STATES = ("draft", "published")


@register_resource("data_release")
class DataRelease(Base):
    """A named, versioned, citable selection of archived files and catalogs ("DR1", version
    1). Operators assemble a draft, then publish it; a published release never changes (a
    correction is a new version). Its files are everyone's from its release date on."""

    __tablename__ = "archive_releases"
    __table_args__ = (sa.UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[int] = mapped_column(default=1)
    title: Mapped[str] = mapped_column(sa.String(300))
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    release_date: Mapped[dt.datetime] = mapped_column()
    status: Mapped[str] = mapped_column(sa.String(16), default="draft")
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id",
                                                                    ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column()
    n_files: Mapped[int] = mapped_column(default=0)
    total_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)

    @property
    def identifier(self) -> str:
        return f"ivo://astrocloud/release/{self.name}/v{self.version}"


class ReleaseFile(Base):
    """An archived file in a data release."""

    __tablename__ = "archive_release_files"

    release_id: Mapped[int] = mapped_column(sa.ForeignKey("archive_releases.id",
                                                          ondelete="CASCADE"), primary_key=True)
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("archive_files.id", ondelete="RESTRICT"),
                                         primary_key=True, index=True)


class ReleaseCatalog(Base):
    """A catalog in a data release, by name (catalogs belong to the catalogs part)."""

    __tablename__ = "archive_release_catalogs"

    release_id: Mapped[int] = mapped_column(sa.ForeignKey("archive_releases.id",
                                                          ondelete="CASCADE"), primary_key=True)
    catalog: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
