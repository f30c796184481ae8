"""Data releases: operators assemble a draft, publish it, and it never changes again; its files
are everyone's from its release date on, even inside their proprietary period."""

from __future__ import annotations

import datetime as dt

import pytest


@pytest.fixture
def operator(users):
    return users.api("operator", "op1")


def make_release(operator, world, when: dt.datetime, name="DR1") -> dict:
    response = operator.post("/api/v1/data/releases", json={
        "name": name, "title": "First data release", "release_date": when.isoformat(),
        "notes": "Images of 2020 and 2026."})
    assert response.status_code == 201, response.text
    release = response.json()
    response = operator.post(f"/api/v1/data/releases/{release['id']}/contents",
                             json={"file_ids": [world["released"], world["private"]],
                                   "catalogs": ["gaia_demo"]})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_published_release_opens_its_files_to_everyone_from_its_date(client, operator,
                                                                       world):
    release = make_release(operator, world, dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    assert release["status"] == "draft" and release["n_files"] == 2
    assert client.get("/api/v1/data/releases").json() == []  # drafts are the operators'
    assert client.get(f"/api/v1/data/observations/{world['private']}").status_code == 404
    published = operator.post(f"/api/v1/data/releases/{release['id']}/publish")
    assert published.status_code == 200 and published.json()["status"] == "published"
    listing = client.get("/api/v1/data/releases").json()
    assert [(r["name"], r["version"]) for r in listing] == [("DR1", 1)]
    assert "DR1 (version 1)" in listing[0]["citation"]
    detail = client.get("/api/v1/data/releases/DR1").json()
    assert detail["files"]["total"] == 2 and detail["catalogs"] == ["gaia_demo"]
    assert client.get(f"/api/v1/data/observations/{world['private']}").status_code == 200


def test_before_its_date_a_published_release_keeps_proprietary_files_private(
        client, operator, world):
    release = make_release(operator, world, dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
    operator.post(f"/api/v1/data/releases/{release['id']}/publish")
    detail = client.get("/api/v1/data/releases/DR1").json()
    assert detail["files"]["total"] == 1  # only the file released on its own
    assert client.get(f"/api/v1/data/observations/{world['private']}").status_code == 404


def test_a_published_release_never_changes(operator, world):
    release = make_release(operator, world, dt.datetime.now(dt.UTC))
    operator.post(f"/api/v1/data/releases/{release['id']}/publish")
    response = operator.post(f"/api/v1/data/releases/{release['id']}/contents",
                             json={"file_ids": [world["released"]]})
    assert response.status_code == 409
    assert operator.post(f"/api/v1/data/releases/{release['id']}/publish").status_code == 409
    second = make_release(operator, world, dt.datetime.now(dt.UTC))
    assert second["version"] == 2  # a correction is a new version


def test_only_operators_make_releases(users, world):
    astronomer = users.api(world["pi"])
    response = astronomer.post("/api/v1/data/releases", json={
        "name": "Mine", "title": "x", "release_date": "2026-01-01T00:00:00Z"})
    assert response.status_code == 403


@pytest.mark.parametrize("body", [
    {"name": "1bad", "title": "t", "release_date": "2026-01-01T00:00:00Z"},
    {"name": "DR1", "title": "", "release_date": "2026-01-01T00:00:00Z"},
    {"name": "DR1", "title": "t", "release_date": "soon"},
    {"name": "DR1", "title": "t"},
])
def test_bad_releases_get_a_clear_4xx(operator, body):
    response = operator.post("/api/v1/data/releases", json=body)
    assert response.status_code in (400, 422), response.text


def test_an_empty_release_cannot_be_published(operator):
    release = operator.post("/api/v1/data/releases", json={
        "name": "DR0", "title": "Nothing", "release_date": "2026-01-01T00:00:00Z"}).json()
    response = operator.post(f"/api/v1/data/releases/{release['id']}/publish")
    assert response.status_code == 422
