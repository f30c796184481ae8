"""Simple Cone Search 1.03 for every source catalog, with its VOSI resources.

    GET /scs/<catalog>?RA=&DEC=&SR=[&VERB=1|2|3]   the sources within SR degrees of (RA, DEC),
                                                  nearest first, as a VOTable
    GET /scs/<catalog>/capabilities                VOSI capabilities (ConeSearch, VOSI)
    GET /scs/<catalog>/availability                VOSI availability

Parameter names are matched without regard to case. As SCS 1.03 asks, the table marks the
identifier and the position with the UCD1 words ID_MAIN, POS_EQ_RA_MAIN and POS_EQ_DEC_MAIN;
the other columns keep their UCD1+ words. Errors are VOTables with QUERY_STATUS=ERROR (and an
HTTP 4xx status). A proprietary catalog answers only its readers (a personal API token as a
Bearer token or the password of HTTP Basic): to anyone else it does not exist.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from lxml import etree
from starlette.responses import Response

from astrocloud.core import errors
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import uses
from astrocloud.data.catalogs import services as catalogs
from astrocloud.data.catalogs.services import CatalogOps
from astrocloud.data.vo import formats, vosi
from astrocloud.data.vo.columns import Column
from astrocloud.data.vo.votable import VOTABLE_TYPE, serve_errors_as_votable

PREFIX = "/scs/"
CS = "http://www.ivoa.net/xml/ConeSearch/v1.0"
MAX_SR = 10.0  # degrees
MAX_RECORDS = 50_000
ID_NAMES = ("source_id", "id", "objid", "obj_id", "designation", "name")

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
serve_errors_as_votable(PREFIX)


def _param(request: Request, name: str) -> str | None:
    values = [v for k, v in request.query_params.multi_items() if k.upper() == name]
    if len(values) > 1:
        raise errors.ValidationFailed("%(name)s is given more than once.", field=name,
                                      name=name)
    return values[0] if values else None


def _number(request: Request, name: str, low: float, high: float) -> float:
    raw = _param(request, name)
    if raw is None or not raw.strip():
        raise errors.ValidationFailed("The parameter %(name)s is missing.", field=name,
                                      name=name)
    try:
        value = float(raw)
    except ValueError:
        raise errors.ValidationFailed("%(name)s must be a number of degrees, not “%(value)s”.",
                                      field=name, name=name, value=raw[:40]) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise errors.ValidationFailed("%(name)s must be between %(low)s and %(high)s degrees.",
                                      field=name, name=name, low=low, high=high)
    return value


def _columns(catalog, catalog_columns, verbosity: int) -> list[dict]:
    described = [{"name": c.name, "datatype": c.datatype, "arraysize": c.arraysize,
                  "unit": c.unit, "ucd": c.ucd, "description": c.description}
                 for c in catalog_columns]
    ident = next((c for c in described if "meta.id;meta.main" in (c["ucd"] or "")), None) or \
        next((c for c in described if c["name"].lower() in ID_NAMES), None) or described[0]
    for column in described:
        if column["name"] == catalog.ra_column:
            column["ucd"] = "POS_EQ_RA_MAIN"
        elif column["name"] == catalog.dec_column:
            column["ucd"] = "POS_EQ_DEC_MAIN"
        elif column is ident:
            column["ucd"] = "ID_MAIN"
    if verbosity <= 1:
        described = [c for c in described if c["ucd"] in ("ID_MAIN", "POS_EQ_RA_MAIN",
                                                         "POS_EQ_DEC_MAIN")]
    distance = {"name": "_r", "datatype": "double", "unit": "deg", "ucd": "pos.angDistance",
                "description": "Distance from the position searched"}
    return [*described, distance]


@pages.get("/scs/{name}", openapi_extra=uses(CatalogOps.READ))
def cone_search(request: Request, name: str, ctx: Ctx):
    ra = _number(request, "RA", 0.0, 360.0) % 360.0
    dec = _number(request, "DEC", -90.0, 90.0)
    sr = _number(request, "SR", 0.0, MAX_SR)
    verb_raw = _param(request, "VERB") or "2"
    if verb_raw not in ("1", "2", "3"):
        raise errors.ValidationFailed("VERB is 1, 2 or 3.", field="VERB")
    rows: list[tuple] = []
    overflow = False
    if sr > 0:  # SR=0 asks for the table's metadata only
        # The cone operation finds the catalog itself (one visibility check, one usage row).
        result = catalogs.cone(ctx, name[:64], ra, dec, sr, MAX_RECORDS)
        catalog, overflow, catalog_columns = result.catalog, result.truncated, result.columns
    else:
        catalog = catalogs.get_catalog(ctx, name[:64])
        catalog_columns = catalog.columns
    columns = _columns(catalog, catalog_columns, int(verb_raw))
    if sr > 0:
        names = [c["name"] if c["name"] != "_r" else "_distance" for c in columns]
        rows = [tuple(row.get(n) for n in names) for row in result.rows]
    # The services' own VOTable writer (the one TAP streams with): astropy's tree and writer
    # cost about 10 ms for the metadata alone, most of a small cone's time.
    body = b"".join(formats.stream(
        formats.VOTABLE_TD, [Column(c["name"], c["datatype"], c.get("arraysize") or (
            "*" if c["datatype"] in ("char", "unicodeChar") else None), unit=c.get("unit"),
            ucd=c.get("ucd"), description=c.get("description")) for c in columns],
        [rows] if rows else [], status="OVERFLOW" if overflow else "OK",
        table_name=catalog.name))
    return Response(body, media_type=VOTABLE_TYPE)


def capability_details(capability) -> None:
    """What the ConeSearch capability schema says of these services (after the interface)."""
    for tag, text in (("maxSR", str(MAX_SR)), ("maxRecords", str(MAX_RECORDS)),
                      ("verbosity", "true")):
        etree.SubElement(capability, tag).text = text
    test = etree.SubElement(capability, "testQuery")
    for tag, text in (("ra", "10.0"), ("dec", "10.0"), ("sr", "0.01")):
        etree.SubElement(test, tag).text = text


def capability_args(base: str) -> dict:
    """The arguments of `vosi.capability_elements` describing the cone search at `base` (the
    registry reuses them)."""
    return {"standard": ("ivo://ivoa.net/std/ConeSearch", base + "?"),
            "capability_type": "cs:ConeSearch", "details": capability_details}


@pages.get("/scs/{name}/capabilities", openapi_extra=uses(CatalogOps.READ))
def capabilities(request: Request, name: str, ctx: Ctx):
    catalog = catalogs.get_catalog(ctx, name[:64])
    base = f"{str(request.base_url).rstrip('/')}/scs/{catalog.name}"
    args = capability_args(base)
    return vosi.capabilities(base, args.pop("standard"), extra_ns={"cs": CS}, **args)


@pages.get("/scs/{name}/availability", openapi_extra=uses(CatalogOps.READ))
def availability(request: Request, name: str, ctx: Ctx):
    catalogs.get_catalog(ctx, name[:64])
    return vosi.availability()
