"""Telescopes, instruments and programmes: the service functions other channels call.

Operators create telescopes and programmes (`astrocloud telescopes create`, `astrocloud
programmes create`); a telescope's manager (a role scoped to it) sets how its headers are read
and how long its data stays private. The archive finds telescopes, instruments and programmes
only through the functions here.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from astrocloud.core.errors import Conflict, NotFound, ValidationFailed
from astrocloud.core.identity.models import Group, User
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, operation
from astrocloud.observation.models import (
    Instrument,
    Programme,
    ProgrammeGroup,
    ProgrammeMember,
    Telescope,
    programme_reader_ids,
    readers_of,
)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$")
# header-mapping fields a manager may set (the archive's FITS reader defines their meaning)
MAPPING_FIELDS = ("date_obs", "exptime", "target_name", "instrument_name", "facility_name",
                  "programme", "filter", "observer", "obs_id", "dataproduct_type", "calib_level",
                  "ra", "dec")
KEYWORD = re.compile(r"^[A-Z0-9_-]{1,8}$")


class ObservationOps(OperationSet):
    TELESCOPE_READ = Query("observation.telescope.read", resource="telescope",
                           doc="See telescopes and their instruments.")
    TELESCOPE_CREATE = Action("observation.telescope.create",
                              doc="Create a telescope (operators).")
    TELESCOPE_UPDATE = Action("observation.telescope.update", resource="telescope",
                              doc="Change a telescope: its instruments, header mapping and "
                                  "proprietary period.")
    PROGRAMME_READ = Query("observation.programme.read", resource="programme",
                           doc="See observing programmes.")
    PROGRAMME_CREATE = Action("observation.programme.create", resource="telescope",
                              doc="Create an observing programme on a telescope.")
    PROGRAMME_UPDATE = Action("observation.programme.update", resource="programme",
                              doc="Change a programme's team, groups or proprietary period.")


class DuplicateName(Conflict):
    code = "duplicate-name"


def _check_name(value: str, field: str) -> str:
    value = (value or "").strip()
    if not NAME.match(value):
        raise ValidationFailed("“%(value)s” is not a valid name: letters, digits, spaces, dots "
                               "and dashes, up to 64 characters.", field=field, value=value[:80])
    return value


def _check_months(value: int | None, field: str = "proprietary_months") -> None:
    if value is not None and not 0 <= value <= 120:
        raise ValidationFailed("A proprietary period is between 0 and 120 months.", field=field)


def check_mapping(mapping: dict) -> dict[str, list[str]]:
    """Validate a header mapping: known fields, each a list of FITS keywords."""
    if not isinstance(mapping, dict):
        raise ValidationFailed("A header mapping is an object of field: [keywords].",
                               field="header_mapping")
    out: dict[str, list[str]] = {}
    for field, keywords in mapping.items():
        if field not in MAPPING_FIELDS:
            raise ValidationFailed("“%(name)s” is not a header-mapping field (known: "
                                   "%(known)s).", field="header_mapping", name=str(field)[:40],
                                   known=", ".join(MAPPING_FIELDS))
        if isinstance(keywords, str):
            keywords = [keywords]
        if not isinstance(keywords, list) or not keywords or not all(
                isinstance(k, str) and KEYWORD.match(k.upper()) for k in keywords):
            raise ValidationFailed("The keywords for %(name)s must be FITS keywords (up to 8 "
                                   "letters, digits, _ or -).", field="header_mapping",
                                   name=field)
        out[field] = [k.upper() for k in keywords]
    return out


# ---- telescopes -------------------------------------------------------------------------------


@operation(ObservationOps.TELESCOPE_CREATE)
def create_telescope(ctx: Context, *, name: str, longitude: float, latitude: float,
                     elevation: float = 0.0, title: str = "", aperture: float | None = None,
                     proprietary_months: int | None = None,
                     instruments: list[str] | None = None) -> Telescope:
    """A new telescope at a place on Earth (guarded by observation.telescope.create)."""
    ctx.authorize()
    name = _check_name(name, "name")
    if not -180 <= longitude <= 360 or not -90 <= latitude <= 90:
        raise ValidationFailed("Longitude must be within -180..360 and latitude within "
                               "-90..90 degrees.", field="longitude")
    if not -500 <= elevation <= 9000:
        raise ValidationFailed("Elevation must be between -500 and 9000 metres.",
                               field="elevation")
    _check_months(proprietary_months)
    if ctx.db.scalar(sa.select(Telescope.id).where(Telescope.name == name)) is not None:
        raise DuplicateName("There is a telescope called “%(name)s” already.", name=name)
    telescope = Telescope(name=name, title=title or name, longitude=longitude,
                          latitude=latitude, elevation=elevation, aperture=aperture)
    if proprietary_months is not None:
        telescope.proprietary_months = proprietary_months
    ctx.db.add(telescope)
    ctx.db.flush()
    for instrument in instruments or []:
        ctx.db.add(Instrument(telescope_id=telescope.id,
                              name=_check_name(instrument, "instruments")))
    ctx.db.flush()
    ctx.set_target(telescope)
    return telescope


@operation(ObservationOps.TELESCOPE_READ)
def list_telescopes(ctx: Context) -> list[Telescope]:
    """Every telescope the caller may see, by name."""
    return list(ctx.db.scalars(ctx.visible(sa.select(Telescope).order_by(Telescope.name))))


@operation(ObservationOps.TELESCOPE_READ)
def telescope_named(ctx: Context, name: str) -> Telescope:
    """A telescope by name (NotFound otherwise)."""
    telescope = ctx.db.scalar(ctx.visible(sa.select(Telescope).where(Telescope.name == name)))
    if telescope is None:
        raise NotFound("There is no telescope called “%(name)s”.", name=name)
    return telescope


@operation(ObservationOps.TELESCOPE_UPDATE)
def update_telescope(ctx: Context, name: str, *, header_mapping: dict | None = None,
                     proprietary_months: int | None = None,
                     add_instruments: list[str] | None = None, aperture: float | None = None,
                     time_zone: str | None = None, open_for_proposals: bool | None = None,
                     longitude: float | None = None, latitude: float | None = None,
                     elevation: float | None = None, title: str | None = None) -> Telescope:
    """Change a telescope's site, aperture, time zone, whether it takes proposals, its header
    mapping, proprietary period or instruments (its managers, operators, admins). A change of
    the proprietary period is recorded in the usage log with the old and new values; it
    applies to files archived from then on."""
    telescope = ctx.db.scalar(sa.select(Telescope).where(Telescope.name == name))
    if telescope is None:
        raise NotFound("There is no telescope called “%(name)s”.", name=name)
    ctx.authorize(telescope)
    ctx.set_target(telescope)
    changes = []
    problems = []
    if longitude is not None and not -180 <= longitude <= 360:
        problems.append({"field": "longitude", "message": "Longitude must be within -180..360."})
    if latitude is not None and not -90 <= latitude <= 90:
        problems.append({"field": "latitude", "message": "Latitude must be within -90..90."})
    if elevation is not None and not -500 <= elevation <= 9000:
        problems.append({"field": "elevation",
                         "message": "Elevation must be between -500 and 9000 metres."})
    if aperture is not None and not 0 < aperture <= 100:
        problems.append({"field": "aperture", "message": "The aperture is 0 to 100 metres."})
    if time_zone is not None and not _known_zone(time_zone):
        problems.append({"field": "time_zone",
                         "message": f"“{time_zone[:64]}” is not an IANA time zone."})
    if problems:
        raise ValidationFailed(problems)
    for field, value in (("longitude", longitude), ("latitude", latitude),
                         ("elevation", elevation), ("aperture", aperture),
                         ("time_zone", time_zone), ("open_for_proposals", open_for_proposals),
                         ("title", title)):
        if value is not None and getattr(telescope, field) != value:
            changes.append(f"{field} {getattr(telescope, field)} → {value}")
            setattr(telescope, field, value)
    if header_mapping is not None:
        telescope.header_mapping = check_mapping(header_mapping)
        changes.append("header mapping")
    if proprietary_months is not None:
        _check_months(proprietary_months)
        changes.append(f"proprietary period {telescope.proprietary_months} → "
                       f"{proprietary_months} months")
        telescope.proprietary_months = proprietary_months
    for instrument in add_instruments or []:
        instrument = _check_name(instrument, "instruments")
        if not any(i.name == instrument for i in telescope.instruments):
            telescope.instruments.append(Instrument(name=instrument))
            changes.append(f"instrument {instrument}")
    ctx.note("; ".join(changes))
    ctx.db.flush()
    return telescope


def _known_zone(name: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@operation(ObservationOps.TELESCOPE_UPDATE)
def set_instrument_schema(ctx: Context, telescope: str, instrument: str, setup_schema: dict,
                          kind: str | None = None) -> Instrument:
    """Set an instrument's back-end schema (parameters and overheads; see
    observation.schema), from which the proposal form is generated (its telescope's
    managers, operators). Every problem of an unsound schema is listed in one 422."""
    scope = ctx.db.scalar(sa.select(Telescope).where(Telescope.name == telescope))
    if scope is None:
        raise NotFound("There is no telescope called “%(name)s”.", name=telescope)
    ctx.authorize(scope)
    target = instrument_of(ctx, scope, instrument)
    if target is None:
        raise NotFound("%(telescope)s has no instrument called “%(name)s”.",
                       telescope=telescope, name=instrument)
    from astrocloud.observation.schema import schema_problems

    problems = schema_problems(setup_schema)
    if kind is not None and kind not in ("imager", "spectrograph", "photometer", "other"):
        problems.append({"field": "kind", "message": "The kind is imager, spectrograph, "
                                                     "photometer or other."})
    if problems:
        raise ValidationFailed(problems)
    target.setup_schema = setup_schema
    if kind is not None:
        target.kind = kind
    ctx.set_target(scope)
    ctx.note(f"back-end schema of {target.name}")
    return target


def instrument_of(ctx: Context, telescope: Telescope, name: str | None) -> Instrument | None:
    """A telescope's instrument by name, matched without regard to case (None if unknown).
    Part of the caller's operation: it reads what the caller already reached."""
    if not name:
        return None
    wanted = name.strip().lower()
    return next((i for i in telescope.instruments if i.name.lower() == wanted), None)


# ---- programmes -------------------------------------------------------------------------------


def _user(ctx: Context, username: str, field: str) -> User:
    user = ctx.db.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise ValidationFailed("There is no user called “%(name)s”.", field=field,
                               name=username)
    return user


@operation(ObservationOps.PROGRAMME_CREATE)
def create_programme(ctx: Context, *, code: str, telescope: str, pi: str,
                     title: str = "", co_investigators: list[str] | None = None,
                     groups: list[str] | None = None,
                     proprietary_months: int | None = None) -> Programme:
    """A new observing programme on a telescope, with its PI, co-investigators and granted
    groups (guarded by observation.programme.create on the telescope)."""
    code = _check_name(code, "code")
    scope = ctx.db.scalar(sa.select(Telescope).where(Telescope.name == telescope))
    if scope is None:
        raise ValidationFailed("There is no telescope called “%(name)s”.", field="telescope",
                               name=telescope)
    ctx.authorize(scope)
    _check_months(proprietary_months)
    if ctx.db.scalar(sa.select(Programme.id).where(Programme.code == code)) is not None:
        raise DuplicateName("There is a programme “%(code)s” already.", code=code)
    pi_user = _user(ctx, pi, "pi")
    programme = Programme(code=code, title=title, telescope_id=scope.id, pi_id=pi_user.id,
                          proprietary_months=proprietary_months)
    ctx.db.add(programme)
    ctx.db.flush()
    programme.members.append(ProgrammeMember(user_id=pi_user.id, role="pi"))
    for name in dict.fromkeys(co_investigators or []):
        user = _user(ctx, name, "co_investigators")
        if user.id != pi_user.id:
            programme.members.append(ProgrammeMember(user_id=user.id, role="coi"))
    for name in dict.fromkeys(groups or []):
        group = ctx.db.scalar(sa.select(Group).where(Group.name == name))
        if group is None:
            raise ValidationFailed("There is no group called “%(name)s”.", field="groups",
                                   name=name)
        programme.groups.append(ProgrammeGroup(group_id=group.id))
    ctx.db.flush()
    ctx.set_target(programme)
    return programme


@operation(ObservationOps.PROGRAMME_READ)
def list_programmes(ctx: Context, *, telescope_id: int | None = None) -> list[Programme]:
    """The programmes the caller may see, by code."""
    stmt = sa.select(Programme).order_by(Programme.code)
    if telescope_id is not None:
        stmt = stmt.where(Programme.telescope_id == telescope_id)
    return list(ctx.db.scalars(ctx.visible(stmt)))


def programme_by_code(ctx: Context, code: str | None) -> Programme | None:
    """A programme by the code written in headers (None if unknown). Part of the caller's
    operation: the archive calls it while ingesting."""
    if not code:
        return None
    return ctx.db.scalar(sa.select(Programme).where(Programme.code == str(code).strip()))


def programme_readers_sql(programme_id) -> sa.Select:
    """SQL for other channels' rules: the users who may see the proprietary data of the
    programme whose id is the expression `programme_id` (PI, co-Is, granted groups)."""
    return readers_of(programme_id)


def programme_readers(session, programme_id: int | None) -> list[int]:
    """The same users, read now."""
    return programme_reader_ids(session, programme_id)


def programmes_of_member_sql(user_id: int | None) -> sa.Select:
    """SQL for other channels: the ids of the programmes a user is PI or co-investigator of."""
    return sa.select(ProgrammeMember.programme_id).where(ProgrammeMember.user_id == user_id)


# Lookups by id or name for other channels, inside their own operations (no rule of ours
# applies: the caller's operation guards what it does with them).


def telescope_by_id(ctx: Context, ident: int) -> Telescope | None:
    return ctx.db.get(Telescope, ident)


def telescope_by_name(ctx: Context, name: str) -> Telescope | None:
    return ctx.db.scalar(sa.select(Telescope).where(Telescope.name == name))


def instrument_by_id(ctx: Context, ident: int | None) -> Instrument | None:
    return ctx.db.get(Instrument, ident) if ident is not None else None


def programme_by_id(ctx: Context, ident: int | None) -> Programme | None:
    return ctx.db.get(Programme, ident) if ident is not None else None


@operation(ObservationOps.TELESCOPE_UPDATE)
def set_instrument_qc(ctx: Context, telescope: str, instrument: str, qc_config: dict) -> Instrument:
    """Set the quality-control limits of a telescope's instrument (its managers, operators);
    they apply to QC runs from then on (re-run QC to regrade archived files)."""
    scope = ctx.db.scalar(sa.select(Telescope).where(Telescope.name == telescope))
    if scope is None:
        raise NotFound("There is no telescope called “%(name)s”.", name=telescope)
    ctx.authorize(scope)
    target = instrument_of(ctx, scope, instrument)
    if target is None:
        raise NotFound("%(telescope)s has no instrument called “%(name)s”.",
                       telescope=telescope, name=instrument)
    from astrocloud.data.archive.services import checked_qc_config

    target.qc_config = checked_qc_config(qc_config)
    ctx.set_target(scope)
    ctx.note(f"QC limits of {target.name}")
    return target
