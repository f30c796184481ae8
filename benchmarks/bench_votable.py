"""Result-writer rows per second (VOTable BINARY2 and TABLEDATA, CSV) against astropy's VOTable
BINARY2 writer, measured in the same run.

A catalog-like result of N rows (default 1,000,000) and 10 columns — a long id, ra/dec doubles,
four float magnitudes, a short name, an int flag, an observation timestamp — is generated once
as Python tuples in batches of B rows (default 10,000), which is what a SQLAlchemy
`result.partitions(B)` hands the writers. Each writer is timed from the first batch to the last
byte (the bytes are counted, not kept). The baseline is astropy: a VOTable built from an astropy
Table holding the same rows (on --baseline-rows, default 100,000; converting the tuples to the
table is not timed), written as BINARY2.

Usage:  python benchmarks/bench_votable.py [--rows 1000000] [--batch 10000]
                                           [--baseline-rows 100000]
Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import io
import time
from datetime import datetime, timedelta

import numpy as np

from astrocloud.data.vo import formats
from astrocloud.data.vo.columns import Column

COLUMNS = [
    Column("obsid", "long", ucd="meta.id;meta.main"),
    Column("ra", "double", unit="deg", ucd="pos.eq.ra;meta.main"),
    Column("dec", "double", unit="deg", ucd="pos.eq.dec;meta.main"),
    Column("mag_u", "float", unit="mag", ucd="phot.mag;em.opt.U"),
    Column("mag_g", "float", unit="mag", ucd="phot.mag;em.opt.B"),
    Column("mag_r", "float", unit="mag", ucd="phot.mag;em.opt.R"),
    Column("mag_i", "float", unit="mag", ucd="phot.mag;em.opt.I"),
    Column("name", "char", "*", ucd="meta.id"),
    Column("flag", "int", ucd="meta.code"),
    Column("obs_time", "char", "*", xtype="timestamp", ucd="time.epoch"),
]


def generate(rows: int, batch: int, seed: int = 42) -> list[list[tuple]]:
    """Rows as Python tuples in batches, with ~1% NULL magnitudes."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, rows)
    dec = np.degrees(np.arcsin(rng.uniform(-0.2, 1.0, rows)))
    mags = [rng.normal(m, 1.5, rows) for m in (18.0, 16.5, 16.0, 15.7)]
    mags = [np.round(m, 3).tolist() for m in mags]
    for m in mags:
        for i in rng.choice(rows, rows // 100, replace=False):
            m[i] = None
    names = [f"J{a:09.5f}{d:+09.5f}" for a, d in zip(ra.tolist(), dec.tolist(), strict=True)]
    start = datetime(2024, 1, 1)
    seconds = rng.integers(0, 86400 * 365, rows).tolist()
    times = [start + timedelta(seconds=s) for s in seconds]
    columns = [list(range(10**9, 10**9 + rows)), ra.tolist(), dec.tolist(), *mags, names,
               rng.integers(0, 16, rows).tolist(), times]
    table = list(zip(*columns, strict=True))
    return [table[i:i + batch] for i in range(0, rows, batch)]


def time_writer(fmt: formats.Format, batches: list[list[tuple]]) -> tuple[float, int]:
    started = time.perf_counter()
    size = 0
    for chunk in formats.stream(fmt, COLUMNS, batches):
        size += len(chunk)
    return time.perf_counter() - started, size


def time_astropy(batches: list[list[tuple]]) -> float:
    """astropy's BINARY2 writer on the same rows (building the Table is not timed)."""
    from astropy.io.votable import from_table
    from astropy.table import MaskedColumn, Table

    rows = [r for b in batches for r in b]
    table = Table()
    for i, c in enumerate(COLUMNS):
        values = [r[i] for r in rows]
        if c.name == "obs_time":
            values = [v.isoformat() for v in values]
        mask = [v is None for v in values]
        if c.datatype == "float":
            data = np.array([np.nan if v is None else v for v in values], np.float32)
        else:
            data = np.array(values)
        table[c.name] = MaskedColumn(data, mask=mask)
    votable = from_table(table)
    votable.get_first_table().format = "binary2"
    started = time.perf_counter()
    votable.to_xml(io.BytesIO())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    args = parser.parse_args()

    batches = generate(args.rows, args.batch)
    baseline_rows = min(args.baseline_rows, args.rows)
    baseline = time_astropy(generate(baseline_rows, args.batch))
    base_rate = baseline_rows / baseline
    print(f"\n{args.rows:,} rows × {len(COLUMNS)} columns, batches of {args.batch:,}\n")
    print("| writer | rows | seconds | rows/s | MiB | ratio to astropy BINARY2 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| baseline: astropy BINARY2 | {baseline_rows:,} | {baseline:.2f} | "
          f"{base_rate:,.0f} | | 1.0 |")
    for label, fmt in (("VOTable BINARY2", formats.VOTABLE),
                       ("VOTable TABLEDATA", formats.VOTABLE_TD), ("CSV", formats.CSV)):
        seconds, size = time_writer(fmt, batches)
        rate = args.rows / seconds
        print(f"| {label} | {args.rows:,} | {seconds:.2f} | {rate:,.0f} | "
              f"{size / 2**20:.0f} | {rate / base_rate:.1f} |")


if __name__ == "__main__":
    main()
