"""Simple Image Access 2.0 over the archive, with its VOSI resources.

    GET /sia/capabilities     VOSI capabilities: SIA 2.0 query at /sia/query, VOSI endpoints
    GET /sia/availability     VOSI availability
    GET /sia/query            the archived files matching POS, BAND, TIME, POL, FOV, SPATRES,
                              EXPTIME, ID, COLLECTION, FACILITY, INSTRUMENT, DPTYPE, CALIB,
                              TARGET, FORMAT (MAXREC bounds them), as ObsCore records

Parameters are DALI's: names match without regard to case, a parameter may repeat (the values
are alternatives), numeric intervals are "low high" with -Inf / +Inf for open ends, positions
are "CIRCLE ra dec radius", "RANGE ra1 ra2 dec1 dec2" or "POLYGON ra1 dec1 ra2 dec2 …" (ICRS
degrees), BAND is in metres, TIME in MJD. The release rule applies: proprietary files are
returned only to those who may see them. Errors are VOTables with a 4xx status.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from astrocloud.core import errors
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import PUBLIC, uses
from astrocloud.data.archive import services as archive
from astrocloud.data.archive.services import ArchiveOps, Discovery
from astrocloud.data.vo import vosi
from astrocloud.data.vo.votable import (
    VOTABLE_TYPE,
    results_table,
    serve_errors_as_votable,
    to_bytes,
    with_descriptor,
)

PREFIX = "/sia/"
DEFAULT_MAXREC = 1000
MAX_MAXREC = 100_000
QUERY_PARAMS = ("POS", "BAND", "TIME", "POL", "FOV", "SPATRES", "EXPTIME", "ID", "COLLECTION",
                "FACILITY", "INSTRUMENT", "DPTYPE", "CALIB", "TARGET", "FORMAT", "MAXREC",
                "RESPONSEFORMAT", "LANG", "REQUEST")
POL_STATES = ("I", "Q", "U", "V", "RR", "LL", "RL", "LR", "XX", "YY", "XY", "YX", "POLI",
              "POLA")

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
serve_errors_as_votable(PREFIX)

# ObsCore 1.1 columns: name, datatype, unit, UCD, description
OBSCORE = (
    ("dataproduct_type", "char", "", "meta.code.class", "Data product type"),
    ("calib_level", "short", "", "meta.code;obs.calib", "Calibration level (0-4)"),
    ("obs_collection", "char", "", "meta.id", "Name of the data collection"),
    ("obs_id", "char", "", "meta.id", "Observation identifier"),
    ("obs_publisher_did", "char", "", "meta.ref.ivoid", "Publisher's identifier"),
    ("access_url", "char", "", "meta.ref.url", "URL of the data file"),
    ("access_format", "char", "", "meta.code.mime", "Format of the data file"),
    ("access_estsize", "long", "kbyte", "phys.size;meta.file", "Size of the data file"),
    ("target_name", "char", "", "meta.id;src", "Target name"),
    ("s_ra", "double", "deg", "pos.eq.ra", "Right ascension of the centre"),
    ("s_dec", "double", "deg", "pos.eq.dec", "Declination of the centre"),
    ("s_fov", "double", "deg", "phys.angSize;instr.fov", "Diameter of the field of view"),
    ("s_region", "char", "", "pos.outline;obs.field", "Footprint (STC-S)"),
    ("s_resolution", "double", "arcsec", "pos.angResolution", "Spatial resolution"),
    ("t_min", "double", "d", "time.start;obs.exposure", "Start time (MJD)"),
    ("t_max", "double", "d", "time.end;obs.exposure", "End time (MJD)"),
    ("t_exptime", "double", "s", "time.duration;obs.exposure", "Exposure time"),
    ("em_min", "double", "m", "em.wl;stat.min", "Shortest wavelength"),
    ("em_max", "double", "m", "em.wl;stat.max", "Longest wavelength"),
    ("em_res_power", "double", "", "spect.resolution", "Spectral resolving power"),
    ("o_ucd", "char", "", "meta.ucd", "UCD of the observable"),
    ("pol_states", "char", "", "meta.code;phys.polarization", "Polarization states"),
    ("facility_name", "char", "", "meta.id;instr.tel", "Telescope"),
    ("instrument_name", "char", "", "meta.id;instr", "Instrument"),
    ("obs_release_date", "char", "", "time.release", "Public from (ISO 8601, UTC)"),
)


def _values(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        name = key.upper()
        if name not in QUERY_PARAMS:
            continue  # DALI: unknown parameters are ignored
        if len(value) > 2000:
            raise errors.ValidationFailed("The value of %(name)s is too long.", field=name,
                                          name=name)
        out.setdefault(name, []).append(value.strip())
    return out


def _float(text: str, name: str) -> float:
    lowered = text.lower()
    if lowered in ("-inf", "+inf", "inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    try:
        value = float(text)
    except ValueError:
        raise errors.ValidationFailed("%(name)s: “%(value)s” is not a number.", field=name,
                                      name=name, value=text[:40]) from None
    if math.isnan(value):
        raise errors.ValidationFailed("%(name)s: “%(value)s” is not a number.", field=name,
                                      name=name, value=text[:40])
    return value


def _interval(text: str, name: str) -> tuple[float | None, float | None]:
    parts = text.split()
    if len(parts) == 1:  # a single value: the interval [v, v]
        parts = parts * 2
    if len(parts) != 2:
        raise errors.ValidationFailed("%(name)s is an interval: “low high”.", field=name,
                                      name=name)
    low, high = (_float(p, name) for p in parts)
    if low > high:
        raise errors.ValidationFailed("%(name)s: the low end is above the high end.",
                                      field=name, name=name)
    return (None if math.isinf(low) else low, None if math.isinf(high) else high)


def _check_position(ra: float, dec: float) -> None:
    if not (0 <= ra <= 360 and -90 <= dec <= 90):
        raise errors.ValidationFailed("POS: RA must be in [0, 360] and Dec in [-90, 90] "
                                      "degrees.", field="POS")


def _shape(text: str) -> tuple:
    words = text.split()
    kind = words[0].upper() if words else ""
    numbers = [_float(w, "POS") for w in words[1:]]
    if kind == "CIRCLE" and len(numbers) == 3:
        ra, dec, radius = numbers
        _check_position(ra, dec)
        if not 0 < radius <= 180:
            raise errors.ValidationFailed("POS: the radius must be above 0 and at most 180 "
                                          "degrees.", field="POS")
        return ("circle", ra % 360, dec, radius)
    if kind == "RANGE" and len(numbers) == 4:
        ra1, ra2, dec1, dec2 = numbers
        if math.isinf(ra1) or math.isinf(ra2):
            ra1, ra2 = 0.0, 360.0  # open in RA: all of it
        dec1, dec2 = max(dec1, -90.0), min(dec2, 90.0)
        for ra in (ra1, ra2):
            _check_position(ra, 0.0)
        if dec1 > dec2 or dec1 > 90 or dec2 < -90:
            raise errors.ValidationFailed("POS: the Dec range is empty.", field="POS")
        return ("range", ra1, ra2, dec1, dec2)  # ra1 > ra2 goes across RA = 0
    if kind == "POLYGON" and len(numbers) >= 6 and len(numbers) % 2 == 0:
        points = list(zip(numbers[::2], numbers[1::2], strict=True))
        for ra, dec in points:
            _check_position(ra, dec)
        return ("polygon", [(ra % 360, dec) for ra, dec in points])
    raise errors.ValidationFailed("POS is “CIRCLE ra dec radius”, “RANGE ra1 ra2 dec1 dec2” or "
                                  "“POLYGON ra1 dec1 ra2 dec2 ra3 dec3 …” in degrees.",
                                  field="POS")


def parse_query(request: Request) -> tuple[Discovery, int]:
    values = _values(request)
    for name in ("REQUEST", "LANG"):
        if values.get(name) and values[name][-1].lower() not in ("query", "sia2", ""):
            raise errors.ValidationFailed("%(name)s “%(value)s” is not supported.", field=name,
                                          name=name, value=values[name][-1][:40])
    if values.get("RESPONSEFORMAT") and values["RESPONSEFORMAT"][-1].lower() not in (
            "votable", "application/x-votable+xml", "text/xml"):
        raise errors.ValidationFailed("RESPONSEFORMAT: only VOTable is offered.",
                                      field="RESPONSEFORMAT")
    maxrec = DEFAULT_MAXREC
    if values.get("MAXREC"):
        raw = values["MAXREC"][-1]
        if not raw.isdigit() or len(raw) > 9:
            raise errors.ValidationFailed("MAXREC is a whole number of rows.", field="MAXREC")
        maxrec = min(int(raw), MAX_MAXREC)
    pol = [v.upper() for v in values.get("POL", [])]
    if any(p not in POL_STATES for p in pol):
        raise errors.ValidationFailed("POL is one of %(states)s.", field="POL",
                                      states=" ".join(POL_STATES))
    calib = []
    for raw in values.get("CALIB", []):
        if raw not in ("0", "1", "2", "3", "4"):
            raise errors.ValidationFailed("CALIB is a calibration level, 0 to 4.",
                                          field="CALIB")
        calib.append(int(raw))
    query = Discovery(
        pos=[_shape(v) for v in values.get("POS", [])],
        band=[_interval(v, "BAND") for v in values.get("BAND", [])],
        time=[_interval(v, "TIME") for v in values.get("TIME", [])],
        fov=[_interval(v, "FOV") for v in values.get("FOV", [])],
        spatres=[_interval(v, "SPATRES") for v in values.get("SPATRES", [])],
        exptime=[_interval(v, "EXPTIME") for v in values.get("EXPTIME", [])],
        pol=pol, ids=values.get("ID", []), collection=values.get("COLLECTION", []),
        facility=values.get("FACILITY", []), instrument=values.get("INSTRUMENT", []),
        dptype=values.get("DPTYPE", []), calib=calib, target=values.get("TARGET", []),
        format=values.get("FORMAT", []))
    return query, maxrec


def obscore_row(request: Request, archived) -> dict:
    base = str(request.base_url).rstrip("/")
    row = {name: getattr(archived, name, None) for name, *_ in OBSCORE}
    row.update({
        "obs_publisher_did": archived.obs_publisher_did,
        "access_url": f"{base}/api/v1/data/observations/{archived.id}/file",
        "access_estsize": archived.access_estsize, "pol_states": None,
        "obs_release_date": archived.obs_release_date.isoformat().replace("+00:00", "Z"),
    })
    return row


def obscore_columns() -> list[dict]:
    return [{"name": name, "datatype": datatype, "unit": unit, "ucd": ucd,
             "description": description} for name, datatype, unit, ucd, description in OBSCORE]


@pages.get("/sia/query", openapi_extra=uses(ArchiveOps.FILE_READ))
def query(request: Request, ctx: Ctx):
    constraints, maxrec = parse_query(request)
    found, overflow = archive.discover(ctx, constraints, maxrec)
    columns = [{**c, "id": c["name"]} if c["name"] == "obs_publisher_did" else c
               for c in obscore_columns()]
    votable = results_table(columns, [obscore_row(request, f) for f in found],
                            name="obscore", status="OVERFLOW" if overflow else "OK")
    return Response(with_descriptor(to_bytes(votable), str(request.base_url),
                                    "obs_publisher_did"), media_type=VOTABLE_TYPE)


@pages.get("/sia/capabilities", openapi_extra=PUBLIC)
def capabilities(request: Request):
    base = f"{str(request.base_url).rstrip('/')}/sia"
    return vosi.capabilities(base, ("ivo://ivoa.net/std/SIA#query-2.0", f"{base}/query"))


@pages.get("/sia/availability", openapi_extra=PUBLIC)
def availability():
    return vosi.availability()
