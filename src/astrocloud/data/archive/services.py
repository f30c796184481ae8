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
from astrocloud.data.archive.models import QC_GRADES, ArchiveFile, IngestRecord, Provenance
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


def ingest_batch(runtime, ids: list[int]) -> dict:
    """The ingest job: every record of the batch ends archived, a duplicate or quarantined."""
    from astrocloud.core.security.engine import Subject

    outcome: dict[str, int] = {}
    ctx = Context(database=runtime.database, settings=runtime.settings, runtime=runtime,
                  subject=Subject.system_subject(), via="worker")
    try:
        for ident in ids:
            status = ingest_one(ctx, ident)
            outcome[status] = outcome.get(status, 0) + 1
    finally:
        ctx.close()
    return outcome


def ingest_one(ctx: Context, ident: int) -> str:
    """Archive one received file (see the module docstring); returns its final status."""
    db = ctx.db
    ctx.database.begin_write(db)
    record = db.get(IngestRecord, ident)
    if record is None or record.status not in ("queued", "running"):
        db.commit()
        return record.status if record is not None else "missing"
    record.status = "running"
    db.commit()
    path, owns_path = Path(record.path), record.owns_path
    ctx.examined = (None, None)
    staged = None
    try:
        summary, facts = _examine(ctx, record, path)
        if facts.get("duplicate_of"):
            _finish(ctx, ident, "duplicate", file_id=facts["duplicate_of"],
                    reason="The same bytes are archived already.")
            return "duplicate"
        staged = ctx.runtime.storage.stage(db, facts["uri"], _chunks(path),
                                           origin=facts["origin"])
        if staged.sha256 != facts["sha256"]:
            raise Quarantine("changed", "The file changed while it was being archived.")
        ctx.database.begin_write(db)
        file_id = _record_file(ctx, ident, summary, facts, staged)
        db.commit()
    except Quarantine as exc:
        db.rollback()
        if staged is not None:
            ctx.runtime.storage.discard(db, staged)
        _quarantine(ctx, ident, exc.code, exc.reason)
        return "quarantined"
    except Exception as exc:  # never lose a file to an unexpected error: hold it, say why
        db.rollback()
        if staged is not None:
            ctx.runtime.storage.discard(db, staged)
        log.exception("ingest %s failed", ident)
        _quarantine(ctx, ident, "error", f"The archive could not process this file "
                                         f"({type(exc).__name__}); an operator has been told.")
        return "quarantined"
    _finish(ctx, ident, "archived", file_id=file_id)
    if owns_path:
        path.unlink(missing_ok=True)
    ctx.runtime.jobs.enqueue("data.archive.qc", {"file_id": file_id})
    return "archived"


def _examine(ctx: Context, record: IngestRecord, path: Path):
    """Everything about a received file that decides where it goes, read without writing."""
    from astrocloud.core.storage.placement import Origin
    from astrocloud.data.archive import fits

    db = ctx.db
    if not path.is_file():
        raise Quarantine("missing", "The file is not there any more (moved or deleted before "
                                    "it could be archived).")
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
        return None, {"duplicate_of": same}
    telescope = observation.telescope_by_id(ctx, record.telescope_id)
    mapping = fits.merge_mapping(fits.DEFAULT_MAPPING, telescope.header_mapping or {})
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
    night = date_obs.strftime("%Y%m%d")
    latest = db.scalar(sa.select(ArchiveFile).where(
        ArchiveFile.telescope_id == telescope.id, ArchiveFile.filename == record.filename,
        ArchiveFile.is_latest.is_(True)))
    version = latest.version + 1 if latest is not None else 1
    slug = re.sub(r"[^a-z0-9]+", "-", telescope.name.lower()).strip("-") or "telescope"
    tail = record.filename if version == 1 else f"v{version}/{record.filename}"
    uri = f"ac://archive/{slug}/{night}/{tail}"
    return summary, {
        "sha256": sha, "size": size, "uri": uri, "version": version,
        "latest_id": latest.id if latest is not None else None,
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


def _record_file(ctx: Context, ident: int, summary, facts: dict, staged) -> int:
    db = ctx.db
    record = db.get(IngestRecord, ident)
    stored = ctx.runtime.storage.record(db, staged, owner_id=record.submitted_by_id,
                                        content_type="application/fits")
    if facts["latest_id"] is not None:
        latest = db.get(ArchiveFile, facts["latest_id"])
        if latest is None or not latest.is_latest:  # another version won the race: retry
            raise Quarantine("busy", "Another version of this file was archived at the same "
                                     "time; send it again.")
        latest.is_latest = False
    fields = summary.fields
    telescope, instrument, programme = facts["telescope"], facts["instrument"], \
        facts["programme"]
    calib = summary.calib_level
    if facts["sources"] and calib <= 1:
        calib = 2  # a derived product is at least calibrated
    archived = ArchiveFile(
        telescope_id=telescope.id, instrument_id=instrument.id if instrument else None,
        programme_id=programme.id if programme else None,
        programme_code=facts["programme_code"], stored_file_id=stored.id, uri=facts["uri"],
        filename=record.filename, version=facts["version"], size=facts["size"],
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


def _finish(ctx: Context, ident: int, status: str, *, file_id: int | None = None,
            reason: str = "", code: str = "", held: str | None = None) -> None:
    db = ctx.db
    ctx.database.begin_write(db)
    record = db.get(IngestRecord, ident)
    record.status, record.file_id, record.reason, record.code = status, file_id, reason, code
    record.checksum, record.size = getattr(ctx, "examined", (None, None))[0] or \
        record.checksum, getattr(ctx, "examined", (None, None))[1] or record.size
    record.finished_at = utcnow()
    if held is not None:
        record.held_path = held
    db.commit()
    if status == "duplicate" and record.owns_path:
        Path(record.path).unlink(missing_ok=True)


def _quarantine(ctx: Context, ident: int, code: str, reason: str) -> None:
    """Set a file aside with the reason; its bytes are kept in the quarantine folder (a copy
    when the file is the operator's own)."""
    db = ctx.db
    record = db.get(IngestRecord, ident)
    source = Path(record.path)
    held = None
    if source.is_file():
        target = quarantine_dir(ctx.settings) / f"{ident}-{record.filename}"
        try:
            if record.owns_path:
                os.replace(source, target)
            else:
                shutil.copyfile(source, target)
            held = str(target)
        except OSError:
            held = str(source)
    log.warning("ingest %s quarantined (%s): %s", ident, code, reason)
    _finish(ctx, ident, "quarantined", reason=reason, code=code, held=held)


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
