"""The Observation channel's pages.

    /observation                   the calls open now (each linked to its page) and the
                                   caller's own proposals
    /observation/calls/<id>        one call: its dates (UTC and the telescope's local time),
                                   hours per instrument, categories, form and review set-up,
                                   and the instruments' parameters
    /observation/calls/<id>/manage the telescope manager's page: edit the call, appoint the
                                   reviewer pool and TAC, assign reviewers, allocate, publish
                                   (POST …/manage, …/appoint, …/assign, …/allocate, …/publish)
    /observation/proposals/<id>    a proposal, printable: team, targets, hours, feasibility,
                                   justification, decision; …/pdf the same as one PDF with the
                                   justification appended
    /observation/telescopes/<name> a telescope's calls (a manager opens a new one), its queue
                                   and observation log (observers record observations)
    /observation/reviews           the caller's assigned reviews, graded in place
    /observation/proposals/<id>/edit   the PI's drafting form, generated from the instruments'
                                   schemas (POST …/edit, …/justification, …/invite, …/submit;
                                   POST /observation/calls/<id>/propose starts a draft)

What is shown is what the caller may see: every page goes through the channel's services.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from astrocloud.core.errors import ValidationFailed
from astrocloud.core.i18n import gettext
from astrocloud.core.identity.pages import flash_redirect
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import Id, uses
from astrocloud.core.web.templating import render
from astrocloud.data.archive import services as archive
from astrocloud.data.archive.services import ArchiveOps
from astrocloud.observation import (
    allocations,
    calls,
    document,
    observing,
    proposals,
    reviews,
    services,
)
from astrocloud.observation.allocations import AllocationOps
from astrocloud.observation.calls import CallOps
from astrocloud.observation.observing import ObservingOps
from astrocloud.observation.proposals import ProposalOps
from astrocloud.observation.reviews import ReviewOps
from astrocloud.observation.services import ObservationOps

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]


def _render(request: Request, template: str, status_code: int = 200, **context):
    """Render a page with the notice a form's redirect carried (?notice=…)."""
    notice = request.query_params.get("notice", "")[:300] or None
    return render(request, template, status_code=status_code, notice=notice, **context)


def local(value: dt.datetime, zone: str) -> dt.datetime:
    """`value` in the time zone `zone` (UTC when the zone is unknown)."""
    try:
        return value.astimezone(ZoneInfo(zone))
    except (KeyError, ValueError):
        return value


@pages.get("/observation", openapi_extra=uses(CallOps.READ, ProposalOps.READ),
           name="observation_landing")
def landing(request: Request, ctx: Ctx):
    open_calls = calls.list_calls(ctx, open_only=True)
    mine = proposals.list_proposals(ctx) if ctx.subject.authenticated else []
    return _render(request, "observation/landing.html", calls=open_calls, now=ctx.now(),
                  proposals=mine)


@pages.get("/observation/calls/{call_id}", openapi_extra=uses(CallOps.READ))
def call_page(request: Request, call_id: Id, ctx: Ctx):
    call = calls.get_call(ctx, call_id)
    return _render(request, "observation/call.html", call=call, now=ctx.now(),
                  is_open=calls.is_open(call, ctx.now()), manage_op=CallOps.UPDATE,
                  allocate_op=AllocationOps.RUN,
                  local=lambda value: local(value, call.telescope.time_zone))


@pages.get("/observation/proposals/{proposal_id}",
           openapi_extra=uses(ProposalOps.READ, AllocationOps.READ, ArchiveOps.FILE_READ))
def proposal_page(request: Request, proposal_id: Id, ctx: Ctx):
    proposal = proposals.get_proposal(ctx, proposal_id)
    names = proposals.usernames(ctx, [proposal.pi_id])
    decision, files = None, []
    if proposal.status in ("accepted", "rejected"):
        decision = next((a for a in allocations.list_allocations(ctx, call_id=proposal.call_id)
                         if a.proposal_id == proposal.id), None)
        if proposal.status == "accepted" and proposal.code:
            files = archive.search(ctx, programme=proposal.code, per_page=200).items
    from astrocloud.observation import feasibility

    checked = feasibility.proposal_feasibility(ctx, proposal_id) if proposal.targets else []
    return _render(request, "observation/proposal.html", proposal=proposal,
                  pi=names.get(proposal.pi_id), edit_op=ProposalOps.UPDATE,
                  feasibility=checked,
                  decision=decision, files=files,
                  balance=observing.allocation_balance(ctx, decision.programme_id)
                  if decision and decision.programme_id else None,
                  problems=proposals.submission_problems(proposal)
                  if proposal.status == "draft" else [])


@pages.get("/observation/proposals/{proposal_id}/pdf", openapi_extra=uses(ProposalOps.READ))
def proposal_pdf(proposal_id: Id, ctx: Ctx):
    """The proposal as one PDF (its justification appended), for printing or archiving."""
    filename, content = document.proposal_pdf(ctx, proposal_id)
    return Response(content, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{filename}"'})


def _pool_names(ctx: Context, call_id: Id, role: str) -> list[str]:
    return [u.username for u in reviews.pool(ctx, call_id, role)]


@pages.get("/observation/calls/{call_id}/manage",
           openapi_extra=uses(CallOps.READ, ReviewOps.READ, AllocationOps.READ))
def manage_page(request: Request, call_id: Id, ctx: Ctx):
    call = calls.get_call(ctx, call_id)
    manager = ctx.can(CallOps.UPDATE, call)
    allocator = ctx.can(AllocationOps.RUN, call)
    ranking = allocations.list_allocations(ctx, call_id=call.id) if (
        manager or allocator) else []
    # what the caller may read: all for managers, everything only after the review deadline
    # for the TAC (the rule is in policy.toml), one's own for a reviewer
    found = reviews.list_reviews(ctx, call_id=call.id) if (manager or allocator) else []
    return _render(request, "observation/manage.html", call=call, manager=manager,
                  allocator=allocator, publisher=ctx.can(AllocationOps.PUBLISH, call),
                  reviewers=_pool_names(ctx, call.id, "reviewer"),
                  tac=_pool_names(ctx, call.id, "tac_member"), ranking=ranking,
                  reviews=found, shown=reviews.shown_reviewers(ctx, found),
                  normalised=reviews.normalised_values(call, found),
                  means=reviews.normalised_grades(call, found))


def _hours(text: str, problems: list) -> dict[str, float] | None:
    """Lines (or commas) of INSTRUMENT=HOURS; None when empty."""
    if not text.strip():
        return None
    hours = {}
    for line in text.replace(",", "\n").splitlines():
        name, _, value = line.partition("=")
        if not line.strip():
            continue
        try:
            hours[name.strip()] = float(value)
        except ValueError:
            problems.append({"field": "instrument_hours",
                             "message": f"“{line.strip()[:40]}” is not INSTRUMENT=HOURS."})
    return hours


def _back(ctx: Context, call_id: Id, message: str):
    return flash_redirect(f"/observation/calls/{call_id}/manage", message)


def _when(value: str, field: str, problems: list) -> dt.datetime | None:
    if not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        problems.append({"field": field, "message": "A date and time such as "
                                                    "2027-03-01T12:00:00Z."})
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@pages.post("/observation/calls/{call_id}/manage", openapi_extra=uses(CallOps.UPDATE))
def manage_form(call_id: Id, ctx: Ctx,
                title: Annotated[str, Form(max_length=200)] = "",
                opens_at: Annotated[str, Form(max_length=40)] = "",
                closes_at: Annotated[str, Form(max_length=40)] = "",
                review_deadline: Annotated[str, Form(max_length=40)] = "",
                instrument_hours: Annotated[str, Form(max_length=2000)] = "",
                categories: Annotated[str, Form(max_length=5000)] = "",
                page_limit: Annotated[int | None, Form(ge=0, le=1000)] = None,
                max_targets: Annotated[int | None, Form(ge=0, le=100000)] = None,
                reviewers_per_proposal: Annotated[int | None, Form(ge=0, le=100)] = None,
                normalisation: Annotated[str, Form(max_length=16)] = "",
                review_flags: Annotated[str, Form(max_length=4)] = "",
                hide_reviewers_from_each_other: Annotated[bool, Form()] = False,
                weather_loss: Annotated[float | None, Form(ge=0, le=10)] = None,
                proprietary_months: Annotated[int | None, Form(ge=0, le=1000)] = None):
    """The manager's form: every field optional; hours as lines of INSTRUMENT=HOURS. An
    unticked checkbox sends nothing, so the flag is read only when the form says it carries
    it (`review_flags`)."""
    problems: list[dict[str, str]] = []
    hours = _hours(instrument_hours, problems)
    review = {k: v for k, v in (("reviewers_per_proposal", reviewers_per_proposal),
                                ("normalisation", normalisation or None)) if v is not None}
    if review_flags:
        review["hide_reviewers_from_each_other"] = hide_reviewers_from_each_other
    changes = dict(
        title=title.strip() or None, opens_at=_when(opens_at, "opens_at", problems),
        closes_at=_when(closes_at, "closes_at", problems),
        review_deadline=_when(review_deadline, "review_deadline", problems),
        instrument_hours=hours,
        categories=[c.strip() for c in categories.split(",") if c.strip()]
        if categories.strip() else None,
        form={k: v for k, v in (("page_limit", page_limit), ("max_targets", max_targets))
              if v is not None} or None,
        review_setup=review or None,
        allocation_setup={"weather_loss": weather_loss} if weather_loss is not None else None,
        proprietary_months=proprietary_months)
    if problems:
        raise ValidationFailed(problems)
    calls.update_call(ctx, call_id, **changes)
    return _back(ctx, call_id, gettext(ctx.language, "The call was saved."))


@pages.post("/observation/calls/{call_id}/appoint", openapi_extra=uses(ReviewOps.APPOINT))
def appoint_form(call_id: Id, ctx: Ctx, username: Annotated[str, Form(max_length=64)],
                 role: Annotated[str, Form(max_length=16)] = "reviewer",
                 remove: Annotated[bool, Form()] = False):
    reviews.appoint(ctx, call_id, username=username.strip(), role=role, remove=remove)
    return _back(ctx, call_id, gettext(ctx.language, "The pool was updated."))


@pages.post("/observation/calls/{call_id}/assign", openapi_extra=uses(ReviewOps.ASSIGN))
def assign_form(call_id: Id, ctx: Ctx):
    result = reviews.auto_assign(ctx, call_id)
    return _back(ctx, call_id, gettext(ctx.language, "%(n)s reviews assigned.",
                                       n=result["assigned"]))


@pages.post("/observation/calls/{call_id}/allocate", openapi_extra=uses(AllocationOps.RUN))
def allocate_form(call_id: Id, ctx: Ctx):
    allocations.run_allocation(ctx, call_id)
    return _back(ctx, call_id, gettext(ctx.language, "The allocation was run."))


@pages.post("/observation/calls/{call_id}/publish", openapi_extra=uses(AllocationOps.PUBLISH))
def publish_form(call_id: Id, ctx: Ctx):
    allocations.publish(ctx, call_id)
    return _back(ctx, call_id, gettext(ctx.language, "The results are published."))


# ---- the PI's drafting pages ------------------------------------------------------------------

MAX_ROWS = 20  # target rows on the drafting page


@pages.post("/observation/calls/{call_id}/propose", openapi_extra=uses(ProposalOps.CREATE))
def propose_form(call_id: Id, ctx: Ctx):
    proposal = proposals.create_proposal(ctx, call_id=call_id)
    return flash_redirect(f"/observation/proposals/{proposal.id}/edit")


@pages.get("/observation/proposals/{proposal_id}/edit", openapi_extra=uses(ProposalOps.READ))
def edit_page(request: Request, proposal_id: Id, ctx: Ctx):
    proposal = proposals.get_proposal(ctx, proposal_id)
    return _edit(request, ctx, proposal)


def _edit(request: Request, ctx: Context, proposal, status_code: int = 200, problems=None,
          form=None):
    rows = min(MAX_ROWS, int(proposal.call.form["max_targets"]))
    return _render(request, "observation/edit.html", status_code=status_code,
                  proposal=proposal, rows=rows, problems=problems or [],
                  form=form, instruments=proposal.call.telescope.instruments,
                  can_edit=ctx.can(ProposalOps.UPDATE, proposal),
                  can_submit=ctx.can(ProposalOps.SUBMIT, proposal),
                  readiness=proposals.submission_problems(proposal))


def _number_or_text(value: str):
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


def targets_from_form(form, instruments) -> list[dict]:
    """The target rows of the drafting form (row n: t<n>_name, t<n>_ra, …; one exposure
    block per target; the set-up's fields are named t<n>_p_<parameter>)."""
    targets = []
    for n in range(MAX_ROWS):
        name = str(form.get(f"t{n}_name", "")).strip()
        if not name:
            continue
        instrument = str(form.get(f"t{n}_instrument", ""))
        schema = next((i.setup_schema for i in instruments if i.name == instrument), {})
        setup = {}
        for pname, spec in (schema.get("parameters") or {}).items():
            value = str(form.get(f"t{n}_p_{pname}", "")).strip()
            if not value:
                continue
            if spec.get("type") == "choice":  # the choice itself, whatever its type
                setup[pname] = next((c for c in spec.get("choices", []) if str(c) == value),
                                    value)
            elif spec.get("type") in ("number", "integer"):
                setup[pname] = _number_or_text(value)
            else:
                setup[pname] = value
        targets.append({
            "name": name, "ra": _number_or_text(str(form.get(f"t{n}_ra", ""))),
            "dec": _number_or_text(str(form.get(f"t{n}_dec", ""))),
            "magnitude": _number_or_text(str(form.get(f"t{n}_mag", ""))) if str(
                form.get(f"t{n}_mag", "")).strip() else None,
            "exposures": [{"instrument": instrument, "setup": setup,
                           "seconds": _number_or_text(str(form.get(f"t{n}_seconds", ""))),
                           "count": _number_or_text(str(form.get(f"t{n}_count", "1")))}],
            "constraints": {
                "max_airmass": _number_or_text(str(form.get(f"t{n}_airmass", "2"))),
                "min_moon_distance": _number_or_text(str(form.get(f"t{n}_moon", "30")))}})
    return targets


@pages.post("/observation/proposals/{proposal_id}/edit", openapi_extra=uses(ProposalOps.UPDATE))
async def edit_form(request: Request, proposal_id: Id, ctx: Ctx):
    """Save the drafting form; a refused save shows the form again with every problem and the
    values the author typed, so nothing is lost (a stale version included)."""
    form = await request.form()

    def save():
        proposal = proposals.get_proposal(ctx, proposal_id)
        try:
            version = int(str(form.get("version", "0")))
        except ValueError:
            version = 0
        changes = {"title": str(form.get("title", ""))[:300],
                   "abstract": str(form.get("abstract", ""))[:10_000],
                   "category": str(form.get("category", ""))[:100],
                   "previous_allocations": str(form.get("previous_allocations", ""))[:10_000],
                   "targets": targets_from_form(form, proposal.call.telescope.instruments)}
        try:
            proposals.update_proposal(ctx, proposal_id, version=version, **changes)
        except (ValidationFailed, proposals.EditConflict, proposals.DeadlinePassed) as exc:
            messages = exc.localized(ctx.language) if isinstance(exc, ValidationFailed) else [
                {"field": "", "message": exc.translated(ctx.language)}]
            proposal = proposals.get_proposal(ctx, proposal_id)
            return _edit(request, ctx, proposal, status_code=exc.status, problems=messages,
                         form=form)
        return flash_redirect(f"/observation/proposals/{proposal_id}/edit",
                              gettext(ctx.language, "The draft was saved."))

    return await run_in_threadpool(save)


@pages.post("/observation/proposals/{proposal_id}/justification",
            openapi_extra=uses(ProposalOps.UPDATE))
def justification_form(proposal_id: Id, ctx: Ctx, file: UploadFile):
    content = file.file.read(50 * 1024 * 1024 + 1)
    proposals.upload_justification(ctx, proposal_id, filename=file.filename or "",
                                   content=content)
    return flash_redirect(f"/observation/proposals/{proposal_id}/edit",
                          gettext(ctx.language, "The justification was uploaded."))


@pages.post("/observation/proposals/{proposal_id}/invite", openapi_extra=uses(ProposalOps.UPDATE))
def invite_form(proposal_id: Id, ctx: Ctx, email: Annotated[str, Form(max_length=254)]):
    proposals.invite_coi(ctx, proposal_id, email=email)
    return flash_redirect(f"/observation/proposals/{proposal_id}/edit",
                          gettext(ctx.language, "The invitation was sent."))


@pages.post("/observation/proposals/{proposal_id}/submit", openapi_extra=uses(ProposalOps.SUBMIT))
def submit_form(proposal_id: Id, ctx: Ctx):
    proposals.submit_proposal(ctx, proposal_id)
    return flash_redirect(f"/observation/proposals/{proposal_id}",
                          gettext(ctx.language, "The proposal was submitted."))


# ---- the reviewer's page ----------------------------------------------------------------------


@pages.get("/observation/reviews", openapi_extra=uses(ReviewOps.READ))
def reviews_page(request: Request, ctx: Ctx):
    """The reviews assigned to the caller (or, for managers, those of their calls)."""
    found = reviews.list_reviews(ctx) if ctx.subject.authenticated else []
    mine = [r for r in found if r.reviewer_id == ctx.subject.id]
    return _render(request, "observation/reviews.html", reviews=mine, now=ctx.now())


@pages.post("/observation/reviews/{review_id}", openapi_extra=uses(ReviewOps.GRADE))
def grade_form(review_id: Id, ctx: Ctx,
               grade: Annotated[float | None, Form(ge=-1e6, le=1e6)] = None,
               feasible: Annotated[str, Form(max_length=8)] = "",
               comment: Annotated[str, Form(max_length=20_000)] = ""):
    verdict = {"yes": True, "no": False}.get(feasible)
    reviews.grade(ctx, review_id, grade=grade, feasible=verdict, comment=comment)
    return flash_redirect("/observation/reviews", gettext(ctx.language, "The review was saved."))


# ---- a telescope's page: its calls, a new call, the queue and the observation log -------------


@pages.get("/observation/telescopes/{name}",
           openapi_extra=uses(ObservationOps.TELESCOPE_READ, CallOps.READ, AllocationOps.READ,
                              ObservingOps.LOG_READ))
def telescope_page(request: Request, name: str, ctx: Ctx):
    telescope = services.telescope_named(ctx, name[:64])
    found = calls.list_calls(ctx, telescope=telescope.name)
    signed_in = ctx.subject.authenticated
    return _render(request, "observation/telescope.html", telescope=telescope, calls=found,
                  queue=observing.queue(ctx, telescope.name) if signed_in else [],
                  logs=observing.list_logs(ctx, telescope=telescope.name) if signed_in else [],
                  create_op=CallOps.CREATE, log_op=ObservingOps.LOG_WRITE)


@pages.post("/observation/telescopes/{name}/calls", openapi_extra=uses(CallOps.CREATE))
def new_call_form(name: str, ctx: Ctx, call_name: Annotated[str, Form(max_length=64)],
                  opens_at: Annotated[str, Form(max_length=40)],
                  closes_at: Annotated[str, Form(max_length=40)],
                  review_deadline: Annotated[str, Form(max_length=40)],
                  semester_start: Annotated[str, Form(max_length=40)],
                  semester_end: Annotated[str, Form(max_length=40)],
                  instrument_hours: Annotated[str, Form(max_length=2000)] = "",
                  categories: Annotated[str, Form(max_length=5000)] = ""):
    problems: list[dict[str, str]] = []
    times = {field: _when(value, field, problems) for field, value in (
        ("opens_at", opens_at), ("closes_at", closes_at),
        ("review_deadline", review_deadline), ("semester_start", semester_start),
        ("semester_end", semester_end))}
    hours = _hours(instrument_hours, problems) or {}
    for field, value in times.items():
        if value is None and not any(p["field"] == field for p in problems):
            problems.append({"field": field, "message": "Required."})
    if problems:
        raise ValidationFailed(problems)
    call = calls.create_call(ctx, telescope=name[:64], name=call_name.strip(), **times,
                             instrument_hours=hours,
                             categories=[c.strip() for c in categories.split(",") if c.strip()])
    return flash_redirect(f"/observation/calls/{call.id}/manage",
                          gettext(ctx.language, "The call was opened."))


@pages.post("/observation/telescopes/{name}/log", openapi_extra=uses(ObservingOps.LOG_WRITE))
def log_form(name: str, ctx: Ctx, programme: Annotated[str, Form(max_length=64)],
             target: Annotated[str, Form(max_length=100)],
             start: Annotated[str, Form(max_length=40)], end: Annotated[str, Form(max_length=40)],
             status: Annotated[str, Form(max_length=16)] = "done",
             file_ids: Annotated[str, Form(max_length=20_000)] = "",
             seeing: Annotated[float | None, Form(ge=0, le=100)] = None):
    problems: list[dict[str, str]] = []
    begin, finish = _when(start, "start", problems), _when(end, "end", problems)
    if problems or begin is None or finish is None:
        raise ValidationFailed(problems or [{"field": "start", "message": "Required."}])
    observing.record(ctx, name[:64], programme=programme.strip(), target=target, start=begin,
                     end=finish, status=status,
                     conditions={"seeing_arcsec": seeing} if seeing is not None else {},
                     file_ids=[f.strip() for f in file_ids.replace(",", " ").split()
                               if f.strip()])
    return flash_redirect(f"/observation/telescopes/{name}",
                          gettext(ctx.language, "The observation was logged."))
