"""Proposals for telescope time: drafted by a PI with co-investigators, checked, submitted.

A PI drafts a proposal on an open call: title, abstract, category, targets (ICRS position,
magnitude, exposures with an instrument set-up from the telescope's schema, constraints on
airmass, moon distance and seeing), the justification PDF, a report on previous allocations.
The requested hours follow from the exposures plus the instruments' overheads. Co-investigators
are invited by e-mail and become members when they accept.

Every save names the `version` it started from: when somebody else saved in between, the save
is refused (409) with the current version, and nothing is overwritten or lost. Submission lists
every problem at once, freezes a version, and is refused after the call's deadline (to the
second). The rules (who may edit, until when) live in policy.toml, not here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.exc import StaleDataError

from astrocloud.core import mail
from astrocloud.core.errors import Conflict, NotAuthenticated, NotFound, ValidationFailed
from astrocloud.core.identity.models import User
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, operation
from astrocloud.observation.calls import is_open
from astrocloud.observation.models import (
    ObservationCall,
    Proposal,
    ProposalDocument,
    ProposalMember,
    ProposalVersion,
)
from astrocloud.observation.schema import (
    exposure_seconds,
    setup_problems,
    target_overhead_seconds,
)

DEFAULT_CONSTRAINTS = {"max_airmass": 2.0, "min_moon_distance": 30.0, "max_seeing": None}
CONSTRAINT_LIMITS = {"max_airmass": (1.0, 10.0), "min_moon_distance": (0.0, 180.0),
                     "max_seeing": (0.1, 20.0)}
TARGET_KEYS = {"name", "ra", "dec", "magnitude", "exposures", "constraints"}
EXPOSURE_KEYS = {"instrument", "setup", "seconds", "count"}
MAX_TARGETS_STORED = 1000


class ProposalOps(OperationSet):
    READ = Query("observation.proposal.read", resource="proposal",
                 doc="See proposals (one's own; all of a telescope for its staff).")
    CREATE = Action("observation.proposal.create", resource="call",
                    doc="Start a draft proposal on an open call.")
    UPDATE = Action("observation.proposal.update", resource="proposal",
                    doc="Edit a draft: text, targets, justification, co-investigators.")
    SUBMIT = Action("observation.proposal.submit", resource="proposal",
                    doc="Submit a draft before the deadline (freezes a version).")
    WITHDRAW = Action("observation.proposal.withdraw", resource="proposal",
                      doc="Withdraw a submitted proposal.")
    JOIN = Action("observation.proposal.join", resource="proposal",
                  doc="Accept an invitation to be a co-investigator.")


class EditConflict(Conflict):
    code = "edit-conflict"


class DeadlinePassed(Conflict):
    code = "deadline-passed"


def _number(value: Any) -> bool:
    """A finite number of a sensible size (not a boolean, not a 400-digit integer)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return abs(value) < 1e15 and math.isfinite(value)


# ---- checking targets and computing hours -----------------------------------------------------


def target_problems(call: ObservationCall, targets: Any) -> list[dict[str, str]]:
    """Everything wrong with a list of targets: positions out of range, unknown instruments,
    set-ups outside the instrument's schema, bad exposures or constraints."""
    if not isinstance(targets, list):
        return [{"field": "targets", "message": "Targets are a list."}]
    if len(targets) > MAX_TARGETS_STORED:
        return [{"field": "targets", "message": f"At most {MAX_TARGETS_STORED} targets."}]
    instruments = {i.name: i for i in call.telescope.instruments}
    problems = []
    for n, target in enumerate(targets):
        where = f"targets[{n}]"
        if not isinstance(target, dict):
            problems.append({"field": where, "message": "A target is an object."})
            continue
        for key in set(target) - TARGET_KEYS:
            problems.append({"field": f"{where}.{key}"[:120], "message": "Unknown field "
                             f"(known: {', '.join(sorted(TARGET_KEYS))})."})
        name = target.get("name")
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
            problems.append({"field": f"{where}.name", "message": "A target needs a name of "
                                                                  "up to 100 characters."})
        ra, dec = target.get("ra"), target.get("dec")
        if not _number(ra) or not 0 <= ra < 360:
            problems.append({"field": f"{where}.ra",
                             "message": "Right ascension (ICRS) is 0 ≤ RA < 360 degrees."})
        if not _number(dec) or not -90 <= dec <= 90:
            problems.append({"field": f"{where}.dec",
                             "message": "Declination (ICRS) is between -90 and 90 degrees."})
        magnitude = target.get("magnitude")
        if magnitude is not None and (not _number(magnitude) or not -30 <= magnitude <= 40):
            problems.append({"field": f"{where}.magnitude",
                             "message": "A magnitude is a number between -30 and 40."})
        constraints = target.get("constraints", {})
        if not isinstance(constraints, dict):
            problems.append({"field": f"{where}.constraints", "message": "Must be an object."})
            constraints = {}
        for key, value in constraints.items():
            if key not in CONSTRAINT_LIMITS:
                problems.append({"field": f"{where}.constraints.{key}"[:120], "message":
                                 f"Unknown constraint (known: {', '.join(CONSTRAINT_LIMITS)})."})
                continue
            low, high = CONSTRAINT_LIMITS[key]
            if value is not None and (not _number(value) or not low <= value <= high):
                problems.append({"field": f"{where}.constraints.{key}",
                                 "message": f"Between {low} and {high}."})
        exposures = target.get("exposures", [])
        if not isinstance(exposures, list) or len(exposures) > 50:
            problems.append({"field": f"{where}.exposures", "message": "A list of up to 50 "
                                                                      "exposure blocks."})
            continue
        for m, exposure in enumerate(exposures):
            here = f"{where}.exposures[{m}]"
            if not isinstance(exposure, dict):
                problems.append({"field": here, "message": "An exposure block is an object."})
                continue
            for key in set(exposure) - EXPOSURE_KEYS:
                problems.append({"field": f"{here}.{key}"[:120], "message": "Unknown field "
                                 f"(known: {', '.join(sorted(EXPOSURE_KEYS))})."})
            instrument = instruments.get(exposure.get("instrument"))
            if instrument is None:
                problems.append({"field": f"{here}.instrument", "message":
                                 f"Not an instrument of {call.telescope.name} (known: "
                                 f"{', '.join(sorted(instruments)) or 'none'})."})
            else:
                problems += setup_problems(instrument.setup_schema, exposure.get("setup", {}),
                                           f"{here}.setup")
            seconds, count = exposure.get("seconds"), exposure.get("count", 1)
            if not _number(seconds) or not 0 < seconds <= 86400:
                problems.append({"field": f"{here}.seconds",
                                 "message": "An exposure lasts more than 0 and at most "
                                            "86400 seconds."})
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
                problems.append({"field": f"{here}.count",
                                 "message": "The number of exposures is 1 to 1000."})
    return problems


def normalised_targets(targets: list[dict]) -> list[dict]:
    """Targets with defaults filled in (constraints, count), as stored."""
    out = []
    for target in targets:
        constraints = {**DEFAULT_CONSTRAINTS, **(target.get("constraints") or {})}
        out.append({"name": target["name"].strip(), "ra": float(target["ra"]),
                    "dec": float(target["dec"]), "magnitude": target.get("magnitude"),
                    "constraints": constraints,
                    "exposures": [{"instrument": e["instrument"], "setup": e.get("setup", {}),
                                   "seconds": float(e["seconds"]), "count": e.get("count", 1)}
                                  for e in target.get("exposures", [])]})
    return out


def requested_hours(call: ObservationCall, targets: list[dict]) -> dict[str, float]:
    """Hours asked per instrument: every exposure with its per-exposure overheads, plus each
    instrument's acquisition overhead once per target that uses it."""
    instruments = {i.name: i for i in call.telescope.instruments}
    seconds: dict[str, float] = {}
    for target in targets:
        used = set()
        for exposure in target["exposures"]:
            instrument = instruments[exposure["instrument"]]
            seconds[instrument.name] = seconds.get(instrument.name, 0.0) + exposure_seconds(
                instrument.setup_schema, exposure["setup"], exposure["seconds"],
                exposure["count"])
            used.add(instrument.name)
        for name in used:
            seconds[name] += target_overhead_seconds(instruments[name].setup_schema)
    return {name: round(s / 3600, 4) for name, s in sorted(seconds.items())}


def submission_problems(proposal: Proposal) -> list[dict[str, str]]:
    """Everything that keeps a proposal from being submitted, all at once."""
    call = proposal.call
    problems = []
    if not proposal.title.strip():
        problems.append({"field": "title", "message": "A title is required."})
    if not proposal.abstract.strip():
        problems.append({"field": "abstract", "message": "An abstract is required."})
    if call.categories and proposal.category not in call.categories:
        problems.append({"field": "category", "message": "Choose one of the call's "
                         f"categories: {', '.join(call.categories)}."})
    if not proposal.targets:
        problems.append({"field": "targets", "message": "Add at least one target."})
    if len(proposal.targets) > call.form["max_targets"]:
        problems.append({"field": "targets", "message": f"This call takes at most "
                         f"{call.form['max_targets']} targets; there are "
                         f"{len(proposal.targets)}."})
    for n, target in enumerate(proposal.targets):
        if not target["exposures"]:
            problems.append({"field": f"targets[{n}].exposures",
                             "message": "Each target needs at least one exposure."})
    problems += target_problems(call, proposal.targets)
    for name, hours in proposal.requested_by_instrument.items():
        offered = call.instrument_hours.get(name, 0)
        if hours > offered:
            problems.append({"field": "requested_hours", "message": f"{hours:.2f} h asked "
                             f"on {name}, which this call offers {offered} h."})
    if proposal.document is None:
        problems.append({"field": "justification",
                         "message": "Upload the scientific justification (PDF)."})
    for name in call.form.get("custom_fields", []):
        if not str(proposal.custom_fields.get(name, "")).strip():
            problems.append({"field": f"custom_fields.{name}"[:120], "message": "Required."})
    if not call.telescope.open_for_proposals:
        problems.append({"field": "call", "message": f"{call.telescope.name} is closed for "
                                                     "proposals."})
    return problems


# ---- services --------------------------------------------------------------------------------


def _proposal(ctx: Context, proposal_id: int) -> Proposal:
    """A proposal the caller may see. Otherwise NotFound for a signed-in caller (existence
    does not leak), and NotAuthenticated for a visitor, whom the pages send to sign in."""
    try:
        return ctx.get_visible(Proposal, proposal_id, op=ProposalOps.READ, what="proposal")
    except NotFound:
        if not ctx.subject.authenticated:
            raise NotAuthenticated("Please sign in to see this proposal.") from None
        raise


def _check_deadline(ctx: Context, proposal: Proposal) -> None:
    if ctx.now() >= proposal.call.closes_at:
        raise DeadlinePassed("The call closed at %(deadline)s UTC; the proposal can no longer "
                             "be changed or submitted.",
                             deadline=proposal.call.closes_at.strftime("%Y-%m-%d %H:%M:%S"))


def _check_version(proposal: Proposal, version: int | None) -> None:
    if version is not None and version != proposal.version:
        error = EditConflict(
            "Somebody else saved this proposal meanwhile (it is now at version %(current)s, "
            "you edited version %(yours)s). Nothing was overwritten: reload it, apply your "
            "changes again and save.", current=proposal.version, yours=version)
        error.extra = {"current_version": proposal.version}
        raise error


def _flush(ctx: Context, proposal: Proposal) -> None:
    """Write the change; a concurrent save that got there first becomes a clear 409."""
    try:
        ctx.db.flush()
    except StaleDataError:
        raise EditConflict("Somebody else saved this proposal at the same moment; reload it "
                           "and save again.") from None


@operation(ProposalOps.CREATE)
def create_proposal(ctx: Context, *, call_id: int, title: str = "", abstract: str = "",
                    category: str = "") -> Proposal:
    """A new draft on an open call, with the caller as PI (observation.proposal.create)."""
    call = ctx.db.get(ObservationCall, call_id)
    if call is None:
        raise NotFound("There is no call with id %(ident)s.", ident=call_id)
    ctx.authorize(call)
    if not is_open(call, ctx.now()):
        raise DeadlinePassed("The call “%(name)s” is not open for proposals.", name=call.name)
    proposal = Proposal(call_id=call.id, telescope_id=call.telescope_id, pi_id=ctx.subject.id,
                        title=(title or "")[:300], abstract=abstract or "",
                        category=(category or "")[:100], targets=[], custom_fields={},
                        requested_by_instrument={})
    ctx.db.add(proposal)
    ctx.db.flush()
    ctx.set_target(proposal)
    return proposal


EDITABLE = ("title", "abstract", "category", "targets", "custom_fields", "previous_allocations")


@operation(ProposalOps.UPDATE)
def update_proposal(ctx: Context, proposal_id: int, *, version: int | None,
                    **changes: Any) -> Proposal:
    """Save changes to a draft (observation.proposal.update: its PI and co-investigators,
    before the deadline). `version` is the one the editor started from: if somebody saved
    in between, a 409 says so and nothing is written. Malformed targets (positions out of
    range, set-ups outside the schema) are refused with every problem listed."""
    proposal = _proposal(ctx, proposal_id)
    _check_deadline(ctx, proposal)
    ctx.authorize(proposal)
    _check_version(proposal, version)
    problems = []
    for key in changes:
        if key not in EDITABLE:
            problems.append({"field": key, "message": "Not a field of a proposal."})
    if "title" in changes and len(changes["title"] or "") > 300:
        problems.append({"field": "title", "message": "At most 300 characters."})
    if "category" in changes and len(changes["category"] or "") > 100:
        problems.append({"field": "category", "message": "At most 100 characters."})
    if "custom_fields" in changes and not isinstance(changes["custom_fields"], dict):
        problems.append({"field": "custom_fields", "message": "Must be an object."})
    if "targets" in changes:
        problems += target_problems(proposal.call, changes["targets"])
    if problems:
        raise ValidationFailed(problems)
    for key, value in changes.items():
        if key == "targets":
            value = normalised_targets(value)
            proposal.requested_by_instrument = requested_hours(proposal.call, value)
            proposal.requested_hours = round(sum(proposal.requested_by_instrument.values()), 4)
        setattr(proposal, key, value if value is not None else "")
    proposal.updated_at = ctx.now()
    ctx.note(f"saved {', '.join(changes) or 'nothing'}")
    _flush(ctx, proposal)
    return proposal


def check_pdf(content: bytes, *, page_limit: int, size_limit_mb: float) -> int:
    """The number of pages of a justification, or ValidationFailed: too large, not a PDF
    (its first bytes), unreadable, or too many pages."""
    limit = int(size_limit_mb * 1024 * 1024)
    if len(content) > limit:
        raise ValidationFailed("The justification is %(size)s bytes; this call takes at most "
                               "%(limit)s bytes.", field="justification", size=len(content),
                               limit=limit)
    if not content.startswith(b"%PDF-"):
        raise ValidationFailed("The justification must be a PDF file (this one does not start "
                               "like a PDF).", field="justification")
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        pages = len(PdfReader(io.BytesIO(content), strict=False).pages)
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError):
        raise ValidationFailed("The justification could not be read as a PDF; is it damaged?",
                               field="justification") from None
    if pages < 1:
        raise ValidationFailed("The justification has no pages.", field="justification")
    if pages > page_limit:
        raise ValidationFailed("The justification has %(pages)s pages; this call takes at most "
                               "%(limit)s.", field="justification", pages=pages,
                               limit=page_limit)
    return pages


@operation(ProposalOps.UPDATE)
def upload_justification(ctx: Context, proposal_id: int, *, filename: str,
                         content: bytes) -> ProposalDocument:
    """Attach (or replace) the justification PDF of a draft, within the call's page and size
    limits (observation.proposal.update). A refused file leaves the previous one in place."""
    proposal = _proposal(ctx, proposal_id)
    _check_deadline(ctx, proposal)
    ctx.authorize(proposal)
    form = proposal.call.form
    pages = check_pdf(content, page_limit=int(form["page_limit"]),
                      size_limit_mb=float(form["size_limit_mb"]))
    document = proposal.document
    if document is None:
        document = ProposalDocument(proposal_id=proposal.id)
        proposal.document = document
    document.filename = (filename or "justification.pdf")[-200:]
    document.size = len(content)
    document.pages = pages
    document.sha256 = hashlib.sha256(content).hexdigest()
    document.content = content
    document.uploaded_at = ctx.now()
    proposal.updated_at = ctx.now()  # bumps the version: the draft changed
    ctx.note(f"justification: {pages} pages, {len(content)} bytes")
    _flush(ctx, proposal)
    return document


@operation(ProposalOps.READ)
def justification(ctx: Context, proposal_id: int) -> ProposalDocument:
    """The justification PDF of a proposal the caller may see."""
    proposal = _proposal(ctx, proposal_id)
    if proposal.document is None:
        raise NotFound("This proposal has no justification yet.")
    return proposal.document


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@operation(ProposalOps.UPDATE)
def invite_coi(ctx: Context, proposal_id: int, *, email: str) -> ProposalMember:
    """Invite a co-investigator by e-mail (observation.proposal.update); they receive a link
    and become a member when they accept it while signed in."""
    proposal = _proposal(ctx, proposal_id)
    _check_deadline(ctx, proposal)
    ctx.authorize(proposal)
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 254 or " " in email:
        raise ValidationFailed("“%(email)s” is not an e-mail address.", field="email",
                               email=email[:80])
    if any(m.email == email for m in proposal.members):
        raise Conflict("%(email)s has been invited already.", email=email)
    token = secrets.token_urlsafe(24)
    member = ProposalMember(email=email, token_hash=_token_hash(token))
    proposal.members.append(member)
    proposal.updated_at = ctx.now()
    _flush(ctx, proposal)
    link = (f"{ctx.settings.base_url.rstrip('/')}/api/v1/observation/proposals/{proposal.id}"
            f"/invitations/accept?token={token}")
    settings, inviter = ctx.settings, ctx.subject.username
    body = (f"{inviter} invites you to be a co-investigator of the proposal "
            f"“{proposal.title or 'untitled'}” to {proposal.call.telescope.name} "
            f"(call {proposal.call.name}).\n\nTo accept, sign in and open (or POST to):\n"
            f"{link}\n")
    ctx.after_commit(lambda: mail.send_mail(settings, email, "Invitation to a proposal", body))
    ctx.note(f"invited {email}")
    member.token = token  # shown once, to the caller (and in the mail)
    return member


@operation(ProposalOps.JOIN)
def accept_invitation(ctx: Context, proposal_id: int, *, token: str) -> Proposal:
    """Accept an invitation with the token from its e-mail (any signed-in user holding it)."""
    proposal = ctx.db.get(Proposal, proposal_id)
    member = None
    if proposal is not None:
        digest = _token_hash(token or "")
        member = next((m for m in proposal.members
                       if secrets.compare_digest(m.token_hash, digest)), None)
    if member is None:
        raise NotFound("This invitation does not exist or has been used.")
    ctx.authorize(proposal)
    if ctx.db.scalar(sa.select(ProposalMember.id).where(
            ProposalMember.proposal_id == proposal.id,
            ProposalMember.user_id == ctx.subject.id)) or proposal.pi_id == ctx.subject.id:
        raise Conflict("You are a member of this proposal already.")
    member.user_id = ctx.subject.id
    member.accepted_at = ctx.now()
    member.token_hash = secrets.token_hex(32)  # single use
    ctx.note(f"{ctx.subject.username} joined")
    return proposal


@operation(ProposalOps.READ)
def proposal_problems(ctx: Context, proposal_id: int) -> list[dict[str, str]]:
    """What keeps a proposal the caller may see from being submitted (empty: ready)."""
    return submission_problems(_proposal(ctx, proposal_id))


def snapshot(proposal: Proposal) -> dict[str, Any]:
    """The content of a proposal as frozen at submission."""
    return {"title": proposal.title, "abstract": proposal.abstract,
            "category": proposal.category, "targets": proposal.targets,
            "custom_fields": proposal.custom_fields,
            "previous_allocations": proposal.previous_allocations,
            "requested_hours": proposal.requested_hours,
            "requested_by_instrument": proposal.requested_by_instrument,
            "co_investigators": [m.user_id for m in proposal.members if m.accepted_at]}


@operation(ProposalOps.SUBMIT)
def submit_proposal(ctx: Context, proposal_id: int, *, version: int | None = None) -> Proposal:
    """Submit a draft (observation.proposal.submit: its PI, before the deadline — refused
    from the deadline's very second on). Every problem is listed at once;
    a submission freezes a numbered version and gives the proposal its code."""
    proposal = _proposal(ctx, proposal_id)
    _check_deadline(ctx, proposal)
    ctx.authorize(proposal)
    _check_version(proposal, version)
    problems = submission_problems(proposal)
    if problems:
        raise ValidationFailed(problems)
    number = (ctx.db.scalar(sa.select(sa.func.max(ProposalVersion.number)).where(
        ProposalVersion.proposal_id == proposal.id)) or 0) + 1
    ctx.db.add(ProposalVersion(proposal_id=proposal.id, number=number,
                               content=snapshot(proposal), submitted_by_id=ctx.subject.id,
                               document_sha256=proposal.document.sha256,
                               submitted_at=ctx.now()))
    if proposal.code is None:
        taken = ctx.db.scalar(sa.select(sa.func.count()).select_from(Proposal).where(
            Proposal.call_id == proposal.call_id, Proposal.code.is_not(None))) or 0
        proposal.code = f"{proposal.call.telescope.name[:20]}-{proposal.call.name}-" \
                        f"{taken + 1:03d}".replace(" ", "")
    proposal.status = "submitted"
    proposal.submitted_at = ctx.now()
    ctx.note(f"version {number}")
    _flush(ctx, proposal)
    return proposal


@operation(ProposalOps.WITHDRAW)
def withdraw_proposal(ctx: Context, proposal_id: int) -> Proposal:
    """Withdraw a submitted proposal (observation.proposal.withdraw: its PI); it leaves the
    review and the allocation."""
    proposal = _proposal(ctx, proposal_id)
    ctx.authorize(proposal)
    if proposal.status != "submitted":
        raise Conflict("Only a submitted proposal can be withdrawn (this one is %(status)s).",
                       status=proposal.status)
    proposal.status = "withdrawn"
    _flush(ctx, proposal)
    return proposal


@operation(ProposalOps.READ)
def list_proposals(ctx: Context, *, call_id: int | None = None,
                   status: str | None = None) -> list[Proposal]:
    """The proposals the caller may see (their own; a telescope's for its staff)."""
    ctx.authorize_listing()
    stmt = sa.select(Proposal).order_by(Proposal.id)
    if call_id is not None:
        stmt = stmt.where(Proposal.call_id == call_id)
    if status:
        stmt = stmt.where(Proposal.status == status)
    return list(ctx.db.scalars(ctx.visible(stmt)))


@operation(ProposalOps.READ)
def get_proposal(ctx: Context, proposal_id: int) -> Proposal:
    """One proposal the caller may see (NotFound otherwise)."""
    return _proposal(ctx, proposal_id)


@operation(ProposalOps.READ)
def proposal_versions(ctx: Context, proposal_id: int) -> list[ProposalVersion]:
    """The submitted versions of a proposal, oldest first."""
    proposal = _proposal(ctx, proposal_id)
    return list(ctx.db.scalars(sa.select(ProposalVersion).where(
        ProposalVersion.proposal_id == proposal.id).order_by(ProposalVersion.number)))


def usernames(ctx: Context, ids: list[int]) -> dict[int, str]:
    """User names by id, for showing a proposal's team (inside the caller's operation)."""
    if not ids:
        return {}
    return dict(ctx.db.execute(sa.select(User.id, User.username).where(User.id.in_(ids))).all())


def deadline_of(proposal: Proposal) -> dt.datetime:
    return proposal.call.closes_at
