"""Reading source catalogs from files and loading them into a table of their own.

Four formats are read, always in chunks of rows so that memory stays bounded for millions of
them: FITS binary or ASCII tables (astropy, memory-mapped, converted a slice at a time),
VOTable (astropy; XML has no random access, so a VOTable is parsed whole), CSV and ECSV
(pyarrow's streaming reader) and Parquet (pyarrow, batch by batch). Each column's metadata
(unit, UCD, description) comes from the file: FITS `TUNITn`/`TUCDn`/`TCOMMn` cards and
astropy's serialized column block, VOTable FIELDs, the ECSV header, Parquet field metadata or
astropy's `table_meta_yaml`; a JSON sidecar may add to or override it.

Every chunk becomes a set of Arrow arrays of one of a few storage kinds (VOTable datatypes:
boolean, short, int, long, float, double, char); NaN and infinite floats are stored as NULL.
Rows go in with the fastest path of each database: `executemany` of tuples on SQLite, binary
`COPY ... FROM STDIN` (rows laid out by numpy and Arrow, no number formatted or parsed) on
PostgreSQL, all inside the caller's transaction, so a failure anywhere leaves nothing behind.
The spatial index is built after the rows are in: q3c on PostgreSQL when the extension can be
used, otherwise an integer nested-HEALPix column with a B-tree index.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.orm import Session

from astrocloud.core.errors import ValidationFailed
from astrocloud.core.i18n import _
from astrocloud.data.catalogs.models import TABLE_PREFIX

FORMATS = ("fits", "votable", "csv", "parquet")
SUFFIXES = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".fits.gz": "fits",
            ".fit.gz": "fits", ".vot": "votable", ".votable": "votable", ".xml": "votable",
            ".vot.xml": "votable", ".csv": "csv", ".tsv": "csv", ".ecsv": "csv",
            ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
CHUNK_ROWS = 100_000
CSV_BLOCK_BYTES = 8 << 20  # types are inferred from the first block: make it a big one
MAX_COLUMN_NAME = 60
MAX_COLUMNS = 1000
#: q3c: cones up to this radius (degrees) are searched with q3c_join(ra0, dec0, ra, dec, r),
#: larger ones with q3c_radial_query. Both use the q3c index and find the same rows, but
#: q3c_radial_query's hundred index ranges take PostgreSQL 3-5 ms to plan, q3c_join's four a
#: tenth of that; beyond a degree its coarser ranges read too many rows (docs/performance.md).
Q3C_JOIN_MAX_RADIUS = 1.0
HEALPIX_ORDER = 12  # 0.86 arcmin pixels: tight enough for arcsecond cones, cheap for degrees
HEALPIX_COLUMN = "_healpix"

# Storage kinds, named by their VOTable datatype.
ARROW_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(), "short": pa.int16(), "int": pa.int32(), "long": pa.int64(),
    "float": pa.float32(), "double": pa.float64(), "char": pa.string(),
}
NUMERIC = ("short", "int", "long", "float", "double")

# Words a column may not be called as such (SQL and ADQL keywords): they get a trailing "_".
# Common astronomical names that some SQL dialects reserve but every TAP service accepts (dec,
# date, time, position, size, ...) are left alone.
_RESERVED_WORDS = """
all alter analyse analyze and any array as asc asymmetric authorization between binary both by
case cast check collate collation column concurrently constraint create cross current_catalog
current_date current_role current_schema current_time current_timestamp current_user default
deferrable delete desc distinct do drop else end except exists false fetch for foreign freeze
from full grant group having ilike in initially inner insert intersect into is isnull join
lateral leading left like limit localtime localtimestamp natural not notnull null offset on only
or order outer overlaps placing primary references returning right select session_user similar
some symmetric table tablesample then to top trailing true union unique update user using
variadic verbose when where window with oid rowid
"""
RESERVED = frozenset(_RESERVED_WORDS.split())

RA_NAMES = ("ra", "ra_deg", "radeg", "raj2000", "ra_j2000", "ra2000", "ra_icrs", "raicrs",
            "ra_obs", "alpha", "alpha_j2000", "ra_d", "_raj2000", "ra_")
DEC_NAMES = ("dec", "dec_deg", "decdeg", "dej2000", "decj2000", "dec_j2000", "de_j2000",
             "dec2000", "de_icrs", "dec_icrs", "deicrs", "dec_obs", "de", "decl", "delta",
             "delta_j2000", "dec_d", "_dej2000", "dec_")

Progress = Callable[[int, int | None], None]


# ---- errors ------------------------------------------------------------------------------------


def _file_error(message: str, **params: Any) -> ValidationFailed:
    return ValidationFailed(message, field="file", **params)


class UnreadableCatalog(ValidationFailed):
    """The file cannot be read as the format it claims to be (or any format)."""

    code = "unreadable-catalog"


class InvalidPositions(ValidationFailed):
    """Rows whose position is missing or outside RA [0, 360), Dec [-90, 90]."""

    code = "invalid-positions"


def _unreadable(path: Path, fmt: str, exc: BaseException) -> UnreadableCatalog:
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    return UnreadableCatalog(_("%(file)s cannot be read as %(format)s: %(reason)s"),
                             field="file", file=path.name, format=fmt, reason=reason)


# ---- columns and names -------------------------------------------------------------------------


@dataclass
class SourceColumn:
    """A column as the file describes it."""

    name: str
    kind: str  # a key of ARROW_TYPES
    unit: str = ""
    ucd: str = ""
    description: str = ""
    xtype: str | None = None


@dataclass
class PlannedColumn:
    """A column of the catalog's table: the file's column, named for the database."""

    source: str
    name: str
    kind: str
    unit: str = ""
    ucd: str = ""
    description: str = ""
    xtype: str | None = None
    indexed: bool = False


def sanitise_names(names: list[str]) -> list[str]:
    """Database names for the file's column names: lower-case ASCII letters, digits and
    underscores, starting with a letter, at most 60 characters, no SQL/ADQL keyword, and no
    two alike (a suffix _2, _3, ... tells repeats apart)."""
    out: list[str] = []
    used: set[str] = set()
    for raw in names:
        text = unicodedata.normalize("NFKD", str(raw)).encode("ascii", "ignore").decode()
        name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "col"
        if not name[0].isalpha():
            name = f"c_{name}"
        name = name[:MAX_COLUMN_NAME].rstrip("_")
        if name in RESERVED:
            name += "_"
        base, n = name, 2
        while name in used:
            suffix = f"_{n}"
            name = base[:MAX_COLUMN_NAME - len(suffix)] + suffix
            n += 1
        used.add(name)
        out.append(name)
    return out


def kind_of(arrow_type: pa.DataType) -> tuple[str, str | None] | None:
    """(storage kind, xtype) for an Arrow type, or None for what a catalog cannot hold
    (arrays, structures, raw bytes)."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "boolean", None
    if t in (pa.int8(), pa.uint8(), pa.int16()):
        return "short", None
    if t in (pa.uint16(), pa.int32()):
        return "int", None
    if pa.types.is_integer(t):
        return "long", None
    if t in (pa.float16(), pa.float32()):
        return "float", None
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "double", None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "char", None
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "char", "timestamp"
    return None


def conform(array: pa.Array | pa.ChunkedArray, kind: str) -> pa.Array:
    """A chunk of a column as its storage kind; non-finite floats become NULL."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    target = ARROW_TYPES[kind]
    if kind == "char":
        if pa.types.is_timestamp(array.type):
            return pc.strftime(array, format="%Y-%m-%dT%H:%M:%S")
        if pa.types.is_date(array.type):
            return pc.strftime(array, format="%Y-%m-%d")
        if pa.types.is_binary(array.type) or pa.types.is_fixed_size_binary(array.type):
            array = array.cast(pa.binary()).cast(pa.string())  # FITS text: ASCII, space-padded
            array = pc.utf8_rtrim_whitespace(array)
        # no database text holds NUL (PostgreSQL refuses it): it is dropped
        return pc.replace_substring(array.cast(target), "\x00", "")
    if array.type != target:
        array = array.cast(target)
    if kind in ("float", "double") and array.null_count < len(array):
        finite = pc.is_finite(array)
        if not pc.all(finite).as_py():
            array = pc.if_else(finite, array, pa.scalar(None, target))
    return array


def is_degrees(unit: str) -> bool:
    if not unit.strip():
        return True
    from astropy import units as u

    try:
        return u.Unit(unit.strip().lower().replace("degrees", "deg"), parse_strict="raise") == u.deg
    except (ValueError, TypeError):
        return False


# ---- readers -----------------------------------------------------------------------------------


@dataclass
class CatalogFile:
    """An opened input: its columns (as the file has them) and its rows in chunks."""

    path: Path
    format: str
    columns: list[SourceColumn]
    total_rows: int | None
    batches: Callable[[], Iterator[dict[str, pa.Array]]]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (column, why)
    title: str = ""
    description: str = ""
    close: Callable[[], None] = lambda: None


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The format given, or the one the file name says."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise _file_error(_("Unknown format “%(format)s”; choose one of %(formats)s."),
                              format=fmt, formats=", ".join(FORMATS))
        return fmt
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    raise _file_error(_("Cannot tell the format of %(file)s from its name; give it as one of "
                        "%(formats)s."), file=path.name, formats=", ".join(FORMATS))


def open_catalog(path: Path, fmt: str | None = None) -> CatalogFile:
    """Open `path` for reading (its format named or told by its name)."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    if not path.is_file():
        raise _file_error(_("There is no file %(file)s."), file=str(path))
    opener = {"fits": _open_fits, "votable": _open_votable, "csv": _open_csv,
              "parquet": _open_parquet}[fmt]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unknown units and the like: kept as written
            source = opener(path)
    except ValidationFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader has its own errors; all say "unreadable"
        raise _unreadable(path, fmt, exc) from None
    if not source.columns:
        raise _file_error(_("%(file)s has no column a catalog can hold."), file=path.name)
    if len(source.columns) > MAX_COLUMNS:
        raise _file_error(_("%(file)s has %(n)s columns; a catalog may have at most %(max)s."),
                          file=path.name, n=len(source.columns), max=MAX_COLUMNS)
    return source


def read_chunks(source: CatalogFile) -> Iterator[dict[str, pa.Array]]:
    """The file's rows, chunk by chunk; a reading error says which file could not be read."""
    iterator = source.batches()
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                batch = next(iterator)
        except StopIteration:
            return
        except ValidationFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - as in open_catalog
            raise _unreadable(source.path, source.format, exc) from None
        yield batch


def _astropy_column_meta(lines: list[str]) -> dict[str, dict]:
    """unit/description/ucd per column from astropy's serialized-columns YAML."""
    from astropy.table.meta import get_header_from_yaml

    try:
        header = get_header_from_yaml(lines)
    except Exception:  # noqa: BLE001 - metadata is a bonus; a broken block is ignored
        return {}
    out = {}
    for col in header.get("datatype", []) or []:
        if not isinstance(col, dict) or "name" not in col:
            continue
        meta = col.get("meta") or {}
        out[str(col["name"])] = {"unit": str(col.get("unit") or ""),
                                 "description": str(col.get("description") or ""),
                                 "ucd": str(meta.get("ucd", "") if hasattr(meta, "get") else ""),
                                 "datatype": str(col.get("datatype") or "")}
    return out


def _numpy_chunk(values: np.ndarray, mask: np.ndarray | None) -> pa.Array:
    """A numpy slice (FITS is big-endian) and its mask of NULLs as an Arrow array."""
    if values.dtype.byteorder not in ("=", "|"):
        values = values.astype(values.dtype.newbyteorder("="))
    if values.dtype.kind == "O":
        return pa.array(values.tolist(), mask=mask if mask is not None and mask.any() else None)
    if mask is not None and mask.any():
        return pa.array(values, mask=mask)
    return pa.array(values)


def _astropy_table_file(path: Path, fmt: str, table, meta: dict[str, dict],
                        close: Callable[[], None]) -> CatalogFile:
    """A CatalogFile over an astropy Table in memory (a parsed VOTable), read in slices."""
    columns, skipped, names = [], [], []
    for col in table.itercols():
        if col.shape[1:] != ():
            skipped.append((col.name, "array-valued"))
            continue
        dtype = col.dtype
        if dtype.kind in "SUO":
            kind, xtype = "char", None
        else:
            found = kind_of(pa.from_numpy_dtype(dtype.newbyteorder("=")))
            if found is None:
                skipped.append((col.name, f"type {dtype}"))
                continue
            kind, xtype = found
        info = meta.get(col.name, {})
        unit = info.get("unit") or (col.unit.to_string() if col.unit is not None else "")
        ucd = info.get("ucd") or str((col.meta or {}).get("ucd", "") or "")
        description = info.get("description") or str(col.description or "")
        columns.append(SourceColumn(col.name, kind, unit.strip(), ucd.strip(),
                                    description.strip(), xtype))
        names.append(col.name)
    total = len(table)

    def batches() -> Iterator[dict[str, pa.Array]]:
        for start in range(0, total, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, total)
            chunk = {}
            for name in names:
                col = table[name]
                part = col[start:stop]
                mask = np.asarray(part.mask) if hasattr(part, "mask") else None
                chunk[name] = _numpy_chunk(np.asarray(getattr(part, "data", part)), mask)
            yield chunk

    title = str(table.meta.get("name", "") or "")
    description = str(table.meta.get("description", "") or "")
    return CatalogFile(path, fmt, columns, total, batches, skipped, title, description, close)


def _fits_meta(header) -> dict[str, dict]:
    """unit/ucd/description per column of a FITS table header: TUNITn as written (astropy
    would rewrite units in its own syntax), TUCDn and TCOMMn as STILTS and TOPCAT write them,
    and astropy's own serialized-columns block where present."""
    meta: dict[str, dict] = {}
    for i in range(1, int(header.get("TFIELDS", 0)) + 1):
        name = str(header.get(f"TTYPE{i}", "")).strip()
        if name:
            meta[name] = {"unit": str(header.get(f"TUNIT{i}", "") or "").strip(),
                          "ucd": str(header.get(f"TUCD{i}", "") or "").strip(),
                          "description": str(header.get(f"TCOMM{i}", "") or "").strip()}
    comments = [str(c) for c in header.get("COMMENT", [])]
    if "--BEGIN-ASTROPY-SERIALIZED-COLUMNS--" in comments:
        start = comments.index("--BEGIN-ASTROPY-SERIALIZED-COLUMNS--") + 1
        end = comments.index("--END-ASTROPY-SERIALIZED-COLUMNS--") \
            if "--END-ASTROPY-SERIALIZED-COLUMNS--" in comments else len(comments)
        for name, info in _astropy_column_meta(comments[start:end]).items():
            entry = meta.setdefault(name, {})
            for key in ("unit", "ucd", "description"):
                if info.get(key) and not entry.get(key):
                    entry[key] = info[key]
    return meta


def _open_fits(path: Path) -> CatalogFile:
    """The first table extension, memory-mapped and read a slice of rows at a time (astropy
    converts each slice: scaled integers, logicals, TNULL), so memory holds one chunk."""
    from astropy.io import fits

    hdul = fits.open(path, memmap=True)
    try:
        hdu = next((h for h in hdul if isinstance(h, fits.BinTableHDU | fits.TableHDU)), None)
        if hdu is None:
            raise _file_error(_("%(file)s has no table extension."), file=path.name)
        data = hdu.data
        total = 0 if data is None else len(data)
        meta = _fits_meta(hdu.header)
        columns, skipped, fields = [], [], []
        sample = data[:1] if total else None
        for col in hdu.columns:
            probe = np.asarray(sample.field(col.name)) if sample is not None else \
                np.empty(0, dtype=col.dtype)
            dtype = probe.dtype
            if probe.ndim > 1 or dtype.kind == "O" or dtype.subdtype is not None:
                skipped.append((col.name, "array-valued"))
                continue
            if dtype.kind in "SU":
                kind, xtype = "char", None
            else:
                found = kind_of(pa.from_numpy_dtype(dtype.newbyteorder("=")))
                if found is None:
                    skipped.append((col.name, f"type {dtype}"))
                    continue
                kind, xtype = found
            null = None
            if col.null not in (None, "") and dtype.kind in "iu" and \
                    isinstance(hdu, fits.BinTableHDU):
                null = int(col.null) * (col.bscale or 1) + (col.bzero or 0)
            info = meta.get(col.name, {})
            columns.append(SourceColumn(col.name, kind, info.get("unit", ""),
                                        info.get("ucd", ""), info.get("description", ""),
                                        xtype))
            fields.append((col.name, null))
    except BaseException:
        hdul.close()
        raise

    def batches() -> Iterator[dict[str, pa.Array]]:
        for start in range(0, total, CHUNK_ROWS):
            part = data[start:start + CHUNK_ROWS]
            chunk = {}
            for name, null in fields:
                values = np.asarray(part.field(name))
                chunk[name] = _numpy_chunk(values, values == null if null is not None else None)
            yield chunk

    title = str(hdu.header.get("EXTNAME", "") or "")
    return CatalogFile(path, "fits", columns, total, batches, skipped, title, "", hdul.close)


def _open_votable(path: Path) -> CatalogFile:
    """The first table of a VOTable (any serialization astropy reads: TABLEDATA, BINARY,
    BINARY2, FITS), with its FIELDs' units (CDS syntax), UCDs and descriptions."""
    from astropy.io.votable import parse

    votable = parse(str(path), verify="ignore")
    resource_table = votable.get_first_table()
    table = resource_table.to_table(use_names_over_ids=True)
    meta = {}
    for field_, col in zip(resource_table.fields, table.itercols(), strict=False):
        unit = ""
        if field_.unit is not None:
            try:
                unit = field_.unit.to_string("cds")
            except (ValueError, TypeError):
                unit = str(field_.unit)
        meta[col.name] = {"unit": unit, "ucd": field_.ucd or "",
                          "description": field_.description or ""}
    source = _astropy_table_file(path, "votable", table, meta, lambda: None)
    source.title = source.title or str(resource_table.name or "")
    source.description = source.description or str(resource_table.description or "")
    return source


def _ecsv_header(path: Path) -> tuple[int, dict[str, dict], str]:
    """(lines to skip, column metadata, delimiter) of an ECSV file's YAML header."""
    lines = []
    with path.open("r", encoding="utf-8", errors="replace") as f:
        first = f.readline()
        if not first.startswith("# %ECSV"):
            return 0, {}, ""
        lines.append(first)
        for line in f:
            if not line.startswith("#"):
                break
            lines.append(line)
    body = [line[2:] if line.startswith("# ") else line[1:] for line in lines[1:]]
    meta = _astropy_column_meta([line.rstrip("\n") for line in body])
    delimiter = " "
    match = re.search(r"^delimiter:\s*['\"]?(.)['\"]?\s*$", "".join(body), re.M)
    if match:
        delimiter = match.group(1)
    return len(lines), meta, delimiter


ECSV_TYPES = {"bool": pa.bool_(), "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(),
              "int64": pa.int64(), "uint8": pa.uint8(), "uint16": pa.uint16(),
              "uint32": pa.uint32(), "uint64": pa.uint64(), "float16": pa.float32(),
              "float32": pa.float32(), "float64": pa.float64(), "string": pa.string()}
SIDECAR_TYPES = {**ARROW_TYPES, "unicodeChar": pa.string(), "unsignedByte": pa.uint8()}


def _open_csv(path: Path, column_types: dict[str, str] | None = None) -> CatalogFile:
    from pyarrow import csv as pacsv

    skip, meta, delimiter = _ecsv_header(path)
    if not delimiter:
        delimiter = "\t" if path.name.lower().endswith((".tsv", ".tsv.gz")) else ","
    types = {name: ECSV_TYPES[info["datatype"]] for name, info in meta.items()
             if info.get("datatype") in ECSV_TYPES}
    for name, datatype in (column_types or {}).items():
        if datatype in SIDECAR_TYPES:
            types[name] = SIDECAR_TYPES[datatype]
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(skip_rows=skip, block_size=CSV_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(column_types=types,
                                             strings_can_be_null=False))
    columns, skipped = [], []
    for f in reader.schema:
        found = ("char", None) if f.type == pa.null() else kind_of(f.type)  # empty: text
        if found is None:
            skipped.append((f.name, f"type {f.type}"))
            continue
        info = meta.get(f.name, {})
        columns.append(SourceColumn(f.name, found[0], info.get("unit", ""), info.get("ucd", ""),
                                    info.get("description", ""), found[1]))
    keep = [c.name for c in columns]

    def batches() -> Iterator[dict[str, pa.Array]]:
        for batch in reader:
            yield {name: batch.column(name) for name in keep}

    return CatalogFile(path, "csv", columns, None, batches, skipped, close=reader.close)


def _open_parquet(path: Path) -> CatalogFile:
    import pyarrow.parquet as pq

    # Without pre-buffering: the pre-buffered ranges stay cached while the file is open, so
    # memory would grow with the file instead of staying at one chunk.
    parquet = pq.ParquetFile(path, pre_buffer=False)
    schema = parquet.schema_arrow
    astropy_meta = {}
    if schema.metadata and b"table_meta_yaml" in schema.metadata:
        yaml_text = schema.metadata[b"table_meta_yaml"].decode("utf-8", "replace")
        astropy_meta = _astropy_column_meta(yaml_text.splitlines())
    columns, skipped = [], []
    for f in schema:
        found = kind_of(f.type)
        if found is None:
            skipped.append((f.name, f"type {f.type}"))
            continue
        info = dict(astropy_meta.get(f.name, {}))
        for key, value in (f.metadata or {}).items():
            key = key.decode("utf-8", "replace").lower()
            if key in ("unit", "ucd", "description"):
                info[key] = value.decode("utf-8", "replace")
        columns.append(SourceColumn(f.name, found[0], info.get("unit", ""), info.get("ucd", ""),
                                    info.get("description", ""), found[1]))
    keep = [c.name for c in columns]

    def batches() -> Iterator[dict[str, pa.Array]]:
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=keep):
            yield {name: batch.column(name) for name in keep}

    return CatalogFile(path, "parquet", columns, parquet.metadata.num_rows, batches, skipped,
                       close=parquet.close)


def reopen_csv_with_types(source: CatalogFile, column_types: dict[str, str]) -> CatalogFile:
    """A CSV opened again with the datatypes a sidecar gives (the first opening inferred)."""
    source.close()
    try:
        return _open_csv(source.path, column_types)
    except Exception as exc:  # noqa: BLE001 - as in open_catalog
        raise _unreadable(source.path, "csv", exc) from None


def read_sidecar(path: Path) -> dict:
    """A JSON sidecar file (see `sidecar`); a clear error when it cannot be read."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationFailed(_("The metadata file %(file)s cannot be read: %(reason)s"),
                               field="meta", file=Path(path).name, reason=str(exc)[:200]) \
            from None
    return sidecar(data, Path(path).name)


def sidecar(data: Any, name: str = "meta") -> dict:
    """Catalog metadata given beside the file: {"title", "description", "columns": {name:
    {unit, ucd, description, datatype}}} (or "columns" as a list of objects with a "name")."""
    columns = data.get("columns", {}) if isinstance(data, dict) else None
    if isinstance(columns, list):
        columns = {str(c.get("name")): c for c in columns if isinstance(c, dict)}
    if not isinstance(columns, dict) or not all(isinstance(v, dict) for v in columns.values()):
        raise ValidationFailed(_("The metadata file %(file)s must hold an object with "
                                 "“columns”: {name: {unit, ucd, description}}."),
                               field="meta", file=name)
    return {"title": str(data.get("title", "") or ""),
            "description": str(data.get("description", "") or ""),
            "columns": {str(k): {key: str(v[key]) for key in
                                 ("unit", "ucd", "description", "datatype") if v.get(key)}
                        for k, v in columns.items()}}


# ---- planning: names, metadata, position ------------------------------------------------------


def plan_columns(source: CatalogFile, overrides: dict[str, dict] | None = None
                 ) -> list[PlannedColumn]:
    """The table's columns: database names, and metadata from the file then `overrides`."""
    overrides = overrides or {}
    names = sanitise_names([c.name for c in source.columns])
    planned = []
    for col, name in zip(source.columns, names, strict=True):
        extra = overrides.get(col.name) or overrides.get(name) or {}
        planned.append(PlannedColumn(
            source=col.name, name=name, kind=col.kind, xtype=col.xtype,
            unit=str(extra.get("unit", col.unit))[:64],
            ucd=str(extra.get("ucd", col.ucd))[:255],
            description=str(extra.get("description", col.description))))
    return planned


def _find_named(planned: list[PlannedColumn], wanted: str) -> PlannedColumn | None:
    for match in (lambda c: c.source == wanted, lambda c: c.name == wanted,
                  lambda c: c.source.lower() == wanted.lower()):
        found = [c for c in planned if match(c)]
        if found:
            return found[0]
    return None


def _ucd_words(ucd: str) -> set[str]:
    return {w.strip().lower() for w in ucd.split(";") if w.strip()}


def _by_ucd(planned: list[PlannedColumn], word: str) -> list[PlannedColumn]:
    main = [c for c in planned if {word, "meta.main"} <= _ucd_words(c.ucd)]
    if main:
        return main
    return [c for c in planned if word in _ucd_words(c.ucd)]


# What is wrong with a position column, said for each coordinate (whole sentences, so that
# each translates as a whole).
POSITION_PROBLEMS = {
    "ra": SimpleNamespace(
        unknown=_("There is no column “%(name)s” for the right ascension; the columns are: "
                  "%(columns)s."),
        ambiguous=_("Several columns could hold the right ascension (%(columns)s); choose "
                    "one with --ra."),
        missing=_("No column holds the right ascension (by its UCD pos.eq.ra;meta.main or "
                  "a common name such as ra, raj2000); name it with --ra."),
        text=_("The right ascension column “%(name)s” does not hold numbers."),
        unit=_("The right ascension column “%(name)s” is in %(unit)s; positions must be in "
               "degrees."),
    ),
    "dec": SimpleNamespace(
        unknown=_("There is no column “%(name)s” for the declination; the columns are: "
                  "%(columns)s."),
        ambiguous=_("Several columns could hold the declination (%(columns)s); choose one "
                    "with --dec."),
        missing=_("No column holds the declination (by its UCD pos.eq.dec;meta.main or a "
                  "common name such as dec, dej2000); name it with --dec."),
        text=_("The declination column “%(name)s” does not hold numbers."),
        unit=_("The declination column “%(name)s” is in %(unit)s; positions must be in "
               "degrees."),
    ),
}


def find_position(planned: list[PlannedColumn], ra: str | None = None,
                  dec: str | None = None) -> tuple[PlannedColumn, PlannedColumn]:
    """The right ascension and declination columns: those named, else by UCD
    (pos.eq.ra;meta.main / pos.eq.dec;meta.main), else by a common name (ra, raj2000, ...)."""
    found = []
    for axis, wanted, word, common in (("ra", ra, "pos.eq.ra", RA_NAMES),
                                       ("dec", dec, "pos.eq.dec", DEC_NAMES)):
        problem = POSITION_PROBLEMS[axis]
        if wanted:
            column = _find_named(planned, wanted)
            if column is None:
                raise ValidationFailed(problem.unknown, field=axis, name=wanted,
                                       columns=", ".join(c.source for c in planned)[:1000])
        else:
            candidates = _by_ucd(planned, word)
            if len(candidates) > 1:
                raise ValidationFailed(problem.ambiguous, field=axis,
                                       columns=", ".join(c.source for c in candidates))
            if not candidates:
                lowered = {c.source.lower(): c for c in reversed(planned)}
                candidates = [lowered[n] for n in common if n in lowered][:1]
            if not candidates:
                raise ValidationFailed(problem.missing, field=axis)
            column = candidates[0]
        if column.kind not in NUMERIC:
            raise ValidationFailed(problem.text, field=axis, name=column.source)
        if not is_degrees(column.unit):
            raise ValidationFailed(problem.unit, field=axis, name=column.source,
                                   unit=column.unit)
        found.append(column)
    ra_col, dec_col = found
    if ra_col is dec_col:
        raise ValidationFailed(_("The right ascension and the declination must be two "
                                 "different columns."), field="dec")
    # The catalog's main position is stated the way TAP and cone-search clients look for it.
    for column, word in ((ra_col, "pos.eq.ra"), (dec_col, "pos.eq.dec")):
        for other in planned:
            if other is not column and {word, "meta.main"} <= _ucd_words(other.ucd):
                other.ucd = word
        if "meta.main" not in _ucd_words(column.ucd) or word not in _ucd_words(column.ucd):
            column.ucd = f"{word};meta.main"
        column.unit = column.unit or "deg"
        column.indexed = True
    return ra_col, dec_col


# ---- the table ---------------------------------------------------------------------------------


class Real32(sa.types.TypeDecorator):
    """A single-precision float read back as the decimal it was written as (1.1, not
    1.100000023841858), on SQLite as PostgreSQL's `real` gives it."""

    impl = sa.REAL
    cache_ok = True

    def process_result_value(self, value, dialect):
        if value is None or dialect.name != "sqlite":
            return value
        return float(str(np.float32(value)))


def sql_type(datatype: str) -> sa.types.TypeEngine:
    return {"boolean": sa.Boolean(create_constraint=False), "short": sa.SmallInteger(),
            "int": sa.Integer(), "long": sa.BigInteger(), "float": Real32(),
            "double": sa.Double(), "char": sa.Text()}[datatype]


def table_of(table_name: str, columns: list[tuple[str, str]], healpix: bool) -> sa.Table:
    """The SQLAlchemy table of a catalog: (name, datatype) per column, plus the HEALPix column
    when that is its spatial index. A fresh MetaData each time: nothing is cached between
    requests or processes, so a new or deleted catalog is seen at once."""
    cols = [sa.Column(name, sql_type(datatype)) for name, datatype in columns]
    if healpix:
        cols.append(sa.Column(HEALPIX_COLUMN, sa.BigInteger()))
    return sa.Table(table_name, sa.MetaData(), *cols)


def table_name_for(name: str) -> str:
    return f"{TABLE_PREFIX}{name}"


def q3c_usable(session: Session) -> bool:
    """PostgreSQL with the q3c extension installed, or installable here and now (CREATE
    EXTENSION in a savepoint, so that lacking the right leaves the transaction intact)."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return False
    if connection.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'q3c'").first():
        return True
    if not connection.exec_driver_sql(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'q3c'").first():
        return False
    try:
        with session.begin_nested():
            session.connection().exec_driver_sql("CREATE EXTENSION IF NOT EXISTS q3c")
    except sa.exc.DBAPIError:
        return False
    return True


@dataclass
class LoadResult:
    rows: int
    skipped_rows: int


def _degrees(array: pa.Array) -> np.ndarray:
    """A position column's chunk as float64 degrees, NULL as NaN."""
    return array.cast(pa.float64()).to_numpy(zero_copy_only=False)


def _python_values(array: pa.Array) -> list:
    """A column chunk as Python values for executemany (numpy's tolist is the fast path)."""
    if pa.types.is_floating(array.type):
        return array.to_numpy(zero_copy_only=False).tolist()  # NULL → NaN, stored as NULL
    if array.null_count == 0 and (pa.types.is_integer(array.type)
                                  or pa.types.is_boolean(array.type)):
        return array.to_numpy(zero_copy_only=False).tolist()
    if pa.types.is_string(array.type):
        return array.to_numpy(zero_copy_only=False).tolist()
    return array.to_pylist()


def load_rows(session: Session, table: sa.Table, planned: list[PlannedColumn],
              ra: PlannedColumn, dec: PlannedColumn, chunks: Iterator[dict[str, pa.Array]], *,
              healpix: bool, skip_invalid: bool = False, total: int | None = None,
              progress: Progress | None = None) -> LoadResult:
    """Insert every row into `table` (already created) within the session's transaction."""
    from astropy import units as u
    from astropy_healpix import lonlat_to_healpix

    connection = session.connection()
    raw = connection.connection.driver_connection
    quote = connection.dialect.identifier_preparer.quote
    names = [c.name for c in planned] + ([HEALPIX_COLUMN] if healpix else [])
    column_list = ", ".join(quote(n) for n in names)
    postgres = connection.dialect.name == "postgresql"
    nside = 2 ** HEALPIX_ORDER
    ra_at, dec_at = planned.index(ra), planned.index(dec)
    done = skipped = seen = 0
    copy_cm = cursor = None
    if postgres:
        from psycopg.copy import QueuedLibpqWriter

        cursor = raw.cursor()
        # Binary COPY: no number is formatted or parsed. A writer thread sends each chunk
        # while the next one is read and rendered.
        copy_cm = cursor.copy(f"COPY {quote(table.name)} ({column_list}) FROM STDIN "
                              "(FORMAT binary)", writer=QueuedLibpqWriter(cursor))
        copy = copy_cm.__enter__()
        copy.write(PG_COPY_HEADER)
        kinds = [c.kind for c in planned] + (["long"] if healpix else [])
    else:
        cursor = raw.cursor()
        insert = (f"INSERT INTO {quote(table.name)} ({column_list}) "
                  f"VALUES ({', '.join('?' for _ in names)})")
    try:
        for chunk in chunks:
            n = len(next(iter(chunk.values()))) if chunk else 0
            arrays = []
            for col in planned:
                try:
                    arrays.append(conform(chunk[col.source], col.kind))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise ValidationFailed(
                        _("Column “%(name)s” near row %(row)s: %(reason)s"), field="file",
                        name=col.source, row=seen + 1, reason=str(exc)[:200]) from None
            ra_values, dec_values = _degrees(arrays[ra_at]), _degrees(arrays[dec_at])
            with np.errstate(invalid="ignore"):
                good = ((ra_values >= 0) & (ra_values < 360)
                        & (dec_values >= -90) & (dec_values <= 90))
            if not good.all():
                bad = np.flatnonzero(~good)
                if not skip_invalid:
                    first = int(bad[0])
                    raise InvalidPositions(
                        _("Row %(row)s has no valid position (RA %(ra)s, Dec %(dec)s): RA must "
                          "be in [0, 360) and Dec in [-90, 90] degrees. Nothing was imported; "
                          "the option --skip-invalid skips such rows and counts them."),
                        field="file", row=seen + first + 1, ra=_shown(ra_values[first]),
                        dec=_shown(dec_values[first]))
                keep = pa.array(good)
                arrays = [pc.filter(a, keep) for a in arrays]
                ra_values, dec_values = ra_values[good], dec_values[good]
                skipped += len(bad)
            seen += n
            if healpix:
                pixels = lonlat_to_healpix(ra_values * u.deg, dec_values * u.deg, nside,
                                           order="nested")
                arrays.append(pa.array(np.asarray(pixels, dtype=np.int64)))
            if len(arrays[0]):
                if postgres:
                    copy.write(binary_rows(arrays, kinds))
                else:
                    cursor.executemany(insert, zip(*[_python_values(a) for a in arrays],
                                                   strict=True))
                done += len(arrays[0])
            if progress is not None:
                progress(seen, total)
    except BaseException as exc:
        if copy_cm is not None:
            # the first error is the one to report
            with contextlib.suppress(Exception):
                copy_cm.__exit__(type(exc), exc, exc.__traceback__)
            copy_cm = None
        raise
    finally:
        if copy_cm is not None:
            copy.write(PG_COPY_TRAILER)
            copy_cm.__exit__(None, None, None)
        cursor.close()
    return LoadResult(rows=done, skipped_rows=skipped)


def _shown(value: float) -> str:
    return "missing" if not np.isfinite(value) else f"{value:.6g}"


# PostgreSQL's binary COPY format: a signature, flags and header-extension length, then per
# row a field count and, per field, its length (-1: NULL) and its bytes in network order.
PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
PG_COPY_TRAILER = b"\xff\xff"
_BINARY = {"boolean": ("?", 1), "short": (">i2", 2), "int": (">i4", 4), "long": (">i8", 8),
           "float": (">f4", 4), "double": (">f8", 8)}
_NULL_CELL = pa.scalar(b"\xff\xff\xff\xff", pa.binary())


def _fixed(raw: bytes | np.ndarray, width: int, n: int) -> pa.Array:
    """`n` cells of `width` bytes, laid end to end in `raw`, as a binary array."""
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), n, [None, pa.py_buffer(raw)]).cast(pa.binary())


def _binary_cells(array: pa.Array, kind: str) -> pa.Array:
    """One column of a chunk as binary COPY cells (length prefix and value), built by numpy
    and Arrow for the whole chunk at once."""
    n = len(array)
    valid = array.is_valid() if array.null_count else None
    if kind == "char":
        data = pc.fill_null(array.cast(pa.binary()), b"")
        lengths = pc.binary_length(data).to_numpy(zero_copy_only=False).astype(">i4")
        cells = pc.binary_join_element_wise(_fixed(lengths.tobytes(), 4, n), data, b"")
    else:
        code, width = _BINARY[kind]
        record = np.empty(n, dtype=[("length", ">i4"), ("value", code)])
        record["length"] = width
        if array.null_count:  # a NULL cell carries no value: any placeholder will do
            array = pc.fill_null(array, pa.scalar(kind != "boolean" and 0, array.type))
        record["value"] = array.to_numpy(zero_copy_only=False)
        cells = _fixed(record.tobytes(), 4 + width, n)
    if valid is not None:
        cells = pc.if_else(valid, cells, _NULL_CELL)
    return cells


def binary_rows(arrays: list[pa.Array], kinds: list[str]) -> memoryview:
    """A chunk of rows in PostgreSQL's binary COPY format (without header and trailer)."""
    n = len(arrays[0])
    count = _fixed(np.full(n, len(arrays), dtype=">i2").tobytes(), 2, n)
    rows = pc.binary_join_element_wise(
        count, *[_binary_cells(a, k) for a, k in zip(arrays, kinds, strict=True)], b"")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=n + 1,
                            offset=rows.offset * 4)
    return memoryview(rows.buffers()[2])[int(offsets[0]):int(offsets[-1])]


def create_spatial_index(session: Session, table: sa.Table, ra: str, dec: str,
                         kind: str) -> None:
    """The index cone searches use, built once the rows are in (faster than row by row)."""
    connection = session.connection()
    quote = connection.dialect.identifier_preparer.quote
    if kind == "q3c":
        connection.exec_driver_sql(
            f"CREATE INDEX {quote(f'ix_{table.name}_q3c')} ON {quote(table.name)} "
            f"(q3c_ang2ipix({quote(ra)}, {quote(dec)}))")
    else:
        sa.Index(f"ix_{table.name}_healpix", table.c[HEALPIX_COLUMN]).create(connection)
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ANALYZE {quote(table.name)}")


# ---- cone search helpers ----------------------------------------------------------------------


def healpix_ranges(ra: float, dec: float, radius: float, order: int = HEALPIX_ORDER
                   ) -> list[tuple[int, int]]:
    """[first, last] pixel ranges at `order` (nested) that cover the cone. The cone is cut at
    the coarsest order whose pixels are no smaller than a quarter of the radius, so a cone of
    any size is a few dozen ranges at most."""
    level = order
    while level > 0 and _pixel_size_deg(level) < radius / 4:
        level -= 1
    pixels = np.unique(_cone_pixels(ra, dec, radius, 2 ** level))
    return pixel_ranges(pixels, level, order)


def _cone_pixels(ra: float, dec: float, radius: float, nside: int):
    """The nested pixels overlapping a cone (degrees). astropy-healpix's public function
    takes Quantities, whose creation costs more than the search for a small cone (a third of a
    millisecond per cone search); its compiled function takes plain degrees, and is used when
    present (the public one otherwise)."""
    try:
        from astropy_healpix import _core
    except ImportError:  # pragma: no cover - another astropy-healpix layout
        _core = None
    if _core is not None and hasattr(_core, "healpix_cone_search"):
        return _core.healpix_cone_search(float(ra), float(dec), float(radius), nside, "nested")
    from astropy import units as u
    from astropy_healpix import core

    return core.healpix_cone_search(ra * u.deg, dec * u.deg, radius * u.deg, nside=nside,
                                    order="nested")


def pixel_ranges(pixels, level: int, order: int) -> list[tuple[int, int]]:
    """The nested pixels at `order` inside `pixels` (sorted, nested, at `level`), as merged
    (first, last) ranges."""
    shift = 2 * (order - level)
    ranges: list[tuple[int, int]] = []
    for pixel in [int(p) for p in pixels]:
        first, last = pixel << shift, ((pixel + 1) << shift) - 1
        if ranges and ranges[-1][1] + 1 == first:
            ranges[-1] = (ranges[-1][0], last)
        else:
            ranges.append((first, last))
    return ranges


@functools.lru_cache(maxsize=64)
def _pixel_size_deg(level: int) -> float:
    return float(np.degrees(np.sqrt(4 * np.pi / (12 * 4 ** level))))
