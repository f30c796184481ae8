"""Fixtures of the Observation channel's tests: a telescope with an instrument whose back-end
schema generates the proposal form, its manager, and calls open (or not) relative to now."""

from __future__ import annotations

import datetime as dt

import pytest

from astrocloud.core.security import services as security
from astrocloud.observation import calls, services
from tests.core.test_cli import cli, home, installed  # noqa: F401 - fixtures

SCOPE = "Lijiang 2.4m"
SCHEMA = {
    "parameters": {
        "mode": {"type": "choice", "choices": ["imaging", "spectroscopy"], "required": True},
        "filter": {"type": "choice", "choices": ["B", "V", "R"], "required": True,
                   "only_if": {"mode": ["imaging"]}, "overhead_s": {"*": 20}},
        "grating": {"type": "choice", "choices": ["G3", "G8"], "required": True,
                    "only_if": {"mode": ["spectroscopy"]}},
        "binning": {"type": "choice", "choices": ["1x1", "2x2"], "default": "1x1"},
        "readout": {"type": "choice", "choices": ["fast", "slow"], "default": "fast",
                    "overhead_s": {"fast": 10, "slow": 40}},
    },
    "overheads": {"per_target_s": 300, "per_exposure_s": 0},
}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def telescope(system):
    scope = services.create_telescope(system, name=SCOPE, longitude=100.03, latitude=26.7,
                                      elevation=3200, aperture=2.4, instruments=["YFOSC"])
    services.set_instrument_schema(system, SCOPE, "YFOSC", SCHEMA, "spectrograph")
    return scope


@pytest.fixture
def manager_user(users, system, telescope):
    user = users.create("manager")
    security.assign(system, user_id=user.id, role="telescope_manager", scope_type="telescope",
                    scope_id=telescope.id)
    return user


@pytest.fixture
def manager(users, manager_user):
    return users.api(manager_user)


def call_fields(**overrides) -> dict:
    t = now()
    fields = dict(telescope=SCOPE, name="2027A", opens_at=t - dt.timedelta(days=1),
                  closes_at=t + dt.timedelta(days=10),
                  semester_start=t + dt.timedelta(days=40),
                  semester_end=t + dt.timedelta(days=220),
                  review_deadline=t + dt.timedelta(days=25),
                  instrument_hours={"YFOSC": 100.0}, categories=["Stars", "Galaxies"],
                  form={"page_limit": 2, "size_limit_mb": 0.05, "max_targets": 3},
                  review_setup={"reviewers_per_proposal": 2},
                  proprietary_months=12)
    fields.update(overrides)
    return fields


@pytest.fixture
def open_call(system, telescope):
    return calls.create_call(system, **call_fields())


def as_user(system, user):
    """Act as `user` through the services (like a request of theirs would)."""
    from astrocloud.core.security.engine import load_subject

    system.subject = load_subject(system.db, user)
    return system


def submit_as(system, user, call, title="A proposal", targets=None, cois=()):
    """A submitted proposal of `user` on `call` (with accepted co-investigators `cois`)."""
    import io

    from pypdf import PdfWriter

    from astrocloud.core.security.engine import Subject
    from astrocloud.observation import proposals

    target = {"name": "M 67", "ra": 132.825, "dec": 11.8,
              "exposures": [{"instrument": "YFOSC", "setup": {"mode": "imaging",
                                                              "filter": "V"},
                             "seconds": 300, "count": 4}]}
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buffer = io.BytesIO()
    writer.write(buffer)
    try:
        as_user(system, user)
        p = proposals.create_proposal(system, call_id=call.id, title=title, abstract="Why.",
                                      category="Stars")
        proposals.update_proposal(system, p.id, version=None, targets=targets or [target])
        proposals.upload_justification(system, p.id, filename="j.pdf",
                                       content=buffer.getvalue())
        for coi in cois:
            member = proposals.invite_coi(system, p.id, email=coi.email)
            as_user(system, coi)
            proposals.accept_invitation(system, p.id, token=member.token)
            as_user(system, user)
        proposals.submit_proposal(system, p.id)
        return p.id
    finally:
        system.subject = Subject.system_subject()
