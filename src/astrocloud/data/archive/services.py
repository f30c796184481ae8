"""The observation archive's service layer: ingest, search, download, quality control.

How a file is archived:

1. It arrives: an HTTP upload by a telescope's service account (`receive`), a file in the
   telescope's drop folder (`claim_dropped`, run by the workers), a path given to
   `astrocloud archive ingest` (`submit_paths`), or a derived product deposited with the raw
   files it came from (`deposit`). Each becomes an `IngestRecord` and an ingest job.
2. The job (`ingest_one`) checksums it, refuses a second copy of the same bytes, reads the FITS
   headers (the telescope's header mapping applied), links the file to its instrument and
   programme, stores it through the data-access layer at the site nearest the telescope, and
   writes its ObsCore record. Whatever is wrong with a file, it is quarantined with the
   reason, its bytes kept: a worker never crashes on bad input and nothing is lost.
3. A second job (`check_quality`) grades it and makes its previews.

Who sees what is the release rule, a filter rule of `data.file.read` compiled into every query:
before its release date a file is seen by its programme's PI, co-investigators and granted
groups and by archive staff; after it, by everyone.
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import sqlalchemy as sa

from astrocloud.core import errors
from astrocloud.core.db import utcnow
from astrocloud.core.errors import NotFound, ValidationFailed
from astrocloud.core.i18n import _
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, Page, operation, paginate
from astrocloud.data.archive.models import (
    QC_GRADES,
    ArchiveFile,
    DataRelease,
    IngestRecord,
    Provenance,
    ReleaseCatalog,
    ReleaseFile,
)
from astrocloud.observation import services as observation

log = logging.getLogger("astrocloud.archive")

HEALPIX_ORDER = 10
CHUNK = 1024 * 1024
BATCH = 50  # files per ingest job from the CLI and the drop folders
FILENAME = re.compile(r"^[^/\\\x00-\x1f]{1,255}$")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fz", ".fits.fz")


class ArchiveOps(OperationSet):
    FILE_READ = Query("data.file.read", resource="archive_file",
                      doc="Find, read and download archived files (the release rule).")
    INGEST = Action("data.archive.ingest", resource="telescope",
                    doc="Send a telescope's raw data to the archive.")
    DEPOSIT = Action("data.archive.deposit", resource="archive_file",
                     doc="Deposit a derived product made from an archived file.")
    INGEST_READ = Query("data.ingest.read", resource="ingest",
                        doc="Follow ingests and see the quarantine.")
    QC_OVERRIDE = Action("data.qc.override", resource="archive_file",
                         doc="Override a file's quality grade, with a comment.")
    QC_RERUN = Action("data.qc.rerun", resource="archive_file",
                      doc="Run a file's quality control again.")
    RELEASE_READ = Query("data.release.read", resource="data_release",
                         doc="See data releases and what they hold.")
    RELEASE_MANAGE = Action("data.release.manage", resource="data_release",
                            doc="Assemble and publish data releases.")


class FileTooLarge(errors.DomainError):
    status = 413
    code = "file-too-large"
    title = _("The file is too large")


# ---- small helpers ----------------------------------------------------------------------------


def add_months(when: dt.datetime, months: int) -> dt.datetime:
    """`when` plus a number of calendar months (the day clipped to the month's length)."""
    month = when.month - 1 + months
    year, month = when.year + month // 12, month % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def healpix_of(ra: float | None, dec: float | None) -> int | None:
    if ra is None or dec is None:
        return None
    import astropy.units as u
    from astropy_healpix import HEALPix

    return int(HEALPix(nside=2**HEALPIX_ORDER, order="nested").lonlat_to_healpix(
        ra * u.deg, dec * u.deg))


def healpix_ranges(ra: float, dec: float, radius: float) -> list[tuple[int, int]]:
    """Ranges of order-10 nested HEALPix pixels that cover a cone (a superset): searched at a
    coarser order for big cones, so the list stays short."""
    import astropy.units as u
    from astropy_healpix import HEALPix

    order = HEALPIX_ORDER
    while order > 0 and 58.6 / 2**order < radius / 2:
        order -= 1
    pixels = sorted(int(p) for p in HEALPix(nside=2**order, order="nested").cone_search_lonlat(
        ra * u.deg, dec * u.deg, radius=radius * u.deg))
    shift = 4 ** (HEALPIX_ORDER - order)
    ranges: list[tuple[int, int]] = []
    for p in pixels:
        lo, hi = p * shift, (p + 1) * shift - 1
        if ranges and ranges[-1][1] + 1 == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges


def angular_distance_sql(ra_col, dec_col, ra: float, dec: float):
    """SQL: the great-circle distance in degrees (haversine) from (ra, dec)."""
    f = sa.func
    d_dec = f.radians(dec_col - dec) / 2
    d_ra = f.radians(ra_col - ra) / 2
    hav = (f.sin(d_dec) * f.sin(d_dec)
           + math.cos(math.radians(dec)) * f.cos(f.radians(dec_col)) * f.sin(d_ra) * f.sin(d_ra))
    return f.degrees(2 * f.asin(f.sqrt(hav)))


def _check_filename(name: str) -> str:
    name = os.path.basename((name or "").strip())
    if not name or not FILENAME.match(name) or name in (".", ".."):
        raise ValidationFailed("“%(name)s” is not a usable file name.", field="filename",
                               name=name[:80])
    return name


def incoming_dir(settings) -> Path:
    path = settings.home / "archive" / "incoming"
    path.mkdir(parents=True, exist_ok=True)
    return path


def quarantine_dir(settings) -> Path:
    path = settings.home / "archive" / "quarantine"
    path.mkdir(parents=True, exist_ok=True)
    return path


def drop_dir(settings, telescope: str) -> Path:
    """A telescope's drop folder: its data system copies files in, the workers take them."""
    return settings.home / "archive" / "drop" / telescope


def _receive_bytes(settings, chunks: Iterable[bytes]) -> tuple[Path, int]:
    """Write an upload to the incoming area, bounded by the archive's size limit; a failed or
    refused upload leaves no file behind."""
    limit = settings.archive_max_file_bytes
    path = incoming_dir(settings) / f"{uuid.uuid4().hex}.part"
    size = 0
    try:
        with open(path, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise FileTooLarge("The file is larger than the %(n)s bytes the archive "
                                       "accepts.", n=limit)
                out.write(chunk)
        final = path.with_suffix("")
        path.rename(final)
        return final, size
    except BaseException:
        path.unlink(missing_ok=True)
        raise


# ---- arrival ----------------------------------------------------------------------------------


def _queue(ctx: Context, records: list[IngestRecord]) -> list[int]:
    """One ingest job per batch of records, queued with the caller's transaction."""
    job_ids = []
    for start in range(0, len(records), BATCH):
        batch = records[start:start + BATCH]
        job_id = ctx.enqueue("data.archive.ingest", {"ids": [r.id for r in batch]})
        for record in batch:
            record.job_id = job_id
        job_ids.append(job_id)
    return job_ids


@operation(ArchiveOps.INGEST, streaming=True)
def receive(ctx: Context, *, telescope: str, filename: str,
            chunks: Iterable[bytes]) -> IngestRecord:
    """Take an uploaded file of a telescope's raw data (its service account, an operator) and
    queue its ingest. Guarded by data.archive.ingest on the telescope."""
    scope = observation.telescope_named(ctx, telescope)
    ctx.authorize(scope)
    filename = _check_filename(filename)
    telescope_id = scope.id
    ctx.db.commit()  # nothing is held while the bytes arrive
    path, size = _receive_bytes(ctx.settings, chunks)
    try:
        ctx.begin_write()
        record = IngestRecord(telescope_id=telescope_id, source="upload", filename=filename,
                              path=str(path), size=size, submitted_by_id=ctx.subject.id)
        ctx.db.add(record)
        ctx.db.flush()
        _queue(ctx, [record])
        ctx.set_target(record)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return record


@operation(ArchiveOps.INGEST)
def submit_paths(ctx: Context, *, telescope: str, paths: list[str],
                 derived_from: list[int] | None = None) -> tuple[list[IngestRecord], list[int]]:
    """Queue files that are already on a disk the workers see (`astrocloud archive ingest`);
    the files are read where they are and never moved or deleted. Returns the records and the
    jobs to wait for."""
    scope = observation.telescope_named(ctx, telescope)
    ctx.authorize(scope)
    sources = _sources(ctx, derived_from or [])
    records = []
    for raw in paths:
        path = Path(raw).resolve()
        record = IngestRecord(telescope_id=scope.id, source="cli", filename=path.name[:255],
                              path=str(path), owns_path=False, submitted_by_id=ctx.subject.id,
                              derived_from=[s.id for s in sources])
        ctx.db.add(record)
        records.append(record)
    ctx.db.flush()
    return records, _queue(ctx, records)


def _sources(ctx: Context, ids: list[int]) -> list[ArchiveFile]:
    sources = []
    for ident in dict.fromkeys(ids):
        source = ctx.get_visible(ArchiveFile, ident, ArchiveOps.FILE_READ, what="archived file")
        ctx.authorize(source, ArchiveOps.DEPOSIT)
        sources.append(source)
    return sources


@operation(ArchiveOps.DEPOSIT, streaming=True)
def deposit(ctx: Context, *, derived_from: list[int], filename: str,
            chunks: Iterable[bytes]) -> IngestRecord:
    """Deposit a derived product (a calibrated frame, a source catalog, an extracted spectrum)
    made from archived files; it is archived with the telescope and programme of the first
    and linked to all of them. Guarded by data.archive.deposit on every source file."""
    if not derived_from:
        raise ValidationFailed("Say which archived files the product was made from.",
                               field="derived_from")
    filename = _check_filename(filename)
    sources = _sources(ctx, derived_from)
    telescope_id, source_ids = sources[0].telescope_id, [s.id for s in sources]
    ctx.db.commit()
    path, size = _receive_bytes(ctx.settings, chunks)
    try:
        ctx.begin_write()
        record = IngestRecord(telescope_id=telescope_id, source="deposit", filename=filename,
                              path=str(path), size=size, submitted_by_id=ctx.subject.id,
                              derived_from=source_ids)
        ctx.db.add(record)
        ctx.db.flush()
        _queue(ctx, [record])
        ctx.set_target(record)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return record


def claim_dropped(runtime) -> list[int]:
    """Take the settled files of every telescope's drop folder into the incoming area and queue
    their ingest (run by the workers: periodically, and on file-system events). A file still
    being written (changed within the settle time, or named *.part / *.tmp / .*) waits."""
    import time

    from astrocloud.core.security.engine import Subject

    settings = runtime.settings
    root = settings.home / "archive" / "drop"
    if not root.is_dir():
        return []
    now = time.time()
    job_ids: list[int] = []
    ctx = Context(database=runtime.database, settings=settings, runtime=runtime,
                  subject=Subject.system_subject(), via="worker")
    try:
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            taken: list[tuple[str, Path]] = []
            for entry in sorted(folder.iterdir()):
                name = entry.name
                if (not entry.is_file() or name.startswith(".")
                        or name.endswith((".part", ".tmp", ".filepart"))):
                    continue
                try:
                    if now - entry.stat().st_mtime < settings.archive_drop_settle_seconds:
                        continue
                    target = incoming_dir(settings) / uuid.uuid4().hex
                    os.replace(entry, target)  # atomic: a file is taken once
                except OSError:
                    continue  # taken by another worker, or vanished
                taken.append((name, target))
            if taken:
                job_ids += _record_dropped(ctx, folder.name, taken)
    finally:
        ctx.close()
    return job_ids


@operation(ArchiveOps.INGEST)
def _record_dropped(ctx: Context, telescope: str, taken: list[tuple[str, Path]]) -> list[int]:
    scope = observation.telescope_by_name(ctx, telescope)
    if scope is None:  # a folder for no telescope: put the files back where they were
        for name, path in taken:
            folder = ctx.settings.home / "archive" / "drop" / telescope / ".unknown-telescope"
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(path, folder / name)
        log.warning("drop folder %s names no telescope; %d files set aside", telescope,
                    len(taken))
        return []
    records = [IngestRecord(telescope_id=scope.id, source="drop", filename=name[:255],
                            path=str(path)) for name, path in taken]
    ctx.db.add_all(records)
    ctx.db.flush()
    return _queue(ctx, records)


# ---- the ingest job ---------------------------------------------------------------------------


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


class Quarantine(Exception):
    """Internal: why a file cannot be archived (a code and an English sentence)."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclasses.dataclass
class _Outcome:
    """What became of one file of a batch, decided before the batch's one write."""

    record: IngestRecord
    status: str = "archived"  # or "duplicate", "quarantined"
    code: str = ""
    reason: str = ""
    checksum: str | None = None
    size: int | None = None
    summary: object = None
    facts: dict | None = None
    staged: object = None
    duplicate_of: int | None = None
    twin: _Outcome | None = None  # an earlier file of the same batch with the same bytes
    file_id: int | None = None
    held: str | None = None

    def quarantine(self, code: str, reason: str) -> None:
        self.status, self.code, self.reason = "quarantined", code, reason


def ingest_batch(runtime, ids: list[int]) -> dict:
    """The ingest job: every record of the batch ends archived, a duplicate or quarantined.

    The slow part — reading, checksumming and storing the bytes — happens outside any write
    transaction; the whole batch is then recorded in one short one (a worker archives a few
    hundred small files a second this way). Should that write fail, the files are retried one
    by one so that one bad file cannot hold up the others."""
    from astrocloud.core.security.engine import Subject

    ctx = Context(database=runtime.database, settings=runtime.settings, runtime=runtime,
                  subject=Subject.system_subject(), via="worker")
    try:
        db = ctx.db
        ctx.database.begin_write(db)
        records = list(db.scalars(sa.select(IngestRecord).where(
            IngestRecord.id.in_(ids), IngestRecord.status.in_(("queued", "running")))
            .order_by(IngestRecord.id)))
        for record in records:
            record.status = "running"
        db.commit()
        outcomes = _prepare_batch(ctx, records)
        try:
            _record_batch(ctx, outcomes)
        except Exception:  # noqa: BLE001 - logged; each file is retried on its own
            db.rollback()  # the staged bytes of the batch go with it
            log.exception("recording a batch of %d files failed; retrying one by one",
                          len(outcomes))
            outcomes = []
            for record in records:
                ctx.database.begin_write(db)
                db.commit()
                [outcome] = _prepare_batch(ctx, [db.get(IngestRecord, record.id)])
                try:
                    _record_batch(ctx, [outcome])
                except Exception as exc:  # noqa: BLE001 - the file is held with the reason
                    db.rollback()
                    log.exception("ingest %s failed", record.id)
                    outcome.quarantine("error", f"The archive could not record this file "
                                                f"({type(exc).__name__}); an operator has "
                                                f"been told.")
                    outcome.staged = None
                    _record_batch(ctx, [outcome])
                outcomes.append(outcome)
        for outcome in outcomes:  # the incoming copies of what was taken are no longer needed
            if outcome.status in ("archived", "duplicate") and outcome.record.owns_path:
                Path(outcome.record.path).unlink(missing_ok=True)
    finally:
        ctx.close()
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


def _prepare_batch(ctx: Context, records: list[IngestRecord]) -> list[_Outcome]:
    """Examine and stage every file (no database writes); quarantined ones are set aside."""
    outcomes: list[_Outcome] = []
    seen: dict[str, _Outcome] = {}
    cache: dict = {}
    for record in records:
        outcome = _Outcome(record)
        outcomes.append(outcome)
        path = Path(record.path)
        try:
            summary, facts = _examine(ctx, record, path, cache)
            outcome.checksum, outcome.size = facts["checksum"], facts["size"]
            if facts.get("duplicate_of"):
                outcome.status, outcome.duplicate_of = "duplicate", facts["duplicate_of"]
            elif facts["checksum"] in seen:
                outcome.status, outcome.twin = "duplicate", seen[facts["checksum"]]
            else:
                outcome.summary, outcome.facts = summary, facts
                # stored under the archive's own SHA-256, so the copy can be compared with the
                # file that was examined
                outcome.staged = ctx.runtime.storage.stage(ctx.db, facts["uri"], _chunks(path),
                                                           origin=facts["origin"],
                                                           algorithm="sha256")
                if outcome.staged.checksum != facts["checksum"]:
                    raise Quarantine("changed", "The file changed while it was being "
                                                "archived.")
                seen[facts["checksum"]] = outcome
        except Quarantine as exc:
            outcome.quarantine(exc.code, exc.reason)
        except Exception as exc:  # never lose a file to an unexpected error: hold it, say why
            log.exception("ingest %s failed", record.id)
            outcome.quarantine("error", f"The archive could not process this file "
                                        f"({type(exc).__name__}); an operator has been told.")
        if outcome.status == "quarantined":
            if outcome.staged is not None:
                ctx.runtime.storage.discard(ctx.db, outcome.staged)
                outcome.staged = None
            outcome.checksum = outcome.checksum or ctx.examined[0]
            outcome.size = outcome.size or ctx.examined[1]
            outcome.held = _hold(ctx, record)
            log.warning("ingest %s quarantined (%s): %s", record.id, outcome.code,
                        outcome.reason)
    ctx.db.rollback()  # end the read transaction
    return outcomes


def _record_batch(ctx: Context, outcomes: list[_Outcome]) -> None:
    """One writing transaction for the whole batch: the archive rows, the ingest records, and
    one quality-control job for the files archived."""
    db = ctx.db
    ctx.database.begin_write(db)
    archived: list[int] = []
    for outcome in outcomes:
        record = db.get(IngestRecord, outcome.record.id)
        if outcome.status == "archived":
            outcome.file_id = _record_file(ctx, record, outcome)
            archived.append(outcome.file_id)
        elif outcome.status == "duplicate":
            outcome.file_id = outcome.duplicate_of or (outcome.twin.file_id if outcome.twin
                                                       else None)
            outcome.reason = "The same bytes are archived already."
        record.status, record.file_id = outcome.status, outcome.file_id
        record.code, record.reason = outcome.code, outcome.reason
        record.checksum = outcome.checksum or record.checksum
        record.size = outcome.size if outcome.size is not None else record.size
        record.held_path = outcome.held or record.held_path
        record.finished_at = utcnow()
    if archived:
        ctx.runtime.jobs.enqueue("data.archive.qc", {"file_ids": archived}, db=db)
    db.commit()


def _hold(ctx: Context, record: IngestRecord) -> str | None:
    """Keep a quarantined file's bytes in the quarantine folder (a copy when the file is the
    operator's own): nothing is lost, and an operator can look at it."""
    source = Path(record.path)
    if not source.is_file():
        return None
    target = quarantine_dir(ctx.settings) / f"{record.id}-{record.filename}"
    try:
        if record.owns_path:
            os.replace(source, target)
        else:
            shutil.copyfile(source, target)
        return str(target)
    except OSError:
        return str(source)


def _examine(ctx: Context, record: IngestRecord, path: Path, cache: dict):
    """Everything about a received file that decides where it goes, read without writing
    (`cache` keeps what files of one batch share: their telescope and its mapping)."""
    from astrocloud.core.storage.placement import Origin
    from astrocloud.data.archive import fits

    db = ctx.db
    if not path.is_file():
        raise Quarantine("missing", "The file is not there any more (moved or deleted before "
                                    "it could be archived).")
    ctx.examined = (None, None)
    sha, size = _hash_file(path)
    ctx.examined = (f"sha256:{sha}", size)
    if size > ctx.settings.archive_max_file_bytes:
        raise Quarantine("too-large", f"The file has {size} bytes; the archive takes at most "
                                      f"{ctx.settings.archive_max_file_bytes}.")
    if size == 0:
        raise Quarantine("empty", "The file is empty.")
    same = db.scalar(sa.select(ArchiveFile.id).where(ArchiveFile.checksum == f"sha256:{sha}")
                     .order_by(ArchiveFile.id).limit(1))
    if same is not None:
        return None, {"duplicate_of": same, "checksum": f"sha256:{sha}", "size": size}
    if record.telescope_id not in cache:
        scope = observation.telescope_by_id(ctx, record.telescope_id)
        cache[record.telescope_id] = (scope, fits.merge_mapping(fits.DEFAULT_MAPPING,
                                                                scope.header_mapping or {}))
    telescope, mapping = cache[record.telescope_id]
    try:
        summary = fits.read_fits(path, mapping)
    except fits.FitsRejected as exc:
        raise Quarantine(exc.code, exc.message()) from None
    warnings = list(summary.warnings)
    fields = summary.fields
    instrument = observation.instrument_of(ctx, telescope, fields.get("instrument_name"))
    if instrument is None:
        warnings.append(f"The instrument “{fields.get('instrument_name') or '—'}” is not one "
                        f"of {telescope.name}'s; the file is left unlinked to an instrument.")
    code = fields.get("programme")
    programme = observation.programme_by_code(ctx, code)
    if programme is not None and programme.telescope_id != telescope.id:
        raise Quarantine("foreign-programme", f"The header names programme {code}, which "
                                              f"belongs to another telescope.")
    sources = [db.get(ArchiveFile, i) for i in record.derived_from or []]
    if (programme is not None and record.source == "deposit" and record.submitted_by_id
            and record.submitted_by_id not in observation.programme_readers(db, programme.id)
            and not _is_staff(ctx, record.submitted_by_id)):
        raise Quarantine("programme-not-yours", f"The header names programme {code}, "
                                                    f"which the depositor is not a member of.")
    if programme is None and code:
        warnings.append(f"The header names programme {code}, which is unknown; the file is "
                        f"left unlinked under the telescope's proprietary period.")
    if programme is None and sources:
        programme = observation.programme_by_id(ctx, sources[0].programme_id)
    months = programme.proprietary_months if programme is not None and \
        programme.proprietary_months is not None else telescope.proprietary_months
    date_obs = summary.date_obs
    slug = re.sub(r"[^a-z0-9]+", "-", telescope.name.lower()).strip("-") or "telescope"
    latest = db.scalar(sa.select(ArchiveFile.version).where(
        ArchiveFile.telescope_id == telescope.id, ArchiveFile.filename == record.filename,
        ArchiveFile.is_latest.is_(True)))
    return summary, {
        "sha256": sha, "checksum": f"sha256:{sha}", "size": size, "slug": slug,
        "uri": _archive_uri(slug, date_obs, record.filename, (latest or 0) + 1),
        "telescope": telescope, "instrument": instrument, "programme": programme,
        "programme_code": str(code)[:64] if code else None, "collection": slug,
        "release": add_months(date_obs, months), "warnings": warnings,
        "sources": [s for s in sources if s is not None],
        "origin": Origin(telescope.latitude, telescope.longitude),
    }


def _is_staff(ctx: Context, user_id: int) -> bool:
    from astrocloud.core.identity.models import User
    from astrocloud.core.security.engine import load_subject

    user = ctx.db.get(User, user_id)
    return user is not None and bool({"admin", "operator"} & set(
        load_subject(ctx.db, user).roles))


def _archive_uri(slug: str, date_obs: dt.datetime, filename: str, version: int) -> str:
    tail = filename if version == 1 else f"v{version}/{filename}"
    return f"ac://archive/{slug}/{date_obs.strftime('%Y%m%d')}/{tail}"


def _record_file(ctx: Context, record: IngestRecord, outcome: _Outcome) -> int:
    """Record one staged file in the batch's write transaction. Its version is settled here,
    where no other writer can interfere (the bytes were staged under a provisional name)."""
    from astrocloud.core.storage.dal import parse_uri

    db = ctx.db
    summary, facts, staged = outcome.summary, outcome.facts, outcome.staged
    latest = db.scalar(sa.select(ArchiveFile).where(
        ArchiveFile.telescope_id == facts["telescope"].id,
        ArchiveFile.filename == record.filename, ArchiveFile.is_latest.is_(True)))
    version = latest.version + 1 if latest is not None else 1
    uri = _archive_uri(facts["slug"], summary.date_obs, record.filename, version)
    if uri != staged.name.uri:
        staged = dataclasses.replace(staged, name=parse_uri(uri))
    if latest is not None:
        latest.is_latest = False
        db.flush()
    stored = ctx.runtime.storage.record(db, staged, owner_id=record.submitted_by_id,
                                        content_type="application/fits")
    fields = summary.fields
    telescope, instrument, programme = facts["telescope"], facts["instrument"], \
        facts["programme"]
    calib = summary.calib_level
    if facts["sources"] and calib <= 1:
        calib = 2  # a derived product is at least calibrated
    archived = ArchiveFile(
        telescope_id=telescope.id, instrument_id=instrument.id if instrument else None,
        programme_id=programme.id if programme else None,
        programme_code=facts["programme_code"], stored_file_id=stored.id, uri=uri,
        filename=record.filename, version=version, size=facts["size"],
        checksum=f"sha256:{facts['sha256']}", obs_collection=facts["collection"],
        obs_id=str(fields.get("obs_id") or Path(record.filename).name.split(".")[0])[:128],
        dataproduct_type=summary.dataproduct_type, calib_level=calib,
        s_ra=summary.s_ra, s_dec=summary.s_dec, s_fov=summary.s_fov,
        s_region=summary.s_region, s_resolution=summary.s_resolution,
        t_min=summary.t_min, t_max=summary.t_max, t_exptime=summary.t_exptime,
        em_min=summary.em_min, em_max=summary.em_max, em_res_power=summary.em_res_power,
        o_ucd=summary.o_ucd, facility_name=str(fields.get("facility_name") or telescope.name)
        [:100], instrument_name=(instrument.name if instrument else
                                 str(fields.get("instrument_name") or "")[:100] or None),
        target_name=str(fields.get("target_name") or "")[:100] or None,
        filter_name=str(fields.get("filter") or "")[:32] or None,
        observer=str(fields.get("observer") or "")[:100] or None,
        date_obs=summary.date_obs, obs_release_date=facts["release"],
        healpix=healpix_of(summary.s_ra, summary.s_dec), header=summary.header,
        warnings=facts["warnings"], ingested_by_id=record.submitted_by_id,
    )
    db.add(archived)
    db.flush()
    for source in facts["sources"]:
        db.add(Provenance(product_id=archived.id, source_id=source.id))
    record.warnings = facts["warnings"]
    db.flush()
    return archived.id


# ---- quality control and previews -------------------------------------------------------------


def check_quality(runtime, file_id: int) -> dict:
    """The QC job: grade a file with its instrument's checks and make its previews."""
    from astrocloud.data.archive import fits, previews, qc

    database = runtime.database
    with database.session(write=False) as db:
        archived = db.get(ArchiveFile, file_id)
        if archived is None:
            return {"missing": file_id}
        from astrocloud.core.storage.models import StoredFile

        stored = db.get(StoredFile, archived.stored_file_id)
        lookup = Context(database=database, settings=runtime.settings, session=db)
        instrument = observation.instrument_by_id(lookup, archived.instrument_id)
        telescope = observation.telescope_by_id(lookup, archived.telescope_id)
        config = qc.QCConfig.from_dict((instrument.qc_config if instrument else None) or {})
        mapping = fits.merge_mapping(fits.DEFAULT_MAPPING, telescope.header_mapping or {})
        suffix = "".join(Path(archived.filename).suffixes[-2:]) or ".fits"
        with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as tmp:
            for chunk in runtime.storage.open(db, stored):
                tmp.write(chunk)
        uri_root = f"ac://previews/archive/{file_id}"
    try:
        summary = fits.read_fits(tmp.name, mapping)
        result = qc.run_qc(tmp.name, summary, config)
        images = previews.make_previews(tmp.name, summary)
    finally:
        os.unlink(tmp.name)
    with database.session() as db:
        uris = {}
        for kind, png in images.items():
            uri = f"{uri_root}/{kind}.png"
            runtime.storage.write(db, uri, [png], content_type="image/png")
            uris[kind] = uri
        archived = db.get(ArchiveFile, file_id)
        archived.qc_auto_grade = result.grade
        if archived.qc_reviewer_id is None:  # a reviewer's override stands
            archived.qc_grade = result.grade
        archived.qc = {"values": result.values, "checks": result.checks}
        archived.qc_at = utcnow()
        archived.preview_uri = uris.get("preview")
        archived.thumbnail_uri = uris.get("thumbnail")
    return {"grade": result.grade}


def checked_qc_config(config: dict) -> dict:
    """An instrument's QC limits, validated and completed with the defaults (for the
    Observation channel, which keeps them with the instrument)."""
    from astrocloud.data.archive.qc import QCConfig

    if not isinstance(config, dict):
        raise ValidationFailed("QC limits are an object of name: value.", field="qc_config")
    try:
        return QCConfig.from_dict(config).to_dict()
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValidationFailed("The QC limits are not valid: %(problem)s", field="qc_config",
                               problem=str(exc)) from None


@operation(ArchiveOps.QC_OVERRIDE)
def override_qc(ctx: Context, file_id: int, *, grade: str, comment: str) -> ArchiveFile:
    """A QC reviewer's grade with a comment; it stands over the automatic one."""
    archived = ctx.get_visible(ArchiveFile, file_id, ArchiveOps.FILE_READ, what="archived file")
    ctx.authorize(archived)
    if grade not in QC_GRADES:
        raise ValidationFailed("A grade is one of %(grades)s.", field="grade",
                               grades=", ".join(QC_GRADES))
    comment = (comment or "").strip()
    if not comment:
        raise ValidationFailed("Say why the grade is overridden.", field="comment")
    ctx.note(f"QC {archived.qc_grade} → {grade}")
    archived.qc_grade, archived.qc_comment = grade, comment[:2000]
    archived.qc_reviewer_id = ctx.subject.id
    return archived


@operation(ArchiveOps.QC_RERUN)
def rerun_qc(ctx: Context, file_id: int) -> int:
    """Queue a file's quality control again (after its instrument's checks changed)."""
    archived = ctx.get_visible(ArchiveFile, file_id, ArchiveOps.FILE_READ, what="archived file")
    ctx.authorize(archived)
    return ctx.enqueue("data.archive.qc", {"file_id": archived.id})


# ---- finding and reading ----------------------------------------------------------------------


SORTS = {"date": ArchiveFile.date_obs.desc(), "-date": ArchiveFile.date_obs.asc(),
         "target": ArchiveFile.target_name.asc(), "id": ArchiveFile.id.asc()}


@operation(ArchiveOps.FILE_READ)
def search(ctx: Context, *, ra: float | None = None, dec: float | None = None,
           radius: float | None = None, target: str | None = None,
           telescope: str | None = None, instrument: str | None = None,
           collection: str | None = None, programme: str | None = None,
           dataproduct_type: str | None = None, calib_level: int | None = None,
           qc_grade: str | None = None, wavelength: float | None = None,
           start: dt.datetime | None = None, end: dt.datetime | None = None,
           mine: bool = False, all_versions: bool = False, sort: str = "date",
           page: int = 1, per_page: int = 50) -> Page:
    """Archived files the caller may see (the release rule), by position (a cone: ra, dec,
    radius in degrees), target, telescope, instrument, collection, programme, product type,
    calibration level, QC grade, a wavelength in metres the band must cover, and an
    observing-time interval. `mine`: the files of the caller's programmes."""
    ctx.authorize_listing()
    stmt = sa.select(ArchiveFile)
    if (ra is None) != (dec is None) or (radius is not None and ra is None):
        raise ValidationFailed("A position search needs ra and dec (and a radius).",
                               field="ra")
    if ra is not None:
        if not (0 <= ra < 360 and -90 <= dec <= 90):
            raise ValidationFailed("ra must be in [0, 360) and dec in [-90, 90] degrees.",
                                   field="ra")
        radius = 0.1 if radius is None else radius
        if not 0 < radius <= 90:
            raise ValidationFailed("The radius must be above 0 and at most 90 degrees.",
                                   field="radius")
        ranges = healpix_ranges(ra, dec, radius)
        stmt = stmt.where(sa.or_(*[ArchiveFile.healpix.between(lo, hi) for lo, hi in ranges]),
                          angular_distance_sql(ArchiveFile.s_ra, ArchiveFile.s_dec, ra, dec)
                          <= radius)
    if target:
        stmt = stmt.where(sa.func.lower(ArchiveFile.target_name).contains(
            target.strip().lower(), autoescape=True))
    if telescope:
        scope = observation.telescope_by_name(ctx, telescope)
        stmt = stmt.where(ArchiveFile.telescope_id == (scope.id if scope else -1))
    if instrument:
        stmt = stmt.where(ArchiveFile.instrument_name == instrument)
    if collection:
        stmt = stmt.where(ArchiveFile.obs_collection == collection)
    if programme:
        stmt = stmt.where(ArchiveFile.programme_code == programme)
    if dataproduct_type:
        stmt = stmt.where(ArchiveFile.dataproduct_type == dataproduct_type)
    if calib_level is not None:
        stmt = stmt.where(ArchiveFile.calib_level == calib_level)
    if qc_grade:
        if qc_grade not in (*QC_GRADES, "none"):
            raise ValidationFailed("A QC grade is one of pass, warn, fail or none.",
                                   field="qc_grade")
        stmt = stmt.where(ArchiveFile.qc_grade.is_(None) if qc_grade == "none"
                          else ArchiveFile.qc_grade == qc_grade)
    if wavelength is not None:
        stmt = stmt.where(ArchiveFile.em_min <= wavelength, ArchiveFile.em_max >= wavelength)
    if start is not None:
        stmt = stmt.where(ArchiveFile.date_obs >= start)
    if end is not None:
        stmt = stmt.where(ArchiveFile.date_obs <= end)
    if start is not None and end is not None and end < start:
        raise ValidationFailed("The end of the time interval is before its start.",
                               field="end")
    if mine:
        if ctx.subject.id is None:
            raise errors.NotAuthenticated("Please sign in to see your data.")
        stmt = stmt.where(ArchiveFile.programme_id.in_(
            observation.programmes_of_member_sql(ctx.subject.id)))
    if not all_versions:
        stmt = stmt.where(ArchiveFile.is_latest.is_(True))
    if sort not in SORTS:
        raise ValidationFailed("Sort by one of %(keys)s.", field="sort", keys=", ".join(SORTS))
    stmt = ctx.visible(stmt.order_by(SORTS[sort], ArchiveFile.id.desc()))
    return paginate(ctx.db, stmt, page, per_page)


@operation(ArchiveOps.FILE_READ)
def get_file(ctx: Context, file_id: int) -> ArchiveFile:
    """One archived file (NotFound when it does not exist or may not be seen yet)."""
    return ctx.get_visible(ArchiveFile, file_id, what="archived file")


@operation(ArchiveOps.FILE_READ)
def open_file(ctx: Context, file_id: int, *, start: int = 0,
              end: int | None = None) -> tuple[ArchiveFile, Iterator[bytes]]:
    """An archived file and its bytes (a byte range), streamed from the nearest good replica."""
    from astrocloud.core.storage.models import StoredFile

    archived = ctx.get_visible(ArchiveFile, file_id, what="archived file")
    stored = ctx.db.get(StoredFile, archived.stored_file_id)
    return archived, ctx.runtime.storage.open(ctx.db, stored, start=start, end=end)


@operation(ArchiveOps.FILE_READ)
def open_preview(ctx: Context, file_id: int, kind: str) -> Iterator[bytes]:
    """A file's preview or thumbnail PNG (as private as the file itself)."""
    archived = ctx.get_visible(ArchiveFile, file_id, what="archived file")
    uri = {"preview": archived.preview_uri, "thumbnail": archived.thumbnail_uri}.get(kind)
    if uri is None:
        raise NotFound("There is no %(kind)s of this file (yet).", kind=kind)
    storage = ctx.runtime.storage
    return storage.open(ctx.db, storage.stat(ctx.db, uri))


DID_PREFIX = "ivo://astrocloud/archive?"


@operation(ArchiveOps.FILE_READ)
def by_publisher_did(ctx: Context, dids: list[str]) -> dict[str, ArchiveFile | None]:
    """The files behind publisher identifiers (ivo://astrocloud/archive?<n>): None for an
    identifier that is not ours, unknown, or a file the caller may not see yet."""
    found: dict[str, ArchiveFile | None] = {}
    for did in dids:
        number = did[len(DID_PREFIX):] if did.startswith(DID_PREFIX) else ""
        found[did] = None
        if number.isdigit() and len(number) < 10:
            with contextlib.suppress(NotFound):
                found[did] = ctx.get_visible(ArchiveFile, int(number), what="archived file")
    return found


@operation(ArchiveOps.FILE_READ)
def lineage(ctx: Context, file_id: int) -> dict:
    """What a file came from and what was made from it — only what the caller may see."""
    archived = ctx.get_visible(ArchiveFile, file_id, what="archived file")
    visible = ctx.visible(sa.select(ArchiveFile.id))
    allowed = set(ctx.db.scalars(visible.where(ArchiveFile.id.in_(
        [f.id for f in archived.sources + archived.products]))))
    return {"sources": [f for f in archived.sources if f.id in allowed],
            "products": [f for f in archived.products if f.id in allowed]}


@operation(ArchiveOps.INGEST_READ)
def list_ingests(ctx: Context, *, status: str | None = None, ids: list[int] | None = None,
                 page: int = 1, per_page: int = 50) -> Page:
    """Ingest records the caller may see (operators: all; others: what they sent), newest
    first; `status="quarantined"` is the quarantine."""
    ctx.authorize_listing()
    stmt = sa.select(IngestRecord).order_by(IngestRecord.id.desc())
    if status:
        stmt = stmt.where(IngestRecord.status == status)
    if ids is not None:
        stmt = stmt.where(IngestRecord.id.in_(ids))
    return paginate(ctx.db, ctx.visible(stmt), page, per_page)


def ingest_progress(database, ids: list[int]) -> list[IngestRecord]:
    """The records `ids` as they stand (for the CLI watching the ingests it started; the
    system's own view, no operation)."""
    with database.session(write=False) as db:
        records = list(db.scalars(sa.select(IngestRecord).where(IngestRecord.id.in_(ids))
                                  .order_by(IngestRecord.id)))
        db.expunge_all()
    return records


# ---- the name resolver ------------------------------------------------------------------------

# The machines are offline, so names resolve from a local table: the demo's targets and a few
# well-known objects (ICRS, degrees). Coordinates typed in are parsed by astropy.
KNOWN_OBJECTS: dict[str, tuple[float, float]] = {
    "m 31": (10.6847, 41.2690), "andromeda galaxy": (10.6847, 41.2690),
    "m 42": (83.8221, -5.3911), "orion nebula": (83.8221, -5.3911),
    "m 51": (202.4696, 47.1952), "whirlpool galaxy": (202.4696, 47.1952),
    "m 1": (83.6331, 22.0145), "crab nebula": (83.6331, 22.0145),
    "m 13": (250.4235, 36.4613), "m 45": (56.75, 24.1167), "pleiades": (56.75, 24.1167),
    "m 57": (283.3963, 33.0292), "m 81": (148.8882, 69.0653), "m 101": (210.8024, 54.3488),
    "ngc 7000": (314.75, 44.3333), "vega": (279.2347, 38.7837), "sirius": (101.2872, -16.7161),
}


def resolve(text: str) -> tuple[float, float]:
    """(ra, dec) in degrees for an object name of the local table, or coordinates as typed
    ("10.68 41.27", "00:42:44.3 +41:16:09", "00h42m44s +41d16m09s")."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    value = " ".join((text or "").split())
    if not value or len(value) > 100:
        raise ValidationFailed("Type an object name or coordinates.", field="position")
    key = re.sub(r"^(m|ngc|ic)\s*(\d+)$", r"\1 \2", value.lower())
    if key in KNOWN_OBJECTS:
        return KNOWN_OBJECTS[key]
    try:
        sexagesimal = any(c in value for c in ":hms")
        coord = SkyCoord(value, unit=(u.hourangle if sexagesimal else u.deg, u.deg),
                         frame="icrs")
        return float(coord.ra.deg), float(coord.dec.deg)
    except (ValueError, TypeError):
        raise ValidationFailed("“%(text)s” is neither a known object nor coordinates.",
                               field="position", text=value) from None



# ---- data releases ----------------------------------------------------------------------------

RELEASE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")


class ReleaseFrozen(errors.Conflict):
    code = "release-published"
    title = _("The release is published")


@operation(ArchiveOps.RELEASE_MANAGE)
def create_release(ctx: Context, *, name: str, title: str, release_date: dt.datetime,
                   notes: str = "") -> DataRelease:
    """A new draft data release (its next version when the name exists), for operators."""
    ctx.authorize()
    name, title = (name or "").strip(), (title or "").strip()
    if not RELEASE_NAME.match(name):
        raise ValidationFailed("A release name starts with a letter: letters, digits, . _ -, "
                               "up to 64 characters (e.g. DR1).", field="name")
    if not title or len(title) > 300:
        raise ValidationFailed("A release needs a title (up to 300 characters).",
                               field="title")
    if release_date.tzinfo is None:
        release_date = release_date.replace(tzinfo=dt.UTC)
    last = ctx.db.scalar(sa.select(sa.func.max(DataRelease.version)).where(
        DataRelease.name == name))
    release = DataRelease(name=name, version=(last or 0) + 1, title=title,
                          notes=(notes or "")[:20000], release_date=release_date,
                          created_by_id=ctx.subject.id)
    ctx.db.add(release)
    ctx.db.flush()
    ctx.set_target(release)
    return release


def _draft(ctx: Context, release_id: int) -> DataRelease:
    release = ctx.get_visible(DataRelease, release_id, ArchiveOps.RELEASE_READ,
                              what="data release")
    ctx.authorize(release, ArchiveOps.RELEASE_MANAGE)
    if release.status == "published":
        raise ReleaseFrozen("%(name)s v%(version)s is published: its contents never change. "
                            "Make a new version instead.", name=release.name,
                            version=release.version)
    return release


@operation(ArchiveOps.RELEASE_MANAGE)
def add_to_release(ctx: Context, release_id: int, *, file_ids: list[int] | None = None,
                   catalogs: list[str] | None = None) -> DataRelease:
    """Add archived files and catalogs to a draft release."""
    release = _draft(ctx, release_id)
    present = set(ctx.db.scalars(sa.select(ReleaseFile.file_id).where(
        ReleaseFile.release_id == release.id)))
    for ident in dict.fromkeys(file_ids or []):
        archived = ctx.db.get(ArchiveFile, ident)
        if archived is None:
            raise ValidationFailed("There is no archived file %(id)s.", field="file_ids",
                                   id=ident)
        if ident not in present:
            ctx.db.add(ReleaseFile(release_id=release.id, file_id=ident))
            release.n_files += 1
            release.total_bytes += archived.size
            present.add(ident)
    named = set(ctx.db.scalars(sa.select(ReleaseCatalog.catalog).where(
        ReleaseCatalog.release_id == release.id)))
    for catalog in dict.fromkeys(catalogs or []):
        if not RELEASE_NAME.match(catalog or ""):
            raise ValidationFailed("“%(name)s” is not a catalog name.", field="catalogs",
                                   name=str(catalog)[:64])
        if catalog not in named:
            ctx.db.add(ReleaseCatalog(release_id=release.id, catalog=catalog))
    ctx.db.flush()
    return release


@operation(ArchiveOps.RELEASE_MANAGE)
def publish_release(ctx: Context, release_id: int) -> DataRelease:
    """Freeze a draft release: from now on its contents never change, and its files are
    everyone's from its release date on."""
    release = _draft(ctx, release_id)
    if not release.n_files and not ctx.db.scalar(sa.select(sa.func.count()).select_from(
            ReleaseCatalog).where(ReleaseCatalog.release_id == release.id)):
        raise ValidationFailed("An empty release cannot be published.", field="release")
    release.status, release.published_at = "published", utcnow()
    ctx.note(f"published {release.name} v{release.version}")
    return release


@operation(ArchiveOps.RELEASE_READ)
def list_releases(ctx: Context) -> list[DataRelease]:
    """The releases the caller may see (everyone: the published ones), newest first."""
    ctx.authorize_listing()
    return list(ctx.db.scalars(ctx.visible(sa.select(DataRelease).order_by(
        DataRelease.release_date.desc(), DataRelease.name, DataRelease.version.desc()))))


@operation(ArchiveOps.RELEASE_READ)
def get_release(ctx: Context, name: str, version: int | None = None) -> DataRelease:
    """A release by name (its latest visible version unless one is given)."""
    stmt = sa.select(DataRelease).where(DataRelease.name == name)
    if version is not None:
        stmt = stmt.where(DataRelease.version == version)
    release = ctx.db.scalar(ctx.visible(stmt.order_by(DataRelease.version.desc()).limit(1)))
    if release is None:
        raise NotFound("There is no data release %(name)s, or you may not see it.", name=name)
    ctx.set_target(release)
    return release


@operation(ArchiveOps.FILE_READ)
def release_contents(ctx: Context, release: DataRelease, *, page: int = 1,
                     per_page: int = 50) -> tuple[Page, list[str]]:
    """A page of a release's files (those the caller may see) and its catalogs."""
    stmt = ctx.visible(sa.select(ArchiveFile).join(
        ReleaseFile, ReleaseFile.file_id == ArchiveFile.id).where(
        ReleaseFile.release_id == release.id).order_by(ArchiveFile.id))
    catalogs = list(ctx.db.scalars(sa.select(ReleaseCatalog.catalog).where(
        ReleaseCatalog.release_id == release.id).order_by(ReleaseCatalog.catalog)))
    return paginate(ctx.db, stmt, page, per_page), catalogs


def citation(release: DataRelease, site_name: str = "AstroCloud") -> str:
    """How to cite a release."""
    return (f"{site_name} {release.name} (version {release.version}): {release.title}. "
            f"Released {release.release_date.strftime('%Y-%m-%d')}. {release.identifier}")


# ---- image and spectrum discovery (SIA 2.0) ---------------------------------------------------


@dataclasses.dataclass
class Discovery:
    """SIA 2.0 constraints: each list holds alternatives (OR); different ones combine (AND).
    Intervals are (low, high) with None for an open end; positions are ("circle", ra, dec, r),
    ("range", ra1, ra2, dec1, dec2) or ("polygon", [(ra, dec), ...])."""

    pos: list[tuple] = dataclasses.field(default_factory=list)
    band: list[tuple] = dataclasses.field(default_factory=list)  # metres
    time: list[tuple] = dataclasses.field(default_factory=list)  # MJD
    fov: list[tuple] = dataclasses.field(default_factory=list)  # degrees
    spatres: list[tuple] = dataclasses.field(default_factory=list)  # arcsec
    exptime: list[tuple] = dataclasses.field(default_factory=list)  # seconds
    pol: list[str] = dataclasses.field(default_factory=list)
    ids: list[str] = dataclasses.field(default_factory=list)
    collection: list[str] = dataclasses.field(default_factory=list)
    facility: list[str] = dataclasses.field(default_factory=list)
    instrument: list[str] = dataclasses.field(default_factory=list)
    dptype: list[str] = dataclasses.field(default_factory=list)
    calib: list[int] = dataclasses.field(default_factory=list)
    target: list[str] = dataclasses.field(default_factory=list)
    format: list[str] = dataclasses.field(default_factory=list)


def _overlaps(low_col, high_col, interval):
    low, high = interval
    parts = []
    if high is not None:
        parts.append(low_col <= high)
    if low is not None:
        parts.append(high_col >= low)
    return sa.and_(sa.true(), *parts)


def _within(col, interval):
    return _overlaps(col, col, interval)


def _polygon_cover(points: list[tuple[float, float]]) -> tuple[float, float, float]:
    """A circle (ra, dec, radius) that holds a spherical polygon: around the mean of its
    vertices' unit vectors."""
    import numpy as np

    ra, dec = np.radians([p[0] for p in points]), np.radians([p[1] for p in points])
    xyz = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)]).T
    centre = xyz.mean(axis=0)
    centre /= np.linalg.norm(centre)
    radius = float(np.degrees(np.arccos(np.clip(xyz @ centre, -1, 1)).max()))
    c_ra = float(np.degrees(np.arctan2(centre[1], centre[0]))) % 360
    c_dec = float(np.degrees(np.arcsin(centre[2])))
    return c_ra, c_dec, radius


def _inside_polygon(ra: float, dec: float, points: list[tuple[float, float]]) -> bool:
    """Whether a position lies in a spherical polygon (smaller than a hemisphere): the
    polygon and the point projected on the plane tangent at the polygon's centre, where great
    circles are straight lines, then the even-odd rule."""
    c_ra, c_dec, _ = _polygon_cover(points)

    def project(r: float, d: float) -> tuple[float, float] | None:
        r, d, r0, d0 = map(math.radians, (r, d, c_ra, c_dec))
        cos_c = math.sin(d0) * math.sin(d) + math.cos(d0) * math.cos(d) * math.cos(r - r0)
        if cos_c <= 0:
            return None
        return (math.cos(d) * math.sin(r - r0) / cos_c,
                (math.cos(d0) * math.sin(d) - math.sin(d0) * math.cos(d) * math.cos(r - r0))
                / cos_c)

    point = project(ra, dec)
    polygon = [project(r, d) for r, d in points]
    if point is None or any(p is None for p in polygon):
        return False
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def _position(shape: tuple):
    """SQL for one POS constraint on the footprint's centre (a footprint whose centre lies
    within its own half-size of the region counts: an overlap, as SIA asks, not containment),
    and for a polygon the exact test to run on each candidate."""
    kind = shape[0]
    half = sa.func.coalesce(ArchiveFile.s_fov, 0.0) / 2
    if kind == "circle":
        _, ra, dec, radius = shape
        reach = radius + 5.0  # footprints are a few degrees at most: the index's margin
        ranges = healpix_ranges(ra, dec, min(reach, 180.0))
        return sa.and_(sa.or_(*[ArchiveFile.healpix.between(lo, hi) for lo, hi in ranges]),
                       angular_distance_sql(ArchiveFile.s_ra, ArchiveFile.s_dec, ra, dec)
                       <= radius + half), None
    if kind == "range":
        _, ra1, ra2, dec1, dec2 = shape
        dec_ok = sa.and_(ArchiveFile.s_dec + half >= dec1, ArchiveFile.s_dec - half <= dec2)
        if ra1 <= ra2:
            ra_ok = ArchiveFile.s_ra.between(ra1, ra2)
        else:  # across RA = 0
            ra_ok = sa.or_(ArchiveFile.s_ra >= ra1, ArchiveFile.s_ra <= ra2)
        return sa.and_(ra_ok, dec_ok), None
    points = shape[1]
    ra, dec, radius = _polygon_cover(points)
    condition, _ = _position(("circle", ra, dec, radius))
    return condition, lambda f: _inside_polygon(f.s_ra, f.s_dec, points)


@operation(ArchiveOps.FILE_READ)
def discover(ctx: Context, query: Discovery, maxrec: int) -> tuple[list[ArchiveFile], bool]:
    """Archived files matching SIA 2.0 constraints that the caller may see (the release rule),
    at most `maxrec`; and whether more matched (overflow)."""
    stmt = sa.select(ArchiveFile).where(ArchiveFile.is_latest.is_(True))
    exact = []
    if query.pos:
        conditions = []
        for shape in query.pos:
            condition, check = _position(shape)
            conditions.append(condition)
            exact.append(check)
        stmt = stmt.where(sa.or_(*conditions))
    for values, low, high in ((query.band, ArchiveFile.em_min, ArchiveFile.em_max),
                              (query.time, ArchiveFile.t_min, ArchiveFile.t_max)):
        if values:
            stmt = stmt.where(sa.or_(*[_overlaps(low, high, v) for v in values]))
    for values, column in ((query.fov, ArchiveFile.s_fov),
                           (query.spatres, ArchiveFile.s_resolution),
                           (query.exptime, ArchiveFile.t_exptime)):
        if values:
            stmt = stmt.where(sa.or_(*[_within(column, v) for v in values]))
    if query.pol:  # no archived file records polarization states
        stmt = stmt.where(sa.false())
    if query.ids:
        numbers = [int(i.rsplit("?", 1)[1]) for i in query.ids
                   if i.startswith("ivo://astrocloud/archive?") and i.rsplit("?", 1)[1].isdigit()
                   and len(i.rsplit("?", 1)[1]) < 10]
        stmt = stmt.where(ArchiveFile.id.in_(numbers))
    for values, column in ((query.collection, ArchiveFile.obs_collection),
                           (query.facility, ArchiveFile.facility_name),
                           (query.instrument, ArchiveFile.instrument_name),
                           (query.dptype, ArchiveFile.dataproduct_type),
                           (query.calib, ArchiveFile.calib_level),
                           (query.target, ArchiveFile.target_name),
                           (query.format, ArchiveFile.access_format)):
        if values:
            stmt = stmt.where(column.in_(values))
    stmt = ctx.visible(stmt.order_by(ArchiveFile.id))
    if not any(exact):
        found = list(ctx.db.scalars(stmt.limit(maxrec + 1)))
        return found[:maxrec], len(found) > maxrec
    found = []
    for archived in ctx.db.scalars(stmt):  # a polygon's exact test runs on the candidates
        checks = [c for c in exact if c is not None]
        if any(c(archived) for c in checks) or (None in exact):
            found.append(archived)
            if len(found) > maxrec:
                break
    return found[:maxrec], len(found) > maxrec


# ---- ObsCore for TAP --------------------------------------------------------------------------


def obscore_source(ctx: Context, base_url: str) -> sa.Select:
    """ivoa.obscore as SQL: one row per latest version of every archived file the caller may
    see (the release rule of data.file.read, compiled into the WHERE clause), its columns named
    as ObsCore 1.1 names them, plus `healpix` (nested, order HEALPIX_ORDER) for cone
    pre-filters. TAP runs ADQL over it; the caller's rights are already inside."""
    f = ArchiveFile
    ident = sa.cast(f.id, sa.String)
    null_long = sa.cast(sa.null(), sa.BigInteger)
    columns = [
        f.dataproduct_type.label("dataproduct_type"),
        f.calib_level.label("calib_level"),
        f.obs_collection.label("obs_collection"),
        f.obs_id.label("obs_id"),
        (sa.literal("ivo://astrocloud/archive?") + ident).label("obs_publisher_did"),
        (sa.literal(f"{base_url.rstrip('/')}/api/v1/data/observations/") + ident
         + sa.literal("/file")).label("access_url"),
        f.access_format.label("access_format"),
        ((f.size + 1023) / 1024).label("access_estsize"),
        f.target_name.label("target_name"),
        f.s_ra.label("s_ra"),
        f.s_dec.label("s_dec"),
        f.s_fov.label("s_fov"),
        f.s_region.label("s_region"),
        f.s_resolution.label("s_resolution"),
        null_long.label("s_xel1"),
        null_long.label("s_xel2"),
        f.t_min.label("t_min"),
        f.t_max.label("t_max"),
        f.t_exptime.label("t_exptime"),
        sa.cast(sa.null(), sa.Float).label("t_resolution"),
        null_long.label("t_xel"),
        f.em_min.label("em_min"),
        f.em_max.label("em_max"),
        f.em_res_power.label("em_res_power"),
        null_long.label("em_xel"),
        f.o_ucd.label("o_ucd"),
        sa.cast(sa.null(), sa.String).label("pol_states"),
        null_long.label("pol_xel"),
        f.facility_name.label("facility_name"),
        f.instrument_name.label("instrument_name"),
        f.obs_release_date.label("obs_release_date"),
        f.programme_code.label("proposal_id"),
        f.qc_grade.label("qc_grade"),
        f.healpix.label("healpix"),
    ]
    stmt = sa.select(*columns).where(f.is_latest.is_(True))
    return ctx.visible(stmt, ArchiveOps.FILE_READ)
