"""MyVOSpace's service layer: one private tree per user, quotas enforced while bytes stream,
sharing with groups, publishing, and moves, copies and deletes that keep storage and the
database consistent."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from astrocloud.cloud import services as vos
from astrocloud.cloud.models import Node, StorageQuota
from astrocloud.core.errors import NotAuthenticated, NotFound, PermissionDenied, ValidationFailed
from astrocloud.core.identity import services as identity
from astrocloud.core.security.engine import Subject, load_subject
from astrocloud.core.service import Context
from astrocloud.core.storage.models import StoredFile

DATA = os.urandom(200_000)




@pytest.fixture
def as_user(users, runtime):
    """as_user("alice") → a service Context acting as that (new or existing) user."""
    made: dict[str, Context] = {}

    def make(name: str) -> Context:
        if name not in made:
            system = users.system
            user = system.db.scalar(sa.select(identity.User).where(
                identity.User.username == name)) or users.create(name)
            ctx = Context(database=runtime.database, settings=runtime.settings,
                          runtime=runtime, via="api")
            ctx.subject = load_subject(ctx.db, ctx.db.get(identity.User, user.id))
            ctx.db.commit()
            made[name] = ctx
        return made[name]

    yield make
    for ctx in made.values():
        ctx.close()


def chunks(data=DATA, size=65536):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def body(ctx, path, **kw) -> bytes:
    return b"".join(vos.download(ctx, path, **kw)[1])


def used(ctx, name) -> int:
    return vos.usage(ctx, name)["used"] if ctx.subject.username == name else \
        ctx.db.get(StorageQuota, ctx.db.scalar(sa.select(identity.User.id).where(
            identity.User.username == name))).used_bytes


def test_a_users_root_appears_on_first_use(as_user):
    alice = as_user("alice")
    root = vos.get_node(alice, "alice")
    assert root.kind == "container" and root.path == "alice"
    assert vos.list_children(alice, "alice") == []


def test_folders_files_and_listing(as_user):
    alice = as_user("alice")
    vos.create_container(alice, "alice/m31")
    vos.upload(alice, "alice/m31/r.fits", chunks())
    vos.upload(alice, "alice/m31/g.fits", chunks(b"green"))
    assert [n.name for n in vos.list_children(alice, "alice/m31")] == ["g.fits", "r.fits"]
    assert body(alice, "alice/m31/r.fits") == DATA
    assert body(alice, "alice/m31/r.fits", start=5, end=50) == DATA[5:50]
    node = vos.get_node(alice, "alice/m31/r.fits")
    assert node.size == len(DATA) and node.content_type == "application/fits"
    assert vos.usage(alice)["used"] == len(DATA) + 5


def test_listing_pages_through_a_large_folder(as_user):
    alice = as_user("alice")
    vos.create_container(alice, "alice/many")
    for i in range(30):
        vos.create_container(alice, f"alice/many/d{i:03d}")
    first = vos.list_children(alice, "alice/many", limit=10)
    second = vos.list_children(alice, "alice/many", limit=10, after=first[-1].name)
    assert [n.name for n in first + second] == [f"d{i:03d}" for i in range(20)]


def test_a_duplicate_folder_is_refused(as_user):
    alice = as_user("alice")
    vos.create_container(alice, "alice/x")
    with pytest.raises(vos.DuplicateNode):
        vos.create_container(alice, "alice/x")


def test_a_file_needs_an_existing_folder(as_user):
    with pytest.raises(NotFound):
        vos.upload(as_user("alice"), "alice/nowhere/x.fits", chunks())


@pytest.mark.parametrize("path", ["alice/../bob/x", "/alice/./x", "alice//x", "alice/a\x00b",
                                  "alice/" + "n" * 300, "", "alice/a\\b"])
def test_bad_paths_are_refused(as_user, path):
    with pytest.raises((ValidationFailed, NotFound)):
        vos.create_container(as_user("alice"), path)


def test_another_users_space_is_invisible(as_user):
    alice, bob = as_user("alice"), as_user("bob")
    vos.upload(alice, "alice/secret.fits", chunks())
    with pytest.raises(NotFound):
        vos.get_node(bob, "alice/secret.fits")
    with pytest.raises(NotFound):
        vos.upload(bob, "alice/intruder.fits", chunks())
    with pytest.raises(NotFound):
        vos.list_children(bob, "alice")


def test_anonymous_callers_cannot_have_a_space(runtime):
    ctx = Context(database=runtime.database, settings=runtime.settings, runtime=runtime,
                  subject=Subject.anonymous())
    with pytest.raises(NotAuthenticated):
        vos.ensure_root(ctx)
    ctx.close()


# ---- quotas -----------------------------------------------------------------------------------


def test_an_upload_over_quota_is_stopped_while_streaming_and_leaves_nothing(as_user, users,
                                                                            settings):
    alice = as_user("alice")
    vos.set_quota(users.system, username="alice", quota_bytes=100_000)
    files_before = {p for p in (settings.home / "sites").rglob("*") if p.is_file()}
    with pytest.raises(vos.QuotaExceeded):
        vos.upload(alice, "alice/big.fits", chunks())
    assert vos.usage(alice)["used"] == 0
    with pytest.raises(NotFound):
        vos.get_node(alice, "alice/big.fits")
    assert {p for p in (settings.home / "sites").rglob("*") if p.is_file()} == files_before


def test_replacing_a_file_counts_only_the_difference(as_user, users):
    alice = as_user("alice")
    vos.set_quota(users.system, username="alice", quota_bytes=300_000)
    vos.upload(alice, "alice/f.fits", chunks())
    bigger = os.urandom(250_000)  # 200 kB + 250 kB > quota, but it replaces the 200 kB
    vos.upload(alice, "alice/f.fits", chunks(bigger))
    assert vos.usage(alice)["used"] == 250_000
    assert body(alice, "alice/f.fits") == bigger


def test_users_cannot_raise_their_own_quota(as_user):
    with pytest.raises(PermissionDenied):
        vos.set_quota(as_user("alice"), username="alice", quota_bytes=10**15)


# ---- sharing and publishing -------------------------------------------------------------------


@pytest.fixture
def team(as_user):
    alice, bob = as_user("alice"), as_user("bob")
    group = identity.create_group(alice, name="m31-team", title="M31 team")
    identity.add_member(alice, group_id=group.id, username="bob")
    bob.subject = load_subject(bob.db, bob.db.get(identity.User, bob.subject.id))
    bob.db.commit()
    vos.create_container(alice, "alice/shared")
    vos.upload(alice, "alice/shared/a.fits", chunks())
    return alice, bob


def test_a_folder_shared_to_read_opens_everything_under_it(team):
    alice, bob = team
    vos.set_properties(alice, "alice/shared", group_read=["m31-team"])
    assert body(bob, "alice/shared/a.fits") == DATA
    with pytest.raises(PermissionDenied):
        vos.upload(bob, "alice/shared/b.fits", chunks())


def test_a_folder_shared_to_write_lets_members_add_files_to_the_owners_quota(team):
    alice, bob = team
    vos.set_properties(alice, "alice/shared", group_write=["m31-team"])
    vos.upload(bob, "alice/shared/b.fits", chunks(b"bob's"))
    assert vos.get_node(alice, "alice/shared/b.fits").owner_id == alice.subject.id
    assert vos.usage(alice)["used"] == len(DATA) + 5


def test_only_the_owner_shares(team):
    alice, bob = team
    vos.set_properties(alice, "alice/shared", group_write=["m31-team"])
    with pytest.raises(PermissionDenied):
        vos.set_properties(bob, "alice/shared", public_read=True)


def test_a_published_file_is_readable_by_anyone(team, runtime):
    alice, _ = team
    vos.set_properties(alice, "alice/shared/a.fits", public_read=True)
    anonymous = Context(database=runtime.database, settings=runtime.settings, runtime=runtime)
    assert body(anonymous, "alice/shared/a.fits") == DATA
    with pytest.raises(NotFound):
        vos.list_children(anonymous, "alice/shared")
    anonymous.close()


# ---- move, copy, delete -----------------------------------------------------------------------


def test_moving_a_folder_moves_everything_under_it(as_user):
    alice = as_user("alice")
    vos.create_container(alice, "alice/a")
    vos.create_container(alice, "alice/a/b")
    vos.upload(alice, "alice/a/b/c.fits", chunks())
    vos.move(alice, "alice/a", "alice/z")
    assert body(alice, "alice/z/b/c.fits") == DATA
    with pytest.raises(NotFound):
        vos.get_node(alice, "alice/a/b/c.fits")


def test_a_folder_cannot_move_into_itself(as_user):
    alice = as_user("alice")
    vos.create_container(alice, "alice/a")
    with pytest.raises(ValidationFailed):
        vos.move(alice, "alice/a", "alice/a/inside")


def test_copying_duplicates_bytes_and_usage(as_user):
    alice = as_user("alice")
    vos.create_container(alice, "alice/a")
    vos.upload(alice, "alice/a/c.fits", chunks())
    vos.copy(alice, "alice/a", "alice/b")
    assert body(alice, "alice/b/c.fits") == DATA
    assert vos.usage(alice)["used"] == 2 * len(DATA)


def test_deleting_a_folder_frees_its_space_and_its_bytes(as_user, runtime):
    alice = as_user("alice")
    vos.create_container(alice, "alice/a")
    vos.upload(alice, "alice/a/c.fits", chunks())
    vos.delete(alice, "alice/a")
    assert vos.usage(alice)["used"] == 0
    with runtime.database.session(write=False) as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 0
        assert db.scalar(sa.select(sa.func.count()).select_from(Node)) == 1  # the root


def test_the_root_cannot_be_deleted(as_user):
    alice = as_user("alice")
    vos.ensure_root(alice)
    with pytest.raises(ValidationFailed):
        vos.delete(alice, "alice")


def test_a_link_node_points_elsewhere(as_user):
    alice = as_user("alice")
    link = vos.create_link(alice, "alice/l", "vos://astrocloud.local!vospace/alice/x")
    assert link.kind == "link" and link.link_target.endswith("alice/x")
    with pytest.raises(ValidationFailed):
        vos.create_link(alice, "alice/bad", "not a uri")


def test_concurrent_uploads_to_one_file_let_one_win_and_tell_the_other(as_user):
    import threading

    alice = as_user("alice")
    vos.upload(alice, "alice/busy.fits", chunks(b"v1"))
    midway, resume = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def slow():
        yield b"slow-first-half "
        midway.set()
        resume.wait(10)
        yield b"slow-second-half"

    def slow_upload():
        ctx = Context(database=alice.database, settings=alice.settings, runtime=alice.runtime,
                      subject=alice.subject)
        try:
            vos.upload(ctx, "alice/busy.fits", slow())
            outcome["slow"] = "ok"
        except vos.NodeBusy as exc:
            outcome["slow"] = exc
        finally:
            ctx.close()

    thread = threading.Thread(target=slow_upload)
    thread.start()
    assert midway.wait(10)
    vos.upload(alice, "alice/busy.fits", chunks(b"the fast one"))
    resume.set()
    thread.join(10)
    assert isinstance(outcome["slow"], vos.NodeBusy)
    assert body(alice, "alice/busy.fits") == b"the fast one"
    assert vos.usage(alice)["used"] == len(b"the fast one")


def test_simultaneous_first_uploads_to_a_fresh_space_all_succeed(as_user):
    """The first uploads into a new space race to create its usage record; SQLite refuses a
    read transaction that turns writer after another commit, so none of them may write before
    its bytes have arrived (a regression: one of two such uploads used to fail)."""
    import threading

    owner = as_user("fresh")
    vos.ensure_root(owner)
    start = threading.Barrier(6)
    failures: list[BaseException] = []

    def one(n: int) -> None:
        ctx = Context(database=owner.database, settings=owner.settings, runtime=owner.runtime,
                      subject=owner.subject)
        try:
            start.wait(10)
            vos.upload(ctx, f"fresh/file{n}.bin", chunks(DATA[:1000 * (n + 1)]))
        except BaseException as exc:  # noqa: BLE001 - collected and reported below
            failures.append(exc)
        finally:
            ctx.close()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert vos.usage(owner)["used"] == sum(1000 * (n + 1) for n in range(6))
