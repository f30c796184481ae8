"""Observing: a telescope's queue of allocated programmes, the nightly plan and the observation
log.

The queue holds every published allocation with time left, by grade (A first) and rank. The
nightly plan fills the night (astronomical twilight to twilight, on a grid of 15 minutes) with
a simple priority scheduler: at each step the best-graded, best-ranked target that is up under
its constraints and still needs time. Observers log what they did (target, start and end,
conditions, status, the data files' identifiers); a completed or partial observation charges
its duration to the programme, and the remaining allocation is shown to the PI and manager.
The programme's code is what the archive's ingest reads from the files' headers, and its
proprietary period (the call's) sets their release date.
"""

from __future__ import annotations

import datetime as dt
import warnings

import sqlalchemy as sa

from astrocloud.core.errors import NotFound, ValidationFailed
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, operation
from astrocloud.observation import feasibility  # noqa: F401 - astropy offline settings
from astrocloud.observation.allocations import AllocationOps
from astrocloud.observation.models import (
    Allocation,
    ObservationLog,
    Programme,
    Proposal,
    Telescope,
)

STATUSES = ("done", "partial", "failed", "weather")
CHARGED = ("done", "partial")
SLOT_MINUTES = 15


class ObservingOps(OperationSet):
    LOG_READ = Query("observation.log.read", resource="observation_log",
                     doc="See the observation log (a telescope's staff; a PI their own).")
    LOG_WRITE = Action("observation.log.write", resource="telescope",
                       doc="Record an observation in a telescope's log (its observers).")


def _telescope(ctx: Context, name: str) -> Telescope:
    telescope = ctx.db.scalar(sa.select(Telescope).where(Telescope.name == name))
    if telescope is None:
        raise NotFound("There is no telescope called “%(name)s”.", name=name)
    return telescope


def charged_hours(ctx: Context, programme_id: int) -> float:
    """The hours already charged to a programme."""
    return float(ctx.db.scalar(sa.select(sa.func.coalesce(sa.func.sum(
        ObservationLog.charged_hours), 0.0)).where(
        ObservationLog.programme_id == programme_id)) or 0.0)


def _queue_entry(ctx: Context, allocation: Allocation) -> dict:
    used = charged_hours(ctx, allocation.programme_id)
    programme = ctx.db.get(Programme, allocation.programme_id)
    return {"allocation_id": allocation.id, "programme": programme.code,
            "title": allocation.proposal.title, "grade": allocation.grade,
            "rank": allocation.rank, "call": allocation.call.name,
            "allocated_hours": allocation.total_hours, "hours": allocation.hours,
            "charged_hours": round(used, 4),
            "remaining_hours": round(allocation.total_hours - used, 4),
            "targets": allocation.proposal.targets}


@operation(AllocationOps.READ)
def queue(ctx: Context, telescope: str, *, with_finished: bool = False) -> list[dict]:
    """A telescope's observing queue: published allocations with time, by grade then rank,
    with the hours charged and remaining (what the caller may see of it)."""
    scope = _telescope(ctx, telescope)
    ctx.authorize_listing()
    stmt = (sa.select(Allocation).where(Allocation.telescope_id == scope.id,
                                        Allocation.published.is_(True),
                                        Allocation.programme_id.is_not(None))
            .order_by(Allocation.grade, Allocation.rank, Allocation.id))
    entries = [_queue_entry(ctx, a) for a in ctx.db.scalars(ctx.visible(stmt))]
    return [e for e in entries if with_finished or e["remaining_hours"] > 0]


@operation(AllocationOps.READ)
def night_plan(ctx: Context, telescope: str, night: dt.date) -> list[dict]:
    """The plan for the night starting on the evening of `night` (local to the site): the
    queue's targets placed by a priority scheduler on a 15-minute grid, each block as long as
    its exposures (and the programme's remaining time) allow."""
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

    scope = _telescope(ctx, telescope)
    entries = queue(ctx, telescope)
    location = EarthLocation.from_geodetic(scope.longitude * u.deg, scope.latitude * u.deg,
                                           scope.elevation * u.m)
    observer = Observer(location=location)
    # local noon to local noon, approximated from the longitude
    noon = dt.datetime.combine(night, dt.time(12), tzinfo=dt.UTC) - dt.timedelta(
        hours=scope.longitude / 15)
    slots = [noon + dt.timedelta(minutes=SLOT_MINUTES * i)
             for i in range(24 * 60 // SLOT_MINUTES)]
    times = Time(slots)
    candidates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in entries:
            need_total = entry["remaining_hours"] * 60
            for target in entry["targets"]:
                c = target.get("constraints") or {}
                constraints = [AtNightConstraint.twilight_astronomical()]
                if c.get("max_airmass"):
                    constraints.append(AirmassConstraint(max=float(c["max_airmass"])))
                if c.get("min_moon_distance"):
                    constraints.append(MoonSeparationConstraint(
                        min=float(c["min_moon_distance"]) * u.deg))
                fixed = FixedTarget(SkyCoord(target["ra"] * u.deg, target["dec"] * u.deg))
                up = np.atleast_2d(is_event_observable(constraints, observer, [fixed],
                                                       times))[0]
                minutes = sum(e["seconds"] * e["count"] for e in target["exposures"]) / 60
                candidates.append({"entry": entry, "target": target, "up": up,
                                   "need": min(minutes, need_total)})
    plan, i = [], 0
    while i < len(slots):
        choice = next((c for c in candidates if c["need"] > 0 and c["up"][i]), None)
        if choice is None:
            i += 1
            continue
        n = 0
        while i + n < len(slots) and choice["up"][i + n] and n * SLOT_MINUTES < choice["need"]:
            n += 1
        plan.append({"programme": choice["entry"]["programme"],
                     "grade": choice["entry"]["grade"], "target": choice["target"]["name"],
                     "start": slots[i],
                     "end": slots[i] + dt.timedelta(minutes=n * SLOT_MINUTES)})
        choice["need"] -= n * SLOT_MINUTES
        i += n
    return plan


@operation(ObservingOps.LOG_WRITE)
def record(ctx: Context, telescope: str, *, programme: str, target: str,
           start: dt.datetime, end: dt.datetime, status: str = "done",
           instrument: str = "", conditions: dict | None = None,
           file_ids: list[str] | None = None, notes: str = "") -> ObservationLog:
    """Record an observation in a telescope's log (observation.log.write: its observers,
    managers, operators). Completed or partial observations charge their duration to the
    programme. Every problem is listed at once."""
    scope = _telescope(ctx, telescope)
    ctx.authorize(scope)
    problems = []
    prog = ctx.db.scalar(sa.select(Programme).where(Programme.code == programme,
                                                    Programme.telescope_id == scope.id))
    if prog is None:
        problems.append({"field": "programme",
                         "message": f"{telescope} has no programme “{programme[:64]}”."})
    if not (target or "").strip() or len(target) > 100:
        problems.append({"field": "target", "message": "A target name of up to 100 "
                                                       "characters."})
    if start.tzinfo is None or end.tzinfo is None:
        problems.append({"field": "start", "message": "Give times with their time zone "
                                                      "(UTC: a trailing Z)."})
    elif end <= start or end - start > dt.timedelta(hours=24):
        problems.append({"field": "end", "message": "The end comes after the start, within "
                                                    "24 hours."})
    if status not in STATUSES:
        problems.append({"field": "status", "message": f"One of {', '.join(STATUSES)}."})
    files = file_ids or []
    if len(files) > 1000 or not all(isinstance(f, str) and 0 < len(f) <= 200 for f in files):
        problems.append({"field": "file_ids", "message": "Up to 1000 file identifiers."})
    if problems:
        raise ValidationFailed(problems)
    hours = (end - start).total_seconds() / 3600 if status in CHARGED else 0.0
    entry = ObservationLog(telescope_id=scope.id, programme_id=prog.id, pi_id=prog.pi_id,
                           target=target.strip(), instrument=(instrument or "")[:64],
                           start=start, end=end, conditions=conditions or {}, status=status,
                           file_ids=files, charged_hours=round(hours, 4),
                           observer_id=ctx.subject.id, notes=notes or "")
    ctx.db.add(entry)
    ctx.db.flush()
    ctx.set_target(entry)
    ctx.note(f"{prog.code} {target}: {hours:.2f} h charged")
    return entry


@operation(ObservingOps.LOG_READ)
def list_logs(ctx: Context, *, telescope: str | None = None,
              programme: str | None = None) -> list[ObservationLog]:
    """The log entries the caller may see, newest first."""
    ctx.authorize_listing()
    stmt = sa.select(ObservationLog).order_by(ObservationLog.start.desc(), ObservationLog.id)
    if telescope:
        stmt = stmt.where(ObservationLog.telescope_id == _telescope(ctx, telescope).id)
    if programme:
        stmt = stmt.join(Programme, Programme.id == ObservationLog.programme_id).where(
            Programme.code == programme)
    return list(ctx.db.scalars(ctx.visible(stmt)))


def allocation_balance(ctx: Context, programme_id: int) -> dict | None:
    """Allocated, charged and remaining hours of a programme that came from a proposal."""
    allocation = ctx.db.scalar(sa.select(Allocation).where(
        Allocation.programme_id == programme_id))
    if allocation is None:
        return None
    used = charged_hours(ctx, programme_id)
    return {"allocated_hours": allocation.total_hours, "charged_hours": round(used, 4),
            "remaining_hours": round(allocation.total_hours - used, 4)}


def proposal_of_programme(ctx: Context, programme_id: int) -> Proposal | None:
    allocation = ctx.db.scalar(sa.select(Allocation).where(
        Allocation.programme_id == programme_id))
    return allocation.proposal if allocation else None
