"""The data center's publishing registry: OAI-PMH 2.0 at /oai (GET and POST), as the IVOA
Registry Interfaces 1.0 ask.

    GET|POST /oai?verb=Identify | ListMetadataFormats | ListSets | ListIdentifiers |
                   ListRecords | GetRecord  [metadataPrefix=oai_dc|ivo_vor, set=ivo_managed,
                   from=, until=, identifier=, resumptionToken=]

The records (VOResource 1.1, VODataService 1.2, VORegistry 1.0) are the registry itself
(vg:Registry with its OAI interface and the authority it manages), the naming authority
(vg:Authority, `settings.vo_authority`), and one vs:CatalogService per VO service: TAP, SIA 2,
SSA, DataLink, and a cone search for each public catalog. A catalog still proprietary is not
published: the registry shows what an anonymous visitor may use. Their capabilities are those
the services' VOSI documents give (`vosi.capability_elements`).

Protocol errors (badVerb, badArgument, cannotDisseminateFormat, idDoesNotExist,
noRecordsMatch, badResumptionToken) are OAI-PMH documents with HTTP 200, as the protocol says.
Page size: `settings.oai_page_size`; a resumptionToken carries the query and the offset.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from lxml import etree
from starlette.responses import Response

from astrocloud.core.security.engine import Subject
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import uses
from astrocloud.data.catalogs import services as catalogs
from astrocloud.data.catalogs.services import CatalogOps
from astrocloud.data.vo import scs, ssa, vosi

OAI = "http://www.openarchives.org/OAI/2.0/"
OAI_DC = "http://www.openarchives.org/OAI/2.0/oai_dc/"
DC = "http://purl.org/dc/elements/1.1/"
RI = "http://www.ivoa.net/xml/RegistryInterface/v1.0"
VG = "http://www.ivoa.net/xml/VORegistry/v1.0"
VR = vosi.VR  # VOResource 1.1 keeps the 1.0 namespace
VS = vosi.VS  # VODataService 1.2 keeps the 1.1 namespace
XSI = vosi.XSI
TR = "http://www.ivoa.net/xml/TAPRegExt/v1.0"
CS = scs.CS
SSA = ssa.SSA_NS
#: the prefixes every VOResource record declares
VOR_NSMAP = {"ri": RI, "vr": VR, "vs": VS, "vg": VG, "xsi": XSI, "tr": TR, "cs": CS, "ssa": SSA}
FORMATS = {
    "oai_dc": (OAI_DC, "http://www.openarchives.org/OAI/2.0/oai_dc.xsd"),
    "ivo_vor": (RI, "http://www.ivoa.net/xml/RegistryInterface/RegistryInterface-v1.0.xsd"),
}
SET = "ivo_managed"
VERBS = {  # verb: (required arguments, optional arguments)
    "Identify": ((), ()),
    "ListMetadataFormats": ((), ("identifier",)),
    "ListSets": ((), ()),
    "ListIdentifiers": (("metadataPrefix",), ("from", "until", "set")),
    "ListRecords": (("metadataPrefix",), ("from", "until", "set")),
    "GetRecord": (("identifier", "metadataPrefix"), ()),
}
#: when the VO services' descriptions were last changed (their records' datestamps)
SERVICES_UPDATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?$")

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]


class OAIError(Exception):
    """An OAI-PMH error condition: its code and what went wrong."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


# -- the resources -------------------------------------------------------------------------

@dataclasses.dataclass
class Published:
    """One resource of the registry, enough for both metadata formats."""

    ivoid: str
    kind: str  # vg:Registry, vg:Authority, vs:CatalogService
    title: str
    short_name: str
    description: str
    subjects: tuple[str, ...]
    reference_url: str
    created: dt.datetime
    updated: dt.datetime
    capabilities: list[dict] = dataclasses.field(default_factory=list)  # capability_elements
    content_type: str = "Other"  # VOResource content type
    #: adds what the resource type has after curation/content (capabilities come first)
    extra: Callable | None = None


def _utc(when: dt.datetime) -> dt.datetime:
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).replace(microsecond=0)


def _stamp(when: dt.datetime) -> str:
    return _utc(when).isoformat().replace("+00:00", "Z")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _std(standard_id: str, url: str, capability_type: str | None = None,
         details=None) -> dict:
    return {"standard": (standard_id, url), "capability_type": capability_type,
            "details": details}


def _tap_details(capability) -> None:
    """TAPRegExt: ADQL, and VOTable out (what any TAP service offers)."""
    language = etree.SubElement(capability, "language")
    etree.SubElement(language, "name").text = "ADQL"
    etree.SubElement(language, "version", {"ivo-id": "ivo://ivoa.net/std/ADQL#v2.0"}).text = \
        "2.0"
    etree.SubElement(language, "description").text = "ADQL 2.0"
    output = etree.SubElement(capability, "outputFormat",
                              {"ivo-id": "ivo://ivoa.net/std/TAPRegExt#output-votable-td"})
    etree.SubElement(output, "mime").text = "application/x-votable+xml"
    etree.SubElement(output, "alias").text = "votable"


def published(request: Request, ctx: Context) -> list[Published]:
    """Everything the registry publishes, by identifier. Catalogs are listed as an anonymous
    visitor sees them, whoever asks: a proprietary catalog is not in the registry."""
    settings = ctx.settings
    authority = settings.vo_authority
    base = _base(request)
    site = settings.site_name
    ctx.subject = Subject.anonymous()
    public = catalogs.list_catalogs(ctx)
    start = min([SERVICES_UPDATED, *(_utc(c.created_at) for c in public)])

    def registry_extra(resource) -> None:
        etree.SubElement(resource, "full").text = "false"
        etree.SubElement(resource, "managedAuthority").text = authority

    def authority_extra(resource) -> None:
        etree.SubElement(resource, "managingOrg").text = site

    def service(path: str, title: str, description: str, subjects: tuple[str, ...],
                capability: dict, short: str) -> Published:
        return Published(ivoid=f"ivo://{authority}/{path}", kind="vs:CatalogService",
                         title=f"{site} {title}", short_name=short, description=description,
                         subjects=subjects, reference_url=f"{base}/",
                         created=SERVICES_UPDATED, updated=SERVICES_UPDATED,
                         capabilities=[{"base": f"{base}/{path}", **capability}],
                         content_type="Archive")

    records = [
        Published(ivoid=f"ivo://{authority}/registry", kind="vg:Registry",
                  title=f"{site} publishing registry", short_name="registry",
                  description=f"The publishing registry of {site}: the VOResource records of "
                              f"its VO services, harvested through OAI-PMH.",
                  subjects=("virtual-observatories",), reference_url=f"{base}/",
                  created=start, updated=SERVICES_UPDATED,
                  capabilities=[{"base": f"{base}/oai", "vosi": False, **_std(
                      "ivo://ivoa.net/std/Registry", f"{base}/oai", "vg:Harvest",
                      _harvest_details(settings.oai_page_size))}],
                  content_type="Other", extra=registry_extra),
        Published(ivoid=f"ivo://{authority}", kind="vg:Authority",
                  title=f"{site} naming authority", short_name=authority[:16],
                  description=f"The IVOA naming authority of {site}: identifiers "
                              f"ivo://{authority}/… name its services, data and catalogs.",
                  subjects=("virtual-observatories",), reference_url=f"{base}/",
                  created=start, updated=SERVICES_UPDATED, extra=authority_extra),
        service("tap", "TAP service", f"Table Access Protocol (TAP 1.1, ADQL) over {site}'s "
                "ObsCore table of archived observations and its public source catalogs.",
                ("astronomical-databases", "observational-astronomy"),
                _std("ivo://ivoa.net/std/TAP", f"{base}/tap", "tr:TableAccess", _tap_details),
                "TAP"),
        service("sia", "image access (SIA 2.0)", f"Simple Image Access 2.0 over {site}'s "
                "archive of images, spectra and cubes, described as ObsCore records.",
                ("astronomical-images", "observational-astronomy"),
                _std("ivo://ivoa.net/std/SIA#query-2.0", f"{base}/sia/query"), "SIA"),
        service("ssa", "spectra (SSA 1.1)", f"Simple Spectral Access 1.1 over the spectra of "
                f"{site}'s archive.", ("spectroscopy", "observational-astronomy"),
                {**ssa.capability_args(f"{base}/ssa")}, "SSA"),
        service("datalink", "DataLink", f"DataLink 1.1 for the files of {site}'s archive: "
                "the file, its previews, quality report and provenance.",
                ("astronomical-databases",),
                _std("ivo://ivoa.net/std/DataLink#links-1.1", f"{base}/datalink/links"),
                "DataLink"),
    ]
    for catalog in public:
        records.append(Published(
            ivoid=f"ivo://{authority}/scs/{catalog.name}", kind="vs:CatalogService",
            title=catalog.title or f"{site} catalog {catalog.name}",
            short_name=catalog.name[:16],
            description=catalog.description or f"The source catalog {catalog.name} of {site} "
                                               f"({catalog.n_rows} rows), as a cone search.",
            subjects=("catalogs",), reference_url=f"{base}/data/catalogs/{catalog.name}",
            created=_utc(catalog.created_at),
            updated=_utc(max(catalog.updated_at or catalog.created_at, catalog.created_at)),
            capabilities=[{"base": f"{base}/scs/{catalog.name}",
                           **scs.capability_args(f"{base}/scs/{catalog.name}")}],
            content_type="Catalog"))
    return sorted(records, key=lambda r: r.ivoid)


def _harvest_details(page_size: int):
    def details(capability) -> None:
        interface = capability.find("interface")
        interface.set(f"{{{XSI}}}type", "vg:OAIHTTP")  # the OAI interface, not ParamHTTP
        etree.SubElement(capability, "maxRecords").text = str(page_size)
    return details


def _contact_email(ctx: Context) -> str:
    if ctx.settings.vo_contact_email:
        return ctx.settings.vo_contact_email
    sender = ctx.settings.mail_from
    found = re.search(r"<([^>]+)>", sender)
    return found.group(1) if found else sender


# -- the two metadata formats --------------------------------------------------------------

def vor_element(record: Published, ctx: Context) -> etree._Element:
    """The record as a VOResource 1.1 ri:Resource."""
    resource = etree.Element(f"{{{RI}}}Resource", nsmap=VOR_NSMAP)
    resource.set(f"{{{XSI}}}type", record.kind)
    resource.set("created", _stamp(record.created))
    resource.set("updated", _stamp(record.updated))
    resource.set("status", "active")
    etree.SubElement(resource, "title").text = record.title
    etree.SubElement(resource, "shortName").text = record.short_name
    etree.SubElement(resource, "identifier").text = record.ivoid
    curation = etree.SubElement(resource, "curation")
    etree.SubElement(curation, "publisher").text = ctx.settings.site_name
    etree.SubElement(curation, "date", role="created").text = _stamp(record.created)
    etree.SubElement(curation, "date", role="updated").text = _stamp(record.updated)
    contact = etree.SubElement(curation, "contact")
    etree.SubElement(contact, "name").text = f"{ctx.settings.site_name} data center"
    etree.SubElement(contact, "email").text = _contact_email(ctx)
    content = etree.SubElement(resource, "content")
    for subject in record.subjects:
        etree.SubElement(content, "subject").text = subject
    etree.SubElement(content, "description").text = record.description
    etree.SubElement(content, "referenceURL").text = record.reference_url
    etree.SubElement(content, "type").text = record.content_type
    etree.SubElement(content, "contentLevel").text = "Research"
    if record.kind != "vg:Authority":
        etree.SubElement(resource, "rights").text = "Public data are free to use; " \
            "proprietary data need their team's credentials."
    for capability in record.capabilities:
        args = {k: v for k, v in capability.items() if k not in ("base", "vosi")}
        elements = vosi.capability_elements(capability["base"], args.pop("standard"), **args)
        resource.extend(elements if capability.get("vosi", True) else elements[:1])
    if record.extra is not None:
        record.extra(resource)
    return resource


def dc_element(record: Published, ctx: Context) -> etree._Element:
    """The record in simple Dublin Core (oai_dc)."""
    root = etree.Element(f"{{{OAI_DC}}}dc", nsmap={"oai_dc": OAI_DC, "dc": DC, "xsi": XSI})
    root.set(f"{{{XSI}}}schemaLocation", f"{OAI_DC} {FORMATS['oai_dc'][1]}")
    for tag, text in (("title", record.title), ("identifier", record.ivoid),
                      ("identifier", record.reference_url),
                      ("publisher", ctx.settings.site_name),
                      *(("subject", s) for s in record.subjects),
                      ("description", record.description),
                      ("date", _stamp(record.created)[:10]),
                      ("type", "Service" if record.kind != "vg:Authority" else "Text")):
        etree.SubElement(root, f"{{{DC}}}{tag}").text = text
    return root


# -- the protocol --------------------------------------------------------------------------

def _arguments(pairs: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    verb_values = [v for k, v in pairs if k == "verb"]
    if len(verb_values) != 1 or verb_values[0] not in VERBS:
        raise OAIError("badVerb", "The verb is missing, repeated or not an OAI-PMH verb."
                       if len(verb_values) != 1 else f"“{verb_values[0][:40]}” is not an "
                                                     "OAI-PMH verb.")
    verb = verb_values[0]
    args: dict[str, str] = {}
    required, optional = VERBS[verb]
    allowed = set(required) | set(optional)
    if verb in ("ListIdentifiers", "ListRecords", "ListSets"):
        allowed.add("resumptionToken")
    for key, value in pairs:
        if key == "verb":
            continue
        if key not in allowed:
            raise OAIError("badArgument", f"{verb} takes no argument “{key[:40]}”.")
        if key in args:
            raise OAIError("badArgument", f"The argument {key} is repeated.")
        args[key] = value
    if "resumptionToken" in args:
        if len(args) > 1:
            raise OAIError("badArgument", "resumptionToken is an exclusive argument.")
        return verb, args
    missing = [name for name in required if not args.get(name)]
    if missing:
        raise OAIError("badArgument", f"{verb} needs {', '.join(missing)}.")
    return verb, args


def _date(text: str, name: str, end: bool) -> tuple[dt.datetime, bool]:
    if not DATE_RE.match(text):
        raise OAIError("badArgument", f"{name} is YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ.")
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            when = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return (when + dt.timedelta(days=1) - dt.timedelta(seconds=1) if end else when,
                    False)
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC), True
    except ValueError:
        raise OAIError("badArgument", f"{name}: “{text[:40]}” is not a date.") from None


def _encode_token(query: dict, offset: int) -> str:
    raw = json.dumps({**query, "offset": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[dict, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        offset = data.pop("offset")
        if not isinstance(offset, int) or offset < 0 or data.get("metadataPrefix") not in \
                FORMATS or set(data) - {"metadataPrefix", "from", "until", "set"}:
            raise ValueError
        return data, offset
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
        raise OAIError("badResumptionToken", "The resumptionToken is not valid (or has "
                                             "expired).") from None


def _selected(records: list[Published], query: dict) -> list[Published]:
    if query.get("metadataPrefix") not in FORMATS:
        raise OAIError("cannotDisseminateFormat", f"The metadata format "
                       f"“{str(query.get('metadataPrefix'))[:40]}” is not offered: use "
                       f"{' or '.join(FORMATS)}.")
    low = high = None
    granular = []
    if query.get("from"):
        low, fine = _date(query["from"], "from", False)
        granular.append(fine)
    if query.get("until"):
        high, fine = _date(query["until"], "until", True)
        granular.append(fine)
    if len(set(granular)) > 1:
        raise OAIError("badArgument", "from and until must have the same granularity.")
    if low and high and low > high:
        raise OAIError("badArgument", "from is after until.")
    if query.get("set") not in (None, SET):
        raise OAIError("noRecordsMatch", f"There is no set “{str(query['set'])[:40]}”; the "
                                         f"only set is {SET}.")
    chosen = [r for r in records if (low is None or _utc(r.updated) >= low)
              and (high is None or _utc(r.updated) <= high)]
    if not chosen:
        raise OAIError("noRecordsMatch", "No record matches these arguments.")
    return chosen


def _header(parent, record: Published) -> None:
    header = etree.SubElement(parent, "header")
    etree.SubElement(header, "identifier").text = record.ivoid
    etree.SubElement(header, "datestamp").text = _stamp(record.updated)
    etree.SubElement(header, "setSpec").text = SET


def _metadata(parent, record: Published, prefix: str, ctx: Context) -> None:
    wrapper = etree.SubElement(parent, "metadata")
    wrapper.append(vor_element(record, ctx) if prefix == "ivo_vor" else dc_element(record, ctx))


def _answer(verb: str, args: dict, request: Request, ctx: Context, root) -> None:
    records = published(request, ctx)
    by_id = {r.ivoid: r for r in records}
    body = etree.SubElement(root, verb)
    if verb == "Identify":
        earliest = min(_utc(r.updated) for r in records)
        for tag, text in (("repositoryName", f"{ctx.settings.site_name} publishing registry"),
                          ("baseURL", f"{_base(request)}/oai"), ("protocolVersion", "2.0"),
                          ("adminEmail", _contact_email(ctx)),
                          ("earliestDatestamp", _stamp(earliest)), ("deletedRecord", "no"),
                          ("granularity", "YYYY-MM-DDThh:mm:ssZ")):
            etree.SubElement(body, tag).text = text
        # Registry Interfaces 1.0: the registry's own record goes in a description
        etree.SubElement(body, "description").append(
            vor_element(by_id[f"ivo://{ctx.settings.vo_authority}/registry"], ctx))
        return
    if verb == "ListMetadataFormats":
        if args.get("identifier") and args["identifier"] not in by_id:
            raise OAIError("idDoesNotExist", f"There is no record {args['identifier'][:200]}.")
        for prefix, (namespace, schema) in FORMATS.items():
            entry = etree.SubElement(body, "metadataFormat")
            etree.SubElement(entry, "metadataPrefix").text = prefix
            etree.SubElement(entry, "schema").text = schema
            etree.SubElement(entry, "metadataNamespace").text = namespace
        return
    if verb == "ListSets":
        if "resumptionToken" in args:
            raise OAIError("badResumptionToken", "ListSets has a single page.")
        entry = etree.SubElement(body, "set")
        etree.SubElement(entry, "setSpec").text = SET
        etree.SubElement(entry, "setName").text = "Resources managed by this registry"
        return
    if verb == "GetRecord":
        if args["metadataPrefix"] not in FORMATS:
            _selected(records, args)  # raises cannotDisseminateFormat
        record = by_id.get(args["identifier"])
        if record is None:
            raise OAIError("idDoesNotExist", f"There is no record {args['identifier'][:200]}.")
        entry = etree.SubElement(body, "record")
        _header(entry, record)
        _metadata(entry, record, args["metadataPrefix"], ctx)
        return
    # ListIdentifiers, ListRecords
    if "resumptionToken" in args:
        query, offset = _decode_token(args["resumptionToken"])
    else:
        query, offset = dict(args), 0
    chosen = _selected(records, query)
    if offset > len(chosen) or (offset and offset == len(chosen)):
        raise OAIError("badResumptionToken", "The resumptionToken is past the end of the "
                                             "list.")
    size = ctx.settings.oai_page_size
    page = chosen[offset:offset + size]
    for record in page:
        if verb == "ListIdentifiers":
            _header(body, record)
        else:
            entry = etree.SubElement(body, "record")
            _header(entry, record)
            _metadata(entry, record, query["metadataPrefix"], ctx)
    if offset or offset + size < len(chosen):  # a list in pages: the token (empty at the end)
        token = etree.SubElement(body, "resumptionToken", completeListSize=str(len(chosen)),
                                 cursor=str(offset))
        if offset + size < len(chosen):
            token.text = _encode_token(query, offset + size)


def _xml_safe(text: str) -> str:
    """The text with the characters XML cannot hold replaced (arguments are echoed)."""
    return NOT_XML.sub("\ufffd", text[:2000])


def respond(request: Request, ctx: Context, pairs: list[tuple[str, str]]) -> Response:
    """The OAI-PMH answer to a request's arguments (from the query string or the form)."""
    pairs = [(_xml_safe(k), _xml_safe(v)) for k, v in pairs]
    # a prefix, not a default namespace: the records' unqualified VOResource elements must stay
    # in no namespace
    root = etree.Element(f"{{{OAI}}}OAI-PMH", nsmap={"oai": OAI, "xsi": XSI})
    root.set(f"{{{XSI}}}schemaLocation", f"{OAI} http://www.openarchives.org/OAI/2.0/"
                                         f"OAI-PMH.xsd")
    etree.SubElement(root, "responseDate").text = _stamp(dt.datetime.now(dt.UTC))
    echo = etree.SubElement(root, "request")
    echo.text = f"{_base(request)}/oai"
    # the route's operation runs whatever the outcome (the catalogs are always listed)
    parsed = False
    try:
        verb, args = _arguments(pairs)
        echo.set("verb", verb)
        for key, value in args.items():
            echo.set(key, value)
        parsed = True
        _answer(verb, args, request, ctx, root)
    except OAIError as error:
        if not parsed:
            published(request, ctx)
        if error.code in ("badVerb", "badArgument"):  # then the request is not echoed
            for key in list(echo.attrib):
                del echo.attrib[key]
        for child in root[2:]:
            root.remove(child)
        etree.SubElement(root, "error", code=error.code).text = error.message
    _qualify(root)
    return Response(etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                    media_type="text/xml; charset=utf-8")


def _qualify(root) -> None:
    """Put the OAI envelope's unqualified elements in the OAI namespace (records keep
    theirs: VOResource children are unqualified by design)."""
    stack = [root]
    while stack:
        element = stack.pop()
        if element.tag in (f"{{{RI}}}Resource", f"{{{OAI_DC}}}dc"):
            continue
        if isinstance(element.tag, str) and not element.tag.startswith("{"):
            element.tag = f"{{{OAI}}}{element.tag}"
        stack.extend(element)


async def _form(request: Request) -> list[tuple[str, str]]:
    if request.method == "POST":
        form = await request.form()
        return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return list(request.query_params.multi_items())


@pages.get("/oai", openapi_extra=uses(CatalogOps.READ))
@pages.post("/oai", openapi_extra=uses(CatalogOps.READ))
def harvest(request: Request, ctx: Ctx,
            pairs: Annotated[list[tuple[str, str]], Depends(_form)]):
    return respond(request, ctx, pairs)
