"""Archive ingest rate, against a plain copy of the same files measured in the same run.

* baseline — `shutil.copyfile` of every file into a folder on the same disk (what moving the
  bytes alone costs), and the same copy with SHA-256 computed on the way;
* ingest proper — what one worker does per file: checksum, duplicate check, FITS header
  reading with the telescope's mapping, ObsCore record, storage at the nearest site through
  the data-access layer. It runs the ingest job's own function (`ingest_batch`) in this
  process, so the figure is one worker's rate; the quality-control and replication jobs it
  queues go to a Redis queue nobody serves during the run and are measured separately;
* quality control — grading and previews of a sample of the files (`check_quality`).

Usage:  python benchmarks/bench_ingest.py [--small 1000] [--large 10] [--large-side 4096]
Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

SCOPE = "Bench 1m"


def make_files(folder: Path, count: int, side: int, prefix: str) -> list[Path]:
    from astrocloud.data.archive.synthetic import write_image

    folder.mkdir(parents=True, exist_ok=True)
    night = dt.datetime(2024, 5, 1, 15, 0, tzinfo=dt.UTC)
    return [write_image(folder / f"{prefix}{i:05d}.fits", ra=(i * 0.37) % 360,
                        dec=-20 + (i % 80), date_obs=night + dt.timedelta(minutes=i),
                        telescope=SCOPE, instrument="CCD", shape=(side, side),
                        n_stars=20 if side < 512 else 200, seed=i)
            for i in range(count)]


def plain_copy(files: list[Path], target: Path, checksum: bool) -> float:
    target.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for path in files:
        if checksum:
            digest = hashlib.sha256()
            with path.open("rb") as src, (target / path.name).open("wb") as dst:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
        else:
            shutil.copyfile(path, target / path.name)
    elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--small-side", type=int, default=128)
    parser.add_argument("--large", type=int, default=10)
    parser.add_argument("--large-side", type=int, default=4096)
    parser.add_argument("--qc-sample", type=int, default=50)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ac-bench-ingest-", dir=os.environ.get("TMPDIR")))
    os.environ.update(ASTROCLOUD_HOME=str(work / "home"), ASTROCLOUD_JOB_BACKEND="redis",
                      ASTROCLOUD_JOB_QUEUE_NAME=f"astrocloud-bench-{os.getpid()}")
    from astrocloud.channels import load_all
    from astrocloud.core.config import Settings
    from astrocloud.core.db import Database
    from astrocloud.core.migrate import upgrade
    from astrocloud.core.runtime import build_runtime
    from astrocloud.core.security.engine import Subject
    from astrocloud.core.service import Context
    from astrocloud.data.archive import services as archive
    from astrocloud.observation import services as observation

    load_all()
    settings = Settings()
    database = Database(settings.effective_database_url)
    upgrade(database)
    from astrocloud.channels import policy_files
    from astrocloud.core.security.services import seed_policies
    from astrocloud.core.storage.services import seed_sites

    with database.session() as db:
        seed_policies(db, policy_files())
        seed_sites(db, settings)
    runtime = build_runtime(settings, database)
    ctx = Context(database=database, settings=settings, runtime=runtime,
                  subject=Subject.system_subject(), via="cli")
    observation.create_telescope(ctx, name=SCOPE, longitude=102.8, latitude=25.0,
                                 elevation=2000, instruments=["CCD"])
    rows = []
    try:
        for label, count, side in (("small", args.small, args.small_side),
                                   ("large", args.large, args.large_side)):
            if not count:
                continue
            files = make_files(work / label, count, side, label)
            total = sum(p.stat().st_size for p in files)
            copy = plain_copy(files, work / "copy", checksum=False)
            hashed = plain_copy(files, work / "copy", checksum=True)
            records, _jobs = archive.submit_paths(ctx, telescope=SCOPE,
                                                  paths=[str(p) for p in files])
            ids = [r.id for r in records]
            started = time.perf_counter()
            outcome = archive.ingest_batch(runtime, ids)
            ingest = time.perf_counter() - started
            assert outcome == {"archived": count}, outcome
            mib = total / 2**20
            rows.append((f"{count} {label} files ({mib / count:.2f} MiB each)", count / copy,
                         count / hashed, count / ingest, mib / ingest, copy / ingest))
            if label == "small" and args.qc_sample:
                sample = archive.ingest_progress(database, ids[:args.qc_sample])
                started = time.perf_counter()
                for record in sample:
                    archive.check_quality(runtime, record.file_id)
                qc_rate = len(sample) / (time.perf_counter() - started)
    finally:
        ctx.close()
        try:
            import redis

            client = redis.Redis.from_url(settings.redis_url)
            for key in client.scan_iter(f"huey*astrocloud-bench-{os.getpid()}*"):
                client.delete(key)
        except Exception:  # noqa: BLE001 - cleaning up the benchmark's queue is best effort
            pass
        shutil.rmtree(work, ignore_errors=True)

    print("| files | plain copy (files/s) | copy + SHA-256 (files/s) | ingest (files/s) "
          "| ingest (MiB/s) | ingest ÷ plain copy |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, copy_rate, hashed_rate, rate, mib_rate, ratio in rows:
        print(f"| {name} | {copy_rate:,.0f} | {hashed_rate:,.0f} | {rate:,.0f} | "
              f"{mib_rate:,.1f} | {ratio:.2f} |")
    if args.small and args.qc_sample:
        print(f"\nQuality control with previews: {qc_rate:.1f} small files/s (one worker).")


if __name__ == "__main__":
    main()
