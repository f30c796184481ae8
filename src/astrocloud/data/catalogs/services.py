"""Source catalogs: import a table of sources from a file, list and describe the catalogs,
search one by position (a cone), grant a proprietary one to groups, delete one.

Who may do what is decided by the security framework (data/catalogs/policy.toml): a public
catalog is seen by everyone; a proprietary one, until its date passes, by its owner, the groups
it is granted to, operators and admins; importing and deleting are for operators and admins.
A catalog and who may see it are read from the database on each call, so a catalog can be
searched, in every process, the moment its import commits, and a grant or a passing date
takes effect at once; only a catalog's columns, which never change after its import, are kept
(per catalog id and timestamps), with the cone statements built from them.

These functions are what TAP_SCHEMA and the VO cone search build on: `get_catalog` gives a
catalog's metadata and columns (name, datatype, unit, UCD, description, indexed), `cone` runs
the position search, and `catalog_table` gives the SQLAlchemy table of a catalog's rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from astrocloud.core.errors import Conflict, NotFound, ValidationFailed
from astrocloud.core.i18n import _, gettext
from astrocloud.core.identity.models import Group, User
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, operation
from astrocloud.data.catalogs import importer
from astrocloud.data.catalogs.importer import HEALPIX_COLUMN, Progress
from astrocloud.data.catalogs.models import INDEX_KINDS, Catalog, CatalogColumn, CatalogGrant

NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
DEFAULT_CONE_LIMIT = 1000
MAX_CONE_LIMIT = 100_000


class CatalogOps(OperationSet):
    READ = Query("data.catalog.read", resource="catalog",
                 doc="See source catalogs: list them, read their metadata and columns, search "
                     "them by position.")
    IMPORT = Action("data.catalog.import",
                    doc="Import a source catalog from a FITS, VOTable, CSV or Parquet file.")
    DELETE = Action("data.catalog.delete", resource="catalog",
                    doc="Delete a catalog with all its rows.")
    GRANT = Action("data.catalog.grant", resource="catalog",
                   doc="Choose the groups that may see a proprietary catalog before its date.")


class DuplicateCatalog(Conflict):
    code = "duplicate-catalog"
    title = _("The catalog exists already")


@dataclass
class ImportResult:
    """What an import did."""

    catalog: Catalog
    rows: int
    skipped_rows: int = 0
    skipped_columns: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ConeResult:
    """The rows of a catalog within a cone, nearest first, each with `_distance` (degrees)."""

    catalog: Catalog
    columns: list[ColumnInfo]
    rows: list[dict[str, Any]]
    truncated: bool  # more rows lie in the cone than `limit`


# ---- helpers ----------------------------------------------------------------------------------


def check_name(name: str) -> str:
    """A catalog name: it names its table and, later, its TAP table and cone-search URL."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValidationFailed(_("A catalog name is 1 to 48 lower-case letters, digits and "
                                 "underscores, starting with a letter (e.g. lamost_dr1)."),
                               field="name")
    return name


def catalog_table(catalog: Catalog, columns=None) -> sa.Table:
    """The SQLAlchemy table holding a catalog's rows, from its metadata as read now. The same
    metadata gives the same Table object: SQLAlchemy keys its cache of compiled statements on
    the Table's identity, so a fresh Table per request would compile every cone anew (about
    5 ms); a changed or re-imported catalog has other metadata, hence another Table."""
    columns = catalog.columns if columns is None else columns
    return _table_for(catalog.table_name, tuple((c.name, c.datatype) for c in columns),
                      catalog.index_kind == "healpix")


@functools.lru_cache(maxsize=256)
def _table_for(table_name: str, columns: tuple[tuple[str, str], ...], healpix: bool) -> sa.Table:
    return importer.table_of(table_name, list(columns), healpix=healpix)


def _visible(ctx: Context, name: str, columns: bool = True) -> Catalog:
    """A catalog the caller may see, by name; NotFound when it does not exist or is hidden.
    With `columns`, its columns are loaded with it."""
    if not isinstance(name, str) or not NAME.match(name):
        raise NotFound(_("There is no catalog “%(name)s”, or you may not see it."),
                       name=str(name)[:64].replace("\x00", ""))
    stmt = sa.select(Catalog).where(Catalog.name == name)
    if columns:
        stmt = stmt.options(selectinload(Catalog.columns))
    catalog = ctx.db.scalar(ctx.visible(stmt, CatalogOps.READ))
    if catalog is None:
        raise NotFound(_("There is no catalog “%(name)s”, or you may not see it."), name=name)
    ctx.set_target(catalog)
    return catalog


def _utc(moment: dt.date | dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    if not isinstance(moment, dt.datetime):
        return dt.datetime.combine(moment, dt.time(0), tzinfo=dt.UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _groups(ctx: Context, names: list[str]) -> list[Group]:
    names = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    if not names:
        return []
    found = {g.name: g for g in ctx.db.scalars(sa.select(Group).where(Group.name.in_(names)))}
    missing = [n for n in names if n not in found]
    if missing:
        raise ValidationFailed(_("There is no group called %(names)s."), field="groups",
                               names=", ".join(f"“{n}”" for n in missing))
    return [found[n] for n in names]


def _owner(ctx: Context, username: str | None) -> int | None:
    if username is None:
        return ctx.subject.id
    user = ctx.db.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise ValidationFailed(_("There is no user called “%(name)s”."), field="owner",
                               name=username)
    return user.id


def _table_exists(ctx: Context, table_name: str) -> bool:
    return sa.inspect(ctx.db.connection()).has_table(table_name)


# ---- reading ----------------------------------------------------------------------------------


@operation(CatalogOps.READ)
def list_catalogs(ctx: Context) -> list[Catalog]:
    """The catalogs the caller may see, by name (data.catalog.read)."""
    ctx.authorize_listing()
    stmt = (sa.select(Catalog).options(selectinload(Catalog.owner)).order_by(Catalog.name))
    return list(ctx.db.scalars(ctx.visible(stmt)))


@operation(CatalogOps.READ)
def find_catalog(ctx: Context, name: str) -> Catalog | None:
    """The catalog called `name` if it exists and the caller may see it, else None, without
    its columns (data.catalog.read). For resolving names (TAP): not finding one is no error."""
    if not isinstance(name, str) or not NAME.match(name):
        return None
    return ctx.db.scalar(ctx.visible(sa.select(Catalog).where(Catalog.name == name)))


@operation(CatalogOps.READ)
def get_catalog(ctx: Context, name: str) -> Catalog:
    """One catalog with its columns, if the caller may see it (data.catalog.read)."""
    return _visible(ctx, name)


def _check_cone(ctx: Context, ra: float, dec: float, radius: float, limit: int) -> None:
    def bad(value, low, high, *, low_open=False, high_open=False) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value):
            return True
        return value < low or value > high or (low_open and value == low) or \
            (high_open and value == high)

    problems = []
    if bad(ra, 0, 360, high_open=True):
        problems.append({"field": "ra", "message": gettext(
            ctx.language, "The right ascension must be in [0, 360) degrees.")})
    if bad(dec, -90, 90):
        problems.append({"field": "dec", "message": gettext(
            ctx.language, "The declination must be in [-90, 90] degrees.")})
    if bad(radius, 0, 180, low_open=True):
        problems.append({"field": "radius", "message": gettext(
            ctx.language, "The radius must be more than 0 and at most 180 degrees.")})
    if isinstance(limit, bool) or not isinstance(limit, int) or \
            not 1 <= limit <= MAX_CONE_LIMIT:
        problems.append({"field": "limit", "message": gettext(
            ctx.language, "The limit must be between 1 and %(max)s.", max=MAX_CONE_LIMIT)})
    if problems:
        raise ValidationFailed(problems)


@dataclass(frozen=True)
class ColumnInfo:
    """A catalog column's description as read once and kept (the columns of a catalog never
    change after its import; a re-import is another catalog)."""

    name: str
    datatype: str
    arraysize: str | None
    xtype: str | None
    unit: str
    ucd: str
    description: str
    indexed: bool
    position: int


_columns_cache: dict[tuple, tuple[ColumnInfo, ...]] = {}


def catalog_columns(ctx: Context, catalog: Catalog) -> tuple[ColumnInfo, ...]:
    """The columns of `catalog` (a catalog the caller was allowed to see), read from the
    database the first time and then kept per catalog, keyed by its id and timestamps, so a
    catalog deleted and imported again under another id or time is read anew."""
    key = (catalog.id, catalog.table_name, catalog.created_at, catalog.updated_at)
    found = _columns_cache.get(key)
    if found is None:
        found = tuple(ColumnInfo(c.name, c.datatype, c.arraysize, c.xtype, c.unit or "",
                                 c.ucd or "", c.description or "", bool(c.indexed), c.position)
                      for c in ctx.db.scalars(sa.select(CatalogColumn)
                                              .where(CatalogColumn.catalog_id == catalog.id)
                                              .order_by(CatalogColumn.position)))
        if len(_columns_cache) > 512:
            _columns_cache.clear()
        _columns_cache[key] = found
    return found


def _range_slots(n: int) -> int:
    """Room for `n` HEALPix ranges in a cone statement: the next power of two, so that a few
    statement shapes serve every cone (the unused slots hold empty ranges)."""
    slots = 4
    while slots < n:
        slots *= 2
    return slots


@functools.lru_cache(maxsize=512)
def _cone_select(table: sa.Table, ra_column: str, dec_column: str, names: tuple[str, ...],
                 kind: str, slots: int) -> sa.Select:
    """The cone search on `table` as one statement with bound parameters, built once per
    catalog and shape: SQLAlchemy then reuses its compiled form and the driver its prepared
    statement (on PostgreSQL, psycopg prepares a statement it has run a few times: q3c's
    planning, a few milliseconds, is then done once per connection).

    kind "q3c_join" (small cones: q3c_join probes the index with 4 ranges, which plans much
    faster than q3c_radial_query's 100), "q3c_radial", or "healpix" with `slots` ranges."""
    ra_c, dec_c = table.c[ra_column], table.c[dec_column]
    ra, dec = sa.bindparam("ra", type_=sa.Double()), sa.bindparam("dec", type_=sa.Double())
    radius = sa.bindparam("radius", type_=sa.Double())
    if kind in ("q3c_join", "q3c_radial"):
        distance = sa.func.q3c_dist(ra_c, dec_c, ra, dec)
        where = sa.func.q3c_join(ra, dec, ra_c, dec_c, radius) if kind == "q3c_join" else \
            sa.func.q3c_radial_query(ra_c, dec_c, ra, dec, radius)
    else:
        pixel = table.c[HEALPIX_COLUMN]
        ranges = sa.or_(*(pixel.between(sa.bindparam(f"lo{i}", type_=sa.BigInteger()),
                                        sa.bindparam(f"hi{i}", type_=sa.BigInteger()))
                          for i in range(slots)))

        def half_sin(expr):
            return sa.func.sin(sa.func.radians(expr) / 2)

        # sin²(d/2) of the great-circle distance; cos written as sin(90° − x), which every
        # SQLite build with math functions has
        d_dec, d_ra = half_sin(dec_c - dec), half_sin(ra_c - ra)
        cos_dec = sa.func.sin(sa.func.radians(90.0 - dec_c))
        hav = d_dec * d_dec + sa.bindparam("cos_dec", type_=sa.Double()) * cos_dec * d_ra * d_ra
        where = sa.and_(ranges, hav <= sa.bindparam("hav_max", type_=sa.Double()))
        bounded = sa.case((hav > 1.0, 1.0), else_=hav)
        distance = sa.func.degrees(2 * sa.func.asin(sa.func.sqrt(bounded)))
    labelled = sa.type_coerce(distance, sa.Double()).label("_distance")
    return (sa.select(*[table.c[n] for n in names], labelled).where(where).order_by(labelled)
            .limit(sa.bindparam("limit", type_=sa.Integer(), literal_execute=False)))


def _cone_query(catalog: Catalog, columns: tuple, ra: float, dec: float, radius: float
                ) -> tuple[sa.Select, dict[str, Any]]:
    """The cone statement for `catalog` and the values of its parameters (without limit)."""
    table = _table_for(catalog.table_name, tuple((c.name, c.datatype) for c in columns),
                       catalog.index_kind == "healpix")
    names = tuple(c.name for c in columns)
    values: dict[str, Any] = {"ra": ra, "dec": dec}
    if catalog.index_kind == "q3c":
        small = radius <= importer.Q3C_JOIN_MAX_RADIUS
        kind, slots = ("q3c_join" if small else "q3c_radial"), 0
        values["radius"] = radius
    else:
        ranges = importer.healpix_ranges(ra, dec, radius,
                                         catalog.healpix_order or importer.HEALPIX_ORDER)
        kind, slots = "healpix", _range_slots(len(ranges))
        for i in range(slots):
            lo, hi = ranges[i] if i < len(ranges) else (1, 0)  # (1, 0): an empty range
            values[f"lo{i}"], values[f"hi{i}"] = lo, hi
        values["cos_dec"] = math.cos(math.radians(dec))
        values["hav_max"] = math.sin(math.radians(radius) / 2) ** 2
    stmt = _cone_select(table, catalog.ra_column, catalog.dec_column, names, kind, slots)
    return stmt, values


def cone_statement(catalog: Catalog, table: sa.Table, ra: float, dec: float,
                   radius: float) -> sa.Select:
    """SELECT every column of the rows within `radius` degrees of (ra, dec), with their
    distance `_distance` in degrees, nearest first, the values bound (no limit). q3c does the
    whole search where it is the index; otherwise the HEALPix ranges covering the cone pick
    the candidates through the index (the table is never scanned) and the exact distance
    decides. (For the benchmarks' baseline; `cone` runs the same statement.)"""
    stmt, values = _cone_query(catalog, tuple(catalog.columns), ra, dec, radius)
    return stmt.limit(None).params(values)


@operation(CatalogOps.READ, streaming=True)
def cone(ctx: Context, name: str, ra: float, dec: float, radius_deg: float,
         limit: int = DEFAULT_CONE_LIMIT) -> ConeResult:
    """The rows of catalog `name` within `radius_deg` degrees of (ra, dec), nearest first, at
    most `limit` of them (data.catalog.read). Runs as a streaming operation: the search reads
    without holding the write lock, which only the usage row needs."""
    _check_cone(ctx, ra, dec, radius_deg, limit)
    catalog = _visible(ctx, name, columns=False)
    columns = catalog_columns(ctx, catalog)
    stmt, values = _cone_query(catalog, columns, float(ra), float(dec), float(radius_deg))
    values["limit"] = limit + 1
    rows = [dict(row) for row in ctx.db.execute(stmt, values).mappings()]
    return ConeResult(catalog=catalog, columns=list(columns), rows=rows[:limit],
                      truncated=len(rows) > limit)


# ---- import -----------------------------------------------------------------------------------


@operation(CatalogOps.IMPORT, streaming=True)
def import_catalog(ctx: Context, path: str | Path, *, name: str, title: str = "",
                   description: str = "", format: str | None = None,  # noqa: A002
                   ra: str | None = None, dec: str | None = None,
                   proprietary_until: dt.date | dt.datetime | None = None,
                   owner: str | None = None, groups: list[str] | tuple[str, ...] = (),
                   meta: str | Path | dict | None = None, skip_invalid: bool = False,
                   index: str | None = None, progress: Progress | None = None) -> ImportResult:
    """Import the table in `path` as catalog `name` (data.catalog.import).

    The position columns are those named by `ra`/`dec`, else found by UCD or a common name.
    `meta` (a JSON sidecar, or its content) adds units, UCDs, descriptions or CSV datatypes;
    next to a CSV file, `<file>.json` is read when present. Rows without a valid position
    (RA in [0, 360), Dec in [-90, 90]) make the import fail, unless `skip_invalid`, which
    skips and counts them. `index` forces "healpix" or "q3c" (default: q3c where usable).
    The catalog is public unless `proprietary_until` lies ahead; `owner` (a username; default
    the caller) and the `groups` may see it before. All or nothing: a failure leaves neither a
    table nor metadata behind. `progress(rows_read, total_or_None)` is called per chunk."""
    started = time.perf_counter()
    ctx.authorize()
    check_name(name)
    if index not in (None, *INDEX_KINDS):
        raise ValidationFailed(_("The spatial index is “healpix” or “q3c”."), field="index")
    if len(title) > 255:
        raise ValidationFailed(_("A title may be at most 255 characters long."), field="title")
    if ctx.db.scalar(sa.select(Catalog.id).where(Catalog.name == name)) is not None:
        raise DuplicateCatalog(_("There is already a catalog called “%(name)s”."), name=name)
    owner_id = _owner(ctx, owner)
    granted = _groups(ctx, list(groups))
    until = _utc(proprietary_until)

    path = Path(path)
    sidecar: dict = {}
    if isinstance(meta, dict):
        sidecar = importer.sidecar(meta)
    elif meta is not None:
        sidecar = importer.read_sidecar(Path(meta))
    source = importer.open_catalog(path, format)
    try:
        if not sidecar and source.format == "csv" and Path(f"{path}.json").is_file():
            sidecar = importer.read_sidecar(Path(f"{path}.json"))
        types = {k: v["datatype"] for k, v in sidecar.get("columns", {}).items()
                 if v.get("datatype")}
        if types and source.format == "csv":
            source = importer.reopen_csv_with_types(source, types)
        planned = importer.plan_columns(source, sidecar.get("columns"))
        ra_col, dec_col = importer.find_position(planned, ra, dec)

        # The writing part: one transaction for the table, its rows, its index and its metadata.
        ctx.begin_write()
        if ctx.db.scalar(sa.select(Catalog.id).where(Catalog.name == name)) is not None:
            raise DuplicateCatalog(_("There is already a catalog called “%(name)s”."),
                                   name=name)
        table_name = importer.table_name_for(name)
        if _table_exists(ctx, table_name):
            raise DuplicateCatalog(_("A table %(table)s exists already in the database without "
                                     "a catalog; an operator must drop it first."),
                                   table=table_name)
        q3c = index != "healpix" and importer.q3c_usable(ctx.db)
        kind = index or ("q3c" if q3c else "healpix")
        if kind == "q3c" and not q3c:
            raise ValidationFailed(_("The q3c index needs PostgreSQL with the q3c extension."),
                                   field="index")
        table = importer.table_of(table_name, [(c.name, c.kind) for c in planned],
                                  healpix=kind == "healpix")
        table.create(ctx.db.connection())
        loaded = importer.load_rows(ctx.db, table, planned, ra_col, dec_col,
                                    importer.read_chunks(source), healpix=kind == "healpix",
                                    skip_invalid=skip_invalid, total=source.total_rows,
                                    progress=progress)
        if loaded.rows == 0:
            raise ValidationFailed(_("%(file)s has no rows with a valid position to import."),
                                   field="file", file=path.name)
        importer.create_spatial_index(ctx.db, table, ra_col.name, dec_col.name, kind)
    finally:
        source.close()

    now = ctx.now()
    catalog = Catalog(
        name=name, title=title or sidecar.get("title") or source.title or name,
        description=description or sidecar.get("description") or source.description,
        table_name=table_name, ra_column=ra_col.name, dec_column=dec_col.name,
        n_rows=loaded.rows, owner_id=owner_id, proprietary_until=until, index_kind=kind,
        healpix_order=importer.HEALPIX_ORDER if kind == "healpix" else None,
        source_name=path.name[:255], source_format=source.format, created_at=now,
        updated_at=now)
    catalog.title = catalog.title[:255]
    catalog.columns = [
        CatalogColumn(position=i, name=c.name, original_name=c.source[:255], datatype=c.kind,
                      arraysize="*" if c.kind == "char" else None, xtype=c.xtype, unit=c.unit,
                      ucd=c.ucd, description=c.description, indexed=c.indexed)
        for i, c in enumerate(planned)]
    catalog.grants = [CatalogGrant(group_id=g.id) for g in granted]
    ctx.db.add(catalog)
    ctx.db.flush()
    ctx.set_target(catalog)
    ctx.note(f"{loaded.rows} rows from {path.name} ({kind} index)"
             + (f", {loaded.skipped_rows} rows skipped" if loaded.skipped_rows else ""))
    return ImportResult(catalog=catalog, rows=loaded.rows, skipped_rows=loaded.skipped_rows,
                        skipped_columns=list(source.skipped),
                        seconds=time.perf_counter() - started)


# ---- changes ----------------------------------------------------------------------------------


@operation(CatalogOps.GRANT)
def grant_catalog(ctx: Context, name: str, groups: list[str]) -> Catalog:
    """Set the groups that may see catalog `name` before its public date (replacing the
    previous ones; data.catalog.grant)."""
    catalog = _visible(ctx, name)
    ctx.authorize(catalog)
    wanted = _groups(ctx, groups)
    catalog.grants = [CatalogGrant(group_id=g.id) for g in wanted]
    catalog.updated_at = ctx.now()
    ctx.db.flush()
    ctx.db.expire(catalog, ["groups"])
    ctx.note("groups: " + (", ".join(g.name for g in wanted) or "none"))
    return catalog


@operation(CatalogOps.DELETE)
def delete_catalog(ctx: Context, name: str) -> int:
    """Delete catalog `name`: its table with every row, and its metadata
    (data.catalog.delete). Returns the number of rows it had."""
    catalog = _visible(ctx, name)
    ctx.authorize(catalog)
    rows = catalog.n_rows
    connection = ctx.db.connection()
    sa.Table(catalog.table_name, sa.MetaData()).drop(connection, checkfirst=True)
    ctx.db.delete(catalog)
    ctx.db.flush()
    ctx.note(f"{rows} rows")
    return rows
