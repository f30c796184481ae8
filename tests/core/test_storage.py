"""The storage layer: one data-access interface over sites, atomic writes with checksums,
placement near the origin, asynchronous replication verified at the target, failover on
read, integrity sweeps — on local folders and on S3 (moto's server on loopback)."""

from __future__ import annotations

import hashlib
import os

import blake3
import pytest
import sqlalchemy as sa
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from astrocloud.core.errors import NotFound, ValidationFailed
from astrocloud.core.jobs import Job
from astrocloud.core.storage import checksums
from astrocloud.core.storage.dal import check_path, parse_uri
from astrocloud.core.storage.models import PlacementRule, Replica, Site, SiteCost, StoredFile
from astrocloud.core.storage.placement import Origin, great_circle_km
from astrocloud.core.storage.tasks import sweep


def chunks_of(data: bytes, size: int = 65536):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def write(runtime, uri, data, **kw):
    with runtime.database.session() as db:
        record = runtime.storage.write(db, uri, chunks_of(data), **kw)
        return record.id


def read(runtime, uri, **kw) -> bytes:
    with runtime.database.session(write=False) as db:
        record = runtime.storage.stat(db, uri)
        return b"".join(runtime.storage.open(db, record, **kw))


def wait_for_jobs(runtime, task="storage.replicate", timeout=30):
    with runtime.database.session(write=False) as db:
        ids = list(db.scalars(sa.select(Job.id).where(Job.task == task)))
    jobs = runtime.jobs.wait(ids, timeout=timeout)
    assert all(j.status in ("done", "failed") for j in jobs), [(j.id, j.status) for j in jobs]
    return jobs


def replicas(runtime, uri) -> dict[str, str]:
    with runtime.database.session(write=False) as db:
        rows = db.execute(sa.select(Site.name, Replica.status).join(Replica.site)
                          .join(Replica.file).where(StoredFile.uri == uri)).all()
    return dict(rows)


def site_path(runtime, site_name, uri) -> str:
    with runtime.database.session(write=False) as db:
        site = db.scalar(sa.select(Site).where(Site.name == site_name))
        key = db.scalar(sa.select(StoredFile.object_key).where(StoredFile.uri == uri))
        return runtime.storage.store(site).path(key)


DATA = os.urandom(300_000)


# ---- the data-access interface ----------------------------------------------------------------


def test_a_write_records_size_and_checksum_and_reads_back(runtime):
    write(runtime, "ac://vos/alice/m31.fits", DATA)
    with runtime.database.session(write=False) as db:
        record = runtime.storage.stat(db, "ac://vos/alice/m31.fits")
    assert record.size == len(DATA)
    assert record.checksum == "xxh3-128:" + xxhash.xxh3_128(DATA).hexdigest()
    assert read(runtime, "ac://vos/alice/m31.fits") == DATA


EXPECTED = {"xxh3-128": "xxh3-128:" + xxhash.xxh3_128(DATA).hexdigest(),
            "blake3": "blake3:" + blake3.blake3(DATA).hexdigest(),
            "sha256": "sha256:" + hashlib.sha256(DATA).hexdigest()}


@pytest.mark.parametrize("algorithm", list(EXPECTED))
def test_the_checksum_algorithm_is_the_configured_one(settings, database, algorithm):
    from astrocloud.core.runtime import build_runtime

    rt = build_runtime(settings.model_copy(update={"storage_checksum": algorithm}), database)
    write(rt, f"ac://vos/alice/{algorithm}.fits", DATA)
    with rt.database.session(write=False) as db:
        assert rt.storage.stat(db, f"ac://vos/alice/{algorithm}.fits").checksum == \
            EXPECTED[algorithm]


@pytest.mark.parametrize("algorithm", list(EXPECTED))
def test_files_recorded_in_any_algorithm_keep_verifying(runtime, algorithm):
    # written as an earlier version (or another setting) would have: the read, the copy at
    # the second site and the deep sweep all check it in its own algorithm
    uri = f"ac://vos/alice/old-{algorithm}.fits"
    with runtime.database.session() as db:
        staged = runtime.storage.stage(db, uri, chunks_of(DATA), algorithm=algorithm)
        runtime.storage.record(db, staged)
    assert staged.checksum == EXPECTED[algorithm]
    assert [j.status for j in wait_for_jobs(runtime)] == ["done"]
    assert replicas(runtime, uri) == {"beijing": "ok", "nanjing": "ok"}
    with open(site_path(runtime, "beijing", uri), "r+b") as f:
        f.write(b"bitrot")
    bad = []
    assert read(runtime, uri, on_bad_replica=lambda rid, why: bad.append(why)) == DATA
    assert bad == ["corrupt"]
    assert sweep(runtime, deep=True)["bad"] == 1


def test_a_checksum_in_an_unknown_algorithm_is_refused():
    assert checksums.split("sha256:ab") == ("sha256", "ab")
    assert checksums.split("ab" * 32) == ("sha256", "ab" * 32)
    with pytest.raises(checksums.UnknownAlgorithm):
        checksums.split("md4:ab")


def test_byte_ranges_are_read_from_the_middle(runtime):
    write(runtime, "ac://vos/alice/x.bin", DATA)
    assert read(runtime, "ac://vos/alice/x.bin", start=1000, end=5000) == DATA[1000:5000]
    assert read(runtime, "ac://vos/alice/x.bin", start=299_990) == DATA[299_990:]


def test_listing_is_by_prefix_in_name_order(runtime):
    for name in ("b.fits", "a.fits", "sub/c.fits"):
        write(runtime, f"ac://vos/alice/{name}", b"x")
    write(runtime, "ac://vos/alicia/a.fits", b"x")
    with runtime.database.session(write=False) as db:
        names = [f.path for f in runtime.storage.list(db, "ac://vos/alice/")]
    assert names == ["alice/a.fits", "alice/b.fits", "alice/sub/c.fits"]


def stored_files(settings) -> set:
    return {p for p in (settings.home / "sites").rglob("*") if p.is_file()}


def test_a_failed_upload_leaves_no_file_and_no_row(runtime, settings):
    def broken():
        yield b"a" * 100_000
        raise ConnectionResetError("the client went away")

    before = stored_files(settings)
    with pytest.raises(ConnectionResetError), runtime.database.session() as db:
        runtime.storage.write(db, "ac://vos/alice/broken.fits", broken())
    with runtime.database.session(write=False) as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 0
    assert stored_files(settings) == before


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(runtime, settings):
    before = stored_files(settings)
    with pytest.raises(ValidationFailed), runtime.database.session() as db:
        runtime.storage.write(db, "ac://vos/alice/big.bin", chunks_of(DATA), max_bytes=1000)
    assert stored_files(settings) == before


def test_a_database_failure_after_the_upload_removes_the_bytes(runtime, settings):
    before = stored_files(settings)
    with pytest.raises(RuntimeError), runtime.database.session() as db:
        runtime.storage.write(db, "ac://vos/alice/late.fits", chunks_of(DATA))
        raise RuntimeError("something after the upload failed")
    assert stored_files(settings) == before


def test_a_new_version_replaces_the_bytes_and_the_old_ones_are_removed(runtime):
    write(runtime, "ac://vos/alice/v.txt", b"first")
    old = site_path(runtime, "beijing", "ac://vos/alice/v.txt")
    write(runtime, "ac://vos/alice/v.txt", b"second")
    assert read(runtime, "ac://vos/alice/v.txt") == b"second"
    wait_for_jobs(runtime, "storage.remove_object")
    assert not os.path.exists(old)


def test_an_unknown_file_is_not_found(runtime):
    with pytest.raises(NotFound), runtime.database.session(write=False) as db:
        runtime.storage.stat(db, "ac://vos/alice/none.fits")


# ---- logical names ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    "", "/abs/path", "a/../b", "..", "./a", "a//b", "a/", "a\\b", "a\x00b", "a\nb",
    "x" * 256, "/".join(["d"] * 600),
])
def test_bad_paths_are_refused(bad):
    with pytest.raises(ValidationFailed):
        check_path(bad)


@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=6))
def test_any_accepted_path_stays_inside_its_namespace(segments):
    path = "/".join(segments)
    try:
        checked = check_path(path)
    except ValidationFailed:
        return
    parts = checked.split("/")
    assert ".." not in parts and "." not in parts and "" not in parts
    assert not checked.startswith("/")
    assert not any(ord(c) < 32 or c in "\\\x7f" for c in checked)


@pytest.mark.parametrize("uri", ["vos/alice/x", "ac://nowhere/x", "ac://vos/", "ac://vos/../x"])
def test_bad_logical_names_are_refused(uri):
    with pytest.raises(ValidationFailed):
        parse_uri(uri)


# ---- placement --------------------------------------------------------------------------------


def test_distances_are_great_circle():
    beijing_to_kunming = great_circle_km(39.9042, 116.4074, 25.0389, 102.7183)
    assert 2000 < beijing_to_kunming < 2150


def test_a_file_lands_at_the_site_nearest_its_origin(runtime):
    lijiang_telescope = Origin(latitude=26.6951, longitude=100.0301)
    write(runtime, "ac://archive/ynao/raw.fits", b"photons", origin=lijiang_telescope)
    assert replicas(runtime, "ac://archive/ynao/raw.fits")["lijiang"] == "ok"


def test_the_cost_table_overrides_distance(runtime):
    with runtime.database.session() as db:
        sites = {s.name: s for s in db.scalars(sa.select(Site))}
        db.add(SiteCost(from_site_id=sites["beijing"].id, to_site_id=sites["urumqi"].id,
                        cost=1.0))
        db.execute(sa.update(PlacementRule).values(copies=2))
    write(runtime, "ac://vos/alice/c.bin", b"c")
    assert set(replicas(runtime, "ac://vos/alice/c.bin")) == {"beijing", "urumqi"}


def test_placement_rules_choose_copies_and_preferred_sites(runtime):
    with runtime.database.session() as db:
        db.add(PlacementRule(prefix="ac://archive/", copies=3, preferred_sites="kunming,urumqi"))
    write(runtime, "ac://archive/lamost/spec.fits", DATA)
    assert set(replicas(runtime, "ac://archive/lamost/spec.fits")) == \
        {"beijing", "kunming", "urumqi"}


# ---- replication, failover, sweep -------------------------------------------------------------


def test_copies_are_made_asynchronously_and_verified(runtime):
    write(runtime, "ac://vos/alice/r.fits", DATA)
    jobs = wait_for_jobs(runtime)
    assert [j.status for j in jobs] == ["done"]
    assert replicas(runtime, "ac://vos/alice/r.fits") == {"beijing": "ok", "nanjing": "ok"}
    with open(site_path(runtime, "nanjing", "ac://vos/alice/r.fits"), "rb") as f:
        assert f.read() == DATA


def test_a_read_falls_through_a_corrupt_copy_and_queues_its_repair(runtime):
    write(runtime, "ac://vos/alice/f.fits", DATA)
    wait_for_jobs(runtime)
    path = site_path(runtime, "beijing", "ac://vos/alice/f.fits")
    with open(path, "r+b") as f:
        f.write(b"garbage")
    bad = []
    assert read(runtime, "ac://vos/alice/f.fits",
                on_bad_replica=lambda rid, why: bad.append(why)) == DATA
    assert bad == ["corrupt"]


def test_a_read_falls_through_a_site_that_is_down(runtime):
    write(runtime, "ac://vos/alice/d.fits", DATA)
    wait_for_jobs(runtime)
    with runtime.database.session() as db:
        db.execute(sa.update(Site).where(Site.name == "beijing").values(status="down"))
    assert read(runtime, "ac://vos/alice/d.fits") == DATA


def test_the_sweep_finds_missing_and_corrupt_copies_and_repairs_them(runtime):
    for name in ("one.fits", "two.fits"):
        write(runtime, f"ac://vos/alice/{name}", DATA)
    wait_for_jobs(runtime)
    os.remove(site_path(runtime, "nanjing", "ac://vos/alice/one.fits"))
    with open(site_path(runtime, "beijing", "ac://vos/alice/two.fits"), "r+b") as f:
        f.write(b"bitrot")
    result = sweep(runtime, deep=True)
    assert result["bad"] == 2
    runtime.jobs.wait(result["repair_jobs"], timeout=30)
    for name in ("one.fits", "two.fits"):
        assert replicas(runtime, f"ac://vos/alice/{name}") == {"beijing": "ok", "nanjing": "ok"}
        with open(site_path(runtime, "beijing", f"ac://vos/alice/{name}"), "rb") as f:
            assert f.read() == DATA
    assert sweep(runtime, deep=True)["bad"] == 0


def test_a_quick_sweep_notices_a_missing_copy_without_reading_everything(runtime):
    write(runtime, "ac://vos/alice/q.fits", DATA)
    wait_for_jobs(runtime)
    os.remove(site_path(runtime, "nanjing", "ac://vos/alice/q.fits"))
    assert sweep(runtime, deep=False)["bad"] == 1


def test_the_sweep_adds_copies_when_a_file_has_too_few(runtime):
    with runtime.database.session() as db:
        db.execute(sa.update(PlacementRule).values(copies=1))
    write(runtime, "ac://vos/alice/few.fits", DATA)
    with runtime.database.session() as db:
        db.execute(sa.update(StoredFile).values(copies_wanted=3))
    result = sweep(runtime)
    assert result["added"] == 2
    runtime.jobs.wait(result["repair_jobs"], timeout=30)
    assert list(replicas(runtime, "ac://vos/alice/few.fits").values()) == ["ok"] * 3


def test_deleting_a_file_removes_its_bytes_everywhere(runtime):
    write(runtime, "ac://vos/alice/gone.fits", DATA)
    wait_for_jobs(runtime)
    paths = [site_path(runtime, s, "ac://vos/alice/gone.fits") for s in ("beijing", "nanjing")]
    with runtime.database.session() as db:
        runtime.storage.delete(db, runtime.storage.stat(db, "ac://vos/alice/gone.fits"))
    wait_for_jobs(runtime, "storage.remove_object")
    assert not any(os.path.exists(p) for p in paths)
