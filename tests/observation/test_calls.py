"""Calls for proposals: a telescope manager opens and edits calls on their own telescope; the
set-up is checked with every problem listed; everyone sees the open calls on /observation,
each with its own page, in English and Chinese."""

from __future__ import annotations

import datetime as dt

from astrocloud.core.security import services as security
from astrocloud.observation import calls, services
from tests.observation.conftest import SCOPE, call_fields, now


def _json(fields: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in fields.items()}


def test_a_manager_opens_a_call_and_everyone_sees_it(manager, client):
    response = manager.post("/api/v1/observation/calls", json=_json(call_fields()))
    assert response.status_code == 201, response.text
    call = response.json()
    assert call["is_open"] is True and call["instrument_hours"] == {"YFOSC": 100.0}
    assert call["form"]["page_limit"] == 2 and call["form"]["max_targets"] == 3
    assert call["review_setup"]["reviewers_per_proposal"] == 2
    assert call["review_setup"]["normalisation"] == "zscore"  # a default kept
    assert call["allocation_setup"]["thresholds"] == {"A": 2.0, "B": 3.0, "C": 4.0}
    listed = client.get("/api/v1/observation/calls?open=true").json()["items"]
    assert [c["id"] for c in listed] == [call["id"]]
    assert client.get(f"/api/v1/observation/calls/{call['id']}").json()["name"] == "2027A"


def test_times_are_kept_in_utc_to_the_second(manager):
    opens = dt.datetime(2027, 1, 1, 8, 0, 0, 750000, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    fields = call_fields(opens_at=opens, closes_at=dt.datetime(2027, 2, 1, 12, 0, 0,
                                                               tzinfo=dt.UTC),
                         review_deadline=dt.datetime(2027, 3, 1, tzinfo=dt.UTC))
    call = manager.post("/api/v1/observation/calls", json=_json(fields)).json()
    assert dt.datetime.fromisoformat(call["opens_at"]) == dt.datetime(2027, 1, 1, 0, 0, 0,
                                                                      tzinfo=dt.UTC)


def test_a_bad_call_gets_every_problem_at_once(manager):
    t = now()
    fields = call_fields(name="no spaces please", closes_at=t - dt.timedelta(days=2),
                         review_deadline=t - dt.timedelta(days=3),
                         instrument_hours={"NOPE": 5, "YFOSC": -1},
                         form={"page_limit": 0, "colour": "red"},
                         review_setup={"normalisation": "vibes"},
                         allocation_setup={"thresholds": {"A": 3, "B": 2, "C": 4},
                                           "weather_loss": 1.5})
    response = manager.post("/api/v1/observation/calls", json=_json(fields))
    assert response.status_code == 422, response.text
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"name", "closes_at", "review_deadline", "instrument_hours.NOPE",
            "instrument_hours.YFOSC", "form.page_limit", "form.colour",
            "review_setup.normalisation", "allocation_setup.thresholds",
            "allocation_setup.weather_loss"} <= fields


def test_the_manager_edits_the_call_and_nothing_changes_on_bad_input(manager, open_call):
    url = f"/api/v1/observation/calls/{open_call.id}"
    response = manager.patch(url, json={"categories": ["Exoplanets"],
                                        "allocation_setup": {"weather_loss": 0.4}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["categories"] == ["Exoplanets"]
    assert body["allocation_setup"]["weather_loss"] == 0.4
    assert body["allocation_setup"]["max_share"] == 0.25
    bad = manager.patch(url, json={"categories": ["Stars"], "form": {"max_targets": 0}})
    assert bad.status_code == 422
    assert manager.get(url).json()["categories"] == ["Exoplanets"]


def test_only_the_telescopes_own_managers_open_and_edit_its_calls(users, system, telescope,
                                                                  open_call):
    other = services.create_telescope(system, name="Other", longitude=1, latitude=1,
                                      elevation=1)
    user = users.create("othermgr")
    security.assign(system, user_id=user.id, role="telescope_manager", scope_type="telescope",
                    scope_id=other.id)
    for api in (users.api(user), users.api("astronomer", "astro")):
        assert api.post("/api/v1/observation/calls",
                        json=_json(call_fields(name="2027B"))).status_code == 403
        assert api.patch(f"/api/v1/observation/calls/{open_call.id}",
                         json={"title": "Mine"}).status_code == 403


def test_a_call_not_yet_open_or_on_a_closed_telescope_is_not_listed_as_open(system, telescope,
                                                                            client):
    t = now()
    calls.create_call(system, **call_fields(name="later", opens_at=t + dt.timedelta(days=2)))
    listed = client.get("/api/v1/observation/calls?open=true").json()["items"]
    assert listed == []
    calls.create_call(system, **call_fields(name="now"))
    assert len(client.get("/api/v1/observation/calls?open=true").json()["items"]) == 1
    services.update_telescope(system, SCOPE, open_for_proposals=False)
    assert client.get("/api/v1/observation/calls?open=true").json()["items"] == []


def test_the_landing_page_lists_open_calls_linked_to_their_pages(client, open_call, system):
    t = now()
    calls.create_call(system, **call_fields(name="2026B", opens_at=t - dt.timedelta(days=90),
                                            closes_at=t - dt.timedelta(days=60),
                                            review_deadline=t - dt.timedelta(days=50)))
    page = client.get("/observation")
    assert page.status_code == 200
    assert f'href="/observation/calls/{open_call.id}"' in page.text
    assert "2026B" not in page.text
    call_page = client.get(f"/observation/calls/{open_call.id}")
    assert call_page.status_code == 200
    assert "YFOSC" in call_page.text and "Open for proposals" in call_page.text
    assert open_call.closes_at.strftime("%Y-%m-%d %H:%M:%S") in call_page.text


def test_the_pages_speak_chinese(client, open_call):
    page = client.get("/observation?lang=zh-CN")
    assert "开放的观测申请征集" in page.text
    call_page = client.get(f"/observation/calls/{open_call.id}?lang=zh-CN")
    assert "截止时间" in call_page.text


def test_a_missing_call_is_a_friendly_404(client):
    assert client.get("/observation/calls/999").status_code == 404
    api = client.get("/api/v1/observation/calls/999")
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/problem+json")


def test_the_call_page_shows_the_deadline_in_the_readers_own_time_zone(browser, live_server,
                                                                       open_call):
    """UTC and the telescope's time from the server; the reader's own zone from the browser."""
    context = browser.new_context(locale="en-US", timezone_id="America/Santiago")
    try:
        page = context.new_page()
        page.goto(f"{live_server}/observation/calls/{open_call.id}")
        local = page.locator("time.deadline + .local-time")
        local.wait_for()
        assert "America/Santiago" in local.inner_text()
        assert "UTC" in page.locator("time.deadline").inner_text()
    finally:
        context.close()
