"""MyVOSpace: every user's private storage tree, one set of nodes behind three doors
(VOSpace, WebDAV, the web file browser). Bytes live in the storage layer (`ac://vos/...`)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, aliased, mapped_column

from astrocloud.core.db import Base, utcnow
from astrocloud.core.identity.models import GroupMember
from astrocloud.core.security.resources import BOOL, INT, Attr, Collection, register_resource

NODE_KINDS = ("container", "data", "link")


def _covers(ancestor_path, path):
    """SQL: `ancestor_path` is `path` or one of its ancestors (an exact prefix test, no LIKE,
    so names with % or _ are safe)."""
    return sa.or_(ancestor_path == path,
                  sa.func.substr(path, 1, sa.func.length(ancestor_path) + 1)
                  == ancestor_path + "/")


def _sharers(model, write_only: bool):
    shared = aliased(Node)
    stmt = (sa.select(GroupMember.user_id)
            .join(NodeShare, NodeShare.group_id == GroupMember.group_id)
            .join(shared, shared.id == NodeShare.node_id)
            .where(_covers(shared.path, model.path)))
    return stmt.where(NodeShare.write.is_(True)) if write_only else stmt


def _python_sharers(node, write_only: bool) -> list[int]:
    from sqlalchemy.orm import object_session

    session = object_session(node)
    if session is None:
        return []
    return list(session.scalars(_sharers(Node, write_only).where(Node.id == node.id)))


def _published_sql(model):
    shared = aliased(Node)
    return sa.exists(sa.select(shared.id).where(shared.public_read.is_(True),
                                                _covers(shared.path, model.path)))


def _published_python(node) -> bool:
    from sqlalchemy.orm import object_session

    session = object_session(node)
    if session is None:
        return bool(node.public_read)
    return bool(session.scalar(sa.select(_published_sql(Node)).where(Node.id == node.id)))


@register_resource("vos_node", extra=lambda: {
    "reader_ids": Collection(INT, python=lambda n: _python_sharers(n, False),
                             sql=lambda m: _sharers(m, False),
                             doc="users of groups this node (or a folder above it) is shared "
                                 "with"),
    "writer_ids": Collection(INT, python=lambda n: _python_sharers(n, True),
                             sql=lambda m: _sharers(m, True),
                             doc="users of groups it is shared with read-write"),
    "published": Attr(BOOL, python=_published_python, sql=_published_sql, nullable=False,
                      doc="this node or a folder above it is public"),
})
class Node(Base):
    """A container, data or link node of a user's space: path "alice/dir/x.fits"."""

    __tablename__ = "vos_nodes"
    __table_args__ = (sa.UniqueConstraint("parent_id", "name"),
                      sa.Index("ix_vos_nodes_owner", "owner_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(sa.String(1024), unique=True)
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("vos_nodes.id",
                                                                ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(255))
    kind: Mapped[str] = mapped_column(sa.String(16))
    file_id: Mapped[int | None] = mapped_column(sa.ForeignKey("stored_files.id",
                                                              ondelete="SET NULL"))
    size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    content_type: Mapped[str] = mapped_column(sa.String(200), default="")
    link_target: Mapped[str | None] = mapped_column(sa.String(2048))
    public_read: Mapped[bool] = mapped_column(default=False)
    properties: Mapped[str] = mapped_column(sa.Text, default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}

    @property
    def is_container(self) -> bool:
        return self.kind == "container"

    @property
    def owner_name(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def etag(self) -> str:
        """The node's HTTP entity tag (every door's ETag): it changes with every version."""
        return f'"{self.id}-{self.version}"'


class NodeShare(Base):
    """A node (and everything under it) shared with a group, to read or to read and write."""

    __tablename__ = "vos_node_shares"
    __table_args__ = (sa.UniqueConstraint("node_id", "group_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[int] = mapped_column(sa.ForeignKey("vos_nodes.id", ondelete="CASCADE"),
                                         index=True)
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    write: Mapped[bool] = mapped_column(default=False)


class StorageQuota(Base):
    """A user's space: bytes used (kept up to date with every change) and an optional
    quota set by an admin (otherwise the configured default)."""

    __tablename__ = "vos_quotas"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    used_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    quota_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)


class DavLock(Base):
    """A WebDAV write lock (RFC 4918 class 2) on a node path, shared by every server process.

    The token is stored as issued (an opaque `urn:uuid:` URI), not hashed: it is no credential.
    RFC 4918 publishes it to anyone who may read the node (DAV:lockdiscovery), and submitting
    it only counts for the user who holds the lock (`user_id`), so knowing it grants nothing.
    Locks are kept by path, as WebDAV names them; deleting or moving a node drops the locks on
    it and inside it. A lock past `expires_at` is ignored, and purged by the next LOCK."""

    __tablename__ = "vos_dav_locks"
    __table_args__ = (sa.Index("ix_vos_dav_locks_path", "path"),
                      sa.Index("ix_vos_dav_locks_expires_at", "expires_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(sa.String(100), unique=True)
    path: Mapped[str] = mapped_column(sa.String(1024))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(sa.String(16))  # exclusive | shared
    depth: Mapped[str] = mapped_column(sa.String(16))  # 0 | infinity
    owner_xml: Mapped[str] = mapped_column(sa.Text, default="")  # the client's DAV:owner
    timeout_seconds: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]

    def covers(self, path: str) -> bool:
        """The lock protects `path`: it is on it, or deep on a folder above it."""
        return path == self.path or (self.depth == "infinity"
                                     and path.startswith(self.path + "/"))

    def inside(self, path: str) -> bool:
        """The lock is on something inside the folder `path`."""
        return self.path.startswith(path + "/")
