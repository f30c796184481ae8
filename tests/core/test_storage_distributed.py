"""The storage layer across real boundaries: an S3-compatible object store (moto's server on
loopback), the Redis-backed job queue, and three site agents as separate processes — one of
them killed in the middle of replication — with nothing lost."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest
import sqlalchemy as sa
from moto.server import ThreadedMotoServer

from astrocloud.core.runtime import build_runtime
from astrocloud.core.storage.models import PlacementRule, Replica, Site, StoredFile
from astrocloud.core.storage.tasks import sweep
from tests.core.test_storage import chunks_of, read, replicas, wait_for_jobs, write
from tests.support.server import free_port

DATA = os.urandom(2_000_000)
SHA = hashlib.sha256(DATA).hexdigest()


def only_sites(database, sites: list[tuple[str, str, float, float]], copies: int) -> None:
    """Replace the default sites with these (name, storage URL, latitude, longitude)."""
    with database.session() as db:
        db.execute(sa.delete(Site))
        for position, (name, url, lat, lon) in enumerate(sites):
            db.add(Site(name=name, city=name.title(), storage_url=url, latitude=lat,
                        longitude=lon, position=position))
        db.execute(sa.update(PlacementRule).values(copies=copies))


def make_runtime(settings, database, **changes):
    rt = build_runtime(settings.model_copy(update=changes), database)
    rt.jobs.huey.flush()
    rt.jobs.start_embedded(workers=2)
    return rt


# ---- S3 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_runtime(settings, database, s3_endpoint):
    import boto3

    bucket = f"site-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test",
                 aws_secret_access_key="test", region_name="us-east-1").create_bucket(
        Bucket=bucket)
    only_sites(database, [
        ("ceph", f"s3://{bucket}/astrocloud?endpoint_url={s3_endpoint}", 39.9, 116.4),
        ("disk", f"file://{settings.home}/sites/disk-{bucket}", 25.0, 102.7),
    ], copies=2)
    rt = make_runtime(settings, database, s3_access_key_id="test", s3_secret_access_key="test")
    yield rt, bucket, s3_endpoint
    rt.jobs.stop_embedded()


def s3_keys(endpoint, bucket) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_an_s3_site_stores_reads_and_replicates(s3_runtime):
    rt, bucket, endpoint = s3_runtime
    write(rt, "ac://vos/alice/s3.fits", DATA)
    assert read(rt, "ac://vos/alice/s3.fits") == DATA
    assert read(rt, "ac://vos/alice/s3.fits", start=10, end=20) == DATA[10:20]
    wait_for_jobs(rt)
    assert replicas(rt, "ac://vos/alice/s3.fits") == {"ceph": "ok", "disk": "ok"}
    assert len(s3_keys(endpoint, bucket)) == 1


def test_a_failed_upload_to_s3_leaves_no_object(s3_runtime):
    rt, bucket, endpoint = s3_runtime

    def broken():
        yield from chunks_of(DATA[:1_000_000])
        raise ConnectionResetError("client gone")

    with pytest.raises(ConnectionResetError), rt.database.session() as db:
        rt.storage.write(db, "ac://vos/alice/broken.fits", broken())
    assert s3_keys(endpoint, bucket) == []


# ---- the Redis-backed queue -------------------------------------------------------------------


def test_replication_runs_on_the_redis_queue_too(settings, database):
    rt = make_runtime(settings, database, job_backend="redis",
                      job_queue_name=f"astrocloud-test-{uuid.uuid4().hex[:8]}")
    try:
        assert type(rt.jobs.huey).__name__ == "RedisHuey"
        write(rt, "ac://vos/alice/redis.fits", DATA)
        jobs = wait_for_jobs(rt)
        assert [j.status for j in jobs] == ["done"]
        assert replicas(rt, "ac://vos/alice/redis.fits") == {"beijing": "ok", "nanjing": "ok"}
    finally:
        rt.jobs.stop_embedded()
        rt.jobs.huey.flush()


# ---- three site agents, one killed mid-replication --------------------------------------------


class Agent:
    """`astrocloud site-agent` as its own process."""

    def __init__(self, name: str, folder, settings):
        self.name = name
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "ASTROCLOUD_HOME": str(settings.home),
                    "ASTROCLOUD_SECRET_KEY": settings.effective_secret_key()}
        self.process: subprocess.Popen | None = None

    def start(self) -> Agent:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "astrocloud", "site-agent", "--site", self.name,
             "--port", str(self.port), "--storage", f"file://{self.folder}"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"agent {self.name} did not start: {self.process.stderr.read()}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def has_good_copy(self) -> bool:
        files = [p for p in self.folder.rglob("*") if p.is_file() and not p.name.endswith(".part")]
        return any(hashlib.sha256(p.read_bytes()).hexdigest() == SHA for p in files)


@pytest.fixture
def agents(settings, tmp_path):
    started = {n: Agent(n, tmp_path / n, settings).start() for n in ("kunming", "lijiang",
                                                                      "urumqi")}
    yield started
    for agent in started.values():
        agent.kill()


def test_reads_survive_a_dead_agent_and_the_sweep_restores_every_copy(settings, database,
                                                                       agents):
    only_sites(database, [
        ("kunming", agents["kunming"].url, 25.04, 102.72),
        ("lijiang", agents["lijiang"].url, 26.87, 100.23),
        ("urumqi", agents["urumqi"].url, 43.83, 87.62),
    ], copies=3)
    rt = make_runtime(settings, database)
    try:
        write(rt, "ac://archive/ynao/big.fits", DATA)
        agents["lijiang"].kill()  # in the middle of replication
        assert read(rt, "ac://archive/ynao/big.fits") == DATA

        deadline = time.monotonic() + 30
        while replicas(rt, "ac://archive/ynao/big.fits").get("urumqi") != "ok":
            assert time.monotonic() < deadline, replicas(rt, "ac://archive/ynao/big.fits")
            time.sleep(0.1)
        agents["kunming"].kill()  # now only urumqi is up
        assert read(rt, "ac://archive/ynao/big.fits") == DATA
        assert read(rt, "ac://archive/ynao/big.fits", start=123, end=4567) == DATA[123:4567]

        agents["kunming"].start()
        agents["lijiang"].start()
        result = sweep(rt, deep=True)
        rt.jobs.wait(result["repair_jobs"], timeout=60)
        deadline = time.monotonic() + 60
        while set(replicas(rt, "ac://archive/ynao/big.fits").values()) != {"ok"}:
            assert time.monotonic() < deadline, replicas(rt, "ac://archive/ynao/big.fits")
            rt.jobs.wait(sweep(rt)["repair_jobs"], timeout=30)
        assert all(agent.has_good_copy() for agent in agents.values())
        with rt.database.session(write=False) as db:
            record = db.scalar(sa.select(StoredFile))
            assert db.scalar(sa.select(sa.func.count()).select_from(Replica)
                             .where(Replica.file_id == record.id, Replica.status == "ok")) == 3
    finally:
        rt.jobs.stop_embedded()


def test_an_agent_stores_and_checks_in_the_algorithm_asked_for(agents, settings):
    import xxhash

    from astrocloud.core.storage.backends import AgentStore, StorageError

    store = AgentStore(agents["kunming"].url, settings.effective_secret_key())
    size, found = store.write("vos/aa/sum", chunks_of(DATA), algorithm="xxh3-128")
    assert (size, found) == (len(DATA), "xxh3-128:" + xxhash.xxh3_128(DATA).hexdigest())
    assert store.checksum("vos/aa/sum", "xxh3-128") == found
    assert store.checksum("vos/aa/sum") == "sha256:" + SHA
    # callers of earlier versions ask for no algorithm and read {"sha256": hex}
    answer = httpx.get(store.url("GET", "vos/aa/sum") + "&checksum=1").json()
    assert answer["sha256"] == SHA
    with pytest.raises(StorageError, match="400"):
        store.checksum("vos/aa/sum", "md4")


def test_an_agent_refuses_unsigned_and_expired_requests(agents):
    url = agents["kunming"].url
    assert httpx.get(f"{url}/objects/vos/aa/x").status_code == 403
    expired = f"{url}/objects/vos/aa/x?expires=1&signature=" + "0" * 64
    assert httpx.get(expired).status_code == 403
    assert httpx.put(f"{url}/objects/vos/aa/x", content=b"x").status_code == 403
