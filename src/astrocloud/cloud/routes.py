"""HTTP routes of the Cloud channel: MyVOSpace's web file browser and the JSON API it uses.

    /cloud                              the channel's landing page ("My space" once signed in)
    /cloud/files/<user>/<path>          GET a folder's page, or a file's bytes (Range, ETag);
                                        POST a multipart form of files into a folder (no JS)
    /cloud/node/<user>/<path>           a node's page: rename or move, copy, share, publish, delete
    /cloud/{mkdir,move,copy,delete,share,publish}/<path>   the forms of those pages
    /api/v1/vos/nodes/<path>            GET a node and a page of its children; PATCH (share,
                                        publish); DELETE
    /api/v1/vos/files/<path>            GET (Range, ETag, If-None-Match) and PUT (streamed) bytes
    /api/v1/vos/folders/<path>          POST: a new folder
    /api/v1/vos/move, /copy             POST {src, dest}
    /api/v1/vos/usage                   bytes used and the quota

Routes parse, call the MyVOSpace services and render; who may do what is decided there. The
URL of a node in the browser, `/cloud/files/<path>`, is also its public link once published.
Uploads stream: a PUT's body goes from the socket to the storage layer chunk by chunk, the quota
bounding it as it arrives; a form upload streams from the form parser's spooled temporary file.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import quote, unquote_to_bytes

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response, StreamingResponse

from astrocloud.cloud import services
from astrocloud.cloud.models import Node
from astrocloud.cloud.schemas import (
    MoveIn,
    NodeListing,
    NodeOut,
    ShareIn,
    UsageOut,
    served_file,
)
from astrocloud.cloud.services import CloudOps
from astrocloud.core import errors
from astrocloud.core.i18n import _, gettext
from astrocloud.core.identity import services as identity
from astrocloud.core.identity.operations import IdentityOps
from astrocloud.core.identity.pages import flash_redirect
from astrocloud.core.service import Context
from astrocloud.core.web import downloads
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.inputs import FormText
from astrocloud.core.web.routing import PUBLIC, uses
from astrocloud.core.web.templating import render
from astrocloud.core.web.uploads import stream_body

api = APIRouter(prefix="/api/v1/vos", tags=["myvospace"], route_class=AuditedRoute)
pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
READ, WRITE, SHARE, QUOTA = (CloudOps.VOS_READ, CloudOps.VOS_WRITE, CloudOps.VOS_SHARE,
                             CloudOps.VOS_QUOTA)

PAGE_SIZE = 100  # children per page of a folder
MAX_PAGE = 1000
CHUNK = 1024 * 1024  # read from a form upload's spooled file at a time
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="children per page")]
After = Annotated[str | None, Query(max_length=255, description="the last name of the previous "
                                                                "page")]


# ---- paths and errors -------------------------------------------------------------------------


class InvalidPath(errors.ValidationFailed):
    """A node path that could name something else (traversal, encoded slashes, control
    characters) or breaks the path rules: refused before anything is looked up."""

    status = 400
    code = "invalid-path"


def node_path(request: Request, path: str, prefix: str) -> str:
    """The checked node path of a request (`prefix` is the route's path up to it)."""
    raw = request.scope.get("raw_path") or b""
    tail = raw.split(b"?", 1)[0].split(prefix.encode(), 1)[-1].lower()
    if b"%2f" in tail or b"%5c" in tail or b"%00" in tail:
        raise InvalidPath(_("Encoded slashes, backslashes and NUL are not allowed in a path."),
                          field="path")
    if any(unquote_to_bytes(part) in (b".", b"..") for part in tail.split(b"/")):
        raise InvalidPath(_("A path may not contain empty, “.” or “..” parts."), field="path")
    try:
        return services.normalise(path)
    except errors.ValidationFailed as exc:
        raise InvalidPath(exc.errors) from None


def body_path(value: str, field: str) -> str:
    try:
        return services.normalise(value)
    except errors.ValidationFailed as exc:
        raise InvalidPath([{**e, "field": field} for e in exc.errors]) from None


@contextlib.contextmanager
def signed_in_or_401(ctx: Context) -> Iterator[None]:
    """For a visitor without credentials, what is invisible asks for them (401) rather than
    saying "not found": sign in, or send a token. Signed-in callers get the plain answer."""
    try:
        yield
    except (errors.NotFound, errors.PermissionDenied):
        if ctx.subject.authenticated:
            raise
        raise errors.NotAuthenticated(
            "Sign in, or send a personal API token, to use MyVOSpace.") from None


def message_of(ctx: Context, exc: errors.DomainError) -> str:
    """What to tell a person about a refused action, in their language."""
    return f"{gettext(ctx.language, exc.title)}: {exc.translated(ctx.language)}"


def quoted(path: str) -> str:
    return quote(path, safe="/")


def api_url(node: Node) -> str:
    kind = "files" if node.kind == "data" else "nodes"
    return f"/api/v1/vos/{kind}/{quoted(node.path)}"


def node_out(ctx: Context, node: Node, *, shares: bool = False) -> NodeOut:
    out = NodeOut(path=node.path, name=node.name, kind=node.kind, size=node.size or 0,
                  content_type=node.content_type or "", link_target=node.link_target,
                  public_read=bool(node.public_read), created_at=node.created_at,
                  updated_at=node.updated_at, version=node.version, url=api_url(node))
    if shares and ctx.can(SHARE, node):
        out.group_read, out.group_write = services.shares_of(ctx, node)
    return out


# ---- bytes out: one streaming answer for the API and the browser ------------------------------


def file_response(request: Request, ctx: Context, path: str) -> Response:
    """A data node's bytes: whole, or one byte range (206); 304 when the caller's copy is
    current. Always an attachment, and never as a type the browser would run."""
    node = services.get_node(ctx, path)
    if node.kind != "data":
        raise errors.ValidationFailed("%(path)s is not a file.", field="path", path=node.path)

    def open_bytes(start: int, end: int | None) -> Iterator[bytes]:
        return services.download(ctx, path, start=start, end=end)[1]

    return downloads.file_response(request, served_file(node), open_bytes,
                                   disposition="attachment")


# ---- bytes in ---------------------------------------------------------------------------------


def _content_type(value: str | None, name: str | None = None) -> str | None:
    """The type a client declared, or None to let the service name it from the file name.
    With `name` (a browser's guess, as in a form upload) the service's naming comes first."""
    ctype = (value or "").split(";")[0].strip().lower()
    if ctype in ("", "application/octet-stream", "application/x-www-form-urlencoded") or \
            len(ctype) > 200 or not re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", ctype):
        return None
    if name is not None and services.guess_type(name) != "application/octet-stream":
        return None
    return ctype


async def stream_upload(request: Request, ctx: Context, path: str,
                        content_type: str | None) -> tuple[Node, bool]:
    """Upload the request body to `path` as it arrives: (node, created)."""

    def run(chunks: Iterator[bytes]) -> tuple[Node, bool]:
        try:
            existed = services.get_node(ctx, path).kind == "data"
        except (errors.NotFound, errors.ValidationFailed):
            existed = False
        with signed_in_or_401(ctx):
            return services.upload(ctx, path, chunks, content_type=content_type), not existed

    return await stream_body(request, run)


def _file_parts(upload: UploadFile) -> Iterator[bytes]:
    """The chunks of a form's file part, read from its spooled temporary file."""
    upload.file.seek(0)
    while chunk := upload.file.read(CHUNK):
        yield chunk


# ---- the JSON API -----------------------------------------------------------------------------


def _listing(ctx: Context, path: str | None, after: str | None, limit: int) -> NodeListing:
    with signed_in_or_401(ctx):
        node = services.ensure_root(ctx) if path is None else services.get_node(ctx, path)
        children = services.list_children(ctx, node.path, limit=limit + 1, after=after) \
            if node.is_container else []
    more = len(children) > limit
    children = children[:limit]
    return NodeListing(node=node_out(ctx, node, shares=True),
                       children=[node_out(ctx, c) for c in children],
                       next_after=children[-1].name if more and children else None)


@api.get("/nodes", response_model=NodeListing, openapi_extra=uses(READ),
         summary="Your own space: its root folder and a page of its children")
def read_root(ctx: Ctx, after: After = None, limit: Limit = PAGE_SIZE):
    return _listing(ctx, None, after, limit)


@api.get("/nodes/{path:path}", response_model=NodeListing, openapi_extra=uses(READ),
         summary="A node, and a page of its children in name order")
def read_node(request: Request, path: str, ctx: Ctx, after: After = None,
              limit: Limit = PAGE_SIZE):
    if not path:
        return _listing(ctx, None, after, limit)
    return _listing(ctx, node_path(request, path, "/api/v1/vos/nodes/"), after, limit)


@api.patch("/nodes/{path:path}", response_model=NodeOut, openapi_extra=uses(SHARE),
           summary="Share a node with groups (to read, or to read and write) or publish it")
def share_node(request: Request, path: str, body: ShareIn, ctx: Ctx):
    path = node_path(request, path, "/api/v1/vos/nodes/")
    with signed_in_or_401(ctx):
        node = services.set_properties(ctx, path, **body.model_dump(exclude_unset=True))
    return node_out(ctx, node, shares=True)


@api.delete("/nodes/{path:path}", status_code=204, openapi_extra=uses(WRITE),
            summary="Delete a node (a folder with everything in it)")
def delete_node(request: Request, path: str, ctx: Ctx):
    path = node_path(request, path, "/api/v1/vos/nodes/")
    with signed_in_or_401(ctx):
        services.delete(ctx, path)
    return Response(status_code=204)


@api.post("/folders/{path:path}", response_model=NodeOut, status_code=201,
          openapi_extra=uses(WRITE), summary="Create a folder")
def create_folder(request: Request, path: str, ctx: Ctx):
    path = node_path(request, path, "/api/v1/vos/folders/")
    with signed_in_or_401(ctx):
        return node_out(ctx, services.create_container(ctx, path))


@api.get("/files/{path:path}", openapi_extra=uses(READ), summary="Download a file",
         response_class=StreamingResponse,
         responses={200: {"content": {"application/octet-stream": {}}},
                    206: {"description": "The byte range asked for (Range: bytes=a-b)"},
                    304: {"description": "Not modified (If-None-Match)"},
                    416: {"description": "The range is outside the file"}})
@api.head("/files/{path:path}", openapi_extra=uses(READ), include_in_schema=False)
def get_file(request: Request, path: str, ctx: Ctx):
    path = node_path(request, path, "/api/v1/vos/files/")
    with signed_in_or_401(ctx):
        return file_response(request, ctx, path)


@api.put("/files/{path:path}", response_model=NodeOut, status_code=201,
         openapi_extra={**uses(WRITE), "requestBody": {
             "required": True, "content": {"application/octet-stream": {
                 "schema": {"type": "string", "format": "binary"}}}}},
         summary="Upload a file (the raw body; 201 when new, 200 when replaced)",
         responses={200: {"model": NodeOut, "description": "An existing file was replaced"},
                    507: {"description": "The upload does not fit in the quota"}})
async def put_file(request: Request, path: str, ctx: Ctx, response: Response):
    path = node_path(request, path, "/api/v1/vos/files/")
    node, created = await stream_upload(request, ctx, path,
                                        _content_type(request.headers.get("content-type")))
    response.status_code = 201 if created else 200
    return await run_in_threadpool(node_out, ctx, node)


@api.post("/move", response_model=NodeOut, openapi_extra=uses(WRITE),
          summary="Move or rename a node within one space")
def move_node(body: MoveIn, ctx: Ctx):
    src, dest = body_path(body.src, "src"), body_path(body.dest, "dest")
    with signed_in_or_401(ctx):
        return node_out(ctx, services.move(ctx, src, dest))


@api.post("/copy", response_model=NodeOut, status_code=201, openapi_extra=uses(WRITE),
          summary="Copy a node (a folder with everything in it)")
def copy_node(body: MoveIn, ctx: Ctx):
    src, dest = body_path(body.src, "src"), body_path(body.dest, "dest")
    with signed_in_or_401(ctx):
        return node_out(ctx, services.copy(ctx, src, dest))


@api.get("/usage", response_model=UsageOut, openapi_extra=uses(QUOTA),
         summary="Bytes used and the quota of your space (operators: anyone's)")
def read_usage(ctx: Ctx, username: Annotated[str | None, Query(max_length=64)] = None):
    if username is None and not ctx.subject.authenticated:
        raise errors.NotAuthenticated("Sign in, or send a personal API token, to use MyVOSpace.")
    return services.usage(ctx, username)


# ---- pages ------------------------------------------------------------------------------------


def _crumbs(ctx: Context, path: str) -> list[tuple[str, str]]:
    """(label, folder path) from the space's root down to `path`."""
    parts = path.split("/")
    owner = parts[0]
    first = gettext(ctx.language, "My space") if owner == ctx.subject.username else \
        gettext(ctx.language, "%(name)s's space", name=owner)
    return [(first if i == 0 else name, "/".join(parts[:i + 1])) for i, name in enumerate(parts)]


def _usage(ctx: Context) -> dict | None:
    if not ctx.subject.authenticated:
        return None
    figures = services.usage(ctx)
    quota = figures["quota"]
    figures["percent"] = min(100.0, 100.0 * figures["used"] / quota) if quota else 100.0
    figures["free"] = max(0, quota - figures["used"])
    return figures


def _page_values(request: Request, ctx: Context) -> dict:
    base = request.app.state.settings.base_url.rstrip("/")
    return {"files_url": lambda p: "/cloud/files/" + quoted(p),
            "node_url": lambda p: "/cloud/node/" + quoted(p),
            "action_url": lambda action, p: f"/cloud/{action}/{quoted(p)}",
            "public_url": lambda p: f"{base}/cloud/files/{quoted(p)}",
            "api_file_url": lambda p: "/api/v1/vos/files/" + quoted(p),
            "base_url": base, "READ": READ, "WRITE": WRITE, "SHARE": SHARE}


def _visitor_must_sign_in(ctx: Context):
    """In the browser, a visitor who cannot see a node is asked to sign in (a GET then
    redirects to the sign-in page and back)."""
    return signed_in_or_401(ctx)


def folder_page(request: Request, ctx: Context, path: str, *, status_code: int = 200,
                problems: list[str] | None = None, notice: str | None = None,
                after: str | None = None, limit: int = PAGE_SIZE, form: dict | None = None):
    with _visitor_must_sign_in(ctx):
        node = services.get_node(ctx, path)
        if not node.is_container:
            raise errors.ValidationFailed("%(path)s is not a folder.", field="path",
                                          path=node.path)
        children = services.list_children(ctx, path, limit=limit + 1, after=after)
    more = len(children) > limit
    children = children[:limit]
    own = node.owner_id == ctx.subject.id
    return render(request, "cloud/folder.html", status_code=status_code, node=node,
                  children=children, next_after=children[-1].name if more and children else None,
                  after=after, limit=limit, crumbs=_crumbs(ctx, node.path),
                  usage=_usage(ctx) if own else None, own=own,
                  can_write=ctx.can(WRITE, node), problems=problems or [], notice=notice,
                  form=form or {}, **_page_values(request, ctx))


def node_page(request: Request, ctx: Context, path: str, *, status_code: int = 200,
              problems: list[str] | None = None, notice: str | None = None,
              form: dict | None = None):
    with _visitor_must_sign_in(ctx):
        node = services.get_node(ctx, path)
    can_share = ctx.can(SHARE, node)
    readers, writers, groups, inherited = [], [], [], []
    if can_share:
        readers, writers = services.shares_of(ctx, node)
        groups = [g.name for g in identity.list_groups(ctx, mine=True, per_page=200).items]
        inherited = _inherited(ctx, node.path)
    parent = services.parent_of(node.path)
    return render(request, "cloud/node.html", status_code=status_code, node=node,
                  parent=parent, crumbs=_crumbs(ctx, node.path), can_share=can_share,
                  can_write=ctx.can(WRITE, node) and parent is not None, readers=readers,
                  writers=writers, my_groups=groups, inherited=inherited,
                  public_via=next((i["path"] for i in inherited if i["public"]), None),
                  problems=problems or [], notice=notice, form=form or {},
                  **_page_values(request, ctx))


def _inherited(ctx: Context, path: str) -> list[dict]:
    """What the folders above a node share or publish: it covers the node too."""
    parts = path.split("/")
    found = []
    for depth in range(1, len(parts)):
        folder = services.get_node(ctx, "/".join(parts[:depth]))
        readers, writers = services.shares_of(ctx, folder)
        if readers or writers or folder.public_read:
            found.append({"path": folder.path, "readers": readers, "writers": writers,
                          "public": bool(folder.public_read)})
    return found


@pages.get("/cloud", openapi_extra=PUBLIC, name="cloud_landing")
def landing(request: Request, ctx: Ctx,
            notice: Annotated[str | None, Query(max_length=300)] = None):
    if not ctx.subject.authenticated:
        return render(request, "cloud/landing.html", root=None, **_page_values(request, ctx))
    root = services.ensure_root(ctx)
    children = services.list_children(ctx, root.path, limit=11)
    return render(request, "cloud/landing.html", root=root, children=children[:10],
                  more=len(children) > 10, usage=_usage(ctx), notice=notice,
                  **_page_values(request, ctx))


@pages.get("/cloud/files", openapi_extra=uses(READ))
@pages.get("/cloud/files/", openapi_extra=uses(READ))
def my_files(ctx: Ctx):
    root = services.ensure_root(ctx)
    return RedirectResponse("/cloud/files/" + quoted(root.path), status_code=303)


@pages.get("/cloud/files/{path:path}", openapi_extra=uses(READ, QUOTA))
@pages.head("/cloud/files/{path:path}", openapi_extra=uses(READ), include_in_schema=False)
def browse(request: Request, path: str, ctx: Ctx, after: After = None,
           limit: Limit = PAGE_SIZE, notice: Annotated[str | None, Query(max_length=300)] = None):
    path = node_path(request, path, "/cloud/files/")
    with _visitor_must_sign_in(ctx):
        node = services.get_node(ctx, path)
    if node.kind == "data":
        return file_response(request, ctx, path)
    if node.kind == "link":
        return RedirectResponse("/cloud/node/" + quoted(path), status_code=303)
    return folder_page(request, ctx, path, after=after, limit=limit, notice=notice)


@pages.post("/cloud/files/{path:path}", openapi_extra=uses(WRITE, READ))
async def upload_form(request: Request, path: str, ctx: Ctx):
    """The upload form without JavaScript: every file part streams from the form parser's
    spooled temporary file into the service, then the folder is shown again."""
    folder = node_path(request, path, "/cloud/files/")
    form = await request.form()
    files = [f for f in form.getlist("file") if isinstance(f, UploadFile) and f.filename]

    def run() -> tuple[list[str], list[str], int]:
        done, problems, status = [], [], 200
        for upload in files:
            name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1]
            try:
                with signed_in_or_401(ctx):
                    services.upload(ctx, f"{folder}/{name}", _file_parts(upload),
                                    content_type=_content_type(upload.content_type, name))
                done.append(name)
            except errors.NotAuthenticated:
                raise
            except errors.DomainError as exc:
                problems.append(f"{name} — {message_of(ctx, exc)}")
                status = max(status, exc.status)
        return done, problems, status

    try:
        if not files:
            return await run_in_threadpool(
                folder_page, request, ctx, folder, status_code=422,
                problems=[gettext(ctx.language, "Choose one or more files to upload.")])
        done, problems, status = await run_in_threadpool(run)
    finally:
        for upload in files:
            await upload.close()
    notice = gettext(ctx.language, "Uploaded: %(names)s.", names=", ".join(done)) \
        if done else None
    if problems:
        return await run_in_threadpool(folder_page, request, ctx, folder, status_code=status,
                                       problems=problems, notice=notice)
    return flash_redirect("/cloud/files/" + quoted(folder), notice)


@pages.get("/cloud/node/{path:path}", openapi_extra=uses(READ, IdentityOps.GROUP_LIST))
def manage(request: Request, path: str, ctx: Ctx,
           notice: Annotated[str | None, Query(max_length=300)] = None):
    return node_page(request, ctx, node_path(request, path, "/cloud/node/"), notice=notice)


@pages.post("/cloud/mkdir/{path:path}", openapi_extra=uses(WRITE))
def make_folder(request: Request, path: str, ctx: Ctx, name: FormText = ""):
    folder = node_path(request, path, "/cloud/mkdir/")
    name = name.strip()
    try:
        if not name or "/" in name:
            raise errors.ValidationFailed("Give the new folder a name without “/”.",
                                          field="name")
        with signed_in_or_401(ctx):
            services.create_container(ctx, f"{folder}/{name}")
    except errors.NotAuthenticated:
        raise
    except errors.DomainError as exc:
        return folder_page(request, ctx, folder, status_code=exc.status,
                           problems=[message_of(ctx, exc)], form={"name": name})
    return flash_redirect("/cloud/files/" + quoted(folder),
                          gettext(ctx.language, "The folder %(name)s is created.", name=name))


def _destination(folder: str, name: str) -> str:
    folder, name = folder.strip().strip("/"), name.strip()
    if not name or "/" in name:
        raise errors.ValidationFailed("Give a name without “/”.", field="name")
    return body_path(f"{folder}/{name}", "folder")


@pages.post("/cloud/move/{path:path}", openapi_extra=uses(WRITE))
def move_form(request: Request, path: str, ctx: Ctx, folder: FormText = "",
              name: FormText = ""):
    return _move_or_copy(request, ctx, node_path(request, path, "/cloud/move/"), folder, name,
                         copy=False)


@pages.post("/cloud/copy/{path:path}", openapi_extra=uses(WRITE))
def copy_form(request: Request, path: str, ctx: Ctx, folder: FormText = "",
              name: FormText = ""):
    return _move_or_copy(request, ctx, node_path(request, path, "/cloud/copy/"), folder, name,
                         copy=True)


def _move_or_copy(request: Request, ctx: Context, src: str, folder: str, name: str, *,
                  copy: bool):
    try:
        dest = _destination(folder, name)
        with signed_in_or_401(ctx):
            node = (services.copy if copy else services.move)(ctx, src, dest)
    except errors.NotAuthenticated:
        raise
    except errors.DomainError as exc:
        return node_page(request, ctx, src, status_code=exc.status,
                         problems=[message_of(ctx, exc)], form={"folder": folder, "name": name})
    message = _("%(name)s is copied to %(folder)s.") if copy else \
        _("%(name)s is moved to %(folder)s.")
    return flash_redirect("/cloud/files/" + quoted(services.parent_of(node.path)),
                          gettext(ctx.language, message, name=node.name,
                                  folder=services.parent_of(node.path)))


@pages.post("/cloud/delete/{path:path}", openapi_extra=uses(WRITE))
def delete_form(request: Request, path: str, ctx: Ctx):
    path = node_path(request, path, "/cloud/delete/")
    try:
        with signed_in_or_401(ctx):
            services.delete(ctx, path)
    except errors.NotAuthenticated:
        raise
    except errors.DomainError as exc:
        return node_page(request, ctx, path, status_code=exc.status,
                         problems=[message_of(ctx, exc)])
    parent = services.parent_of(path) or path
    return flash_redirect("/cloud/files/" + quoted(parent), gettext(
        ctx.language, "%(name)s is deleted.", name=path.rsplit("/", 1)[-1]))


@pages.post("/cloud/share/{path:path}", openapi_extra=uses(SHARE, IdentityOps.GROUP_LIST))
def share_form(request: Request, path: str, ctx: Ctx, group: FormText = "",
               access: FormText = "read"):
    """Share with one group to read or to read and write, or stop sharing (access "none")."""
    path = node_path(request, path, "/cloud/share/")
    group = group.strip().lower()
    try:
        if not group:
            raise errors.ValidationFailed("Name a group.", field="group")
        if access not in ("read", "write", "none"):
            raise errors.ValidationFailed("Choose read, read and write, or no access.",
                                          field="access")
        with signed_in_or_401(ctx):
            node = services.get_node(ctx, path)
            readers, writers = services.shares_of(ctx, node)
            readers = [g for g in readers if g != group] + ([group] if access == "read" else [])
            writers = [g for g in writers if g != group] + ([group] if access == "write" else [])
            services.set_properties(ctx, path, group_read=readers, group_write=writers)
    except errors.NotAuthenticated:
        raise
    except errors.DomainError as exc:
        return node_page(request, ctx, path, status_code=exc.status,
                         problems=[message_of(ctx, exc)], form={"group": group,
                                                                 "access": access})
    message = {"read": _("%(group)s may now read %(name)s."),
               "write": _("%(group)s may now read and change %(name)s."),
               "none": _("%(name)s is no longer shared with %(group)s.")}[access]
    return flash_redirect("/cloud/node/" + quoted(path), gettext(
        ctx.language, message, group=group, name=path.rsplit("/", 1)[-1]))


@pages.post("/cloud/publish/{path:path}", openapi_extra=uses(SHARE))
def publish_form(request: Request, path: str, ctx: Ctx, public: FormText = ""):
    path = node_path(request, path, "/cloud/publish/")
    try:
        with signed_in_or_401(ctx):
            services.set_properties(ctx, path, public_read=public == "1")
    except errors.NotAuthenticated:
        raise
    except errors.DomainError as exc:
        return node_page(request, ctx, path, status_code=exc.status,
                         problems=[message_of(ctx, exc)])
    message = _("%(name)s is public: anyone with its link can read it.") if public == "1" \
        else _("%(name)s is private again.")
    return flash_redirect("/cloud/node/" + quoted(path), gettext(
        ctx.language, message, name=path.rsplit("/", 1)[-1]))
