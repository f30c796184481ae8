"""The VO services over HTTP on a large catalog — Simple Cone Search, TAP sync cones and TAP
sync streaming — against baselines measured in the same run; and q3c against pgsphere on the
same PostgreSQL table.

A catalog of N rows (default 10,000,000) over the whole sky, with the 17 columns of the import
benchmark (ids, designations, positions, magnitudes, signal-to-noise ratios, stellar
parameters, classes), is generated once as Parquet. Then, on SQLite (HEALPix index) and, given
--postgres URL, on PostgreSQL (q3c index, the default there):

* the catalog is imported by `astrocloud catalog import` into a fresh home (and database);
* a real `astrocloud serve` (embedded, its own home) listens on a free loopback port; after a
  warm-up, httpx clients with keep-alive measure:
  - baseline: `GET /api/health`, the floor of one HTTP round trip;
  - Simple Cone Search (`/scs/<name>?RA=&DEC=&SR=`) at 1′ and 0.5° around random centres:
    p50 and p99 of sequential requests, and requests/s, p50, p99 with 8 concurrent clients
    (threads, each with its own client) for --duration seconds;
  - an ADQL CONTAINS cone of 1′ through TAP sync (`POST /tap/sync`), p50 and p99;
  - TAP sync streaming of `SELECT TOP 1000000 *` (MAXREC 1000000) as VOTable BINARY2 and as
    CSV, the response read to its end: rows/s;
* baselines without HTTP: the same cones as SQL through the database driver (the statement the
  service builds, compiled once, run on the raw DB-API connection), and the driver's fetch of
  the same 1,000,000 rows (rows/s).

On PostgreSQL, q3c against pgsphere: a pgsphere GiST index on `spoint(radians(ra),
radians(dec))` is added to the same table, and cones of 1′ and 0.5° are timed in SQL
(`q3c_radial_query`, and `q3c_join` as the cone services run it for cones up to 1°, against
`spoint(...) <@ scircle(...)`), p50 over the same random centres.

Usage:  python benchmarks/bench_vo.py [--rows 10000000] [--postgres postgresql+psycopg://...]
                                      [--skip-sqlite] [--requests 300] [--duration 10]
                                      [--cones-only | --streams-only] [--keep]
        python benchmarks/bench_vo.py --reuse WORK [--postgres <the kept database's URL>] ...
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
import threading
import time
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_catalog_import import drop_postgres, fresh_postgres  # noqa: E402

NAME = "vobench"
STREAM_ROWS = 1_000_000
RADII = (("1′", 1 / 60), ("0.5°", 0.5))


# ---- the catalog ------------------------------------------------------------------------------


def generate(path: Path, rows: int, seed: int = 42, chunk: int = 1_000_000) -> None:
    """The import benchmark's columns, positions uniform over the whole sky, written in row
    groups of 100,000 a million rows at a time (bounded memory)."""
    rng = np.random.default_rng(seed)
    units = {"ra": "deg", "dec": "deg", "mag_g": "mag", "mag_r": "mag", "mag_i": "mag",
             "teff": "K", "logg": "log(cm.s**-2)", "feh": "dex"}
    writer = None
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ra = rng.uniform(0, 360, n)
        dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
        cols = {
            "obsid": np.arange(100_000_000 + start, 100_000_000 + start + n, dtype=np.int64),
            "designation": np.char.add("J", np.char.mod("%015.6f", ra * 1e3)),
            "ra": ra, "dec": dec,
            "mag_g": rng.normal(16.5, 1.5, n).astype(np.float32),
            "mag_r": rng.normal(16.0, 1.5, n).astype(np.float32),
            "mag_i": rng.normal(15.7, 1.5, n).astype(np.float32),
            "snr_g": rng.gamma(2, 20, n).astype(np.float32),
            "snr_r": rng.gamma(2, 25, n).astype(np.float32),
            "snr_i": rng.gamma(2, 25, n).astype(np.float32),
            "z": rng.normal(0, 1e-4, n).astype(np.float32),
            "z_err": rng.gamma(1, 1e-5, n).astype(np.float32),
            "teff": rng.normal(5500, 800, n).astype(np.float32),
            "logg": rng.normal(4.2, 0.6, n).astype(np.float32),
            "feh": rng.normal(-0.2, 0.4, n).astype(np.float32),
            "class": np.array(["STAR", "GALAXY", "QSO", "Unknown"])[
                rng.choice(4, n, p=[0.9, 0.05, 0.02, 0.03])],
            "fibermask": rng.integers(0, 16, n).astype(np.int16),
        }
        table = pa.table({k: pa.array(v) for k, v in cols.items()})
        if writer is None:
            schema = pa.schema([pa.field(f.name, f.type, metadata={"unit": units[f.name]}
                                         if f.name in units else None) for f in table.schema])
            writer = pq.ParquetWriter(path, schema)
        writer.write_table(table.cast(schema), row_group_size=100_000)
    writer.close()


def cli_env(home: Path, url: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASTROCLOUD_")}
    env.update(ASTROCLOUD_HOME=str(home), COLUMNS="200")
    if url:
        env["ASTROCLOUD_DATABASE_URL"] = url
    return env


def import_catalog(env: dict, path: Path, index: str) -> tuple[float, str]:
    cli = [sys.executable, "-m", "astrocloud"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
    started = time.perf_counter()
    done = subprocess.run([*cli, "catalog", "import", str(path), "--name", NAME,
                           "--index", index], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"import failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started, " ".join(done.stdout.split())


# ---- the server -------------------------------------------------------------------------------


def new_client(base: str, timeout: float = 60) -> httpx.Client:
    """A keep-alive client that keeps no cookies, as a script's client does. (One that keeps
    them gets the portal's anonymous CSRF cookie from any GET outside /api/, and is then
    refused on POST /tap/sync without a CSRF token.)"""
    return httpx.Client(base_url=base, timeout=timeout, cookies=CookieJar(
        DefaultCookiePolicy(allowed_domains=[])))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "astrocloud", "serve", "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/api/health", timeout=1).raise_for_status()
            return server, base
        except httpx.HTTPError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("the server did not start") from None
            time.sleep(0.2)


def centres(n: int, seed: int) -> list[tuple[float, float]]:
    """Random centres uniform over the sphere (the catalog covers the whole sky)."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return list(zip(ra.tolist(), dec.tolist(), strict=True))


def scs_request(radius: float):
    def request(client: httpx.Client, ra: float, dec: float) -> httpx.Response:
        return client.get(f"/scs/{NAME}", params={"RA": f"{ra:.6f}", "DEC": f"{dec:.6f}",
                                                  "SR": f"{radius:.8f}"})
    return request


def health_request(client: httpx.Client, ra: float, dec: float) -> httpx.Response:
    return client.get("/api/health")


def tap_cone_request(client: httpx.Client, ra: float, dec: float) -> httpx.Response:
    query = (f"SELECT obsid, designation, ra, dec, mag_g FROM catalogs.{NAME} WHERE "
             f"CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra:.6f}, {dec:.6f}, 1/60.)) = 1")
    return client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query})


def sequential(base: str, request, n: int, seed: int) -> dict:
    """p50 and p99 in ms of `n` requests one after the other on one keep-alive client."""
    times = []
    with new_client(base) as client:
        for ra, dec in centres(n, seed):
            started = time.perf_counter()
            response = request(client, ra, dec)
            response.read()
            times.append(time.perf_counter() - started)
            if response.status_code != 200 or b"QUERY_STATUS\" value=\"ERROR" in \
                    response.content:
                raise SystemExit(f"request failed: {response.status_code} "
                                 f"{response.text[:500]}")
    return {"n": n, "p50": _pct(times, 50), "p99": _pct(times, 99)}


def concurrent(base: str, request, clients: int, seconds: float, seed: int) -> dict:
    """Requests/s, p50 and p99 (ms) of `clients` threads, each with its own keep-alive client,
    sending requests back to back for `seconds`."""
    times: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    go = threading.Barrier(clients + 1)
    stop = time.perf_counter() + 1e9

    def work(i: int) -> None:
        points = centres(100_000, seed + i)
        with new_client(base) as client:
            request(client, *points[-1]).read()  # open the connection
            go.wait()
            for ra, dec in points:
                if time.perf_counter() >= stop:
                    break
                started = time.perf_counter()
                response = request(client, ra, dec)
                response.read()
                times[i].append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                    break

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    go.wait()
    started = time.perf_counter()
    stop = started + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"concurrent requests failed: {failures[0]}")
    every = [t for per in times for t in per]
    return {"n": len(every), "rps": len(every) / elapsed, "p50": _pct(every, 50),
            "p99": _pct(every, 99)}


def stream(base: str, fmt: str, expected: int) -> dict:
    """TAP sync `SELECT TOP 1000000 *`, the response read to its end: rows/s and MiB."""
    query = f"SELECT TOP {STREAM_ROWS} * FROM catalogs.{NAME}"
    size = 0
    with new_client(base, 600) as client:
        started = time.perf_counter()
        with client.stream("POST", "/tap/sync", data={
                "LANG": "ADQL", "QUERY": query, "MAXREC": str(STREAM_ROWS),
                "RESPONSEFORMAT": fmt}) as response:
            if response.status_code != 200:
                response.read()
                raise SystemExit(f"stream failed: {response.text[:500]}")
            tail = b""
            for chunk in response.iter_raw(1 << 20):
                size += len(chunk)
                tail = (tail + chunk)[-4096:]
        elapsed = time.perf_counter() - started
    if fmt != "csv" and b"QUERY_STATUS\" value=\"ERROR" in tail:
        raise SystemExit(f"stream ended in an error: {tail[-600:]!r}")
    return {"seconds": elapsed, "rows_s": expected / elapsed, "mib": size / 2**20}


def _pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) * 1000


# ---- baselines in the database driver ---------------------------------------------------------


def _catalog(database):
    from sqlalchemy.orm import Session

    from astrocloud.data.catalogs import services
    from astrocloud.data.catalogs.models import Catalog

    with Session(database.engine) as session:
        catalog = session.scalar(sa.select(Catalog).where(Catalog.name == NAME))
        catalog.columns  # noqa: B018 — load them before the session closes
        session.expunge_all()
    return catalog, services.catalog_table(catalog)


def driver_cones(url: str, radius: float, n: int, seed: int) -> dict:
    """The statement the cone service builds, compiled to SQL text beforehand, run on the raw
    DB-API connection: p50 and p99 in ms, median rows."""
    from astrocloud.core.db import Database
    from astrocloud.data.catalogs.services import cone_statement

    database = Database(url)
    catalog, table = _catalog(database)
    statements = []
    for ra, dec in centres(n, seed):
        compiled = cone_statement(catalog, table, ra, dec, radius).compile(
            dialect=database.engine.dialect, compile_kwargs={"literal_binds": True})
        statements.append(str(compiled).replace("%", "%%")
                          if database.dialect == "postgresql" else str(compiled))
    times, counts = [], []
    with database.engine.connect() as conn:
        raw = conn.connection.driver_connection
        for sql in statements:
            started = time.perf_counter()
            cursor = raw.cursor()
            cursor.execute(sql)
            counts.append(len(cursor.fetchall()))
            cursor.close()
            times.append(time.perf_counter() - started)
        conn.rollback()
    database.dispose()
    return {"p50": _pct(times, 50), "p99": _pct(times, 99), "rows": statistics.median(counts)}


def driver_fetch(url: str) -> dict:
    """The driver's fetch of the catalog's first 1,000,000 rows, 10,000 at a time (a
    server-side cursor on PostgreSQL, as TAP streams): rows/s."""
    from astrocloud.core.db import Database

    database = Database(url)
    catalog, table = _catalog(database)
    names = ", ".join(f'"{c.name}"' for c in catalog.columns)
    sql = f"SELECT {names} FROM {table.name} LIMIT {STREAM_ROWS}"
    rows = 0
    with database.engine.connect() as conn:
        raw = conn.connection.driver_connection
        started = time.perf_counter()
        cursor = raw.cursor(name="bench") if database.dialect == "postgresql" else raw.cursor()
        cursor.execute(sql)
        while batch := cursor.fetchmany(10_000):
            rows += len(batch)
        cursor.close()
        elapsed = time.perf_counter() - started
        conn.rollback()
    database.dispose()
    return {"rows": rows, "rows_s": rows / elapsed}


# ---- q3c against pgsphere ---------------------------------------------------------------------


def install_pgsphere(engine) -> None:
    """CREATE EXTENSION pg_sphere; Debian's pgsphere 1.2.0 script fails on PostgreSQL 15 at two
    DaCHS-compatibility `@` operators on smoc ("commutator operator @> is already the commutator
    of operator <@"), so then its script is run without those two (not used here). The same
    workaround as tests/data/test_vo_adql.py."""
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_sphere")
        return
    except sa.exc.DBAPIError:
        pass
    with engine.begin() as conn:
        if conn.exec_driver_sql("SELECT 1 FROM pg_type WHERE typname = 'spoint'").first():
            return
        share = conn.exec_driver_sql(
            "SELECT setting FROM pg_config WHERE name = 'SHAREDIR'").scalar()
        version = conn.exec_driver_sql("SELECT default_version FROM pg_available_extensions "
                                       "WHERE name = 'pg_sphere'").scalar()
        with open(f"{share}/extension/pg_sphere--{version}.sql") as file:
            script = file.read()
        script = "\n".join(line for line in script.splitlines() if not line.startswith("\\"))
        script = script.replace("MODULE_PATHNAME", "$libdir/pg_sphere")
        script = re.sub(r"CREATE OPERATOR @ \(\s*LEFTARG\s*=\s*\w+,\s*RIGHTARG\s*=\s*smoc,"
                        r".*?\);", "", script, flags=re.DOTALL)
        conn.exec_driver_sql(script)


def q3c_vs_pgsphere(url: str, n: int, seed: int) -> tuple[float, list[tuple]]:
    """Build the pgsphere index (seconds), then time both searches on the same centres:
    [(radius label, method, p50 ms, p99 ms, median rows)]."""
    from astrocloud.core.db import Database

    database = Database(url)
    _, table = _catalog(database)
    engine = sa.create_engine(sa.engine.make_url(url))
    install_pgsphere(engine)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {table.name}_spoint ON {table.name} "
                             "USING gist "
                             "(spoint(radians(ra), radians(dec)))")
        conn.exec_driver_sql(f"ANALYZE {table.name}")
    build = time.perf_counter() - started
    methods = {
        "q3c (q3c_radial_query)":
            f"SELECT * FROM {table.name} WHERE q3c_radial_query(ra, dec, %s, %s, %s)",
        # what the cone services run for cones up to 1° (importer.Q3C_JOIN_MAX_RADIUS)
        "q3c (q3c_join)": f"SELECT * FROM {table.name} WHERE q3c_join(%s, %s, ra, dec, %s)",
        "pgsphere": f"SELECT * FROM {table.name} WHERE spoint(radians(ra), radians(dec)) <@ "
                    "scircle(spoint(radians(%s), radians(%s)), radians(%s))",
    }
    results = []
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        for label, radius in RADII:
            points = centres(n, seed)
            for method, sql in methods.items():
                cursor = raw.cursor()
                plan = cursor.execute("EXPLAIN " + sql, (10.0, 10.0, radius)).fetchall()
                uses_index = any("Index" in row[0] for row in plan)
                times, counts = [], []
                for ra, dec in points:
                    t = time.perf_counter()
                    cursor.execute(sql, (ra, dec, radius))
                    counts.append(len(cursor.fetchall()))
                    times.append(time.perf_counter() - t)
                cursor.close()
                results.append((label, method + ("" if uses_index else " (NO INDEX USED)"),
                                _pct(times, 50), _pct(times, 99), statistics.median(counts),
                                sum(counts)))
        conn.rollback()
    engine.dispose()
    database.dispose()
    return build, results


# ---- the run ----------------------------------------------------------------------------------


def measure(backend: str, env: dict, url: str, args) -> list[tuple]:
    """All HTTP and driver measurements on one back-end: Markdown table rows."""
    n = args.requests
    rows: list[tuple] = []
    server, base = start_server(env)
    try:
        # Warm up: the page cache, the connection pools, TAP_SCHEMA, the ADQL translator.
        sequential(base, scs_request(0.5), 30, 99)
        sequential(base, tap_cone_request, 30, 98)
        health = sequential(base, health_request, n, 1)
        rows.append(("baseline: `GET /api/health`, sequential", health, None))
        if not args.streams_only:
            rows += cones(base, url, args)
        if args.cones_only:
            return rows
        fetch = driver_fetch(url)
        rows.append(("baseline: driver fetch of 1,000,000 rows", fetch, None))
        for label, fmt in (("VOTable BINARY2", "votable"), ("CSV", "csv")):
            result = stream(base, fmt, fetch["rows"])
            rows.append((f"TAP sync `SELECT TOP 1000000 *` as {label}", result,
                         fetch["rows_s"]))
    finally:
        server.terminate()
        server.wait(30)
    return rows


def cones(base: str, url: str, args) -> list[tuple]:
    """Simple Cone Search and the TAP sync cone, with their driver baselines."""
    n = args.requests
    rows: list[tuple] = []
    for label, radius in RADII:
        drv = driver_cones(url, radius, n, 2)
        seq = sequential(base, scs_request(radius), n, 2)
        rows.append((f"baseline: cone {label} in the driver (≈{drv['rows']:.0f} rows)",
                     drv, None))
        rows.append((f"SCS cone {label}, sequential", seq, drv["p50"]))
    health8 = concurrent(base, health_request, 8, args.duration, 10)
    rows.append(("baseline: `GET /api/health`, 8 clients", health8, None))
    for label, radius in RADII:
        par = concurrent(base, scs_request(radius), 8, args.duration, 20)
        rows.append((f"SCS cone {label}, 8 clients", par, None))
    tap = sequential(base, tap_cone_request, n, 3)
    drv = driver_cones(url, 1 / 60, n, 3)
    rows.append(("TAP sync ADQL CONTAINS cone 1′, sequential", tap, drv["p50"]))
    return rows


def print_table(backend: str, rows: list[tuple], health: dict) -> None:
    print(f"\n{backend}\n")
    print("| measurement | requests | p50 ms | p99 ms | requests/s | rows/s | "
          "p50 − health p50 | ratio to driver |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, r, driver in rows:
        cells = [label, f"{r['n']:,}" if "n" in r else "",
                 f"{r['p50']:.2f}" if "p50" in r else "",
                 f"{r['p99']:.2f}" if "p99" in r else "",
                 f"{r['rps']:,.0f}" if "rps" in r else "",
                 f"{r['rows_s']:,.0f}" if "rows_s" in r else "", "", ""]
        if "p50" in r and "health" not in label and "driver" not in label and \
                "rps" not in r:  # above the sequential round trip: sequential requests only
            cells[6] = f"{r['p50'] - health['p50']:+.2f}"
        if driver and "p50" in r:
            cells[7] = f"{r['p50'] / driver:.1f}×"
        elif driver and "rows_s" in r:
            cells[7] = f"{r['rows_s'] / driver:.2f}"
        if "mib" in r:
            cells[0] += f" ({r['mib']:.0f} MiB)"
        print("| " + " | ".join(cells) + " |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL (a database of "
                        "its own is created and dropped)")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per "
                        "measurement")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each "
                        "concurrent measurement")
    parser.add_argument("--streams-only", action="store_true", help="skip the cones (and "
                        "q3c against pgsphere): only TAP streaming and its driver baseline")
    parser.add_argument("--cones-only", action="store_true", help="skip TAP streaming (and "
                        "q3c against pgsphere): only the cones and their baselines")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and database")
    parser.add_argument("--reuse", metavar="WORK", default=None, help="measure again the homes "
                        "a --keep run left in WORK (with --postgres, the URL of the database it "
                        "kept): nothing is generated, imported or removed")
    args = parser.parse_args()

    if args.reuse:
        args.keep = True
    work = Path(args.reuse) if args.reuse else \
        Path(tempfile.mkdtemp(prefix="ac-bench-vo-", dir=os.environ.get("TMPDIR")))
    backends = [] if args.skip_sqlite else [("sqlite", "healpix", None)]
    pg_url = None
    if args.postgres:
        pg_url = args.postgres if args.reuse else fresh_postgres(args.postgres)
        backends.append(("postgresql", "q3c", pg_url))
    try:
        path = work / "catalog.parquet"
        if not args.reuse:
            started = time.perf_counter()
            generate(path, args.rows)
            print(f"{args.rows:,} rows over the whole sky, Parquet "
                  f"{path.stat().st_size / 2**20:.0f} MiB, generated in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
        for backend, index, url in backends:
            home = work / f"home-{backend}"
            env = cli_env(home, url)
            if not args.reuse:
                seconds, summary = import_catalog(env, path, index)
                print(f"{backend}: imported in {seconds:.0f} s — {summary}", flush=True)
            url = url or f"sqlite:///{home / 'astrocloud.db'}"
            if backend == "sqlite" and not (home / "astrocloud.db").exists():
                found = sorted(home.rglob("*.db"))
                url = f"sqlite:///{found[0]}"
            rows = measure(backend, env, url, args)
            print_table(f"{backend} ({index} index), {args.rows:,} rows", rows,
                        rows[0][1])
            if backend == "postgresql" and not (args.streams_only or args.cones_only):
                build, results = q3c_vs_pgsphere(url, args.requests, 7)
                print(f"\nq3c against pgsphere on the same table (pgsphere GiST index built in "
                      f"{build:.0f} s); SQL through the driver, {args.requests} random centres"
                      "\n")
                print("| cone | index | p50 ms | p99 ms | median rows | rows in all |")
                print("| --- | --- | ---: | ---: | ---: | ---: |")
                for label, method, p50, p99, median, total in results:
                    print(f"| {label} | {method} | {p50:.2f} | {p99:.2f} | {median:.0f} | "
                          f"{total:,} |")
                sys.stdout.flush()
            if not args.keep:
                shutil.rmtree(home, ignore_errors=True)
    finally:
        if pg_url and not args.keep:
            drop_postgres(pg_url)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}" + (f" and {pg_url}" if pg_url else ""))


if __name__ == "__main__":
    main()
