"""Feasibility of a proposal's targets: for how many hours each one is observable from the
telescope's site during the call's semester, under its constraints (airmass, distance to the
Moon, astronomical night), computed with astroplan.

The machines are offline: astropy must never try the network. Its IERS tables come from the
bundled astropy-iers-data package, automatic downloads are off, and dates beyond the
predictions are accepted with degraded accuracy (seconds of UT1 do not matter at a grid of an
hour). Results are computed on a coarse time grid (an hour by default) and cached per target
(position and constraints) and call, so a page or an API call asking again reads them at once.
Seeing cannot be predicted; it is a constraint the observers check at the telescope.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass

import sqlalchemy as sa
from astropy.utils import iers

from astrocloud.core.service import Context, operation
from astrocloud.observation.models import FeasibilityResult, ObservationCall, Proposal
from astrocloud.observation.proposals import ProposalOps

iers.conf.auto_download = False
iers.conf.auto_max_age = None
iers.conf.iers_degraded_accuracy = "ignore"

GRID_MINUTES = 60


@dataclass
class Visibility:
    """How well one target can be observed during a semester."""

    observable_hours: float
    nights: int
    grid_minutes: int

    @property
    def observable(self) -> bool:
        return self.observable_hours > 0


def target_key(target: dict) -> str:
    """What the visibility of a target depends on: its position and constraints."""
    c = target.get("constraints") or {}
    key = {"ra": round(float(target["ra"]), 4), "dec": round(float(target["dec"]), 4),
           "airmass": c.get("max_airmass"), "moon": c.get("min_moon_distance")}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def compute(telescope, semester_start, semester_end, targets: list[dict],
            grid_minutes: int = GRID_MINUTES) -> list[Visibility]:
    """The visibility of each target (same order) on a time grid of `grid_minutes`; targets
    sharing constraints are computed together, so the Sun and Moon are placed once."""
    import astropy.units as u
    import numpy as np
    from astroplan import (
        AirmassConstraint,
        AtNightConstraint,
        FixedTarget,
        MoonSeparationConstraint,
        Observer,
        is_event_observable,
    )
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time

    location = EarthLocation.from_geodetic(telescope.longitude * u.deg,
                                           telescope.latitude * u.deg,
                                           telescope.elevation * u.m)
    observer = Observer(location=location)
    span = (semester_end - semester_start).total_seconds() / 60
    offsets = np.arange(0, span, grid_minutes)
    times = Time(semester_start) + offsets * u.min
    # the local "night" each sample belongs to: days since the start, shifted by the longitude
    night_of = np.floor((offsets / 1440.0) + telescope.longitude / 360.0 - 0.5).astype(int)
    groups: dict[tuple, list[int]] = {}
    for n, target in enumerate(targets):
        c = target.get("constraints") or {}
        groups.setdefault((c.get("max_airmass"), c.get("min_moon_distance")), []).append(n)
    out: list[Visibility | None] = [None] * len(targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's frame and accuracy warnings
        for (airmass, moon), members in groups.items():
            constraints = [AtNightConstraint.twilight_astronomical()]
            if airmass:
                constraints.append(AirmassConstraint(max=float(airmass)))
            if moon:
                constraints.append(MoonSeparationConstraint(min=float(moon) * u.deg))
            fixed = [FixedTarget(SkyCoord(targets[n]["ra"] * u.deg, targets[n]["dec"] * u.deg,
                                          frame="icrs"), name=str(n)) for n in members]
            seen = np.atleast_2d(is_event_observable(constraints, observer, fixed, times))
            for row, n in enumerate(members):
                mask = seen[row]
                out[n] = Visibility(observable_hours=round(float(mask.sum()) * grid_minutes / 60,
                                                           2),
                                    nights=len(set(night_of[mask].tolist())),
                                    grid_minutes=grid_minutes)
    return out  # type: ignore[return-value]


def visibility(ctx: Context, call: ObservationCall, targets: list[dict]) -> list[Visibility]:
    """The visibility of targets during a call's semester: cached results where they exist,
    the others computed now (together) and cached. Part of the caller's operation."""
    keys = [target_key(t) for t in targets]
    cached = {r.target_key: r for r in ctx.db.scalars(sa.select(FeasibilityResult).where(
        FeasibilityResult.call_id == call.id, FeasibilityResult.target_key.in_(keys)))}
    missing = [n for n, key in enumerate(keys) if key not in cached]
    if missing:
        computed = compute(call.telescope, call.semester_start, call.semester_end,
                           [targets[n] for n in missing])
        for n, result in zip(missing, computed, strict=True):
            if keys[n] in cached:
                continue  # the same target twice in one proposal
            row = FeasibilityResult(call_id=call.id, target_key=keys[n],
                                    observable_hours=result.observable_hours,
                                    nights=result.nights, grid_minutes=result.grid_minutes)
            ctx.db.add(row)
            cached[keys[n]] = row
        ctx.db.flush()
    return [Visibility(cached[k].observable_hours, cached[k].nights, cached[k].grid_minutes)
            for k in keys]


@operation(ProposalOps.READ)
def proposal_feasibility(ctx: Context, proposal_id: int) -> list[dict]:
    """Per target of a proposal the caller may see (its team while drafting, the telescope's
    staff and reviewers later): observable or not during the semester, for how many hours and
    on how many nights, against the hours its exposures ask."""
    proposal = ctx.get_visible(Proposal, proposal_id, what="proposal")
    results = visibility(ctx, proposal.call, proposal.targets)
    out = []
    for target, result in zip(proposal.targets, results, strict=True):
        needed = sum(e["seconds"] * e["count"] for e in target["exposures"]) / 3600
        out.append({"name": target["name"], "ra": target["ra"], "dec": target["dec"],
                    "observable": result.observable,
                    "observable_hours": result.observable_hours, "nights": result.nights,
                    "exposure_hours": round(needed, 3),
                    "enough_time": result.observable_hours >= needed,
                    "grid_minutes": result.grid_minutes})
    return out
