"""Catalog import rows per second, and cone-search times, against baselines measured in the
same run.

A LAMOST-like catalog of N rows (default 1,000,000; 17 columns: ids, designations, positions,
magnitudes, signal-to-noise ratios, stellar parameters, classes) is generated as a Parquet or a
FITS file. Then, on SQLite and (given --postgres URL) on PostgreSQL:

* baseline "read": the same reader the import uses, reading and converting every chunk, no
  database;
* baseline "bare insert": the same rows, already as Python tuples (SQLite) or binary COPY
  data (PostgreSQL), pushed into a plain table with no index by `executemany` or `COPY` in
  one transaction — what the database itself costs;
* the import: `astrocloud catalog import FILE --name NAME` run as an operator runs it (its own
  process; the rate is the one its summary line reports, the peak memory that of the process);
* cone searches through the service layer (with their usage row): median of 25 random centres
  for 1 degree and 1 arcminute, and the 1-degree cone as a full scan without the index.

Usage:  python benchmarks/bench_catalog_import.py [--rows 1000000] [--formats parquet,fits]
                                                  [--postgres postgresql+psycopg://...]
Prints Markdown tables for docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa


def generate(path: Path, rows: int, fmt: str, seed: int = 42) -> None:
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, rows)
    dec = np.degrees(np.arcsin(rng.uniform(-0.2, 1.0, rows)))  # a northern survey
    cols = {
        "obsid": np.arange(100_000_000, 100_000_000 + rows, dtype=np.int64),
        "designation": np.char.add("J", np.char.mod("%015.6f", ra * 1e3)),
        "ra": ra, "dec": dec,
        "mag_g": rng.normal(16.5, 1.5, rows).astype(np.float32),
        "mag_r": rng.normal(16.0, 1.5, rows).astype(np.float32),
        "mag_i": rng.normal(15.7, 1.5, rows).astype(np.float32),
        "snr_g": rng.gamma(2, 20, rows).astype(np.float32),
        "snr_r": rng.gamma(2, 25, rows).astype(np.float32),
        "snr_i": rng.gamma(2, 25, rows).astype(np.float32),
        "z": rng.normal(0, 1e-4, rows).astype(np.float32),
        "z_err": rng.gamma(1, 1e-5, rows).astype(np.float32),
        "teff": rng.normal(5500, 800, rows).astype(np.float32),
        "logg": rng.normal(4.2, 0.6, rows).astype(np.float32),
        "feh": rng.normal(-0.2, 0.4, rows).astype(np.float32),
        "class": np.array(["STAR", "GALAXY", "QSO", "Unknown"])[
            rng.choice(4, rows, p=[0.9, 0.05, 0.02, 0.03])],
        "fibermask": rng.integers(0, 16, rows).astype(np.int16),
    }
    units = {"ra": "deg", "dec": "deg", "mag_g": "mag", "mag_r": "mag", "mag_i": "mag",
             "teff": "K", "logg": "log(cm.s**-2)", "feh": "dex", "z_err": ""}
    if fmt == "parquet":
        fields = [pa.field(k, pa.array(v[:1]).type,
                           metadata={"unit": units[k]} if units.get(k) else None)
                  for k, v in cols.items()]
        pq.write_table(pa.table({k: pa.array(v) for k, v in cols.items()},
                                schema=pa.schema(fields)), path, row_group_size=100_000)
    else:
        from astropy.io import fits

        codes = {"i8": "K", "f8": "D", "f4": "E", "i2": "I"}
        columns = []
        for name, values in cols.items():
            if values.dtype.kind == "U":
                width = values.dtype.itemsize // 4
                columns.append(fits.Column(name=name, format=f"{width}A",
                                           array=values.astype(f"S{width}")))
            else:
                columns.append(fits.Column(name=name, format=codes[values.dtype.str[1:]],
                                           unit=units.get(name) or None, array=values))
        fits.BinTableHDU.from_columns(columns).writeto(path)


def time_read(path: Path) -> tuple[float, int]:
    """The import's reader and converter alone: every chunk read and conformed."""
    from astrocloud.data.catalogs import importer

    started = time.perf_counter()
    source = importer.open_catalog(path)
    planned = importer.plan_columns(source)
    rows = 0
    for chunk in importer.read_chunks(source):
        arrays = [importer.conform(chunk[c.source], c.kind) for c in planned]
        rows += len(arrays[0])
    source.close()
    return time.perf_counter() - started, rows


def bare_insert(url: str, path: Path) -> tuple[float, int]:
    """The same rows pushed into a plain table with no index: executemany of ready tuples
    (SQLite) or COPY of ready binary rows (PostgreSQL), one transaction. Only the push is
    timed."""
    from astrocloud.core.db import Database
    from astrocloud.data.catalogs import importer

    source = importer.open_catalog(path)
    planned = importer.plan_columns(source)
    chunks = [[importer.conform(chunk[c.source], c.kind) for c in planned]
              for chunk in importer.read_chunks(source)]
    source.close()
    names = [c.name for c in planned]
    database = Database(url)
    table = importer.table_of("bench_bare", [(c.name, c.kind) for c in planned], healpix=False)
    with database.engine.begin() as conn:
        table.drop(conn, checkfirst=True)
    postgres = database.dialect == "postgresql"
    if postgres:
        kinds = [c.kind for c in planned]
        payload = [importer.binary_rows(arrays, kinds) for arrays in chunks]
    else:
        payload = [list(zip(*[importer._python_values(a) for a in arrays], strict=True))
                   for arrays in chunks]
    rows = sum(len(a[0]) for a in chunks)
    del chunks
    columns = ", ".join(f'"{n}"' for n in names)
    with database.engine.connect() as conn:
        conn = conn.execution_options(astrocloud_write=True)
        with conn.begin():
            table.create(conn)
        started = time.perf_counter()
        with conn.begin():
            raw = conn.connection.driver_connection
            cursor = raw.cursor()
            if postgres:
                with cursor.copy(f"COPY bench_bare ({columns}) FROM STDIN "
                                 "(FORMAT binary)") as copy:
                    copy.write(importer.PG_COPY_HEADER)
                    for block in payload:
                        copy.write(block)
                    copy.write(importer.PG_COPY_TRAILER)
            else:
                sql = f"INSERT INTO bench_bare ({columns}) VALUES ({', '.join('?' * len(names))})"
                for block in payload:
                    cursor.executemany(sql, block)
            cursor.close()
        elapsed = time.perf_counter() - started
        with conn.begin():
            table.drop(conn)
    database.dispose()
    return elapsed, rows


def run_import(url: str, home: Path, path: Path, name: str) -> tuple[float, int, float, str]:
    """`astrocloud catalog import` in its own process: (seconds, rows, peak MiB, index)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASTROCLOUD_")}
    env.update(ASTROCLOUD_HOME=str(home), ASTROCLOUD_DATABASE_URL=url, COLUMNS="200")
    cmd = [sys.executable, "-m", "astrocloud"]
    subprocess.run([*cmd, "db", "upgrade"], env=env, check=True, capture_output=True)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([*cmd, "catalog", "import", str(path), "--name", name],
                                   env=env, stdout=out, stderr=err)
        # The child's own high-water mark, read while it runs (its rusage would also count
        # what it shared with this process when it was forked).
        peak_kib = 0
        while process.poll() is None:
            peak_kib = max(peak_kib, _peak_kib(process.pid))
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"import failed:\n{stdout}\n{stderr}")
    summary = " ".join(stdout.split())
    match = re.search(r"Imported ([\d,]+) rows .*?, (\w+) index, .*?, ([\d,]+) rows/s", summary)
    if not match:
        raise SystemExit(f"no summary line in:\n{stdout}")
    rows, kind = int(match[1].replace(",", "")), match[2]
    seconds = rows / float(match[3].replace(",", ""))
    return seconds, rows, peak_kib / 1024, kind


def _peak_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:  # it has just exited
        pass
    return 0


def time_cones(url: str, name: str, radius: float, n: int = 25) -> tuple[float, float]:
    """Median milliseconds and median rows of `n` cones through the service layer."""
    from astrocloud.core.config import Settings
    from astrocloud.core.db import Database
    from astrocloud.core.security.engine import Subject
    from astrocloud.core.service import Context
    from astrocloud.data.catalogs import services

    database = Database(url)
    rng = np.random.default_rng(1)
    times, counts = [], []
    with Context(database=database, settings=Settings(home=Path(tempfile.gettempdir())),
                 subject=Subject.system_subject(), via="cli") as ctx:
        services.cone(ctx, name, 10.0, 10.0, radius)  # warm the caches once
        for _ in range(n):
            ra, dec = float(rng.uniform(0, 360)), float(rng.uniform(0, 60))
            started = time.perf_counter()
            result = services.cone(ctx, name, ra, dec, radius, limit=100_000)
            times.append(time.perf_counter() - started)
            counts.append(len(result.rows))
    database.dispose()
    return statistics.median(times) * 1000, statistics.median(counts)


def time_scan(url: str, name: str, radius: float, n: int = 5) -> float:
    """The same 1-degree cone as a full scan: the distance of every row, no index."""
    import math

    from astrocloud.core.db import Database

    database = Database(url)
    rng = np.random.default_rng(1)
    times = []
    with database.engine.connect() as conn:
        for _ in range(n):
            ra, dec = float(rng.uniform(0, 360)), float(rng.uniform(0, 60))
            sql = sa.text(
                f"SELECT * FROM cat_{name} WHERE "
                "sin(radians(dec - :dec) / 2) * sin(radians(dec - :dec) / 2) + "
                ":cosdec * cos(radians(dec)) * sin(radians(ra - :ra) / 2) * "
                "sin(radians(ra - :ra) / 2) <= :lim")
            started = time.perf_counter()
            conn.execute(sql, {"ra": ra, "dec": dec, "cosdec": math.cos(math.radians(dec)),
                               "lim": math.sin(math.radians(radius) / 2) ** 2}).fetchall()
            times.append(time.perf_counter() - started)
    database.dispose()
    return statistics.median(times) * 1000


def fresh_postgres(url: str) -> str:
    base = sa.engine.make_url(url)
    name = f"astrocloud_bench_{os.getpid()}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop_postgres(url: str) -> None:
    base = sa.engine.make_url(url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{base.database}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default="parquet")
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL (a database of "
                        "its own is created and dropped)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ac-bench-catalog-", dir=os.environ.get("TMPDIR")))
    backends = [("sqlite", f"sqlite:///{work / 'bench.db'}")]
    if args.postgres:
        backends.append(("postgresql", fresh_postgres(args.postgres)))
    try:
        for fmt in args.formats.split(","):
            path = work / f"catalog.{'parquet' if fmt == 'parquet' else 'fits'}"
            started = time.perf_counter()
            generate(path, args.rows, fmt)
            print(f"\n{args.rows:,} rows, {fmt} ({path.stat().st_size / 2**20:.0f} MiB, "
                  f"generated in {time.perf_counter() - started:.1f} s)\n")
            read_s, rows = time_read(path)
            print("| back-end | measurement | seconds | rows/s | ratio to bare insert |")
            print("| --- | --- | ---: | ---: | ---: |")
            for backend, url in backends:
                bare_s, _ = bare_insert(url, path)
                name = f"bench_{fmt}"
                import_s, imported, peak, kind = run_import(url, work / f"home-{backend}",
                                                            path, name)
                assert imported == rows, (imported, rows)
                for label, seconds in (("baseline: read and convert only", read_s),
                                       ("baseline: bare insert, no index", bare_s),
                                       (f"import ({kind} index), peak {peak:.0f} MiB",
                                        import_s)):
                    print(f"| {backend} | {label} | {seconds:.2f} | {rows / seconds:,.0f} | "
                          f"{bare_s / seconds:.2f} |")
                cone_deg, n_deg = time_cones(url, name, 1.0)
                cone_min, n_min = time_cones(url, name, 1 / 60)
                scan = time_scan(url, name, 1.0)
                print(f"| {backend} | cone 1° ({n_deg:.0f} rows), median ms | {cone_deg:.1f} "
                      f"| | |")
                print(f"| {backend} | cone 1′ ({n_min:.0f} rows), median ms | {cone_min:.1f} "
                      f"| | |")
                print(f"| {backend} | baseline: cone 1° as a full scan, median ms | "
                      f"{scan:.1f} | | |")
                sys.stdout.flush()
                # the next format starts from an empty database
                subprocess.run([sys.executable, "-m", "astrocloud", "catalog", "delete", name],
                               env={**{k: v for k, v in os.environ.items()
                                       if not k.startswith("ASTROCLOUD_")},
                                    "ASTROCLOUD_HOME": str(work / f"home-{backend}"),
                                    "ASTROCLOUD_DATABASE_URL": url},
                               check=True, capture_output=True)
    finally:
        for backend, url in backends:
            if backend == "postgresql":
                drop_postgres(url)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
