"""Telescopes, their instruments and observing programmes.

These are the minimal models the archive links its files to: where a telescope is (its data
lands at the nearest site), how its FITS headers are read, how long its data stays private,
and which programme (with its PI and co-investigators) a file belongs to.

On them the Observation channel builds its cycle: a telescope's calls for proposals
(`ObservationCall`), the proposals astronomers draft and submit (`Proposal` with its team,
frozen versions and justification PDF), the feasibility of their targets, the reviews, the
TAC's allocations and, once observed, the observation log.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from astrocloud.core.db import Base, utcnow
from astrocloud.core.identity.models import GroupMember
from astrocloud.core.security.resources import INT, Collection, Relation, register_resource

DEFAULT_PROPRIETARY_MONTHS = 18


@register_resource("telescope", scopes={"telescope": "id"})
class Telescope(Base):
    """A telescope: its site on Earth, how its headers map to archive fields, its data policy."""

    __tablename__ = "telescopes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200), default="")
    longitude: Mapped[float] = mapped_column(doc="degrees east")
    latitude: Mapped[float] = mapped_column(doc="degrees north")
    elevation: Mapped[float] = mapped_column(default=0.0, doc="metres")
    aperture: Mapped[float | None] = mapped_column(doc="metres")
    time_zone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    # archive field -> FITS keywords tried in order, overriding the defaults field by field
    header_mapping: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    proprietary_months: Mapped[int] = mapped_column(default=DEFAULT_PROPRIETARY_MONTHS)
    # closed: no new call may open and no proposal be submitted on it
    open_for_proposals: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    instruments: Mapped[list[Instrument]] = relationship(back_populates="telescope",
                                                         order_by="Instrument.name")


@register_resource("instrument", scopes={"telescope": "telescope_id"})
class Instrument(Base):
    """An instrument of a telescope, with the quality-control set-up for its data."""

    __tablename__ = "instruments"
    __table_args__ = (sa.UniqueConstraint("telescope_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    telescope_id: Mapped[int] = mapped_column(sa.ForeignKey("telescopes.id",
                                                            ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(32), default="imager")  # imager, spectrograph
    qc_config: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    # the back-end parameters (modes, filters, gratings, binning, readout) and overheads, from
    # which the proposal form is generated and against which set-ups are validated
    # (see observation.schema)
    setup_schema: Mapped[dict] = mapped_column(sa.JSON, default=dict)

    telescope: Mapped[Telescope] = relationship(back_populates="instruments")


def readers_of(programme_id):
    """SQL: the users who see the proprietary data of the programme whose id is the expression
    `programme_id` — its PI and co-investigators and the members of groups it is shared with
    (one SELECT of user ids, as the security framework's collections are)."""
    from astrocloud.core.identity.models import User

    member = sa.exists().where(ProgrammeMember.programme_id == programme_id,
                               ProgrammeMember.user_id == User.id)
    granted = sa.exists().where(ProgrammeGroup.programme_id == programme_id,
                                GroupMember.group_id == ProgrammeGroup.group_id,
                                GroupMember.user_id == User.id)
    return sa.select(User.id).where(sa.or_(member, granted))


def _programme_readers(model):
    return readers_of(model.id)


def programme_reader_ids(session, programme_id: int | None) -> list[int]:
    if session is None or programme_id is None:
        return []
    return list(session.scalars(readers_of(programme_id)))


def _python_readers(programme) -> list[int]:
    from sqlalchemy.orm import object_session

    return programme_reader_ids(object_session(programme), programme.id)


@register_resource("programme", scopes={"telescope": "telescope_id"}, extra=lambda: {
    "reader_ids": Collection(INT, python=_python_readers, sql=_programme_readers,
                             doc="the PI, co-investigators and members of granted groups"),
})
class Programme(Base):
    """An observing programme (an accepted proposal): its code as written in FITS headers
    (e.g. PROPID = '2026A-017'), its PI and co-investigators, and its proprietary period."""

    __tablename__ = "programmes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    title: Mapped[str] = mapped_column(sa.String(300), default="")
    telescope_id: Mapped[int] = mapped_column(sa.ForeignKey("telescopes.id",
                                                            ondelete="CASCADE"))
    pi_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    # None: the telescope's period applies
    proprietary_months: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    telescope: Mapped[Telescope] = relationship()
    members: Mapped[list[ProgrammeMember]] = relationship(cascade="all, delete-orphan")
    groups: Mapped[list[ProgrammeGroup]] = relationship(cascade="all, delete-orphan")


class ProgrammeMember(Base):
    """The PI or a co-investigator of a programme."""

    __tablename__ = "programme_members"

    programme_id: Mapped[int] = mapped_column(sa.ForeignKey("programmes.id", ondelete="CASCADE"),
                                              primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(8), default="coi")  # "pi" or "coi"


class ProgrammeGroup(Base):
    """A group (a collaboration, an institute) granted a programme's proprietary data."""

    __tablename__ = "programme_groups"

    programme_id: Mapped[int] = mapped_column(sa.ForeignKey("programmes.id", ondelete="CASCADE"),
                                              primary_key=True)
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"),
                                          primary_key=True)


# ---- calls for proposals ---------------------------------------------------------------------


@register_resource("call", scopes={"telescope": "telescope_id", "call": "id"})
class ObservationCall(Base):
    """A call for proposals (a cycle or semester) on one telescope: when it is open (UTC, to
    the second), the semester it allocates, hours per instrument, categories, the proposal
    form, the review and allocation set-up, and the proprietary period of its data."""

    __tablename__ = "observation_calls"
    __table_args__ = (sa.UniqueConstraint("telescope_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    telescope_id: Mapped[int] = mapped_column(sa.ForeignKey("telescopes.id",
                                                            ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(64), doc="e.g. 2027A")
    title: Mapped[str] = mapped_column(sa.String(200), default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    opens_at: Mapped[dt.datetime] = mapped_column(doc="proposals accepted from (UTC)")
    closes_at: Mapped[dt.datetime] = mapped_column(doc="the submission deadline (UTC)")
    semester_start: Mapped[dt.datetime] = mapped_column()
    semester_end: Mapped[dt.datetime] = mapped_column()
    # instrument name -> hours available
    instrument_hours: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    categories: Mapped[list] = mapped_column(sa.JSON, default=list)
    # page_limit, size_limit_mb, max_targets, sections, custom_fields
    form: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    # reviewers_per_proposal, grade_min, grade_max, conflict_rules, normalisation, …
    review_setup: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    review_deadline: Mapped[dt.datetime] = mapped_column()
    # thresholds {A, B, C}, weather_loss, max_share
    allocation_setup: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    proprietary_months: Mapped[int] = mapped_column(default=DEFAULT_PROPRIETARY_MONTHS)
    results_published_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    telescope: Mapped[Telescope] = relationship()


# ---- proposals -------------------------------------------------------------------------------


def _proposal_cois(model):
    return sa.select(ProposalMember.user_id).where(ProposalMember.proposal_id == model.id,
                                                   ProposalMember.accepted_at.is_not(None))


def _python_cois(proposal) -> list[int]:
    return [m.user_id for m in proposal.members
            if m.user_id is not None and m.accepted_at is not None]


def _proposal_reviewers(model):
    return sa.select(Review.reviewer_id).where(Review.proposal_id == model.id)


def _python_reviewers(proposal) -> list[int]:
    from sqlalchemy.orm import object_session

    session = object_session(proposal)
    if session is None or proposal.id is None:
        return []
    return list(session.scalars(sa.select(Review.reviewer_id).where(
        Review.proposal_id == proposal.id)))


@register_resource("proposal", scopes={"telescope": "telescope_id", "call": "call_id"},
                   extra=lambda: {
    "coi_ids": Collection(INT, python=_python_cois, sql=_proposal_cois,
                          doc="the co-investigators who accepted their invitation"),
    "call": Relation("call", "call_id", python=lambda p: p.call,
                     doc="the call it answers (call.closes_at is the deadline)"),
    "reviewer_ids": Collection(INT, python=_python_reviewers, sql=_proposal_reviewers,
                               doc="the reviewers assigned to it"),
})
class Proposal(Base):
    """A proposal for telescope time: drafted by its PI and co-investigators, submitted (a
    frozen version) before the call's deadline, then reviewed and allocated. `version` counts
    saves, so two people saving the same draft cannot overwrite each other."""

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(sa.ForeignKey("observation_calls.id",
                                                       ondelete="CASCADE"), index=True)
    telescope_id: Mapped[int] = mapped_column(sa.ForeignKey("telescopes.id",
                                                            ondelete="CASCADE"))
    pi_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    code: Mapped[str | None] = mapped_column(sa.String(64), unique=True,
                                             doc="given at the first submission")
    title: Mapped[str] = mapped_column(sa.String(300), default="")
    abstract: Mapped[str] = mapped_column(sa.Text, default="")
    category: Mapped[str] = mapped_column(sa.String(100), default="")
    # draft, submitted, withdrawn (then accepted or rejected once results are published)
    status: Mapped[str] = mapped_column(sa.String(16), default="draft")
    version: Mapped[int] = mapped_column(default=1)
    # [{name, ra, dec, magnitude, exposures: [{instrument, setup, seconds, count}],
    #   constraints: {max_airmass, min_moon_distance, max_seeing}}]
    targets: Mapped[list] = mapped_column(sa.JSON, default=list)
    custom_fields: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    previous_allocations: Mapped[str] = mapped_column(sa.Text, default="")
    requested_hours: Mapped[float] = mapped_column(default=0.0)
    # instrument name -> hours requested
    requested_by_instrument: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    submitted_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __mapper_args__ = {"version_id_col": version}

    call: Mapped[ObservationCall] = relationship()
    members: Mapped[list[ProposalMember]] = relationship(cascade="all, delete-orphan",
                                                         order_by="ProposalMember.id")
    document: Mapped[ProposalDocument | None] = relationship(cascade="all, delete-orphan")


class ProposalMember(Base):
    """A co-investigator of a proposal: invited by e-mail, a member once they accept."""

    __tablename__ = "proposal_members"
    __table_args__ = (sa.UniqueConstraint("proposal_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(sa.ForeignKey("proposals.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(sa.String(254))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(sa.String(64), info={"rule_hidden": True})
    invited_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[dt.datetime | None] = mapped_column()


class ProposalDocument(Base):
    """The scientific justification of a proposal: a PDF within the call's page and size
    limits (kept in the database: it is small and must change with the draft atomically)."""

    __tablename__ = "proposal_documents"

    proposal_id: Mapped[int] = mapped_column(sa.ForeignKey("proposals.id", ondelete="CASCADE"),
                                             primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(200))
    size: Mapped[int] = mapped_column()
    pages: Mapped[int] = mapped_column()
    sha256: Mapped[str] = mapped_column(sa.String(64))
    content: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ProposalVersion(Base):
    """A submitted version of a proposal, frozen: what reviewers read and the TAC allocates."""

    __tablename__ = "proposal_versions"
    __table_args__ = (sa.UniqueConstraint("proposal_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(sa.ForeignKey("proposals.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column()
    content: Mapped[dict] = mapped_column(sa.JSON)
    document_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    submitted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id",
                                                                      ondelete="SET NULL"))
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FeasibilityResult(Base):
    """The cached visibility of one target (position and constraints) during one call's
    semester from its telescope: computed once on a coarse grid, then read."""

    __tablename__ = "feasibility_results"
    __table_args__ = (sa.UniqueConstraint("call_id", "target_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(sa.ForeignKey("observation_calls.id",
                                                       ondelete="CASCADE"))
    target_key: Mapped[str] = mapped_column(sa.String(64), doc="hash of position + constraints")
    observable_hours: Mapped[float] = mapped_column()
    nights: Mapped[int] = mapped_column(doc="nights with any observable time")
    grid_minutes: Mapped[int] = mapped_column()
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# ---- review ----------------------------------------------------------------------------------


@register_resource("review", scopes={"telescope": "telescope_id", "call": "call_id"},
                   extra=lambda: {
    "call": Relation("call", "call_id", python=lambda r: r.call,
                     doc="the call (call.review_deadline ends grading)"),
})
class Review(Base):
    """One reviewer's review of one proposal: a science review (grade on the call's scale,
    1 best, and a comment) or a technical review by telescope staff (feasible or not)."""

    __tablename__ = "proposal_reviews"
    __table_args__ = (sa.UniqueConstraint("proposal_id", "reviewer_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(sa.ForeignKey("proposals.id", ondelete="CASCADE"),
                                             index=True)
    call_id: Mapped[int] = mapped_column(sa.ForeignKey("observation_calls.id",
                                                       ondelete="CASCADE"))
    telescope_id: Mapped[int] = mapped_column(sa.ForeignKey("telescopes.id",
                                                            ondelete="CASCADE"))
    reviewer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(16), default="science")  # or technical
    grade: Mapped[float | None] = mapped_column()
    feasible: Mapped[bool | None] = mapped_column()
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    assigned_by: Mapped[str] = mapped_column(sa.String(16), default="auto")  # or manual
    submitted_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    call: Mapped[ObservationCall] = relationship()
    proposal: Mapped[Proposal] = relationship()


class ReviewConflict(Base):
    """A conflict of interest a reviewer declared with a proposal: never assigned to it."""

    __tablename__ = "review_conflicts"
    __table_args__ = (sa.UniqueConstraint("reviewer_id", "proposal_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    proposal_id: Mapped[int] = mapped_column(sa.ForeignKey("proposals.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(sa.String(500), default="")
    declared_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# ---- allocation ------------------------------------------------------------------------------


@register_resource("allocation", scopes={"telescope": "telescope_id", "call": "call_id"},
                   extra=lambda: {
    "call": Relation("call", "call_id", python=lambda a: a.call,
                     doc="the call (call.review_deadline, call.results_published_at)"),
})
class Allocation(Base):
    """The TAC's decision on one proposal: its normalised score and rank (with the reasons
    of any adjustment), grade A/B/C (none: not allocated), hours per instrument, and once
    published the programme it became."""

    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(sa.ForeignKey("proposals.id", ondelete="CASCADE"),
                                             unique=True)
    call_id: Mapped[int] = mapped_column(sa.ForeignKey("observation_calls.id",
                                                       ondelete="CASCADE"), index=True)
    telescope_id: Mapped[int] = mapped_column(sa.ForeignKey("telescopes.id",
                                                            ondelete="CASCADE"))
    pi_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    score: Mapped[float | None] = mapped_column(doc="mean normalised grade (1 best)")
    rank: Mapped[int] = mapped_column()
    # [{by, from, to, reason, at}]
    rank_history: Mapped[list] = mapped_column(sa.JSON, default=list)
    grade: Mapped[str | None] = mapped_column(sa.String(1), doc="A, B, C; None: no time")
    hours: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    total_hours: Mapped[float] = mapped_column(default=0.0)
    outcome: Mapped[str] = mapped_column(sa.String(16), default="none")  # full, partial, none
    published: Mapped[bool] = mapped_column(default=False)
    programme_id: Mapped[int | None] = mapped_column(sa.ForeignKey("programmes.id",
                                                                   ondelete="SET NULL"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    call: Mapped[ObservationCall] = relationship()
    proposal: Mapped[Proposal] = relationship()


# ---- observing -------------------------------------------------------------------------------


@register_resource("observation_log", scopes={"telescope": "telescope_id"})
class ObservationLog(Base):
    """One entry of a telescope's observation log: which programme's target was observed
    when, under which conditions, with what result, which data files it produced, and the
    time charged to the programme."""

    __tablename__ = "observation_logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    telescope_id: Mapped[int] = mapped_column(sa.ForeignKey("telescopes.id",
                                                            ondelete="CASCADE"))
    programme_id: Mapped[int] = mapped_column(sa.ForeignKey("programmes.id",
                                                            ondelete="CASCADE"), index=True)
    pi_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    target: Mapped[str] = mapped_column(sa.String(100))
    instrument: Mapped[str] = mapped_column(sa.String(64), default="")
    start: Mapped[dt.datetime] = mapped_column()
    end: Mapped[dt.datetime] = mapped_column()
    # seeing_arcsec, transparency, moon …
    conditions: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="done")
    file_ids: Mapped[list] = mapped_column(sa.JSON, default=list)
    charged_hours: Mapped[float] = mapped_column(default=0.0)
    observer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id",
                                                                  ondelete="SET NULL"))
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
