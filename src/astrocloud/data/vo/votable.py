"""VOTable answers of the VO services: result tables and error documents (VOTable 1.4 through
astropy), and the renderer that turns any error under a VO service's path into a VOTable error
with the right HTTP status instead of problem+json."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable

import numpy as np
from astropy.io.votable.tree import Field, Info, Resource, TableElement, VOTableFile
from starlette.requests import Request
from starlette.responses import Response

from astrocloud.core.web.errors import ERROR_RENDERERS

VOTABLE_TYPE = "application/x-votable+xml"
VO_PREFIXES: list[str] = []  # paths whose errors are VOTable documents (each service adds its)
# characters XML 1.0 cannot hold
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def to_bytes(votable: VOTableFile, *, binary: bool = False) -> bytes:
    out = io.BytesIO()
    if binary:
        for resource in votable.resources:
            for table in resource.tables:
                table.format = "binary2"
    votable.to_xml(out, tabledata_format=None if binary else "tabledata")
    return out.getvalue()


DATALINK_STANDARD = "ivo://ivoa.net/std/DataLink#links-1.1"


def datalink_descriptor(base_url: str, ref: str) -> bytes:
    """A DataLink service descriptor (DataLink 1.1 §4): a RESOURCE that tells clients such as
    TOPCAT and pyvo how to get the links of each row — /datalink/links with ID taken from the
    FIELD whose ID is `ref` (the publisher DID)."""
    from xml.sax.saxutils import quoteattr

    url = quoteattr(f"{base_url.rstrip('/')}/datalink/links")
    return (
        '<RESOURCE type="meta" utype="adhoc:service" name="datalink">\n'
        f'<PARAM name="standardID" datatype="char" arraysize="*" '
        f'value="{DATALINK_STANDARD}"/>\n'
        f'<PARAM name="accessURL" datatype="char" arraysize="*" value={url}/>\n'
        '<GROUP name="inputParams">\n'
        f'<PARAM name="ID" datatype="char" arraysize="*" value="" ref={quoteattr(ref)} '
        'ucd="meta.id;meta.main"/>\n'
        '</GROUP>\n</RESOURCE>\n').encode()


def with_descriptor(document: bytes, base_url: str, ref: str) -> bytes:
    """A VOTable document with a DataLink service descriptor added at its end."""
    head, tail = document.rsplit(b"</VOTABLE>", 1)
    return head + datalink_descriptor(base_url, ref) + b"</VOTABLE>" + tail


def error_document(message: str, *, query_status: str = "ERROR") -> bytes:
    """An error document every VO client understands: DALI's RESOURCE of type results with
    INFO QUERY_STATUS=ERROR, and Simple Cone Search 1.03's INFO name="Error" right under
    VOTABLE."""
    message = NOT_XML.sub("\ufffd", message)  # echoed input may hold what XML cannot
    votable = VOTableFile()
    votable.infos.append(Info(name="Error", value=message[:1000]))
    resource = Resource(type="results")
    votable.resources.append(resource)
    info = Info(name="QUERY_STATUS", value=query_status)
    info.content = message  # the element's text: the message
    resource.infos.append(info)
    return to_bytes(votable)


def error_response(message: str, status: int = 400) -> Response:
    return Response(error_document(message), status_code=status, media_type=VOTABLE_TYPE)


def render_error(request: Request, status: int, body: dict, headers: dict | None) -> Response:
    detail = " ".join(str(body.get("detail") or body.get("title") or "Error").split())
    errors = body.get("errors") or []
    if errors and isinstance(errors, list):
        detail = "; ".join(f"{e.get('field')}: {e.get('message')}" if isinstance(e, dict)
                           else str(e) for e in errors) or detail
    return Response(error_document(detail), status_code=status, media_type=VOTABLE_TYPE,
                    headers=headers)


def serve_errors_as_votable(prefix: str) -> None:
    """Answer errors under `prefix` with VOTable documents (once per prefix)."""
    if prefix not in VO_PREFIXES:
        VO_PREFIXES.append(prefix)
        ERROR_RENDERERS.append((prefix, render_error))


def _numpy_kind(datatype: str) -> str:
    return {"boolean": "?", "short": "i2", "int": "i4", "long": "i8", "float": "f4",
            "double": "f8", "unsignedByte": "u1"}.get(datatype, "O")


def results_table(columns: Iterable[dict], rows: list[dict], *, name: str = "results",
                  status: str = "OK", infos: dict[str, str] | None = None) -> VOTableFile:
    """A VOTable with one results table. `columns`: dicts with name, datatype (VOTable),
    unit, ucd, description (and optional arraysize, utype); `rows`: dicts by column name; `status`
    the QUERY_STATUS (OVERFLOW when the rows were cut at a limit)."""
    votable = VOTableFile()
    resource = Resource(type="results")
    votable.resources.append(resource)
    resource.infos.append(Info(name="QUERY_STATUS", value=status))
    for key, value in (infos or {}).items():
        resource.infos.append(Info(name=key, value=value))
    table = TableElement(votable, name=name)
    resource.tables.append(table)
    columns = list(columns)
    for column in columns:
        datatype = column.get("datatype") or "char"
        arraysize = column.get("arraysize")
        if datatype in ("char", "unicodeChar") and not arraysize:
            arraysize = "*"
        table.fields.append(Field(votable, name=column["name"], ID=column.get("id"),
                                  datatype=datatype,
                                  arraysize=arraysize, unit=column.get("unit") or None,
                                  ucd=column.get("ucd") or None,
                                  utype=column.get("utype") or None))
        if column.get("description"):
            table.fields[-1].description = column["description"]
    table.create_arrays(len(rows))
    # a null fixed-size array is written as its NaNs (an empty cell would have no elements)
    fixed = [c.get("datatype") in ("float", "double") and c.get("arraysize") not in
             (None, "1", "*") for c in columns]
    for i, row in enumerate(rows):
        values = []
        for column in columns:
            value = row.get(column["name"])
            kind = _numpy_kind(column.get("datatype") or "char")
            if value is None:
                value = np.nan if kind.startswith("f") else (0 if kind != "O" else "")
                if kind != "O" and column.get("arraysize") not in (None, "1"):
                    value = [value] * int(column["arraysize"])  # a fixed-size array
            values.append(value)
        table.array[i] = tuple(values)
        table.array.mask[i] = tuple(row.get(c["name"]) is None and not array
                                    for c, array in zip(columns, fixed, strict=True))
    return votable
