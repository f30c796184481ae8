"""The two ways a positional cross-match is computed.

In memory — `match_arrays`: a declination-zone match in numpy (no tree library needed). The
right-hand positions are sorted by (zone, RA) with zones as tall as the radius; each left
position looks in its own zone and the two beside it, within the RA window the cone spans at
its declination (the whole circle near a pole, split in two across RA = 0), found by binary
search. Candidates are expanded a bounded batch at a time and the haversine distance decides.
Everything is vectorised: a million by a million positions match in about a second.

In the database — `database_statement`: a SELECT yielding the matched rows of two catalogs,
streamed by the caller. Two q3c catalogs are joined with `q3c_join` (and the nearest one per
left row taken through a LATERAL subquery); two HEALPix catalogs are joined pixel to pixel: each
left row's pixel, at a level coarse enough for the radius, names its own and its eight
neighbours' ranges of fine pixels (a small temporary table), and the right rows in those ranges
come through the B-tree index on their HEALPix column; the exact distance decides.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from astrocloud.data.catalogs import importer
from astrocloud.data.catalogs.importer import HEALPIX_COLUMN

MIN_ZONE_DEG = 2 / 3600  # zones are never thinner than this (finer buys nothing)
MAX_CANDIDATES = 4_000_000  # candidate pairs examined at once: bounds the memory
ZONE_WIDTH = 512.0  # the key of a right position is zone * ZONE_WIDTH + RA (RA < 512)
EDGE = 1e-6  # degrees added to every search window against rounding in the keys


@dataclass
class Pairs:
    """Matched pairs: indices into the left and right inputs and the separation (arcsec),
    ordered by left index, then by separation, then by right index."""

    left: np.ndarray
    right: np.ndarray
    separation: np.ndarray
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.left)


def _haversine(ra1, dec1, cos1, ra2, dec2, cos2) -> np.ndarray:
    """sin²(d/2) of the great-circle distance d (arguments in radians, with cos(dec))."""
    s_dec = np.sin((dec2 - dec1) / 2)
    s_ra = np.sin((ra2 - ra1) / 2)
    return s_dec * s_dec + cos1 * cos2 * s_ra * s_ra


def separation_arcsec(hav: np.ndarray) -> np.ndarray:
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(hav, 0.0, 1.0)))) * 3600.0


class _Zones:
    """The right-hand positions sorted by (zone, RA) for binary search."""

    def __init__(self, ra: np.ndarray, dec: np.ndarray, height: float):
        self.height = height
        zone = np.floor((dec + 90.0) / height)
        keys = zone * ZONE_WIDTH + ra
        # not a stable sort (three times slower): ties are broken by the right index later
        self.order = np.argsort(keys)
        self.keys = keys[self.order]
        self.ra = np.radians(ra[self.order])
        self.dec = np.radians(dec[self.order])
        self.cos = np.cos(self.dec)

    def _search(self, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = np.searchsorted(self.keys, low - EDGE, side="left")
        stop = np.searchsorted(self.keys, high + EDGE, side="right")
        return first, np.maximum(stop, first)

    def windows(self, ra: np.ndarray, dec: np.ndarray, radius: float
                ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(first, stop) indices into the sorted positions of each left position's candidate
        windows: its own zone and those beside it × (the main RA window, and its wrapped parts
        across RA = 0). The zone below (above) is searched only for the positions within the
        radius of its edge: with zones taller than the radius, a share of the binary searches
        is saved."""
        zone = np.floor((dec + 90.0) / self.height)
        into = dec + 90.0 - zone * self.height  # how far into its zone
        beside = {-1.0: into < radius + EDGE, 1.0: self.height - into < radius + EDGE}
        polar = np.abs(dec) + radius >= 89.999
        with np.errstate(invalid="ignore", divide="ignore"):
            half = np.degrees(np.arcsin(np.minimum(
                1.0, math.sin(math.radians(radius)) / np.cos(np.radians(dec)))))
        half = np.where(polar | ~np.isfinite(half), 180.0, half + EDGE)
        low, high = ra - half, ra + half
        full = half >= 180.0
        main = (np.where(full, 0.0, np.maximum(low, 0.0)),
                np.where(full, 360.0, np.minimum(high, 360.0)))
        # the parts of a window beyond RA = 0 or 360, for the few positions that have one
        wrap_low = np.flatnonzero(~full & (low < 0))
        wrap_high = np.flatnonzero(~full & (high > 360))
        out = []
        for dz in (-1.0, 0.0, 1.0):
            base = (zone + dz) * ZONE_WIDTH
            if dz == 0.0:
                out.append(self._search(base + main[0], base + main[1]))
            else:
                out.append(self._subset(np.flatnonzero(beside[dz]), base, main[0], main[1]))
            for rows, a, b in ((wrap_low, low + 360.0, 360.0), (wrap_high, 0.0, high - 360.0)):
                if dz != 0.0:
                    rows = rows[beside[dz][rows]]
                if len(rows):
                    out.append(self._subset(rows, base, a, b))
        return out

    def _subset(self, rows: np.ndarray, base: np.ndarray, low, high
                ) -> tuple[np.ndarray, np.ndarray]:
        """`_search` for the left positions `rows` only (empty windows for the others)."""
        n = len(base)
        first = np.zeros(n, dtype=np.int64)
        stop = np.zeros(n, dtype=np.int64)
        low = low[rows] if isinstance(low, np.ndarray) else low
        high = high[rows] if isinstance(high, np.ndarray) else high
        first[rows], stop[rows] = self._search(base[rows] + low, base[rows] + high)
        return first, stop


def _batches(counts: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """[start, stop) ranges of left rows whose candidate counts add up to about `budget`."""
    n = len(counts)
    if n == 0:
        return
    total = np.cumsum(counts, dtype=np.int64)
    start = 0
    while start < n:
        before = total[start - 1] if start else 0
        stop = int(np.searchsorted(total, before + budget, side="right"))
        stop = max(stop, start + 1)
        yield start, min(stop, n)
        start = stop


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values of `keys` (grouped: equal values side by side) starts."""
    change = np.empty(len(keys), dtype=bool)
    change[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    return np.flatnonzero(change)


def _sizes(starts: np.ndarray, n: int) -> np.ndarray:
    return np.diff(np.append(starts, n))


def _along_left(li: np.ndarray, rj: np.ndarray, hav: np.ndarray, mode: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs grouped by left row, nearest first ("all"), or only the nearest of each left row
    ("best"); equal distances go by right index. The pairs come as a few runs ascending in
    `li`, one per search window: a stable sort merges them at little cost (a lexsort of all
    the pairs by row and distance took most of the match's time); only rows with several
    pairs are then ordered by distance."""
    order = np.argsort(li, kind="stable")
    li, rj, hav = li[order], rj[order], hav[order]
    starts = _group_starts(li)
    if len(starts) == len(li):  # one pair per row: nothing to choose or order
        return li, rj, hav
    sizes = _sizes(starts, len(li))
    if mode == "best":
        nearest = np.flatnonzero(hav == np.repeat(np.minimum.reduceat(hav, starts), sizes))
        li, rj, hav = li[nearest], rj[nearest], hav[nearest]
        starts = _group_starts(li)
        if len(starts) < len(li):  # the same least distance twice in a row
            rj = np.minimum.reduceat(rj, starts)
            return li[starts], rj, hav[starts]
        return li, rj, hav
    shared = np.flatnonzero(np.repeat(sizes > 1, sizes))
    pick = np.arange(len(li))
    pick[shared] = shared[np.lexsort((rj[shared], hav[shared], li[shared]))]
    return li[pick], rj[pick], hav[pick]


def _in_input_order(rows: np.ndarray, left_order: np.ndarray) -> np.ndarray:
    """Indices putting pairs grouped by `rows` (indices into the sorted left positions,
    ascending) in the order of the left input, each row's pairs kept in their order: the
    groups are placed by their input index (a scatter, not a sort)."""
    starts = _group_starts(rows)
    sizes = _sizes(starts, len(rows))
    slot = np.full(len(left_order), -1, dtype=np.int64)
    slot[left_order[rows[starts]]] = np.arange(len(starts))
    groups = slot[slot >= 0]
    if len(starts) == len(rows):
        return starts[groups]
    sizes = sizes[groups]
    within = np.arange(len(rows)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(starts[groups], sizes) + within


def match_arrays(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray,
                 radius_arcsec: float, mode: str = "best", limit: int | None = None,
                 budget: int = MAX_CANDIDATES) -> Pairs:
    """Every pair (i, j) with position j of the right input within `radius_arcsec` of
    position i of the left one ("all"), or only the nearest j per i ("best"). Positions in
    degrees (RA in [0, 360), Dec in [-90, 90]). At most `limit` pairs (then `truncated`)."""
    ra1, dec1 = np.asarray(ra1, dtype=np.float64), np.asarray(dec1, dtype=np.float64)
    ra2, dec2 = np.asarray(ra2, dtype=np.float64), np.asarray(dec2, dtype=np.float64)
    empty = Pairs(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
    if len(ra1) == 0 or len(ra2) == 0:
        return empty
    radius = radius_arcsec / 3600.0
    threshold = math.sin(math.radians(radius) / 2) ** 2
    zones = _Zones(ra2, dec2, max(radius, MIN_ZONE_DEG))
    # The left positions are searched in the right ones' own order: binary searches for
    # sorted needles stay in the cache (several times faster than in input order).
    left_order = np.argsort(np.floor((dec1 + 90.0) / zones.height) * ZONE_WIDTH + ra1)
    ra1, dec1 = ra1[left_order], dec1[left_order]
    windows = zones.windows(ra1, dec1, radius)
    counts = np.zeros(len(ra1), dtype=np.int64)
    for first, stop in windows:
        counts += stop - first
    lra, ldec = np.radians(ra1), np.radians(dec1)
    lcos = np.cos(ldec)
    parts_l, parts_r, parts_s = [], [], []
    for start, stop in _batches(counts, budget):
        left_parts, right_parts = [], []
        for first, end in windows:
            f, e = first[start:stop], end[start:stop]
            n = e - f
            total = int(n.sum())
            if total == 0:
                continue
            rows = np.repeat(np.arange(start, stop, dtype=np.int64), n)
            # position of each candidate within its window, plus the window's first index
            offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
            left_parts.append(rows)
            right_parts.append(offsets + np.repeat(f, n))
        if not left_parts:
            continue
        li, rj = np.concatenate(left_parts), np.concatenate(right_parts)
        hav = _haversine(lra[li], ldec[li], lcos[li], zones.ra[rj], zones.dec[rj], zones.cos[rj])
        keep = hav <= threshold
        li, rj, hav = _along_left(li[keep], zones.order[rj[keep]], hav[keep], mode)
        parts_l.append(li)
        parts_r.append(rj)
        parts_s.append(hav)
    if not parts_l:
        return empty
    # batches are ranges of the sorted left rows, in order: their pairs join up grouped
    li, rj, hav = np.concatenate(parts_l), np.concatenate(parts_r), np.concatenate(parts_s)
    order = _in_input_order(li, left_order)
    pairs = Pairs(left_order[li[order]], rj[order], separation_arcsec(hav[order]))
    if limit is not None and len(pairs) > limit:
        pairs = Pairs(pairs.left[:limit], pairs.right[:limit], pairs.separation[:limit], True)
    return pairs


# ---- in the database ---------------------------------------------------------------------------


def healpix_level(radius_deg: float, order: int) -> int:
    """The finest level (≤ `order`) whose pixels are at least twice the radius across, so that
    a pixel and its eight neighbours hold every position within the radius of any of its own."""
    level = order
    while level > 0 and importer._pixel_size_deg(level) < 2 * radius_deg:
        level -= 1
    return level


def _sql_haversine(ra1, dec1, ra2, dec2):
    """sin²(d/2) between two columns' positions, in SQL (cos written as sin(90° − x), which
    every SQLite build with math functions has)."""

    def half_sin(expr):
        return sa.func.sin(sa.func.radians(expr) / 2)

    d_dec, d_ra = half_sin(dec2 - dec1), half_sin(ra2 - ra1)
    cos1 = sa.func.sin(sa.func.radians(90.0 - dec1))
    cos2 = sa.func.sin(sa.func.radians(90.0 - dec2))
    return d_dec * d_dec + cos1 * cos2 * d_ra * d_ra


def _sql_arcsec(hav):
    bounded = sa.case((hav > 1.0, 1.0), else_=hav)
    return sa.type_coerce(sa.func.degrees(2 * sa.func.asin(sa.func.sqrt(bounded))) * 3600.0,
                          sa.Double())


@dataclass
class SideSQL:
    """A catalog as the database join sees it: its table, position columns, index."""

    table: sa.Table
    ra: str
    dec: str
    index_kind: str
    healpix_order: int | None
    columns: list[str]  # the columns to return, in order


class NeighbourTable:
    """A temporary table of (coarse pixel → range of fine pixels) rows: for each pixel of the
    left catalog at `level`, its own range and its neighbours' at the catalogs' order."""

    def __init__(self, session: Session, left: SideSQL, level: int, order: int):
        from astropy_healpix import neighbours

        self.session = session
        self.name = f"xm_nb_{uuid.uuid4().hex[:12]}"
        self.shift = 2 * (order - level)
        connection = session.connection()
        pixel = left.table.c[HEALPIX_COLUMN]
        coarse = connection.execute(sa.select(pixel.op(">>")(_int(self.shift))).distinct()
                                    .where(pixel.is_not(None))).scalars().all()
        pixels = np.asarray(coarse, dtype=np.int64)
        with np.errstate(invalid="ignore"):  # a corner pixel's missing neighbour is -1
            near = neighbours(pixels, 2 ** level, order="nested") if len(pixels) else \
                np.empty((8, 0), dtype=np.int64)
        own = np.concatenate([np.tile(pixels, 9)])
        other = np.concatenate([pixels, np.asarray(near, dtype=np.int64).ravel()])
        keep = other >= 0  # a pixel at a corner of a base pixel has seven neighbours
        own, other = own[keep], other[keep]
        lo = other << self.shift
        hi = ((other + 1) << self.shift) - 1
        self.table = sa.Table(self.name, sa.MetaData(),
                              sa.Column("pixel", sa.BigInteger), sa.Column("lo", sa.BigInteger),
                              sa.Column("hi", sa.BigInteger), prefixes=["TEMPORARY"])
        self.table.create(connection)
        raw = connection.connection.driver_connection
        cursor = raw.cursor()
        try:
            marker = "%s" if connection.dialect.name == "postgresql" else "?"
            cursor.executemany(f"INSERT INTO {self.name} (pixel, lo, hi) VALUES "
                               f"({marker}, {marker}, {marker})",
                               list(zip(own.tolist(), lo.tolist(), hi.tolist(), strict=True)))
        finally:
            cursor.close()
        sa.Index(f"ix_{self.name}", self.table.c.pixel).create(connection)
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"ANALYZE {self.name}")

    def drop(self) -> None:
        self.table.drop(self.session.connection(), checkfirst=True)


def _int(value: int):
    """A shift count written into the SQL (PostgreSQL has `bigint >> integer` only)."""
    return sa.literal_column(str(int(value)), sa.Integer())


def _row_id(alias, dialect: str):
    return sa.literal_column(f"{alias.name}.{'ctid' if dialect == 'postgresql' else 'rowid'}")


def database_statement(session: Session, left: SideSQL, right: SideSQL, radius_arcsec: float,
                       mode: str, right_labels: list[str]) -> tuple[sa.Select, list]:
    """The SELECT of the matched rows: the left columns, the right ones (labelled
    `right_labels`) and `separation` (arcsec), ordered along the left catalog. Returns it with
    the temporary objects to drop once it has been read."""
    radius = radius_arcsec / 3600.0
    dialect = session.connection().dialect.name
    lt, rt = left.table.alias("l"), right.table.alias("r")
    lcols = [lt.c[c] for c in left.columns]
    if left.index_kind == "q3c" and right.index_kind == "q3c":
        l_ra, l_dec, r_ra, r_dec = lt.c[left.ra], lt.c[left.dec], rt.c[right.ra], rt.c[right.dec]
        joined = sa.func.q3c_join(l_ra, l_dec, r_ra, r_dec, radius)
        sep = sa.type_coerce(sa.func.q3c_dist(l_ra, l_dec, r_ra, r_dec) * 3600.0, sa.Double())
        rcols = [rt.c[c].label(n) for c, n in zip(right.columns, right_labels, strict=True)]
        if mode == "all":
            stmt = (sa.select(*lcols, *rcols, sep.label("separation"))
                    .select_from(lt.join(rt, joined)))
            return stmt, []
        nearest = (sa.select(*rcols, sep.label("separation")).where(joined)
                   .order_by(sep).limit(1).lateral("m"))
        stmt = sa.select(*lcols, *nearest.c).select_from(lt.join(nearest, sa.true()))
        return stmt, []
    if left.index_kind != "healpix" or right.index_kind != "healpix" or \
            (left.healpix_order or importer.HEALPIX_ORDER) != \
            (right.healpix_order or importer.HEALPIX_ORDER):
        raise ValueError("both catalogs need the same spatial index for a database match")
    order = left.healpix_order or importer.HEALPIX_ORDER
    level = healpix_level(radius, order)
    neighbours = NeighbourTable(session, left, level, order)
    nb = neighbours.table
    hav = _sql_haversine(lt.c[left.ra], lt.c[left.dec], rt.c[right.ra], rt.c[right.dec])
    sep = _sql_arcsec(hav).label("separation")
    rcols = [rt.c[c].label(n) for c, n in zip(right.columns, right_labels, strict=True)]
    within = hav <= math.sin(math.radians(radius) / 2) ** 2
    source = (lt.join(nb, nb.c.pixel == lt.c[HEALPIX_COLUMN].op(">>")(_int(neighbours.shift)))
              .join(rt, rt.c[HEALPIX_COLUMN].between(nb.c.lo, nb.c.hi)))
    if mode == "all":
        return sa.select(*lcols, *rcols, sep).select_from(source).where(within), [neighbours]
    rank = sa.func.row_number().over(partition_by=_row_id(lt, dialect),
                                     order_by=_sql_arcsec(hav)).label("_rank")
    ranked = sa.select(*lcols, *rcols, sep, rank).select_from(source).where(within).subquery()
    stmt = sa.select(*[c for c in ranked.c if c.name != "_rank"]).where(ranked.c._rank == 1)
    return stmt, [neighbours]
