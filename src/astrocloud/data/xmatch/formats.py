"""Writing a cross-match result: VOTable (BINARY2, with each column's unit, UCD and description
and a QUERY_STATUS of OK, or OVERFLOW when the limit cut it short), CSV or JSON; and reading
the first rows of a stored result back for a page."""

from __future__ import annotations

import io
import json
import math
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FORMATS = ("votable", "csv", "json")
SUFFIX = {"votable": "vot", "csv": "csv", "json": "json"}
MEDIA_TYPES = {"votable": "application/x-votable+xml", "csv": "text/csv; charset=utf-8",
               "json": "application/json"}
ALIASES = {"votable": "votable", "vot": "votable", "application/x-votable+xml": "votable",
           "text/xml": "votable", "csv": "csv", "text/csv": "csv", "json": "json",
           "application/json": "json"}


def output_format(value: str | None) -> str | None:
    """A response format's canonical name (None when unknown)."""
    return ALIASES.get((value or "votable").strip().lower().split(";")[0])


def _astropy_table(result):
    from astropy.table import MaskedColumn, Table

    columns = []
    for meta, array in zip(result.columns, result.table.columns, strict=True):
        array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
        if meta.datatype == "char":
            values = np.asarray(pc.fill_null(array, "").to_pylist(), dtype=str) \
                if len(array) else np.zeros(0, dtype="U1")
            mask = None
        else:
            mask = np.asarray(array.is_null()) if array.null_count else None
            if mask is not None:
                filler = False if meta.datatype == "boolean" else 0
                array = pc.fill_null(array, pa.scalar(filler, array.type))
            values = array.to_numpy(zero_copy_only=False)
        columns.append(MaskedColumn(values, name=meta.name, mask=mask) if mask is not None
                       else values)
    return Table(columns, names=[c.name for c in result.columns])


def votable_bytes(result) -> bytes:
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    votable = from_table(_astropy_table(result), table_id="crossmatch")
    resource = votable.resources[0]
    resource.type = "results"
    status = "OVERFLOW" if result.truncated else "OK"
    resource.infos.append(Info(name="QUERY_STATUS", value=status))
    table = resource.tables[0]
    table.name = "crossmatch"
    table.description = (f"{result.left} x {result.right} within {result.radius_arcsec:g} "
                         f"arcsec ({result.mode} match)")
    for field, meta in zip(table.fields, result.columns, strict=True):
        field.ucd = meta.ucd or None
        field.unit = meta.unit or None
        field.description = meta.description or None
    out = io.BytesIO()
    votable.to_xml(out, tabledata_format="binary2")
    return out.getvalue()


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
