"""The TAP service's business: which tables a caller may query (ivoa.obscore over the archive,
one table per catalog, TAP_SCHEMA, their uploads), ADQL translated for the database, and the
asynchronous queries (UWS jobs) with their owners, limits and results.

The release rule is never re-implemented here: ivoa.obscore is the archive's own SELECT with the
data.file.read filter inside, a catalog is offered only to callers who may read it, and
TAP_SCHEMA shows the same catalogs the caller sees. The translator sees nothing else, so ADQL
cannot reach a row the caller may not read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import logging
import queue
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from astrocloud.core import columnar, errors
from astrocloud.core.db import SQLITE_MATH_FUNCTIONS, utcnow
from astrocloud.core.errors import NotFound, ValidationFailed
from astrocloud.core.i18n import _
from astrocloud.core.security.engine import load_subject
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, operation
from astrocloud.data.archive import services as archive
from astrocloud.data.catalogs import services as catalogs
from astrocloud.data.catalogs.importer import HEALPIX_COLUMN
from astrocloud.data.catalogs.importer import HEALPIX_ORDER as CATALOG_HEALPIX_ORDER
from astrocloud.data.vo import adql
from astrocloud.data.vo.columns import Column, Table
from astrocloud.data.vo.formats import Format, field_ids, parse_format, stream
from astrocloud.data.vo.models import (
    FINAL_PHASES,
    TapJob,
    TapSchemaColumn,
    TapSchemaKey,
    TapSchemaKeyColumn,
    TapSchemaSchema,
    TapSchemaState,
    TapSchemaTable,
)
from astrocloud.data.vo.votable import datalink_descriptor

log = logging.getLogger("astrocloud.tap")

BATCH_ROWS = 5000
UPLOAD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
LANGS = ("ADQL", "ADQL-2.0", "ADQL-2.1")


class TapOps(OperationSet):
    QUERY = Action("data.tap.query", doc="Query the published tables with ADQL (TAP).")
    JOB_READ = Query("data.tap.job.read", resource="tap_job",
                     doc="Follow asynchronous TAP queries and fetch their results.")
    JOB_MANAGE = Action("data.tap.job.manage", resource="tap_job",
                        doc="Create, change, run, abort and delete asynchronous TAP queries.")


# ---- what is published -------------------------------------------------------------------------

SCHEMAS = (
    ("ivoa", "IVOA-defined tables: ObsCore, the observations in the archive."),
    ("catalogs", "Source catalogs, one table each."),
    ("tap_schema", "The description of this service's tables and columns (TAP 1.1)."),
)
#: ADQL's reserved words (SQL-92's and ADQL's own): a column with such a name is published in
#: its delimited form ("size"), as TAP_SCHEMA asks, and must be written so in queries.
_RESERVED_WORDS = """
absolute action add all allocate alter and any are as asc assertion at authorization avg begin
between bit bit_length both by cascade cascaded case cast catalog char character char_length
character_length check close coalesce collate collation column commit connect connection
constraint constraints continue convert corresponding count create cross current current_date
current_time current_timestamp current_user cursor date day deallocate decimal declare default
deferrable deferred delete desc describe descriptor diagnostics disconnect distinct domain
double drop else end end-exec escape except exception exec execute exists external extract
false fetch first float for foreign found from full get global go goto grant group having hour
identity immediate in indicator initially inner input insensitive insert int integer intersect
interval into is isolation join key language last leading left level like local lower match max
min minute module month names national natural nchar next no not null nullif numeric
octet_length of on only open option or order outer output overlaps pad partial position
precision prepare preserve primary prior privileges procedure public read real references
relative restrict revoke right rollback rows schema scroll second section select session
session_user set size smallint some space sql sqlcode sqlerror sqlstate substring sum
system_user table temporary then time timestamp timezone_hour timezone_minute to trailing
transaction translate translation trim true union unique unknown update upper usage user using
value values varchar varying view when whenever where with work write year zone abs acos area
asin atan atan2 box ceiling centroid circle contains coord1 coord2 coordsys cos cot degrees
distance exp floor intersects log log10 mod pi point polygon power radians region rand round
sin sqrt top tan truncate
"""
ADQL_RESERVED = frozenset(_RESERVED_WORDS.split())


def adql_name(name: str) -> str:
    """A column's name as ADQL must write it: delimited when it is a reserved word or not a
    regular identifier."""
    if name.lower() in ADQL_RESERVED or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        return '"' + name.replace('"', '""') + '"'
    return name

_OBS = "obscore:"
OBSCORE_COLUMNS = (
    Column("dataproduct_type", "char", "*", None, None, "meta.code.class",
           _OBS + "ObsDataset.dataProductType", "Data product type: image, spectrum, cube …",
           principal=True, std=True),
    Column("calib_level", "short", None, None, None, "meta.code;obs.calib",
           _OBS + "ObsDataset.calibLevel",
           "Calibration level: 0 raw … 1 instrumental, 2 calibrated, 3 enhanced",
           principal=True, std=True),
    Column("obs_collection", "char", "*", None, None, "meta.id",
           _OBS + "DataID.Collection", "Name of the data collection", principal=True, std=True),
    Column("obs_id", "char", "*", None, None, "meta.id", _OBS + "DataID.observationID",
           "Observation identifier", principal=True, std=True),
    Column("obs_publisher_did", "char", "*", None, None, "meta.ref.ivoid",
           _OBS + "Curation.PublisherDID", "Publisher's dataset identifier (use with DataLink)",
           principal=True, std=True, indexed=True),
    Column("access_url", "char", "*", None, None, "meta.ref.url", _OBS + "Access.Reference",
           "URL of the data file", principal=True, std=True),
    Column("access_format", "char", "*", None, None, "meta.code.mime",
           _OBS + "Access.Format", "Format of the data file (MIME type)", std=True),
    Column("access_estsize", "long", None, None, "kbyte", "phys.size;meta.file",
           _OBS + "Access.Size", "Estimated size of the data file", std=True),
    Column("target_name", "char", "*", None, None, "meta.id;src", _OBS + "Target.Name",
           "Name of the target observed", principal=True, std=True, indexed=True),
    Column("s_ra", "double", None, None, "deg", "pos.eq.ra",
           _OBS + "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
           "Right ascension of the centre (ICRS)", principal=True, std=True, indexed=True),
    Column("s_dec", "double", None, None, "deg", "pos.eq.dec",
           _OBS + "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
           "Declination of the centre (ICRS)", principal=True, std=True, indexed=True),
    Column("s_fov", "double", None, None, "deg", "phys.angSize;instr.fov",
           _OBS + "Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
           "Diameter of the field of view", std=True),
    Column("s_region", "char", "*", None, None, "pos.outline;obs.field",
           _OBS + "Char.SpatialAxis.Coverage.Support.Area",
           "Footprint on the sky (STC-S polygon)", std=True),
    Column("s_resolution", "double", None, None, "arcsec", "pos.angResolution",
           _OBS + "Char.SpatialAxis.Resolution.Refval.value", "Spatial resolution (FWHM)",
           std=True),
    Column("s_xel1", "long", None, None, None, "meta.number", _OBS + "Char.SpatialAxis.numBins1",
           "Number of elements along the first spatial axis", std=True),
    Column("s_xel2", "long", None, None, None, "meta.number", _OBS + "Char.SpatialAxis.numBins2",
           "Number of elements along the second spatial axis", std=True),
    Column("t_min", "double", None, None, "d", "time.start;obs.exposure",
           _OBS + "Char.TimeAxis.Coverage.Bounds.Limits.StartTime", "Start time (MJD)",
           principal=True, std=True, indexed=True),
    Column("t_max", "double", None, None, "d", "time.end;obs.exposure",
           _OBS + "Char.TimeAxis.Coverage.Bounds.Limits.StopTime", "End time (MJD)",
           std=True),
    Column("t_exptime", "double", None, None, "s", "time.duration;obs.exposure",
           _OBS + "Char.TimeAxis.Coverage.Support.Extent", "Total exposure time",
           principal=True, std=True),
    Column("t_resolution", "double", None, None, "s", "time.resolution",
           _OBS + "Char.TimeAxis.Resolution.Refval.value", "Temporal resolution", std=True),
    Column("t_xel", "long", None, None, None, "meta.number", _OBS + "Char.TimeAxis.numBins",
           "Number of elements along the time axis", std=True),
    Column("em_min", "double", None, None, "m", "em.wl;stat.min",
           _OBS + "Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
           "Shortest wavelength observed", principal=True, std=True),
    Column("em_max", "double", None, None, "m", "em.wl;stat.max",
           _OBS + "Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
           "Longest wavelength observed", principal=True, std=True),
    Column("em_res_power", "double", None, None, None, "spect.resolution",
           _OBS + "Char.SpectralAxis.Resolution.ResolPower.refVal",
           "Spectral resolving power λ/Δλ", std=True),
    Column("em_xel", "long", None, None, None, "meta.number", _OBS + "Char.SpectralAxis.numBins",
           "Number of elements along the spectral axis", std=True),
    Column("o_ucd", "char", "*", None, None, "meta.ucd", _OBS + "Char.ObservableAxis.ucd",
           "UCD of the observable (e.g. phot.count)", std=True),
    Column("pol_states", "char", "*", None, None, "meta.code;phys.polarization",
           _OBS + "Char.PolarizationAxis.stateList", "Polarization states observed", std=True),
    Column("pol_xel", "long", None, None, None, "meta.number",
           _OBS + "Char.PolarizationAxis.numBins", "Number of polarization samples", std=True),
    Column("facility_name", "char", "*", None, None, "meta.id;instr.tel",
           _OBS + "Provenance.ObsConfig.Facility.name", "Telescope", principal=True, std=True),
    Column("instrument_name", "char", "*", None, None, "meta.id;instr",
           _OBS + "Provenance.ObsConfig.Instrument.name", "Instrument", principal=True,
           std=True),
    Column("obs_release_date", "char", "*", "timestamp", None, "time.release",
           _OBS + "Curation.releaseDate", "When the data became (or become) public, UTC",
           std=True),
    Column("proposal_id", "char", "*", None, None, "meta.id;obs.proposal",
           _OBS + "Provenance.Proposal.identifier",
           "Observing programme (proposal) the data was taken for"),
    Column("qc_grade", "char", "*", None, None, "meta.code.qual", None,
           "Quality-control grade: pass, warn or fail"),
)


def _col(name, datatype, description, *, arraysize=None, std=True, principal=True, unit=None,
         ucd=None) -> Column:
    if name == "description":  # free text, in any language
        datatype = "unicodeChar"
    return Column(name, datatype, arraysize or ("*" if datatype in ("char", "unicodeChar")
                                                else None),
                  None, unit, ucd, None, description, std=std, principal=principal)


TAP_SCHEMA_COLUMNS: dict[str, tuple[Column, ...]] = {
    "tap_schema.schemas": (
        _col("schema_name", "char", "Schema name, for reference to tap_schema.schemas"),
        _col("utype", "char", "lists the utypes of schemas"),
        _col("description", "char", "describes schemas in the tableset"),
        _col("schema_index", "int", "recommended sort order when listing schemas"),
    ),
    "tap_schema.tables": (
        _col("schema_name", "char", "the schema this table belongs to"),
        _col("table_name", "char", "the fully qualified table name"),
        _col("table_type", "char", "one of: table view"),
        _col("utype", "char", "lists the utype of tables in the tableset"),
        _col("description", "char", "describes tables in the tableset"),
        _col("table_index", "int", "recommended sort order when listing tables"),
    ),
    "tap_schema.columns": (
        _col("table_name", "char", "the table this column belongs to"),
        _col("column_name", "char", "the column name"),
        _col("datatype", "char", "lists the ADQL datatype of columns in the tableset"),
        _col("arraysize", "char", "lists the size of variable-length columns in the tableset"),
        _col("xtype", "char", "a DALI or custom extended type annotation"),
        _col("size", "int", "deprecated: use arraysize"),
        _col("description", "char", "describes the columns in the tableset"),
        _col("utype", "char", "lists the utypes of columns in the tableset"),
        _col("unit", "char", "lists the unit used for column values in the tableset"),
        _col("ucd", "char", "lists the UCDs of columns in the tableset"),
        _col("indexed", "int", "an indexed column; 1 means 1, 0 means 0"),
        _col("principal", "int", "a principal column; 1 means 1, 0 means 0"),
        _col("std", "int", "a standard column; 1 means 1, 0 means 0"),
        _col("column_index", "int", "recommended sort order when listing columns"),
    ),
    "tap_schema.keys": (
        _col("key_id", "char", "unique key identifier"),
        _col("from_table", "char", "fully qualified table name"),
        _col("target_table", "char", "fully qualified table name"),
        _col("utype", "char", "lists the utype of keys in the tableset"),
        _col("description", "char", "describes keys in the tableset"),
    ),
    "tap_schema.key_columns": (
        _col("key_id", "char", "unique key identifier"),
        _col("from_column", "char", "key column name in the from_table"),
        _col("target_column", "char", "key column name in the target_table"),
    ),
}
TAP_SCHEMA_MODELS = {"tap_schema.schemas": TapSchemaSchema, "tap_schema.tables": TapSchemaTable,
                     "tap_schema.columns": TapSchemaColumn, "tap_schema.keys": TapSchemaKey,
                     "tap_schema.key_columns": TapSchemaKeyColumn}
TAP_SCHEMA_DESCRIPTIONS = {
    "tap_schema.schemas": "The schemas of this service",
    "tap_schema.tables": "The tables of this service",
    "tap_schema.columns": "The columns of every table of this service",
    "tap_schema.keys": "Foreign keys between the tables of this service",
    "tap_schema.key_columns": "The columns of the foreign keys",
}
TAP_SCHEMA_KEYS = (
    ("tables_schema", "tap_schema.tables", "tap_schema.schemas", (("schema_name", "schema_name"),)),
    ("columns_table", "tap_schema.columns", "tap_schema.tables", (("table_name", "table_name"),)),
    ("keys_from", "tap_schema.keys", "tap_schema.tables", (("from_table", "table_name"),)),
    ("keys_target", "tap_schema.keys", "tap_schema.tables", (("target_table", "table_name"),)),
    ("key_columns_key", "tap_schema.key_columns", "tap_schema.keys", (("key_id", "key_id"),)),
)


OBSCORE = Table("ivoa.obscore", OBSCORE_COLUMNS, None,
                "ObsCore 1.1: one row per observation file in the archive (latest versions). "
                "Proprietary data is visible only to its programme's team until its release "
                "date.", utype="ivo://ivoa.net/std/ObsCore#core-1.1", table_type="view",
                ra="s_ra", dec="s_dec", spatial_index="healpix", healpix="healpix",
                healpix_order=archive.HEALPIX_ORDER)


def obscore_table(ctx: Context, base_url: str) -> Table:
    """ivoa.obscore over the archive files the caller may see."""
    return dataclasses.replace(OBSCORE, source=archive.obscore_source(ctx, base_url))


def _catalog_table(catalog, catalog_columns=None) -> Table:
    principal = {catalog.ra_column, catalog.dec_column}
    if catalog_columns is None:
        catalog_columns = catalog.columns
    columns = tuple(
        Column(c.name, c.datatype, c.arraysize or ("*" if c.datatype in ("char", "unicodeChar")
                                                   else None),
               c.xtype, c.unit or None, c.ucd or None, None, c.description or None,
               indexed=bool(c.indexed) or c.name in principal,
               principal=c.name in principal or "meta.main" in (c.ucd or "") or c.position < 4)
        for c in catalog_columns)
    kind = catalog.index_kind if catalog.index_kind in ("healpix", "q3c", "pgsphere") else None
    return Table(f"catalogs.{catalog.name}", columns,
                 catalogs.catalog_table(catalog, catalog_columns),
                 catalog.title or catalog.description or f"The catalog {catalog.name}",
                 ra=catalog.ra_column, dec=catalog.dec_column, spatial_index=kind,
                 healpix=HEALPIX_COLUMN if kind == "healpix" else None,
                 healpix_order=(catalog.healpix_order or CATALOG_HEALPIX_ORDER)
                 if kind == "healpix" else None)


def _tap_schema_table(name: str, catalog_ids: list[int] | None) -> Table:
    model = TAP_SCHEMA_MODELS[name]
    table = model.__table__
    columns = TAP_SCHEMA_COLUMNS[name]
    stmt = sa.select(*[table.c[c.name] for c in columns])
    if "catalog_id" in table.c and catalog_ids is not None:
        stmt = stmt.where(sa.or_(table.c.catalog_id.is_(None),
                                 table.c.catalog_id.in_(catalog_ids or [-1])))
    keys = tuple((target, pairs) for _key, source, target, pairs in TAP_SCHEMA_KEYS
                 if source == name)
    return Table(name, columns, stmt if catalog_ids is not None else table,
                 TAP_SCHEMA_DESCRIPTIONS[name], keys=keys)


def published_tables(ctx: Context, base_url: str) -> dict[str, Table]:
    """Every table the caller may query, by lower-case qualified name."""
    visible = catalogs.list_catalogs(ctx)
    tables = [obscore_table(ctx, base_url), *(_catalog_table(c) for c in visible),
              *(_tap_schema_table(n, [c.id for c in visible]) for n in TAP_SCHEMA_COLUMNS)]
    return {t.name.lower(): t for t in tables}


class PublishedTables(Mapping):
    """The tables the caller may query, by lower-case qualified name, each built when a query
    names it: a query of one catalog reads that catalog (through the security filter, as
    `published_tables` does) and nothing else, instead of every table the caller may see.
    Listing it (an unqualified name, a misspelt one) builds them all. Uploaded tables are
    `add`ed."""

    def __init__(self, ctx: Context, base_url: str):
        self.ctx, self.base_url = ctx, base_url
        self._built: dict[str, Table | None] = {}
        self._added: dict[str, Table] = {}
        self._all: dict[str, Table] | None = None
        self._catalog_ids: list[int] | None = None

    def add(self, table: Table) -> None:
        self._added[table.name.lower()] = table

    def __getitem__(self, key: str) -> Table:
        key = key.lower()
        if key in self._added:
            return self._added[key]
        if self._all is not None:
            return self._all[key]
        if key not in self._built:
            self._built[key] = self._build(key)
        table = self._built[key]
        if table is None:
            raise KeyError(key)
        return table

    def _build(self, key: str) -> Table | None:
        ctx = self.ctx
        if key == OBSCORE.name:
            return obscore_table(ctx, self.base_url)
        if key in TAP_SCHEMA_COLUMNS:
            sync_tap_schema(ctx.database, ctx.settings)
            if self._catalog_ids is None:
                self._catalog_ids = [c.id for c in catalogs.list_catalogs(ctx)]
            return _tap_schema_table(key, self._catalog_ids)
        schema, _dot, name = key.partition(".")
        if schema == "catalogs" and name:
            catalog = catalogs.find_catalog(ctx, name)
            if catalog is not None:
                return _catalog_table(catalog, catalogs.catalog_columns(ctx, catalog))
        return None

    def _everything(self) -> dict[str, Table]:
        if self._all is None:
            sync_tap_schema(self.ctx.database, self.ctx.settings)
            self._all = published_tables(self.ctx, self.base_url)
        return {**self._all, **self._added}

    def __iter__(self):
        return iter(self._everything())

    def __len__(self) -> int:
        return len(self._everything())


def _all_tables(ctx: Context) -> list[tuple[Table, int | None]]:
    """Every published table and the catalog it belongs to, whoever may see it: what
    TAP_SCHEMA's stored rows describe (each caller's view filters them)."""
    from astrocloud.data.catalogs.models import Catalog

    found: list[tuple[Table, int | None]] = [(OBSCORE, None)]
    for catalog in ctx.db.scalars(sa.select(Catalog).order_by(Catalog.name)):
        found.append((_catalog_table(catalog), catalog.id))
    for name in TAP_SCHEMA_COLUMNS:
        found.append((_tap_schema_table(name, None), None))
    return found


def _definitions() -> str:
    """A digest of the fixed tables' descriptions: a new release rewrites TAP_SCHEMA."""
    text = repr((SCHEMAS, OBSCORE_COLUMNS, TAP_SCHEMA_COLUMNS, TAP_SCHEMA_KEYS, "adql-names"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_DEFINITIONS = _definitions()


def _fingerprint(ctx: Context) -> str:
    from astrocloud.data.catalogs.models import Catalog

    rows = ctx.db.execute(sa.select(Catalog.id, Catalog.name, Catalog.updated_at)
                          .order_by(Catalog.id)).all()
    text = _DEFINITIONS + "|" + "|".join(f"{i}:{n}:{u.isoformat() if u else ''}"
                                         for i, n, u in rows)
    return hashlib.sha256(text.encode()).hexdigest()


_SYNC_LOCK = threading.Lock()


def sync_tap_schema(database, settings) -> None:
    """Bring the stored TAP_SCHEMA up to date with the catalogs when they changed (two small
    queries otherwise)."""

    def stored_marker(db) -> str | None:
        return db.scalar(sa.select(TapSchemaState.digest).where(TapSchemaState.id == 1))

    with Context(database=database, settings=settings) as ctx:
        digest = _fingerprint(ctx)
        current = stored_marker(ctx.db)
        ctx.db.rollback()
    if current == digest:
        return
    with _SYNC_LOCK, database.session() as db:
        if stored_marker(db) != digest:
            _write_tap_schema(Context(database=database, settings=settings, session=db),
                              digest)


def _write_tap_schema(ctx: Context, digest: str) -> None:
    db = ctx.db
    for model in (TapSchemaKeyColumn, TapSchemaKey, TapSchemaColumn, TapSchemaTable,
                  TapSchemaSchema):
        db.execute(sa.delete(model))
    for index, (name, description) in enumerate(SCHEMAS):
        db.add(TapSchemaSchema(schema_name=name, description=description, schema_index=index))
    for table_index, (table, catalog_id) in enumerate(_all_tables(ctx)):
        db.add(TapSchemaTable(table_name=table.name, schema_name=table.schema,
                              table_type=table.table_type, utype=table.utype,
                              description=table.description, table_index=table_index,
                              catalog_id=catalog_id))
        for index, column in enumerate(table.columns):
            db.add(TapSchemaColumn(
                table_name=table.name, column_name=adql_name(column.name),
                datatype=column.datatype,
                arraysize=column.arraysize, xtype=column.xtype,
                size=int(column.arraysize) if (column.arraysize or "").isdigit() else None,
                description=column.description, utype=column.utype, unit=column.unit,
                ucd=column.ucd, indexed=int(column.indexed), principal=int(column.principal),
                std=int(column.std), column_index=index, catalog_id=catalog_id))
        for key_id, source, target, pairs in TAP_SCHEMA_KEYS:
            if source == table.name:
                db.add(TapSchemaKey(key_id=key_id, from_table=source, target_table=target,
                                    catalog_id=catalog_id))
                for from_column, target_column in pairs:
                    db.add(TapSchemaKeyColumn(key_id=key_id, from_column=from_column,
                                              target_column=target_column))
    state = db.get(TapSchemaState, 1)
    if state is None:
        db.add(TapSchemaState(id=1, digest=digest))
    else:
        state.digest, state.updated_at = digest, utcnow()
    db.flush()


@operation(TapOps.QUERY, streaming=True)
def tableset(ctx: Context, base_url: str) -> list[Table]:
    """The tables the caller may query, for VOSI /tables (data.tap.query)."""
    return list(published_tables(ctx, base_url).values())


# ---- uploads -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Upload:
    """A table sent with a query: its name (tap_upload.<name>) and its VOTable bytes."""

    name: str
    content: bytes


def parse_upload_param(value: str) -> list[tuple[str, str]]:
    """UPLOAD=name,uri[;name,uri…] → [(name, uri)]. The uri is param:<part> (a part of the
    multipart request) or an http(s) URL."""
    pairs = []
    for item in (v for v in value.split(";") if v.strip()):
        if "," not in item:
            raise ValidationFailed(_("UPLOAD is a list of name,URI pairs separated by “;” "
                                     "(e.g. UPLOAD=mine,param:file)."), field="UPLOAD")
        name, uri = (p.strip() for p in item.split(",", 1))
        if not UPLOAD_NAME.match(name):
            raise ValidationFailed(_("An uploaded table's name is a letter followed by up to "
                                     "63 letters, digits or underscores, not “%(name)s”."),
                                   field="UPLOAD", name=name[:64])
        if not (uri.startswith("param:") or uri.startswith(("http://", "https://"))):
            raise ValidationFailed(_("An uploaded table is given as param:<name of the part> "
                                     "or as an http(s) URL, not “%(uri)s”."), field="UPLOAD",
                                   uri=uri[:100])
        pairs.append((name, uri))
    if len({n.lower() for n, _uri in pairs}) != len(pairs):
        raise ValidationFailed(_("Each uploaded table needs a name of its own."), field="UPLOAD")
    return pairs


def fetch_upload(url: str, max_bytes: int) -> bytes:
    """The VOTable at an http(s) URL, at most `max_bytes`."""
    import httpx

    try:
        with httpx.stream("GET", url, timeout=30, follow_redirects=True) as response:
            if response.status_code != 200:
                raise ValidationFailed(_("The table at %(url)s could not be fetched (HTTP "
                                         "%(status)s)."), field="UPLOAD", url=url[:200],
                                       status=response.status_code)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ValidationFailed(_("An uploaded table may be at most %(n)s bytes."),
                                           field="UPLOAD", n=max_bytes)
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise ValidationFailed(_("The table at %(url)s could not be fetched: %(reason)s"),
                               field="UPLOAD", url=url[:200], reason=str(exc)[:200]) from None


_UPLOAD_TYPES = {"boolean": ("boolean", sa.Boolean), "unsignedByte": ("short", sa.SmallInteger),
                 "short": ("short", sa.SmallInteger), "int": ("int", sa.Integer),
                 "long": ("long", sa.BigInteger), "float": ("float", sa.Float),
                 "double": ("double", sa.Float(precision=53)),
                 "char": ("char", sa.Text), "unicodeChar": ("unicodeChar", sa.Text)}


@dataclasses.dataclass
class UploadedTable:
    table: Table
    sql_table: sa.Table
    rows: list[tuple]


def read_upload(upload: Upload, max_rows: int) -> UploadedTable:
    """Parse an uploaded VOTable into a table definition and its rows; every problem is a
    clear error naming the table."""
    import warnings

    import numpy as np
    from astropy.io.votable import parse

    def bad(reason: str) -> ValidationFailed:
        return ValidationFailed(_("The uploaded table “%(name)s” is not a VOTable we can "
                                  "read: %(reason)s"), field="UPLOAD", name=upload.name,
                                reason=reason[:300])

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            votable = parse(io.BytesIO(upload.content), verify="ignore")
            first = votable.get_first_table()
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds for a broken file
        raise bad(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if len(first.array) > max_rows:
        raise ValidationFailed(_("An uploaded table may have at most %(n)s rows."),
                               field="UPLOAD", n=max_rows)
    columns: list[Column] = []
    sql_columns = []
    seen: set[str] = set()
    for index, field in enumerate(first.fields):
        name = re.sub(r"[^A-Za-z0-9_]", "_", field.name or f"col{index}")
        if not re.match(r"^[A-Za-z]", name):
            name = f"c_{name}"
        name = name[:60]
        while name.lower() in seen:
            name = f"{name}_{index}"
        seen.add(name.lower())
        scalar = field.arraysize in (None, "1") or field.datatype in ("char", "unicodeChar")
        datatype, sql_type = _UPLOAD_TYPES.get(field.datatype if scalar else "char",
                                               ("char", sa.Text))
        columns.append(Column(name, datatype, "*" if datatype in ("char", "unicodeChar") else
                              None, field.xtype, field.unit and str(field.unit), field.ucd,
                              None, field.description, sql=name.lower()))
        sql_columns.append(sa.Column(name.lower(), sql_type))
    if not columns:
        raise bad("it has no columns")
    table_name = f"tap_upload_{upload.name.lower()}_{secrets.token_hex(4)}"
    sql_table = sa.Table(table_name, sa.MetaData(), *sql_columns, prefixes=["TEMPORARY"])
    rows = []
    data = first.array
    mask = np.ma.getmaskarray(data) if hasattr(data, "mask") else None
    for i in range(len(data)):
        row = []
        for j, column in enumerate(columns):
            value = data[data.dtype.names[j]][i]
            masked = mask[data.dtype.names[j]][i] if mask is not None else False
            if np.ndim(masked) and np.all(masked) or (not np.ndim(masked) and masked):
                row.append(None)
                continue
            if column.datatype in ("char", "unicodeChar"):
                value = value.decode() if isinstance(value, bytes) else (
                    " ".join(str(v) for v in np.ravel(value)) if np.ndim(value) else str(value))
            elif isinstance(value, np.generic):
                value = value.item()
                if isinstance(value, float) and value != value:
                    value = None
            row.append(value)
        rows.append(tuple(row))
    table = Table(f"tap_upload.{upload.name}", tuple(columns), sql_table,
                  f"Uploaded with the query: {upload.name}")
    return UploadedTable(table, sql_table, rows)


# ---- running queries ---------------------------------------------------------------------------


@dataclasses.dataclass
class Prepared:
    """A query ready to run: its SQL (the caller's rights already compiled in), the output
    columns, limits and the uploaded tables it needs on its connection."""

    sql: str
    params: dict[str, Any]
    columns: list[Column]
    maxrec: int
    format: Format
    uploads: list[UploadedTable]
    timeout: float
    base_url: str = ""
    #: the translation's `plain`: rows of one table, each read row a result row
    plain: bool = False
    #: the LIMIT the translation put on the query (None: none)
    limit: int | None = None

    def extra_resources(self) -> list[bytes]:
        """A DataLink service descriptor when the result has ObsCore's publisher DIDs."""
        ids = field_ids(self.columns)
        for column, ident in zip(self.columns, ids, strict=True):
            if column.name.lower() == "obs_publisher_did" and self.base_url:
                return [datalink_descriptor(self.base_url, ident)]
        return []


def check_maxrec(settings, raw: str | int | None) -> int:
    if raw is None or raw == "":
        return settings.tap_default_maxrec
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ValidationFailed(_("MAXREC must be a whole number of rows, not “%(value)s”."),
                               field="MAXREC", value=str(raw)[:40]) from None
    if value < 0 or value > settings.tap_max_rows:
        raise ValidationFailed(_("MAXREC must be between 0 and %(max)s."), field="MAXREC",
                               max=settings.tap_max_rows)
    return value


def check_lang(lang: str | None) -> None:
    if lang is None or not lang.strip():
        raise ValidationFailed(_("LANG is missing: this service speaks ADQL (LANG=ADQL)."),
                               field="LANG")
    if lang.strip().upper() not in LANGS:
        raise ValidationFailed(_("This service speaks ADQL only (LANG=ADQL), not "
                               "“%(lang)s”."), field="LANG", lang=lang[:40])


@operation(TapOps.QUERY, streaming=True)
def prepare_query(ctx: Context, *, query: str | None, lang: str | None,
                  maxrec: str | int | None, response_format: str | None,
                  uploads: Sequence[Upload] = (), base_url: str,
                  timeout: float | None = None) -> Prepared:
    """Check a TAP query and translate its ADQL over the tables the caller may read
    (data.tap.query). Nothing runs yet: `execute` streams the result."""
    settings = ctx.settings
    check_lang(lang)
    if query is None or not query.strip():
        raise ValidationFailed(_("QUERY is missing: send the ADQL query to run."),
                               field="QUERY")
    if len(query) > 100_000:
        raise ValidationFailed(_("The query is too long."), field="QUERY")
    limit = check_maxrec(settings, maxrec)
    fmt = parse_format(response_format)
    ctx.note(query[:500])
    uploaded = [read_upload(u, settings.tap_upload_max_rows) for u in uploads]
    tables = PublishedTables(ctx, base_url)
    for item in uploaded:
        tables.add(item.table)
    try:
        translation = adql.translate(query, tables, dialect=ctx.database.dialect, maxrec=limit)
    except adql.AdqlError as exc:
        raise ValidationFailed(_("The query cannot be run: %(reason)s"), field="QUERY",
                               reason=str(exc)) from None
    return Prepared(sql=translation.sql, params=dict(translation.params),
                    columns=list(translation.columns), maxrec=limit, format=fmt,
                    uploads=uploaded, timeout=float(timeout or settings.tap_sync_seconds),
                    base_url=base_url, plain=translation.plain, limit=translation.limit)


class QueryFailed(errors.ValidationFailed):
    """The database refused or stopped a translated query."""


@dataclasses.dataclass
class Outcome:
    rows: int = 0
    overflow: bool = False


def _prepare_connection(conn, prepared: Prepared, deadline: float, cancelled) -> None:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        raw = conn.connection.dbapi_connection
        adql.install_sqlite_functions(raw)

        def progress() -> int:
            return 1 if time.monotonic() > deadline or cancelled() else 0

        raw.set_progress_handler(progress, 20_000)
    for item in prepared.uploads:
        item.sql_table.create(conn)
        if item.rows:
            conn.execute(item.sql_table.insert(),
                         [dict(zip([c.name for c in item.sql_table.columns], row, strict=True))
                          for row in item.rows])
    if dialect == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY") if not prepared.uploads else \
            conn.exec_driver_sql("SET LOCAL transaction_read_only = on")
        ms = max(1, int((deadline - time.monotonic()) * 1000))
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
    else:
        conn.exec_driver_sql("PRAGMA query_only = ON")


def _release_connection(conn, prepared: Prepared) -> None:
    try:
        if conn.dialect.name == "sqlite":
            raw = conn.connection.dbapi_connection
            raw.set_progress_handler(None, 0)
            conn.rollback()
            conn.exec_driver_sql("PRAGMA query_only = OFF")
            for item in prepared.uploads:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS temp."{item.sql_table.name}"')
            conn.commit()
        else:
            conn.rollback()  # temporary tables go with the transaction's session … and:
            for item in prepared.uploads:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{item.sql_table.name}"')
            conn.commit()
    finally:
        conn.close()


def _database_error(exc: Exception, timeout: float) -> QueryFailed:
    text = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    lowered = first.lower()
    if "interrupted" in lowered or "statement timeout" in lowered or "canceling statement" in \
            lowered:
        return QueryFailed(_("The query ran longer than %(seconds)s seconds and was stopped. "
                             "Narrow it down, or run it asynchronously (/tap/async), which "
                             "allows longer."), field="QUERY", seconds=int(timeout))
    return QueryFailed(_("The database could not run the query: %(reason)s"), field="QUERY",
                       reason=first[:300])


def _driver_cursor(conn, prepared: Prepared):
    """The query on the database driver's own cursor: rows come back as plain tuples, without
    SQLAlchemy's per-row work (a quarter faster on a million rows), and on PostgreSQL from a
    server-side cursor, so memory stays bounded whatever the result's size."""
    compiled = sa.text(prepared.sql).compile(dialect=conn.dialect)
    values = compiled.construct_params(prepared.params)
    args = tuple(values[name] for name in compiled.positiontup) if compiled.positiontup \
        else values
    dbapi = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name=f"tap_{secrets.token_hex(6)}")
    else:
        cursor = dbapi.cursor()
    cursor.execute(compiled.string, args)
    return cursor


class _Prefetch:
    """Reads the next batches of rows in a thread of its own while the current one is being
    encoded: the database driver and the writer then share the time instead of adding it.
    `read` gives the next batch, an empty one at the end."""

    def __init__(self, read, first, errors: tuple):
        self.read, self.errors = read, errors
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.stopping = threading.Event()
        self.queue.put(first)
        self.thread = threading.Thread(target=self._run, name="tap-fetch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                rows = self.read()
                self._put(rows)
                if not len(rows):
                    return
        except BaseException as exc:  # handed to the reading side, which raises it
            self._put(exc)

    def _put(self, item) -> None:
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def next(self) -> list:
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)


# Large BINARY2 results are fetched as Arrow columns by an ADBC driver (SQLite, or PostgreSQL's
# binary COPY) and encoded a column at a time: no Python object per value on either side, and
# the driver reads the next batch without holding the GIL while one is encoded. Where that path
# cannot keep a rule of the ordinary one, the ordinary one runs instead:
# * SQLite's ADBC connection has none of the Python functions the translation may call, and no
#   progress handler to stop a query at its deadline (nor cancel): only `plain` queries (a
#   projection of one table: each row read is a row returned) that call none of those functions
#   go there, and the deadline is checked between batches, which come steadily;
# * uploads live on the ordinary connection; bound parameters stay there too;
# * SQLite's driver gives each column the type of its first batch (and fails at a later value of
#   another): the values are CAST to the column's declared type, and a column that is all NULL
#   in the first batch, where a later value could still differ, sends the query back;
# * PostgreSQL types without an exact Arrow counterpart (numeric, arrays, geometry, …) send it
#   back as well; read-only and statement_timeout are set as on the ordinary connection.
# Results that cannot exceed COLUMNAR_MIN_ROWS stay on the ordinary path (its connection is
# already open; the gain is in long results).

COLUMNAR_MIN_ROWS = 50_000
COLUMNAR_BATCH_ROWS = 20_000
_SQLITE_PYTHON_FUNCTIONS = re.compile(
    r"\b(" + "|".join(adql.SQLITE_FUNCTIONS + SQLITE_MATH_FUNCTIONS) + r")\s*\(", re.IGNORECASE)
_PG_TYPES = {"int2", "int4", "int8", "float4", "float8", "bool", "text", "varchar", "bpchar",
             "timestamp", "date"}
_SQL_TYPES = {"boolean": "INTEGER", "unsignedByte": "INTEGER", "short": "INTEGER",
              "int": "INTEGER", "long": "INTEGER", "float": "REAL", "double": "REAL",
              "char": "TEXT", "unicodeChar": "TEXT"}


def _columnar_possible(database, prepared: Prepared) -> bool:
    """Whether the query may take the columnar path (see `_execute_columnar`)."""
    if prepared.format.name != "votable" or prepared.uploads or prepared.params or \
            prepared.limit is None or prepared.limit < COLUMNAR_MIN_ROWS:
        return False
    if database.dialect == "sqlite" and (
            not prepared.plain or _SQLITE_PYTHON_FUNCTIONS.search(prepared.sql)):
        return False
    return columnar.uri(database.engine) is not None


def _columnar_fits(database, prepared: Prepared, first) -> bool:
    """Whether the first batch's Arrow types keep the ordinary path's values (see above)."""
    import pyarrow as pa

    for column, field, array in zip(prepared.columns, first.schema, first.columns, strict=True):
        if database.dialect == "postgresql":
            kind = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
            if kind not in _PG_TYPES:
                return False
        elif pa.types.is_null(field.type) or (
                len(array) and array.null_count == len(array) and
                _SQL_TYPES.get(column.datatype or "char") != "INTEGER"):
            return False
    return True


def _next_batch(reader):
    """The next record batch that has rows, None at the end."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return None
        if batch.num_rows:
            return batch


def _execute_columnar(database, prepared: Prepared, deadline: float, cancelled,
                      outcome: Outcome) -> Iterator[bytes] | None:
    """`execute` on the columnar path; None when the query must take the ordinary one."""
    if not _columnar_possible(database, prepared):
        return None
    try:
        conn = columnar.connect(database.engine)
    except Exception:  # noqa: BLE001 — no driver, or no connection: the ordinary path decides
        log.warning("TAP: no columnar connection, the ordinary path runs", exc_info=True)
        return None
    import adbc_driver_manager

    driver_errors = (adbc_driver_manager.Error,)
    sql = prepared.sql
    cursor = conn.cursor()
    try:
        if database.dialect == "postgresql":
            cursor.execute("SET TRANSACTION READ ONLY")
            ms = max(1, int((deadline - time.monotonic()) * 1000))
            cursor.execute(f"SET LOCAL statement_timeout = {ms}")
        else:
            cursor.adbc_statement.set_options(
                **{"adbc.sqlite.query.batch_rows": str(COLUMNAR_BATCH_ROWS)})
            names = [f"c{i}" for i in range(len(prepared.columns))]
            casts = ", ".join(
                f"CAST({n} AS {_SQL_TYPES[c.datatype or 'char']}) AS {n}"
                if not c.arraysize and not c.xtype else n
                for n, c in zip(names, prepared.columns, strict=True))
            sql = f"WITH adql_result({', '.join(names)}) AS ({sql}) " \
                  f"SELECT {casts} FROM adql_result"
        cursor.execute(sql)
        reader = cursor.fetch_record_batch()
        first = _next_batch(reader)
    except driver_errors as exc:
        with contextlib.suppress(Exception):
            cursor.close()
        columnar.release(database.engine, conn, reusable=database.dialect == "postgresql")
        if "timeout" in str(exc).lower() or "cancel" in str(exc).lower():
            raise _database_error(exc, prepared.timeout) from None
        return None  # the ordinary path runs it again, and reports what is wrong
    if first is not None and not _columnar_fits(database, prepared, first):
        with contextlib.suppress(Exception):
            cursor.close()
        columnar.release(database.engine, conn, reusable=False)
        return None

    log.debug("TAP: columnar fetch on %s", database.dialect)

    def read():
        batch = _next_batch(reader)
        return () if batch is None else batch

    fetch = _Prefetch(read, first, driver_errors) if first is not None else None

    def batches() -> Iterator:
        try:
            batch = fetch.next() if fetch is not None else ()
            while len(batch):
                room = prepared.maxrec - outcome.rows
                if len(batch) > room:
                    outcome.overflow = True
                    batch = batch.slice(0, room)
                if len(batch):
                    outcome.rows += len(batch)
                    yield batch
                if outcome.overflow or cancelled():
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("interrupted: the deadline passed")
                batch = fetch.next()
        except (*driver_errors, TimeoutError) as exc:
            raise _database_error(exc, prepared.timeout) from None

    def body() -> Iterator[bytes]:
        done = False
        try:
            yield from stream(prepared.format, prepared.columns, batches(),
                              status=lambda: "OVERFLOW" if outcome.overflow else "OK",
                              extra_resources=prepared.extra_resources())
            done = True
        finally:
            if fetch is not None:
                fetch.stop()
            with contextlib.suppress(Exception):
                reader.close()
            with contextlib.suppress(Exception):
                cursor.close()
            columnar.release(database.engine, conn, reusable=done)

    return body()


def execute(database, prepared: Prepared, *, cancelled=lambda: False,
            outcome: Outcome | None = None) -> Iterator[bytes]:
    """Run a prepared query and return its result as a stream of bytes in the requested
    format. The query runs (and its first rows are read) before this returns, so that a
    failure is an error response, not a broken stream."""
    outcome = outcome if outcome is not None else Outcome()
    deadline = time.monotonic() + prepared.timeout
    body = _execute_columnar(database, prepared, deadline, cancelled, outcome)
    if body is not None:
        return body
    conn = database.engine.connect()
    driver_errors = (sa.exc.DBAPIError, conn.dialect.loaded_dbapi.Error)
    try:
        _prepare_connection(conn, prepared, deadline, cancelled)
        cursor = _driver_cursor(conn, prepared)
        first = cursor.fetchmany(BATCH_ROWS)
    except driver_errors as exc:
        _release_connection(conn, prepared)
        raise _database_error(exc, prepared.timeout) from None
    except BaseException:
        _release_connection(conn, prepared)
        raise
    fetch = _Prefetch(lambda: cursor.fetchmany(BATCH_ROWS), first, driver_errors) \
        if len(first) == BATCH_ROWS else None

    def batches() -> Iterator[list]:
        rows = first if fetch is None else fetch.next()
        try:
            while rows:
                room = prepared.maxrec - outcome.rows
                if len(rows) > room:
                    outcome.overflow = True
                    rows = rows[:room]
                if rows:
                    outcome.rows += len(rows)
                    yield rows
                if outcome.overflow or cancelled() or fetch is None:
                    break
                rows = fetch.next()
        except driver_errors as exc:
            raise _database_error(exc, prepared.timeout) from None

    def body() -> Iterator[bytes]:
        try:
            yield from stream(prepared.format, prepared.columns, batches(),
                              status=lambda: "OVERFLOW" if outcome.overflow else "OK",
                              extra_resources=prepared.extra_resources())
        finally:
            if fetch is not None:
                fetch.stop()
            with contextlib.suppress(driver_errors):
                cursor.close()
            _release_connection(conn, prepared)

    return body()


# ---- asynchronous queries (UWS) ----------------------------------------------------------------


@operation(TapOps.JOB_MANAGE)
def create_job(ctx: Context, *, params: dict[str, str], uploads: Sequence[Upload] = (),
               base_url: str) -> TapJob:
    """A new asynchronous query in phase PENDING (data.tap.job.manage). Its parameters are
    checked now, so a job that cannot run is refused at once."""
    settings = ctx.settings
    lang = params.get("LANG")  # checked when the job runs: a bad one is the job's error
    maxrec = check_maxrec(settings, params.get("MAXREC")) if params.get("MAXREC") else None
    fmt_value = params.get("RESPONSEFORMAT") or params.get("FORMAT") or ""
    if fmt_value:
        parse_format(fmt_value)
    now = ctx.now()
    job = TapJob(id=secrets.token_hex(10), owner_id=ctx.subject.id,
                 run_id=(params.get("RUNID") or "")[:64], phase="PENDING",
                 lang=(lang or "ADQL")[:16], query=params.get("QUERY") or "", maxrec=maxrec,
                 response_format=fmt_value[:128], upload=params.get("UPLOAD") or "",
                 parameters={k: v for k, v in params.items() if k not in (
                     "LANG", "QUERY", "MAXREC", "RESPONSEFORMAT", "FORMAT", "UPLOAD", "RUNID",
                     "PHASE")},
                 created_at=now, execution_duration=settings.tap_async_seconds,
                 destruction=now + dt.timedelta(days=settings.tap_job_days))
    ctx.authorize(job)
    if len(job.query) > 100_000:
        raise ValidationFailed(_("The query is too long."), field="QUERY")
    job.uploads = _store_uploads(ctx, job, uploads)
    ctx.db.add(job)
    ctx.db.flush()
    ctx.set_target(job)
    return job


def _store_uploads(ctx: Context, job: TapJob, uploads: Sequence[Upload]) -> dict[str, str]:
    stored = {}
    for upload in uploads:
        uri = f"ac://jobs/tap/{job.id}/upload/{upload.name}.vot"
        ctx.runtime.storage.write(ctx.db, uri, [upload.content], owner_id=ctx.subject.id,
                                  content_type="application/x-votable+xml")
        stored[upload.name] = uri
    return stored


def _job(ctx: Context, job_id: str) -> TapJob:
    if not isinstance(job_id, str) or not re.fullmatch(r"[0-9a-f]{20}", job_id):
        raise NotFound(_("There is no job “%(id)s”."), id=str(job_id)[:40])
    return ctx.get_visible(TapJob, job_id, TapOps.JOB_READ, what="job")


@operation(TapOps.JOB_READ)
def get_job(ctx: Context, job_id: str) -> TapJob:
    """One asynchronous query, if the caller may see it (data.tap.job.read)."""
    job = _job(ctx, job_id)
    ctx.set_target(job)
    return job


@operation(TapOps.JOB_READ)
def list_jobs(ctx: Context, *, phases: Sequence[str] = (), after: dt.datetime | None = None,
              last: int | None = None) -> list[TapJob]:
    """The caller's own asynchronous queries, newest first (UWS 1.1 filters PHASE, AFTER,
    LAST). Anonymous callers' jobs are reachable by their id but listed to nobody."""
    ctx.authorize_listing()
    if not ctx.subject.authenticated:
        return []
    stmt = ctx.visible(sa.select(TapJob).where(TapJob.owner_id == ctx.subject.id))
    if phases:
        stmt = stmt.where(TapJob.phase.in_(list(phases)))
    if after is not None:
        stmt = stmt.where(TapJob.created_at > after)
    stmt = stmt.order_by(TapJob.created_at.desc(), TapJob.id)
    if last is not None:
        stmt = stmt.limit(last)
    return list(ctx.db.scalars(stmt.limit(1000)))


def _manage(ctx: Context, job_id: str) -> TapJob:
    job = _job(ctx, job_id)
    ctx.authorize(job, TapOps.JOB_MANAGE)
    return job


def _pending(job: TapJob) -> None:
    if job.phase != "PENDING":
        raise errors.Conflict(_("The job is %(phase)s: its parameters can change only while it "
                                "is PENDING."), phase=job.phase)


@operation(TapOps.JOB_MANAGE)
def update_job(ctx: Context, job_id: str, *, params: dict[str, str],
               uploads: Sequence[Upload] = ()) -> TapJob:
    """Change a PENDING job's parameters (data.tap.job.manage)."""
    job = _manage(ctx, job_id)
    _pending(job)
    if "LANG" in params:
        job.lang = params["LANG"][:16]
    if "QUERY" in params:
        job.query = params["QUERY"]
    if "MAXREC" in params:
        job.maxrec = check_maxrec(ctx.settings, params["MAXREC"])
    for name in ("RESPONSEFORMAT", "FORMAT"):
        if name in params:
            parse_format(params[name])
            job.response_format = params[name][:128]
    if "UPLOAD" in params:
        job.upload = params["UPLOAD"]
    if "RUNID" in params:
        job.run_id = params["RUNID"][:64]
    if uploads:
        job.uploads = {**(job.uploads or {}), **_store_uploads(ctx, job, uploads)}
    return job


@operation(TapOps.JOB_MANAGE)
def set_destruction(ctx: Context, job_id: str, when: dt.datetime) -> TapJob:
    """Move a job's destruction time; at most the configured lifetime from now."""
    job = _manage(ctx, job_id)
    latest = ctx.now() + dt.timedelta(days=ctx.settings.tap_job_days)
    job.destruction = min(when, latest)
    return job


@operation(TapOps.JOB_MANAGE)
def set_execution_duration(ctx: Context, job_id: str, seconds: int) -> TapJob:
    """Set how long a PENDING job may run: 0 means as long as the service allows."""
    job = _manage(ctx, job_id)
    _pending(job)
    limit = ctx.settings.tap_async_seconds
    job.execution_duration = limit if seconds <= 0 else min(seconds, limit)
    return job


@operation(TapOps.JOB_MANAGE)
def run_job(ctx: Context, job_id: str) -> TapJob:
    """PHASE=RUN: queue a PENDING job on the job system (a finished job stays as it is)."""
    job = _manage(ctx, job_id)
    if job.phase != "PENDING":
        return job
    job.phase = "QUEUED"
    job.platform_job_id = ctx.enqueue("data.tap.run", {"job_id": job.id})
    return job


@operation(TapOps.JOB_MANAGE)
def abort_job(ctx: Context, job_id: str) -> TapJob:
    """PHASE=ABORT: stop a job that has not finished."""
    job = _manage(ctx, job_id)
    if job.phase not in FINAL_PHASES:
        job.phase = "ABORTED"
        job.end_time = ctx.now()
    return job


@operation(TapOps.JOB_MANAGE)
def delete_job(ctx: Context, job_id: str) -> None:
    """Delete a job and its result (aborting it first if it is running)."""
    job = _manage(ctx, job_id)
    _remove_job_files(ctx, job)
    ctx.db.delete(job)


def _remove_job_files(ctx: Context, job: TapJob) -> None:
    storage = ctx.runtime.storage
    for uri in [job.result_uri, *(job.uploads or {}).values()]:
        if not uri:
            continue
        with contextlib.suppress(NotFound):
            storage.delete(ctx.db, storage.stat(ctx.db, uri))


@operation(TapOps.JOB_READ, streaming=True)
def open_result(ctx: Context, job_id: str) -> tuple[TapJob, Any, Iterator[bytes]]:
    """The result of a COMPLETED job: (job, stored file, bytes)."""
    job = _job(ctx, job_id)
    ctx.set_target(job)
    if job.phase != "COMPLETED" or not job.result_uri:
        raise NotFound(_("The job has no result yet: it is %(phase)s."), phase=job.phase)
    storage = ctx.runtime.storage
    stored = storage.stat(ctx.db, job.result_uri)
    return job, stored, storage.open(ctx.db, stored)


# ---- the worker's side -------------------------------------------------------------------------


def current_phase(database, job_id: str) -> str | None:
    """A job's phase as it is now (for a caller already shown the job: UWS blocking waits)."""
    return _phase(database, job_id)


def _phase(database, job_id: str) -> str | None:
    with database.session(write=False) as db:
        return db.scalar(sa.select(TapJob.phase).where(TapJob.id == job_id))


def _set(database, job_id: str, only_if: Sequence[str] = (), **values) -> bool:
    with database.session() as db:
        stmt = sa.update(TapJob).where(TapJob.id == job_id)
        if only_if:
            stmt = stmt.where(TapJob.phase.in_(list(only_if)))
        return db.execute(stmt.values(**values)).rowcount > 0


def run_async(runtime, job_id: str) -> dict:
    """The job system's task: run an asynchronous query as its owner, store its result in
    the data-access layer, and record the outcome in the job."""
    from astrocloud.core.db import utcnow

    database, settings = runtime.database, runtime.settings
    if not _set(database, job_id, ("QUEUED", "PENDING"), phase="EXECUTING",
                start_time=utcnow()):
        return {"skipped": job_id}
    with database.session(write=False) as db:
        job = db.get(TapJob, job_id)
        subject = None
        if job.owner_id is not None:
            from astrocloud.core.identity.models import User

            owner = db.get(User, job.owner_id)
            subject = load_subject(db, owner) if owner is not None else None
        params = {"query": job.query, "lang": job.lang, "maxrec": job.maxrec,
                  "format": job.response_format, "upload": job.upload,
                  "uploads": dict(job.uploads or {}), "duration": job.execution_duration}
    ctx = Context(database=database, settings=settings, via="worker", runtime=runtime)
    if subject is not None:
        ctx.subject = subject
    outcome = Outcome()
    try:
        uploads = _job_uploads(ctx, params)
        prepared = prepare_query(ctx, query=params["query"], lang=params["lang"],
                                 maxrec=params["maxrec"], response_format=params["format"],
                                 uploads=uploads, base_url=settings.base_url,
                                 timeout=params["duration"])
        cancelled = _cancel_check(database, job_id)
        chunks = execute(database, prepared, cancelled=cancelled, outcome=outcome)
        uri = f"ac://jobs/tap/{job_id}/result.{prepared.format.extension}"
        with database.session(write=False) as db:
            staged = runtime.storage.stage(db, uri, chunks)
        if cancelled():
            with database.session(write=False) as db:
                runtime.storage.discard(db, staged)
            return {"aborted": job_id}
        with database.session() as db:
            stored = runtime.storage.record(db, staged, owner_id=ctx.subject.id,
                                            content_type=prepared.format.media_type)
            db.execute(sa.update(TapJob).where(TapJob.id == job_id,
                                               TapJob.phase == "EXECUTING").values(
                phase="COMPLETED", end_time=utcnow(), result_uri=stored.uri,
                result_type=prepared.format.media_type, result_size=stored.size,
                row_count=outcome.rows, overflow=outcome.overflow))
        return {"rows": outcome.rows, "overflow": outcome.overflow}
    except errors.DomainError as exc:
        message = str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded in the job, never lost
        log.exception("TAP job %s failed", job_id)
        message = f"Internal error while running the query ({type(exc).__name__})."
    _set(database, job_id, ("EXECUTING",), phase="ERROR", end_time=utcnow(),
         error_message=message[:4000])
    return {"error": message[:200]}


def _cancel_check(database, job_id: str):
    state = {"at": 0.0, "aborted": False}

    def cancelled() -> bool:
        now = time.monotonic()
        if not state["aborted"] and now - state["at"] > 1.0:
            state["at"] = now
            state["aborted"] = _phase(database, job_id) != "EXECUTING"
        return state["aborted"]

    return cancelled


def _job_uploads(ctx: Context, params: dict) -> list[Upload]:
    if not params["upload"]:
        return []
    uploads = []
    storage = ctx.runtime.storage
    for name, uri in parse_upload_param(params["upload"]):
        if uri.startswith("param:"):
            stored_uri = params["uploads"].get(uri.removeprefix("param:")) or \
                params["uploads"].get(name)
            if not stored_uri:
                raise ValidationFailed(_("The upload “%(name)s” names a part that was not "
                                         "sent."), field="UPLOAD", name=name)
            with ctx.database.session(write=False) as db:
                stored = storage.stat(db, stored_uri)
                content = b"".join(storage.open(db, stored))
        else:
            content = fetch_upload(uri, ctx.settings.tap_upload_max_bytes)
        uploads.append(Upload(name, content))
    return uploads


def destroy_expired(runtime) -> dict:
    """Delete the jobs whose destruction time has passed, with their results."""
    from astrocloud.core.db import utcnow

    removed = 0
    with runtime.database.session() as db:
        ctx = Context(database=runtime.database, settings=runtime.settings, session=db,
                      runtime=runtime)
        for job in db.scalars(sa.select(TapJob).where(TapJob.destruction < utcnow())
                              .limit(500)):
            _remove_job_files(ctx, job)
            db.delete(job)
            removed += 1
    return {"removed": removed}
