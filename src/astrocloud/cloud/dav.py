"""MyVOSpace as WebDAV under /dav/<username>/, so compute sessions and desktops can mount it.

One tree: `ac://vos/alice/x` is `/vospace/nodes/alice/x` is `/dav/alice/x`. Every method is a
thin FastAPI route over the MyVOSpace services (`cloud.services`); nothing here touches the
models or the storage layer.

    OPTIONS              capabilities (`DAV: 1, 2`); public, tells nothing about any space
    PROPFIND             Depth 0 or 1 (a missing or `infinity` Depth is answered as 1, as
                         SabreDAV does); RFC 4918 live properties and RFC 4331 quota properties;
                         large folders stream their multistatus page by page
    GET, HEAD            streamed; single byte Range (206/416), If-Range, ETag, Last-Modified,
                         If-None-Match / If-Modified-Since (304); a folder gets an HTML index
    PUT                  streamed into the storage layer; quota enforced while bytes arrive (507),
                         a declared Content-Length over the quota is refused before reading;
                         If-Match / If-None-Match; Content-Range refused (400); the rest of a
                         refused body is drained (32 MiB at most) so the client reads the answer
    MKCOL, DELETE        folders; DELETE is recursive (Depth infinity)
    MOVE, COPY           Destination on this server under /dav/, Overwrite T/F, COPY Depth 0|inf.
    LOCK, UNLOCK         class 2: exclusive and shared write locks, Depth 0 or infinity, refresh,
                         LOCK on an unmapped name creates an empty file (RFC 4918 §7.3); the
                         If header is evaluated (tokens, ETags, Not, tagged lists: else 412)
    PROPPATCH            refused property by property (207, 403 each), as RFC 4918 allows;
                         Windows Explorer accepts that answer

Design choice: FastAPI routes, not wsgidav. wsgidav would have to be mounted as a WSGI app (a
`Mount`, outside the route audit) with a second bridge per upload: wsgidav pushes the body into
a file object from its own thread, while `services.upload` pulls an iterator, so every PUT would
need an extra thread and queue; Range reads need a seekable file where `services.download`
already takes a byte range; its authentication, error pages and lock manager would all have to
be switched off or bridged into our Context. As routes, every request goes through
`request_context` (token as Bearer or Basic password, or the session cookie), each route
declares its operations with `uses(...)` and strict mode audits them, the services make every
security decision, domain errors reach the one error handler, and no new runtime dependency
comes in. The price is this module: the XML of PROPFIND/LOCK and a small lock table.

Authorization: routes never decide who may do what. They require a signed-in caller (a visitor
gets 401 with `WWW-Authenticate: Basic realm="AstroCloud"`, which is what makes desktop clients
ask for credentials) and call the services, which answer 404 for what the caller may not see.
Writing into someone else's space (PUT, MKCOL, and a MOVE/COPY Destination or LOCK there) is 403
unless a folder there is shared read-write; whether a visible node is writable is asked of the
security framework (`ctx.can(CloudOps.VOS_WRITE, node)`) for LOCK, PROPPATCH and Destinations.

Paths: `..`, `.`, empty segments (so no absolute paths), encoded slashes or backslashes
(%2F, %5C), NUL and control characters are 400 before any service is called.

Locks live in the database (`cloud.models.DavLock`, through the services' `lock`,
`refresh_lock`, `unlock` and `check_unlocked`), so every server process behind one address sees
the same ones, and of two overlapping LOCK requests in any processes exactly one wins. Expired
locks are ignored and purged; deleting or moving a node drops the locks on and inside it.

GET and HEAD answer through the platform's one file-serving helper (`core.web.downloads`), PUT
takes its body through the one upload pump (`core.web.uploads`).
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Request
from lxml import etree
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import JSONResponse, Response, StreamingResponse

from astrocloud.cloud import services
from astrocloud.cloud.models import DavLock, Node
from astrocloud.cloud.schemas import served_file
from astrocloud.cloud.services import (
    CloudOps,
    DuplicateNode,
    LockConflict,
    LockNotFound,
    NodeLocked,
    QuotaExceeded,
)
from astrocloud.core import errors
from astrocloud.core.db import utcnow
from astrocloud.core.service import Context
from astrocloud.core.web import downloads
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.errors import ERROR_RENDERERS
from astrocloud.core.web.routing import PUBLIC, uses
from astrocloud.core.web.uploads import drain, stream_body


class _AnyPath(Convertor):
    """Everything after /dav/, newlines and control characters included, so that they reach
    the path rules (and a 400) instead of missing every route (a 404)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("davpath", _AnyPath())

PREFIX = "/dav"
api = APIRouter(prefix=PREFIX, tags=["webdav"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]

READ, WRITE, QUOTA = CloudOps.VOS_READ, CloudOps.VOS_WRITE, CloudOps.VOS_QUOTA
READ_OPS = uses(READ, QUOTA)
WRITE_OPS = uses(WRITE, READ, QUOTA)

CHALLENGE = 'Basic realm="AstroCloud"'
XML_TYPE = "application/xml; charset=utf-8"
ALLOW = "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, MOVE, COPY, LOCK, UNLOCK"
MAX_XML_BYTES = 1024 * 1024  # request bodies of PROPFIND, PROPPATCH and LOCK
PAGE = 1000  # children per listing page (each page is one service call)
LOCK_DEFAULT_SECONDS = 3600
LOCK_MAX_SECONDS = 24 * 3600
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


# ---- errors -----------------------------------------------------------------------------------


class DavError(errors.DomainError):
    """A WebDAV answer with its own status and, optionally, an RFC 4918 precondition element
    (rendered as a `DAV:error` document)."""

    code = "webdav"

    def __init__(self, status: int, message: str, /, *, condition: str | None = None,
                 **params: Any):
        super().__init__(message, **params)
        self.status = status
        self.title = _REASONS.get(status, "Error")
        self.condition = condition
        self.extra = {"condition": condition} if condition else {}


_REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 207: "Multi-Status", 304: "Not Modified",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed",
    413: "Content Too Large", 415: "Unsupported Media Type", 416: "Range Not Satisfiable",
    423: "Locked", 424: "Failed Dependency", 502: "Bad Gateway", 507: "Insufficient Storage",
}

# Problem codes of the platform and what WebDAV clients expect instead.
_STATUS_OF_CODE = {"validation-failed": 400, "duplicate-node": 409, "node-busy": 409,
                   "conflict": 409, "quota-exceeded": 507}


def render_error(request: Request, status: int, body: dict, headers: dict | None) -> Response:
    """Errors under /dav: the platform's problem+json with WebDAV's statuses, a Basic-only
    challenge on 401 (desktop clients do not parse a list of schemes), and a `DAV:error`
    document when a precondition of RFC 4918 failed."""
    path = request.url.path
    if path != PREFIX and not path.startswith(PREFIX + "/"):  # e.g. /davx: not ours
        return JSONResponse(body, status_code=status, media_type="application/problem+json",
                            headers=headers)
    code = str(body.get("type", "")).rsplit("/", 1)[-1]
    status = _STATUS_OF_CODE.get(code, status) if code != "webdav" else status
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = CHALLENGE
    body = {**body, "status": status}
    condition = body.get("condition")
    if condition:
        text = (f'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:">'
                f"<D:{condition}/><D:responsedescription>{escape(str(body.get('detail', '')))}"
                f"</D:responsedescription></D:error>")
        return Response(text, status_code=status, media_type=XML_TYPE, headers=headers)
    return JSONResponse(body, status_code=status, media_type="application/problem+json",
                        headers=headers)


ERROR_RENDERERS.append((PREFIX, render_error))


# ---- names ------------------------------------------------------------------------------------


def _check_raw(raw: bytes) -> None:
    lowered = raw.lower()
    if b"%2f" in lowered or b"%5c" in lowered or b"%00" in lowered:
        raise DavError(400, "Encoded slashes, backslashes or NUL are not allowed in a path.")


def _check_path(path: str) -> str:
    """The node path of what follows /dav ("" for /dav itself): no traversal, no absolute or
    empty parts, no control characters or backslashes."""
    if path and not path.startswith("/"):
        raise DavError(404, "There is nothing at this address.")
    rest = path[1:]
    if rest.endswith("/"):
        rest = rest[:-1]
    if not rest:
        return ""
    if _BAD_CHARS.search(rest):
        raise DavError(400, "A path may not contain control characters or backslashes.")
    for segment in rest.split("/"):
        if segment in ("", ".", ".."):
            raise DavError(400, "A path may not contain empty, “.” or “..” parts.")
    return rest


def node_path(request: Request) -> str:
    """The node path a request names: "alice/dir/x.fits", or "" for /dav/ itself."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    _check_raw(raw.split(b"?", 1)[0])
    return _check_path(request.scope["path"][len(PREFIX):])


def href_of(path: str, container: bool) -> str:
    href = PREFIX + "/" + quote(path, safe="/") if path else PREFIX
    return href + "/" if container else href


def destination(request: Request) -> str:
    """The node path named by the Destination header of a MOVE or COPY on this server."""
    value = request.headers.get("destination", "").strip()
    if not value:
        raise DavError(400, "A MOVE or COPY names its target in a Destination header.")
    parts = urlsplit(value)
    if parts.scheme and parts.scheme.lower() not in ("http", "https"):
        raise DavError(400, "The Destination is not an http(s) address.")
    if parts.netloc:
        ours = {request.headers.get("host", "").lower(),
                urlsplit(request.app.state.settings.base_url).netloc.lower()}
        if parts.netloc.lower() not in ours:
            raise DavError(502, "The Destination is on another server.")
    if parts.path != PREFIX and not parts.path.startswith(PREFIX + "/"):
        raise DavError(502, "The Destination is outside this WebDAV space.")
    _check_raw(parts.path.encode("utf-8", "surrogateescape"))
    try:
        decoded = unquote(parts.path, errors="strict")
    except UnicodeDecodeError:
        raise DavError(400, "The Destination is not valid UTF-8.") from None
    path = _check_path(decoded[len(PREFIX):])
    if "/" not in path:
        raise DavError(403, "A user's root folder cannot be replaced.")
    return path


def _owner(path: str) -> str:
    return path.split("/", 1)[0]


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0]


# ---- the caller -------------------------------------------------------------------------------


def _signed_in(ctx: Context) -> None:
    if not ctx.subject.authenticated:
        raise errors.NotAuthenticated(
            "Sign in to use MyVOSpace over WebDAV: your user name and a personal API token "
            "as the password.")


def _lookup(ctx: Context, path: str) -> Node | None:
    """The node, or None when it does not exist or the caller may not see it."""
    try:
        return services.get_node(ctx, path)
    except errors.NotFound:
        return None


def _writable_folder(ctx: Context, path: str) -> Node:
    """The folder `path` if the caller may add to it: 409 when it is missing from one's own
    space, 403 in someone else's space (whether it exists or not)."""
    own = _owner(path) == ctx.subject.username
    node = _lookup(ctx, path)
    if node is None:
        if own:
            raise DavError(409, "The folder %(path)s does not exist.", path=path)
        raise DavError(403, "You may not write in the space of %(owner)s.", owner=_owner(path))
    if not node.is_container:
        raise DavError(409, "%(path)s is not a folder.", path=path)
    if not ctx.can(WRITE, node):
        raise DavError(403, "You may not write in %(path)s.", path=path)
    return node


def _write_refused(ctx: Context, path: str, exc: errors.DomainError) -> errors.DomainError:
    """What a write that the services refused as NotFound means to a WebDAV client."""
    if isinstance(exc, errors.NotFound):
        if _owner(path) == ctx.subject.username:
            return DavError(409, "The folder of %(path)s does not exist.", path=path)
        return DavError(403, "You may not write in the space of %(owner)s.", owner=_owner(path))
    return exc


# ---- locks ------------------------------------------------------------------------------------


def check_locks(ctx: Context, request: Request, path: str, *, tree: bool = False,
                membership: bool = False) -> None:
    """423 (DAV:lock-token-submitted) unless every lock protecting `path` is the caller's and
    its token was sent (`tree`: locks inside it count too; `membership`: so does a lock on its
    folder)."""
    try:
        services.check_unlocked(ctx, path, submitted_tokens(request), tree=tree,
                                membership=membership)
    except NodeLocked as exc:
        raise DavError(423, "%(path)s is locked.", condition="lock-token-submitted",
                       path=href_of(exc.params["path"], False)) from None


def submitted_tokens(request: Request) -> set[str]:
    """Lock tokens of the If header's lists (resource tags and ETags aside), and of a
    Lock-Token header, which some clients send with a PUT."""
    tokens: set[str] = set()
    for group in re.findall(r"\(([^)]*)\)", request.headers.get("if", "")):
        tokens.update(t.strip() for t in re.findall(r"<([^>]*)>", group))
    lock_token = request.headers.get("lock-token", "").strip()
    if lock_token:
        tokens.add(lock_token.strip("<>").strip())
    return tokens


_IF_CONDITION = re.compile(r"\s*(Not\s+)?(?:<([^>]*)>|\[([^\]]*)\])", re.IGNORECASE)


def parse_if(header: str) -> list[tuple[str | None, list[tuple[bool, str, str]]]]:
    """The If header (RFC 4918 §10.4) as [(resource tag or None, [(negated, "token"|"etag",
    value)])], one item per list; 400 when it is malformed."""
    lists: list[tuple[str | None, list[tuple[bool, str, str]]]] = []
    tag: str | None = None
    rest = header.strip()
    while rest:
        if rest.startswith("<"):
            end = rest.find(">")
            if end < 0:
                raise DavError(400, "The If header is malformed.")
            tag, rest = rest[1:end], rest[end + 1:].lstrip()
            continue
        if not rest.startswith("("):
            raise DavError(400, "The If header is malformed.")
        end = rest.find(")")
        if end < 0:
            raise DavError(400, "The If header is malformed.")
        inner, rest = rest[1:end], rest[end + 1:].lstrip()
        conditions, pos = [], 0
        while inner[pos:].strip():
            match = _IF_CONDITION.match(inner, pos)
            if match is None:
                raise DavError(400, "The If header is malformed.")
            negated = bool(match.group(1))
            if match.group(2) is not None:
                conditions.append((negated, "token", match.group(2).strip()))
            else:
                conditions.append((negated, "etag", match.group(3).strip()))
            pos = match.end()
        if not conditions:
            raise DavError(400, "The If header has an empty list.")
        lists.append((tag, conditions))
    return lists


def _tag_path(tag: str) -> str | None:
    try:
        path = urlsplit(tag).path
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return None
        return _check_path(unquote(path, errors="strict")[len(PREFIX):])
    except (DavError, UnicodeDecodeError, ValueError):
        return None


def check_if(request: Request, ctx: Context, path: str, node: Node | None) -> None:
    """412 unless one of the If header's lists that apply to `path` holds: its lock tokens
    name locks covering it, its ETags match it (`Not` inverts a condition)."""
    header = request.headers.get("if")
    if not header:
        return
    applicable = [conds for tag, conds in parse_if(header)
                  if tag is None or _tag_path(tag) == path]
    if not applicable:
        return  # every list is about other resources
    live = {lk.token for lk in services.protecting(services.live_locks(ctx, path), path)} \
        if path else set()
    etag = node.etag if node is not None else None

    def holds(kind: str, value: str) -> bool:
        if kind == "token":
            return value in live
        return etag is not None and value.removeprefix("W/") == etag

    if not any(all(holds(kind, value) != negated for negated, kind, value in conds)
               for conds in applicable):
        raise DavError(412, "The conditions of the If header do not hold for %(path)s.",
                       path=href_of(path, False))


def _timeout(request: Request) -> int:
    for item in request.headers.get("timeout", "").split(","):
        item = item.strip().lower()
        if item == "infinite":
            return LOCK_MAX_SECONDS
        if item.startswith("second-") and item[7:].isdigit():
            return max(1, min(int(item[7:]), LOCK_MAX_SECONDS))
    return LOCK_DEFAULT_SECONDS


# ---- XML --------------------------------------------------------------------------------------


async def xml_body(request: Request) -> etree._Element | None:
    """The request's XML document (None when there is no body), read up to MAX_XML_BYTES;
    no DTDs, no entities, no network."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_XML_BYTES:
            raise DavError(413, "The XML body is larger than %(n)s bytes.", n=MAX_XML_BYTES)
    if not bytes(data).strip():
        return None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(bytes(data), parser)
    except etree.XMLSyntaxError:
        raise DavError(400, "The request body is not well-formed XML.") from None
    if root.getroottree().docinfo.doctype:
        raise DavError(400, "Document type declarations are not accepted.")
    return root


def _dav(name: str) -> str:
    return "{DAV:}" + name


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _element(tag: str, content: str | None) -> str:
    """One property element (any namespace) with `content` (XML) or empty."""
    ns, name = _split(tag)
    if ns == "DAV:":
        open_, close = f"D:{name}", f"D:{name}"
    else:
        open_, close = f'X:{name} xmlns:X="{escape(ns, {chr(34): "&quot;"})}"', f"X:{name}"
        if not ns:
            open_, close = f'{name} xmlns=""', name
    return f"<{open_}/>" if not content else f"<{open_}>{content}</{close}>"


def _status_line(status: int) -> str:
    return f"<D:status>HTTP/1.1 {status} {_REASONS.get(status, '')}</D:status>"


def _iso_date(when: dt.datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- properties -------------------------------------------------------------------------------


LIVE = ("resourcetype", "displayname", "getcontentlength", "getcontenttype",
         "getlastmodified", "creationdate", "getetag", "supportedlock", "lockdiscovery")
QUOTA_PROPS = ("quota-available-bytes", "quota-used-bytes")  # RFC 4331: only when asked

SUPPORTED_LOCK = ("<D:lockentry><D:lockscope><D:exclusive/></D:lockscope>"
                  "<D:locktype><D:write/></D:locktype></D:lockentry>"
                  "<D:lockentry><D:lockscope><D:shared/></D:lockscope>"
                  "<D:locktype><D:write/></D:locktype></D:lockentry>")


def active_lock_xml(lock: DavLock) -> str:
    left = (lock.expires_at - utcnow()).total_seconds()
    timeout = f"Second-{max(0, int(left))}"
    return (f"<D:activelock><D:locktype><D:write/></D:locktype>"
            f"<D:lockscope><D:{lock.scope}/></D:lockscope><D:depth>{lock.depth}</D:depth>"
            f"{lock.owner_xml}<D:timeout>{timeout}</D:timeout>"
            f"<D:locktoken><D:href>{escape(lock.token)}</D:href></D:locktoken>"
            f"<D:lockroot><D:href>{escape(href_of(lock.path, False))}</D:href></D:lockroot>"
            f"</D:activelock>")


@dataclass
class Entry:
    """What PROPFIND describes: a node, or /dav/ itself (node None)."""

    path: str
    node: Node | None

    @property
    def container(self) -> bool:
        return self.node is None or self.node.is_container


class Properties:
    """The properties of entries for one PROPFIND (quota looked up once per request)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self._usage: dict[str, dict | None] = {}
        self._lock_scope: str | None = None
        self._locks: list[DavLock] = []

    def locks(self, path: str) -> list[DavLock]:
        """The locks protecting `path`; one query serves a folder and all its children."""
        scope = self._lock_scope
        if scope is None or not (path == scope or path.startswith(scope + "/")):
            self._lock_scope = path
            self._locks = services.live_locks(self.ctx, path, inside=True)
        return services.protecting(self._locks, path)

    def usage(self, owner: str) -> dict | None:
        if owner not in self._usage:
            try:
                self._usage[owner] = services.usage(self.ctx, owner)
            except (errors.PermissionDenied, errors.NotFound, errors.NotAuthenticated):
                self._usage[owner] = None
        return self._usage[owner]

    def names(self, entry: Entry) -> list[str]:
        node = entry.node
        names = ["resourcetype", "displayname", "supportedlock", "lockdiscovery"]
        if node is not None:
            names += ["getlastmodified", "creationdate", "getetag"]
            if node.kind == "data":
                names += ["getcontentlength", "getcontenttype"]
            if node.is_container and self.usage(node.owner_name) is not None:
                names += list(QUOTA_PROPS)
        return [_dav(n) for n in names]

    def value(self, entry: Entry, tag: str) -> str | None:
        """The XML content of a property, "" for an empty one, None when it does not exist."""
        ns, name = _split(tag)
        if ns != "DAV:":
            return None
        node = entry.node
        if name == "resourcetype":
            return "<D:collection/>" if entry.container else ""
        if name == "displayname":
            return escape(node.name if node is not None else "dav")
        if name == "supportedlock":
            return SUPPORTED_LOCK if node is not None else None
        if name == "lockdiscovery":
            if node is None:
                return None
            return "".join(active_lock_xml(lk) for lk in self.locks(entry.path))
        if node is None:
            return None
        if name == "getlastmodified":
            return downloads.http_date(node.updated_at)
        if name == "creationdate":
            return _iso_date(node.created_at)
        if name == "getetag":
            return escape(node.etag)
        if name == "getcontentlength" and node.kind == "data":
            return str(node.size)
        if name == "getcontenttype" and node.kind == "data":
            return escape(node.content_type or "application/octet-stream")
        if name in QUOTA_PROPS and node.is_container:
            usage = self.usage(node.owner_name)
            if usage is None:
                return None
            if name == "quota-used-bytes":
                return str(usage["used"])
            return str(max(0, usage["quota"] - usage["used"]))
        return None

    def response(self, entry: Entry, mode: str, wanted: list[str]) -> str:
        href = escape(href_of(entry.path, entry.container))
        out = [f"<D:response><D:href>{href}</D:href>"]
        if mode == "propname":
            props = "".join(_element(t, None) for t in self.names(entry))
            out.append(f"<D:propstat><D:prop>{props}</D:prop>{_status_line(200)}</D:propstat>")
        else:
            tags = [_dav(n) for n in LIVE] + wanted if mode == "allprop" else wanted
            found, missing = [], []
            for tag in dict.fromkeys(tags):
                value = self.value(entry, tag)
                if value is None:
                    if mode == "prop" or tag in wanted:
                        missing.append(_element(tag, None))
                else:
                    found.append(_element(tag, value))
            if found:
                out.append(f"<D:propstat><D:prop>{''.join(found)}</D:prop>"
                           f"{_status_line(200)}</D:propstat>")
            if missing:
                out.append(f"<D:propstat><D:prop>{''.join(missing)}</D:prop>"
                           f"{_status_line(404)}</D:propstat>")
        out.append("</D:response>")
        return "".join(out)


def _propfind_request(root: etree._Element | None) -> tuple[str, list[str]]:
    """(mode, property tags) of a PROPFIND body: allprop (with `include`), propname or prop."""
    if root is None:
        return "allprop", []
    if root.tag != _dav("propfind"):
        raise DavError(400, "A PROPFIND body is a DAV:propfind document.")
    for child in root:
        if child.tag == _dav("propname"):
            return "propname", []
        if child.tag == _dav("allprop"):
            include = root.find(_dav("include"))
            return "allprop", [e.tag for e in include] if include is not None else []
        if child.tag == _dav("prop"):
            return "prop", [e.tag for e in child if isinstance(e.tag, str)]
    raise DavError(400, "A PROPFIND body asks for allprop, propname or prop.")


def _depth(request: Request, allowed: tuple[str, ...], default: str) -> str:
    value = request.headers.get("depth", default).strip().lower()
    if value not in allowed:
        raise DavError(400, "Depth %(depth)s is not supported here.", depth=value)
    return value


# ---- routes: OPTIONS --------------------------------------------------------------------------


def _options() -> Response:
    return Response(status_code=200, headers={
        "DAV": "1, 2", "MS-Author-Via": "DAV", "Allow": ALLOW, "Accept-Ranges": "bytes",
        "Content-Length": "0"})


@api.api_route("", methods=["OPTIONS"], openapi_extra=PUBLIC, include_in_schema=False)
@api.api_route("/{path:davpath}", methods=["OPTIONS"], openapi_extra=PUBLIC,
               include_in_schema=False)
def options(request: Request):
    """What this server can do; public (it says nothing about anyone's space)."""
    node_path(request)
    return _options()


# ---- routes: PROPFIND -------------------------------------------------------------------------


@api.api_route("", methods=["PROPFIND"], openapi_extra=READ_OPS, include_in_schema=False)
@api.api_route("/{path:davpath}", methods=["PROPFIND"], openapi_extra=READ_OPS,
               include_in_schema=False)
async def propfind(request: Request, ctx: Ctx):
    path = node_path(request)
    _signed_in(ctx)
    depth = request.headers.get("depth", "infinity").strip().lower()
    if depth not in ("0", "1", "infinity"):
        raise DavError(400, "Depth is 0, 1 or infinity.")
    depth = "0" if depth == "0" else "1"  # infinity is answered one level deep (SabreDAV too)
    mode, wanted = _propfind_request(await xml_body(request))
    props = Properties(ctx)

    def first() -> tuple[Entry, list[Node]]:
        if not path:
            root = services.ensure_root(ctx)
            return Entry("", None), [root] if depth == "1" else []
        node = services.get_node(ctx, path)
        entry = Entry(node.path, node)
        if depth == "0" or not node.is_container:
            return entry, []
        return entry, services.list_children(ctx, node.path, limit=PAGE)

    entry, children = await run_in_threadpool(first)
    # computed before the first byte is sent, and off the event loop (it reads the database)
    head = await run_in_threadpool(props.response, entry, mode, wanted)

    def body() -> Iterator[bytes]:
        yield (f'<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'
               f"{head}").encode()
        page = children
        while page:
            yield "".join(props.response(Entry(n.path, n), mode, wanted)
                          for n in page).encode()
            if entry.node is None or len(page) < PAGE:
                break
            page = services.list_children(ctx, entry.path, limit=PAGE, after=page[-1].name)
        yield b"</D:multistatus>\n"

    return StreamingResponse(body(), status_code=207, media_type=XML_TYPE)


# ---- routes: GET / HEAD -----------------------------------------------------------------------


def _index(ctx: Context, node: Node) -> Response:
    """A folder opened in a browser: a plain list of the first page of its children."""
    children = services.list_children(ctx, node.path, limit=PAGE)
    rows = "".join(
        f'<li><a href="{html.escape(href_of(c.path, c.is_container))}">'
        f"{html.escape(c.name)}{'/' if c.is_container else ''}</a></li>" for c in children)
    more = "<p>…</p>" if len(children) == PAGE else ""
    title = html.escape(href_of(node.path, True))
    text = (f"<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1>"
            f"<ul>{rows}</ul>{more}")
    return Response(text, media_type="text/html; charset=utf-8",
                    headers={"ETag": node.etag,
                             "Last-Modified": downloads.http_date(node.updated_at)})


def _link_target(target: str) -> str | None:
    """Where a link node points, as an address a WebDAV client can follow."""
    if target.startswith(("http://", "https://")):
        return target
    if target.startswith(services.URI_PREFIX):
        return href_of(target[len(services.URI_PREFIX):], False)
    for marker in ("!vospace/", "~vospace/"):
        if target.startswith("vos://") and marker in target:
            return href_of(target.split(marker, 1)[1], False)
    return None


@api.api_route("", methods=["GET", "HEAD"], openapi_extra=READ_OPS, include_in_schema=False)
@api.api_route("/{path:davpath}", methods=["GET", "HEAD"], openapi_extra=READ_OPS,
               include_in_schema=False)
def get(request: Request, ctx: Ctx):
    path = node_path(request)
    _signed_in(ctx)
    if not path:
        root = services.ensure_root(ctx)
        return Response(status_code=302, headers={"Location": href_of(root.path, True)})
    node = services.get_node(ctx, path)
    if node.kind == "link":
        target = _link_target(node.link_target or "")
        if target is None:
            raise DavError(404, "%(path)s is a link to %(target)s, which cannot be followed "
                                "here.", path=path, target=node.link_target or "")
        return Response(status_code=302, headers={"Location": target})
    if node.is_container:
        return _index(ctx, node)

    def open_bytes(start: int, end: int | None) -> Iterator[bytes]:
        return services.download(ctx, path, start=start, end=end)[1]

    # Lenient ranges: a malformed or multiple Range gets the whole file, as before, which
    # desktop clients cope with better than a 416.
    return downloads.file_response(request, served_file(node), open_bytes,
                                   lenient_ranges=True)


# ---- routes: PUT ------------------------------------------------------------------------------


def _check_preconditions(request: Request, node: Node | None) -> None:
    if_match = request.headers.get("if-match")
    if if_match is not None:
        tags = {t.strip() for t in if_match.split(",")}
        if node is None or not ("*" in tags or node.etag in tags):
            raise DavError(412, "The file is not the version the If-Match header names.")
    if_none = request.headers.get("if-none-match")
    if if_none is not None and node is not None:
        tags = {t.strip() for t in if_none.split(",")}
        if "*" in tags or node.etag in tags:
            raise DavError(412, "The file exists already (If-None-Match).")


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise DavError(400, "Content-Length is not a number.")
    return int(value)


def _prepare_put(ctx: Context, request: Request, path: str) -> Node | None:
    if "/" not in path:
        raise DavError(405, "A user's root folder is not a file.")
    existing = _lookup(ctx, path)
    if existing is None:  # 409 without its folder, 403 in another's space unless shared
        _writable_folder(ctx, _parent(path))
    if existing is not None and existing.kind != "data":
        raise DavError(405, "%(path)s is a folder or a link, not a file.", path=path)
    _check_preconditions(request, existing)
    check_if(request, ctx, path, existing)
    check_locks(ctx, request, path, membership=existing is None)
    declared = _declared_length(request)
    if declared is not None and _owner(path) == ctx.subject.username:
        usage = services.usage(ctx)
        room = usage["quota"] - usage["used"] + (existing.size if existing else 0)
        if declared > room:  # refused before a byte is read
            raise QuotaExceeded("The upload does not fit in the space of %(owner)s.",
                                owner=_owner(path))
    return existing


@api.api_route("/{path:davpath}", methods=["PUT"], openapi_extra=WRITE_OPS,
               include_in_schema=False)
async def put(request: Request, ctx: Ctx):
    try:
        path = node_path(request)
        _signed_in(ctx)
        if not path:
            raise DavError(405, "/dav/ itself is not a file.")
        if request.headers.get("content-range"):
            raise DavError(400, "Partial uploads (Content-Range) are not supported: send the "
                                "whole file.")
        existing = await run_in_threadpool(_prepare_put, ctx, request, path)
    except errors.DomainError:
        if "100-continue" not in request.headers.get("expect", "").lower():
            await drain(request)  # a client that waits for 100 Continue sent nothing yet
        raise
    content_type = request.headers.get("content-type", "").split(";")[0].strip() or None
    if content_type in ("application/octet-stream", "application/x-www-form-urlencoded"):
        content_type = None  # let the service name it from the file name

    def upload(chunks: Iterator[bytes]) -> Node:
        try:
            return services.upload(ctx, path, chunks, content_type=content_type)
        except errors.NotFound as exc:
            raise _write_refused(ctx, path, exc) from None
        except DuplicateNode:
            raise DavError(405, "%(path)s is a folder or a link, not a file.",
                           path=path) from None

    node = await stream_body(request, upload)
    return Response(status_code=204 if existing is not None else 201,
                    headers={"ETag": node.etag,
                             "Last-Modified": downloads.http_date(node.updated_at)})


# ---- routes: MKCOL, DELETE --------------------------------------------------------------------


def _has_body(request: Request) -> bool:
    return (request.headers.get("content-length", "0").strip() not in ("", "0")
            or "transfer-encoding" in request.headers)


@api.api_route("/{path:davpath}", methods=["MKCOL"], openapi_extra=WRITE_OPS,
               include_in_schema=False)
def mkcol(request: Request, ctx: Ctx):
    path = node_path(request)
    _signed_in(ctx)
    if _has_body(request):
        raise DavError(415, "MKCOL takes no body.")
    if "/" not in path:
        raise DavError(405, "%(path)s exists already.", path=href_of(path, True))
    if _lookup(ctx, path) is not None:
        raise DavError(405, "%(path)s exists already.", path=href_of(path, True))
    _writable_folder(ctx, _parent(path))
    check_if(request, ctx, path, None)
    check_locks(ctx, request, path, membership=True)
    try:
        services.create_container(ctx, path)
    except errors.NotFound as exc:
        raise _write_refused(ctx, path, exc) from None
    except DuplicateNode:
        raise DavError(405, "%(path)s exists already.", path=href_of(path, True)) from None
    return Response(status_code=201, headers={"Location": href_of(path, True)})


@api.api_route("/{path:davpath}", methods=["DELETE"], openapi_extra=WRITE_OPS,
               include_in_schema=False)
def delete(request: Request, ctx: Ctx):
    path = node_path(request)
    _signed_in(ctx)
    if "/" not in path:
        raise DavError(403, "A user's root folder cannot be deleted.")
    if request.headers.get("depth", "infinity").strip().lower() != "infinity":
        raise DavError(400, "DELETE removes a folder with everything in it (Depth infinity).")
    node = services.get_node(ctx, path)
    if request.headers.get("if-match"):
        _check_preconditions(request, node)
    check_if(request, ctx, path, node)
    check_locks(ctx, request, path, tree=True, membership=True)
    services.delete(ctx, path)  # the locks on and inside it go with it
    return Response(status_code=204)


# ---- routes: MOVE, COPY -----------------------------------------------------------------------


def _transfer(request: Request, ctx: Context, *, move: bool) -> Response:
    path = node_path(request)
    _signed_in(ctx)
    if "/" not in path:
        raise DavError(403, "A user's root folder cannot be moved or copied.")
    dest = destination(request)
    overwrite = request.headers.get("overwrite", "T").strip().upper()
    if overwrite not in ("T", "F"):
        raise DavError(400, "Overwrite is T or F.")
    depth = _depth(request, ("infinity",) if move else ("0", "infinity"), "infinity")
    node = services.get_node(ctx, path)  # 404 when the source is not there for the caller
    if dest == path:
        raise DavError(403, "The source and the destination are the same.")
    if dest.startswith(path + "/"):
        raise DavError(403, "A folder cannot be moved or copied into itself.")
    _writable_folder(ctx, _parent(dest))  # 403 for another's space unless shared
    if move and _owner(dest) != node.owner_name:
        raise DavError(403, "Files move only within one user's space; copy them instead.")
    check_if(request, ctx, path, node)
    if move:
        check_locks(ctx, request, path, tree=True, membership=True)
    existing = _lookup(ctx, dest)
    if existing is not None:
        if overwrite == "F":
            raise DavError(412, "%(dest)s exists and Overwrite is F.",
                           dest=href_of(dest, existing.is_container))
        check_locks(ctx, request, dest, tree=True)
        services.delete(ctx, dest)
    else:
        check_locks(ctx, request, dest, membership=True)
    try:
        if move:
            services.move(ctx, path, dest)  # locks name paths: those on the source are dropped
        elif depth == "0" and node.is_container:
            services.create_container(ctx, dest)
        else:
            services.copy(ctx, path, dest)
    except errors.NotFound as exc:
        raise _write_refused(ctx, dest, exc) from None
    except DuplicateNode:
        raise DavError(412, "%(dest)s exists already.", dest=href_of(dest, False)) from None
    status = 204 if existing is not None else 201
    headers = {} if existing is not None else {"Location": href_of(dest, node.is_container)}
    return Response(status_code=status, headers=headers)


@api.api_route("/{path:davpath}", methods=["MOVE"], openapi_extra=WRITE_OPS,
               include_in_schema=False)
def move(request: Request, ctx: Ctx):
    return _transfer(request, ctx, move=True)


@api.api_route("/{path:davpath}", methods=["COPY"], openapi_extra=WRITE_OPS,
               include_in_schema=False)
def copy(request: Request, ctx: Ctx):
    return _transfer(request, ctx, move=False)


# ---- routes: PROPPATCH ------------------------------------------------------------------------


@api.api_route("/{path:davpath}", methods=["PROPPATCH"], openapi_extra=WRITE_OPS,
               include_in_schema=False)
async def proppatch(request: Request, ctx: Ctx):
    """Properties are not set over WebDAV: each one named is refused (403) in a 207, which
    RFC 4918 allows and Windows Explorer accepts. VOSpace sets node properties."""
    path = node_path(request)
    _signed_in(ctx)
    root = await xml_body(request)
    if root is None or root.tag != _dav("propertyupdate"):
        raise DavError(400, "A PROPPATCH body is a DAV:propertyupdate document.")

    def check() -> Node:
        node = services.get_node(ctx, path) if path else None
        if node is None or not ctx.can(WRITE, node):
            raise DavError(403, "You may not change %(path)s.", path=href_of(path, False))
        check_if(request, ctx, path, node)
        check_locks(ctx, request, path)
        return node

    node = await run_in_threadpool(check)
    tags = [prop.tag for action in root if action.tag in (_dav("set"), _dav("remove"))
            for holder in action if holder.tag == _dav("prop")
            for prop in holder if isinstance(prop.tag, str)]
    props = "".join(_element(t, None) for t in dict.fromkeys(tags))
    body = (f'<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'
            f"<D:response><D:href>{escape(href_of(node.path, node.is_container))}</D:href>"
            f"<D:propstat><D:prop>{props}</D:prop>{_status_line(403)}"
            f"<D:responsedescription>Properties are not set over WebDAV.</D:responsedescription>"
            f"</D:propstat></D:response></D:multistatus>\n")
    return Response(body, status_code=207, media_type=XML_TYPE)


# ---- routes: LOCK, UNLOCK ---------------------------------------------------------------------


def _lock_target(ctx: Context, request: Request, path: str) -> tuple[Node, bool]:
    """The node to lock (made as an empty file when the name is unmapped) and whether it was
    made; 403 outside what the caller may write."""
    if "/" not in path:
        node = services.get_node(ctx, path)
    else:
        node = _lookup(ctx, path)
        if node is None:
            _writable_folder(ctx, _parent(path))
            check_locks(ctx, request, path, membership=True)
            try:
                return services.upload(ctx, path, iter(())), True
            except errors.NotFound as exc:
                raise _write_refused(ctx, path, exc) from None
    if not ctx.can(WRITE, node):
        raise DavError(403, "You may not lock %(path)s.", path=href_of(path, False))
    return node, False


def _lock_response(lock: DavLock, status: int) -> Response:
    body = (f'<?xml version="1.0" encoding="utf-8"?>\n<D:prop xmlns:D="DAV:">'
            f"<D:lockdiscovery>{active_lock_xml(lock)}</D:lockdiscovery></D:prop>\n")
    return Response(body, status_code=status, media_type=XML_TYPE,
                    headers={"Lock-Token": f"<{lock.token}>"})


@api.api_route("/{path:davpath}", methods=["LOCK"], openapi_extra=WRITE_OPS,
               include_in_schema=False)
async def lock(request: Request, ctx: Ctx):
    path = node_path(request)
    _signed_in(ctx)
    if not path:
        raise DavError(403, "/dav/ itself cannot be locked.")
    root = await xml_body(request)
    depth = _depth(request, ("0", "infinity"), "infinity")
    timeout = _timeout(request)

    if root is None:  # a refresh: the lock is named in the If header
        def refresh() -> DavLock:
            check_if(request, ctx, path, services.get_node(ctx, path))
            try:
                return services.refresh_lock(ctx, path, submitted_tokens(request), timeout)
            except LockNotFound:
                raise DavError(412, "No lock of yours on %(path)s has the token sent.",
                               condition="lock-token-matches-request-uri",
                               path=href_of(path, False)) from None

        return _lock_response(await run_in_threadpool(refresh), 200)

    if root.tag != _dav("lockinfo"):
        raise DavError(400, "A LOCK body is a DAV:lockinfo document.")
    scope_el = root.find(_dav("lockscope"))
    scope = "shared" if scope_el is not None and scope_el.find(_dav("shared")) is not None \
        else "exclusive"
    type_el = root.find(_dav("locktype"))
    if type_el is not None and type_el.find(_dav("write")) is None:
        raise DavError(400, "Only write locks exist.")
    owner_el = root.find(_dav("owner"))
    owner_xml = ""
    if owner_el is not None:
        # echoed back as the client sent it (lxml keeps the namespaces it needs)
        owner_xml = etree.tostring(owner_el, encoding="unicode", with_tail=False)
        if len(owner_xml) > 4096:
            raise DavError(400, "The lock owner is too long.")

    def acquire() -> tuple[DavLock, bool]:
        node, made = _lock_target(ctx, request, path)
        if not made:
            check_if(request, ctx, path, node)
        try:
            lk = services.lock(ctx, node.path, scope=scope, depth=depth, owner_xml=owner_xml,
                               timeout=timeout)
        except LockConflict as exc:
            raise DavError(423, "%(path)s is locked already.", condition="no-conflicting-lock",
                           path=href_of(exc.params["path"], False)) from None
        return lk, made

    lk, made = await run_in_threadpool(acquire)
    return _lock_response(lk, 201 if made else 200)


@api.api_route("/{path:davpath}", methods=["UNLOCK"], openapi_extra=WRITE_OPS,
               include_in_schema=False)
def unlock(request: Request, ctx: Ctx):
    path = node_path(request)
    _signed_in(ctx)
    token = request.headers.get("lock-token", "").strip().strip("<>").strip()
    if not token:
        raise DavError(400, "UNLOCK names its lock in a Lock-Token header.")
    node = services.get_node(ctx, path) if path else None
    if node is None:
        raise DavError(409, "/dav/ itself holds no locks.")
    try:
        services.unlock(ctx, node.path, token)
    except LockNotFound:
        raise DavError(409, "No lock with this token covers %(path)s.",
                       condition="lock-token-matches-request-uri",
                       path=href_of(path, False)) from None
    except errors.PermissionDenied:
        raise DavError(403, "This lock belongs to someone else.") from None
    return Response(status_code=204)
