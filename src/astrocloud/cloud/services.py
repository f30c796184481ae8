"""MyVOSpace services: one tree per user, behind VOSpace, WebDAV and the web file browser.

Paths are "<username>/<rest>"; the user's root container is "<username>". Bytes go through the
storage layer under `ac://vos/<path>`. Who may read, write or share a node is decided by the
security framework's rules (cloud/policy.toml): owners, groups a node or a folder above it is
shared with, and the public for published nodes. Quotas are enforced while bytes stream in.

Uploads and copies move their bytes with no transaction open and record them in a short
writing one that checks again what may have changed meanwhile (NodeBusy). WebDAV's write locks
are rows of the database, shared by every server process (see "WebDAV locks" below).
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm.exc import StaleDataError

# Imported for its side effect: the channel's periodic jobs are declared wherever the services
# are loaded, so every worker (`astrocloud serve`, `astrocloud worker`) schedules them.
from astrocloud.cloud import tasks as _tasks  # noqa: F401
from astrocloud.cloud.models import DavLock, Node, NodeShare, StorageQuota
from astrocloud.core.db import WRITE_OPTION, utcnow
from astrocloud.core.errors import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from astrocloud.core.i18n import _
from astrocloud.core.identity.models import Group, User
from astrocloud.core.security.operations import Action, OperationSet
from astrocloud.core.service import Context, operation
from astrocloud.core.storage.dal import MAX_PATH, Staged, check_path

URI_PREFIX = "ac://vos/"
# Astronomy's own types first (RFC 4047), before the system's guesses.
KNOWN_TYPES = {".fits": "application/fits", ".fit": "application/fits",
               ".fts": "application/fits", ".fz": "application/fits",
               ".vot": "application/x-votable+xml", ".votable": "application/x-votable+xml"}


def guess_type(path: str) -> str:
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return KNOWN_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or \
        "application/octet-stream"


class CloudOps(OperationSet):
    VOS_READ = Action("cloud.vos.read", resource="vos_node",
                      doc="Read a node of a MyVOSpace tree: list a folder, download a file.")
    VOS_WRITE = Action("cloud.vos.write", resource="vos_node",
                       doc="Create, change, move or delete nodes under a folder.")
    VOS_SHARE = Action("cloud.vos.share", resource="vos_node",
                       doc="Share a node with groups or publish it.")
    VOS_QUOTA = Action("cloud.vos.quota", resource="user",
                       doc="See a user's MyVOSpace usage and quota.")
    VOS_SET_QUOTA = Action("cloud.vos.set_quota", resource="user",
                           doc="Set a user's MyVOSpace quota.")


class DuplicateNode(Conflict):
    code = "duplicate-node"
    title = _("The node exists already")


class NodeBusy(Conflict):
    code = "node-busy"
    title = _("The node was changed by someone else")


class QuotaExceeded(DomainError):
    status = 507
    code = "quota-exceeded"
    title = _("Not enough space")


class NodeLocked(DomainError):
    """A write lock held by someone else (or whose token was not sent) protects the node."""

    status = 423
    code = "node-locked"
    title = _("The node is locked")


class LockConflict(NodeLocked):
    """A new lock would overlap one that is held already (an exclusive lock on either side)."""

    code = "lock-conflict"


class LockNotFound(DomainError):
    """No live lock of the caller's with the token sent covers the node."""

    status = 409
    code = "lock-not-found"
    title = _("No such lock")


# ---- paths ------------------------------------------------------------------------------------


def normalise(path: str) -> str:
    """A node path without leading/trailing slashes, checked against the path rules."""
    if not isinstance(path, str):
        raise ValidationFailed("A path is text.", field="path")
    stripped = path.strip("/")
    if not stripped:
        raise ValidationFailed("Name a user's space: “alice/…”.", field="path")
    if len(stripped.encode("utf-8", "surrogatepass")) > MAX_PATH - 10:
        raise ValidationFailed("A path may be at most %(n)s bytes long.", field="path",
                               n=MAX_PATH - 10)
    return check_path(stripped, field="path")


def parent_of(path: str) -> str | None:
    return path.rsplit("/", 1)[0] if "/" in path else None


def _find(ctx: Context, path: str) -> Node | None:
    return ctx.db.scalar(sa.select(Node).where(Node.path == path))


def _owner_of(ctx: Context, path: str) -> User:
    username = path.split("/", 1)[0]
    user = ctx.db.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise NotFound("There is no space called “%(name)s”.", name=username)
    return user


def _root(ctx: Context, user: User) -> Node:
    root = _find(ctx, user.username)
    if root is not None:
        return root
    values = {"owner_id": user.id, "path": user.username, "name": user.username,
              "kind": "container", "parent_id": None}
    if ctx.db.connection().get_execution_options().get(WRITE_OPTION):
        root = Node(**values)
        ctx.db.add(root)
        ctx.db.flush()
        return root
    # In the reading part of a streaming operation (a first upload or copy into a space), a
    # write would upgrade its read transaction, which SQLite refuses once another writer came
    # first. The root is made in a short writing transaction of its own instead; of two first
    # uses, the loser's insert does nothing.
    ctx.database.begin_write(ctx.db)
    ctx.db.execute(_insert_for(ctx)(Node).values(**values).on_conflict_do_nothing())
    ctx.db.commit()
    return _find(ctx, user.username)


def _node(ctx: Context, path: str, op=CloudOps.VOS_READ) -> Node:
    """The node at `path`, if the caller may read it; NotFound otherwise (nothing leaks)."""
    path = normalise(path)
    node = _find(ctx, path)
    if node is None and "/" not in path:
        owner = _owner_of(ctx, path)
        if owner.id == ctx.subject.id or ctx.subject.system:  # a root appears on first use
            node = _root(ctx, owner)
    if node is None or not ctx.can(CloudOps.VOS_READ, node):
        raise NotFound("There is no node %(path)s, or you may not see it.", path=path)
    ctx.set_target(node)
    if op is not CloudOps.VOS_READ:
        ctx.authorize(node, op)
    return node


def _parent_for_new(ctx: Context, path: str) -> Node:
    parent_path = parent_of(path)
    if parent_path is None:
        raise ValidationFailed("A user's root folder cannot be created or replaced.",
                               field="path")
    parent = _node(ctx, parent_path)
    if not parent.is_container:
        raise ValidationFailed("%(path)s is not a folder.", field="path", path=parent_path)
    ctx.authorize(parent, CloudOps.VOS_WRITE)
    return parent


# ---- quota ------------------------------------------------------------------------------------


def _quota_row(ctx: Context, user_id: int) -> StorageQuota:
    """A user's usage record, made on first use and locked for the rest of the (writing)
    transaction, so that concurrent changes add up instead of overwriting each other."""
    row = ctx.db.get(StorageQuota, user_id, with_for_update=True)
    if row is None:
        # Two first writes may race to create it: the loser's insert does nothing, then it
        # reads (and locks) the winner's row.
        ctx.db.execute(_insert_for(ctx)(StorageQuota).values(user_id=user_id, used_bytes=0)
                       .on_conflict_do_nothing())
        row = ctx.db.get(StorageQuota, user_id, with_for_update=True, populate_existing=True)
    return row


def _insert_for(ctx: Context):
    if ctx.db.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _room(ctx: Context, user_id: int) -> int:
    """Bytes a user may still store, read without writing (a missing row means none used);
    for the read-only first part of a streaming operation."""
    row = ctx.db.get(StorageQuota, user_id)
    if row is None:
        return ctx.settings.vos_default_quota_bytes
    return _quota_of(ctx, row) - row.used_bytes


def _quota_of(ctx: Context, row: StorageQuota) -> int:
    if row.quota_bytes is not None:
        return row.quota_bytes
    return ctx.settings.vos_default_quota_bytes


# ---- reading ----------------------------------------------------------------------------------


@operation(CloudOps.VOS_READ)
def ensure_root(ctx: Context) -> Node:
    """The caller's own root container (made on first use)."""
    user = ctx.db.get(User, ctx.subject.id) if ctx.subject.id else None
    if user is None:
        from astrocloud.core.errors import NotAuthenticated

        raise NotAuthenticated("Please sign in to use your MyVOSpace.")
    root = _root(ctx, user)
    ctx.authorize(root)
    return root


@operation(CloudOps.VOS_READ)
def get_node(ctx: Context, path: str) -> Node:
    """One node, if the caller may read it."""
    return _node(ctx, path)


@operation(CloudOps.VOS_READ)
def list_children(ctx: Context, path: str, *, limit: int | None = None,
                  after: str | None = None) -> list[Node]:
    """A folder's children in name order; `after` (a child's name) pages through large ones."""
    node = _node(ctx, path)
    if not node.is_container:
        raise ValidationFailed("%(path)s is not a folder.", field="path", path=node.path)
    stmt = sa.select(Node).where(Node.parent_id == node.id).order_by(Node.name)
    if after:
        stmt = stmt.where(Node.name > after)
    if limit is not None:
        if not 0 <= limit <= 100_000:
            raise ValidationFailed("limit must be between 0 and 100000.", field="limit")
        stmt = stmt.limit(limit)
    return list(ctx.db.scalars(stmt))


@operation(CloudOps.VOS_READ)
def download(ctx: Context, path: str, *, start: int = 0, end: int | None = None
             ) -> tuple[Node, Iterator[bytes]]:
    """A data node's bytes (or bytes [start, end)), streamed from the nearest good copy."""
    node = _node(ctx, path)
    if node.kind != "data":
        raise ValidationFailed("%(path)s is not a file.", field="path", path=node.path)
    if start < 0 or (end is not None and (end < start or end > node.size)) or \
            (node.size and start >= node.size and end is None and start != 0):
        raise ValidationFailed("The byte range is outside the file.", field="range")
    if node.file_id is None or node.size == 0:
        return node, iter(())
    from astrocloud.core.storage.models import StoredFile
    from astrocloud.core.storage.tasks import mark_bad

    record = ctx.db.get(StoredFile, node.file_id)
    runtime = ctx.runtime
    stream = runtime.storage.open(ctx.db, record, start=start, end=end,
                                  on_bad_replica=lambda rid, why: mark_bad(runtime, rid, why))
    return node, stream


@operation(CloudOps.VOS_QUOTA)
def usage(ctx: Context, username: str | None = None) -> dict:
    """Bytes used and the quota of a user's space (one's own by default)."""
    if username is None and ctx.subject.id is None:
        from astrocloud.core.errors import NotAuthenticated

        raise NotAuthenticated("Please sign in to use your MyVOSpace.")
    user = ctx.db.get(User, ctx.subject.id) if username is None else \
        ctx.db.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise NotFound("There is no user called “%(name)s”.", name=username or "")
    ctx.authorize(user)
    row = _quota_row(ctx, user.id)
    return {"used": row.used_bytes, "quota": _quota_of(ctx, row)}


@operation(CloudOps.VOS_SET_QUOTA)
def set_quota(ctx: Context, *, username: str, quota_bytes: int | None) -> dict:
    """An admin's override of a user's quota (None: back to the default)."""
    user = ctx.db.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise NotFound("There is no user called “%(name)s”.", name=username)
    ctx.authorize(user)
    if quota_bytes is not None and not 0 <= quota_bytes <= 2**62:
        raise ValidationFailed("A quota is a number of bytes, 0 or more.", field="quota_bytes")
    row = _quota_row(ctx, user.id)
    row.quota_bytes = quota_bytes
    return {"used": row.used_bytes, "quota": _quota_of(ctx, row)}


# ---- writing ----------------------------------------------------------------------------------


def _new_node(ctx: Context, path: str, kind: str, parent: Node, **values) -> Node:
    if _find(ctx, path) is not None:
        raise DuplicateNode("%(path)s exists already.", path=path)
    node = Node(owner_id=parent.owner_id, path=path, name=path.rsplit("/", 1)[-1], kind=kind,
                parent_id=parent.id, **values)
    ctx.db.add(node)
    parent.updated_at = utcnow()
    ctx.db.flush()
    ctx.set_target(node)
    return node


@operation(CloudOps.VOS_WRITE)
def create_container(ctx: Context, path: str) -> Node:
    """A new folder."""
    path = normalise(path)
    return _new_node(ctx, path, "container", _parent_for_new(ctx, path))


@operation(CloudOps.VOS_WRITE)
def create_link(ctx: Context, path: str, target: str) -> Node:
    """A link node pointing at another node (vos:// or ac://vos/) or any URI."""
    path = normalise(path)
    if not isinstance(target, str) or not 1 <= len(target) <= 2048 or \
            any(ord(c) < 32 for c in target) or ":" not in target:
        raise ValidationFailed("A link target is an absolute URI.", field="target")
    return _new_node(ctx, path, "link", _parent_for_new(ctx, path), link_target=target)


@operation(CloudOps.VOS_WRITE, streaming=True)
def upload(ctx: Context, path: str, chunks: Iterable[bytes], *,
           content_type: str | None = None, max_bytes: int | None = None) -> Node:
    """Create or replace a file. The bytes stream to storage without holding the database;
    the owner's quota (less the size of a file being replaced) bounds them as they arrive."""
    path = normalise(path)
    parent = _parent_for_new(ctx, path)
    existing = _find(ctx, path)
    if existing is not None:
        if existing.kind != "data":
            raise DuplicateNode("%(path)s exists and is not a file.", path=path)
        ctx.authorize(existing, CloudOps.VOS_WRITE)
    # Nothing is written before the transfer: a write here would upgrade a read transaction
    # whose snapshot another upload may have outdated, which SQLite refuses outright.
    room = _room(ctx, parent.owner_id) + (existing.size if existing else 0)
    limit = room if max_bytes is None else min(room, max_bytes)
    if room <= 0:
        raise QuotaExceeded("The space of %(owner)s is full.", owner=parent.owner_name)
    content_type = (content_type or guess_type(path))[:200]
    storage = ctx.runtime.storage
    owner_id, parent_id, expected_version = parent.owner_id, parent.id, \
        existing.version if existing else None
    ctx.db.commit()  # nothing is held while the bytes stream
    try:
        staged = storage.stage(ctx.db, URI_PREFIX + path, chunks, max_bytes=limit)
    except ValidationFailed:
        if max_bytes is not None and limit == max_bytes and max_bytes < room:
            raise
        raise QuotaExceeded("The upload does not fit in the space of %(owner)s.",
                            owner=parent.owner_name) from None
    ctx.begin_write()
    ctx.db.expire_all()  # what we read before the transfer may have changed since
    try:
        node = _record_upload(ctx, path, staged, owner_id, parent_id, expected_version,
                              content_type)
    except StaleDataError:
        ctx.db.rollback()
        storage.discard(ctx.db, staged)
        raise NodeBusy("%(path)s was changed while this upload ran; try again.",
                       path=path) from None
    except BaseException:
        ctx.db.rollback()
        storage.discard(ctx.db, staged)
        raise
    return node


def _record_upload(ctx, path, staged, owner_id, parent_id, expected_version, content_type):
    quota_row = _quota_row(ctx, owner_id)
    node = _find(ctx, path)
    if node is not None and (node.kind != "data" or node.version != expected_version):
        raise NodeBusy("%(path)s was changed while this upload ran; try again.", path=path)
    if node is None and expected_version is not None:
        raise NodeBusy("%(path)s was removed while this upload ran; try again.", path=path)
    parent = ctx.db.get(Node, parent_id)
    if parent is None:
        raise NodeBusy("The folder of %(path)s was removed while this upload ran.", path=path)
    old_size = node.size if node is not None else 0
    if quota_row.used_bytes - old_size + staged.size > _quota_of(ctx, quota_row):
        raise QuotaExceeded("The upload does not fit in the space of %(owner)s.",
                            owner=path.split("/", 1)[0])
    record = ctx.runtime.storage.record(ctx.db, staged, owner_id=owner_id,
                                        content_type=content_type)
    if node is None:
        node = _new_node(ctx, path, "data", parent)
    node.file_id = record.id
    node.size = staged.size
    node.content_type = content_type
    node.updated_at = utcnow()
    parent.updated_at = utcnow()
    quota_row.used_bytes += staged.size - old_size
    ctx.db.flush()
    ctx.set_target(node)
    return node


def _subtree(ctx: Context, node: Node) -> list[Node]:
    prefix = node.path + "/"
    return list(ctx.db.scalars(sa.select(Node).where(
        sa.func.substr(Node.path, 1, len(prefix)) == prefix).order_by(Node.path)))


@operation(CloudOps.VOS_WRITE)
def delete(ctx: Context, path: str) -> None:
    """Delete a node (a folder with everything in it); the bytes go after the commit."""
    node = _node(ctx, path)
    if node.parent_id is None:
        raise ValidationFailed("A user's root folder cannot be deleted.", field="path")
    ctx.authorize(node, CloudOps.VOS_WRITE)
    from astrocloud.core.storage.models import StoredFile

    freed = 0
    for item in [*_subtree(ctx, node), node]:
        if item.kind == "data" and item.file_id is not None:
            record = ctx.db.get(StoredFile, item.file_id)
            if record is not None:
                ctx.runtime.storage.delete(ctx.db, record)
            freed += item.size
    parent = ctx.db.get(Node, node.parent_id)
    quota_row = _quota_row(ctx, node.owner_id)
    quota_row.used_bytes = max(0, quota_row.used_bytes - freed)
    ctx.db.execute(sa.delete(Node).where(Node.id.in_([n.id for n in _subtree(ctx, node)])))
    ctx.db.delete(node)
    _drop_locks(ctx, node.path)
    parent.updated_at = utcnow()


def _destination(ctx: Context, src: Node, dest: str) -> tuple[str, Node]:
    dest = normalise(dest)
    if dest == src.path or dest.startswith(src.path + "/"):
        raise ValidationFailed("A node cannot be moved or copied into itself.", field="dest")
    parent = _parent_for_new(ctx, dest)
    if _find(ctx, dest) is not None:
        raise DuplicateNode("%(path)s exists already.", path=dest)
    return dest, parent


@operation(CloudOps.VOS_WRITE)
def move(ctx: Context, src: str, dest: str) -> Node:
    """Move or rename a node (within one user's space; bytes do not move)."""
    node = _node(ctx, src)
    if node.parent_id is None:
        raise ValidationFailed("A user's root folder cannot be moved.", field="src")
    ctx.authorize(node, CloudOps.VOS_WRITE)
    dest, parent = _destination(ctx, node, dest)
    if parent.owner_id != node.owner_id:
        raise ValidationFailed("Nodes move only within one user's space; copy them instead.",
                               field="dest")
    _drop_locks(ctx, node.path)  # a lock names a path: it does not follow the node (RFC 4918)
    old_prefix = node.path + "/"
    for child in _subtree(ctx, node):
        child.path = dest + "/" + child.path[len(old_prefix):]
    old_parent = ctx.db.get(Node, node.parent_id)
    node.path, node.name, node.parent_id = dest, dest.rsplit("/", 1)[-1], parent.id
    node.updated_at = old_parent.updated_at = parent.updated_at = utcnow()
    ctx.db.flush()
    return node


@dataclass(frozen=True)
class _CopyItem:
    """What a copy read of one source node before its bytes moved."""

    node_id: int
    version: int
    path: str  # the copy's path
    kind: str
    content_type: str
    link_target: str | None
    properties: str
    file_id: int | None
    size: int


@operation(CloudOps.VOS_WRITE, streaming=True)
def copy(ctx: Context, src: str, dest: str) -> Node:
    """Copy a node (a folder recursively); the copy's bytes count against its owner's quota.

    Like `upload`, the bytes move without holding the database: the sources are read and
    checked first, the copies staged outside any transaction, then a short writing transaction
    re-checks (the sources unchanged, the destination still free, the quota still enough) and
    records them. A change in between is NodeBusy; staged bytes are removed on any failure."""
    node = _node(ctx, src)
    dest, parent = _destination(ctx, node, dest)
    items = [node, *(_subtree(ctx, node) if node.is_container else [])]
    plan = [_CopyItem(i.id, i.version, dest + i.path[len(node.path):], i.kind, i.content_type,
                      i.link_target, i.properties, i.file_id, i.size) for i in items]
    total = sum(i.size for i in plan if i.kind == "data")
    if total > _room(ctx, parent.owner_id):
        raise QuotaExceeded("The copy does not fit in the space of %(owner)s.",
                            owner=parent.owner_name)
    src_path, owner_id, parent_id = node.path, parent.owner_id, parent.id
    ctx.db.commit()  # nothing is held while the bytes move
    storage = ctx.runtime.storage
    staged: dict[str, Staged] = {}
    try:
        for item in plan:
            if item.kind == "data" and item.file_id is not None:
                staged[item.path] = _stage_copy(ctx, item, src_path)
                ctx.db.commit()  # no snapshot kept from one file to the next
        ctx.begin_write()
        ctx.db.expire_all()  # what we read before the transfer may have changed since
        return _record_copy(ctx, src_path, dest, plan, staged, owner_id, parent_id)
    except BaseException as exc:
        ctx.db.rollback()
        for done in staged.values():
            storage.discard(ctx.db, done)
        if isinstance(exc, StaleDataError):
            raise NodeBusy("%(path)s was changed while it was being copied; try again.",
                           path=src_path) from None
        raise


def _stage_copy(ctx: Context, item: _CopyItem, src_path: str) -> Staged:
    """Stream one source file's bytes to a fresh staged object for its copy."""
    from astrocloud.core.storage.models import StoredFile
    from astrocloud.core.storage.tasks import mark_bad

    record = ctx.db.get(StoredFile, item.file_id)
    if record is None:  # replaced or deleted since it was read
        raise NodeBusy("%(path)s was changed while it was being copied; try again.",
                       path=src_path)
    runtime = ctx.runtime
    chunks = runtime.storage.open(ctx.db, record,
                                  on_bad_replica=lambda rid, why: mark_bad(runtime, rid, why))
    return runtime.storage.stage(ctx.db, URI_PREFIX + item.path, chunks)


def _record_copy(ctx: Context, src_path: str, dest: str, plan: list[_CopyItem],
                 staged: dict[str, Staged], owner_id: int, parent_id: int) -> Node:
    quota_row = _quota_row(ctx, owner_id)
    source = _find(ctx, src_path)
    now_there = {} if source is None else \
        {n.id: n.version for n in [source, *_subtree(ctx, source)]}
    if now_there != {i.node_id: i.version for i in plan}:
        raise NodeBusy("%(path)s was changed while it was being copied; try again.",
                       path=src_path)
    parent = ctx.db.get(Node, parent_id)
    if parent is None:
        raise NodeBusy("The folder of %(path)s was removed while the copy ran.", path=dest)
    if _find(ctx, dest) is not None:
        raise NodeBusy("%(path)s was created by someone else while the copy ran.", path=dest)
    total = sum(s.size for s in staged.values())
    if quota_row.used_bytes + total > _quota_of(ctx, quota_row):
        raise QuotaExceeded("The copy does not fit in the space of %(owner)s.",
                            owner=dest.split("/", 1)[0])
    storage = ctx.runtime.storage
    created: dict[str, Node] = {}
    for item in plan:
        new_parent = parent if item.path == dest else created[parent_of(item.path)]
        copy_node = _new_node(ctx, item.path, item.kind, new_parent,
                              content_type=item.content_type, link_target=item.link_target,
                              properties=item.properties)
        if item.path in staged:
            record = storage.record(ctx.db, staged[item.path], owner_id=owner_id,
                                    content_type=item.content_type)
            copy_node.file_id, copy_node.size = record.id, staged[item.path].size
        created[item.path] = copy_node
    quota_row.used_bytes += total
    ctx.db.flush()
    ctx.set_target(created[dest])
    return created[dest]


@operation(CloudOps.VOS_SHARE)
def set_properties(ctx: Context, path: str, *, public_read: bool | None = None,
                   group_read: list[str] | None = None, group_write: list[str] | None = None,
                   properties: dict[str, str] | None = None) -> Node:
    """Publish a node, share it with groups (to read, or to read and write), or set other
    properties. Only the owner (or an admin) may."""
    node = _node(ctx, path)
    ctx.authorize(node, CloudOps.VOS_SHARE)
    if public_read is not None:
        node.public_read = bool(public_read)
    if group_read is not None or group_write is not None:
        wanted: dict[int, bool] = {}
        for names, write in ((group_read or [], False), (group_write or [], True)):
            for name in names:
                group = ctx.db.scalar(sa.select(Group).where(Group.name == name))
                if group is None:
                    raise ValidationFailed("There is no group called “%(name)s”.",
                                           field="groups", name=name)
                wanted[group.id] = wanted.get(group.id, False) or write
        current = {s.group_id: s for s in ctx.db.scalars(
            sa.select(NodeShare).where(NodeShare.node_id == node.id))}
        keep_read = group_read is not None
        keep_write = group_write is not None
        for group_id, share in current.items():
            if group_id in wanted:
                share.write = wanted.pop(group_id)
            elif (keep_read and not share.write) or (keep_write and share.write):
                ctx.db.delete(share)
        for group_id, write in wanted.items():
            ctx.db.add(NodeShare(node_id=node.id, group_id=group_id, write=write))
    if properties is not None:
        if len(properties) > 100 or any(len(k) > 500 or len(str(v)) > 5000
                                        for k, v in properties.items()):
            raise ValidationFailed("Too many or too long properties.", field="properties")
        merged = json.loads(node.properties or "{}")
        for key, value in properties.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = str(value)
        node.properties = json.dumps(merged, sort_keys=True)
    node.updated_at = utcnow()
    ctx.db.flush()
    return node


def shares_of(ctx: Context, node: Node) -> tuple[list[str], list[str]]:
    """(groups that may read, groups that may write) this node itself."""
    rows = ctx.db.execute(sa.select(Group.name, NodeShare.write)
                          .join(NodeShare, NodeShare.group_id == Group.id)
                          .where(NodeShare.node_id == node.id).order_by(Group.name)).all()
    return [n for n, w in rows if not w], [n for n, w in rows if w]


# ---- WebDAV locks -----------------------------------------------------------------------------
#
# Write locks live in the database so that every server process sees the same ones. Taking a
# lock is serialised per user space: SQLite's writing transaction (BEGIN IMMEDIATE) admits one
# writer at a time, and on PostgreSQL the space's root node is locked FOR UPDATE first, so of
# two LOCK requests for overlapping paths, in any processes, exactly one wins.

LOCK_SCOPES = ("exclusive", "shared")
LOCK_DEPTHS = ("0", "infinity")


def _lock_scope(path: str) -> list[str]:
    """`path` and every folder above it."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def live_locks(ctx: Context, path: str, *, inside: bool = False) -> list[DavLock]:
    """The unexpired locks on `path` and on the folders above it; with `inside`, also those
    on anything within it. The caller has already found `path` readable: a lock says no more
    about a node than the node itself."""
    on_path = DavLock.path.in_(_lock_scope(path))
    if inside:
        prefix = path + "/"
        on_path = sa.or_(on_path, sa.func.substr(DavLock.path, 1, len(prefix)) == prefix)
    return list(ctx.db.scalars(sa.select(DavLock).where(on_path, DavLock.expires_at > utcnow())
                               .order_by(DavLock.id)))


def protecting(locks: Iterable[DavLock], path: str, *, tree: bool = False,
               membership: bool = False) -> list[DavLock]:
    """Of `locks`, those that protect `path`: its own and its ancestors' deep ones; with
    `tree`, those inside it too; with `membership`, any lock on its folder (adding or removing
    a member changes the folder)."""
    parent = parent_of(path)
    return [lk for lk in locks if lk.covers(path) or (tree and lk.inside(path))
            or (membership and parent is not None and lk.path == parent)]


def check_unlocked(ctx: Context, path: str, tokens: set[str], *, tree: bool = False,
                   membership: bool = False) -> None:
    """Raise NodeLocked unless every lock protecting `path` is the caller's and its token was
    submitted (see `protecting` for `tree` and `membership`)."""
    locks = live_locks(ctx, path, inside=tree)
    for lk in protecting(locks, path, tree=tree, membership=membership):
        if lk.token not in tokens or lk.user_id != ctx.subject.id:
            raise NodeLocked("%(path)s is locked.", path=lk.path)


def _serialise_locking(ctx: Context, path: str) -> None:
    """Queue behind any other transaction taking a lock in the same space (see above)."""
    ctx.db.execute(sa.select(Node.id).where(Node.path == path.split("/", 1)[0])
                   .with_for_update())


@operation(CloudOps.VOS_WRITE)
def lock(ctx: Context, path: str, *, scope: str = "exclusive", depth: str = "infinity",
         owner_xml: str = "", timeout: int = 3600) -> DavLock:
    """Take a write lock on a node the caller may write (423 LockConflict when an overlapping
    lock is held and either is exclusive). Expired locks are purged on the way."""
    if scope not in LOCK_SCOPES or depth not in LOCK_DEPTHS or not 0 < timeout <= 2**31 - 1:
        raise ValidationFailed("A lock is exclusive or shared, of depth 0 or infinity, for a "
                               "positive number of seconds.", field="lock")
    node = _node(ctx, path, CloudOps.VOS_WRITE)
    _serialise_locking(ctx, node.path)
    now = utcnow()
    ctx.db.execute(sa.delete(DavLock).where(DavLock.expires_at <= now))
    for held in live_locks(ctx, node.path, inside=depth == "infinity"):
        clash = held.covers(node.path) or (depth == "infinity" and held.inside(node.path))
        if clash and "exclusive" in (held.scope, scope):
            raise LockConflict("%(path)s is locked already.", path=held.path)
    new = DavLock(token=f"urn:uuid:{uuid.uuid4()}", path=node.path, user_id=ctx.subject.id,
                  scope=scope, depth=depth, owner_xml=owner_xml, timeout_seconds=timeout,
                  created_at=now, expires_at=now + dt.timedelta(seconds=timeout))
    ctx.db.add(new)
    ctx.db.flush()
    return new


@operation(CloudOps.VOS_WRITE)
def refresh_lock(ctx: Context, path: str, tokens: set[str], timeout: int) -> DavLock:
    """Give the caller's live lock covering `path` whose token was sent a new timeout."""
    node = _node(ctx, path, CloudOps.VOS_WRITE)
    for held in live_locks(ctx, node.path):
        if held.token in tokens and held.covers(node.path) and held.user_id == ctx.subject.id:
            held.timeout_seconds = timeout
            held.expires_at = utcnow() + dt.timedelta(seconds=timeout)
            ctx.db.flush()
            return held
    raise LockNotFound("No lock of yours on %(path)s has the token sent.", path=node.path)


@operation(CloudOps.VOS_WRITE)
def unlock(ctx: Context, path: str, token: str) -> None:
    """Release a lock: only its holder may, naming a node it covers."""
    node = _node(ctx, path)
    held = ctx.db.scalar(sa.select(DavLock).where(DavLock.token == token,
                                                  DavLock.expires_at > utcnow()))
    if held is None or not held.covers(node.path):
        raise LockNotFound("No lock with this token covers %(path)s.", path=node.path)
    if held.user_id != ctx.subject.id:
        raise PermissionDenied("This lock belongs to someone else.",
                               operation=CloudOps.VOS_WRITE.name)
    ctx.db.delete(held)


def _drop_locks(ctx: Context, path: str) -> None:
    """Forget the locks on a node and inside it (it is being deleted or moved away)."""
    prefix = path + "/"
    ctx.db.execute(sa.delete(DavLock).where(sa.or_(
        DavLock.path == path, sa.func.substr(DavLock.path, 1, len(prefix)) == prefix)))
