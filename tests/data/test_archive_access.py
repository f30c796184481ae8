"""The release rule everywhere — search, counts, detail, download, previews — and the archive's
HTTP API: uploads by a telescope's service account, searches as JSON, downloads with ranges,
QC overrides, deposits of derived products, and clear 4xx answers to bad requests."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import sqlalchemy as sa

from astrocloud.core.security import services as security
from astrocloud.core.security.engine import Subject, load_subject
from astrocloud.data.archive.models import ArchiveFile
from astrocloud.data.archive.synthetic import write_image
from astrocloud.observation import services as observation

SCOPE = "Xinglong 2.16m"
OLD = dt.datetime(2020, 1, 5, 14, 0, tzinfo=dt.UTC)  # released long ago


def recent() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=20)


def ids(client, **params) -> tuple[int, set[int]]:
    response = client.get("/api/v1/data/observations", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["total"], {item["id"] for item in body["items"]}


def test_a_visitor_sees_only_released_files(client, world):
    assert ids(client) == (1, {world["released"]})
    assert client.get(f"/api/v1/data/observations/{world['private']}").status_code == 404
    assert client.get(f"/api/v1/data/observations/{world['private']}/file").status_code == 404
    assert client.get(f"/api/v1/data/observations/{world['released']}").status_code == 200


@pytest.mark.parametrize("who", ["pi", "coi", "friend"])
def test_the_programme_team_and_granted_groups_see_proprietary_files(users, world, who):
    api = users.api(world[who])
    assert ids(api) == (2, {world["released"], world["private"]})
    response = api.get(f"/api/v1/data/observations/{world['private']}/file")
    assert response.status_code == 200
    assert response.content == world["paths"]["private"].read_bytes()


def test_another_astronomer_does_not_see_them(users, world):
    api = users.api("astronomer", "stranger")
    assert ids(api) == (1, {world["released"]})
    assert api.get(f"/api/v1/data/observations/{world['private']}").status_code == 404


def test_archive_staff_see_everything(users, world):
    assert ids(users.api("operator", "op1"))[0] == 2
    assert ids(users.api("admin", "root1"))[0] == 2


def test_my_data_lists_the_files_of_my_programmes(users, world, client):
    assert ids(users.api(world["coi"]), mine=True)[0] == 2
    assert ids(users.api("astronomer", "nobody"), mine=True)[0] == 0
    response = client.get("/api/v1/data/observations", params={"mine": True})
    assert response.status_code == 401


def test_the_release_date_opens_a_file_to_everyone(client, world, system):
    system.db.execute(sa.update(ArchiveFile).where(ArchiveFile.id == world["private"])
                      .values(obs_release_date=dt.datetime.now(dt.UTC) - dt.timedelta(1)))
    system.db.commit()
    assert ids(client)[0] == 2


def test_search_by_position_time_target_and_band(client, world):
    assert ids(client, ra=10.68, dec=41.27, radius=0.2) == (1, {world["released"]})
    assert ids(client, ra=10.68, dec=43.5, radius=0.2)[0] == 0
    assert ids(client, ra=359.9, dec=41.27, radius=15)[0] == 1  # across RA = 0
    assert ids(client, target="m 31")[0] == 1
    assert ids(client, start="2019-12-01T00:00:00Z", end="2020-02-01T00:00:00Z")[0] == 1
    assert ids(client, start="2021-01-01T00:00:00Z")[0] == 0
    assert ids(client, wavelength=5.5e-7)[0] == 1
    assert ids(client, wavelength=2.2e-6)[0] == 0
    assert ids(client, telescope=SCOPE, instrument="BFOSC")[0] == 1


@pytest.mark.parametrize("params", [
    {"ra": 400, "dec": 0}, {"ra": 10}, {"dec": 95, "ra": 1}, {"radius": 0, "ra": 1, "dec": 1},
    {"qc_grade": "excellent"}, {"per_page": 0}, {"per_page": 10000}, {"sort": "size"},
    {"start": "yesterday"}, {"calib_level": 9}, {"unknown": 1},
    {"start": "2021-01-01T00:00:00Z", "end": "2020-01-01T00:00:00Z"},
])
def test_bad_searches_get_a_clear_4xx(client, world, params):
    response = client.get("/api/v1/data/observations", params=params)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_downloads_honour_ranges_and_etags(users, world):
    api = users.api(world["pi"])
    data = world["paths"]["private"].read_bytes()
    url = f"/api/v1/data/observations/{world['private']}/file"
    part = api.get(url, headers={"Range": "bytes=2880-5759"})
    assert part.status_code == 206 and part.content == data[2880:5760]
    whole = api.get(url)
    assert api.get(url, headers={"If-None-Match": whole.headers["etag"]}).status_code == 304
    assert api.get(url, headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416
    assert "attachment" in whole.headers["content-disposition"]


def test_a_service_account_uploads_raw_data_over_http(users, world, system, runtime):
    account = users.create("xl-pipeline", role="observer", service=True)
    api = users.api(account)
    import tempfile
    from pathlib import Path

    from astrocloud.data.archive.synthetic import write_image as make

    path = make(Path(tempfile.mkdtemp()) / "up.fits", ra=150.0, dec=2.2, date_obs=OLD,
                propid="2026A-001", seed=9)
    response = api.put(f"/api/v1/data/ingest/{SCOPE}/up.fits", content=path.read_bytes())
    assert response.status_code == 202, response.text
    record = response.json()
    assert record["status"] == "queued"
    runtime.jobs.wait([record["job_id"]], timeout=60)
    done = api.get(f"/api/v1/data/ingests/{record['id']}").json()
    assert done["status"] == "archived" and done["file_id"]
    assert api.get(f"/api/v1/data/observations/{done['file_id']}").json()["filename"] == \
        "up.fits"


def test_uploads_need_the_right_to_ingest_for_that_telescope(users, world, client):
    stranger = users.api("astronomer", "stranger")
    assert stranger.put(f"/api/v1/data/ingest/{SCOPE}/x.fits", content=b"x").status_code == 403
    assert client.put(f"/api/v1/data/ingest/{SCOPE}/x.fits", content=b"x").status_code == 401
    observer = users.api("observer", "obs1")
    assert observer.put("/api/v1/data/ingest/Nowhere/x.fits", content=b"x").status_code == 404


def test_a_quarantined_upload_is_visible_to_operators_with_its_reason(users, world, runtime):
    observer = users.api("observer", "obs1")
    response = observer.put(f"/api/v1/data/ingest/{SCOPE}/junk.fits", content=b"not a fits")
    runtime.jobs.wait([response.json()["job_id"]], timeout=60)
    quarantine = users.api("operator", "op1").get("/api/v1/data/ingests",
                                                  params={"status": "quarantined"}).json()
    assert quarantine["total"] == 1
    assert quarantine["items"][0]["code"] == "not-fits" and quarantine["items"][0]["reason"]


def test_a_pi_deposits_a_derived_product(users, world, runtime, tmp_path):
    api = users.api(world["pi"])
    product = write_image(tmp_path / "reduced.fits", ra=202.47, dec=47.2, date_obs=recent(),
                          propid="2026A-001", seed=11)
    response = api.put("/api/v1/data/products/reduced.fits",
                       params={"derived_from": world["private"]},
                       content=product.read_bytes())
    assert response.status_code == 202, response.text
    runtime.jobs.wait([response.json()["job_id"]], timeout=60)
    record = api.get(f"/api/v1/data/ingests/{response.json()['id']}").json()
    assert record["status"] == "archived", record
    detail = api.get(f"/api/v1/data/observations/{record['file_id']}").json()
    assert detail["derived_from"] == [world["private"]] and detail["calib_level"] == 2
    raw = api.get(f"/api/v1/data/observations/{world['private']}").json()
    assert raw["products"] == [record["file_id"]]


def test_a_stranger_cannot_deposit_from_proprietary_files(users, world):
    api = users.api("astronomer", "stranger")
    response = api.put("/api/v1/data/products/x.fits",
                       params={"derived_from": world["private"]}, content=b"x")
    assert response.status_code == 404


def test_a_qc_reviewer_overrides_a_grade_with_a_comment(users, world, system):
    reviewer = users.api("qc_reviewer", "rev1")
    url = f"/api/v1/data/observations/{world['released']}/qc"
    assert reviewer.post(url, json={"grade": "fail"}).status_code == 422
    response = reviewer.post(url, json={"grade": "fail", "comment": "Dome in the beam."})
    assert response.status_code == 200 and response.json()["qc_grade"] == "fail"
    detail = reviewer.get(f"/api/v1/data/observations/{world['released']}").json()
    assert detail["qc"]["overridden"] and detail["qc"]["comment"] == "Dome in the beam."
    assert users.api(world["pi"]).post(url, json={"grade": "pass", "comment": "no"}) \
        .status_code == 403


def test_a_telescope_manager_changes_the_proprietary_period_and_it_is_logged(system, users):
    observation.create_telescope(system, name="Weihai 1m", longitude=122.05, latitude=37.53,
                                 elevation=100)
    manager = users.create("mgr")
    telescope = observation.telescope_named(system, "Weihai 1m")
    security.assign(system, user_id=manager.id, role="telescope_manager",
                    scope_type="telescope", scope_id=telescope.id)
    system.subject = load_subject(system.db, manager)
    observation.update_telescope(system, "Weihai 1m", proprietary_months=6)
    system.subject = Subject.system_subject()
    from astrocloud.core.usage.models import UsageEvent

    event = system.db.scalar(sa.select(UsageEvent).where(
        UsageEvent.operation == "observation.telescope.update").order_by(UsageEvent.id.desc()))
    assert event.username == "mgr" and "18 → 6" in event.detail


def test_preview_of_a_proprietary_file_is_private(client, users, world, system):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        system.db.commit()  # a new snapshot
        system.db.expire_all()
        if system.db.get(ArchiveFile, world["private"]).thumbnail_uri:
            break
        time.sleep(0.1)
    url = f"/api/v1/data/observations/{world['private']}/thumbnail.png"
    assert client.get(url).status_code == 404
    response = users.api(world["pi"]).get(url)
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


def test_a_deposit_naming_a_programme_the_depositor_is_not_in_is_quarantined(
        users, world, runtime, tmp_path):
    api = users.api("astronomer", "stranger")
    product = write_image(tmp_path / "mine.fits", ra=10.68, dec=41.27, date_obs=OLD,
                          propid="2026A-001", seed=12)
    response = api.put("/api/v1/data/products/mine.fits",
                       params={"derived_from": world["released"]},
                       content=product.read_bytes())
    assert response.status_code == 202, response.text
    runtime.jobs.wait([response.json()["job_id"]], timeout=60)
    record = api.get(f"/api/v1/data/ingests/{response.json()['id']}").json()
    assert record["status"] == "quarantined" and record["code"] == "programme-not-yours"
