"""Telescopes, their instruments and observing programmes.

These are the minimal models the archive links its files to: where a telescope is (its data
lands at the nearest site), how its FITS headers are read, how long its data stays private,
and which programme (with its PI and co-investigators) a file belongs to. The Observation
channel's calls, proposals and allocations build on them later.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from astrocloud.core.db import Base, utcnow
from astrocloud.core.identity.models import GroupMember
from astrocloud.core.security.resources import INT, Collection, register_resource

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
