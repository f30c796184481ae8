"""Telescope settings and instruments' back-end schemas: a telescope manager configures their
own telescope (site, aperture, time zone, open or closed for proposals) and instruments
(parameters and overheads); an unsound schema or set-up is refused with every problem listed."""

from __future__ import annotations

import pytest

from astrocloud.core.security import services as security
from astrocloud.observation import services
from astrocloud.observation.schema import exposure_seconds, setup_problems
from tests.observation.conftest import SCHEMA, SCOPE


def test_a_manager_sets_aperture_time_zone_and_closes_the_telescope(manager):
    response = manager.patch(f"/api/v1/observation/telescopes/{SCOPE}",
                             json={"aperture": 2.4, "time_zone": "Asia/Shanghai",
                                   "open_for_proposals": False, "elevation": 3193})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["aperture"], body["time_zone"], body["open_for_proposals"],
            body["elevation"]) == (2.4, "Asia/Shanghai", False, 3193)


def test_bad_settings_are_all_listed_in_one_422(manager):
    response = manager.patch(f"/api/v1/observation/telescopes/{SCOPE}",
                             json={"aperture": -1, "time_zone": "Mars/Olympus",
                                   "latitude": 95})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"aperture", "time_zone", "latitude"}


def test_the_manager_edits_the_instrument_schema_and_the_api_shows_it(manager):
    url = f"/api/v1/observation/telescopes/{SCOPE}/instruments/YFOSC/schema"
    schema = {"parameters": {"filter": {"type": "choice", "choices": ["g", "r"]}},
              "overheads": {"per_target_s": 120}}
    response = manager.put(url, json={"setup_schema": schema, "kind": "imager"})
    assert response.status_code == 200, response.text
    telescope = manager.get(f"/api/v1/observation/telescopes/{SCOPE}").json()
    assert telescope["instruments"][0]["setup_schema"] == schema
    assert telescope["instruments"][0]["kind"] == "imager"


def test_an_unsound_schema_gets_a_422_listing_every_problem(manager):
    url = f"/api/v1/observation/telescopes/{SCOPE}/instruments/YFOSC/schema"
    bad = {"parameters": {"filter": {"type": "colour"}, "slit": {"type": "choice", "choices": []},
                          "binning": {"type": "choice", "choices": ["1x1"], "default": "3x3"},
                          "exptime": {"type": "number", "minimum": 10, "maximum": 1}},
           "overheads": {"per_target_s": -5, "coffee_s": 3}, "extra": 1}
    response = manager.put(url, json={"setup_schema": bad})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"setup_schema.extra", "setup_schema.parameters.filter.type",
            "setup_schema.parameters.slit.choices", "setup_schema.parameters.binning.default",
            "setup_schema.parameters.exptime", "setup_schema.overheads.per_target_s",
            "setup_schema.overheads.coffee_s"} <= fields


def test_a_manager_of_another_telescope_may_not_touch_this_one(users, system, telescope):
    other = services.create_telescope(system, name="Other", longitude=1, latitude=1,
                                      elevation=1, instruments=["X"])
    user = users.create("othermgr")
    security.assign(system, user_id=user.id, role="telescope_manager", scope_type="telescope",
                    scope_id=other.id)
    api = users.api(user)
    assert api.patch(f"/api/v1/observation/telescopes/{SCOPE}",
                     json={"aperture": 3.0}).status_code == 403
    assert api.put(f"/api/v1/observation/telescopes/{SCOPE}/instruments/YFOSC/schema",
                   json={"setup_schema": {}}).status_code == 403
    assert api.patch("/api/v1/observation/telescopes/Other",
                     json={"aperture": 1.0}).status_code == 200


@pytest.mark.parametrize("setup, problems", [
    ({"mode": "imaging", "filter": "V"}, set()),
    ({"mode": "spectroscopy", "grating": "G8", "readout": "slow"}, set()),
    ({"mode": "imaging"}, {"setup.filter"}),
    ({"mode": "imaging", "filter": "U", "binning": "4x4"}, {"setup.filter", "setup.binning"}),
    ({"mode": "imaging", "filter": "V", "grating": "G3"}, {"setup.grating"}),
    ({"mode": "imaging", "filter": "V", "focus": 3}, {"setup.focus"}),
    ("imaging", {"setup"}),
])
def test_set_ups_are_checked_against_the_schema(setup, problems):
    assert {p["field"] for p in setup_problems(SCHEMA, setup)} == problems


def test_exposure_time_includes_the_overheads_of_the_chosen_values():
    # 3 × (60 s + 20 s filter + 10 s fast readout)
    assert exposure_seconds(SCHEMA, {"mode": "imaging", "filter": "B"}, 60, 3) == 270
    # the grating has no overhead; slow readout 40 s
    assert exposure_seconds(SCHEMA, {"mode": "spectroscopy", "grating": "G3",
                                     "readout": "slow"}, 600, 1) == 640
