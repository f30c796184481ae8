"""Streaming writers for the result tables of the VO services: VOTable (BINARY2 and TABLEDATA),
CSV, TSV, JSON and FITS — what TAP's RESPONSEFORMAT (and DALI's) may ask for.

    fmt = parse_format(request_value)             # ValidationFailed on an unknown value
    body = stream(fmt, columns, result.partitions(10_000), status="OVERFLOW")
    StreamingResponse(body, media_type=fmt.media_type)

Rows arrive in batches (tuples of Python values, e.g. SQLAlchemy rows; or Arrow record batches,
which BINARY2 encodes a column at a time without Python values) and leave as chunks of bytes,
one or more per batch, so memory stays bounded by one batch (FITS excepted: it needs the row
count in its header, so it collects the rows). The encoders work a batch at a time and a
column at a time with numpy, never a value at a time in Python where it can be helped: that is
what makes BINARY2 some twenty times faster than astropy's writer (benchmarks/bench_votable.py).

Conventions (one rule for every format):

* NULL is None; a float NaN is NULL as well. A `char`/`unicodeChar` column without an
  arraysize is written as variable length ("*"), never as a single character.
* Dates and datetimes become ISO 8601 "YYYY-MM-DDTHH:MM:SS[.ffffff]" without a time zone (aware
  ones are first turned to UTC); a date is midnight.
* Arrays (arraysize "n", "n*", "*", "AxB") are sequences of numbers; DALI geometry (xtype point,
  circle, polygon) is such a double array. In text formats an array is its numbers separated by
  spaces, as DALI writes them.
* VOTable `char` is ASCII. A `char` column whose first batch holds non-ASCII text is declared
  `unicodeChar` (UCS-2) instead, so nothing is lost; non-ASCII text showing up in a `char`
  column only after the first batch — when the FIELD has been sent already — is kept in
  TABLEDATA (XML carries it; readers warn) and becomes "?" per character in BINARY2, whose
  readers would otherwise fail. Declare columns of free text `unicodeChar` to avoid the guess.
* Characters XML 1.0 cannot carry (control characters but tab and newlines) become U+FFFD in
  XML text; BINARY2 carries them as they are. FITS strings are UTF-8 bytes.
* FIELD IDs are the column names when they are valid XML IDs, else made valid and unique (see
  `field_ids`): what a DataLink service descriptor's PARAM ref= points at.
"""

from __future__ import annotations

import binascii
import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import chain
from typing import Any

import numpy as np

from astrocloud.core import errors
from astrocloud.data.vo.columns import Column


@dataclass(frozen=True)
class Format:
    """An output format: its short name, the media type to answer with, a file extension."""

    name: str
    media_type: str
    extension: str


VOTABLE = Format("votable", "application/x-votable+xml", "vot")
VOTABLE_TD = Format("votable-td", "application/x-votable+xml;serialization=TABLEDATA", "vot")
CSV = Format("csv", "text/csv;header=present", "csv")
TSV = Format("tsv", "text/tab-separated-values", "tsv")
JSON = Format("json", "application/json", "json")
FITS = Format("fits", "application/fits", "fits")
FORMATS = (VOTABLE, VOTABLE_TD, CSV, TSV, JSON, FITS)

#: RESPONSEFORMAT values (lower case, no blanks) → format
ALIASES: dict[str, Format] = {
    "votable": VOTABLE, "application/x-votable+xml": VOTABLE, "text/xml": VOTABLE,
    "votable/b2": VOTABLE, "votable/binary2": VOTABLE,
    "application/x-votable+xml;serialization=binary2": VOTABLE,
    "votable/td": VOTABLE_TD, "votable/tabledata": VOTABLE_TD,
    "application/x-votable+xml;serialization=tabledata": VOTABLE_TD,
    "csv": CSV, "text/csv": CSV, "text/csv;header=present": CSV,
    "tsv": TSV, "text/tab-separated-values": TSV,
    "json": JSON, "application/json": JSON,
    "fits": FITS, "application/fits": FITS,
}


def parse_format(value: str | None) -> Format:
    """The format a TAP/DALI RESPONSEFORMAT value asks for (case-insensitive; none → VOTable
    BINARY2). Unknown values raise ValidationFailed on the field RESPONSEFORMAT."""
    if value is None or not value.strip():
        return VOTABLE
    key = "".join(value.split()).lower()
    if key in ALIASES:
        return ALIASES[key]
    raise errors.ValidationFailed(
        "“%(value)s” is not an output format offered here; RESPONSEFORMAT may be one of: "
        "%(accepted)s.", field="RESPONSEFORMAT", value=value[:100],
        accepted=", ".join(ALIASES))


# ----------------------------------------------------------------------------------------------
# What each column is, once

_NUMERIC = {"boolean": "?", "unsignedByte": "u1", "short": "i2", "int": "i4", "long": "i8",
            "float": "f4", "double": "f8"}
_TEXT = ("char", "unicodeChar")
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_SPECIAL = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NULL_FLOAT = float("nan")


@dataclass
class _Plan:
    """How one column is encoded: its datatype after promotion, element count (None when
    variable), length limit of bounded variable arrays, and numpy dtypes."""

    column: Column
    datatype: str
    arraysize: str | None
    count: int | None          # elements per value when fixed (1 for a scalar)
    limit: int | None          # "n*": at most n elements
    scalar: bool
    text: bool
    time: bool

    @property
    def native(self) -> np.dtype:
        return np.dtype(_NUMERIC[self.datatype])

    @property
    def big(self) -> np.dtype:
        """The element as BINARY2 stores it (big-endian; booleans as one ASCII byte)."""
        if self.datatype == "boolean" or self.datatype == "char":
            return np.dtype("u1")
        if self.datatype == "unicodeChar":
            return np.dtype(">u2")
        return self.native.newbyteorder(">")


def _plan(column: Column) -> _Plan:
    datatype = column.datatype or "char"
    if datatype not in _NUMERIC and datatype not in _TEXT:
        raise ValueError(f"column {column.name}: unknown VOTable datatype {datatype!r}")
    text = datatype in _TEXT
    arraysize = (column.arraysize or "").strip() or None
    if text and arraysize is None:
        arraysize = "*"
    count: int | None = 1
    limit = None
    if arraysize is not None:
        dims = arraysize.split("x")
        if any(not d.rstrip("*").isdigit() and d != "*" for d in dims) or \
                any(d.endswith("*") for d in dims[:-1]):
            raise ValueError(f"column {column.name}: bad arraysize {arraysize!r}")
        if text and len(dims) > 1:
            raise ValueError(f"column {column.name}: arrays of strings are not supported")
        fixed = 1
        for d in dims[:-1]:
            fixed *= int(d)
        last = dims[-1]
        if last.endswith("*"):
            count = None
            limit = fixed * int(last[:-1]) if last[:-1] else None
        else:
            count = fixed * int(last)
    scalar = arraysize is None
    return _Plan(column, datatype, arraysize, count, limit, scalar, text,
                 text and (column.xtype or "").lower() == "timestamp")


def field_ids(columns: Sequence[Column]) -> list[str]:
    """The FIELD IDs the VOTable writers give `columns`: the name when it is a valid XML ID
    not used before, else the name with invalid characters replaced and a number added."""
    seen: set[str] = set()
    ids = []
    for column in columns:
        base = column.name if _NCNAME.match(column.name) else \
            "_" + re.sub(r"[^A-Za-z0-9_.-]", "_", column.name)
        ident, n = base, 1
        while ident.lower() in seen:
            n += 1
            ident = f"{base}_{n}"
        seen.add(ident.lower())
        ids.append(ident)
    return ids


# ----------------------------------------------------------------------------------------------
# Python values → column arrays (shared by all the formats)

def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.replace(tzinfo=None).isoformat()
    return value.isoformat() + "T00:00:00"


def _as_text(value: Any, time: bool = False) -> str:
    if isinstance(value, str):
        if time and len(value) > 10 and value[10] == " ":  # SQL's "YYYY-MM-DD HH:MM:SS"
            return value[:10] + "T" + value[11:]
        return value
    if isinstance(value, (datetime, date)):
        return _iso(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


def _texts(plan: _Plan, values: Sequence[Any]) -> tuple[Sequence[str], np.ndarray | None, str]:
    """Strings ("" for NULL; cut at the arraysize when it has a bound), the NULL mask (None when
    there is no NULL), and all the strings joined (to test them at once: ASCII? XML?)."""
    strings, mask, joined = _all_texts(plan, values)
    size = plan.count if plan.count is not None else plan.limit
    if size is not None and len(joined) > size and any(len(s) > size for s in strings):
        strings = [s[:size] for s in strings]
        joined = "".join(strings)
    return strings, mask, joined


def _all_texts(plan: _Plan, values: Sequence[Any]) -> tuple[Sequence[str], np.ndarray | None,
                                                            str]:
    if plan.time:
        try:
            strings = list(map(datetime.isoformat, values))
            # Naive datetimes give 19 or 26 characters; more means an aware one.
            if set(map(len, strings)) <= {19, 26}:
                return strings, None, "".join(strings)
        except TypeError:
            pass
    else:
        try:
            joined = "".join(values)
            return values, None, joined
        except TypeError:
            pass
    mask = np.fromiter((v is None for v in values), bool, len(values))
    strings = ["" if v is None else _as_text(v, plan.time) for v in values]
    return strings, (mask if mask.any() else None), "".join(strings)


def _numbers(plan: _Plan, values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Scalars as a native numpy array, and the NULL mask (None when no NULL)."""
    kind = plan.native.kind
    if kind == "f":
        try:
            array = np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            array = np.array([_float(v) for v in values], dtype=np.float64)
        mask = np.isnan(array)
        return array, (mask if mask.any() else None)
    if kind == "b":
        if None in values:
            mask = np.fromiter((v is None for v in values), bool, len(values))
            return np.array([bool(v) for v in values], dtype=bool), mask
        return np.array(values, dtype=bool), None
    try:
        return np.array(values, dtype=np.int64), None
    except (TypeError, ValueError, OverflowError):
        mask = np.fromiter((v is None for v in values), bool, len(values))
        array = np.array([_int(v) for v in values], dtype=np.int64)
        return array, (mask if mask.any() else None)


def _float(value: Any) -> float:
    try:
        return _NULL_FLOAT if value is None else float(value)
    except (TypeError, ValueError):
        return _NULL_FLOAT


def _int(value: Any) -> int:
    try:
        return 0 if value is None else int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


def _element_array(plan: _Plan, value: Any) -> np.ndarray:
    """One array value as a flat native numpy array (floats: None → NaN; ints: None → 0)."""
    if isinstance(value, (bytes, bytearray, memoryview)) and plan.datatype == "unsignedByte":
        return np.frombuffer(bytes(value), np.uint8)
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    try:
        return np.asarray(value, dtype=plan.native).ravel()
    except (TypeError, ValueError):
        flat = list(chain.from_iterable(v if isinstance(v, (list, tuple)) else (v,)
                                        for v in value))
        convert = _float if plan.native.kind == "f" else _int
        return np.array([convert(v) for v in flat], dtype=plan.native)


def _arrays(plan: _Plan, values: Sequence[Any]) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Array values as flat native arrays (bounded and fixed sizes applied), and the NULLs."""
    mask = np.fromiter((v is None for v in values), bool, len(values))
    empty = np.empty(0, plan.native)
    arrays = [empty if v is None else _element_array(plan, v) for v in values]
    if plan.count is not None:
        fill = np.nan if plan.native.kind == "f" else 0
        arrays = [a if len(a) == plan.count else
                  np.concatenate([a[:plan.count],
                                  np.full(max(0, plan.count - len(a)), fill, plan.native)])
                  for a in arrays]
    elif plan.limit is not None:
        arrays = [a[:plan.limit] for a in arrays]
    return arrays, (mask if mask.any() else None)


# ----------------------------------------------------------------------------------------------
# XML

def _xml_text(text: str) -> str:
    if not _XML_SPECIAL.search(text):
        return text
    text = _NOT_XML.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_attr(text: str) -> str:
    text = _NOT_XML.sub("\ufffd", str(text))
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;")
            .replace("\t", "&#9;"))


def _attrs(**attrs: str | None) -> str:
    return "".join(f' {k}="{_xml_attr(v)}"' for k, v in attrs.items() if v is not None)


def _votable_head(plans: list[_Plan], status: str, infos: Mapping[str, str] | None,
                  table_name: str, serialization: str, description: str | None = None) -> bytes:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
             'xsi:schemaLocation="http://www.ivoa.net/xml/VOTable/v1.3 '
             'http://www.ivoa.net/xml/VOTable/v1.3">',
             '<RESOURCE type="results">',
             f'<INFO{_attrs(name="QUERY_STATUS", value="OK")}/>']
    lines += [f"<INFO{_attrs(name=str(k), value=str(v))}/>" for k, v in (infos or {}).items()]
    lines.append(f"<TABLE{_attrs(name=table_name)}>")
    if description:
        lines.append(f"<DESCRIPTION>{_xml_text(description)}</DESCRIPTION>")
    ids = field_ids([p.column for p in plans])
    for plan, ident in zip(plans, ids, strict=True):
        c = plan.column
        attrs = _attrs(name=c.name, ID=ident, datatype=plan.datatype, arraysize=plan.arraysize,
                       xtype=c.xtype or None, unit=c.unit or None, ucd=c.ucd or None,
                       utype=c.utype or None)
        if c.description:
            lines.append(f"<FIELD{attrs}>\n<DESCRIPTION>{_xml_text(c.description)}"
                         "</DESCRIPTION>\n</FIELD>")
        else:
            lines.append(f"<FIELD{attrs}/>")
    if serialization == "binary2":
        lines.append('<DATA><BINARY2><STREAM encoding="base64">\n')
    else:
        lines.append("<DATA><TABLEDATA>\n")
    return "\n".join(lines).encode()


def _votable_tail(status: str, extra_resources: Sequence[bytes | str], data_end: str) -> bytes:
    parts = [data_end, "</TABLE>\n"]
    status = status() if callable(status) else status
    if status != "OK":
        parts.append(f"<INFO{_attrs(name='QUERY_STATUS', value=status)}/>\n")
    parts.append("</RESOURCE>\n")
    head = "".join(parts).encode()
    extras = [r if isinstance(r, bytes) else r.encode() for r in extra_resources]
    return head + b"\n".join(extras) + (b"\n" if extras else b"") + b"</VOTABLE>\n"


def _promote(plans: list[_Plan], first: Any) -> None:
    """Declare `char` columns unicodeChar when the first batch (rows, or an Arrow record batch)
    holds non-ASCII text in them."""
    if first is None or not len(first):
        return
    arrow = _is_arrow(first)
    for i, plan in enumerate(plans):
        if plan.datatype == "char" and not plan.time:
            if arrow:
                strings = _arrow_strings(first.column(i))
                if strings is not None:
                    if (strings[1] >= 0x80).any():
                        plan.datatype = "unicodeChar"
                    continue
                values = first.column(i).to_pylist()
            else:
                values = [row[i] for row in first]
            if not _texts(plan, values)[2].isascii():
                plan.datatype = "unicodeChar"


# ----------------------------------------------------------------------------------------------
# BINARY2

class _Base64Lines:
    """Base64 in lines of 76 characters, fed any amount of bytes at a time."""

    LINE = 57  # input bytes per line

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, data: bytes) -> bytes:
        if self.rest:
            data = self.rest + data
        whole = len(data) // self.LINE * self.LINE
        self.rest = data[whole:]
        if not whole:
            return b""
        encoded = np.frombuffer(binascii.b2a_base64(memoryview(data)[:whole], newline=False),
                                np.uint8).reshape(-1, 76)
        lines = np.empty((encoded.shape[0], 77), np.uint8)
        lines[:, :76] = encoded
        lines[:, 76] = 10
        return lines.tobytes()

    def close(self) -> bytes:
        rest, self.rest = self.rest, b""
        return binascii.b2a_base64(rest) if rest else b""


def _binary_column(plan: _Plan, values: Sequence[Any]):
    """One column of a batch for BINARY2: (NULL mask, fixed array) for fixed-size values, or
    (NULL mask, (element counts, byte lengths, bytes)) for variable-size ones."""
    n = len(values)
    if plan.text:
        strings, mask, joined = _texts(plan, values)
        if plan.datatype == "char":
            if plan.count is not None:
                data = [s.encode("ascii", "replace") for s in strings]
                return mask, np.array(data, dtype=f"S{plan.count}")
            # ASCII after the promotion of the first batch; later non-ASCII becomes "?"
            blob = joined.encode("ascii", "replace")
            lengths = np.fromiter(map(len, strings), np.int64, n)
            return mask, (lengths, lengths, blob)
        # unicodeChar: UCS-2, big-endian
        if plan.count is not None:
            codes = np.array(strings, dtype=f"U{plan.count}").view(np.uint32)
            codes = codes.reshape(n, plan.count)
            codes = np.where(codes > 0xFFFF, 0xFFFD, codes).astype(">u2")
            return mask, codes
        blob = joined.encode("utf-16-be")
        if len(blob) == 2 * len(joined):
            counts = np.fromiter(map(len, strings), np.int64, n)
        else:  # characters beyond the BMP take two UTF-16 units
            counts = np.fromiter((len(s.encode("utf-16-be")) // 2 for s in strings),
                                 np.int64, n)
        return mask, (counts, counts * 2, blob)
    if plan.scalar:
        array, mask = _numbers(plan, values)
        if plan.datatype == "boolean":
            array = np.where(array, np.uint8(84), np.uint8(70))  # T, F
            if mask is not None:
                array[mask] = 63  # ?
        return mask, array
    arrays, mask = _arrays(plan, values)
    big = plan.big
    if plan.count is not None:
        matrix = np.array(arrays, dtype=plan.native).reshape(n, plan.count) if n else \
            np.empty((0, plan.count), plan.native)
        if plan.datatype == "boolean":
            matrix = np.where(matrix, np.uint8(84), np.uint8(70))
        return mask, matrix
    counts = np.fromiter(map(len, arrays), np.int64, n)
    flat = np.concatenate(arrays) if n else np.empty(0, plan.native)
    if plan.datatype == "boolean":
        flat = np.where(flat, np.uint8(84), np.uint8(70))
    blob = flat.astype(big).tobytes()
    return mask, (counts, counts * big.itemsize, blob)


def _binary2_batch(plans: list[_Plan], rows: Sequence[Sequence[Any]]) -> bytes:
    """The BINARY2 bytes of a batch of rows: per row the NULL flags, then each field."""
    n = len(rows)
    columns = list(zip(*rows, strict=True)) if n else [()] * len(plans)
    encoded = [_binary_column(p, c) for p, c in zip(plans, columns, strict=True)]
    return _binary2_rows(plans, encoded, n)


def _binary2_rows(plans: list[_Plan], encoded: list[tuple], n: int) -> bytes:
    """The BINARY2 bytes of `n` rows from their encoded columns (see `_binary_column`)."""
    nulls = np.zeros((n, len(plans)), bool)
    for i, (mask, _) in enumerate(encoded):
        if mask is not None:
            nulls[:, i] = mask
    flags = np.packbits(nulls, axis=1)

    # Runs of fixed-size fields (each ending with the length prefix of the variable-size field
    # that follows, if any) become structured arrays; between them go the variable bytes.
    blocks: list[list[tuple[np.dtype, Any]]] = [[(np.dtype(("u1", flags.shape[1])), flags)]]
    blobs: list[tuple[np.ndarray, bytes]] = []
    for plan, (_, data) in zip(plans, encoded, strict=True):
        if isinstance(data, tuple):
            counts, lengths, blob = data
            blocks[-1].append((np.dtype(">u4"), counts))
            blobs.append((lengths, blob))
            blocks.append([])
        else:
            item = data.dtype if data.ndim == 1 else np.dtype((data.dtype, data.shape[1:]))
            if data.dtype.kind in "iuf":
                item = np.dtype((plan.big, data.shape[1:])) if data.ndim > 1 else plan.big
            blocks[-1].append((item, data))
    structs = []
    for block in blocks:
        if not block:
            structs.append(None)
            continue
        dtype = np.dtype([(f"f{i}", item) for i, (item, _) in enumerate(block)])
        struct = np.empty(n, dtype)
        for i, (_, data) in enumerate(block):
            struct[f"f{i}"] = data
        structs.append(struct)
    if not blobs:
        return structs[0].tobytes()

    widths = [s.dtype.itemsize if s is not None else 0 for s in structs]
    row_length = np.full(n, sum(widths), np.int64)
    for lengths, _ in blobs:
        row_length += lengths
    position = np.cumsum(row_length) - row_length
    out = np.empty(int(row_length.sum()), np.uint8)
    for k, struct in enumerate(structs):
        if struct is not None and widths[k]:
            index = position[:, None] + np.arange(widths[k])
            out[index] = struct.view(np.uint8).reshape(n, widths[k])
            position += widths[k]
        if k < len(blobs):
            lengths, blob = blobs[k]
            total = len(blob)
            if total:
                starts = np.cumsum(lengths) - lengths
                out[np.repeat(position - starts, lengths) + np.arange(total)] = \
                    np.frombuffer(blob, np.uint8)
            position += lengths
    return out.tobytes()


# ----------------------------------------------------------------------------------------------
# BINARY2 from Arrow columns (what a columnar database fetch gives): the common cases — numbers,
# and variable-length ASCII strings read straight from Arrow's offsets and bytes — without one
# Python object per value; anything else goes through the Python values and `_binary_column`,
# so the output is the same whichever way the rows came.


def _is_arrow(batch: Any) -> bool:
    return type(batch).__module__.startswith("pyarrow")


def _arrow_rows(batch: Any) -> list[tuple]:
    """An Arrow record batch as rows of Python values."""
    return list(zip(*(c.to_pylist() for c in batch.columns), strict=True))


def _arrow_mask(array: Any) -> np.ndarray | None:
    if not array.null_count:
        return None
    return np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _arrow_strings(array: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(byte lengths, bytes) of a string array's values, NULLs empty; None when the array is
    not one, or a NULL has bytes."""
    import pyarrow as pa

    if pa.types.is_string(array.type) or pa.types.is_binary(array.type):
        offset_type = np.int32
    elif pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type):
        offset_type = np.int64
    else:
        return None
    n = len(array)
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, offset_type)[array.offset:array.offset + n + 1]
    lengths = np.diff(offsets).astype(np.int64)
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else \
        np.empty(0, np.uint8)
    data = data[int(offsets[0]):int(offsets[-1])] if n else data[:0]
    mask = _arrow_mask(array)
    if mask is not None and lengths[mask].any():
        return None
    return lengths, data


def _arrow_binary_column(plan: _Plan, array: Any):
    """`_binary_column` for one Arrow array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if plan.text and plan.count is None and plan.limit is None and not plan.time:
        strings = _arrow_strings(array) if pa.types.is_string(kind) or \
            pa.types.is_large_string(kind) else None
        if strings is not None:
            lengths, data = strings
            if not (data >= 0x80).any():  # ASCII: characters are bytes
                mask = _arrow_mask(array)
                if plan.datatype == "char":
                    return mask, (lengths, lengths, data)
                wide = np.zeros(2 * len(data), np.uint8)  # UCS-2, big-endian
                wide[1::2] = data
                return mask, (lengths, lengths * 2, wide)
    elif plan.scalar and not plan.text:
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        if plan.native.kind == "f" and (numeric or pa.types.is_null(kind)):
            values = np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)
            mask = np.isnan(values)
            return (mask if mask.any() else None), values
        if plan.native.kind in "iu" and pa.types.is_integer(kind):
            mask = _arrow_mask(array)
            if mask is not None:
                array = pc.fill_null(array, 0)
            return mask, np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.int64)
        if plan.native.kind == "b" and (pa.types.is_boolean(kind) or pa.types.is_integer(kind)):
            mask = _arrow_mask(array)
            if mask is not None:
                array = pc.fill_null(array, pa.scalar(0, kind) if pa.types.is_integer(kind)
                                     else False)
            truth = np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)
            flags = np.where(truth, np.uint8(84), np.uint8(70))  # T, F
            if mask is not None:
                flags[mask] = 63  # ?
            return mask, flags
    return _binary_column(plan, array.to_pylist())


def _binary2_arrow_batch(plans: list[_Plan], batch: Any) -> bytes:
    """`_binary2_batch` for an Arrow record batch."""
    encoded = [_arrow_binary_column(p, c) for p, c in zip(plans, batch.columns, strict=True)]
    return _binary2_rows(plans, encoded, batch.num_rows)


# ----------------------------------------------------------------------------------------------
# Text cells (TABLEDATA, CSV, TSV)

def _float_cells(array: np.ndarray, null: str) -> list[str]:
    """Floats as Python writes them (the shortest text that reads back as the same double;
    float columns round to float32 on reading), NaN as `null`, infinities as +Inf/-Inf."""
    values = list(map(float.__repr__, array.tolist()))
    bad = ~np.isfinite(array)
    if bad.any():
        for i in np.flatnonzero(bad):
            v = array[i]
            values[i] = null if np.isnan(v) else ("+Inf" if v > 0 else "-Inf")
    return values


def _cells(plan: _Plan, values: Sequence[Any], booleans: tuple[str, str]) -> list[str]:
    """Each value as text, "" for NULL (not escaped for any format yet)."""
    if plan.text:
        return list(_texts(plan, values)[0])
    if plan.scalar:
        array, mask = _numbers(plan, values)
        kind = array.dtype.kind
        if kind == "f":
            return _float_cells(array, "")
        if kind == "b":
            out = [booleans[0] if v else booleans[1] for v in array.tolist()]
        else:
            out = list(map(str, array.astype(plan.native).tolist()))
        if mask is not None:
            for i in np.flatnonzero(mask):
                out[i] = ""
        return out
    arrays, mask = _arrays(plan, values)
    out = []
    # A NULL of fixed size is NaNs when it can be (readers want the size), else empty.
    nan_nulls = plan.count is not None and plan.native.kind == "f"
    for i, a in enumerate(arrays):
        if mask is not None and mask[i] and not nan_nulls:
            out.append("")
        elif a.dtype.kind == "f":
            out.append(" ".join(_float_cells(a, "NaN")))
        elif a.dtype.kind == "b":
            out.append(" ".join(booleans[0] if v else booleans[1] for v in a.tolist()))
        else:
            out.append(" ".join(map(str, a.tolist())))
    return out


def _tabledata_batch(plans: list[_Plan], rows: Sequence[Sequence[Any]]) -> bytes:
    columns = zip(*rows, strict=True)
    cells = []
    for plan, values in zip(plans, columns, strict=True):
        column = _cells(plan, values, ("T", "F"))
        if _XML_SPECIAL.search("".join(column)):
            column = list(map(_xml_text, column))
        cells.append(column)
    body = "</TD></TR>\n<TR><TD>".join(map("</TD><TD>".join, zip(*cells, strict=True)))
    return ("<TR><TD>" + body + "</TD></TR>\n").encode()


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _tsv_batch(plans: list[_Plan], rows: Sequence[Sequence[Any]]) -> bytes:
    cells = []
    for plan, values in zip(plans, zip(*rows, strict=True), strict=True):
        column = _cells(plan, values, ("true", "false"))
        if plan.text:
            joined = "".join(column)
            if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
                column = [c.translate(_TSV_ESCAPES) for c in column]
        cells.append(column)
    return ("\n".join(map("\t".join, zip(*cells, strict=True))) + "\n").encode()


def _csv_batch(plans: list[_Plan], rows: Sequence[Sequence[Any]]) -> bytes:
    cells = [_cells(plan, values, ("true", "false"))
             for plan, values in zip(plans, zip(*rows, strict=True), strict=True)]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(zip(*cells, strict=True))
    return out.getvalue().encode()


# ----------------------------------------------------------------------------------------------
# JSON

def _json_values(plan: _Plan, values: Sequence[Any]) -> list[Any]:
    if plan.text:
        strings, mask, _ = _texts(plan, values)
        strings = list(strings)
        if mask is not None:
            for i in np.flatnonzero(mask):
                strings[i] = None
        return strings
    if plan.scalar:
        array, mask = _numbers(plan, values)
        if array.dtype.kind == "f":
            out = array.tolist()
            bad = ~np.isfinite(array)
            mask = bad if bad.any() else None
        else:
            out = array.astype(plan.native).tolist()
        if mask is not None:
            for i in np.flatnonzero(mask):
                out[i] = None
        return out
    arrays, mask = _arrays(plan, values)
    out = []
    for i, a in enumerate(arrays):
        if mask is not None and mask[i]:
            out.append(None)
        elif a.dtype.kind == "f":
            out.append([v if math.isfinite(v) else None for v in a.tolist()])
        else:
            out.append(a.tolist())
    return out


def _json_batch(plans: list[_Plan], rows: Sequence[Sequence[Any]]) -> str:
    columns = [_json_values(p, v) for p, v in zip(plans, zip(*rows, strict=True), strict=True)]
    text = json.dumps(list(zip(*columns, strict=True)), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":"))
    return text[1:-1]


def _json_stream(plans, batches, status, infos, table_name) -> Iterator[bytes]:
    meta = []
    for plan in plans:
        c = plan.column
        entry = {"name": c.name, "datatype": plan.datatype}
        for key in ("arraysize", "xtype", "unit", "ucd", "utype", "description"):
            value = plan.arraysize if key == "arraysize" else getattr(c, key)
            if value:
                entry[key] = value
        meta.append(entry)
    yield (json.dumps({"table": table_name, "columns": meta}, ensure_ascii=False)[:-1] +
           ',\n"data":[\n').encode()
    first = True
    for batch in batches:
        if not len(batch):
            continue
        text = _json_batch(plans, batch)
        yield (text if first else ",\n" + text).encode()
        first = False
    tail = {"status": status() if callable(status) else status}
    if infos:
        tail["infos"] = dict(infos)
    yield ("\n]," + json.dumps(tail, ensure_ascii=False)[1:] + "\n").encode()


# ----------------------------------------------------------------------------------------------
# FITS

def _fits_document(plans: list[_Plan], batches: Iterable[Sequence[Sequence[Any]]],
                   table_name: str) -> bytes:
    from astropy.io import fits
    from astropy.table import Column as TableColumn
    from astropy.table import MaskedColumn, Table

    parts: list[list[Any]] = [[] for _ in plans]
    masks: list[list[np.ndarray]] = [[] for _ in plans]
    for batch in batches:
        n = len(batch)
        if not n:
            continue
        for i, (plan, values) in enumerate(zip(plans, zip(*batch, strict=True), strict=True)):
            if plan.text:
                strings, mask, _ = _texts(plan, values)
                parts[i].extend(s.encode("utf-8") for s in strings)
            elif plan.scalar:
                array, mask = _numbers(plan, values)
                parts[i].append(array.astype(plan.native))
            else:
                arrays, mask = _arrays(plan, values)
                parts[i].extend(arrays)
            masks[i].append(mask if mask is not None else np.zeros(n, bool))
    table = Table()
    for plan, part, mask in zip(plans, parts, masks, strict=True):
        mask = np.concatenate(mask) if mask else np.zeros(0, bool)
        c = plan.column
        if plan.text:
            width = max((len(s) for s in part), default=1) or 1
            data = np.array(part, dtype=f"S{width}")
        elif plan.scalar:
            data = np.concatenate(part) if part else np.zeros(0, plan.native)
        elif plan.count is not None:
            data = np.array(part, dtype=plan.native).reshape(len(part), plan.count) if part \
                else np.zeros((0, plan.count), plan.native)
        elif part:
            data = np.empty(len(part), object)
            data[:] = part
        else:  # no rows: astropy cannot tell the type of an empty variable-length column
            data = np.zeros(0, plan.native)
        if data.dtype == object or data.dtype.kind == "b":
            # variable-length arrays: NULL is an empty array; booleans: astropy writes no
            # logical NULL (it would write True), so NULL is False
            table[c.name] = TableColumn(data, unit=c.unit or None,
                                        description=c.description or None)
        else:
            if data.ndim > 1:
                mask = np.broadcast_to(mask.reshape(-1, *[1] * (data.ndim - 1)), data.shape)
            table[c.name] = MaskedColumn(data, mask=mask, unit=c.unit or None,
                                         description=c.description or None)
    hdu = fits.table_to_hdu(table)
    hdu.name = table_name.upper()[:68]
    for i, plan in enumerate(plans, 1):
        if plan.column.ucd:
            hdu.header[f"TUCD{i}"] = plan.column.ucd
    out = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(out)
    return out.getvalue()


# ----------------------------------------------------------------------------------------------
# The entry point

def stream(fmt: Format, columns: Sequence[Column], batches: Iterable[Sequence[Sequence[Any]]],
           *, status: str | Callable[[], str] = "OK", infos: Mapping[str, str] | None = None,
           table_name: str = "results", table_description: str | None = None,
           extra_resources: Sequence[bytes] = ()) -> Iterator[bytes]:
    """The result table in `fmt`, as chunks of bytes while the batches of rows arrive.

    `status` is the query's final status (OK, or OVERFLOW when the rows were cut at a limit:
    VOTable then carries a second QUERY_STATUS INFO after the TABLE, JSON a "status"), or a
    function giving it once the last batch has been read; `infos`
    more INFO elements of the results RESOURCE; `table_description` the VOTable TABLE's
    DESCRIPTION; `extra_resources` RESOURCE elements (XML text) appended to a VOTable, e.g.
    DataLink service descriptors."""
    plans = [_plan(c) for c in columns]
    if fmt.name != "votable":  # only BINARY2 encodes Arrow columns as they are
        batches = (_arrow_rows(b) if _is_arrow(b) else b for b in batches)
    if fmt.name == "json":
        return _json_stream(plans, batches, status, infos, table_name)
    if fmt.name == "fits":
        return _fits_stream(plans, batches, table_name)
    if fmt.name in ("csv", "tsv"):
        return _text_stream(fmt, plans, batches)
    if fmt.name in ("votable", "votable-td"):
        return _votable_stream(fmt, plans, batches, status, infos, table_name, extra_resources,
                               table_description)
    raise ValueError(f"unknown format {fmt.name!r}")


def _fits_stream(plans: list[_Plan], batches, table_name: str) -> Iterator[bytes]:
    yield _fits_document(plans, batches, table_name)


def _text_stream(fmt: Format, plans: list[_Plan], batches) -> Iterator[bytes]:
    names = [p.column.name for p in plans]
    if fmt.name == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow(names)
        yield out.getvalue().encode()
        encode = _csv_batch
    else:
        yield ("\t".join(n.translate(_TSV_ESCAPES) for n in names) + "\n").encode()
        encode = _tsv_batch
    for batch in batches:
        if len(batch):
            yield encode(plans, batch)


def _votable_stream(fmt, plans, batches, status, infos, table_name,
                    extra_resources, description=None) -> Iterator[bytes]:
    binary = fmt.name == "votable"
    iterator = iter(batches)
    first = next((b for b in iterator if len(b)), None)
    _promote(plans, first)
    yield _votable_head(plans, status, infos, table_name, "binary2" if binary else "tabledata",
                        description)
    pending = [] if first is None else chain([first], iterator)
    if binary:
        base64 = _Base64Lines()
        for batch in pending:
            if len(batch):
                encode = _binary2_arrow_batch if _is_arrow(batch) else _binary2_batch
                chunk = base64.feed(encode(plans, batch))
                if chunk:
                    yield chunk
        yield base64.close() + _votable_tail(status, extra_resources,
                                             "</STREAM></BINARY2></DATA>\n")
    else:
        for batch in pending:
            if len(batch):
                yield _tabledata_batch(plans, _arrow_rows(batch) if _is_arrow(batch) else batch)
        yield _votable_tail(status, extra_resources, "</TABLEDATA></DATA>\n")
