"""Positional cross-identification: match a table of positions — a catalog, or a table uploaded
as VOTable, FITS or CSV — against a catalog, keeping the nearest counterpart of each row
("best") or every counterpart within the radius ("all"), with the separation in arcseconds.

Guarded by `data.crossmatch.run` (everyone); both catalogs must also be readable by the caller
under `data.catalog.read` (a proprietary catalog is "not found" for a stranger), checked
through the catalogs' own services. The result of an asynchronous match is read under
`data.crossmatch.result`, whose rule lets only the job's owner see it.

Engines (see `engines`): in memory for uploads and for catalogs of up to `MEMORY_ROWS` rows
(read from the database as Arrow columns, see `fetch`: the left whole, the right only around
the left's positions when its spatial index allows); in the database for larger catalog × catalog
matches (q3c_join between q3c catalogs on PostgreSQL, a HEALPix pixel-and-neighbours join
otherwise), streamed in chunks. Small inputs are answered at once; large ones become a job
(`data.xmatch.run`) whose result is written as a file to the data-access layer.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from astrocloud.core.errors import Conflict, NotAuthenticated, NotFound, ValidationFailed
from astrocloud.core.i18n import _, gettext
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, operation
from astrocloud.data.catalogs import importer
from astrocloud.data.catalogs import services as catalogs
from astrocloud.data.catalogs.importer import HEALPIX_COLUMN
from astrocloud.data.catalogs.models import Catalog
from astrocloud.data.xmatch import engines, fetch, formats

MODES = ("best", "all")
ENGINES = ("auto", "memory", "database")
UPLOAD_FORMATS = ("votable", "fits", "csv")
MAX_RADIUS_ARCSEC = 3600.0
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_UPLOAD_ROWS = 2_000_000
MEMORY_ROWS = 2_000_000  # a catalog up to this size is matched in memory
SYNC_ROWS = 200_000  # inputs larger than this (left + right rows) run as a job
DEFAULT_LIMIT = 100_000
MAX_LIMIT = 10_000_000
MAX_SYNC_LIMIT = 1_000_000
REGION_PIXELS = 256  # the area around the left positions is described by at most this many
REGION_MAX_DEG2 = 100.0  # beyond this area, a catalog that fits in memory is read whole
TASK = "data.xmatch.run"


class CrossmatchOps(OperationSet):
    RUN = Action("data.crossmatch.run",
                 doc="Cross-match a table (a catalog or an uploaded file) with a catalog by "
                     "position.")
    RESULT = Query("data.crossmatch.result", resource="job",
                   doc="Read the result of an asynchronous cross-match (its owner only).")


class MatchNotFinished(Conflict):
    code = "crossmatch-not-finished"
    title = _("The cross-match has not finished")


# ---- inputs and results -----------------------------------------------------------------------


@dataclass
class Upload:
    """A table sent with the request: its bytes, its file name (which may tell its format),
    and optionally its format and position columns."""

    data: bytes
    filename: str = "upload"
    format: str | None = None
    ra: str | None = None
    dec: str | None = None


@dataclass
class MatchColumn:
    """A column of the result, described as a VOTable FIELD."""

    name: str
    datatype: str
    unit: str = ""
    ucd: str = ""
    description: str = ""


@dataclass
class Side:
    """One input of the match, in memory: its columns (metadata and values) and positions."""

    label: str
    columns: list[MatchColumn]
    table: pa.Table
    ra: np.ndarray
    dec: np.ndarray

    @property
    def rows(self) -> int:
        return self.table.num_rows


@dataclass
class MatchResult:
    """What a cross-match found: one row per pair, left columns, right columns, separation."""

    left: str
    right: str
    radius_arcsec: float
    mode: str
    engine: str
    columns: list[MatchColumn]
    table: pa.Table
    truncated: bool
    left_rows: int
    right_rows: int
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.table.num_rows

    def describe(self) -> dict[str, Any]:
        return {"left": self.left, "right": self.right, "radius_arcsec": self.radius_arcsec,
                "mode": self.mode, "engine": self.engine, "rows": self.rows,
                "truncated": self.truncated, "left_rows": self.left_rows,
                "right_rows": self.right_rows, "seconds": round(self.seconds, 3)}


@dataclass
class Submitted:
    """An asynchronous cross-match: its job, where to follow it and where its result will be."""

    job_id: int
    format: str
    status_url: str = field(init=False)
    result_url: str = field(init=False)

    def __post_init__(self):
        self.status_url = f"/api/v1/jobs/{self.job_id}"
        self.result_url = f"/api/v1/data/crossmatch/{self.job_id}/result"


# ---- validation -------------------------------------------------------------------------------


def _problem(ctx: Context, fieldname: str, message: str, **params) -> dict[str, str]:
    return {"field": fieldname, "message": gettext(ctx.language, message, **params)}


def check_request(ctx: Context, *, left: str | Upload | None, right: str | None,
                  radius_arcsec: Any, mode: Any, limit: Any, engine: Any = "auto") -> None:
    """Every problem with the parameters at once (422)."""
    problems = []
    if left is None or (isinstance(left, str) and not left.strip()):
        problems.append(_problem(ctx, "left", _("Choose the left table: a catalog or a file.")))
    elif isinstance(left, Upload) and not left.data:
        problems.append(_problem(ctx, "file", _("The uploaded file is empty.")))
    if not isinstance(right, str) or not right.strip():
        problems.append(_problem(ctx, "right", _("Choose the catalog to match against.")))
    if isinstance(radius_arcsec, bool) or not isinstance(radius_arcsec, int | float) or \
            not math.isfinite(radius_arcsec) or not 0 < radius_arcsec <= MAX_RADIUS_ARCSEC:
        problems.append(_problem(ctx, "radius", _("The radius must be more than 0 and at most "
                                                  "%(max)s arcseconds."),
                                 max=int(MAX_RADIUS_ARCSEC)))
    if mode not in MODES:
        problems.append(_problem(ctx, "mode", _("The mode is “best” (the nearest match of each "
                                                "row) or “all” (every match within the "
                                                "radius).")))
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        problems.append(_problem(ctx, "limit", _("The limit must be between 1 and %(max)s."),
                                 max=MAX_LIMIT))
    if engine not in ENGINES:
        problems.append(_problem(ctx, "engine", _("The engine is “auto”, “memory” or "
                                                  "“database”.")))
    if problems:
        raise ValidationFailed(problems)


# ---- reading the inputs -----------------------------------------------------------------------


def _catalog_columns(catalog: Catalog, *, main: bool = True) -> list[MatchColumn]:
    out = []
    for c in catalog.columns:
        ucd = c.ucd
        if not main:  # only the left table's position is the main one of the result
            ucd = ";".join(w for w in ucd.split(";") if w.strip() != "meta.main")
        out.append(MatchColumn(c.name, c.datatype, c.unit, ucd, c.description))
    return out


def _positions(table: pa.Table, ra: str, dec: str) -> tuple[np.ndarray, np.ndarray]:
    return (table.column(ra).cast(pa.float64()).to_numpy(zero_copy_only=False),
            table.column(dec).cast(pa.float64()).to_numpy(zero_copy_only=False))


def _fetch_table(ctx: Context, stmt: sa.Select, names: list[str], kinds: list[str],
                 max_rows: int | None = None, expected_rows: int = 0) -> pa.Table:
    """The rows of `stmt` as an Arrow table (see `fetch`)."""
    try:
        return fetch.fetch_table(ctx.db, stmt, names, kinds, max_rows=max_rows,
                                 expected_rows=expected_rows)
    except fetch.TooManyRows:
        raise ValidationFailed(_("The match needs more than %(max)s rows of a catalog in "
                                 "memory; choose a smaller radius or a smaller left "
                                 "table."), field="right", max=max_rows) from None


def _read_catalog(ctx: Context, catalog: Catalog, *, main: bool = True, around: Side | None = None,
                  radius_arcsec: float = 0.0) -> Side:
    """A catalog's rows in memory. With `around`, only the rows near that side's positions
    (through the catalog's spatial index), when that is a real saving."""
    table = catalogs.catalog_table(catalog)
    names = [c.name for c in catalog.columns]
    kinds = [c.datatype for c in catalog.columns]
    stmt = sa.select(*[table.c[n] for n in names])
    max_rows = None
    if around is not None:
        region = _region(catalog, table, around, radius_arcsec)
        if region is not None:
            stmt = stmt.where(region)
        elif catalog.n_rows > MEMORY_ROWS:
            raise ValidationFailed(_("The catalog %(name)s is too large to be matched with "
                                     "this table in memory."), field="right", name=catalog.name)
        max_rows = MEMORY_ROWS
    data = _fetch_table(ctx, stmt, names, kinds, max_rows, expected_rows=catalog.n_rows)
    ra, dec = _positions(data, catalog.ra_column, catalog.dec_column)
    return Side(catalog.name, _catalog_columns(catalog, main=main), data, ra, dec)


def _region(catalog: Catalog, table: sa.Table, around: Side, radius_arcsec: float):
    """A WHERE clause picking a catalog's rows near `around`'s positions: coarse HEALPix
    pixels holding them, with their neighbours, as ranges of the catalog's pixels (healpix) or
    as cones round the pixels' centres (q3c). None when the positions spread too widely for
    that to help (the catalog is then read whole)."""
    from astropy import units as u
    from astropy_healpix import HEALPix, lonlat_to_healpix, neighbours

    if around.rows == 0:
        return sa.false()
    radius = radius_arcsec / 3600.0
    order = catalog.healpix_order or importer.HEALPIX_ORDER
    level = engines.healpix_level(radius, order)
    # Sorted once, the pixels stay sorted at every coarser level: distinct ones are counted
    # by comparing neighbours (np.unique at each level costs a sort or a hash of them all).
    pixels = np.sort(lonlat_to_healpix(around.ra * u.deg, around.dec * u.deg, 2 ** level,
                                       order="nested"))
    shift = 0
    while level > 0 and \
            (np.count_nonzero(np.diff(pixels >> shift)) + 1) * 9 > REGION_PIXELS:
        level -= 1
        shift += 2
    pixels = np.unique(pixels >> shift)  # few by now
    with np.errstate(invalid="ignore"):  # a corner pixel's missing neighbour is -1
        near = np.asarray(neighbours(pixels, 2 ** level, order="nested")).ravel()
    pixels = np.unique(np.concatenate([pixels, near[near >= 0]]))
    if len(pixels) > REGION_PIXELS:
        return None
    # A catalog that fits in memory is read whole unless the area is small: a few wide cones
    # or ranges over most of a catalog cost more than reading it.
    area = len(pixels) * 41253.0 / (12 * 4 ** level)
    if area > REGION_MAX_DEG2 and catalog.n_rows <= MEMORY_ROWS:
        return None
    ra_c, dec_c = table.c[catalog.ra_column], table.c[catalog.dec_column]
    if catalog.index_kind == "q3c":
        grid = HEALPix(nside=2 ** level, order="nested")
        lon, lat = grid.healpix_to_lonlat(pixels)
        corners = grid.boundaries_lonlat(pixels, step=1)
        spread = np.degrees(np.max(np.arccos(np.clip(
            np.sin(lat.rad)[:, None] * np.sin(corners[1].rad)
            + np.cos(lat.rad)[:, None] * np.cos(corners[1].rad)
            * np.cos(corners[0].rad - lon.rad[:, None]), -1, 1)), axis=1))
        return sa.or_(*(sa.func.q3c_radial_query(ra_c, dec_c, float(a), float(d),
                                                 float(s) + radius + 1e-6)
                        for a, d, s in zip(lon.deg, lat.deg, spread, strict=True)))
    ranges = importer.pixel_ranges(pixels, level, order)
    column = table.c[HEALPIX_COLUMN]
    return sa.or_(*(column.between(lo, hi) for lo, hi in ranges))


def _find_position(planned, ra: str | None, dec: str | None):
    """The upload's position columns; the importer's messages name CLI options, these name
    the request's fields."""
    try:
        return importer.find_position(planned, ra, dec)
    except ValidationFailed as exc:
        axis = exc.errors[0].get("field") if exc.errors else ""
        message = exc.msgid[0] if exc.msgid else ""
        problems = importer.POSITION_PROBLEMS.get(axis)
        if problems is None or message not in (problems.missing, problems.ambiguous):
            raise
        if axis == "ra":
            raise ValidationFailed(_("No single column of the uploaded table holds the right "
                                     "ascension (found by its UCD pos.eq.ra;meta.main or a "
                                     "common name such as ra, raj2000); name it in the “ra” "
                                     "field."), field="ra") from None
        raise ValidationFailed(_("No single column of the uploaded table holds the "
                                 "declination (found by its UCD pos.eq.dec;meta.main or a "
                                 "common name such as dec, dej2000); name it in the “dec” "
                                 "field."), field="dec") from None


def upload_format(upload: Upload) -> str:
    """The format of an uploaded table: given, told by its name, or sniffed from its bytes."""
    if upload.format:
        fmt = upload.format.lower()
        if fmt not in UPLOAD_FORMATS:
            raise ValidationFailed(_("The uploaded table's format is one of %(formats)s."),
                                   field="format", formats=", ".join(UPLOAD_FORMATS))
        return fmt
    name = (upload.filename or "").lower()
    for suffix, fmt in sorted(importer.SUFFIXES.items(), key=lambda i: -len(i[0])):
        if name.endswith(suffix) and fmt in UPLOAD_FORMATS:
            return fmt
    head = upload.data[:512].lstrip()
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.startswith(b"<?xml") or head.startswith(b"<VOTABLE"):
        return "votable"
    return "csv"


def read_upload(ctx: Context, upload: Upload) -> Side:
    """An uploaded table in memory, with its position columns found (or as named)."""
    if len(upload.data) > MAX_UPLOAD_BYTES:
        raise ValidationFailed(_("The uploaded table is larger than the %(n)s MB allowed."),
                               field="file", n=MAX_UPLOAD_BYTES // (1024 * 1024))
    if not upload.data.strip():
        raise ValidationFailed(_("The uploaded file is empty."), field="file")
    fmt = upload_format(upload)
    suffix = {"votable": ".vot", "fits": ".fits", "csv": ".csv"}[fmt]
    label = Path(upload.filename or "upload").name[:100] or "upload"
    with tempfile.TemporaryDirectory(prefix="xmatch-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(upload.data)
        source = importer.open_catalog(path, fmt)
        try:
            planned = importer.plan_columns(source)
            batches, rows = [], 0
            for chunk in importer.read_chunks(source):
                arrays = []
                for col in planned:
                    try:
                        arrays.append(importer.conform(chunk[col.source], col.kind))
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                        raise ValidationFailed(
                            _("Column “%(name)s” near row %(row)s: %(reason)s"), field="file",
                            name=col.source, row=rows + 1, reason=str(exc)[:200]) from None
                batch = pa.record_batch(arrays, names=[c.name for c in planned])
                rows += batch.num_rows
                if rows > MAX_UPLOAD_ROWS:
                    raise ValidationFailed(_("The uploaded table has more than %(max)s rows."),
                                           field="file", max=MAX_UPLOAD_ROWS)
                batches.append(batch)
        finally:
            source.close()
    if rows == 0:
        raise ValidationFailed(_("The uploaded table has no rows."), field="file")
    ra_col, dec_col = _find_position(planned, upload.ra, upload.dec)
    data = pa.Table.from_batches(batches)
    ra, dec = _positions(data, ra_col.name, dec_col.name)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~((ra >= 0) & (ra < 360) & (dec >= -90) & (dec <= 90)))
    if len(bad):
        first = int(bad[0])
        raise ValidationFailed(_("Row %(row)s of the uploaded table has no valid position "
                                 "(RA %(ra)s, Dec %(dec)s): RA must be in [0, 360) and Dec in "
                                 "[-90, 90] degrees."), field="file", row=first + 1,
                               ra=importer._shown(ra[first]), dec=importer._shown(dec[first]))
    columns = [MatchColumn(c.name, c.kind, c.unit, c.ucd, c.description) for c in planned]
    return Side(label, columns, data, ra, dec)


# ---- matching ---------------------------------------------------------------------------------


def _right_labels(left_names: list[str], right: str, names: list[str]) -> list[str]:
    """Names for the right columns: prefixed with the right catalog's name, and never equal to
    a left column's name or to `separation`."""
    used = {*left_names, "separation"}
    out = []
    for name in names:
        base = f"{right}_{name}"[:60]
        label, n = base, 2
        while label in used:
            label = f"{base[:56]}_{n}"
            n += 1
        used.add(label)
        out.append(label)
    return out


def _result_columns(left: list[MatchColumn], right: list[MatchColumn], labels: list[str],
                    right_name: str) -> list[MatchColumn]:
    renamed = [MatchColumn(label, c.datatype, c.unit, c.ucd,
                           f"{right_name}: {c.description}" if c.description else right_name)
               for c, label in zip(right, labels, strict=True)]
    separation = MatchColumn("separation", "double", "arcsec", "pos.angDistance",
                             "Angular distance between the matched positions")
    return [*left, *renamed, separation]


def _match_in_memory(left: Side, right: Side, radius_arcsec: float, mode: str, limit: int,
                     labels: list[str]) -> tuple[pa.Table, bool]:
    pairs = engines.match_arrays(left.ra, left.dec, right.ra, right.dec, radius_arcsec, mode,
                                 limit)
    lt = left.table.take(pa.array(pairs.left))
    rt = right.table.take(pa.array(pairs.right)).rename_columns(labels)
    arrays = [*lt.columns, *rt.columns, pa.array(pairs.separation)]
    names = [*lt.column_names, *labels, "separation"]
    return pa.table(arrays, names=names), pairs.truncated


def _match_in_database(ctx: Context, left: Catalog, right: Catalog, radius_arcsec: float,
                       mode: str, limit: int, labels: list[str], columns: list[MatchColumn]
                       ) -> tuple[pa.Table, bool]:
    def side(catalog: Catalog) -> engines.SideSQL:
        return engines.SideSQL(catalogs.catalog_table(catalog), catalog.ra_column,
                               catalog.dec_column, catalog.index_kind, catalog.healpix_order,
                               [c.name for c in catalog.columns])

    stmt, temporary = engines.database_statement(ctx.db, side(left), side(right),
                                                 radius_arcsec, mode, labels)
    try:
        names = [c.name for c in columns]
        kinds = [c.datatype for c in columns]
        data = _fetch_table(ctx, stmt.limit(limit + 1), names, kinds)  # the session's
        # connection: the temporary table lives there
    finally:
        for thing in temporary:
            thing.drop()
    truncated = data.num_rows > limit
    data = data.slice(0, limit)
    # along the left catalog's rows, nearest first (the database returns them in join order)
    return data, truncated


def _database_possible(left: Catalog, right: Catalog, dialect: str) -> bool:
    if left.index_kind == right.index_kind == "q3c":
        return dialect == "postgresql"
    return left.index_kind == right.index_kind == "healpix" and \
        (left.healpix_order or importer.HEALPIX_ORDER) == \
        (right.healpix_order or importer.HEALPIX_ORDER)


@operation(CrossmatchOps.RUN, streaming=True)
def crossmatch(ctx: Context, *, left: str | Upload, right: str, radius_arcsec: float,
               mode: str = "best", limit: int = DEFAULT_LIMIT, engine: str = "auto"
               ) -> MatchResult:
    """Match `left` (a catalog's name, or an `Upload`) against catalog `right` within
    `radius_arcsec` (data.crossmatch.run; each catalog must be readable by the caller under
    data.catalog.read). "best" keeps the nearest right row of each left row; "all" every pair
    within the radius. At most `limit` rows (`truncated` says when more matched). The engine
    is picked by the inputs' sizes (in memory up to `MEMORY_ROWS` rows a catalog, else in the
    database) unless `engine` forces one."""
    started = time.perf_counter()
    ctx.authorize()
    check_request(ctx, left=left, right=right, radius_arcsec=radius_arcsec, mode=mode,
                  limit=limit, engine=engine)
    radius_arcsec = float(radius_arcsec)
    right_catalog = catalogs.get_catalog(ctx, right.strip())
    left_catalog = catalogs.get_catalog(ctx, left.strip()) if isinstance(left, str) else None
    dialect = ctx.db.connection().dialect.name
    chosen = engine
    if chosen == "auto":
        big = left_catalog is not None and max(left_catalog.n_rows,
                                               right_catalog.n_rows) > MEMORY_ROWS
        chosen = "database" if big and _database_possible(left_catalog, right_catalog,
                                                          dialect) else "memory"
    if chosen == "database" and (left_catalog is None or
                                 not _database_possible(left_catalog, right_catalog, dialect)):
        raise ValidationFailed(_("A match in the database needs two catalogs with the same "
                                 "spatial index (q3c on PostgreSQL, or HEALPix)."),
                               field="engine")
    if left_catalog is not None:
        left_columns = _catalog_columns(left_catalog)
        left_label = left_catalog.name
    else:
        left_side = read_upload(ctx, left)
        left_columns, left_label = left_side.columns, left_side.label
    right_columns = _catalog_columns(right_catalog, main=False)
    labels = _right_labels([c.name for c in left_columns], right_catalog.name,
                           [c.name for c in right_columns])
    columns = _result_columns(left_columns, right_columns, labels, right_catalog.name)
    if chosen == "database":
        data, truncated = _match_in_database(ctx, left_catalog, right_catalog, radius_arcsec,
                                             mode, limit, labels, columns)
        left_rows, right_rows = left_catalog.n_rows, right_catalog.n_rows
    else:
        if left_catalog is not None:
            if left_catalog.n_rows > MEMORY_ROWS:
                raise ValidationFailed(_("The catalog %(name)s is too large to be matched in "
                                         "memory."), field="left", name=left_catalog.name)
            left_side = _read_catalog(ctx, left_catalog)
        right_side = _read_catalog(ctx, right_catalog, main=False, around=left_side,
                                   radius_arcsec=radius_arcsec)
        data, truncated = _match_in_memory(left_side, right_side, radius_arcsec, mode, limit,
                                           labels)
        left_rows, right_rows = left_side.rows, right_side.rows
    result = MatchResult(left=left_label, right=right_catalog.name,
                         radius_arcsec=radius_arcsec, mode=mode, engine=chosen,
                         columns=columns, table=data, truncated=truncated,
                         left_rows=left_rows, right_rows=right_rows,
                         seconds=time.perf_counter() - started)
    ctx.set_target(right_catalog)
    ctx.note(f"{left_label} × {right_catalog.name} within {radius_arcsec:g}″ ({mode}, "
             f"{chosen}): {result.rows} rows in {result.seconds:.2f} s")
    return result


def _input_rows(ctx: Context, left: str | Upload, right: str) -> int:
    """How many rows a match would read: the left table's and the right catalog's."""
    right_catalog = catalogs.get_catalog(ctx, right.strip())
    if isinstance(left, str):
        return catalogs.get_catalog(ctx, left.strip()).n_rows + right_catalog.n_rows
    return max(len(left.data) // 40, 1)  # a row of a typical upload is some 40 bytes or more


@operation(CrossmatchOps.RUN, streaming=True)
def request_crossmatch(ctx: Context, *, left: str | Upload | None, right: str | None,
                       radius_arcsec: Any, mode: Any = "best", limit: Any = DEFAULT_LIMIT,
                       engine: Any = "auto", asynchronous: bool | None = None,
                       output: str = "votable") -> MatchResult | Submitted:
    """A cross-match as a client asks for it (data.crossmatch.run): answered at once for small
    inputs, or queued as a job (`asynchronous`, or automatically when the inputs hold more
    than `SYNC_ROWS` rows) whose result, in `output` format, only the caller may fetch."""
    ctx.authorize()
    check_request(ctx, left=left, right=right, radius_arcsec=radius_arcsec, mode=mode,
                  limit=limit, engine=engine)
    if output not in formats.FORMATS:
        raise ValidationFailed(_("The response format is one of %(formats)s."),
                               field="format", formats=", ".join(formats.FORMATS))
    if asynchronous is None:
        asynchronous = _input_rows(ctx, left, right) > SYNC_ROWS
    if not asynchronous:
        if limit > MAX_SYNC_LIMIT:
            raise ValidationFailed(_("An immediate answer holds at most %(max)s rows; ask for "
                                     "an asynchronous match for more."), field="limit",
                                   max=MAX_SYNC_LIMIT)
        return crossmatch(ctx, left=left, right=right, radius_arcsec=radius_arcsec, mode=mode,
                          limit=limit, engine=engine)
    if not ctx.subject.authenticated or ctx.subject.id is None:
        raise NotAuthenticated(_("Please sign in to run a large cross-match as a job (its "
                                 "result is kept for you)."))
    # the catalogs must be visible to the caller now, not only when the job runs
    catalogs.get_catalog(ctx, right.strip())
    token = uuid.uuid4().hex
    args: dict[str, Any] = {"right": right.strip(), "radius_arcsec": float(radius_arcsec),
                            "mode": mode, "limit": limit, "engine": engine, "output": output,
                            "owner_id": ctx.subject.id,
                            "result_uri": f"ac://jobs/xmatch/{token}/result.{formats.SUFFIX[output]}"}
    if isinstance(left, str):
        catalogs.get_catalog(ctx, left.strip())
        args["left"] = left.strip()
    else:
        read_upload(ctx, left)  # a broken upload is refused now, not in the job
        uri = f"ac://jobs/xmatch/{token}/input"
        staged = ctx.runtime.storage.stage(ctx.db, uri, [left.data],
                                           max_bytes=MAX_UPLOAD_BYTES)
        args["upload"] = {"uri": uri, "filename": left.filename, "format": left.format,
                          "ra": left.ra, "dec": left.dec}
    ctx.begin_write()
    if not isinstance(left, str):
        ctx.runtime.storage.record(ctx.db, staged, owner_id=ctx.subject.id)
    job_id = ctx.enqueue(TASK, args)
    ctx.note(f"job {job_id}")
    return Submitted(job_id=job_id, format=output)


# ---- the job and its result -------------------------------------------------------------------


def run_job(runtime, *, right: str, radius_arcsec: float, mode: str, limit: int,
            engine: str, output: str, owner_id: int, result_uri: str, left: str | None = None,
            upload: dict | None = None) -> dict:
    """The job `data.xmatch.run`: the match, as its owner (whose rights are checked again),
    with the result written to `result_uri` through the data-access layer."""
    from astrocloud.core.identity.models import User
    from astrocloud.core.security.engine import load_subject

    with Context(database=runtime.database, settings=runtime.settings, runtime=runtime,
                 via="worker") as ctx:
        user = ctx.db.get(User, owner_id)
        if user is None:
            raise NotFound("The owner of this cross-match no longer exists.")
        ctx.subject = load_subject(ctx.db, user)
        ctx.db.commit()
        if upload is not None:
            record = runtime.storage.stat(ctx.db, upload["uri"])
            data = b"".join(runtime.storage.open(ctx.db, record))
            source: str | Upload = Upload(data, upload.get("filename") or "upload",
                                          upload.get("format"), upload.get("ra"),
                                          upload.get("dec"))
        else:
            source = left or ""
        ctx.db.commit()
        return _write_result(ctx, source, right=right, radius_arcsec=radius_arcsec, mode=mode,
                             limit=limit, engine=engine, output=output, result_uri=result_uri)


@operation(CrossmatchOps.RUN, streaming=True)
def _write_result(ctx: Context, left: str | Upload, *, right: str, radius_arcsec: float,
                  mode: str, limit: int, engine: str, output: str, result_uri: str) -> dict:
    """Run a queued match and store its result (data.crossmatch.run, as the job's owner)."""
    ctx.authorize()
    result = crossmatch(ctx, left=left, right=right, radius_arcsec=radius_arcsec, mode=mode,
                        limit=limit, engine=engine)
    body = formats.render(result, output)
    staged = ctx.runtime.storage.stage(ctx.db, result_uri, [body])
    ctx.begin_write()
    ctx.runtime.storage.record(ctx.db, staged, owner_id=ctx.subject.id,
                               content_type=formats.MEDIA_TYPES[output])
    return {**result.describe(), "result_uri": result_uri, "format": output}


@operation(CrossmatchOps.RESULT)
def job_of(ctx: Context, job_id: int):
    """A cross-match job, if the caller owns it (data.crossmatch.result); else NotFound."""
    from astrocloud.core.jobs import Job

    job = ctx.get_visible(Job, job_id, what="cross-match")
    if job.task != TASK:
        raise NotFound("There is no %(what)s with id %(ident)s, or you may not see it.",
                       what="cross-match", ident=job_id)
    return job


@dataclass
class StoredResult:
    job_id: int
    format: str
    media_type: str
    size: int
    chunks: Any  # an iterator of bytes


@operation(CrossmatchOps.RESULT, streaming=True)
def open_result(ctx: Context, job_id: int) -> StoredResult:
    """The stored result of the caller's finished cross-match job (data.crossmatch.result);
    409 while it runs, 404 for anyone but its owner."""
    job = job_of(ctx, job_id)
    if job.status != "done":
        if job.status == "failed":
            raise MatchNotFinished(_("The cross-match failed: %(error)s"),
                                   error=(job.error or "").splitlines()[0][:300]
                                   if job.error else "")
        raise MatchNotFinished(_("The cross-match is %(status)s; its result is not ready "
                                 "yet."), status=job.status)
    args = json.loads(job.args or "{}")
    record = ctx.runtime.storage.stat(ctx.db, args["result_uri"])
    output = args.get("output", "votable")
    return StoredResult(job_id=job.id, format=output, media_type=formats.MEDIA_TYPES[output],
                        size=record.size, chunks=ctx.runtime.storage.open(ctx.db, record))


def preview(result_bytes: bytes, output: str, rows: int) -> tuple[list[str], list[list]]:
    """The first `rows` rows of a stored result, for a page."""
    return formats.preview(io.BytesIO(result_bytes), output, rows)
