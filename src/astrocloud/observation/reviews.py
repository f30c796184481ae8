"""Review of submitted proposals: the reviewer pool and TAC of a call, technical and science
reviews, automatic assignment respecting conflicts of interest, grading, normalisation.

A telescope's managers appoint a call's reviewers and TAC members (roles scoped to the call),
then let the platform assign each submitted proposal `reviewers_per_proposal` science
reviewers: never one in conflict with it — its PI or a co-investigator, someone of the same
institute as one of them, or who declared a conflict (per the call's `conflict_rules`) — and
always the least-loaded eligible one, so the work is spread evenly. Managers may add or remove
reviews by hand (conflicts still apply). Reviewers grade on the call's scale (1 best) with a
comment before the review deadline; grades are normalised per reviewer (none, z-score or rank)
before the TAC ranks proposals.

Who reviewed what is shown by `shown_reviewers`: PIs and the TAC see only "Reviewer 1, 2, …"
(numbered per proposal); a reviewer sees their own name, and the names of the other reviewers
of the same proposal only when the call's `hide_reviewers_from_each_other` is false; names
are otherwise shown only to those granted observation.review.identify (the call's managers).
"""

from __future__ import annotations

import statistics
from collections import defaultdict

import sqlalchemy as sa

from astrocloud.core.errors import Conflict, NotFound, ValidationFailed
from astrocloud.core.identity.models import User
from astrocloud.core.security.models import Role, RoleAssignment
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, operation
from astrocloud.observation.models import (
    ObservationCall,
    Proposal,
    ProposalMember,
    Review,
    ReviewConflict,
)
from astrocloud.observation.proposals import ProposalOps, get_proposal

POOL_ROLES = ("reviewer", "tac_member")


class ReviewOps(OperationSet):
    APPOINT = Action("observation.call.appoint", resource="call",
                     doc="Appoint a call's reviewers and TAC members (its managers).")
    READ = Query("observation.review.read", resource="review",
                 doc="See reviews (one's own; all of a call for its staff; the TAC after the "
                     "review deadline).")
    ASSIGN = Action("observation.review.assign", resource="call",
                    doc="Assign reviewers to a call's proposals, automatically or by hand.")
    GRADE = Action("observation.review.grade", resource="review",
                   doc="Grade and comment an assigned review before the review deadline.")
    DECLARE = Action("observation.review.declare_conflict", resource="call",
                     doc="Declare a conflict of interest with a proposal of the call.")
    IDENTIFY = Action("observation.review.identify", resource="call",
                      doc="See who reviewed a call's proposals (its managers); everyone else "
                          "sees anonymous labels.")


class ReviewConflictError(Conflict):
    code = "conflict-of-interest"


def _call(ctx: Context, call_id: int) -> ObservationCall:
    call = ctx.db.get(ObservationCall, call_id)
    if call is None:
        raise NotFound("There is no call with id %(ident)s.", ident=call_id)
    return call


def _user(ctx: Context, username: str) -> User:
    user = ctx.db.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise ValidationFailed("There is no user called “%(name)s”.", field="username",
                               name=username)
    return user


def pool(ctx: Context, call_id: int, role: str = "reviewer") -> list[User]:
    """The users holding `role` within a call (its reviewer pool or its TAC)."""
    return list(ctx.db.scalars(
        sa.select(User).join(RoleAssignment, RoleAssignment.user_id == User.id)
        .join(Role, Role.id == RoleAssignment.role_id)
        .where(Role.name == role, RoleAssignment.scope_type == "call",
               RoleAssignment.scope_id == call_id).order_by(User.username)))


@operation(ReviewOps.APPOINT)
def appoint(ctx: Context, call_id: int, *, username: str, role: str = "reviewer",
            remove: bool = False) -> list[User]:
    """Add (or remove) a user to a call's reviewer pool or TAC: a role assignment scoped to
    the call (observation.call.appoint: the telescope's managers). Returns the pool."""
    call = _call(ctx, call_id)
    ctx.authorize(call)
    if role not in POOL_ROLES:
        raise ValidationFailed("The role is reviewer or tac_member.", field="role")
    user = _user(ctx, username)
    role_row = ctx.db.scalar(sa.select(Role).where(Role.name == role))
    existing = ctx.db.scalar(sa.select(RoleAssignment).where(
        RoleAssignment.user_id == user.id, RoleAssignment.role_id == role_row.id,
        RoleAssignment.scope_type == "call", RoleAssignment.scope_id == call.id))
    if remove:
        if existing is not None:
            ctx.db.delete(existing)
    elif existing is None:
        ctx.db.add(RoleAssignment(user_id=user.id, role_id=role_row.id, scope_type="call",
                                  scope_id=call.id, created_by_id=ctx.subject.id))
    ctx.note(f"{'removed' if remove else 'appointed'} {user.username} as {role}")
    ctx.db.flush()
    return pool(ctx, call.id, role)


# ---- conflicts of interest -------------------------------------------------------------------


def _team(ctx: Context, proposal: Proposal) -> set[int]:
    members = ctx.db.scalars(sa.select(ProposalMember.user_id).where(
        ProposalMember.proposal_id == proposal.id, ProposalMember.accepted_at.is_not(None)))
    return {proposal.pi_id, *[m for m in members if m is not None]}


def conflict_reason(ctx: Context, call: ObservationCall, proposal: Proposal,
                    reviewer: User, declared: set[tuple[int, int]] | None = None) -> str | None:
    """Why `reviewer` may not review `proposal` under the call's conflict rules (None: no
    conflict). PI or co-investigator always conflicts."""
    rules = call.review_setup.get("conflict_rules", [])
    team = _team(ctx, proposal)
    if reviewer.id in team:
        return "pi_coi"
    if "institute" in rules and (reviewer.institute or "").strip():
        institutes = {(i or "").strip().lower() for i in ctx.db.scalars(
            sa.select(User.institute).where(User.id.in_(team)))}
        if reviewer.institute.strip().lower() in institutes:
            return "institute"
    if "declared" in rules:
        if declared is None:
            found = ctx.db.scalar(sa.select(ReviewConflict.id).where(
                ReviewConflict.reviewer_id == reviewer.id,
                ReviewConflict.proposal_id == proposal.id))
            if found:
                return "declared"
        elif (reviewer.id, proposal.id) in declared:
            return "declared"
    return None


@operation(ReviewOps.DECLARE)
def declare_conflict(ctx: Context, proposal_id: int, *, reason: str = "") -> ReviewConflict:
    """A reviewer of the call declares a conflict with one of its proposals; any review of it
    assigned to them is withdrawn (observation.review.declare_conflict: the call's reviewers)."""
    proposal = ctx.db.get(Proposal, proposal_id)
    if proposal is None or proposal.status == "draft":
        raise NotFound("There is no submitted proposal with id %(ident)s.", ident=proposal_id)
    ctx.authorize(proposal.call)
    found = ctx.db.scalar(sa.select(ReviewConflict).where(
        ReviewConflict.reviewer_id == ctx.subject.id, ReviewConflict.proposal_id == proposal.id))
    if found is None:
        found = ReviewConflict(reviewer_id=ctx.subject.id, proposal_id=proposal.id,
                               reason=(reason or "")[:500])
        ctx.db.add(found)
    for review in ctx.db.scalars(sa.select(Review).where(
            Review.proposal_id == proposal.id, Review.reviewer_id == ctx.subject.id)):
        ctx.db.delete(review)
    ctx.db.flush()
    return found


# ---- assignment ------------------------------------------------------------------------------


@operation(ReviewOps.ASSIGN)
def auto_assign(ctx: Context, call_id: int) -> dict:
    """Give every submitted proposal of a call its `reviewers_per_proposal` science reviewers
    from the pool: never a conflicted one, always the least-loaded eligible one (keeping any
    review already assigned). Proposals with the fewest eligible reviewers are served first.
    Returns how many reviews were added and which proposals still lack reviewers."""
    call = _call(ctx, call_id)
    ctx.authorize(call)
    reviewers = pool(ctx, call.id)
    wanted = int(call.review_setup["reviewers_per_proposal"])
    submitted = list(ctx.db.scalars(sa.select(Proposal).where(
        Proposal.call_id == call.id, Proposal.status == "submitted").order_by(Proposal.id)))
    existing = list(ctx.db.scalars(sa.select(Review).where(Review.call_id == call.id,
                                                           Review.kind == "science")))
    load: dict[int, int] = defaultdict(int)
    assigned: dict[int, set[int]] = defaultdict(set)
    for review in existing:
        load[review.reviewer_id] += 1
        assigned[review.proposal_id].add(review.reviewer_id)
    declared = set(ctx.db.execute(sa.select(ReviewConflict.reviewer_id,
                                            ReviewConflict.proposal_id)).all())
    eligible = {p.id: [r for r in reviewers if r.id not in assigned[p.id]
                       and conflict_reason(ctx, call, p, r, declared) is None]
                for p in submitted}
    added, shortfalls = 0, []
    for proposal in sorted(submitted, key=lambda p: (len(eligible[p.id]), p.id)):
        need = wanted - len(assigned[proposal.id])
        choices = sorted(eligible[proposal.id], key=lambda r: (load[r.id], r.id))
        for reviewer in choices[:max(need, 0)]:
            ctx.db.add(Review(proposal_id=proposal.id, call_id=call.id,
                              telescope_id=call.telescope_id, reviewer_id=reviewer.id,
                              kind="science", assigned_by="auto"))
            load[reviewer.id] += 1
            assigned[proposal.id].add(reviewer.id)
            added += 1
        if len(assigned[proposal.id]) < wanted:
            shortfalls.append({"proposal_id": proposal.id, "code": proposal.code,
                               "missing": wanted - len(assigned[proposal.id])})
    ctx.note(f"{added} reviews assigned, {len(shortfalls)} proposals short")
    ctx.db.flush()
    return {"assigned": added, "shortfalls": shortfalls,
            "load": {r.username: load[r.id] for r in reviewers}}


@operation(ReviewOps.ASSIGN)
def assign(ctx: Context, proposal_id: int, *, username: str, kind: str = "science") -> Review:
    """Assign one review by hand (the manual override; for a technical review, telescope
    staff). A conflicted reviewer is refused with the reason."""
    proposal = ctx.db.get(Proposal, proposal_id)
    if proposal is None or proposal.status == "draft":
        raise NotFound("There is no submitted proposal with id %(ident)s.", ident=proposal_id)
    call = proposal.call
    ctx.authorize(call)
    if kind not in ("science", "technical"):
        raise ValidationFailed("A review is science or technical.", field="kind")
    reviewer = _user(ctx, username)
    reason = conflict_reason(ctx, call, proposal, reviewer)
    if reason is not None:
        raise ReviewConflictError("%(name)s has a conflict of interest with this proposal "
                                  "(%(reason)s).", name=username, reason=reason)
    if ctx.db.scalar(sa.select(Review.id).where(Review.proposal_id == proposal.id,
                                                Review.reviewer_id == reviewer.id,
                                                Review.kind == kind)):
        raise Conflict("%(name)s reviews this proposal already.", name=username)
    review = Review(proposal_id=proposal.id, call_id=call.id, telescope_id=call.telescope_id,
                    reviewer_id=reviewer.id, kind=kind, assigned_by="manual")
    ctx.db.add(review)
    ctx.db.flush()
    return review


@operation(ReviewOps.ASSIGN)
def unassign(ctx: Context, review_id: int) -> None:
    """Remove a review (the manual override)."""
    review = ctx.db.get(Review, review_id)
    if review is None:
        raise NotFound("There is no review with id %(ident)s.", ident=review_id)
    ctx.authorize(review.call)
    ctx.db.delete(review)


# ---- grading ---------------------------------------------------------------------------------


@operation(ReviewOps.GRADE)
def grade(ctx: Context, review_id: int, *, grade: float | None = None,
          feasible: bool | None = None, comment: str = "") -> Review:
    """Grade (science: on the call's scale, 1 best) or judge (technical: feasible or not) an
    assigned review, with a comment (observation.review.grade: its reviewer, before the
    review deadline)."""
    review = ctx.get_visible(Review, review_id, op=ReviewOps.READ, what="review")
    ctx.authorize(review)
    setup = review.call.review_setup
    problems = []
    if review.kind == "science":
        low, high = float(setup["grade_min"]), float(setup["grade_max"])
        if grade is None or not low <= grade <= high:
            problems.append({"field": "grade", "message": f"A grade from {low:g} (best) to "
                                                          f"{high:g}."})
    elif feasible is None:
        problems.append({"field": "feasible", "message": "Say whether it is feasible."})
    if len(comment or "") > 20_000:
        problems.append({"field": "comment", "message": "At most 20000 characters."})
    if problems:
        raise ValidationFailed(problems)
    review.grade = grade if review.kind == "science" else None
    review.feasible = feasible if review.kind == "technical" else None
    review.comment = comment or ""
    review.submitted_at = ctx.now()
    return review


@operation(ReviewOps.READ)
def list_reviews(ctx: Context, *, call_id: int | None = None,
                 proposal_id: int | None = None) -> list[Review]:
    """The reviews the caller may see: their own; a call's for its managers; the TAC's only
    after the review deadline."""
    ctx.authorize_listing()
    stmt = sa.select(Review).order_by(Review.proposal_id, Review.id)
    if call_id is not None:
        stmt = stmt.where(Review.call_id == call_id)
    if proposal_id is not None:
        stmt = stmt.where(Review.proposal_id == proposal_id)
    return list(ctx.db.scalars(ctx.visible(stmt)))


@operation(ReviewOps.READ)
def get_review(ctx: Context, review_id: int) -> Review:
    return ctx.get_visible(Review, review_id, what="review")


# ---- who reviewed: names or anonymous labels -------------------------------------------------


def shown_reviewers(ctx: Context, found: list[Review]) -> dict[int, tuple[str, bool]]:
    """What the caller is shown as the reviewer of each review (by review id), and whether
    that is a name: the user name, or "Reviewer N" numbered per proposal (in assignment
    order). Names go to the reviewer themselves, to whoever holds observation.review.identify
    on the call, and to the other reviewers of the same proposal when the call does not hide
    reviewers from each other. Used inside the caller's reading operation."""
    if not found:
        return {}
    me = ctx.subject.id if ctx.subject.authenticated else None
    order: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for rid, pid, uid in ctx.db.execute(
            sa.select(Review.id, Review.proposal_id, Review.reviewer_id)
            .where(Review.proposal_id.in_({r.proposal_id for r in found}))
            .order_by(Review.id)):
        order[pid].append((rid, uid))
    number = {rid: n for rows in order.values() for n, (rid, _) in enumerate(rows, start=1)}
    fellow = {pid for pid, rows in order.items() if me is not None
              and any(uid == me for _, uid in rows)}
    names = dict(ctx.db.execute(sa.select(User.id, User.username).where(
        User.id.in_({r.reviewer_id for r in found}))).all())
    identify: dict[int, bool] = {}
    shown = {}
    for review in found:
        call = review.call
        if call.id not in identify:
            identify[call.id] = me is not None and ctx.can(ReviewOps.IDENTIFY, call)
        hidden = call.review_setup.get("hide_reviewers_from_each_other", True)
        named = (review.reviewer_id == me or identify[call.id]
                 or (review.proposal_id in fellow and not hidden))
        shown[review.id] = ((names.get(review.reviewer_id, ""), True) if named
                            else (f"Reviewer {number.get(review.id, 0)}", False))
    return shown


@operation(ProposalOps.READ)
def proposal_reviewers(ctx: Context, proposal_id: int) -> list[dict]:
    """Who reviews a proposal the caller may read (observation.proposal.read), as the caller
    may be shown them (see `shown_reviewers`): PIs and the TAC see anonymous labels only.
    Grades and comments are not part of this; they follow observation.review.read."""
    proposal = get_proposal(ctx, proposal_id)
    found = list(ctx.db.scalars(sa.select(Review).where(Review.proposal_id == proposal.id)
                                .order_by(Review.id)))
    shown = shown_reviewers(ctx, found)
    return [{"reviewer": shown[r.id][0], "named": shown[r.id][1], "kind": r.kind,
             "submitted": r.submitted_at is not None} for r in found]


# ---- normalisation ---------------------------------------------------------------------------


def normalised_grades(call: ObservationCall, reviews: list[Review]) -> dict[int, float]:
    """The mean normalised science grade per proposal id (1 best), by the call's method
    (see `normalised_values`)."""
    value = normalised_values(call, reviews)
    per_proposal: dict[int, list[float]] = defaultdict(list)
    for review in reviews:
        if review.id in value:
            per_proposal[review.proposal_id].append(value[review.id])
    return {pid: round(statistics.fmean(v), 4) for pid, v in per_proposal.items()}


def normalised_values(call: ObservationCall, reviews: list[Review]) -> dict[int, float]:
    """Each graded science review's normalised grade (by review id), by the call's method:
    `none` (raw grades), `zscore` (each reviewer's grades standardised, then mapped back onto
    the pool's mean and spread, so thresholds stay on the grade scale) or `rank` (each
    reviewer's ranking spread evenly over the scale)."""
    graded = [r for r in reviews if r.kind == "science" and r.grade is not None]
    method = call.review_setup.get("normalisation", "none")
    low, high = float(call.review_setup["grade_min"]), float(call.review_setup["grade_max"])
    by_reviewer: dict[int, list[Review]] = defaultdict(list)
    for review in graded:
        by_reviewer[review.reviewer_id].append(review)
    value: dict[int, float] = {}
    if method == "zscore" and graded:
        everything = [r.grade for r in graded]
        centre = statistics.fmean(everything)
        spread = statistics.pstdev(everything) or 1.0
        for own in by_reviewer.values():
            grades = [r.grade for r in own]
            mean, sd = statistics.fmean(grades), statistics.pstdev(grades)
            for r in own:
                z = (r.grade - mean) / sd if sd > 0 else 0.0
                value[r.id] = min(high, max(low, centre + z * spread))
    elif method == "rank":
        for own in by_reviewer.values():
            ordered = sorted(own, key=lambda r: (r.grade, r.proposal_id))
            n = len(ordered)
            for i, r in enumerate(ordered):
                value[r.id] = (low + high) / 2 if n == 1 else low + i * (high - low) / (n - 1)
    else:
        value = {r.id: float(r.grade) for r in graded}
    return value
