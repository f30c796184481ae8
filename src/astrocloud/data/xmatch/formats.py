"""Writing a cross-match result: VOTable (BINARY2, with each column's unit, UCD and description
and a QUERY_STATUS of OK, or OVERFLOW when the limit cut it short — through the VO services'
vectorised encoder), CSV or JSON; and reading the first rows of a stored result back for a
page."""

from __future__ import annotations

import io
import json
import math
from typing import IO, Any

import numpy as np
import pyarrow as pa

FORMATS = ("votable", "csv", "json")
SUFFIX = {"votable": "vot", "csv": "csv", "json": "json"}
MEDIA_TYPES = {"votable": "application/x-votable+xml", "csv": "text/csv; charset=utf-8",
               "json": "application/json"}
ALIASES = {"votable": "votable", "vot": "votable", "application/x-votable+xml": "votable",
           "text/xml": "votable", "csv": "csv", "text/csv": "csv", "json": "json",
           "application/json": "json"}
VOTABLE_BATCH_ROWS = 100_000  # rows encoded at a time


def output_format(value: str | None) -> str | None:
    """A response format's canonical name (None when unknown)."""
    return ALIASES.get((value or "votable").strip().lower().split(";")[0])


def votable_bytes(result) -> bytes:
    """The result as a VOTable 1.4 in BINARY2, written by the VO services' own encoder (a
    column at a time from the Arrow table, as TAP writes its results)."""
    from astrocloud.data.vo import formats as vo_formats
    from astrocloud.data.vo.columns import Column

    columns = [Column(c.name, datatype=c.datatype, unit=c.unit or None, ucd=c.ucd or None,
                      description=c.description or None) for c in result.columns]
    description = (f"{result.left} x {result.right} within {result.radius_arcsec:g} arcsec "
                   f"({result.mode} match)")
    return b"".join(vo_formats.stream(
        vo_formats.VOTABLE, columns, result.table.to_batches(max_chunksize=VOTABLE_BATCH_ROWS),
        status="OVERFLOW" if result.truncated else "OK", table_name="crossmatch",
        table_description=description))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_bytes(result) -> bytes:
    columns = [c.to_pylist() for c in result.table.columns]
    rows = [[_plain(v) for v in row] for row in zip(*columns, strict=True)] if columns else []
    body = {**result.describe(),
            "columns": [{"name": c.name, "datatype": c.datatype, "unit": c.unit, "ucd": c.ucd,
                         "description": c.description} for c in result.columns],
            "rows": rows}
    return json.dumps(body, ensure_ascii=False).encode()


def csv_bytes(result) -> bytes:
    from pyarrow import csv as pacsv

    out = io.BytesIO()
    pacsv.write_csv(result.table, out)
    return out.getvalue()


def render(result, output: str) -> bytes:
    return {"votable": votable_bytes, "csv": csv_bytes, "json": json_bytes}[output](result)


def preview(stream: IO[bytes], output: str, rows: int) -> tuple[list[str], list[list]]:
    """(column names, first rows) of a stored result."""
    if output == "json":
        body = json.load(stream)
        return [c["name"] for c in body["columns"]], body["rows"][:rows]
    if output == "csv":
        from pyarrow import csv as pacsv

        table = pacsv.read_csv(stream).slice(0, rows)
    else:
        from astropy.io.votable import parse_single_table

        table = pa.table({name: pa.array(np.asarray(col).tolist())
                          for name, col in parse_single_table(stream).to_table()[:rows]
                          .columns.items()}) if rows else pa.table({})
    names = table.column_names
    data = [c.to_pylist() for c in table.columns]
    return names, [list(r) for r in zip(*data, strict=True)]
