"""Fixtures of the Observation channel's tests: a telescope with an instrument whose back-end
schema generates the proposal form, its manager, and calls open (or not) relative to now."""

from __future__ import annotations

import datetime as dt

import pytest

from astrocloud.core.security import services as security
from astrocloud.observation import calls, services

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
