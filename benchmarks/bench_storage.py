"""Streaming transfers and big folders in MyVOSpace, against a plain copy measured in the same run.

* baseline — `shutil.copyfile` of the same file on the same disk, and the same copy with a
  SHA-256 computed on the way (what a checksummed transfer cannot beat);
* upload / download of one large file through the HTTP API (`/api/v1/vos/files/...`) and
  through WebDAV (`/dav/...`) of a real `astrocloud serve` on loopback, streamed from and to
  disk by the client, with the server's peak memory;
* the first page (100 children) of a folder with 100,000 nodes, through the service layer and
  through the HTTP API.

Usage:  python benchmarks/bench_storage.py [--size-mib 1024] [--nodes 100000]
Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CHUNK = 1024 * 1024


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_file(path: Path, size_mib: int) -> None:
    block = os.urandom(CHUNK)
    with path.open("wb") as f:
        for i in range(size_mib):
            f.write(block[i % 7:] + block[: i % 7])


def file_chunks(path: Path):
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(cmd, env) -> str:
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--nodes", type=int, default=100_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ac-bench-storage-", dir=os.environ.get("TMPDIR")))
    home = work / "home"
    # Replication jobs go to a Redis queue that no worker serves during the run, so background
    # copies of the 1 GiB file do not compete with the transfers being measured.
    env = {**os.environ, "ASTROCLOUD_HOME": str(home),
           "ASTROCLOUD_VOS_DEFAULT_QUOTA_BYTES": str(8 * args.size_mib * CHUNK),
           "ASTROCLOUD_JOB_BACKEND": "redis",
           "ASTROCLOUD_JOB_QUEUE_NAME": f"astrocloud-bench-{os.getpid()}"}
    cli = [sys.executable, "-m", "astrocloud"]
    rows: list[tuple[str, float, str]] = []
    try:
        source = work / "source.bin"
        make_file(source, args.size_mib)
        size = source.stat().st_size

        t = time.perf_counter()
        shutil.copyfile(source, work / "copy.bin")
        plain = size / (time.perf_counter() - t)
        (work / "copy.bin").unlink()
        t = time.perf_counter()
        digest = hashlib.sha256()
        with (work / "copy.bin").open("wb") as out:
            for chunk in file_chunks(source):
                digest.update(chunk)
                out.write(chunk)
        hashed = size / (time.perf_counter() - t)
        (work / "copy.bin").unlink()
        rows.append(("baseline: plain copy on the same disk", plain, "1.00"))
        rows.append(("baseline: copy with SHA-256", hashed, f"{hashed / plain:.2f}"))

        run(cli + ["db", "upgrade"], env)
        run(cli + ["users", "create", "bench", "--email", "bench@example.org",
                   "--password", "benchmark-password"], env)
        token = run(cli + ["tokens", "create", "bench"], env).strip().splitlines()[-1]
        port = free_port()
        server = subprocess.Popen(cli + ["serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base}/api/health", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
                for label, up_url, down_url in (
                    ("HTTP API", "/api/v1/vos/files/bench/big-api.bin",
                     "/api/v1/vos/files/bench/big-api.bin"),
                    ("WebDAV", "/dav/bench/big-dav.bin", "/dav/bench/big-dav.bin"),
                ):
                    t = time.perf_counter()
                    response = client.put(up_url, content=file_chunks(source))
                    response.raise_for_status()
                    up = size / (time.perf_counter() - t)
                    rows.append((f"upload through the {label}", up, f"{up / plain:.2f}"))
                    t = time.perf_counter()
                    digest = hashlib.sha256()
                    with client.stream("GET", down_url) as r, \
                            (work / "down.bin").open("wb") as out:
                        r.raise_for_status()
                        for chunk in r.iter_bytes(CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                    down = size / (time.perf_counter() - t)
                    (work / "down.bin").unlink()
                    rows.append((f"download through the {label}", down, f"{down / plain:.2f}"))
            memory = peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(30)

        listing = bench_listing(home, args.nodes, token)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        try:
            import redis

            client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
            for key in client.scan_iter(f"huey.*astrocloud-bench-{os.getpid()}*"):
                client.delete(key)
        except Exception as exc:  # the queue is only scratch space for this run
            print(f"(could not clean the benchmark's Redis queue: {exc})", file=sys.stderr)

    print(f"\n{args.size_mib} MiB file, loopback, one 2-core machine\n")
    print("| transfer | MiB/s | ratio to plain copy |")
    print("| --- | ---: | ---: |")
    for name, rate, ratio in rows:
        print(f"| {name} | {rate / CHUNK:.0f} | {ratio} |")
    print(f"\nPeak memory of the server process over all transfers: {memory:.0f} MiB.\n")
    print(f"| first page of a folder with {args.nodes:,} nodes | ms |")
    print("| --- | ---: |")
    for name, ms in listing:
        print(f"| {name} | {ms:.1f} |")


def bench_listing(home: Path, nodes: int, token: str) -> list[tuple[str, float]]:
    """Fill a folder with `nodes` children straight into the database, then time page one."""
    import sqlalchemy as sa

    from astrocloud.channels import load_all
    from astrocloud.cloud import services as vos
    from astrocloud.cloud.models import Node
    from astrocloud.core.config import Settings
    from astrocloud.core.identity.models import User
    from astrocloud.core.runtime import build_runtime
    from astrocloud.core.security.engine import load_subject
    from astrocloud.core.service import Context

    load_all()
    settings = Settings(home=home)
    runtime = build_runtime(settings)
    ctx = Context(database=runtime.database, settings=settings, runtime=runtime)
    user = ctx.db.scalar(sa.select(User).where(User.username == "bench"))
    ctx.subject = load_subject(ctx.db, user)
    ctx.db.commit()
    folder = vos.create_container(ctx, "bench/many")
    with runtime.database.engine.begin() as conn:
        for start in range(0, nodes, 20_000):
            conn.execute(sa.insert(Node), [
                {"owner_id": user.id, "path": f"bench/many/n{i:07d}", "parent_id": folder.id,
                 "name": f"n{i:07d}", "kind": "container", "size": 0, "content_type": "",
                 "public_read": False, "properties": "{}", "version": 1,
                 "created_at": folder.created_at, "updated_at": folder.created_at}
                for i in range(start, min(nodes, start + 20_000))])
    results = []
    t = time.perf_counter()
    page = vos.list_children(ctx, "bench/many", limit=100)
    results.append(("service layer (`list_children`, limit 100)",
                    (time.perf_counter() - t) * 1000))
    assert len(page) == 100
    ctx.close()
    runtime.database.dispose()
    return results


if __name__ == "__main__":
    main()
