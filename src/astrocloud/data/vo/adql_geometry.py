"""Spherical geometry for the ADQL translator, in plain Python: what it needs to know about
constant shapes while translating (bounding circles for the index pre-filter, areas, constant
predicates) and the region tests SQLite runs through registered functions (an ObsCore
`s_region` is STC-S text, which SQL cannot read). Angles are degrees; polygons have great-circle
edges, as in ADQL."""

from __future__ import annotations

import math
import re

Vec = tuple[float, float, float]


def vec(ra: float, dec: float) -> Vec:
    a, d = math.radians(ra), math.radians(dec)
    return (math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d))


def _dot(a: Vec, b: Vec) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _unit(a: Vec) -> Vec:
    n = math.sqrt(_dot(a, a)) or 1.0
    return (a[0] / n, a[1] / n, a[2] / n)


def lonlat(v: Vec) -> tuple[float, float]:
    v = _unit(v)
    return (math.degrees(math.atan2(v[1], v[0])) % 360.0,
            math.degrees(math.asin(max(-1.0, min(1.0, v[2])))))


def separation(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """The angle between two positions, by the haversine formula (exact at small angles)."""
    h = (math.sin(math.radians(dec2 - dec1) / 2) ** 2 + math.cos(math.radians(dec1))
         * math.cos(math.radians(dec2)) * math.sin(math.radians(ra2 - ra1) / 2) ** 2)
    return math.degrees(2 * math.asin(math.sqrt(min(1.0, max(0.0, h)))))


def _angle(a: Vec, b: Vec) -> float:
    return math.degrees(math.atan2(math.sqrt(_dot(c := _cross(a, b), c)), _dot(a, b)))


def box_vertices(ra: float, dec: float, width: float, height: float) -> list[tuple[float, float]]:
    """An ADQL BOX as the polygon we test: corners at the centre ± half the width in RA (per
    degree of RA, i.e. divided by cos(dec)) and ± half the height in Dec, counter-clockwise."""
    half_h = height / 2
    scale = max(math.cos(math.radians(dec)), 1e-9)
    half_w = min(width / 2 / scale, 179.999)
    return [(ra - half_w, dec - half_h), (ra + half_w, dec - half_h),
            (ra + half_w, dec + half_h), (ra - half_w, dec + half_h)]


class Polygon:
    """A spherical polygon smaller than a hemisphere. Point-in-polygon runs in the gnomonic
    projection around the vertices' mean: great circles project to straight lines there, so a
    planar ray-crossing test is exact for convex and concave polygons alike."""

    def __init__(self, vertices: list[tuple[float, float]]):
        if len(vertices) < 3:
            raise ValueError("a polygon needs at least three vertices")
        self.vertices = [(ra % 360.0, dec) for ra, dec in vertices]
        self.vectors = [vec(ra, dec) for ra, dec in self.vertices]
        total = (sum(v[0] for v in self.vectors), sum(v[1] for v in self.vectors),
                 sum(v[2] for v in self.vectors))
        self.centre = _unit(total)
        if _dot(total, total) < 1e-18 or any(_dot(v, self.centre) <= 1e-9 for v in self.vectors):
            raise ValueError("a polygon must be smaller than a hemisphere")
        pole = (0.0, 0.0, 1.0) if abs(self.centre[2]) < 0.9 else (1.0, 0.0, 0.0)
        self.e1 = _unit(_cross(pole, self.centre))
        self.e2 = _cross(self.centre, self.e1)
        self.plane = [self.project(v) for v in self.vectors]

    def project(self, v: Vec) -> tuple[float, float]:
        w = _dot(v, self.centre)
        return (_dot(v, self.e1) / w, _dot(v, self.e2) / w)

    def edges(self) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        pts = self.plane
        return [(pts[i], pts[(i + 1) % len(pts)]) for i in range(len(pts))]

    def contains(self, ra: float, dec: float) -> bool:
        v = vec(ra, dec)
        if _dot(v, self.centre) <= 1e-12:
            return False
        u, w = self.project(v)
        inside = False
        for (u1, v1), (u2, v2) in self.edges():
            if (v1 > w) != (v2 > w) and u < u1 + (w - v1) * (u2 - u1) / (v2 - v1):
                inside = not inside
        return inside

    def bounding_circle(self) -> tuple[float, float, float]:
        ra, dec = lonlat(self.centre)
        return ra, dec, max(_angle(self.centre, v) for v in self.vectors)

    def area(self) -> float:
        """Square degrees, by summing signed spherical triangles fanned from the centre."""
        total = 0.0
        c = self.centre
        n = len(self.vectors)
        for i in range(n):
            a, b = self.vectors[i], self.vectors[(i + 1) % n]
            total += 2 * math.atan2(_dot(c, _cross(a, b)), 1 + _dot(c, a) + _dot(a, b)
                                    + _dot(b, c))
        return abs(total) * (180 / math.pi) ** 2

    def distance_to(self, ra: float, dec: float) -> float:
        """The smallest angle from a position to the polygon's boundary (degrees)."""
        p = vec(ra, dec)
        best = min(_angle(p, v) for v in self.vectors)
        n = len(self.vectors)
        for i in range(n):
            a, b = self.vectors[i], self.vectors[(i + 1) % n]
            normal = _unit(_cross(a, b))
            s = _dot(p, normal)
            foot = _unit((p[0] - s * normal[0], p[1] - s * normal[1], p[2] - s * normal[2]))
            if _dot(_cross(a, foot), normal) >= 0 and _dot(_cross(foot, b), normal) >= 0:
                best = min(best, abs(math.degrees(math.asin(max(-1.0, min(1.0, s))))))
        return best


def circle_area(radius: float) -> float:
    return 2 * math.pi * (1 - math.cos(math.radians(radius))) * (180 / math.pi) ** 2


def _segments_cross(p1, p2, q1, q2) -> bool:
    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return (d1 > 0) != (d2 > 0) and (d3 > 0) != (d4 > 0)


# ---- shapes as tuples: ("circle", ra, dec, r) | ("polygon", Polygon) | ("point", ra, dec)


def shape_contains_point(shape: tuple, ra: float, dec: float) -> bool:
    if shape[0] == "circle":
        return separation(shape[1], shape[2], ra, dec) <= shape[3]
    if shape[0] == "polygon":
        return shape[1].contains(ra, dec)
    return separation(shape[1], shape[2], ra, dec) < 1e-9


def _points_of(shape: tuple) -> list[tuple[float, float]]:
    if shape[0] == "polygon":
        return shape[1].vertices
    return [(shape[1], shape[2])]


def shape_intersects(a: tuple, b: tuple) -> bool:
    """Whether two shapes overlap (points, circles, polygons smaller than a hemisphere)."""
    if a[0] == "point":
        return shape_contains_point(b, a[1], a[2])
    if b[0] == "point":
        return shape_contains_point(a, b[1], b[2])
    if a[0] == "circle" and b[0] == "circle":
        return separation(a[1], a[2], b[1], b[2]) <= a[3] + b[3]
    if a[0] == "polygon" and b[0] == "circle":
        a, b = b, a
    if a[0] == "circle":  # b is a polygon
        poly = b[1]
        return poly.contains(a[1], a[2]) or poly.distance_to(a[1], a[2]) <= a[3]
    pa, pb = a[1], b[1]
    if any(pb.contains(ra, dec) for ra, dec in pa.vertices) or any(
            pa.contains(ra, dec) for ra, dec in pb.vertices):
        return True
    if _dot(pa.centre, pb.centre) <= 0:
        return False
    edges_a = [pa.project(v) for v in pa.vectors]
    edges_b = [pa.project(v) for v in pb.vectors if _dot(v, pa.centre) > 1e-9]
    if len(edges_b) != len(pb.vectors):
        return False
    na, nb = len(edges_a), len(edges_b)
    return any(_segments_cross(edges_a[i], edges_a[(i + 1) % na], edges_b[j],
                               edges_b[(j + 1) % nb]) for i in range(na) for j in range(nb))


def shape_inside(inner: tuple, outer: tuple) -> bool:
    """Whether `inner` lies wholly within `outer` (a circle or a convex polygon; a shape inside
    a convex one is so when its vertices are, or for a circle its centre and rim distance)."""
    if inner[0] == "circle":
        if outer[0] == "circle":
            return separation(inner[1], inner[2], outer[1], outer[2]) + inner[3] <= outer[3]
        poly = outer[1]
        return poly.contains(inner[1], inner[2]) and poly.distance_to(
            inner[1], inner[2]) >= inner[3]
    return all(shape_contains_point(outer, ra, dec) for ra, dec in _points_of(inner))


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_stcs(text: str | None) -> tuple | None:
    """An STC-S region (POLYGON, CIRCLE, BOX, POSITION; the frame word is skipped) as a shape
    tuple, or None when it is empty or not understood."""
    if not text:
        return None
    words = text.split()
    if not words:
        return None
    kind = words[0].upper()
    rest = [w for w in words[1:] if re.fullmatch(_NUMBER, w)]
    try:
        numbers = [float(w) for w in rest]
        if kind == "POLYGON" and len(numbers) >= 6 and len(numbers) % 2 == 0:
            return ("polygon", Polygon(list(zip(numbers[::2], numbers[1::2], strict=True))))
        if kind == "CIRCLE" and len(numbers) == 3:
            return ("circle", *numbers)
        if kind == "BOX" and len(numbers) == 4:
            return ("polygon", Polygon(box_vertices(*numbers)))
        if kind in ("POSITION", "POINT") and len(numbers) == 2:
            return ("point", *numbers)
    except ValueError:
        return None
    return None


def shape_text(shape: tuple) -> str:
    """A constant shape as the STC-S text handed to the SQLite region functions."""
    if shape[0] == "circle":
        return f"CIRCLE ICRS {shape[1]!r} {shape[2]!r} {shape[3]!r}"
    if shape[0] == "point":
        return f"POSITION ICRS {shape[1]!r} {shape[2]!r}"
    return "POLYGON ICRS " + " ".join(f"{ra!r} {dec!r}" for ra, dec in shape[1].vertices)
