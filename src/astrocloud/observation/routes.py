"""HTTP routes of the Observation channel: the JSON API for telescopes, instruments,
programmes, calls, proposals, reviews, allocations and the observation log (its pages are in
`observation.pages`).

    GET   /api/v1/observation/telescopes                 every telescope with its instruments
    GET   /api/v1/observation/telescopes/<name>
    PATCH /api/v1/observation/telescopes/<name>          header mapping, proprietary period,
                                                         new instruments (its managers)
    PUT   /api/v1/observation/telescopes/<name>/instruments/<instrument>/qc   QC limits
    PUT   /api/v1/observation/telescopes/<name>/instruments/<instrument>/schema  back-end
                                                         parameters and overheads
    GET   /api/v1/observation/programmes
    GET   /api/v1/observation/calls[?telescope=&open=true]   calls; POST opens one
    GET   /api/v1/observation/calls/<id>; PATCH changes it (the telescope's managers)
    GET   /api/v1/observation/proposals[?call_id=&status=]  one's proposals; POST drafts one
    GET   /api/v1/observation/proposals/<id>; PATCH saves a draft {version, …}
    GET   /api/v1/observation/proposals/<id>/problems         what keeps it from submission
    PUT   /api/v1/observation/proposals/<id>/justification    the PDF (GET reads it)
    POST  /api/v1/observation/proposals/<id>/invitations      invite a co-I by e-mail
    POST  /api/v1/observation/proposals/<id>/invitations/accept?token=
    POST  /api/v1/observation/proposals/<id>/submit · /withdraw; GET …/versions
    GET   /api/v1/observation/proposals/<id>/feasibility      observable hours per target
    GET   /api/v1/observation/proposals/<id>/pdf              the proposal as one PDF
    GET   /api/v1/observation/proposals/<id>/reviewers        names or anonymous labels
    POST  /api/v1/observation/calls/<id>/appointments         reviewer pool and TAC
    GET   /api/v1/observation/reviews[?call_id=&proposal_id=]; POST assigns one by hand;
          POST …/reviews/auto-assign {call_id}; PATCH …/reviews/<id> grades; DELETE removes;
          POST …/reviews/conflicts declares a conflict of interest
    GET   /api/v1/observation/allocations[?call_id=]; POST …/allocations/run {call_id};
          PATCH …/allocations/<id> {rank, reason}; POST …/allocations/publish {call_id}
    GET   /api/v1/observation/queue/<telescope>[/plan?night=YYYY-MM-DD]
    GET   /api/v1/observation/observation-logs[?telescope=&programme=]; POST records one
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, UploadFile
from pydantic import Field
from starlette.responses import Response

from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.inputs import StrictModel
from astrocloud.core.web.routing import MAX_ID, Id, uses
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
from astrocloud.observation.pages import pages  # noqa: F401 - the channel's pages
from astrocloud.observation.proposals import ProposalOps
from astrocloud.observation.reviews import ReviewOps
from astrocloud.observation.services import ObservationOps

api = APIRouter(prefix="/api/v1/observation", tags=["observation"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
Name = Annotated[str, Field(max_length=64)]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
MAX_JUSTIFICATION = 50 * 1024 * 1024  # the largest limit a call may set


def telescope_out(t) -> dict[str, Any]:
    return {"name": t.name, "title": t.title, "longitude": t.longitude, "latitude": t.latitude,
            "elevation": t.elevation, "aperture": t.aperture, "time_zone": t.time_zone,
            "proprietary_months": t.proprietary_months, "header_mapping": t.header_mapping,
            "open_for_proposals": t.open_for_proposals,
            "instruments": [{"name": i.name, "kind": i.kind, "qc_config": i.qc_config,
                             "setup_schema": i.setup_schema} for i in t.instruments]}


@api.get("/telescopes", openapi_extra=uses(ObservationOps.TELESCOPE_READ),
         summary="The telescopes and their instruments")
def get_telescopes(ctx: Ctx):
    return [telescope_out(t) for t in services.list_telescopes(ctx)]


@api.get("/telescopes/{name}", openapi_extra=uses(ObservationOps.TELESCOPE_READ),
         summary="One telescope")
def get_telescope(name: str, ctx: Ctx):
    return telescope_out(services.telescope_named(ctx, name))


class TelescopeChange(StrictModel):
    header_mapping: dict[str, list[Name] | Name] | None = Field(None, max_length=40)
    proprietary_months: int | None = Field(None, ge=0, le=120)
    add_instruments: list[Name] = Field(default_factory=list, max_length=20)
    title: str | None = Field(None, max_length=200)
    longitude: float | None = None
    latitude: float | None = None
    elevation: float | None = None
    aperture: float | None = None
    time_zone: str | None = Field(None, max_length=64)
    open_for_proposals: bool | None = None


@api.patch("/telescopes/{name}", openapi_extra=uses(ObservationOps.TELESCOPE_UPDATE),
           summary="Change a telescope's header mapping, proprietary period or instruments")
def patch_telescope(name: str, body: TelescopeChange, ctx: Ctx):
    return telescope_out(services.update_telescope(
        ctx, name, header_mapping=body.header_mapping,
        proprietary_months=body.proprietary_months, add_instruments=body.add_instruments,
        title=body.title, longitude=body.longitude, latitude=body.latitude,
        elevation=body.elevation, aperture=body.aperture, time_zone=body.time_zone,
        open_for_proposals=body.open_for_proposals))


class SchemaBody(StrictModel):
    setup_schema: dict[str, Any]
    kind: str | None = Field(None, max_length=32)


@api.put("/telescopes/{name}/instruments/{instrument}/schema",
         openapi_extra=uses(ObservationOps.TELESCOPE_UPDATE),
         summary="Set an instrument's back-end parameters and overheads")
def put_schema(name: str, instrument: str, body: SchemaBody, ctx: Ctx):
    target = services.set_instrument_schema(ctx, name, instrument, body.setup_schema, body.kind)
    return {"name": target.name, "kind": target.kind, "setup_schema": target.setup_schema}


@api.put("/telescopes/{name}/instruments/{instrument}/qc",
         openapi_extra=uses(ObservationOps.TELESCOPE_UPDATE),
         summary="Set an instrument's quality-control limits")
def put_qc(name: str, instrument: str, body: dict[str, Any], ctx: Ctx):
    target = services.set_instrument_qc(ctx, name, instrument, body)
    return {"name": target.name, "qc_config": target.qc_config}


@api.get("/programmes", openapi_extra=uses(ObservationOps.PROGRAMME_READ),
         summary="The observing programmes")
def get_programmes(ctx: Ctx):
    return [{"code": p.code, "title": p.title, "telescope": p.telescope.name,
             "proprietary_months": p.proprietary_months} for p in services.list_programmes(ctx)]


# ---- calls ------------------------------------------------------------------------------------


def call_out(c, now=None) -> dict[str, Any]:
    from astrocloud.observation.calls import is_open

    return {"id": c.id, "telescope": c.telescope.name, "name": c.name, "title": c.title,
            "description": c.description, "opens_at": c.opens_at, "closes_at": c.closes_at,
            "is_open": is_open(c, now) if now is not None else None,
            "semester_start": c.semester_start, "semester_end": c.semester_end,
            "review_deadline": c.review_deadline, "instrument_hours": c.instrument_hours,
            "categories": c.categories, "form": c.form, "review_setup": c.review_setup,
            "allocation_setup": c.allocation_setup,
            "proprietary_months": c.proprietary_months,
            "results_published_at": c.results_published_at,
            "instruments": [{"name": i.name, "kind": i.kind, "setup_schema": i.setup_schema}
                            for i in c.telescope.instruments]}


class CallFields(StrictModel):
    name: str | None = Field(None, max_length=64)
    title: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    opens_at: dt.datetime | None = None
    closes_at: dt.datetime | None = None
    semester_start: dt.datetime | None = None
    semester_end: dt.datetime | None = None
    review_deadline: dt.datetime | None = None
    instrument_hours: dict[str, float] | None = Field(None, max_length=50)
    categories: list[Annotated[str, Field(max_length=100)]] | None = Field(None, max_length=50)
    form: dict[str, Any] | None = None
    review_setup: dict[str, Any] | None = None
    allocation_setup: dict[str, Any] | None = None
    proprietary_months: int | None = Field(None, ge=0, le=120)


class CallCreate(CallFields):
    telescope: Name
    name: str = Field(max_length=64)
    opens_at: dt.datetime
    closes_at: dt.datetime
    semester_start: dt.datetime
    semester_end: dt.datetime
    review_deadline: dt.datetime


@api.get("/calls", openapi_extra=uses(CallOps.READ), summary="Calls for proposals")
def get_calls(ctx: Ctx, telescope: Annotated[str | None, Query(max_length=64)] = None,
              open: bool = False):
    now = ctx.now()
    return {"items": [call_out(c, now) for c in calls.list_calls(
        ctx, telescope=telescope, open_only=open)]}


@api.post("/calls", status_code=201, openapi_extra=uses(CallOps.CREATE),
          summary="Open a call on a telescope")
def post_call(body: CallCreate, ctx: Ctx):
    call = calls.create_call(ctx, **body.model_dump())
    return call_out(call, ctx.now())


@api.get("/calls/{call_id}", openapi_extra=uses(CallOps.READ), summary="One call")
def get_one_call(call_id: Id, ctx: Ctx):
    return call_out(calls.get_call(ctx, call_id), ctx.now())


@api.patch("/calls/{call_id}", openapi_extra=uses(CallOps.UPDATE), summary="Change a call")
def patch_call(call_id: Id, body: CallFields, ctx: Ctx):
    call = calls.update_call(ctx, call_id, **body.model_dump(exclude_none=True))
    return call_out(call, ctx.now())


# ---- proposals --------------------------------------------------------------------------------


def proposal_out(ctx: Context, p) -> dict[str, Any]:
    names = proposals.usernames(ctx, [p.pi_id] + [m.user_id for m in p.members if m.user_id])
    document = p.document
    return {"id": p.id, "call_id": p.call_id, "telescope": p.call.telescope.name,
            "code": p.code, "status": p.status, "version": p.version,
            "pi": names.get(p.pi_id), "title": p.title, "abstract": p.abstract,
            "category": p.category, "targets": p.targets, "custom_fields": p.custom_fields,
            "previous_allocations": p.previous_allocations,
            "requested_hours": p.requested_hours,
            "requested_by_instrument": p.requested_by_instrument,
            "co_investigators": [{"email": m.email, "username": names.get(m.user_id),
                                  "accepted": m.accepted_at is not None} for m in p.members],
            "justification": None if document is None else {
                "filename": document.filename, "size": document.size, "pages": document.pages,
                "sha256": document.sha256,
                "url": f"/api/v1/observation/proposals/{p.id}/justification"},
            "deadline": p.call.closes_at, "submitted_at": p.submitted_at,
            "updated_at": p.updated_at}


class ProposalCreate(StrictModel):
    call_id: BodyId
    title: str = Field("", max_length=300)
    abstract: str = Field("", max_length=10_000)
    category: str = Field("", max_length=100)


class ProposalChange(StrictModel):
    version: int = Field(ge=1, le=MAX_ID,
                         description="the version the edit started from (optimistic locking)")
    title: str | None = Field(None, max_length=300)
    abstract: str | None = Field(None, max_length=10_000)
    category: str | None = Field(None, max_length=100)
    targets: list[Any] | None = Field(None, max_length=1000)
    custom_fields: dict[str, Any] | None = None
    previous_allocations: str | None = Field(None, max_length=10_000)


class Invitation(StrictModel):
    email: str = Field(max_length=254)


class Submission(StrictModel):
    version: int | None = Field(None, ge=1, le=MAX_ID)


@api.get("/proposals", openapi_extra=uses(ProposalOps.READ),
         summary="The proposals one may see")
def get_proposals(ctx: Ctx, call_id: QueryId = None,
                  status: Annotated[str | None, Query(max_length=16)] = None):
    return {"items": [proposal_out(ctx, p) for p in proposals.list_proposals(
        ctx, call_id=call_id, status=status)]}


@api.post("/proposals", status_code=201, openapi_extra=uses(ProposalOps.CREATE),
          summary="Start a draft proposal on an open call")
def post_proposal(body: ProposalCreate, ctx: Ctx):
    proposal = proposals.create_proposal(ctx, **body.model_dump())
    return proposal_out(ctx, proposal)


@api.get("/proposals/{proposal_id}", openapi_extra=uses(ProposalOps.READ),
         summary="One proposal")
def get_one_proposal(proposal_id: Id, ctx: Ctx):
    return proposal_out(ctx, proposals.get_proposal(ctx, proposal_id))


@api.patch("/proposals/{proposal_id}", openapi_extra=uses(ProposalOps.UPDATE),
           summary="Save a draft (naming the version it started from)")
def patch_proposal(proposal_id: Id, body: ProposalChange, ctx: Ctx):
    changes = body.model_dump(exclude_unset=True)
    version = changes.pop("version")
    return proposal_out(ctx, proposals.update_proposal(ctx, proposal_id, version=version,
                                                       **changes))


@api.get("/proposals/{proposal_id}/problems", openapi_extra=uses(ProposalOps.READ),
         summary="What keeps a proposal from being submitted")
def get_problems(proposal_id: Id, ctx: Ctx):
    problems = proposals.proposal_problems(ctx, proposal_id)
    return {"ready": not problems, "errors": problems}


@api.put("/proposals/{proposal_id}/justification", openapi_extra=uses(ProposalOps.UPDATE),
         summary="Upload the justification PDF (multipart field `file`)")
def put_justification(proposal_id: Id, file: UploadFile, ctx: Ctx):
    content = file.file.read(MAX_JUSTIFICATION + 1)
    document = proposals.upload_justification(ctx, proposal_id, filename=file.filename or "",
                                              content=content)
    return {"filename": document.filename, "size": document.size, "pages": document.pages,
            "sha256": document.sha256}


@api.get("/proposals/{proposal_id}/justification", openapi_extra=uses(ProposalOps.READ),
         summary="The justification PDF")
def get_justification(proposal_id: Id, ctx: Ctx):
    document = proposals.justification(ctx, proposal_id)
    return Response(document.content, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="proposal-{proposal_id}.pdf"'})


@api.get("/proposals/{proposal_id}/pdf", openapi_extra=uses(ProposalOps.READ),
         summary="The proposal as one PDF, its justification appended")
def get_proposal_pdf(proposal_id: Id, ctx: Ctx):
    filename, content = document.proposal_pdf(ctx, proposal_id)
    return Response(content, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{filename}"'})


@api.get("/proposals/{proposal_id}/reviewers", openapi_extra=uses(ProposalOps.READ),
         summary="Who reviews a proposal: names or anonymous labels, as one may see them")
def get_reviewers(proposal_id: Id, ctx: Ctx):
    return {"items": reviews.proposal_reviewers(ctx, proposal_id)}


@api.post("/proposals/{proposal_id}/invitations", status_code=201,
          openapi_extra=uses(ProposalOps.UPDATE), summary="Invite a co-investigator by e-mail")
def post_invitation(proposal_id: Id, body: Invitation, ctx: Ctx):
    member = proposals.invite_coi(ctx, proposal_id, email=body.email)
    return {"email": member.email, "accepted": False}


@api.post("/proposals/{proposal_id}/invitations/accept",
          openapi_extra=uses(ProposalOps.JOIN), summary="Accept an invitation")
def accept_invitation(proposal_id: Id, ctx: Ctx,
                      token: Annotated[str, Query(max_length=100)]):
    return proposal_out(ctx, proposals.accept_invitation(ctx, proposal_id, token=token))


@api.post("/proposals/{proposal_id}/submit", openapi_extra=uses(ProposalOps.SUBMIT),
          summary="Submit (every problem listed at once; refused after the deadline)")
def post_submit(proposal_id: Id, body: Submission, ctx: Ctx):
    return proposal_out(ctx, proposals.submit_proposal(ctx, proposal_id,
                                                       version=body.version))


@api.post("/proposals/{proposal_id}/withdraw", openapi_extra=uses(ProposalOps.WITHDRAW),
          summary="Withdraw a submitted proposal")
def post_withdraw(proposal_id: Id, ctx: Ctx):
    return proposal_out(ctx, proposals.withdraw_proposal(ctx, proposal_id))


@api.get("/proposals/{proposal_id}/versions", openapi_extra=uses(ProposalOps.READ),
         summary="The submitted (frozen) versions")
def get_versions(proposal_id: Id, ctx: Ctx):
    return {"items": [{"number": v.number, "submitted_at": v.submitted_at,
                       "content": v.content, "document_sha256": v.document_sha256}
                      for v in proposals.proposal_versions(ctx, proposal_id)]}


@api.get("/proposals/{proposal_id}/feasibility", openapi_extra=uses(ProposalOps.READ),
         summary="Per target: observable hours and nights during the semester")
def get_feasibility(proposal_id: Id, ctx: Ctx):
    from astrocloud.observation import feasibility

    return {"items": feasibility.proposal_feasibility(ctx, proposal_id)}


# ---- review -----------------------------------------------------------------------------------


class Appointment(StrictModel):
    username: Name
    role: str = Field("reviewer", max_length=16)
    remove: bool = False


@api.post("/calls/{call_id}/appointments", openapi_extra=uses(ReviewOps.APPOINT),
          summary="Appoint (or remove) a reviewer or TAC member of a call")
def post_appointment(call_id: Id, body: Appointment, ctx: Ctx):
    members = reviews.appoint(ctx, call_id, username=body.username, role=body.role,
                              remove=body.remove)
    return {"role": body.role, "members": [u.username for u in members]}


def review_out(r, shown: dict[int, tuple[str, bool]]) -> dict[str, Any]:
    # `shown` (reviews.shown_reviewers) names a reviewer or gives an anonymous label.
    return {"id": r.id, "proposal_id": r.proposal_id, "call_id": r.call_id, "kind": r.kind,
            "reviewer": shown[r.id][0], "grade": r.grade, "feasible": r.feasible,
            "comment": r.comment, "assigned_by": r.assigned_by,
            "submitted_at": r.submitted_at, "review_deadline": r.call.review_deadline}


class ReviewAssign(StrictModel):
    proposal_id: BodyId
    username: Name
    kind: str = Field("science", max_length=16)


class AutoAssign(StrictModel):
    call_id: BodyId


class Grade(StrictModel):
    grade: float | None = None
    feasible: bool | None = None
    comment: str = Field("", max_length=20_000)


class ConflictDeclaration(StrictModel):
    proposal_id: BodyId
    reason: str = Field("", max_length=500)


@api.get("/reviews", openapi_extra=uses(ReviewOps.READ), summary="The reviews one may see")
def get_reviews(ctx: Ctx, call_id: QueryId = None, proposal_id: QueryId = None):
    found = reviews.list_reviews(ctx, call_id=call_id, proposal_id=proposal_id)
    shown = reviews.shown_reviewers(ctx, found)
    return {"items": [review_out(r, shown) for r in found]}


@api.get("/reviews/{review_id}", openapi_extra=uses(ReviewOps.READ), summary="One review")
def get_one_review(review_id: Id, ctx: Ctx):
    review = reviews.get_review(ctx, review_id)
    return review_out(review, reviews.shown_reviewers(ctx, [review]))


@api.post("/reviews", status_code=201, openapi_extra=uses(ReviewOps.ASSIGN),
          summary="Assign a review by hand (science or technical)")
def post_review(body: ReviewAssign, ctx: Ctx):
    review = reviews.assign(ctx, body.proposal_id, username=body.username, kind=body.kind)
    return review_out(review, reviews.shown_reviewers(ctx, [review]))


@api.post("/reviews/auto-assign", openapi_extra=uses(ReviewOps.ASSIGN),
          summary="Assign reviewers to every submitted proposal of a call")
def post_auto_assign(body: AutoAssign, ctx: Ctx):
    return reviews.auto_assign(ctx, body.call_id)


@api.delete("/reviews/{review_id}", status_code=204, openapi_extra=uses(ReviewOps.ASSIGN),
            summary="Remove a review")
def delete_review(review_id: Id, ctx: Ctx):
    reviews.unassign(ctx, review_id)
    return Response(status_code=204)


@api.patch("/reviews/{review_id}", openapi_extra=uses(ReviewOps.GRADE),
           summary="Grade and comment (before the review deadline)")
def patch_review(review_id: Id, body: Grade, ctx: Ctx):
    review = reviews.grade(ctx, review_id, grade=body.grade, feasible=body.feasible,
                           comment=body.comment)
    return review_out(review, reviews.shown_reviewers(ctx, [review]))


@api.post("/reviews/conflicts", status_code=201, openapi_extra=uses(ReviewOps.DECLARE),
          summary="Declare a conflict of interest with a proposal")
def post_conflict(body: ConflictDeclaration, ctx: Ctx):
    found = reviews.declare_conflict(ctx, body.proposal_id, reason=body.reason)
    return {"proposal_id": found.proposal_id, "reason": found.reason}


# ---- TAC and allocation -----------------------------------------------------------------------


def allocation_out(a) -> dict[str, Any]:
    return {"id": a.id, "call_id": a.call_id, "proposal_id": a.proposal_id,
            "code": a.proposal.code, "title": a.proposal.title, "score": a.score,
            "rank": a.rank, "rank_history": a.rank_history, "grade": a.grade,
            "requested_by_instrument": a.proposal.requested_by_instrument,
            "hours": a.hours, "total_hours": a.total_hours, "outcome": a.outcome,
            "published": a.published, "programme_id": a.programme_id}


class CallRef(StrictModel):
    call_id: BodyId


class RankChange(StrictModel):
    rank: int = Field(ge=1, le=100_000)
    reason: str = Field(max_length=2000)


@api.get("/allocations", openapi_extra=uses(AllocationOps.READ),
         summary="The ranking and allocations one may see")
def get_allocations(ctx: Ctx, call_id: QueryId = None):
    return {"items": [allocation_out(a) for a in allocations.list_allocations(
        ctx, call_id=call_id)]}


@api.post("/allocations/run", openapi_extra=uses(AllocationOps.RUN),
          summary="Rank a call's proposals and allocate its hours")
def post_run(body: CallRef, ctx: Ctx):
    summary = allocations.run_allocation(ctx, body.call_id)
    return {**summary, "items": [allocation_out(a) for a in allocations.list_allocations(
        ctx, call_id=body.call_id)]}


@api.patch("/allocations/{allocation_id}", openapi_extra=uses(AllocationOps.RANK),
           summary="Move a proposal in the ranking, with a reason")
def patch_allocation(allocation_id: Id, body: RankChange, ctx: Ctx):
    return allocation_out(allocations.adjust_rank(ctx, allocation_id, rank=body.rank,
                                                  reason=body.reason))


@api.post("/allocations/publish", openapi_extra=uses(AllocationOps.PUBLISH),
          summary="Publish a call's results (programmes, e-mails to the PIs)")
def post_publish(body: CallRef, ctx: Ctx):
    return allocations.publish(ctx, body.call_id)


# ---- observing --------------------------------------------------------------------------------


def log_out(ctx: Context, entry) -> dict[str, Any]:
    programme = services.programme_by_id(ctx, entry.programme_id)
    return {"id": entry.id, "telescope_id": entry.telescope_id,
            "programme": programme.code if programme else None, "target": entry.target,
            "instrument": entry.instrument, "start": entry.start, "end": entry.end,
            "conditions": entry.conditions, "status": entry.status,
            "file_ids": entry.file_ids, "charged_hours": entry.charged_hours,
            "notes": entry.notes,
            "balance": observing.allocation_balance(ctx, entry.programme_id)}


class LogEntry(StrictModel):
    telescope: Name
    programme: Name
    target: str = Field(max_length=100)
    start: dt.datetime
    end: dt.datetime
    status: str = Field("done", max_length=16)
    instrument: str = Field("", max_length=64)
    conditions: dict[str, Any] = Field(default_factory=dict, max_length=20)
    file_ids: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list,
                                                                  max_length=1000)
    notes: str = Field("", max_length=10_000)


@api.get("/queue/{telescope}", openapi_extra=uses(AllocationOps.READ),
         summary="A telescope's observing queue with remaining hours")
def get_queue(telescope: str, ctx: Ctx):
    return {"items": observing.queue(ctx, telescope[:64])}


@api.get("/queue/{telescope}/plan", openapi_extra=uses(AllocationOps.READ),
         summary="The plan for one night (local evening of `night`)")
def get_plan(telescope: str, night: dt.date, ctx: Ctx):
    return {"night": night, "items": observing.night_plan(ctx, telescope[:64], night)}


@api.get("/observation-logs", openapi_extra=uses(ObservingOps.LOG_READ),
         summary="The observation log one may see")
def get_logs(ctx: Ctx, telescope: Annotated[str | None, Query(max_length=64)] = None,
             programme: Annotated[str | None, Query(max_length=64)] = None):
    return {"items": [log_out(ctx, e) for e in observing.list_logs(
        ctx, telescope=telescope, programme=programme)]}


@api.post("/observation-logs", status_code=201, openapi_extra=uses(ObservingOps.LOG_WRITE),
          summary="Record an observation (charges its time to the programme)")
def post_log(body: LogEntry, ctx: Ctx):
    data = body.model_dump()
    entry = observing.record(ctx, data.pop("telescope"), **data)
    return log_out(ctx, entry)
