"""The documents of IVOA VOSpace 2.1 (and the UWS 1.1 and VOSI ones around it): reading what
clients send and writing what the service answers. Pure functions over plain values; the HTTP
side is in `cloud.vospace`.

Node identifiers are `vos://<authority>!vospace/<path>`; incoming URIs may use `~` instead of
`!` (VOSpace 2.1 §2). Documents are parsed with external entities, DTDs and network access
switched off, so an uploaded document cannot read files or expand into gigabytes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import unquote

from lxml import etree

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
VOSI_CAPS_NS = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
VOSI_AVAIL_NS = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
VS_NS = "http://www.ivoa.net/xml/VODataService/v1.1"
VERSION = "2.1"

CORE = "ivo://ivoa.net/vospace/core#"
CADC_ISPUBLIC = "ivo://cadc.nrc.ca/vospace/core#ispublic"
# The standard properties (VOSpace 2.1 appendix C) this service fills in or understands.
P_LENGTH, P_DATE, P_MTIME, P_CTIME, P_BTIME = (CORE + n for n in
                                               ("length", "date", "mtime", "ctime", "btime"))
P_QUOTA, P_AVAILABLE, P_TYPE, P_CREATOR = (CORE + n for n in
                                           ("quota", "availableSpace", "type", "creator"))
P_GROUPREAD, P_GROUPWRITE, P_PUBLICREAD = (CORE + n for n in
                                           ("groupread", "groupwrite", "publicread"))
PUBLIC_ALIASES = (P_PUBLICREAD, CADC_ISPUBLIC, CORE + "ispublic")
READ_ONLY = frozenset({P_LENGTH, P_DATE, P_MTIME, P_CTIME, P_BTIME, P_QUOTA, P_AVAILABLE,
                       P_CREATOR, CORE + "MD5"})
DUBLIN_CORE = tuple(CORE + n for n in (
    "title", "subject", "description", "publisher", "contributor", "format", "identifier",
    "source", "language", "relation", "coverage", "rights"))

VIEW_ANY, VIEW_DEFAULT, VIEW_BINARY = (CORE + n for n in ("anyview", "defaultview",
                                                          "binaryview"))
CADC_DATA_VIEW = "ivo://cadc.nrc.ca/vospace/view#data"
HTTPGET, HTTPPUT, HTTPSGET, HTTPSPUT = (CORE + n for n in ("httpget", "httpput", "httpsget",
                                                          "httpsput"))
PUBLIC_SHARE = "http://wiki.ivoa.net/twiki/bin/view/IVOA/VOSpacePublicShare"

SM_TOKEN = "ivo://ivoa.net/sso#token"
SM_BASIC = "ivo://ivoa.net/sso#BasicAA"
SM_BASIC_W3C = "http://www.w3.org/Protocols/HTTP/1.0/spec/html#BasicAA"

PUSH_TO, PULL_FROM = "pushToVoSpace", "pullFromVoSpace"
PULL_TO, PUSH_FROM = "pullToVoSpace", "pushFromVoSpace"
EXTERNAL_DIRECTIONS = (PUSH_TO, PULL_FROM, PULL_TO, PUSH_FROM)

NODE_TYPES = {"container": "vos:ContainerNode", "data": "vos:DataNode", "link": "vos:LinkNode"}
TYPE_KINDS = {"ContainerNode": "container", "DataNode": "data", "UnstructuredDataNode": "data",
              "StructuredDataNode": "data", "Node": "data", "LinkNode": "link"}

MAX_DOCUMENT = 256 * 1024  # a node or transfer document; bytes travel elsewhere


class DocumentError(ValueError):
    """A document a client sent cannot be used; `fault` names the VOSpace fault."""

    def __init__(self, fault: str, message: str):
        super().__init__(message)
        self.fault = fault


# ---- identifiers ------------------------------------------------------------------------------


def node_uri(authority: str, path: str) -> str:
    return f"vos://{authority}!vospace" + (f"/{path}" if path else "")


def path_of(uri: str, authority: str) -> str:
    """The node path named by a `vos://` URI of this service ("" for the top node)."""
    if not isinstance(uri, str) or not uri.startswith("vos://"):
        raise DocumentError("InvalidURI", f"{uri!r} is not a vos:// URI")
    rest = uri[len("vos://"):].split("#", 1)[0].split("?", 1)[0]
    auth, slash, path = rest.partition("/")
    name, sep, service = auth.replace("~", "!").rpartition("!")
    if not sep or name.lower() != authority.lower() or service != "vospace":
        raise DocumentError("InvalidURI", f"{uri} does not name a node of this service "
                                          f"(vos://{authority}!vospace/…)")
    if "%2f" in path.lower() or "%00" in path or "%5c" in path.lower():
        raise DocumentError("InvalidURI", f"{uri}: encoded slashes, backslashes or NUL")
    return unquote(path).strip("/") if slash else ""


def check_node_path(path: str) -> str:
    """VOSpace paths: relative, no empty, "." or ".." segments, no control characters."""
    if path.startswith("/") or "//" in path:
        raise DocumentError("InvalidURI", "a node path is relative, without empty parts")
    if any(ord(c) < 32 or c in "\\\x7f" for c in path):
        raise DocumentError("InvalidURI", "a node path may not contain control characters "
                                          "or backslashes")
    for segment in path.rstrip("/").split("/"):
        if segment in (".", ".."):
            raise DocumentError("InvalidURI", "a node path may not contain “.” or “..”")
    return path.rstrip("/")


# ---- time -------------------------------------------------------------------------------------


def iso(when: dt.datetime | None, *, zone: bool = False) -> str:
    """UTC in ISO 8601 with milliseconds (DALI style; `zone` adds the Z that UWS likes)."""
    if when is None:
        return ""
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}" + \
        ("Z" if zone else "")


# ---- writing ----------------------------------------------------------------------------------


def _q(tag: str) -> str:
    return f"{{{VOS_NS}}}{tag}"


def _doc(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


@dataclass
class NodeView:
    """What a node document shows: filled by the HTTP layer from the service's nodes."""

    uri: str
    kind: str  # container, data, link
    properties: list[tuple[str, str, bool]] = field(default_factory=list)  # uri, value, ro
    target: str | None = None
    children: list[NodeView] | None = None


def _node_element(parent, view: NodeView, detail: str, *, root: bool = False):
    nsmap = {"vos": VOS_NS, "xsi": XSI_NS} if root else None
    tag = _q("node")
    el = etree.SubElement(parent, tag) if parent is not None else etree.Element(tag, nsmap=nsmap)
    el.set("uri", view.uri)
    el.set(f"{{{XSI_NS}}}type", NODE_TYPES[view.kind])
    if root:
        el.set("version", VERSION)
    if view.kind == "data" and detail == "max":
        el.set("busy", "false")
    if detail != "min":
        props = etree.SubElement(el, _q("properties"))
        for uri, value, read_only in view.properties:
            prop = etree.SubElement(props, _q("property"), uri=uri)
            if read_only:
                prop.set("readOnly", "true")
            prop.text = value
    if view.kind == "link":
        etree.SubElement(el, _q("target")).text = view.target or ""
        return el
    if detail == "max":
        accepts = etree.SubElement(el, _q("accepts"))
        provides = etree.SubElement(el, _q("provides"))
        if view.kind == "data":
            etree.SubElement(accepts, _q("view"), uri=VIEW_ANY)
            etree.SubElement(provides, _q("view"), uri=VIEW_DEFAULT)
        etree.SubElement(el, _q("capabilities"))
    if view.kind == "container":
        # `nodes` is required by the schema whatever the detail; children come at max and min
        nodes = etree.SubElement(el, _q("nodes"))
        for child in (view.children or ()) if detail != "properties" else ():
            _node_element(nodes, child, "min" if detail == "min" else "properties")
    return el


def render_node(view: NodeView, detail: str = "max") -> bytes:
    """A `vos:node` document at detail min, max or properties (VOSpace 2.1 §5.4.1)."""
    return _doc(_node_element(None, view, detail, root=True))


def _lists(root_tag: str, item: str, accepts: list[str], provides: list[str],
           contains: list[str] | None = None) -> bytes:
    root = etree.Element(_q(root_tag), nsmap={"vos": VOS_NS})
    groups = [("accepts", accepts), ("provides", provides)]
    if contains is not None:
        groups.append(("contains", contains))
    for name, uris in groups:
        box = etree.SubElement(root, _q(name))
        for uri in uris:
            etree.SubElement(box, _q(item), uri=uri)
    return _doc(root)


def render_protocols(accepts: list[str], provides: list[str]) -> bytes:
    return _lists("protocols", "protocol", accepts, provides)


def render_views(accepts: list[str], provides: list[str]) -> bytes:
    return _lists("views", "view", accepts, provides)


def render_properties(accepts: list[str], provides: list[str], contains: list[str]) -> bytes:
    return _lists("properties", "property", accepts, provides, contains)


@dataclass
class Protocol:
    uri: str
    endpoint: str | None = None
    security_methods: list[str] = field(default_factory=list)


@dataclass
class Transfer:
    target: str
    direction: str
    view: str | None = None
    protocols: list[Protocol] = field(default_factory=list)
    keep_bytes: bool | None = None
    params: list[tuple[str, str]] = field(default_factory=list)

    @property
    def internal(self) -> bool:
        return self.direction not in EXTERNAL_DIRECTIONS

    def to_dict(self) -> dict:
        return {"target": self.target, "direction": self.direction, "view": self.view,
                "protocols": [{"uri": p.uri, "securityMethods": p.security_methods}
                              for p in self.protocols],
                "keepBytes": self.keep_bytes, "params": [list(p) for p in self.params]}

    @classmethod
    def from_dict(cls, data: dict) -> Transfer:
        return cls(target=data["target"], direction=data["direction"], view=data.get("view"),
                   protocols=[Protocol(p["uri"], None, list(p.get("securityMethods") or []))
                              for p in data.get("protocols") or []],
                   keep_bytes=data.get("keepBytes"),
                   params=[tuple(p) for p in data.get("params") or []])


def _transfer_element(transfer: Transfer, parent=None):
    if parent is None:
        el = etree.Element(_q("transfer"), nsmap={"vos": VOS_NS})
    else:
        el = etree.SubElement(parent, _q("transfer"), nsmap={"vos": VOS_NS})
    el.set("version", VERSION)
    etree.SubElement(el, _q("target")).text = transfer.target
    etree.SubElement(el, _q("direction")).text = transfer.direction
    if transfer.view:
        etree.SubElement(el, _q("view"), uri=transfer.view)
    for protocol in transfer.protocols:
        p = etree.SubElement(el, _q("protocol"), uri=protocol.uri)
        if protocol.endpoint:
            etree.SubElement(p, _q("endpoint")).text = protocol.endpoint
        for method in protocol.security_methods:
            etree.SubElement(p, _q("securityMethod"), uri=method)
    if transfer.keep_bytes is not None:
        etree.SubElement(el, _q("keepBytes")).text = "true" if transfer.keep_bytes else "false"
    for uri, value in transfer.params:
        etree.SubElement(el, _q("param"), uri=uri).text = value
    return el


def render_transfer(transfer: Transfer) -> bytes:
    return _doc(_transfer_element(transfer))


# ---- UWS --------------------------------------------------------------------------------------


def _u(tag: str) -> str:
    return f"{{{UWS_NS}}}{tag}"


@dataclass
class JobView:
    job_id: str
    phase: str
    owner: str | None
    created: dt.datetime
    started: dt.datetime | None
    ended: dt.datetime | None
    destruction: dt.datetime | None
    transfer: Transfer | None
    results: list[tuple[str, str]] = field(default_factory=list)  # id, href
    error: str | None = None  # errorSummary message
    href: str = ""


def _timed(parent, tag: str, when: dt.datetime | None) -> None:
    el = etree.SubElement(parent, _u(tag))
    if when is None:
        el.set(f"{{{XSI_NS}}}nil", "true")
    else:
        el.text = iso(when, zone=True)


def render_job(job: JobView) -> bytes:
    """A UWS 1.1 job whose jobInfo is the VOSpace transfer (VOSpace 2.1 §5.5)."""
    root = etree.Element(_u("job"), nsmap={"uws": UWS_NS, "xlink": XLINK_NS, "xsi": XSI_NS,
                                           "vos": VOS_NS})
    root.set("version", "1.1")
    etree.SubElement(root, _u("jobId")).text = job.job_id
    owner = etree.SubElement(root, _u("ownerId"))
    if job.owner:
        owner.text = job.owner
    else:
        owner.set(f"{{{XSI_NS}}}nil", "true")
    etree.SubElement(root, _u("phase")).text = job.phase
    _timed(root, "quote", None)
    etree.SubElement(root, _u("creationTime")).text = iso(job.created, zone=True)
    _timed(root, "startTime", job.started)
    _timed(root, "endTime", job.ended)
    etree.SubElement(root, _u("executionDuration")).text = "0"
    _timed(root, "destruction", job.destruction)
    etree.SubElement(root, _u("parameters"))
    _results_element(root, job.results)
    if job.error:
        summary = etree.SubElement(root, _u("errorSummary"), type="fatal", hasDetail="true")
        etree.SubElement(summary, _u("message")).text = job.error
    if job.transfer is not None:
        info = etree.SubElement(root, _u("jobInfo"))
        _transfer_element(job.transfer, info)
    return _doc(root)


def _results_element(parent, results: list[tuple[str, str]]):
    if parent is None:
        box = etree.Element(_u("results"), nsmap={"uws": UWS_NS, "xlink": XLINK_NS})
    else:
        box = etree.SubElement(parent, _u("results"))
    for ident, href in results:
        result = etree.SubElement(box, _u("result"), id=ident)
        result.set(f"{{{XLINK_NS}}}type", "simple")
        result.set(f"{{{XLINK_NS}}}href", href)
    return box


def render_results(results: list[tuple[str, str]]) -> bytes:
    return _doc(_results_element(None, results))


def render_job_list(jobs: list[JobView]) -> bytes:
    root = etree.Element(_u("jobs"), nsmap={"uws": UWS_NS, "xlink": XLINK_NS})
    root.set("version", "1.1")
    for job in jobs:
        ref = etree.SubElement(root, _u("jobref"), id=job.job_id)
        ref.set(f"{{{XLINK_NS}}}type", "simple")
        ref.set(f"{{{XLINK_NS}}}href", job.href)
        etree.SubElement(ref, _u("phase")).text = job.phase
        if job.owner:
            etree.SubElement(ref, _u("ownerId")).text = job.owner
        etree.SubElement(ref, _u("creationTime")).text = iso(job.created, zone=True)
    return _doc(root)


# ---- VOSI -------------------------------------------------------------------------------------


@dataclass
class Capability:
    standard_id: str
    access_url: str
    security_methods: tuple[str, ...] = ()  # besides anonymous access
    use: str = "base"


def render_capabilities(capabilities: list[Capability]) -> bytes:
    """VOSI capabilities; each capability has an anonymous interface first and, when it takes
    credentials, a second one listing the security methods (what CADC's clients read)."""
    root = etree.Element(f"{{{VOSI_CAPS_NS}}}capabilities",
                         nsmap={"vosi": VOSI_CAPS_NS, "vs": VS_NS, "xsi": XSI_NS})
    for cap in capabilities:
        el = etree.SubElement(root, "capability", standardID=cap.standard_id)
        interfaces = [()] + ([cap.security_methods] if cap.security_methods else [])
        for methods in interfaces:
            interface = etree.SubElement(el, "interface", role="std")
            interface.set(f"{{{XSI_NS}}}type", "vs:ParamHTTP")
            etree.SubElement(interface, "accessURL", use=cap.use).text = cap.access_url
            for method in methods:
                etree.SubElement(interface, "securityMethod", standardID=method)
    return _doc(root)


def render_availability(available: bool, note: str) -> bytes:
    root = etree.Element(f"{{{VOSI_AVAIL_NS}}}availability", nsmap={"vosi": VOSI_AVAIL_NS})
    etree.SubElement(root, f"{{{VOSI_AVAIL_NS}}}available").text = \
        "true" if available else "false"
    etree.SubElement(root, f"{{{VOSI_AVAIL_NS}}}note").text = note
    return _doc(root)


# ---- reading ----------------------------------------------------------------------------------


def _parse(body: bytes):
    if len(body) > MAX_DOCUMENT:
        raise DocumentError("InvalidArgument", "the document is too large")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise DocumentError("InvalidArgument", f"not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise DocumentError("InvalidArgument", "documents with a DOCTYPE are not accepted")
    return root


def _local(el) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _children(el, name: str) -> list:
    # VOSpace elements are qualified; clients that forget the namespace are forgiven
    return [c for c in el if _local(c) == name and etree.QName(c).namespace in (VOS_NS, None)]


def _first(el, name: str):
    found = _children(el, name)
    return found[0] if found else None


def _is_nil(el) -> bool:
    return el.get(f"{{{XSI_NS}}}nil", "").strip().lower() in ("true", "1")


@dataclass
class NodeDocument:
    uri: str
    kind: str
    properties: dict[str, str | None]  # None: delete (xsi:nil)
    target: str | None


def parse_node(body: bytes) -> NodeDocument:
    """A node document sent to create a node or set its properties."""
    root = _parse(body)
    if _local(root) != "node" or etree.QName(root).namespace not in (VOS_NS, None):
        raise DocumentError("InvalidArgument", "expected a vos:node document")
    uri = (root.get("uri") or "").strip()
    if not uri:
        raise DocumentError("InvalidURI", "the node has no uri attribute")
    xsi_type = (root.get(f"{{{XSI_NS}}}type") or "vos:Node").strip()
    prefix, _, name = xsi_type.rpartition(":")
    namespace = root.nsmap.get(prefix or None)
    if prefix and namespace not in (VOS_NS, None) or name not in TYPE_KINDS:
        raise DocumentError("TypeNotSupported", xsi_type)
    properties: dict[str, str | None] = {}
    for box in _children(root, "properties"):
        for prop in _children(box, "property"):
            key = (prop.get("uri") or "").strip()
            if not key or ":" not in key:
                raise DocumentError("InvalidArgument", "a property needs a uri")
            properties[key] = None if _is_nil(prop) else (prop.text or "")
    target = None
    if TYPE_KINDS[name] == "link":
        el = _first(root, "target")
        target = (el.text or "").strip() if el is not None else ""
    return NodeDocument(uri=uri, kind=TYPE_KINDS[name], properties=properties, target=target)


def parse_transfer(body: bytes) -> Transfer:
    root = _parse(body)
    if _local(root) != "transfer":
        raise DocumentError("InvalidArgument", "expected a vos:transfer document")
    target = _first(root, "target")
    direction = _first(root, "direction")
    if target is None or not (target.text or "").strip():
        raise DocumentError("InvalidArgument", "the transfer has no target")
    if direction is None or not (direction.text or "").strip():
        raise DocumentError("InvalidArgument", "the transfer has no direction")
    view = _first(root, "view")
    protocols = []
    for p in _children(root, "protocol"):
        methods = [m.get("uri", "").strip() for m in _children(p, "securityMethod")
                   if m.get("uri")]
        protocols.append(Protocol((p.get("uri") or "").strip(), None, methods))
    keep = _first(root, "keepBytes")
    keep_bytes = None
    if keep is not None:
        text = (keep.text or "").strip().lower()
        if text not in ("true", "false", "1", "0"):
            raise DocumentError("InvalidArgument", "keepBytes is true or false")
        keep_bytes = text in ("true", "1")
    params = [((p.get("uri") or "").strip(), p.text or "") for p in _children(root, "param")]
    return Transfer(target=target.text.strip(), direction=direction.text.strip(),
                    view=view.get("uri").strip() if view is not None and view.get("uri")
                    else None, protocols=protocols, keep_bytes=keep_bytes, params=params)
