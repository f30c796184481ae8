"""Cross-match rate, in memory and in the database, against baselines measured in the same run.

Two synthetic tables of N rows each (default 1,000,000), uniform over 400 square degrees (RA
0–20°, Dec −10–10°): the right one holds a counterpart of 80 % of the left rows, scattered by
0.3″, and 20 % unrelated positions. Matched within 1″:

* baseline "sort": numpy sorting both inputs' positions once (argsort of RA) — the least any
  sort-based match must do; and "read": reading both catalogs' rows out of the database;
* in memory: `engines.match_arrays` (the zone match) on the arrays, best and all;
* through the service (`services.crossmatch`, as the system, with its usage row) on catalogs
  imported into SQLite (HEALPix) and, given --postgres, PostgreSQL (q3c and HEALPix): the
  in-memory engine (rows read from the database, matched, the result table built) and the
  database engine (the join, streamed). The database engine runs on a left catalog of
  --db-left rows (default 100,000) against the full right one, as 1M × 1M joins in SQLite take
  long; say so when quoting the figures.

Usage:  python benchmarks/bench_crossmatch.py [--rows 1000000] [--db-left 100000]
                                              [--postgres postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RADIUS = 1.0  # arcsec


def positions(rows: int, seed: int = 42):
    rng = np.random.default_rng(seed)
    ra1 = rng.uniform(0, 20, rows)
    dec1 = rng.uniform(-10, 10, rows)
    twin = rng.random(rows) < 0.8
    ra2 = np.where(twin, ra1 + rng.normal(0, 0.3 / 3600, rows) / np.cos(np.radians(dec1)),
                   rng.uniform(0, 20, rows))
    dec2 = np.where(twin, dec1 + rng.normal(0, 0.3 / 3600, rows), rng.uniform(-10, 10, rows))
    return ra1, dec1, np.mod(ra2, 360.0), dec2


def write(path: Path, ra: np.ndarray, dec: np.ndarray, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    n = len(ra)
    pq.write_table(pa.table({"source_id": np.arange(1, n + 1, dtype=np.int64), "ra": ra,
                             "dec": dec, "gmag": rng.normal(17, 2, n).astype(np.float32),
                             "rmag": rng.normal(16.5, 2, n).astype(np.float32)}), path)
    return path


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


def line(label: str, seconds: float, rows: int, base: float | None = None,
         matched: int | None = None) -> None:
    ratio = f"{seconds / base:6.1f}×" if base else "      "
    found = f"{matched:>10,}" if matched is not None else " " * 10
    print(f"| {label:<52} | {seconds:8.2f} | {rows / seconds:>12,.0f} | {ratio} | {found} |")


def header(title: str) -> None:
    print(f"\n### {title}\n")
    print(f"| {'what':<52} | {'seconds':>8} | {'rows/s':>12} | {'ratio':>7}| {'matches':>10} |")
    print(f"|{'-' * 54}|{'-' * 10}:|{'-' * 14}:|{'-' * 8}:|{'-' * 12}:|")


def in_memory(ra1, dec1, ra2, dec2) -> None:
    from astrocloud.data.xmatch import engines

    rows = len(ra1) + len(ra2)
    header(f"In memory, {len(ra1):,} × {len(ra2):,} within {RADIUS:g}″")
    sort, _ = timed(lambda: (np.argsort(ra1), np.argsort(ra2)))
    line("baseline: numpy argsort of both inputs", sort, rows)
    for mode in ("best", "all"):
        seconds, pairs = timed(engines.match_arrays, ra1, dec1, ra2, dec2, RADIUS, mode)
        line(f"zone match, {mode}", seconds, rows, sort, len(pairs))
    try:
        from astropy import units as u
        from astropy.coordinates import SkyCoord, match_coordinates_sky

        left, right = SkyCoord(ra1 * u.deg, dec1 * u.deg), SkyCoord(ra2 * u.deg, dec2 * u.deg)
        seconds, (_, sep, _) = timed(match_coordinates_sky, left, right)
        line("astropy match_coordinates_sky (nearest)", seconds, rows, sort,
             int((sep.arcsec <= RADIUS).sum()))
    except ImportError:  # astropy's matching needs scipy, which is not installed
        print("| astropy match_coordinates_sky: needs scipy (not installed)"
              " | | | | |")


def in_database(url: str, label: str, paths: dict[str, Path], rows: int, db_left: int,
                indexes: list[str]) -> None:
    import sqlalchemy as sa

    from astrocloud.channels import policy_files
    from astrocloud.core.config import Settings
    from astrocloud.core.db import Database
    from astrocloud.core.migrate import upgrade
    from astrocloud.core.security.engine import Subject
    from astrocloud.core.security.services import seed_policies
    from astrocloud.core.service import Context
    from astrocloud.data.catalogs import services as catalogs
    from astrocloud.data.xmatch import services

    database = Database(url)
    upgrade(database)
    with database.session() as session:
        seed_policies(session, policy_files())
    settings = Settings(home=Path(tempfile.gettempdir()))
    with Context(database=database, settings=settings, subject=Subject.system_subject(),
                 via="cli") as ctx:
        for index in indexes:
            names = {k: f"bx_{k}_{index}" for k in paths}
            for key, path in paths.items():
                try:
                    catalogs.delete_catalog(ctx, names[key])
                except Exception:  # noqa: BLE001 - not there yet
                    ctx.db.rollback()
                catalogs.import_catalog(ctx, path, name=names[key], index=index)
            header(f"{label}, {index} catalogs, within {RADIUS:g}″")
            table = catalogs.catalog_table(catalogs.get_catalog(ctx, names["left"]))
            read, _ = timed(lambda t=table: ctx.db.execute(sa.select(*t.c)).all())
            line(f"baseline: read {rows:,} rows of one catalog", read, rows)
            for mode in ("best", "all"):
                seconds, result = timed(services.crossmatch, ctx, left=names["left"],
                                        right=names["right"], radius_arcsec=RADIUS, mode=mode,
                                        limit=services.MAX_LIMIT, engine="memory")
                line(f"service, memory engine, {rows:,} × {rows:,}, {mode}", seconds,
                     2 * rows, 2 * read, result.rows)
            for mode in ("best", "all"):
                seconds, result = timed(services.crossmatch, ctx, left=names["small"],
                                        right=names["right"], radius_arcsec=RADIUS, mode=mode,
                                        limit=services.MAX_LIMIT, engine="database")
                line(f"service, database engine, {db_left:,} × {rows:,}, {mode}", seconds,
                     db_left + rows, read * (db_left + rows) / rows, result.rows)
    database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db-left", type=int, default=100_000)
    parser.add_argument("--postgres", default=None)
    parser.add_argument("--no-database", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    ra1, dec1, ra2, dec2 = positions(args.rows)
    in_memory(ra1, dec1, ra2, dec2)
    if args.no_database:
        return
    with tempfile.TemporaryDirectory(prefix="bench-xmatch-") as tmp:
        tmp = Path(tmp)
        paths = {"left": write(tmp / "left.parquet", ra1, dec1, 1),
                 "right": write(tmp / "right.parquet", ra2, dec2, 2),
                 "small": write(tmp / "small.parquet", ra1[:args.db_left], dec1[:args.db_left],
                                3)}
        if not args.no_sqlite:
            in_database(f"sqlite:///{tmp / 'bench.db'}", "SQLite", paths, args.rows,
                        args.db_left, ["healpix"])
        if args.postgres:
            in_database(args.postgres, "PostgreSQL", paths, args.rows, args.db_left,
                        ["q3c", "healpix"])


if __name__ == "__main__":
    main()
