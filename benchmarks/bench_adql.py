"""The ADQL translator: translation time per query, and an ADQL CONTAINS cone run on SQLite
through the translator on a synthetic table of N rows (default 1,000,000) with a nested
HEALPix column (order 12, as the catalog importer writes it), against the same cone as a full
scan (the exact test only, no index).

Usage:  python benchmarks/bench_adql.py [--rows 1000000] [--repeat 25]
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from astropy import units as u
from astropy_healpix import lonlat_to_healpix

from astrocloud.data.catalogs.importer import HEALPIX_ORDER
from astrocloud.data.vo.adql import install_sqlite_functions, translate
from astrocloud.data.vo.columns import Column, Table

QUERIES = {
    "cone": "SELECT TOP 1000 * FROM bench.stars WHERE CONTAINS(POINT('ICRS', ra, dec), "
            "CIRCLE('ICRS', {ra}, {dec}, {r})) = 1",
    "join + group": "SELECT s.flag, COUNT(*), AVG(s.mag) FROM bench.stars AS s JOIN bench.stars "
                    "AS t ON s.id = t.id WHERE s.mag BETWEEN 10 AND 12 AND s.name LIKE 'a%' "
                    "GROUP BY s.flag HAVING COUNT(*) > 2 ORDER BY 2 DESC",
    "polygon": "SELECT id, DISTANCE(POINT(ra, dec), POINT(10, 20)) AS d FROM bench.stars WHERE "
               "CONTAINS(POINT(ra, dec), POLYGON(9, 19, 11, 19, 11, 21, 9, 21)) = 1 ORDER BY d",
}


def build(path: Path, rows: int) -> sa.Table:
    metadata = sa.MetaData()
    table = sa.Table("stars", metadata, sa.Column("id", sa.BigInteger, primary_key=True),
                     sa.Column("ra", sa.Double), sa.Column("dec", sa.Double),
                     sa.Column("mag", sa.Float), sa.Column("name", sa.Text),
                     sa.Column("flag", sa.Integer), sa.Column("_healpix", sa.BigInteger))
    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 360, rows)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, rows)))
    pixels = lonlat_to_healpix(ra * u.deg, dec * u.deg, 2 ** HEALPIX_ORDER, order="nested")
    mag = rng.uniform(8, 20, rows)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE stars (id INTEGER PRIMARY KEY, ra REAL, dec REAL, mag REAL, "
                 "name TEXT, flag INTEGER, _healpix INTEGER)")
    conn.executemany("INSERT INTO stars VALUES (?, ?, ?, ?, ?, ?, ?)",
                     ((i, float(ra[i]), float(dec[i]), float(mag[i]), f"s{i}", i % 5,
                       int(pixels[i])) for i in range(rows)))
    conn.execute("CREATE INDEX ix_stars_healpix ON stars (_healpix)")
    conn.commit()
    conn.close()
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        started = time.perf_counter()
        source = build(path, args.rows)
        print(f"built {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
        cols = tuple(Column(n, t) for n, t in (("id", "long"), ("ra", "double"),
                                                ("dec", "double"), ("mag", "double"),
                                                ("name", "char"), ("flag", "int")))
        tables = {"bench.stars": Table(name="bench.stars", columns=cols, source=source,
                                       ra="ra", dec="dec", spatial_index="healpix",
                                       healpix="_healpix", healpix_order=HEALPIX_ORDER)}
        plain = {"bench.stars": Table(name="bench.stars", columns=cols, source=source,
                                      ra="ra", dec="dec")}
        rows = ["| measure | p50 (ms) |", "|---|---|"]
        for name, text in QUERIES.items():
            adql = text.format(ra=10, dec=20, r=0.1)
            times = []
            for _ in range(args.repeat * 4):
                t0 = time.perf_counter()
                translate(adql, tables, dialect="sqlite", maxrec=10000)
                times.append(time.perf_counter() - t0)
            rows.append(f"| translate: {name} | {statistics.median(times) * 1e3:.2f} |")
        engine = sa.create_engine(f"sqlite:///{path}")
        sa.event.listen(engine, "connect", lambda c, _: install_sqlite_functions(c))
        rng = random.Random(2)
        for label, mapping, radius, repeat in (
                ("ADQL cone 0.1° (translate + run), HEALPix index", tables, 0.1, args.repeat),
                ("ADQL cone 1° (translate + run), HEALPix index", tables, 1.0, args.repeat),
                ("same 0.1° cone, full scan (no index)", plain, 0.1, 3)):
            times, found = [], 0
            with engine.connect() as conn:
                for _ in range(repeat):
                    ra, dec = rng.uniform(0, 360), rng.uniform(-60, 60)
                    t0 = time.perf_counter()
                    t = translate(QUERIES["cone"].format(ra=ra, dec=dec, r=radius), mapping,
                                  dialect="sqlite", maxrec=10000)
                    found += len(conn.execute(sa.text(t.sql), t.params).all())
                    times.append(time.perf_counter() - t0)
            rows.append(f"| {label} | {statistics.median(times) * 1e3:.1f} "
                        f"(≈{found / repeat:.0f} rows) |")
        engine.dispose()
        print("\n".join(rows))


if __name__ == "__main__":
    main()
