"""Streaming transfers and big folders in MyVOSpace, against baselines measured in the same run.

* baselines on the same disk — `shutil.copyfile` (the plain copy: in-kernel
  `copy_file_range`), a user-space copy in 4 MiB blocks, and that copy computing each
  checksum algorithm the storage layer offers (SHA-256, BLAKE3, XXH3-128) on the way;
* the floor of the HTTP stack — a bare ASGI app on uvicorn (same event loop and HTTP parser
  as `astrocloud serve`) that drops an uploaded body and sends a download from memory, driven
  by the same client;
* upload / download of one large file through the HTTP API (`/api/v1/vos/files/...`) and
  through WebDAV (`/dav/...`) of a real `astrocloud serve` on loopback, once per checksum
  algorithm (`ASTROCLOUD_STORAGE_CHECKSUM`), streamed from and to disk by a lean
  `http.client` client, with the server's CPU seconds per GiB and its peak memory;
* the first page (100 children) of a folder with 100,000 nodes, through the service layer.

Every figure is the best of `--repeat` runs (the machine is shared). Usage:
    python benchmarks/bench_storage.py [--size-mib 1024] [--nodes 100000] [--repeat 3]
Prints Markdown tables for docs/performance.md.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import xxhash

CHUNK = 1024 * 1024
BLOCK = 4 * CHUNK
ALGORITHMS = {"xxh3-128": xxhash.xxh3_128, "blake3": blake3.blake3, "sha256": hashlib.sha256}

# The floor of the HTTP stack: uvicorn with nothing behind it. PUT drops the body, GET sends
# `size` bytes from memory in 4 MiB messages.
ECHO_APP = '''
import os
SIZE = int(os.environ["ECHO_SIZE"])
BLOCK = bytes(4 * 1024 * 1024)

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "PUT":
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(SIZE).encode())]})
    left = SIZE
    while left:
        n = min(left, len(BLOCK))
        await send({"type": "http.response.body", "body": BLOCK[:n] if n < len(BLOCK)
                    else BLOCK, "more_body": left > n})
        left -= n
'''


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


def fingerprint(path: Path) -> str:
    digest = xxhash.xxh3_128()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def best_of(repeat: int, run: Callable[[], None], pid: int | None = None
            ) -> tuple[float, float]:
    """(the shortest wall time, the server's CPU seconds in that run)."""
    best = (float("inf"), float("nan"))
    for _ in range(repeat):
        cpu = cpu_seconds(pid) if pid else 0.0
        t = time.perf_counter()
        run()
        wall = time.perf_counter() - t
        if wall < best[0]:
            best = (wall, cpu_seconds(pid) - cpu if pid else float("nan"))
    return best


# ---- baselines --------------------------------------------------------------------------------


def user_copy(source: Path, target: Path, hasher=None) -> None:
    with source.open("rb", buffering=0) as src, target.open("wb", buffering=0) as out:
        while block := src.read(BLOCK):
            if hasher is not None:
                hasher.update(block)
            out.write(block)


# ---- a lean HTTP client -----------------------------------------------------------------------


class Client:
    """http.client on one keep-alive connection: streams a file up in 4 MiB blocks and a
    download down into a file with `readinto` a reused buffer (httpx's per-chunk overhead would
    otherwise be what is measured)."""

    def __init__(self, port: int, token: str | None):
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.buffer = bytearray(BLOCK)

    def put(self, url: str, source: Path) -> None:
        size = source.stat().st_size
        self.conn.putrequest("PUT", url)
        for k, v in {**self.headers, "Content-Length": str(size),
                     "Content-Type": "application/octet-stream"}.items():
            self.conn.putheader(k, v)
        self.conn.endheaders()
        with source.open("rb", buffering=0) as f:
            while block := f.read(BLOCK):
                self.conn.send(block)
        response = self.conn.getresponse()
        body = response.read()
        if response.status >= 300:
            raise RuntimeError(f"PUT {url}: {response.status} {body[:300]!r}")

    def get(self, url: str, target: Path) -> int:
        self.conn.request("GET", url, headers=self.headers)
        response = self.conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {response.read()[:300]!r}")
        view = memoryview(self.buffer)
        total = 0
        with target.open("wb", buffering=0) as out:
            while n := response.readinto(self.buffer):
                out.write(view[:n])
                total += n
        return total

    def close(self) -> None:
        self.conn.close()


def wait_until_up(port: int, path: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def run(cmd, env) -> str:
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--algorithms", default="xxh3-128,blake3,sha256",
                        help="checksum settings to serve with, comma-separated")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ac-bench-storage-", dir=os.environ.get("TMPDIR")))
    cli = [sys.executable, "-m", "astrocloud"]
    rows: list[tuple[str, float, float]] = []  # (what, seconds, server CPU seconds)
    memory = {}
    try:
        source = work / "source.bin"
        make_file(source, args.size_mib)
        size = source.stat().st_size
        copy = work / "copy.bin"

        plain = best_of(args.repeat, lambda: shutil.copyfile(source, copy))[0]
        rows.append(("baseline: plain copy (`shutil.copyfile`)", plain, float("nan")))
        wall = best_of(args.repeat, lambda: user_copy(source, copy))[0]
        rows.append(("baseline: user-space copy, 4 MiB blocks", wall, float("nan")))
        for name, new in ALGORITHMS.items():
            wall = best_of(args.repeat, lambda new=new: user_copy(source, copy, new()))[0]
            rows.append((f"baseline: user-space copy with {name}", wall, float("nan")))
        copy.unlink()

        # the HTTP stack's floor
        port = free_port()
        echo_dir = work / "echo"
        echo_dir.mkdir()
        (echo_dir / "echo_app.py").write_text(ECHO_APP)
        echo = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "echo_app:app", "--port", str(port),
             "--log-level", "warning", "--no-access-log"],
            cwd=echo_dir, env={**os.environ, "ECHO_SIZE": str(size)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_up(port, "/")
            client = Client(port, None)
            rows.append(("floor: bare uvicorn, upload", *best_of(
                args.repeat, lambda: client.put("/x", source), echo.pid)))
            rows.append(("floor: bare uvicorn, download", *best_of(
                args.repeat, lambda: client.get("/x", work / "down.bin"), echo.pid)))
            client.close()
        finally:
            echo.terminate()
            echo.wait(30)

        for algorithm in args.algorithms.split(","):
            home = work / f"home-{algorithm}"
            # Replication jobs go to a Redis queue that no worker serves during the run, so
            # background copies of the file do not compete with the transfers measured.
            env = {**os.environ, "ASTROCLOUD_HOME": str(home),
                   "ASTROCLOUD_VOS_DEFAULT_QUOTA_BYTES": str(8 * args.size_mib * CHUNK),
                   "ASTROCLOUD_STORAGE_CHECKSUM": algorithm,
                   "ASTROCLOUD_JOB_BACKEND": "redis",
                   "ASTROCLOUD_JOB_QUEUE_NAME": f"astrocloud-bench-{os.getpid()}"}
            run(cli + ["db", "upgrade"], env)
            run(cli + ["users", "create", "bench", "--email", "bench@example.org",
                       "--password", "benchmark-password"], env)
            token = run(cli + ["tokens", "create", "bench"], env).strip().splitlines()[-1]
            port = free_port()
            server = subprocess.Popen(cli + ["serve", "--port", str(port)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_until_up(port, "/api/health")
                client = Client(port, token)
                for label, url in (("HTTP API", "/api/v1/vos/files/bench/big-api.bin"),
                                   ("WebDAV", "/dav/bench/big-dav.bin")):
                    rows.append((f"{algorithm}: upload through the {label}", *best_of(
                        args.repeat, lambda url=url, c=client: c.put(url, source), server.pid)))
                    rows.append((f"{algorithm}: download through the {label}", *best_of(
                        args.repeat, lambda url=url, c=client: c.get(url, work / "down.bin"),
                        server.pid)))
                    if fingerprint(work / "down.bin") != fingerprint(source):
                        raise RuntimeError(f"{label}: the download differs from the upload")
                client.close()
                memory[algorithm] = peak_rss_mib(server.pid)
            finally:
                server.terminate()
                server.wait(30)
                shutil.rmtree(home / "sites", ignore_errors=True)  # GiBs of versions
        listing = bench_listing(work / f"home-{args.algorithms.split(',')[0]}", args.nodes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        try:
            import redis

            queue = redis.Redis.from_url("redis://127.0.0.1:6379/0")
            for key in queue.scan_iter(f"huey.*astrocloud-bench-{os.getpid()}*"):
                queue.delete(key)
        except Exception as exc:  # the queue is only scratch space for this run
            print(f"(could not clean the benchmark's Redis queue: {exc})", file=sys.stderr)

    floor = {"upload": rows[5][1], "download": rows[6][1]}
    print(f"\n{args.size_mib} MiB file, loopback, best of {args.repeat}, "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| transfer | MiB/s | ratio to plain copy | ratio to bare uvicorn "
          "| server CPU s/GiB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    gib = size / 1024**3
    for name, wall, cpu in rows:
        direction = "upload" if "upload" in name else "download" if "download" in name else ""
        to_floor = f"{floor[direction] / wall:.2f}" if direction and ":" in name \
            and not name.startswith("floor") else ""
        cpu_cell = f"{cpu / gib:.2f}" if cpu == cpu else ""
        print(f"| {name} | {size / wall / CHUNK:.0f} | {plain / wall:.2f} | {to_floor} "
              f"| {cpu_cell} |")
    print("\nPeak memory of the server process over all transfers: "
          + ", ".join(f"{a} {m:.0f} MiB" for a, m in memory.items()) + ".\n")
    print(f"| first page of a folder with {args.nodes:,} nodes | ms |")
    print("| --- | ---: |")
    for name, ms in listing:
        print(f"| {name} | {ms:.1f} |")


def bench_listing(home: Path, nodes: int) -> list[tuple[str, float]]:
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
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        page = vos.list_children(ctx, "bench/many", limit=100)
        best = min(best, (time.perf_counter() - t) * 1000)
    results.append(("service layer (`list_children`, limit 100), best of 3", best))
    assert len(page) == 100
    ctx.close()
    runtime.database.dispose()
    return results


if __name__ == "__main__":
    main()
