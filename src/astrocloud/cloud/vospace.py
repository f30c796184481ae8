"""MyVOSpace as an IVOA VOSpace 2.1 service under /vospace (routes; documents in `vospace_xml`).

    /vospace/nodes/<user>/<path>     GET (detail=min|max|properties, limit, uri), PUT, POST, DELETE
    /vospace/synctrans               2.1 transfer negotiation: URL parameters or a transfer document
    /vospace/transfers[/<id>/...]    UWS 1.1 jobs: pushToVoSpace, pullFromVoSpace, move and copy
    /vospace/data/<user>/<path>      the bytes: GET/HEAD with Range, PUT (streamed, quota-bound)
    /vospace/protocols, /views, /properties, /capabilities, /availability

Node URIs are `vos://<authority>!vospace/<path>` (`~` accepted for `!`). The authority is the
host of `settings.base_url`; a loopback or bare-IP deployment uses `astrocloud.local`.

Callers authenticate with a personal API token (Bearer, or the HTTP Basic password). Data URLs
handed out by a transfer negotiation carry a short-lived HMAC signature (method, path, user,
expiry), so tools that do not resend credentials to them still work.

Errors are VOSpace faults, `text/plain` "<Fault> <detail>": NodeNotFound/ContainerNotFound 404,
DuplicateNode/NodeBusy 409, PermissionDenied 403 (401 with a challenge when no credentials came),
InvalidURI/InvalidArgument/TypeNotSupported/LinkFound/ViewNotSupported/ProtocolNotSupported 400,
QuotaExceeded 413 (the spec names no quota fault; CADC's services answer 413 QuotaExceeded),
InternalFault 500.

Transfers run synchronously when asked to run (PHASE=RUN, or any POST to /synctrans); every
UWS job is a row of the platform's job table (task `cloud.vos.transfer`), so users also follow
it with their other jobs. A pushToVoSpace job stays EXECUTING until the bytes arrive through
its endpoint. Each job has a UWS destruction time, after which the hourly
`cloud.vos.expire_transfers` job removes it; a job never run expires sooner (`cloud.tasks`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import ipaddress
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from astrocloud.cloud import services
from astrocloud.cloud import vospace_xml as vx
from astrocloud.cloud.models import Node, NodeShare
from astrocloud.cloud.schemas import served_file
from astrocloud.cloud.services import CloudOps, DuplicateNode
from astrocloud.cloud.tasks import TRANSFER_TASK as TASK
from astrocloud.cloud.tasks import destruction_of
from astrocloud.core import errors
from astrocloud.core.db import utcnow
from astrocloud.core.identity.models import Group, User
from astrocloud.core.jobs import services as jobs
from astrocloud.core.jobs.models import Job
from astrocloud.core.jobs.services import JobOps
from astrocloud.core.security.engine import load_subject
from astrocloud.core.service import Context, operation
from astrocloud.core.storage.backends import sign, verify_signature
from astrocloud.core.web import downloads
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.errors import ERROR_RENDERERS
from astrocloud.core.web.routing import PUBLIC, uses
from astrocloud.core.web.uploads import UploadAborted, stream_body

api = APIRouter(prefix="/vospace", tags=["vospace"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]

XML = "text/xml"
MAX_PAGE = 10_000  # children per node document when the client sets no smaller limit
READ, WRITE, SHARE, QUOTA = (CloudOps.VOS_READ, CloudOps.VOS_WRITE, CloudOps.VOS_SHARE,
                             CloudOps.VOS_QUOTA)


# ---- faults -----------------------------------------------------------------------------------


class VOSpaceFault(errors.DomainError):
    """A fault named by VOSpace itself (raised by this module, rendered as such)."""

    code = "vospace-fault"

    def __init__(self, fault: str, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
        self.title = fault
        self.extra = {"fault": fault}


_BY_CODE = {
    "not-found": ("NodeNotFound", 404), "duplicate-node": ("DuplicateNode", 409),
    "node-busy": ("NodeBusy", 409), "conflict": ("NodeBusy", 409),
    "permission-denied": ("PermissionDenied", 403), "csrf-failed": ("PermissionDenied", 403),
    "not-authenticated": ("PermissionDenied", 401), "quota-exceeded": ("QuotaExceeded", 413),
    "payload-too-large": ("RequestEntityTooLarge", 413),
    "upload-aborted": ("TransferFailed", 400),
    "request-too-large": ("RequestEntityTooLarge", 413),
    "method-not-allowed": ("OperationNotSupported", 405),
    "internal-error": ("InternalFault", 500),
}
URI_FIELDS = {"path", "src", "dest", "uri", "target"}


def fault_of(code: str, status: int, body: dict) -> tuple[str, int]:
    """(VOSpace fault, HTTP status) for a problem document of the platform."""
    if body.get("fault"):
        return body["fault"], status
    if code == "validation-failed":
        fields = {e.get("field", "") for e in body.get("errors") or []}
        return ("InvalidURI" if fields & URI_FIELDS else "InvalidArgument"), 400
    if code in _BY_CODE:
        return _BY_CODE[code]
    return ("InternalFault", status) if status >= 500 else ("InvalidArgument", 400)


def render_fault(request: Request, status: int, body: dict, headers: dict | None) -> Response:
    code = str(body.get("type", "")).rsplit("/", 1)[-1]
    if code == "not-found" and request.scope.get("route") is None:
        fault, status = "NotFound", 404  # no such endpoint: not a node
    else:
        fault, status = fault_of(code, status, body)
    detail = " ".join(str(body.get("detail") or "").split())
    return Response(f"{fault} {detail}".strip() + "\n", status_code=status,
                    media_type="text/plain; charset=utf-8", headers=headers)


ERROR_RENDERERS.append(("/vospace/", render_fault))


def _fault_text(exc: errors.DomainError) -> tuple[str, str]:
    body = {"fault": exc.extra.get("fault")} if isinstance(exc, VOSpaceFault) else \
        dict(exc.extra)
    fault, _ = fault_of(exc.code, exc.status, body)
    return fault, " ".join(str(exc).split())


# ---- names and addresses ----------------------------------------------------------------------


def authority(settings) -> str:
    """The naming authority of node URIs: the public host name of the platform."""
    host = (urlsplit(settings.base_url).hostname or "").lower()
    try:
        ipaddress.ip_address(host)
        host = ""
    except ValueError:
        pass
    return host if host and host != "localhost" else "astrocloud.local"


def service_url(request: Request) -> str:
    """This service's base URL as the client reached it (scheme, host and port)."""
    return str(request.base_url).rstrip("/") + "/vospace"


def _uri(ctx: Context, path: str) -> str:
    return vx.node_uri(authority(ctx.settings), path)


def _doc_fault(exc: vx.DocumentError, status: int = 400) -> VOSpaceFault:
    return VOSpaceFault(exc.fault, str(exc), status)


def _path(request: Request, path: str, prefix: str) -> str:
    """The node path of a request, refusing what could name something else: encoded slashes,
    traversal, absolute paths, control characters."""
    raw = request.scope.get("raw_path") or b""
    tail = raw.split(prefix.encode(), 1)[-1].lower()
    if b"%2f" in tail or b"%5c" in tail or b"%00" in tail:
        raise VOSpaceFault("InvalidURI", f"{path!r}: encoded slashes, backslashes or NUL "
                                         "are not allowed in a node path")
    try:
        return vx.check_node_path(path)
    except vx.DocumentError as exc:
        raise _doc_fault(exc) from None


def _target_path(ctx: Context, uri: str) -> str:
    try:
        return vx.check_node_path(vx.path_of(uri, authority(ctx.settings)))
    except vx.DocumentError as exc:
        raise _doc_fault(exc) from None


def xml(content: bytes, status: int = 200, headers: dict | None = None) -> Response:
    return Response(content, status_code=status, media_type=XML, headers=headers)


def _params(request: Request, body: bytes = b"") -> dict[str, str]:
    """Query and form parameters with upper-case names (UWS and VOSpace parameters are
    case-insensitive)."""
    out = {k.upper(): v for k, v in request.query_params.multi_items()}
    ctype = request.headers.get("content-type", "")
    if body and ctype.startswith("application/x-www-form-urlencoded"):
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            out.setdefault(key.upper(), value)
    return out


# ---- node documents ---------------------------------------------------------------------------


def _shares(ctx: Context, nodes: list[Node]) -> dict[int, tuple[list[str], list[str]]]:
    """Groups each node is shared with (read, read-write), in one query per 500 nodes."""
    out: dict[int, tuple[list[str], list[str]]] = {n.id: ([], []) for n in nodes}
    ids = list(out)
    for i in range(0, len(ids), 500):
        rows = ctx.db.execute(
            sa.select(NodeShare.node_id, Group.name, NodeShare.write)
            .join(Group, Group.id == NodeShare.group_id)
            .where(NodeShare.node_id.in_(ids[i:i + 500])).order_by(Group.name))
        for node_id, name, write in rows:
            out[node_id][1 if write else 0].append(name)
    return out


def _properties(ctx: Context, node: Node, shares, usage: dict | None
                ) -> list[tuple[str, str, bool]]:
    props: list[tuple[str, str, bool]] = []
    if node.kind == "data":
        props.append((vx.P_LENGTH, str(node.size or 0), True))
        props.append((vx.P_TYPE, node.content_type or services.guess_type(node.path), True))
    elif usage is not None:
        props.append((vx.P_LENGTH, str(usage["used"]), True))
    props += [(vx.P_DATE, vx.iso(node.updated_at), True),
              (vx.P_MTIME, vx.iso(node.updated_at), True),
              (vx.P_CTIME, vx.iso(node.updated_at), True),
              (vx.P_BTIME, vx.iso(node.created_at), True),
              (vx.P_CREATOR, node.owner_name, True)]
    if usage is not None:
        props.append((vx.P_QUOTA, str(usage["quota"]), True))
        props.append((vx.P_AVAILABLE, str(max(0, usage["quota"] - usage["used"])), True))
    public = "true" if node.public_read else "false"
    props += [(vx.P_PUBLICREAD, public, False), (vx.CADC_ISPUBLIC, public, False)]
    readers, writers = shares.get(node.id, ([], []))
    if readers:
        props.append((vx.P_GROUPREAD, ",".join(readers), False))
    if writers:
        props.append((vx.P_GROUPWRITE, ",".join(writers), False))
    try:
        custom = json.loads(node.properties or "{}")
    except ValueError:
        custom = {}
    props += [(k, str(v), False) for k, v in sorted(custom.items())]
    return props


def _view(ctx: Context, node: Node, shares, usage: dict | None = None,
          children: list[Node] | None = None) -> vx.NodeView:
    view = vx.NodeView(uri=_uri(ctx, node.path), kind=node.kind,
                       properties=_properties(ctx, node, shares, usage),
                       target=node.link_target)
    if children is not None:
        view.children = [_view(ctx, c, shares) for c in children]
    return view


def _root_usage(ctx: Context, node: Node) -> dict | None:
    if node.parent_id is not None:
        return None
    try:
        return services.usage(ctx, node.owner_name)
    except errors.DomainError:  # someone else's published root: its quota is not ours to see
        return None


def _limit(value: str | None) -> int:
    if value is None or value == "":
        return MAX_PAGE
    try:
        limit = int(value)
    except ValueError:
        raise VOSpaceFault("InvalidArgument", f"limit={value!r} is not a number") from None
    if limit < 0:
        raise VOSpaceFault("InvalidArgument", "limit must be 0 or more")
    return min(limit, MAX_PAGE)


def _page(ctx: Context, node: Node, limit: int, start_uri: str | None) -> list[Node]:
    """Children of a container in name order; a page starts *at* the child named by `uri`
    (VOSpace 2.1 §5.4.1), so the last child of one page is the first of the next."""
    if limit == 0:
        return []
    if not start_uri:
        return services.list_children(ctx, node.path, limit=limit)
    child_path = _target_path(ctx, start_uri)
    parent, _, name = child_path.rpartition("/")
    if parent != node.path or not name:
        raise VOSpaceFault("InvalidURI", f"{start_uri} is not a child of {_uri(ctx, node.path)}")
    first: list[Node] = []
    with contextlib.suppress(errors.NotFound):  # if it is gone, continue after its name
        first = [services.get_node(ctx, child_path)]
    rest = services.list_children(ctx, node.path, limit=limit - len(first), after=name)
    return first + rest


def _top_node(ctx: Context, detail: str) -> Response:
    root = services.ensure_root(ctx)
    view = vx.NodeView(uri=vx.node_uri(authority(ctx.settings), ""), kind="container",
                       properties=[], children=[_view(ctx, root, _shares(ctx, [root]))])
    return xml(vx.render_node(view, detail))


@api.get("/nodes", openapi_extra=uses(READ), summary="The top node: your own space",
         include_in_schema=False)
@api.get("/nodes/", openapi_extra=uses(READ), include_in_schema=False)
def get_top(ctx: Ctx, detail: str = "max"):
    return _top_node(ctx, _detail(detail))


def _detail(detail: str | None) -> str:
    detail = (detail or "max").lower()
    if detail not in ("min", "max", "properties"):
        raise VOSpaceFault("InvalidArgument", f"detail={detail!r}: use min, max or properties")
    return detail


@api.get("/nodes/{path:path}", openapi_extra=uses(READ, QUOTA), summary="A node (getNode)")
def get_node(request: Request, path: str, ctx: Ctx, detail: str = "max",
             limit: str | None = None, uri: str | None = None):
    path = _path(request, path, "/vospace/nodes/")
    detail = _detail(detail)
    if not path:
        return _top_node(ctx, detail)
    with _faults_for_missing(ctx, path):
        node = services.get_node(ctx, path)
    children = _page(ctx, node, _limit(limit), uri) if node.is_container else None
    usage = _root_usage(ctx, node) if detail != "min" else None
    view = _view(ctx, node, _shares(ctx, [node, *(children or [])]), usage, children)
    return xml(vx.render_node(view, detail))


def _split_properties(ctx: Context, props: dict[str, str | None], *, creating: bool,
                      node: Node | None = None) -> dict[str, Any]:
    """Turn a node document's properties into `services.set_properties` arguments; read-only
    ones are a PermissionDenied fault (VOSpace 2.1 §5.3.1)."""
    out: dict[str, Any] = {}
    custom: dict[str, str | None] = {}
    for key, value in props.items():
        if key in vx.PUBLIC_ALIASES:
            text = (value or "false").strip().lower()
            if text not in ("true", "false"):
                raise VOSpaceFault("InvalidArgument", f"{key}={value!r}: true or false")
            out["public_read"] = text == "true"
        elif key in (vx.P_GROUPREAD, vx.P_GROUPWRITE):
            names = []
            for item in (value or "").replace(",", " ").split():
                name = item.rsplit("?", 1)[-1].rsplit("#", 1)[-1]  # ivo://…/gms?name too
                if name and name not in names:
                    names.append(name)
            out["group_read" if key == vx.P_GROUPREAD else "group_write"] = names
        elif key == vx.P_TYPE:
            # the content type follows the bytes; clients (vos) send a guess on create
            if not creating and node is not None and value not in (None, node.content_type):
                raise VOSpaceFault("PermissionDenied", f"{key} is set by the service", 403)
        elif key in vx.READ_ONLY:
            raise VOSpaceFault("PermissionDenied", f"{key} is read-only", 403)
        else:
            custom[key] = value
    if custom:
        out["properties"] = custom
    return out


def _expect_uri(ctx: Context, doc: vx.NodeDocument, path: str) -> None:
    if _target_path(ctx, doc.uri) != path:
        raise VOSpaceFault("InvalidURI", f"the document's uri {doc.uri} is not the node "
                                         f"addressed, {_uri(ctx, path)}")


def _create(ctx: Context, path: str, doc: vx.NodeDocument) -> Node:
    settable = _split_properties(ctx, doc.properties, creating=True)
    try:
        if doc.kind == "container":
            node = services.create_container(ctx, path)
        elif doc.kind == "link":
            if not doc.target:
                raise VOSpaceFault("InvalidArgument", "a LinkNode needs a target")
            node = services.create_link(ctx, path, doc.target)
        else:
            try:
                services.get_node(ctx, path)
            except errors.NotFound:
                node = services.upload(ctx, path, iter(()))
            else:
                raise DuplicateNode("%(path)s exists already.", path=path)
    except errors.NotFound as exc:  # creating: only the container can be missing
        raise VOSpaceFault("ContainerNotFound", str(exc), 404) from None
    except errors.ValidationFailed:
        _explain_parent(ctx, path)
        raise
    if settable:
        try:
            node = services.set_properties(ctx, path, **settable)
        except errors.DomainError:
            services.delete(ctx, path)  # createNode is all or nothing
            raise
    return node


@contextlib.contextmanager
def _faults_for_missing(ctx: Context, path: str):
    """A missing node under a missing container, a link or a file is ContainerNotFound or
    LinkFound rather than NodeNotFound (VOSpace 2.1 §5.3.4, §5.4.2)."""
    try:
        yield
    except errors.NotFound:
        _explain_parent(ctx, path)
        raise


def _explain_parent(ctx: Context, path: str) -> None:
    """A parent that is a link or a file gets the fault VOSpace names for it."""
    parent = services.parent_of(path)
    if parent is None:
        return
    try:
        node = services.get_node(ctx, parent)
    except errors.NotFound:
        raise VOSpaceFault("ContainerNotFound", f"{_uri(ctx, parent)} does not exist, or "
                                                "you may not see it", 404) from None
    if node.kind == "link":
        raise VOSpaceFault("LinkFound", f"{_uri(ctx, parent)} is a LinkNode to "
                                        f"{node.link_target}")
    if node.kind == "data":
        raise VOSpaceFault("ContainerNotFound", f"{_uri(ctx, parent)} is not a container", 404)


def _node_response(ctx: Context, node: Node, status: int = 200) -> Response:
    view = _view(ctx, node, _shares(ctx, [node]), _root_usage(ctx, node),
                 [] if node.is_container else None)
    return xml(vx.render_node(view, "max"), status)


@api.put("/nodes/{path:path}", openapi_extra=uses(WRITE, SHARE, READ),
         summary="Create a node (createNode)")
async def put_node(request: Request, path: str, ctx: Ctx):
    path = _path(request, path, "/vospace/nodes/")
    body = await request.body()

    def run():
        try:
            doc = vx.parse_node(body)
        except vx.DocumentError as exc:
            raise _doc_fault(exc) from None
        _expect_uri(ctx, doc, path)
        return _node_response(ctx, _create(ctx, path, doc), 201)

    return await run_in_threadpool(run)


@api.post("/nodes/{path:path}", openapi_extra=uses(SHARE, READ, QUOTA),
          summary="Set a node's properties (setNode)")
async def post_node(request: Request, path: str, ctx: Ctx):
    path = _path(request, path, "/vospace/nodes/")
    body = await request.body()

    def run():
        try:
            doc = vx.parse_node(body)
        except vx.DocumentError as exc:
            raise _doc_fault(exc) from None
        _expect_uri(ctx, doc, path)
        with _faults_for_missing(ctx, path):
            node = services.get_node(ctx, path)
        settable = _split_properties(ctx, doc.properties, creating=False, node=node)
        if settable:
            node = services.set_properties(ctx, path, **settable)
        return _node_response(ctx, node)

    return await run_in_threadpool(run)


@api.delete("/nodes/{path:path}", status_code=204, openapi_extra=uses(WRITE),
            summary="Delete a node and everything in it (deleteNode)")
def delete_node(request: Request, path: str, ctx: Ctx):
    path = _path(request, path, "/vospace/nodes/")
    with _faults_for_missing(ctx, path):
        services.delete(ctx, path)
    return Response(status_code=204)


# ---- service metadata -------------------------------------------------------------------------


def _provided_protocols(request: Request) -> list[str]:
    return [vx.HTTPSGET, vx.HTTPSPUT] if request.url.scheme == "https" else \
        [vx.HTTPGET, vx.HTTPPUT]


@api.get("/protocols", openapi_extra=PUBLIC, summary="Transfer protocols (getProtocols)")
def get_protocols(request: Request):
    return xml(vx.render_protocols([], _provided_protocols(request)))


@api.get("/views", openapi_extra=PUBLIC, summary="Views (getViews)")
def get_views():
    return xml(vx.render_views([vx.VIEW_ANY], [vx.VIEW_DEFAULT]))


SETTABLE = [vx.P_PUBLICREAD, vx.CADC_ISPUBLIC, vx.P_GROUPREAD, vx.P_GROUPWRITE,
            *vx.DUBLIN_CORE]
PROVIDED = [vx.P_LENGTH, vx.P_TYPE, vx.P_DATE, vx.P_MTIME, vx.P_CTIME, vx.P_BTIME, vx.P_CREATOR,
            vx.P_QUOTA, vx.P_AVAILABLE, vx.P_PUBLICREAD, vx.CADC_ISPUBLIC, vx.P_GROUPREAD,
            vx.P_GROUPWRITE]


@api.get("/properties", openapi_extra=PUBLIC, summary="Properties (getProperties)")
def get_properties():
    # `contains` lists what every node carries; other properties are stored as sent
    return xml(vx.render_properties(SETTABLE, PROVIDED, PROVIDED))


SECURED = (vx.SM_TOKEN, vx.SM_BASIC)
CAPABILITIES = [  # (standardID, path, takes credentials)
    ("ivo://ivoa.net/std/VOSI#capabilities", "/capabilities", False),
    ("ivo://ivoa.net/std/VOSI#availability", "/availability", False),
    ("ivo://ivoa.net/std/VOSpace/v2.0#nodes", "/nodes", True),
    ("ivo://ivoa.net/std/VOSpace/v2.0#transfers", "/transfers", True),
    ("ivo://ivoa.net/std/VOSpace#sync-2.1", "/synctrans", True),
    ("ivo://ivoa.net/std/VOSpace/v2.0#sync", "/synctrans", True),
    ("ivo://ivoa.net/std/VOSpace#files-proto", "/data", True),  # CADC's direct-bytes prototype
    ("ivo://ivoa.net/std/VOSpace/v2.0#protocols", "/protocols", False),
    ("ivo://ivoa.net/std/VOSpace/v2.0#views", "/views", False),
    ("ivo://ivoa.net/std/VOSpace/v2.0#properties", "/properties", False),
]


@api.get("/capabilities", openapi_extra=PUBLIC, summary="VOSI capabilities")
def get_capabilities(request: Request):
    base = service_url(request)
    caps = [vx.Capability(sid, base + path, SECURED if secured else (),
                          "full" if path in ("/capabilities", "/availability") else "base")
            for sid, path, secured in CAPABILITIES]
    return xml(vx.render_capabilities(caps))


@api.get("/availability", openapi_extra=PUBLIC, summary="VOSI availability")
def get_availability(request: Request):
    try:
        with request.app.state.database.session(write=False) as db:
            db.execute(sa.text("SELECT 1"))
        available, note = True, "MyVOSpace is accepting requests."
    except Exception:  # noqa: BLE001 (any failure means "not available")
        available, note = False, "The node database cannot be reached."
    return xml(vx.render_availability(available, note))


# ---- signed data URLs -------------------------------------------------------------------------


def _signing_key(user_id: int, path: str, job: str) -> str:
    return f"vospace|{user_id}|{path}|{job}"


def data_url(ctx: Context, request: Request, path: str, method: str, *, signed: bool,
             job: int | None = None) -> str:
    """Where the bytes of `path` go or come from; `signed` URLs work without credentials for
    `storage_signing_ttl_seconds`."""
    url = f"{service_url(request)}/data/{quote(path)}"
    query: dict[str, Any] = {}
    if job is not None:
        query["job"] = job
    if signed and ctx.subject.id:
        expires = int(time.time()) + ctx.settings.storage_signing_ttl_seconds
        key = _signing_key(ctx.subject.id, path, str(job or ""))
        query.update(uid=ctx.subject.id, expires=expires,
                     signature=sign(ctx.settings.effective_secret_key(), method, key, expires))
    return url + ("?" + urlencode(query) if query else "")


def _signed_subject(ctx: Context, request: Request, path: str, method: str) -> None:
    """Act as the user who signed the URL, if it is signed (and refuse a bad signature)."""
    q = request.query_params
    if "signature" not in q:
        return
    try:
        user_id, expires = int(q.get("uid", "")), int(q.get("expires", ""))
    except ValueError:
        raise VOSpaceFault("PermissionDenied", "the signed URL is malformed", 403) from None
    key = _signing_key(user_id, path, q.get("job", ""))
    if not verify_signature(ctx.settings.effective_secret_key(), method, key, expires,
                            q["signature"]):
        raise VOSpaceFault("PermissionDenied", "the signed URL has expired or is not valid "
                                               "for this request", 403)
    user = ctx.db.get(User, user_id)
    if user is None or not user.is_active:
        raise VOSpaceFault("PermissionDenied", "the signed URL's user is not active", 403)
    ctx.subject = load_subject(ctx.db, user)
    ctx.db.commit()


# ---- the bytes --------------------------------------------------------------------------------


def _data_headers(node: Node) -> dict[str, str]:
    """The validators and name of a data node, as a PUT echoes them."""
    return {"accept-ranges": "bytes",
            "content-disposition": downloads.content_disposition("inline", node.name),
            "last-modified": downloads.http_date(node.updated_at),
            "etag": node.etag}


@api.get("/data/{path:path}", openapi_extra=uses(READ), summary="Download a file (pull)")
@api.head("/data/{path:path}", openapi_extra=uses(READ), include_in_schema=False)
def get_data(request: Request, path: str, ctx: Ctx):
    path = _path(request, path, "/vospace/data/")
    _signed_subject(ctx, request, path, "GET")
    node = services.get_node(ctx, path)
    if node.kind != "data":
        raise VOSpaceFault("InvalidArgument", f"{_uri(ctx, path)} is not a DataNode")

    def open_bytes(start: int, end: int | None) -> Iterator[bytes]:
        return services.download(ctx, path, start=start, end=end)[1]

    return downloads.file_response(request, served_file(node), open_bytes,
                                   disposition="inline")


def _expected_md5(request: Request) -> str | None:
    digest = request.headers.get("digest", "")
    if digest.lower().startswith("md5="):
        try:
            return base64.b64decode(digest[4:]).hex()
        except (binascii.Error, ValueError):
            raise VOSpaceFault("InvalidArgument", "the Digest header is not valid") from None
    return None


@api.put("/data/{path:path}", status_code=201, openapi_extra=uses(WRITE, READ, JobOps.LIST),
         summary="Upload a file (push)")
async def put_data(request: Request, path: str, ctx: Ctx):
    path = _path(request, path, "/vospace/data/")
    await run_in_threadpool(_signed_subject, ctx, request, path, "PUT")
    expected = _expected_md5(request)
    job = request.query_params.get("job")
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype in ("", "application/octet-stream", "application/x-www-form-urlencoded"):
        ctype = None  # let the service name it from the file name
    md5 = hashlib.md5()

    def hashed(chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            md5.update(chunk)
            yield chunk
        if expected and md5.hexdigest() != expected:
            raise VOSpaceFault("InvalidData", "the bytes received do not match the Digest "
                                              "header's MD5", 412)

    def existed() -> bool:
        try:
            return services.get_node(ctx, path).kind == "data"
        except errors.NotFound:
            return False

    def upload(chunks: Iterator[bytes]) -> Node:
        try:
            node = services.upload(ctx, path, hashed(chunks), content_type=ctype)
        except errors.DomainError as exc:
            if job and not isinstance(exc, UploadAborted):
                _finish_push(ctx, job, exc)
            raise
        if job:
            _finish_push(ctx, job, None)
        return node

    replaced = await run_in_threadpool(existed)
    node = await stream_body(request, upload)

    headers = _data_headers(node)
    headers["digest"] = "md5=" + base64.b64encode(md5.digest()).decode()
    return Response(status_code=200 if replaced else 201, headers=headers)


# ---- transfers: negotiation -------------------------------------------------------------------


_GET = {vx.HTTPGET: "http", vx.HTTPSGET: "https"}
_PUT = {vx.HTTPPUT: "http", vx.HTTPSPUT: "https"}
_ACCEPTED_METHODS = {vx.SM_TOKEN, vx.SM_BASIC, vx.SM_BASIC_W3C}
_VIEWS = {None, vx.VIEW_DEFAULT, vx.VIEW_BINARY, vx.VIEW_ANY, vx.CADC_DATA_VIEW}


def _check_view(transfer: vx.Transfer) -> None:
    if transfer.view not in _VIEWS or (transfer.view == vx.VIEW_ANY
                                       and transfer.direction != vx.PUSH_TO):
        raise VOSpaceFault("ViewNotSupported", str(transfer.view))


def _may_push(ctx: Context, path: str) -> None:
    """Fail early (before any byte moves) unless the caller may write `path`."""
    if not ctx.subject.authenticated:
        raise errors.NotAuthenticated("Please sign in to upload into a MyVOSpace.")
    try:
        node = services.get_node(ctx, path)
    except errors.NotFound:
        _explain_parent(ctx, path)
        parent_path = services.parent_of(path)
        if parent_path is None:
            raise VOSpaceFault("InvalidURI", "a user's root container holds no bytes") from None
        node = services.get_node(ctx, parent_path)
    else:
        if node.kind != "data":
            raise VOSpaceFault("DuplicateNode", f"{_uri(ctx, path)} exists and is not a "
                                                "DataNode", 409)
    if not ctx.can(WRITE, node):
        raise VOSpaceFault("PermissionDenied", f"you may not write {_uri(ctx, node.path)}", 403)


def _pull_path(ctx: Context, path: str) -> str:
    node = services.get_node(ctx, path)
    if node.kind == "link" and (node.link_target or "").startswith("vos://"):
        node = services.get_node(ctx, _target_path(ctx, node.link_target))
    if node.kind != "data":
        raise VOSpaceFault("InvalidArgument", f"{_uri(ctx, node.path)} holds no bytes to read "
                                              "(it is not a DataNode)")
    return node.path


def _endpoints(ctx: Context, request: Request, transfer: vx.Transfer, path: str,
               job: int | None) -> list[vx.Protocol]:
    """The requested protocols this service offers, with their endpoints: a signed URL for
    anonymous use, a plain one for each security method it understands."""
    push = transfer.direction == vx.PUSH_TO
    table = _PUT if push else _GET
    scheme = request.url.scheme
    wanted = transfer.protocols or [vx.Protocol(u) for u, s in table.items() if s == scheme]
    offered: list[vx.Protocol] = []
    for protocol in wanted:
        if table.get(protocol.uri) != scheme:
            continue  # unknown, wrong direction, or not what this server speaks
        method = "PUT" if push else "GET"
        if not protocol.security_methods:
            url = data_url(ctx, request, path, method, signed=True, job=job)
            offered.append(vx.Protocol(protocol.uri, url))
        for sm in protocol.security_methods:
            if sm in _ACCEPTED_METHODS:
                url = data_url(ctx, request, path, method, signed=False, job=job)
                offered.append(vx.Protocol(protocol.uri, url, [sm]))
    if not offered:
        raise VOSpaceFault("ProtocolNotSupported", "none of the requested protocols: this "
                           f"service offers {', '.join(_provided_protocols(request))}")
    return offered


def _negotiate(ctx: Context, request: Request, transfer: vx.Transfer,
               job: int | None = None) -> vx.Transfer:
    """The transfer result of a pushToVoSpace or pullFromVoSpace request."""
    path = _target_path(ctx, transfer.target)
    if transfer.direction in (vx.PULL_TO, vx.PUSH_FROM):
        raise VOSpaceFault("OperationNotSupported", f"{transfer.direction} (this service "
                                                    "does not fetch or send bytes itself)")
    _check_view(transfer)
    if transfer.direction == vx.PUSH_TO:
        _may_push(ctx, path)
    else:
        path = _pull_path(ctx, path)
    return vx.Transfer(target=_uri(ctx, path) if transfer.direction == vx.PULL_FROM
                       else transfer.target, direction=transfer.direction, view=transfer.view,
                       protocols=_endpoints(ctx, request, transfer, path, job),
                       params=transfer.params)


# ---- transfers: UWS jobs (each a row of the platform's job table) -----------------------------


def _state(job: Job) -> dict:
    try:
        return json.loads(job.result or "{}") or {}
    except ValueError:
        return {}


_PHASES = {"queued": "PENDING", "running": "EXECUTING", "retrying": "EXECUTING",
           "done": "COMPLETED", "failed": "ERROR"}


def phase_of(job: Job) -> str:
    return _state(job).get("phase") or _PHASES.get(job.status, "UNKNOWN")


def _transfer_of(job: Job) -> vx.Transfer:
    return vx.Transfer.from_dict(json.loads(job.args)["transfer"])


def _op_for(transfer: vx.Transfer):
    return READ if transfer.direction == vx.PULL_FROM else WRITE


def _in_unit(op, fn: Callable, ctx: Context, *args):
    """Run `fn(ctx, *args)` as one unit of work of operation `op` (usage-logged, atomic)."""
    return operation(op)(fn)(ctx, *args)


def _get_job(ctx: Context, job_id: str) -> Job:
    if not re.fullmatch(r"[0-9]{1,12}", job_id):
        raise errors.NotFound("There is no transfer job %(id)s.", id=job_id[:40])
    try:
        job = jobs.get_job(ctx, job_id=int(job_id))
    except errors.NotFound:
        job = None
    if job is None or job.task != TASK:
        raise errors.NotFound("There is no transfer job %(id)s, or you may not see it.",
                              id=job_id)
    return job


def _new_job(ctx: Context, transfer: vx.Transfer) -> int:
    def record(ctx: Context) -> int:
        if not ctx.subject.authenticated:
            raise errors.NotAuthenticated("Please sign in to start VOSpace transfer jobs.")
        job = Job(task=TASK, args=json.dumps({"transfer": transfer.to_dict()}),
                  status="queued", owner_id=ctx.subject.id, max_attempts=1)
        ctx.db.add(job)
        ctx.db.flush()
        ctx.set_target(job)
        return job.id

    return _in_unit(_op_for(transfer), record, ctx)


def _set_state(job: Job, phase: str, **state) -> None:
    now = utcnow()
    job.result = json.dumps({**_state(job), "phase": phase, **state})
    job.status = {"EXECUTING": "running", "COMPLETED": "done"}.get(phase, "failed")
    job.attempts = max(job.attempts, 1)
    job.started_at = job.started_at or now
    if phase != "EXECUTING":
        job.finished_at = now
        job.progress = 1.0




def _internal(ctx: Context, transfer: vx.Transfer) -> dict:
    """Move or copy inside this service (direction is a vos:// URI)."""
    src = _target_path(ctx, transfer.target)
    dest = _target_path(ctx, transfer.direction)
    results = []
    if dest.rsplit("/", 1)[-1] == ".auto":
        dest = dest.rsplit("/", 1)[0] + "/" + uuid.uuid4().hex
        results.append(["destination", _uri(ctx, dest)])
    else:
        try:
            existing = services.get_node(ctx, dest)
        except errors.NotFound:
            existing = None
        if existing is not None and existing.is_container:  # into the container
            dest = f"{dest}/{src.rsplit('/', 1)[-1]}"
    if transfer.keep_bytes is False:
        services.move(ctx, src, dest)
    else:
        services.copy(ctx, src, dest)
    return {"results": results}


def _run(ctx: Context, request: Request, job_id: int) -> None:
    """PHASE=RUN: do the job now (move/copy) or negotiate its endpoints (push/pull)."""
    job = _get_job(ctx, str(job_id))
    if phase_of(job) != "PENDING":
        return
    transfer = _transfer_of(job)

    def negotiate(ctx: Context) -> None:
        result = _negotiate(ctx, request, transfer, job_id)
        negotiated = [{"uri": p.uri, "securityMethods": p.security_methods}
                      for p in result.protocols]
        phase = "EXECUTING" if transfer.direction == vx.PUSH_TO else "COMPLETED"
        _set_state(ctx.db.get(Job, job_id), phase, target=result.target,
                   protocols=negotiated, results=[["dataNode", result.target]])

    def completed(ctx: Context, state: dict) -> None:
        _set_state(ctx.db.get(Job, job_id), "COMPLETED", **state)

    try:
        if not transfer.internal:
            _in_unit(_op_for(transfer), negotiate, ctx)
        elif transfer.keep_bytes is None:
            raise VOSpaceFault("InvalidArgument", "keepBytes is required for a move or copy")
        else:
            # The move or copy is its own unit of work: a copy moves its bytes with no
            # transaction open, which it could not do inside another operation's.
            _in_unit(_op_for(transfer), completed, ctx, _internal(ctx, transfer))
    except errors.DomainError as exc:
        fault, text = _fault_text(exc)
        _in_unit(_op_for(transfer), _fail, ctx, job_id, fault, text)


def _fail(ctx: Context, job_id: int, fault: str, text: str) -> None:
    row = ctx.db.get(Job, job_id)
    spaced = "".join(" " + c if c.isupper() else c for c in fault).strip()
    _set_state(row, "ERROR", fault=f"{fault} {text}".strip(), summary=spaced)
    row.error = f"{fault} {text}"[:4000]


def _finish_push(ctx: Context, job_id: str, exc: errors.DomainError | None) -> None:
    """The bytes of a pushToVoSpace job arrived (or failed): COMPLETED (or ERROR)."""
    try:
        job = _get_job(ctx, job_id)
    except errors.NotFound:
        return
    if phase_of(job) != "EXECUTING":
        return

    def finish(ctx: Context) -> None:
        row = ctx.db.get(Job, job.id)
        if exc is None:
            _set_state(row, "COMPLETED")
        else:
            fault, text = _fault_text(exc)
            _fail(ctx, job.id, fault, text)

    _in_unit(WRITE, finish, ctx)


def _abort(ctx: Context, job_id: int) -> None:
    def abort(ctx: Context) -> None:
        row = ctx.db.get(Job, job_id)
        if phase_of(row) in ("PENDING", "QUEUED", "EXECUTING"):
            _set_state(row, "ABORTED")

    _in_unit(WRITE, abort, ctx)


def _destroy(ctx: Context, job_id: int) -> None:
    def destroy(ctx: Context) -> None:
        row = ctx.db.get(Job, job_id)
        if row is not None:
            ctx.db.delete(row)

    _in_unit(WRITE, destroy, ctx)


def _job_view(ctx: Context, request: Request, job: Job) -> vx.JobView:
    state = _state(job)
    base = f"{service_url(request)}/transfers/{job.id}"
    results = []
    if not _transfer_of(job).internal and phase_of(job) in ("EXECUTING", "COMPLETED"):
        results.append(("transferDetails", f"{base}/results/transferDetails"))
    results += [(i, href) for i, href in state.get("results") or []]
    owner = ctx.db.get(User, job.owner_id) if job.owner_id else None
    return vx.JobView(job_id=str(job.id), phase=phase_of(job),
                      owner=owner.username if owner else None, created=job.created_at,
                      started=job.started_at, ended=job.finished_at,
                      destruction=destruction_of(job, ctx.settings),
                      transfer=_transfer_of(job), results=results,
                      error=state.get("summary") if phase_of(job) == "ERROR" else None,
                      href=base)


def _details(ctx: Context, request: Request, job: Job) -> vx.Transfer:
    """The transfer result, its endpoints signed afresh (they are short-lived)."""
    transfer, state = _transfer_of(job), _state(job)
    protocols = []
    if phase_of(job) in ("EXECUTING", "COMPLETED") and not transfer.internal:
        path = _target_path(ctx, state.get("target") or transfer.target)
        method = "PUT" if transfer.direction == vx.PUSH_TO else "GET"
        for p in state.get("protocols") or []:
            signed = not p.get("securityMethods")
            url = data_url(ctx, request, path, method, signed=signed, job=job.id)
            protocols.append(vx.Protocol(p["uri"], url, list(p.get("securityMethods") or [])))
    return vx.Transfer(target=state.get("target") or transfer.target,
                       direction=transfer.direction, view=transfer.view, protocols=protocols,
                       keep_bytes=transfer.keep_bytes, params=transfer.params)


def _parse_transfer(body: bytes) -> vx.Transfer:
    try:
        return vx.parse_transfer(body)
    except vx.DocumentError as exc:
        raise _doc_fault(exc) from None


JOB_OPS = uses(JobOps.LIST, READ, WRITE)


@api.get("/transfers", openapi_extra=uses(JobOps.LIST), summary="Your transfer jobs (UWS)")
def list_transfers(request: Request, ctx: Ctx):
    params = _params(request)
    page = jobs.list_jobs(ctx, task=TASK, page=1, per_page=200)
    wanted = {p.upper() for k, p in request.query_params.multi_items() if k.upper() == "PHASE"}
    views = [_job_view(ctx, request, j) for j in page.items]
    if wanted:
        views = [v for v in views if v.phase in wanted]
    if re.fullmatch(r"[0-9]{1,9}", params.get("LAST", "")):
        views = views[:int(params["LAST"])]
    return xml(vx.render_job_list(views))


@api.post("/transfers", status_code=303, openapi_extra=JOB_OPS,
          summary="Create a transfer job: push, pull, move or copy (UWS)")
async def create_transfer(request: Request, ctx: Ctx):
    body = await request.body()

    def run():
        transfer = _parse_transfer(body)
        job_id = _new_job(ctx, transfer)
        if _params(request).get("PHASE", "").upper() == "RUN":
            _run(ctx, request, job_id)
        return RedirectResponse(f"{service_url(request)}/transfers/{job_id}", 303)

    return await run_in_threadpool(run)


@api.get("/transfers/{job_id}", openapi_extra=uses(JobOps.LIST), summary="A transfer job")
def get_transfer(request: Request, job_id: str, ctx: Ctx):
    return xml(vx.render_job(_job_view(ctx, request, _get_job(ctx, job_id))))


@api.delete("/transfers/{job_id}", status_code=303, openapi_extra=JOB_OPS)
def delete_transfer(request: Request, job_id: str, ctx: Ctx):
    job = _get_job(ctx, job_id)
    _destroy(ctx, job.id)
    return RedirectResponse(f"{service_url(request)}/transfers", 303)


@api.post("/transfers/{job_id}", status_code=303, openapi_extra=JOB_OPS)
async def post_transfer(request: Request, job_id: str, ctx: Ctx):
    body = await request.body()

    def run():
        job = _get_job(ctx, job_id)
        params = _params(request, body)
        if params.get("ACTION", "").upper() == "DELETE":
            _destroy(ctx, job.id)
            return RedirectResponse(f"{service_url(request)}/transfers", 303)
        _phase_change(ctx, request, job, params)
        return RedirectResponse(f"{service_url(request)}/transfers/{job.id}", 303)

    return await run_in_threadpool(run)


def _phase_change(ctx: Context, request: Request, job: Job, params: dict) -> None:
    phase = params.get("PHASE", "").upper()
    if phase == "RUN":
        _run(ctx, request, job.id)
    elif phase == "ABORT":
        _abort(ctx, job.id)
    elif phase or not params:
        raise VOSpaceFault("InvalidArgument", f"PHASE={phase!r}: use RUN or ABORT")


@api.get("/transfers/{job_id}/phase", openapi_extra=uses(JobOps.LIST))
def get_phase(job_id: str, ctx: Ctx):
    return Response(phase_of(_get_job(ctx, job_id)), media_type="text/plain")


@api.post("/transfers/{job_id}/phase", status_code=303, openapi_extra=JOB_OPS)
async def post_phase(request: Request, job_id: str, ctx: Ctx):
    body = await request.body()

    def run():
        job = _get_job(ctx, job_id)
        _phase_change(ctx, request, job, _params(request, body) or {"PHASE": ""})
        return RedirectResponse(f"{service_url(request)}/transfers/{job.id}", 303)

    return await run_in_threadpool(run)


@api.get("/transfers/{job_id}/error", openapi_extra=uses(JobOps.LIST))
def get_error(job_id: str, ctx: Ctx):
    job = _get_job(ctx, job_id)
    if phase_of(job) != "ERROR":
        raise errors.NotFound("Transfer job %(id)s has no error.", id=job_id)
    return Response(_state(job).get("fault", "InternalFault") + "\n", media_type="text/plain")


@api.get("/transfers/{job_id}/results", openapi_extra=uses(JobOps.LIST))
def get_results(request: Request, job_id: str, ctx: Ctx):
    view = _job_view(ctx, request, _get_job(ctx, job_id))
    return xml(vx.render_results(view.results))


@api.get("/transfers/{job_id}/results/transferDetails", openapi_extra=uses(JobOps.LIST))
def get_transfer_details(request: Request, job_id: str, ctx: Ctx):
    job = _get_job(ctx, job_id)
    if _transfer_of(job).internal:
        raise errors.NotFound("A move or copy has no transfer details.")
    return xml(vx.render_transfer(_details(ctx, request, job)))


@api.get("/transfers/{job_id}/{item}", openapi_extra=uses(JobOps.LIST))
def get_job_item(request: Request, job_id: str, item: str, ctx: Ctx):
    """The small UWS job resources: executionduration, destruction, quote, owner, parameters."""
    job = _get_job(ctx, job_id)
    view = _job_view(ctx, request, job)
    values = {"executionduration": "0", "destruction": vx.iso(view.destruction, zone=True),
              "quote": "", "owner": view.owner or "", "runid": ""}
    if item.lower() == "parameters":
        return xml(b'<?xml version="1.0" encoding="UTF-8"?>\n'
                   b'<uws:parameters xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0"/>\n')
    if item.lower() not in values:
        raise errors.NotFound("Transfer jobs have no %(item)s.", item=item[:40])
    return Response(values[item.lower()], media_type="text/plain")


# ---- synchronous transfers --------------------------------------------------------------------


def _param_transfer(params: dict[str, str]) -> vx.Transfer:
    """A transfer from URL parameters (VOSpace 2.1 §3.7.2): TARGET, DIRECTION, one PROTOCOL."""
    direction = params.get("DIRECTION", "")
    if direction not in (vx.PUSH_TO, vx.PULL_FROM):
        raise VOSpaceFault("InvalidArgument", f"DIRECTION={direction!r}: pushToVoSpace or "
                                              "pullFromVoSpace")
    if not params.get("PROTOCOL"):
        raise VOSpaceFault("InvalidArgument", "PROTOCOL is required")
    methods = [params["SECURITYMETHOD"]] if params.get("SECURITYMETHOD") else []
    return vx.Transfer(target=params.get("TARGET", ""), direction=direction,
                       view=params.get("VIEW") or None,
                       protocols=[vx.Protocol(params["PROTOCOL"], None, methods)])


@api.get("/synctrans", openapi_extra=uses(READ, WRITE),
         summary="Negotiate a transfer with URL parameters (sync)")
@api.post("/synctrans", openapi_extra=uses(READ, WRITE, JobOps.LIST),
          summary="Negotiate a transfer (sync): parameters or a transfer document")
async def synctrans(request: Request, ctx: Ctx):
    body = await request.body() if request.method == "POST" else b""

    def run():
        params = _params(request, body)
        if "TARGET" in params or not body.strip():
            transfer = _param_transfer(params)
            if transfer.protocols[0].uri == vx.PUBLIC_SHARE:
                raise VOSpaceFault("ProtocolNotSupported", vx.PUBLIC_SHARE)
            result = _negotiate(ctx, request, transfer)
            if params.get("REQUEST", "").lower() == "redirect" and \
                    transfer.direction == vx.PULL_FROM:
                return RedirectResponse(result.protocols[0].endpoint, 303)
            return xml(vx.render_transfer(result))
        transfer = _parse_transfer(body)
        job_id = _new_job(ctx, transfer)
        _run(ctx, request, job_id)
        base = f"{service_url(request)}/transfers/{job_id}"
        return RedirectResponse(base if transfer.internal else
                                base + "/results/transferDetails", 303)

    return await run_in_threadpool(run)
