"""JSON shapes of the MyVOSpace API under /api/v1/vos (requests forbid unknown fields), and
what every door serves a file node as."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from astrocloud.cloud.models import Node
from astrocloud.core.web.downloads import ServedFile
from astrocloud.core.web.inputs import StrictModel


def served_file(node: Node) -> ServedFile:
    """A data node as the shared file-serving answer (`core.web.downloads`) needs it."""
    return ServedFile(size=node.size, etag=node.etag, modified=node.updated_at,
                      content_type=node.content_type, name=node.name)

GroupNames = list[str]


class NodeOut(BaseModel):
    """A node of a user's space. `url` is where its bytes (a file) or its listing (a folder)
    are fetched from through this API."""

    path: str
    name: str
    kind: Literal["container", "data", "link"]
    size: int
    content_type: str
    link_target: str | None = None
    public_read: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
    url: str
    # the groups this node itself is shared with (reported to whoever may share it)
    group_read: GroupNames | None = None
    group_write: GroupNames | None = None


class NodeListing(BaseModel):
    """A node and one page of its children in name order; pass `next_after` as `after` to
    fetch the next page (null when this is the last one)."""

    node: NodeOut
    children: list[NodeOut]
    next_after: str | None = None


class MoveIn(StrictModel):
    src: str = Field(min_length=1, max_length=1100, examples=["alice/m31/r.fits"])
    dest: str = Field(min_length=1, max_length=1100, examples=["alice/archive/r.fits"])


class ShareIn(StrictModel):
    """What to change; an omitted field stays as it is. A list replaces the groups of its kind:
    `group_read: []` stops sharing to read with every group."""

    public_read: bool | None = None
    group_read: list[str] | None = Field(default=None, max_length=100)
    group_write: list[str] | None = Field(default=None, max_length=100)


class UsageOut(BaseModel):
    used: int = Field(description="bytes used")
    quota: int = Field(description="bytes allowed")
