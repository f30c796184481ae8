"""Simple Spectral Access 1.1 over the archive's spectra, with its VOSI resources.

    GET /ssa?REQUEST=queryData&POS=&SIZE=&BAND=&TIME=&FORMAT=&MAXREC=&TARGETNAME=
                              the archived spectra matching the constraints, as SSA records
    GET /ssa/capabilities     VOSI capabilities: the SimpleSpectralAccess capability, VOSI
    GET /ssa/availability     VOSI availability

Parameters (names without regard to case): POS "ra,dec[;ICRS]" in degrees; SIZE the diameter
of the search cone in degrees (default DEFAULT_SIZE); BAND wavelengths in metres — "lo/hi",
"/hi", "lo/", or one value that must lie within the spectrum —, several ranges separated by
commas are alternatives; TIME ISO 8601 "start/end" with open ends (a date alone covers its
day); FORMAT all, compliant, native, graphic, votable, fits, xml, a MIME type, or metadata (the
metadata-only answer: no rows, the input PARAMs and the FIELDs); MAXREC; TARGETNAME.

It reads through the same discovery as SIA (`archive.discover`), restricted to spectra, so the
release rule applies exactly as there: proprietary spectra go to their team and staff only.
Errors are VOTables with QUERY_STATUS=ERROR and a 4xx status.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated

from astropy.io.votable.tree import Param
from fastapi import APIRouter, Depends, Request
from lxml import etree
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

PREFIX = "/ssa"
SSA_NS = "http://www.ivoa.net/xml/SSA/v1.1"
STANDARD_ID = "ivo://ivoa.net/std/SSA"
DEFAULT_SIZE = 0.2  # degrees (diameter)
MAX_SIZE = 180.0  # degrees (diameter): a hemisphere
DEFAULT_MAXREC = 1000
MAX_MAXREC = 100_000
QUERY_PARAMS = ("REQUEST", "VERSION", "POS", "SIZE", "BAND", "TIME", "FORMAT", "MAXREC",
                "TARGETNAME")
FORMAT_WORDS = ("all", "compliant", "native", "graphic", "votable", "fits", "xml",
                "metadata")
#: the archive's formats each FORMAT word stands for (None: no restriction)
FORMAT_MIME: dict[str, tuple[str, ...] | None] = {
    "all": None, "native": None,
    # SSA-compliant serializations of the Spectrum data model: none archived yet
    "compliant": ("application/x-votable+xml;content=spectrum",
                  "application/fits;content=spectrum"),
    "graphic": ("image/png", "image/jpeg", "image/gif"),
    "votable": ("application/x-votable+xml",),
    "xml": ("application/x-votable+xml", "text/xml"),
    "fits": ("application/fits", "image/fits"),
}
MJD_ZERO = dt.datetime(1858, 11, 17, tzinfo=dt.UTC)

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
serve_errors_as_votable(PREFIX)

# SSA 1.1 query response: name, datatype, arraysize, unit, UCD, utype, description
COLUMNS = (
    ("accref", "char", "*", "", "meta.ref.url", "ssa:Access.Reference",
     "URL of the spectrum"),
    ("mime", "char", "*", "", "meta.code.mime", "ssa:Access.Format",
     "MIME type of the file"),
    ("accsize", "long", None, "byte", "phys.size;meta.file", "ssa:Access.Size",
     "Size of the file"),
    ("ssa_model", "char", "*", "", "meta.id;meta.dataset", "ssa:Dataset.DataModel",
     "Data model of the dataset"),
    ("ssa_dstype", "char", "*", "", "meta.code.class", "ssa:Dataset.Type",
     "Type of the dataset"),
    ("ssa_length", "long", None, "", "meta.number", "ssa:Dataset.Length",
     "Number of points of the spectrum"),
    ("ssa_dstitle", "char", "*", "", "meta.title;meta.dataset", "ssa:DataID.Title",
     "Title of the spectrum"),
    ("ssa_collection", "char", "*", "", "meta.id", "ssa:DataID.Collection",
     "Collection the spectrum belongs to"),
    ("ssa_instrument", "char", "*", "", "meta.id;instr", "ssa:DataID.Instrument",
     "Telescope and instrument"),
    ("ssa_dateObs", "char", "*", "", "time;meta.dataset", "ssa:DataID.Date",
     "Start of the observation (UTC, YYYY-MM-DD hh:mm:ss)"),
    ("ssa_pubDID", "char", "*", "", "meta.ref.uri;meta.curation", "ssa:Curation.PublisherDID",
     "Publisher's identifier of the spectrum"),
    ("ssa_publisher", "char", "*", "", "meta.curation", "ssa:Curation.Publisher",
     "Publisher"),
    ("ssa_targname", "char", "*", "", "meta.id;src", "ssa:Target.Name", "Target name"),
    ("ssa_targetpos", "double", "2", "deg", "pos.eq;src", "ssa:Target.Pos",
     "Position of the target (ICRS)"),
    ("ssa_csysName", "char", "*", "", "meta.code.class;pos.frame",
     "ssa:CoordSys.SpaceFrame.Name", "Reference frame of the positions"),
    ("ssa_location", "double", "2", "deg", "pos.eq", "ssa:Char.SpatialAxis.Coverage.Location.Value",
     "Position observed (ICRS)"),
    ("ssa_aperture", "double", None, "deg", "phys.angSize;instr.fov",
     "ssa:Char.SpatialAxis.Coverage.Bounds.Extent", "Aperture (field of view) diameter"),
    ("ssa_specmid", "double", None, "m", "em.wl;instr.bandpass",
     "ssa:Char.SpectralAxis.Coverage.Location.Value", "Middle of the wavelength range"),
    ("ssa_specext", "double", None, "m", "em.wl;instr.bandwidth",
     "ssa:Char.SpectralAxis.Coverage.Bounds.Extent", "Width of the wavelength range"),
    ("ssa_specstart", "double", None, "m", "em.wl;stat.min",
     "ssa:Char.SpectralAxis.Coverage.Bounds.Start", "Shortest wavelength"),
    ("ssa_specend", "double", None, "m", "em.wl;stat.max",
     "ssa:Char.SpectralAxis.Coverage.Bounds.Stop", "Longest wavelength"),
    ("ssa_specres", "double", None, "m", "spect.resolution;em.wl",
     "ssa:Char.SpectralAxis.Resolution", "Spectral resolution (at the middle)"),
    ("ssa_spectralucd", "char", "*", "", "meta.ucd", "ssa:Char.SpectralAxis.Ucd",
     "UCD of the spectral axis"),
    ("ssa_spectralunit", "char", "*", "", "meta.unit", "ssa:Char.SpectralAxis.Unit",
     "Unit of the spectral axis in the file"),
    ("ssa_speccalib", "char", "*", "", "meta.code.qual", "ssa:Char.SpectralAxis.Calibration",
     "Calibration of the spectral axis"),
    ("ssa_fluxucd", "char", "*", "", "meta.ucd", "ssa:Char.FluxAxis.Ucd",
     "UCD of the flux axis"),
    ("ssa_fluxunit", "char", "*", "", "meta.unit", "ssa:Char.FluxAxis.Unit",
     "Unit of the flux axis in the file"),
    ("ssa_fluxcalib", "char", "*", "", "meta.code.qual", "ssa:Char.FluxAxis.Calibration",
     "Calibration of the flux axis"),
    ("ssa_timemid", "double", None, "d", "time.epoch",
     "ssa:Char.TimeAxis.Coverage.Location.Value", "Middle of the exposure (MJD)"),
    ("ssa_timeExt", "double", None, "s", "time.duration;obs.exposure",
     "ssa:Char.TimeAxis.Coverage.Bounds.Extent", "Exposure time"),
    ("ssa_timestart", "double", None, "d", "time.start;obs.exposure",
     "ssa:Char.TimeAxis.Coverage.Bounds.Start", "Start of the exposure (MJD)"),
    ("ssa_timestop", "double", None, "d", "time.end;obs.exposure",
     "ssa:Char.TimeAxis.Coverage.Bounds.Stop", "End of the exposure (MJD)"),
    ("obs_release_date", "char", "*", "", "time.release", None,
     "Public from (ISO 8601, UTC)"),
)

# the input parameters a metadata query describes (SSA 1.1, 8.5)
INPUTS = (
    ("REQUEST", "char", "", "", "queryData", "The request: queryData"),
    ("POS", "char", "", "pos.eq", "", "Position searched: ra,dec in degrees (ICRS)"),
    ("SIZE", "double", "deg", "instr.fov", str(DEFAULT_SIZE),
     "Diameter of the search cone"),
    ("BAND", "char", "m", "em.wl", "", "Wavelength range: lo/hi, /hi or lo/"),
    ("TIME", "char", "", "time.interval", "", "Time range: ISO 8601 start/end"),
    ("FORMAT", "char", "", "meta.code.mime", "all",
     "all, compliant, native, graphic, votable, fits, xml, metadata or a MIME type"),
    ("TARGETNAME", "char", "", "meta.id;src", "", "Name of the target"),
    ("MAXREC", "int", "", "", str(DEFAULT_MAXREC), "Most records to return"),
)


# -- parsing ---------------------------------------------------------------------------------

def _values(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        name = key.upper()
        if name not in QUERY_PARAMS:
            continue  # DALI: unknown parameters are ignored
        if len(value) > 2000:
            raise errors.ValidationFailed("The value of %(name)s is too long.", field=name,
                                          name=name)
        out[name] = value.strip()  # the last one counts
    return out


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise errors.ValidationFailed("%(name)s: “%(value)s” is not a number.", field=name,
                                      name=name, value=text[:40]) from None
    if not math.isfinite(value):
        raise errors.ValidationFailed("%(name)s: “%(value)s” is not a number.", field=name,
                                      name=name, value=text[:40])
    return value


def _position(text: str) -> tuple[float, float]:
    coords, _, frame = text.partition(";")
    if frame.strip() and frame.strip().upper() not in ("ICRS", "ICRS-TOPO", "FK5", "J2000"):
        raise errors.ValidationFailed("POS: only ICRS positions are supported.", field="POS")
    parts = coords.split(",")
    if len(parts) != 2:
        raise errors.ValidationFailed("POS is “ra,dec” in degrees (ICRS).", field="POS")
    ra, dec = (_number(p.strip(), "POS") for p in parts)
    if not (0 <= ra <= 360 and -90 <= dec <= 90):
        raise errors.ValidationFailed("POS: RA must be in [0, 360] and Dec in [-90, 90] "
                                      "degrees.", field="POS")
    return ra % 360, dec


def _ranges(text: str, name: str, parse) -> list[tuple[float | None, float | None]]:
    """A range list: "lo/hi", "/hi", "lo/" or a single value, comma-separated."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if "/" in item:
            low_text, _, high_text = item.partition("/")
            if "/" in high_text:
                raise errors.ValidationFailed("%(name)s is a range: “start/end”.", field=name,
                                              name=name)
            low = parse(low_text.strip(), name, False) if low_text.strip() else None
            high = parse(high_text.strip(), name, True) if high_text.strip() else None
            if low is None and high is None:
                raise errors.ValidationFailed("%(name)s is a range: “start/end”.", field=name,
                                              name=name)
        elif item:
            low, high = parse(item, name, False), parse(item, name, True)
        else:
            raise errors.ValidationFailed("%(name)s is a range: “start/end”.", field=name,
                                          name=name)
        if low is not None and high is not None and low > high:
            raise errors.ValidationFailed("%(name)s: the start is after the end.",
                                          field=name, name=name)
        out.append((low, high))
    return out


def _wavelength(text: str, name: str, _end: bool) -> float:
    value = _number(text, name)
    if value <= 0:
        raise errors.ValidationFailed("BAND: wavelengths are positive, in metres.",
                                      field="BAND")
    return value


def _mjd(text: str, name: str, end: bool) -> float:
    """An ISO 8601 date or date-time (UTC unless it says otherwise) as MJD; a date alone is
    its whole day (its end, when it closes a range)."""
    if len(text) > 40:
        raise errors.ValidationFailed("TIME: “%(value)s” is not an ISO 8601 date.",
                                      field="TIME", value=text[:40])
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            when = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            if end:
                when += dt.timedelta(days=1)
        else:
            when = dt.datetime.fromisoformat(text)
            when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when
    except ValueError:
        raise errors.ValidationFailed("TIME: “%(value)s” is not an ISO 8601 date.",
                                      field="TIME", value=text[:40]) from None
    return (when - MJD_ZERO).total_seconds() / 86400.0


def _formats(text: str) -> tuple[bool, list[str] | None]:
    """(metadata only, the MIME types asked for — None for any)."""
    words = [w.strip() for w in text.split(",") if w.strip()] or ["all"]
    if any(w.lower() == "metadata" for w in words):
        return True, None
    mimes: list[str] = []
    for word in words:
        lowered = word.lower()
        if lowered in FORMAT_MIME:
            allowed = FORMAT_MIME[lowered]
            if allowed is None:
                return False, None
            mimes.extend(allowed)
        elif "/" in lowered and len(lowered) < 100 and " " not in lowered:
            mimes.append(lowered)
        else:
            raise errors.ValidationFailed("FORMAT “%(value)s” is unknown: use %(words)s or a "
                                          "MIME type.", field="FORMAT", value=word[:40],
                                          words=", ".join(FORMAT_WORDS))
    return False, mimes


def parse_query(request: Request) -> tuple[Discovery, int, bool]:
    """The SSA parameters of a request as discovery constraints (spectra only), MAXREC, and
    whether only the metadata is asked for."""
    values = _values(request)
    if values.get("REQUEST", "querydata").lower() not in ("querydata", ""):
        raise errors.ValidationFailed("REQUEST “%(value)s” is not supported: only queryData.",
                                      field="REQUEST", value=values["REQUEST"][:40])
    maxrec = DEFAULT_MAXREC
    if values.get("MAXREC"):
        raw = values["MAXREC"]
        if not raw.isdigit() or len(raw) > 9:
            raise errors.ValidationFailed("MAXREC is a whole number of rows.", field="MAXREC")
        maxrec = min(int(raw), MAX_MAXREC)
    metadata, formats = _formats(values.get("FORMAT", ""))
    query = Discovery(dptype=["spectrum"], format=formats or [])
    if formats == []:  # nothing of what was asked for is offered
        query.ids = ["none"]
    size = DEFAULT_SIZE
    if values.get("SIZE"):
        size = _number(values["SIZE"], "SIZE")
        if not 0 < size <= MAX_SIZE:
            raise errors.ValidationFailed("SIZE is a diameter above 0 and at most %(max)s "
                                          "degrees.", field="SIZE", max=MAX_SIZE)
    if values.get("POS"):
        ra, dec = _position(values["POS"])
        query.pos = [("circle", ra, dec, size / 2)]
    if values.get("BAND"):
        query.band = _ranges(values["BAND"], "BAND", _wavelength)
    if values.get("TIME"):
        query.time = _ranges(values["TIME"], "TIME", _mjd)
    if values.get("TARGETNAME"):
        query.target = [values["TARGETNAME"][:100]]
    return query, maxrec, metadata


# -- answers ---------------------------------------------------------------------------------

def _iso(when: dt.datetime | None) -> str | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def ssa_row(request: Request, archived, publisher: str) -> dict:
    """One archived spectrum as an SSA record."""
    base = str(request.base_url).rstrip("/")
    header = archived.header if isinstance(archived.header, dict) else {}
    low, high = archived.em_min, archived.em_max
    mid = (low + high) / 2 if low is not None and high is not None else None
    t_min, t_max = archived.t_min, archived.t_max
    position = (archived.s_ra, archived.s_dec) if archived.s_ra is not None else None
    length = header.get("NAXIS1")
    instrument = " ".join(x for x in (archived.facility_name, archived.instrument_name) if x)
    title = " ".join(x for x in (archived.target_name or archived.filename, instrument,
                                 archived.date_obs.strftime("%Y-%m-%d")) if x)
    return {
        "accref": f"{base}/api/v1/data/observations/{archived.id}/file",
        "mime": archived.access_format, "accsize": archived.size,
        "ssa_model": "Spectrum-1.0", "ssa_dstype": "Spectrum",
        "ssa_length": int(length) if isinstance(length, int | float) else None,
        "ssa_dstitle": title, "ssa_collection": archived.obs_collection,
        # a space, not a T, between date and time: what pyvo's SSARecord.dateobs reads
        "ssa_instrument": instrument or None,
        "ssa_dateObs": _iso(archived.date_obs)[:19].replace("T", " "),
        "ssa_pubDID": archived.obs_publisher_did, "ssa_publisher": publisher,
        "ssa_targname": archived.target_name, "ssa_targetpos": position,
        "ssa_csysName": "ICRS", "ssa_location": position, "ssa_aperture": archived.s_fov,
        "ssa_specmid": mid, "ssa_specext": high - low if mid is not None else None,
        "ssa_specstart": low, "ssa_specend": high,
        "ssa_specres": mid / archived.em_res_power if mid and archived.em_res_power else None,
        "ssa_spectralucd": "em.wl",
        "ssa_spectralunit": str(header.get("CUNIT1") or "m"),
        "ssa_speccalib": "ABSOLUTE",
        "ssa_fluxucd": archived.o_ucd or "phot.flux.density;em.wl",
        "ssa_fluxunit": str(header.get("BUNIT") or ""),
        "ssa_fluxcalib": "ABSOLUTE" if archived.calib_level >= 3 else "UNCALIBRATED",
        "ssa_timemid": (t_min + t_max) / 2 if t_min is not None and t_max is not None
        else None,
        "ssa_timeExt": archived.t_exptime, "ssa_timestart": t_min, "ssa_timestop": t_max,
        "obs_release_date": _iso(archived.obs_release_date),
    }


def ssa_columns() -> list[dict]:
    return [{"name": name, "datatype": datatype, "arraysize": arraysize, "unit": unit,
             "ucd": ucd, "utype": utype, "description": description}
            for name, datatype, arraysize, unit, ucd, utype, description in COLUMNS]


def _describe_inputs(votable) -> None:
    """The input PARAMs of a metadata query: INPUT:<name> with a default and a description."""
    resource = votable.resources[0]
    for name, datatype, unit, ucd, default, description in INPUTS:
        param = Param(votable, name=f"INPUT:{name}", ID=f"INPUT_{name}", datatype=datatype,
                      arraysize="*" if datatype == "char" else None, unit=unit or None,
                      ucd=ucd or None, value=default if datatype == "char" else
                      (default or "0"))
        param.description = description
        resource.params.append(param)


@pages.get("/ssa", openapi_extra=uses(ArchiveOps.FILE_READ))
def query(request: Request, ctx: Ctx):
    constraints, maxrec, metadata = parse_query(request)
    found, overflow = archive.discover(ctx, constraints, 0 if metadata else maxrec)
    rows = [] if metadata else [ssa_row(request, f, ctx.settings.site_name) for f in found]
    columns = [{**c, "id": c["name"]} if c["name"] == "ssa_pubDID" else c
               for c in ssa_columns()]
    votable = results_table(columns, rows, name="spectra",
                            status="OVERFLOW" if overflow and not metadata else "OK",
                            infos={"SERVICE_PROTOCOL": "1.1", "REQUEST": "queryData"})
    if metadata:
        _describe_inputs(votable)
        return Response(to_bytes(votable), media_type=VOTABLE_TYPE)
    return Response(with_descriptor(to_bytes(votable), str(request.base_url), "ssa_pubDID"),
                    media_type=VOTABLE_TYPE)


def capability_details(capability) -> None:
    """What SSA 1.1's capability schema says of this service (after the interface)."""
    for tag, text in (("complianceLevel", "query"), ("dataSource", "pointed"),
                      ("creationType", "archival"), ("supportedFrame", "ICRS"),
                      ("maxSearchRadius", str(MAX_SIZE / 2)), ("maxRecords", str(MAX_MAXREC)),
                      ("defaultMaxRecords", str(DEFAULT_MAXREC))):
        etree.SubElement(capability, tag).text = text
    test = etree.SubElement(capability, "testQuery")
    pos = etree.SubElement(test, "pos")
    etree.SubElement(pos, "long").text = "10.0"
    etree.SubElement(pos, "lat").text = "41.0"
    etree.SubElement(test, "size").text = "0.1"
    etree.SubElement(test, "queryDataCmd").text = "REQUEST=queryData&POS=10.0,41.0&SIZE=0.1"


def capability_args(base: str) -> dict:
    """The arguments of `vosi.capability_elements` describing SSA at `base` (the registry
    reuses them)."""
    return {"standard": (STANDARD_ID, base + "?"), "capability_type": "ssa:SimpleSpectralAccess",
            "details": capability_details}


@pages.get("/ssa/capabilities", openapi_extra=PUBLIC)
def capabilities(request: Request):
    base = f"{str(request.base_url).rstrip('/')}/ssa"
    args = capability_args(base)
    return vosi.capabilities(base, args.pop("standard"), extra_ns={"ssa": SSA_NS}, **args)


@pages.get("/ssa/availability", openapi_extra=PUBLIC)
def availability():
    return vosi.availability()
