"""Calls for proposals: a telescope's cycles, run by its managers without writing code.

A call is open from `opens_at` up to `closes_at` (UTC, whole seconds; the deadline is the
first instant at which submissions are refused) on a telescope open for
proposals. It says how many hours each instrument offers during its semester, the scientific
categories, the proposal form (page and size limits of the justification PDF, maximum number
of targets), the review set-up (reviewers per proposal, grade scale — 1 is best —, conflict
rules, normalisation, deadline), the allocation set-up (A/B/C thresholds on the normalised
grade, weather-loss factor, maximum share per proposal) and its data's proprietary period.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import sqlalchemy as sa

from astrocloud.core.errors import Conflict, NotFound, ValidationFailed
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, operation
from astrocloud.observation.models import ObservationCall, Telescope

CALL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CONFLICT_RULES = ("pi_coi", "institute", "declared")
NORMALISATIONS = ("none", "zscore", "rank")

DEFAULT_FORM = {"page_limit": 4, "size_limit_mb": 5.0, "max_targets": 20,
                "sections": ["Scientific justification", "Technical justification"],
                "custom_fields": []}
DEFAULT_REVIEW = {"reviewers_per_proposal": 3, "grade_min": 1.0, "grade_max": 5.0,
                  "conflict_rules": list(CONFLICT_RULES), "normalisation": "zscore",
                  "hide_reviewers_from_each_other": True}
DEFAULT_ALLOCATION = {"thresholds": {"A": 2.0, "B": 3.0, "C": 4.0}, "weather_loss": 0.3,
                      "max_share": 0.25}


class CallOps(OperationSet):
    READ = Query("observation.call.read", resource="call",
                 doc="See calls for proposals and their set-up.")
    CREATE = Action("observation.call.create", resource="telescope",
                    doc="Open a call for proposals on a telescope (its managers).")
    UPDATE = Action("observation.call.update", resource="call",
                    doc="Change a call's dates, hours, form, review and allocation set-up.")


def to_second(value: dt.datetime) -> dt.datetime:
    """A UTC instant to the whole second (a naive value is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).replace(microsecond=0)


def is_open(call: ObservationCall, now: dt.datetime) -> bool:
    """Whether the call takes submissions at `now` (from its opening up to its deadline)."""
    return call.telescope.open_for_proposals and call.opens_at <= now < call.closes_at


def _number(value: Any) -> bool:
    """A finite number of a sensible size (not a boolean, not a 400-digit integer)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return abs(value) < 1e15 and math.isfinite(value)


def _merged(defaults: dict, given: dict | None, field: str, problems: list) -> dict:
    if given is None:
        return dict(defaults)
    if not isinstance(given, dict):
        problems.append({"field": field, "message": "Must be an object."})
        return dict(defaults)
    for key in given:
        if key not in defaults:
            problems.append({"field": f"{field}.{key}"[:120], "message": "Unknown setting "
                             f"(known: {', '.join(defaults)})."})
    return {**defaults, **{k: v for k, v in given.items() if k in defaults}}


def _check_setup(call: ObservationCall, telescope: Telescope, problems: list) -> None:
    """Append every problem of a call's values (after a create or an update) to `problems`."""
    if not CALL_NAME.match(call.name or ""):
        problems.append({"field": "name", "message": "A call's name is letters, digits, dots "
                         "and dashes, up to 64 characters (e.g. 2027A)."})
    if call.opens_at >= call.closes_at:
        problems.append({"field": "closes_at", "message": "The call must close after it opens."})
    if call.semester_start >= call.semester_end:
        problems.append({"field": "semester_end",
                         "message": "The semester must end after it starts."})
    if call.review_deadline <= call.closes_at:
        problems.append({"field": "review_deadline",
                         "message": "The review deadline must come after the call closes."})
    if not 0 <= call.proprietary_months <= 120:
        problems.append({"field": "proprietary_months",
                         "message": "A proprietary period is between 0 and 120 months."})
    names = {i.name for i in telescope.instruments}
    if not isinstance(call.instrument_hours, dict):
        problems.append({"field": "instrument_hours", "message": "Must be an object."})
    else:
        for name, hours in call.instrument_hours.items():
            if name not in names:
                problems.append({"field": f"instrument_hours.{name}"[:120], "message":
                                 f"Not an instrument of {telescope.name} (known: "
                                 f"{', '.join(sorted(names)) or 'none'})."})
            if not _number(hours) or not 0 <= hours <= 10_000:
                problems.append({"field": f"instrument_hours.{name}"[:120],
                                 "message": "Hours must be between 0 and 10000."})
    if (not isinstance(call.categories, list) or len(call.categories) > 50
            or not all(isinstance(c, str) and 0 < len(c) <= 100 for c in call.categories)):
        problems.append({"field": "categories",
                         "message": "Categories are a list of up to 50 short names."})
    form = call.form
    if not (_number(form["page_limit"]) and 1 <= form["page_limit"] <= 100):
        problems.append({"field": "form.page_limit", "message": "Between 1 and 100 pages."})
    if not (_number(form["size_limit_mb"]) and 0.01 <= form["size_limit_mb"] <= 50):
        problems.append({"field": "form.size_limit_mb", "message": "Between 0.01 and 50 MB."})
    if not (_number(form["max_targets"]) and 1 <= form["max_targets"] <= 1000):
        problems.append({"field": "form.max_targets", "message": "Between 1 and 1000 targets."})
    for key in ("sections", "custom_fields"):
        if not isinstance(form[key], list) or not all(
                isinstance(s, str) and len(s) <= 100 for s in form[key]) or len(form[key]) > 30:
            problems.append({"field": f"form.{key}", "message": "A list of up to 30 names."})
    review = call.review_setup
    if not (isinstance(review["reviewers_per_proposal"], int)
            and 1 <= review["reviewers_per_proposal"] <= 20):
        problems.append({"field": "review_setup.reviewers_per_proposal",
                         "message": "Between 1 and 20 reviewers."})
    if not (_number(review["grade_min"]) and _number(review["grade_max"])
            and review["grade_min"] < review["grade_max"]):
        problems.append({"field": "review_setup.grade_max",
                         "message": "The grade scale runs from grade_min (best) up to a "
                                    "larger grade_max."})
    if not isinstance(review["conflict_rules"], list) or not set(
            review["conflict_rules"]) <= set(CONFLICT_RULES):
        problems.append({"field": "review_setup.conflict_rules",
                         "message": f"A list drawn from {', '.join(CONFLICT_RULES)}."})
    if review["normalisation"] not in NORMALISATIONS:
        problems.append({"field": "review_setup.normalisation",
                         "message": f"One of {', '.join(NORMALISATIONS)}."})
    if not isinstance(review["hide_reviewers_from_each_other"], bool):
        problems.append({"field": "review_setup.hide_reviewers_from_each_other",
                         "message": "true or false."})
    allocation = call.allocation_setup
    thresholds = allocation["thresholds"]
    if (not isinstance(thresholds, dict) or set(thresholds) != {"A", "B", "C"}
            or not all(_number(v) for v in thresholds.values())
            or not thresholds["A"] <= thresholds["B"] <= thresholds["C"]):
        problems.append({"field": "allocation_setup.thresholds", "message": "Grade "
                         "thresholds {A, B, C} on the grade scale, with A ≤ B ≤ C."})
    if not (_number(allocation["weather_loss"]) and 0 <= allocation["weather_loss"] < 1):
        problems.append({"field": "allocation_setup.weather_loss",
                         "message": "A fraction from 0 up to (not including) 1."})
    if not (_number(allocation["max_share"]) and 0 < allocation["max_share"] <= 1):
        problems.append({"field": "allocation_setup.max_share",
                         "message": "A fraction above 0 and at most 1."})


def _telescope(ctx: Context, name: str) -> Telescope:
    telescope = ctx.db.scalar(sa.select(Telescope).where(Telescope.name == name))
    if telescope is None:
        raise NotFound("There is no telescope called “%(name)s”.", name=name)
    return telescope


@operation(CallOps.CREATE)
def create_call(ctx: Context, *, telescope: str, name: str, opens_at: dt.datetime,
                closes_at: dt.datetime, semester_start: dt.datetime,
                semester_end: dt.datetime, review_deadline: dt.datetime, title: str = "",
                description: str = "", instrument_hours: dict | None = None,
                categories: list | None = None, form: dict | None = None,
                review_setup: dict | None = None, allocation_setup: dict | None = None,
                proprietary_months: int | None = None) -> ObservationCall:
    """A new call on a telescope (guarded by observation.call.create on the telescope: its
    managers, operators). Every problem of the set-up is listed at once."""
    scope = _telescope(ctx, telescope)
    ctx.authorize(scope)
    problems: list[dict[str, str]] = []
    call = ObservationCall(
        telescope_id=scope.id, telescope=scope, name=(name or "").strip(),
        title=title or name, description=description,
        opens_at=to_second(opens_at), closes_at=to_second(closes_at),
        semester_start=to_second(semester_start), semester_end=to_second(semester_end),
        review_deadline=to_second(review_deadline),
        instrument_hours=instrument_hours if instrument_hours is not None else {},
        categories=categories if categories is not None else [],
        form=_merged(DEFAULT_FORM, form, "form", problems),
        review_setup=_merged(DEFAULT_REVIEW, review_setup, "review_setup", problems),
        allocation_setup=_merged(DEFAULT_ALLOCATION, allocation_setup, "allocation_setup",
                                 problems),
        proprietary_months=(scope.proprietary_months if proprietary_months is None
                            else proprietary_months))
    _check_setup(call, scope, problems)
    if problems:
        raise ValidationFailed(problems)
    if ctx.db.scalar(sa.select(ObservationCall.id).where(
            ObservationCall.telescope_id == scope.id, ObservationCall.name == call.name)):
        raise Conflict("%(telescope)s has a call “%(name)s” already.", telescope=scope.name,
                       name=call.name)
    ctx.db.add(call)
    ctx.db.flush()
    ctx.set_target(call)
    return call


UPDATABLE = ("name", "title", "description", "opens_at", "closes_at", "semester_start",
             "semester_end", "review_deadline", "instrument_hours", "categories", "form",
             "review_setup", "allocation_setup", "proprietary_months")


@operation(CallOps.UPDATE)
def update_call(ctx: Context, call_id: int, **changes: Any) -> ObservationCall:
    """Change a call (guarded by observation.call.update: its telescope's managers). Nested
    set-ups (form, review_setup, allocation_setup) are merged key by key; every problem is
    listed at once and nothing changes unless all is well."""
    call = ctx.db.get(ObservationCall, call_id)
    if call is None:
        raise NotFound("There is no call with id %(ident)s.", ident=call_id)
    ctx.authorize(call)
    problems: list[dict[str, str]] = []
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if value is None:
            continue
        if key not in UPDATABLE:
            problems.append({"field": key, "message": "Not a setting of a call."})
        elif isinstance(value, dt.datetime):
            values[key] = to_second(value)
        elif key in ("form", "review_setup", "allocation_setup"):
            values[key] = _merged(getattr(call, key), value, key, problems)
        else:
            values[key] = value
    noted = []
    with ctx.db.no_autoflush:
        before = {k: getattr(call, k) for k in values}
        for key, value in values.items():
            setattr(call, key, value)
        _check_setup(call, call.telescope, problems)
        if problems:
            for key, value in before.items():
                setattr(call, key, value)
            raise ValidationFailed(problems)
    for key, value in values.items():
        if before[key] != value:
            noted.append(key)
    ctx.note("changed " + ", ".join(noted) if noted else "no change")
    ctx.db.flush()
    return call


@operation(CallOps.READ)
def list_calls(ctx: Context, *, telescope: str | None = None,
               open_only: bool = False) -> list[ObservationCall]:
    """The calls the caller may see, newest first; `open_only`: those taking submissions
    now."""
    ctx.authorize_listing()
    stmt = sa.select(ObservationCall).join(Telescope).order_by(
        ObservationCall.closes_at.desc(), ObservationCall.id)
    if telescope:
        stmt = stmt.where(Telescope.name == telescope)
    if open_only:
        now = ctx.now()
        stmt = stmt.where(ObservationCall.opens_at <= now, ObservationCall.closes_at > now,
                          Telescope.open_for_proposals.is_(True))
    return list(ctx.db.scalars(ctx.visible(stmt)))


@operation(CallOps.READ)
def get_call(ctx: Context, call_id: int) -> ObservationCall:
    """One call (NotFound if it does not exist or may not be seen)."""
    return ctx.get_visible(ObservationCall, call_id, what="call")


def call_by_id(ctx: Context, call_id: int) -> ObservationCall | None:
    """A call by id, inside the caller's own operation."""
    return ctx.db.get(ObservationCall, call_id)
