"""A copy moves its bytes without holding the database: other writers carry on while it runs,
and what changed under it in the meantime is reported, with nothing of the copy left behind.

The copy's source is read from a real site agent behind a slow link: a gate in front of the
agent holds every object read until the test opens it, so the copy is caught mid-transfer
for as long as the test needs."""

from __future__ import annotations

import concurrent.futures
import os
import threading
import uuid

import anyio
import pytest
import sqlalchemy as sa

from astrocloud.cloud import services as vos
from astrocloud.cloud.models import Node
from astrocloud.core.identity.models import User
from astrocloud.core.security.engine import load_subject
from astrocloud.core.service import Context
from astrocloud.core.storage.agent import create_agent
from astrocloud.core.storage.backends import open_store
from astrocloud.core.storage.models import PlacementRule, Site
from tests.support.server import LiveServer, free_port

DATA = os.urandom(300_000)
WAIT = 20  # seconds: far longer than any of these steps takes when nothing blocks it


class SlowLink:
    """ASGI in front of a site agent: object reads wait until the link is opened."""

    def __init__(self, app):
        self.app = app
        self.reading = threading.Event()  # a read has arrived and is being held
        self.opened = threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and \
                scope["path"].startswith("/objects/"):
            self.reading.set()
            await anyio.to_thread.run_sync(self.opened.wait)
        await self.app(scope, receive, send)


@pytest.fixture
def slow_site(settings, database):
    """The only storage site: a site agent (in this process) behind a SlowLink."""
    folder = settings.home / "sites" / f"slow-{uuid.uuid4().hex[:8]}"
    agent = create_agent("slow", open_store(f"file://{folder}"),
                         settings.effective_secret_key())
    link = SlowLink(agent)
    server = LiveServer(link, free_port()).start()
    with database.session() as db:
        db.execute(sa.delete(Site))
        db.add(Site(name="slow", city="Slow", storage_url=server.url, position=0))
        db.execute(sa.update(PlacementRule).values(copies=1))
    link.folder = folder
    yield link
    link.opened.set()  # never leave a request hanging
    server.stop()


@pytest.fixture
def act_as(users, runtime):
    """act_as("alice") → a new service Context acting as that (new or existing) user; each
    call gives a context of its own, for use in its own thread."""
    made: list[Context] = []

    def make(name: str) -> Context:
        system = users.system
        user = system.db.scalar(sa.select(User).where(User.username == name)) or \
            users.create(name)
        system.db.commit()
        ctx = Context(database=runtime.database, settings=runtime.settings, runtime=runtime,
                      via="api")
        ctx.subject = load_subject(ctx.db, ctx.db.get(User, user.id))
        ctx.db.commit()
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture
def pool():
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        yield executor


def chunks(data: bytes = DATA, size: int = 65536):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def content(ctx: Context, path: str) -> bytes:
    return b"".join(vos.download(ctx, path)[1])


def objects(link: SlowLink) -> set[str]:
    """The objects stored at the slow site."""
    return {str(p.relative_to(link.folder)) for p in link.folder.rglob("*") if p.is_file()}


def paths(database, prefix: str) -> list[str]:
    with database.session(write=False) as db:
        return list(db.scalars(sa.select(Node.path).where(Node.path.startswith(prefix))
                               .order_by(Node.path)))


def start_copy(pool, ctx: Context, src: str, dest: str, link: SlowLink):
    """Start a copy and return once it is reading its source (held by the slow link)."""
    copying = pool.submit(vos.copy, ctx, src, dest)
    assert link.reading.wait(WAIT), "the copy never read its source"
    assert not copying.done()
    return copying


def test_a_long_copy_does_not_block_another_users_upload(slow_site, act_as, pool):
    alice, bob = act_as("alice"), act_as("bob")
    vos.upload(alice, "alice/big.fits", chunks())
    copying = start_copy(pool, alice, "alice/big.fits", "alice/copy.fits", slow_site)
    upload = pool.submit(vos.upload, bob, "bob/note.txt", chunks(b"meanwhile"))
    assert upload.result(timeout=WAIT).size == len(b"meanwhile")
    assert not copying.done()  # still held mid-transfer
    slow_site.opened.set()
    assert copying.result(timeout=WAIT).size == len(DATA)
    assert content(alice, "alice/copy.fits") == DATA


def test_a_long_copy_does_not_block_its_owners_other_writes(slow_site, act_as, pool):
    alice = act_as("alice")
    vos.upload(alice, "alice/big.fits", chunks())
    copying = start_copy(pool, alice, "alice/big.fits", "alice/copy.fits", slow_site)
    other = act_as("alice")
    upload = pool.submit(vos.upload, other, "alice/other.txt", chunks(b"meanwhile"))
    assert upload.result(timeout=WAIT).size == len(b"meanwhile")
    slow_site.opened.set()
    copying.result(timeout=WAIT)
    assert vos.usage(other)["used"] == 2 * len(DATA) + len(b"meanwhile")


def test_a_folder_changed_during_its_copy_is_node_busy_and_nothing_stays(slow_site, act_as,
                                                                         pool, database):
    alice = act_as("alice")
    vos.create_container(alice, "alice/run")
    vos.upload(alice, "alice/run/a.fits", chunks())
    copying = start_copy(pool, alice, "alice/run", "alice/run-copy", slow_site)
    vos.upload(act_as("alice"), "alice/run/b.fits", chunks(b"late"))
    before = objects(slow_site)
    slow_site.opened.set()
    with pytest.raises(vos.NodeBusy):
        copying.result(timeout=WAIT)
    assert paths(database, "alice/run-copy") == []
    assert objects(slow_site) == before  # the staged copy of a.fits is gone
    assert vos.usage(alice)["used"] == len(DATA) + len(b"late")


def test_a_destination_taken_during_a_copy_is_node_busy(slow_site, act_as, pool):
    alice = act_as("alice")
    vos.upload(alice, "alice/a.fits", chunks())
    copying = start_copy(pool, alice, "alice/a.fits", "alice/b.fits", slow_site)
    vos.upload(act_as("alice"), "alice/b.fits", chunks(b"first"))
    before = objects(slow_site)
    slow_site.opened.set()
    with pytest.raises(vos.NodeBusy):
        copying.result(timeout=WAIT)
    assert content(alice, "alice/b.fits") == b"first"
    assert objects(slow_site) == before


def test_space_used_up_during_a_copy_is_quota_exceeded(slow_site, act_as, pool, system):
    alice = act_as("alice")
    vos.upload(alice, "alice/a.fits", chunks())
    vos.set_quota(system, username="alice", quota_bytes=2 * len(DATA) + 1000)
    copying = start_copy(pool, alice, "alice/a.fits", "alice/b.fits", slow_site)
    vos.upload(act_as("alice"), "alice/c.bin", chunks(os.urandom(len(DATA))))
    before = objects(slow_site)
    slow_site.opened.set()
    with pytest.raises(vos.QuotaExceeded):
        copying.result(timeout=WAIT)
    assert vos.usage(alice)["used"] == 2 * len(DATA)
    assert objects(slow_site) == before


def test_a_copied_folder_keeps_its_tree_and_counts_against_the_quota(slow_site, act_as):
    slow_site.opened.set()
    alice = act_as("alice")
    vos.create_container(alice, "alice/m31")
    vos.create_container(alice, "alice/m31/raw")
    vos.upload(alice, "alice/m31/raw/r.fits", chunks())
    vos.create_link(alice, "alice/m31/latest", "ac://vos/alice/m31/raw/r.fits")
    vos.upload(alice, "alice/m31/empty.txt", iter(()))
    copied = vos.copy(alice, "alice/m31", "alice/m31-b")
    assert copied.kind == "container"
    assert [n.name for n in vos.list_children(alice, "alice/m31-b")] == \
        ["empty.txt", "latest", "raw"]
    assert content(alice, "alice/m31-b/raw/r.fits") == DATA
    assert vos.get_node(alice, "alice/m31-b/latest").link_target == \
        "ac://vos/alice/m31/raw/r.fits"
    assert vos.usage(alice)["used"] == 2 * len(DATA)
