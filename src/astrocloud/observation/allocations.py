"""The TAC and the allocation of time.

After the review deadline the TAC sees the proposals ranked by their mean normalised grade
(1 best), may move a proposal up or down with a written reason, and runs the allocation: down
the ranking, each instrument's hours (less the weather-loss factor) go to the proposals with a
grade A, B or C on the call's thresholds — in full, partly when the instrument runs out or the
proposal would exceed the call's maximum share, or not at all — and the oversubscription of
each instrument is shown. The telescope's manager publishes the results: each allocated
proposal becomes a programme (its code is the proposal's, its proprietary period the call's),
and every PI gets an e-mail with the decision and the reviewers' comments, anonymised.
"""

from __future__ import annotations

import sqlalchemy as sa

from astrocloud.core import mail
from astrocloud.core.errors import Conflict, NotFound, ValidationFailed
from astrocloud.core.identity.models import User
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, operation
from astrocloud.observation.models import (
    Allocation,
    ObservationCall,
    Programme,
    ProgrammeMember,
    Proposal,
    ProposalMember,
    Review,
)
from astrocloud.observation.reviews import normalised_grades


class AllocationOps(OperationSet):
    READ = Query("observation.allocation.read", resource="allocation",
                 doc="See the ranking and allocations (the TAC after the review deadline; "
                     "a PI their published decision).")
    RUN = Action("observation.allocation.run", resource="call",
                 doc="Rank a call's proposals and allocate its hours (the TAC).")
    RANK = Action("observation.allocation.rank", resource="allocation",
                  doc="Move a proposal in the ranking, with a written reason (the TAC).")
    PUBLISH = Action("observation.allocation.publish", resource="call",
                     doc="Publish a call's results: programmes and e-mails to the PIs.")


def grade_for(call: ObservationCall, score: float | None) -> str | None:
    """A, B or C on the call's thresholds (a lower score is better); None: no time."""
    if score is None:
        return None
    thresholds = call.allocation_setup["thresholds"]
    for grade in ("A", "B", "C"):
        if score <= float(thresholds[grade]):
            return grade
    return None


def _call(ctx: Context, call_id: int) -> ObservationCall:
    call = ctx.db.get(ObservationCall, call_id)
    if call is None:
        raise NotFound("There is no call with id %(ident)s.", ident=call_id)
    return call


def allocate(ctx: Context, call: ObservationCall) -> dict:
    """Refresh the call's ranking and allocation (inside the caller's operation): one row
    per submitted proposal, ranked by score unless the TAC placed it, then hours handed out
    down the ranking. Returns the available hours and oversubscription per instrument."""
    submitted = list(ctx.db.scalars(sa.select(Proposal).where(
        Proposal.call_id == call.id, Proposal.status.in_(("submitted", "accepted",
                                                          "rejected")))))
    science = list(ctx.db.scalars(sa.select(Review).where(Review.call_id == call.id,
                                                          Review.kind == "science")))
    scores = normalised_grades(call, science)
    rows = {a.proposal_id: a for a in ctx.db.scalars(
        sa.select(Allocation).where(Allocation.call_id == call.id))}
    for proposal in submitted:
        if proposal.id not in rows:
            rows[proposal.id] = Allocation(proposal_id=proposal.id, call_id=call.id,
                                           telescope_id=call.telescope_id,
                                           pi_id=proposal.pi_id, rank=0, rank_history=[],
                                           hours={})
            ctx.db.add(rows[proposal.id])
        rows[proposal.id].score = scores.get(proposal.id)
        rows[proposal.id].proposal = proposal
    for pid in [pid for pid in rows if pid not in {p.id for p in submitted}]:
        ctx.db.delete(rows.pop(pid))  # withdrawn meanwhile
    # by score, then the TAC's placements (latest last) moved to where they asked
    ordered = sorted(rows.values(), key=lambda a: (a.score is None, a.score or 0,
                                                   a.proposal_id))
    placed = sorted((a for a in ordered if a.rank_history),
                    key=lambda a: a.rank_history[-1]["at"])
    for allocation in placed:
        ordered.remove(allocation)
        ordered.insert(min(len(ordered), allocation.rank_history[-1]["to"] - 1), allocation)
    weather = float(call.allocation_setup["weather_loss"])
    share = float(call.allocation_setup["max_share"])
    available = {name: round(float(hours) * (1 - weather), 4)
                 for name, hours in call.instrument_hours.items()}
    remaining = dict(available)
    requested: dict[str, float] = {}
    for n, allocation in enumerate(ordered, start=1):
        allocation.rank = n
        asked = allocation.proposal.requested_by_instrument or {}
        for name, hours in asked.items():
            requested[name] = requested.get(name, 0.0) + hours
        allocation.grade = grade_for(call, allocation.score)
        granted = {}
        if allocation.grade is not None:
            for name, hours in asked.items():
                cap = share * available.get(name, 0.0)
                give = round(max(0.0, min(hours, cap, remaining.get(name, 0.0))), 4)
                if give > 0:
                    granted[name] = give
                    remaining[name] = round(remaining[name] - give, 4)
        allocation.hours = granted
        allocation.total_hours = round(sum(granted.values()), 4)
        full = granted and all(granted.get(k, 0) >= v - 1e-9 for k, v in asked.items())
        allocation.outcome = "full" if full else "partial" if granted else "none"
        allocation.updated_at = ctx.now()
        if allocation.outcome == "none":
            allocation.grade = None
    ctx.db.flush()
    return {"available": available, "remaining": remaining, "requested": {
        k: round(v, 4) for k, v in requested.items()},
        "oversubscription": {name: round(requested.get(name, 0.0) / hours, 3) if hours else
                             None for name, hours in available.items()}}


@operation(AllocationOps.RUN)
def run_allocation(ctx: Context, call_id: int) -> dict:
    """Rank and allocate a call (observation.allocation.run: its TAC, after the review
    deadline; its managers). Refused once the results are published."""
    call = _call(ctx, call_id)
    ctx.authorize(call)
    if call.results_published_at is not None:
        raise Conflict("The results of this call are published; the allocation is final.")
    summary = allocate(ctx, call)
    ctx.note(f"allocated; oversubscription {summary['oversubscription']}")
    return summary


@operation(AllocationOps.RANK)
def adjust_rank(ctx: Context, allocation_id: int, *, rank: int, reason: str) -> Allocation:
    """Move a proposal to `rank` with a written reason, kept in its history; the allocation
    is run again at once (observation.allocation.rank: the TAC, before publication)."""
    allocation = ctx.get_visible(Allocation, allocation_id, op=AllocationOps.READ,
                                 what="allocation")
    ctx.authorize(allocation)
    problems = []
    if not (reason or "").strip():
        problems.append({"field": "reason", "message": "Say why the rank changes."})
    if not isinstance(rank, int) or rank < 1:
        problems.append({"field": "rank", "message": "A rank is 1 or more."})
    if problems:
        raise ValidationFailed(problems)
    if allocation.call.results_published_at is not None:
        raise Conflict("The results of this call are published; the allocation is final.")
    allocation.rank_history = [*allocation.rank_history, {
        "by": ctx.subject.username, "from": allocation.rank, "to": rank,
        "reason": reason.strip()[:2000], "at": ctx.now().isoformat()}]
    allocate(ctx, allocation.call)
    ctx.note(f"rank {allocation.rank_history[-1]['from']} → {rank}")
    return allocation


@operation(AllocationOps.READ)
def list_allocations(ctx: Context, *, call_id: int | None = None) -> list[Allocation]:
    """The allocations the caller may see, by call and rank."""
    ctx.authorize_listing()
    stmt = sa.select(Allocation).order_by(Allocation.call_id, Allocation.rank)
    if call_id is not None:
        stmt = stmt.where(Allocation.call_id == call_id)
    return list(ctx.db.scalars(ctx.visible(stmt)))


def _decision_mail(call: ObservationCall, allocation: Allocation, comments: list[str]) -> str:
    proposal = allocation.proposal
    if allocation.total_hours > 0:
        hours = ", ".join(f"{k}: {v:g} h" for k, v in sorted(allocation.hours.items()))
        decision = (f"ALLOCATED ({allocation.outcome}), grade {allocation.grade}: {hours}.\n"
                    f"Your programme code is {proposal.code}; its data stay proprietary for "
                    f"{call.proprietary_months} months.")
    else:
        decision = "NOT ALLOCATED this time."
    lines = ["Dear PI,", "",
             f"the results of the call {call.name} on {call.telescope.name} are published.",
             f"Proposal {proposal.code}: “{proposal.title}”", "", decision, "",
             "Comments of the reviewers:"]
    lines += [f"--- Reviewer {n} ---\n{text}" for n, text in enumerate(comments, start=1)]
    if not comments:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


@operation(AllocationOps.PUBLISH)
def publish(ctx: Context, call_id: int) -> dict:
    """Publish a call's results (observation.allocation.publish: its telescope's managers):
    allocated proposals become programmes with the call's proprietary period, the others are
    declined, and each PI is e-mailed the decision with the reviewers' comments, anonymised."""
    call = _call(ctx, call_id)
    ctx.authorize(call)
    if call.results_published_at is not None:
        raise Conflict("The results of this call are published already.")
    allocate(ctx, call)
    allocations = list(ctx.db.scalars(sa.select(Allocation).where(
        Allocation.call_id == call.id).order_by(Allocation.rank)))
    mails = []
    for allocation in allocations:
        proposal = allocation.proposal
        allocation.published = True
        if allocation.total_hours > 0:
            proposal.status = "accepted"
            programme = ctx.db.scalar(sa.select(Programme).where(
                Programme.code == proposal.code))
            if programme is None:
                programme = Programme(code=proposal.code, title=proposal.title,
                                      telescope_id=call.telescope_id, pi_id=proposal.pi_id,
                                      proprietary_months=call.proprietary_months)
                ctx.db.add(programme)
                ctx.db.flush()
                programme.members.append(ProgrammeMember(user_id=proposal.pi_id, role="pi"))
                for user_id in ctx.db.scalars(sa.select(ProposalMember.user_id).where(
                        ProposalMember.proposal_id == proposal.id,
                        ProposalMember.accepted_at.is_not(None))):
                    if user_id and user_id != proposal.pi_id:
                        programme.members.append(ProgrammeMember(user_id=user_id, role="coi"))
            allocation.programme_id = programme.id
        else:
            proposal.status = "rejected"
        comments = [r.comment for r in ctx.db.scalars(
            sa.select(Review).where(Review.proposal_id == proposal.id,
                                    Review.kind == "science").order_by(Review.id))
                    if r.comment.strip()]
        email = ctx.db.scalar(sa.select(User.email).where(User.id == proposal.pi_id))
        if email:
            mails.append((email, f"Decision on proposal {proposal.code}",
                          _decision_mail(call, allocation, comments)))
    call.results_published_at = ctx.now()
    settings = ctx.settings

    def send() -> None:
        for to, subject, body in mails:
            mail.send_mail(settings, to, subject, body)

    ctx.after_commit(send)
    ctx.db.flush()
    accepted = sum(1 for a in allocations if a.total_hours > 0)
    ctx.note(f"published: {accepted} of {len(allocations)} allocated")
    return {"allocated": accepted, "declined": len(allocations) - accepted}
