"""Telescopes, instruments and programmes through the API: who may change them, the header
mapping a telescope manager sets (and the archive then uses), and QC limits per instrument."""

from __future__ import annotations

import datetime as dt

import pytest

from astrocloud.core.security import services as security
from astrocloud.data.archive import services as archive
from astrocloud.data.archive.synthetic import write_image
from astrocloud.observation import services as observation

SCOPE = "Weihai 1m"


@pytest.fixture
def telescope(system):
    return observation.create_telescope(system, name=SCOPE, longitude=122.05, latitude=37.53,
                                        elevation=100, instruments=["PI1300"])


@pytest.fixture
def manager(users, system, telescope):
    user = users.create("mgr")
    security.assign(system, user_id=user.id, role="telescope_manager", scope_type="telescope",
                    scope_id=telescope.id)
    return users.api(user)


def test_everyone_sees_the_telescopes(client, telescope):
    body = client.get("/api/v1/observation/telescopes").json()
    assert [t["name"] for t in body] == [SCOPE]
    assert body[0]["instruments"][0]["name"] == "PI1300"
    assert body[0]["proprietary_months"] == 18


def test_a_manager_changes_the_mapping_and_the_archive_reads_headers_with_it(
        manager, system, runtime, tmp_path):
    system.runtime = runtime
    response = manager.patch(f"/api/v1/observation/telescopes/{SCOPE}",
                             json={"header_mapping": {"programme": ["PROG"]},
                                   "proprietary_months": 6})
    assert response.status_code == 200, response.text
    assert response.json()["header_mapping"] == {"programme": ["PROG"]}
    observation.create_programme(system, code="WH-9", telescope=SCOPE, pi="mgr")
    path = write_image(tmp_path / "w.fits", ra=30, dec=20, telescope=SCOPE,
                       instrument="PI1300", date_obs=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                       extra_header={"PROG": "WH-9"})
    records, jobs = archive.submit_paths(system, telescope=SCOPE, paths=[str(path)])
    runtime.jobs.wait(jobs, timeout=60)
    [record] = archive.ingest_progress(system.database, [records[0].id])
    archived = archive.get_file(system, record.file_id)
    assert archived.programme_code == "WH-9" and archived.programme_id is not None
    assert archived.obs_release_date.date() == dt.date(2026, 7, 1)  # six months


def test_a_manager_of_another_telescope_or_an_astronomer_may_not(users, system, telescope):
    other = observation.create_telescope(system, name="Other", longitude=1, latitude=1,
                                         elevation=1)
    user = users.create("mgr2")
    security.assign(system, user_id=user.id, role="telescope_manager", scope_type="telescope",
                    scope_id=other.id)
    for api in (users.api(user), users.api("astronomer", "astro")):
        response = api.patch(f"/api/v1/observation/telescopes/{SCOPE}",
                             json={"proprietary_months": 1})
        assert response.status_code == 403


@pytest.mark.parametrize("body", [
    {"header_mapping": {"nonsense": ["X"]}}, {"header_mapping": {"programme": ["WAY TOO LONG"]}},
    {"proprietary_months": 500}, {"unknown": 1}, {"add_instruments": ["../etc"]},
])
def test_bad_changes_get_a_clear_4xx(manager, body):
    response = manager.patch(f"/api/v1/observation/telescopes/{SCOPE}", json=body)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_qc_limits_per_instrument(manager):
    url = f"/api/v1/observation/telescopes/{SCOPE}/instruments/PI1300/qc"
    response = manager.put(url, json={"max_fwhm_arcsec": [3.0, 5.0]})
    assert response.status_code == 200, response.text
    assert response.json()["qc_config"]["max_fwhm_arcsec"] == [3.0, 5.0]
    assert manager.put(url, json={"max_fwhm_arcsec": "big"}).status_code == 422
    assert manager.put(url, json={"no_such_limit": 1}).status_code == 422
    missing = f"/api/v1/observation/telescopes/{SCOPE}/instruments/NOPE/qc"
    assert manager.put(missing, json={}).status_code == 404
