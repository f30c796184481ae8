"""Feasibility with astroplan: per target, the hours it is observable from the telescope during
the semester under its constraints, cached per target and semester, without ever touching the
network."""

from __future__ import annotations

import socket
import time

import pytest
import sqlalchemy as sa

from astrocloud.observation import feasibility, proposals
from astrocloud.observation.models import FeasibilityResult
from tests.observation.test_proposals import TARGET, draft

SOUTH_POLE = {**TARGET, "name": "Never up", "ra": 10.0, "dec": -80.0}


@pytest.fixture
def offline(monkeypatch):
    """Any connection beyond this machine fails the test."""
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not host.startswith(("127.", "::1", "/", "localhost")):
            raise AssertionError(f"network access to {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def test_hours_per_target_and_a_target_that_never_rises(users, open_call, offline):
    pi = users.api("astronomer", "piuser")
    proposal = draft(pi, open_call.id)
    pi.patch(f"/api/v1/observation/proposals/{proposal['id']}",
             json={"version": proposal["version"], "targets": [TARGET, SOUTH_POLE]})
    response = pi.get(f"/api/v1/observation/proposals/{proposal['id']}/feasibility")
    assert response.status_code == 200, response.text
    m67, pole = response.json()["items"]
    assert m67["observable"] and m67["observable_hours"] > 10 and m67["nights"] > 5
    assert m67["enough_time"] is True
    assert not pole["observable"] and pole["observable_hours"] == 0 and pole["nights"] == 0


def test_results_are_cached_per_target_and_semester(system, users, open_call, offline):
    pi = users.api("astronomer", "piuser")
    proposal = draft(pi, open_call.id)
    proposals.update_proposal(system, proposal["id"], version=None, targets=[TARGET])
    started = time.perf_counter()
    first = feasibility.proposal_feasibility(system, proposal["id"])
    cold = time.perf_counter() - started
    started = time.perf_counter()
    again = feasibility.proposal_feasibility(system, proposal["id"])
    warm = time.perf_counter() - started
    assert first == again
    assert system.db.scalar(sa.select(sa.func.count()).select_from(FeasibilityResult)) == 1
    assert warm < cold


def test_a_stricter_airmass_gives_fewer_hours(open_call, offline):
    loose = {**TARGET, "constraints": {"max_airmass": 3.0, "min_moon_distance": 0}}
    strict = {**TARGET, "constraints": {"max_airmass": 1.2, "min_moon_distance": 0}}
    a, b = feasibility.compute(open_call.telescope, open_call.semester_start,
                               open_call.semester_end, [loose, strict])
    assert a.observable_hours > b.observable_hours > 0


def test_others_cannot_ask_for_a_drafts_feasibility(users, open_call):
    pi = users.api("astronomer", "piuser")
    proposal = draft(pi, open_call.id)
    stranger = users.api("astronomer", "stranger")
    assert stranger.get(f"/api/v1/observation/proposals/{proposal['id']}/feasibility"
                        ).status_code == 404
