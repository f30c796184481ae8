"""Where data goes and where it is read from: great-circle distances between sites, an
operator's cost table when one is set, and placement rules per logical-name prefix."""

from __future__ import annotations

import math
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from astrocloud.core.storage.models import PlacementRule, Site, SiteCost

EARTH_RADIUS_KM = 6371.0


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Origin:
    """Where a request or a file comes from: a site, or any point on Earth (a telescope)."""

    latitude: float
    longitude: float
    site_id: int | None = None


def origin_of(site: Site) -> Origin:
    return Origin(site.latitude, site.longitude, site.id)


class Costs:
    """Distances from an origin to each site; the cost table wins where it has an entry."""

    def __init__(self, db: Session, origin: Origin):
        self.origin = origin
        self.table: dict[int, float] = {}
        if origin.site_id is not None:
            rows = db.execute(sa.select(SiteCost.to_site_id, SiteCost.cost)
                              .where(SiteCost.from_site_id == origin.site_id))
            self.table = {to: cost for to, cost in rows}

    def __call__(self, site: Site) -> float:
        if site.id == self.origin.site_id:
            return 0.0
        if site.id in self.table:
            return self.table[site.id]
        return great_circle_km(self.origin.latitude, self.origin.longitude, site.latitude,
                               site.longitude)

    def order(self, sites: list[Site]) -> list[Site]:
        return sorted(sites, key=lambda s: (self(s), s.position, s.id))


def rule_for(db: Session, uri: str) -> PlacementRule | None:
    """The placement rule with the longest prefix of `uri`."""
    rules = db.scalars(sa.select(PlacementRule)).all()
    matching = [r for r in rules if uri.startswith(r.prefix)]
    return max(matching, key=lambda r: len(r.prefix)) if matching else None


def choose_sites(db: Session, uri: str, origin: Origin, default_copies: int) -> list[Site]:
    """The sites that should hold a new file, the first being where it is written now:
    the nearest writable site to its origin, then preferred sites, then the nearest others."""
    sites = [s for s in db.scalars(sa.select(Site)).all() if s.writable]
    if not sites:
        return []
    rule = rule_for(db, uri)
    copies = rule.copies if rule else default_copies
    costs = Costs(db, origin)
    ordered = costs.order(sites)
    first = ordered[0]
    preferred = [n.strip() for n in (rule.preferred_sites if rule else "").split(",") if n.strip()]
    rest = [s for s in ordered[1:] if s.name in preferred]
    rest.sort(key=lambda s: preferred.index(s.name))
    rest += [s for s in ordered[1:] if s not in rest]
    return [first, *rest][:max(1, copies)]
