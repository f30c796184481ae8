"""The storage layer in the browser and the API: sites, their health, sweeps, and jobs."""

from __future__ import annotations

import re

HTML = {"Accept": "text/html"}


def test_a_fresh_installation_has_the_six_sites(users):
    api = users.api("astronomer", "lyra")
    names = [s["name"] for s in api.get("/api/v1/sites").json()]
    assert names == ["beijing", "nanjing", "shanghai", "kunming", "lijiang", "urumqi"]


def test_an_operator_sees_and_manages_the_sites_page(users):
    operator = users.api("operator", "ops")
    page = operator.get("/admin/sites", headers=HTML)
    assert page.status_code == 200
    assert "kunming" in page.text and "Run a sweep now" in page.text
    site = operator.get("/api/v1/sites").json()[3]
    changed = operator.patch(f"/api/v1/sites/{site['id']}", json={"status": "draining"})
    assert changed.status_code == 200 and changed.json()["status"] == "draining"


def test_an_astronomer_cannot_change_a_site(users):
    api = users.api("astronomer", "lyra")
    site = api.get("/api/v1/sites").json()[0]
    assert api.patch(f"/api/v1/sites/{site['id']}", json={"status": "down"}).status_code == 403
    page = api.get("/admin/sites", headers=HTML)
    assert "Add a site" not in page.text


def test_a_site_with_an_unusable_storage_url_is_refused(users):
    admin = users.api("admin", "root")
    response = admin.post("/api/v1/sites", json={
        "name": "mars", "latitude": 0, "longitude": 0, "storage_url": "ftp://nowhere"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "storage_url"


def test_a_sweep_requested_over_the_api_is_a_job_its_owner_can_follow(users):
    operator = users.api("operator", "ops")
    job = operator.post("/api/v1/storage/sweep", json={"deep": True})
    assert job.status_code == 202
    job_id = job.json()["job_id"]
    detail = operator.get(f"/api/v1/jobs/{job_id}").json()
    assert detail["task"] == "storage.sweep" and detail["status"] in ("queued", "running", "done")
    assert detail["args"] == {"deep": True}
    page = operator.get(f"/jobs/{job_id}", headers=HTML)
    assert page.status_code == 200 and "storage.sweep" in page.text
    others = users.api("astronomer", "lyra")
    assert others.get(f"/api/v1/jobs/{job_id}").status_code == 404
    assert others.get("/api/v1/jobs").json()["total"] == 0


def test_the_sweep_form_queues_a_job_and_shows_it(users):
    import httpx

    from tests.core.test_accounts import csrf_from, web_login

    users.create("ops", role="operator")
    with httpx.Client(base_url=users.live_server) as browser:
        web_login(browser, "ops")
        token = csrf_from(browser.get("/admin/sites").text)
        response = browser.post("/admin/storage/sweep", data={"csrf_token": token, "deep": "1"},
                                headers=HTML)
        assert response.status_code == 303
        assert re.match(r"^/jobs/\d+\?notice=", response.headers["location"])


def test_an_operator_sets_a_placement_rule(users):
    operator = users.api("operator", "ops")
    rule = operator.put("/api/v1/placement-rules", json={
        "prefix": "ac://archive/lamost/", "copies": 3, "preferred_sites": ["kunming"]})
    assert rule.status_code == 200, rule.text
    rules = operator.get("/api/v1/placement-rules").json()
    assert rules[0]["prefix"] == "ac://archive/lamost/" and rules[0]["copies"] == 3
    bad = operator.put("/api/v1/placement-rules", json={
        "prefix": "archive", "copies": 3, "preferred_sites": ["atlantis"]})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"prefix", "preferred_sites"}


def test_a_site_holding_nothing_can_be_removed(users):
    admin = users.api("admin", "root")
    sites = admin.get("/api/v1/sites").json()
    assert admin.delete(f"/api/v1/sites/{sites[-1]['id']}").status_code == 204
    assert len(admin.get("/api/v1/sites").json()) == 5
