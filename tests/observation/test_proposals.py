"""Proposals: a PI drafts (targets, exposures, justification PDF), invites co-investigators who
accept, checks, submits before the deadline and withdraws; the rules say who edits what and
until when; bad input and concurrent saves get clear errors and lose nothing."""

from __future__ import annotations

import datetime as dt
import io
import re
import time

import pytest
from pypdf import PdfWriter

from astrocloud.observation import calls
from tests.observation.conftest import call_fields, now

TARGET = {"name": "M 67", "ra": 132.825, "dec": 11.8, "magnitude": 10.5,
          "exposures": [{"instrument": "YFOSC", "setup": {"mode": "imaging", "filter": "V"},
                         "seconds": 300, "count": 4}],
          "constraints": {"max_airmass": 1.5, "min_moon_distance": 45}}


def pdf(pages: int = 1) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture
def pi(users, open_call):
    return users.api("astronomer", "piuser")


def draft(api, call_id, **fields):
    response = api.post("/api/v1/observation/proposals",
                        json={"call_id": call_id, "title": "Old open clusters",
                              "abstract": "Ages of clusters.", "category": "Stars", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def upload(api, proposal_id, content, name="j.pdf"):
    return api.put(f"/api/v1/observation/proposals/{proposal_id}/justification",
                   files={"file": (name, content, "application/pdf")})


def complete(api, proposal) -> dict:
    saved = api.patch(f"/api/v1/observation/proposals/{proposal['id']}",
                      json={"version": proposal["version"], "targets": [TARGET]})
    assert saved.status_code == 200, saved.text
    assert upload(api, proposal["id"], pdf(2)).status_code == 200
    return api.get(f"/api/v1/observation/proposals/{proposal['id']}").json()


def test_requested_hours_are_exposures_plus_overheads(pi, open_call):
    proposal = draft(pi, open_call.id)
    saved = pi.patch(f"/api/v1/observation/proposals/{proposal['id']}",
                     json={"version": proposal["version"], "targets": [TARGET]}).json()
    # 4 × (300 s + 20 s filter + 10 s fast readout) + 300 s acquisition = 1620 s
    assert saved["requested_by_instrument"] == {"YFOSC": 0.45}
    assert saved["requested_hours"] == 0.45
    assert saved["targets"][0]["constraints"]["max_seeing"] is None  # a default filled in


def test_a_pi_drafts_uploads_and_submits_a_frozen_version(pi, open_call):
    proposal = complete(pi, draft(pi, open_call.id))
    assert proposal["justification"]["pages"] == 2
    assert pi.get(f"/api/v1/observation/proposals/{proposal['id']}/problems").json() == {
        "ready": True, "errors": []}
    submitted = pi.post(f"/api/v1/observation/proposals/{proposal['id']}/submit", json={})
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body["status"] == "submitted" and body["code"].endswith("2027A-001")
    versions = pi.get(f"/api/v1/observation/proposals/{proposal['id']}/versions").json()
    assert [v["number"] for v in versions["items"]] == [1]
    assert versions["items"][0]["content"]["title"] == "Old open clusters"
    # frozen: no more edits once submitted
    again = pi.patch(f"/api/v1/observation/proposals/{proposal['id']}",
                     json={"version": body["version"], "title": "Changed"})
    assert again.status_code == 403
    pdf_back = pi.get(f"/api/v1/observation/proposals/{proposal['id']}/justification")
    assert pdf_back.content.startswith(b"%PDF-")


def test_validation_lists_every_problem_at_once(pi, open_call):
    proposal = draft(pi, open_call.id, title="", abstract="", category="Planets")
    response = pi.post(f"/api/v1/observation/proposals/{proposal['id']}/submit", json={})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"title", "abstract", "category", "targets", "justification"}


def test_too_many_targets_or_hours_are_problems(pi, open_call, system):
    calls.update_call(system, open_call.id, instrument_hours={"YFOSC": 0.5})
    proposal = draft(pi, open_call.id)
    saved = pi.patch(f"/api/v1/observation/proposals/{proposal['id']}",
                     json={"version": proposal["version"], "targets": [TARGET] * 4}).json()
    problems = pi.get(f"/api/v1/observation/proposals/{saved['id']}/problems").json()
    messages = " ".join(e["message"] for e in problems["errors"])
    assert "at most 3 targets" in messages and "offers 0.5 h" in messages


@pytest.mark.parametrize("target, field", [
    ({**TARGET, "ra": 360.0}, "targets[0].ra"),
    ({**TARGET, "dec": -91}, "targets[0].dec"),
    ({**TARGET, "exposures": [{"instrument": "YFOSC", "setup": {"mode": "imaging",
                                                                "filter": "Z"},
                               "seconds": 10}]}, "targets[0].exposures[0].setup.filter"),
    ({**TARGET, "exposures": [{"instrument": "HST", "seconds": 10}]},
     "targets[0].exposures[0].instrument"),
    ({**TARGET, "constraints": {"max_airmass": 0.5}}, "targets[0].constraints.max_airmass"),
])
def test_bad_targets_are_refused_and_the_draft_is_unchanged(pi, open_call, target, field):
    proposal = draft(pi, open_call.id)
    response = pi.patch(f"/api/v1/observation/proposals/{proposal['id']}",
                        json={"version": proposal["version"], "targets": [target],
                              "title": "Not saved either"})
    assert response.status_code == 422
    assert field in {e["field"] for e in response.json()["errors"]}
    current = pi.get(f"/api/v1/observation/proposals/{proposal['id']}").json()
    assert current["targets"] == [] and current["title"] == "Old open clusters"
    assert current["version"] == proposal["version"]


def test_a_pdf_that_is_not_a_pdf_too_large_or_too_long_is_refused(pi, open_call):
    proposal = draft(pi, open_call.id)
    assert upload(pi, proposal["id"], pdf(1)).status_code == 200
    fake = upload(pi, proposal["id"], b"GIF89a not a pdf at all", "j.pdf")
    assert fake.status_code == 422 and "PDF" in fake.json()["detail"]
    broken = upload(pi, proposal["id"], b"%PDF-1.7\n garbage without pages")
    assert broken.status_code == 422
    long = upload(pi, proposal["id"], pdf(3))  # the call allows 2 pages
    assert long.status_code == 422 and "3 pages" in long.json()["detail"]
    large = upload(pi, proposal["id"], pdf(1) + b"%" * 60_000)  # the call allows 0.05 MB
    assert large.status_code == 422
    kept = pi.get(f"/api/v1/observation/proposals/{proposal['id']}").json()["justification"]
    assert kept["pages"] == 1  # the first upload is still there


def test_two_cois_saving_the_same_draft_the_second_gets_a_409_and_loses_nothing(
        users, pi, open_call, smtp):
    proposal = draft(pi, open_call.id)
    coi = users.api("astronomer", "coi")
    invited = pi.post(f"/api/v1/observation/proposals/{proposal['id']}/invitations",
                      json={"email": "coi@example.org"})
    assert invited.status_code == 201, invited.text
    token = _token_from_mail(smtp, "coi@example.org")
    accepted = coi.post(f"/api/v1/observation/proposals/{proposal['id']}/invitations/accept",
                        params={"token": token})
    assert accepted.status_code == 200, accepted.text
    base = coi.get(f"/api/v1/observation/proposals/{proposal['id']}").json()
    first = pi.patch(f"/api/v1/observation/proposals/{proposal['id']}",
                     json={"version": base["version"], "abstract": "The PI's abstract."})
    assert first.status_code == 200
    second = coi.patch(f"/api/v1/observation/proposals/{proposal['id']}",
                       json={"version": base["version"], "abstract": "The co-I's abstract."})
    assert second.status_code == 409
    problem = second.json()
    assert "Somebody else saved" in problem["detail"]
    assert problem["current_version"] == first.json()["version"]
    assert coi.get(f"/api/v1/observation/proposals/{proposal['id']}").json()[
        "abstract"] == "The PI's abstract."
    retried = coi.patch(f"/api/v1/observation/proposals/{proposal['id']}",
                        json={"version": problem["current_version"],
                              "abstract": "The co-I's abstract."})
    assert retried.status_code == 200


def _token_from_mail(smtp, to: str) -> str:
    for _ in range(50):
        for message in smtp.messages:
            if message["To"] == to:
                body = message.get_content() if hasattr(message, "get_content") else str(message)
                return re.search(r"token=([A-Za-z0-9_-]+)", body).group(1)
        time.sleep(0.1)
    raise AssertionError(f"no mail to {to}")


def test_others_neither_see_nor_edit_a_draft(users, pi, open_call, client):
    proposal = draft(pi, open_call.id)
    stranger = users.api("astronomer", "stranger")
    url = f"/api/v1/observation/proposals/{proposal['id']}"
    assert stranger.get(url).status_code == 404
    assert stranger.patch(url, json={"version": 1, "title": "x"}).status_code == 404
    assert stranger.get("/api/v1/observation/proposals").json()["items"] == []
    assert client.get(url).status_code in (401, 404)
    assert client.post("/api/v1/observation/proposals",
                       json={"call_id": open_call.id}).status_code == 401


def test_a_submission_one_second_after_the_deadline_is_refused(users, system, telescope):
    closes = now() + dt.timedelta(seconds=3)
    call = calls.create_call(system, **call_fields(closes_at=closes))
    pi = users.api("astronomer", "late")
    proposal = complete(pi, draft(pi, call.id))
    while dt.datetime.now(dt.UTC) < closes + dt.timedelta(seconds=1):
        time.sleep(0.1)
    response = pi.post(f"/api/v1/observation/proposals/{proposal['id']}/submit", json={})
    assert response.status_code == 409
    assert closes.strftime("%Y-%m-%d %H:%M:%S") in response.json()["detail"]
    edit = pi.patch(f"/api/v1/observation/proposals/{proposal['id']}",
                    json={"version": proposal["version"], "title": "late"})
    assert edit.status_code == 409
    current = pi.get(f"/api/v1/observation/proposals/{proposal['id']}").json()
    assert current["status"] == "draft" and current["title"] == "Old open clusters"


def test_no_draft_on_a_call_that_is_not_open(users, system, telescope):
    t = now()
    later = calls.create_call(system, **call_fields(name="later",
                                                    opens_at=t + dt.timedelta(days=1)))
    response = users.api("astronomer", "early").post("/api/v1/observation/proposals",
                                                      json={"call_id": later.id})
    assert response.status_code == 409


def test_the_pi_withdraws_and_a_coi_may_not(users, pi, open_call, smtp):
    proposal = complete(pi, draft(pi, open_call.id))
    pi.post(f"/api/v1/observation/proposals/{proposal['id']}/submit", json={})
    withdrawn = pi.post(f"/api/v1/observation/proposals/{proposal['id']}/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    again = pi.post(f"/api/v1/observation/proposals/{proposal['id']}/withdraw")
    assert again.status_code == 403


def test_the_telescope_manager_sees_the_proposals_to_their_telescope(manager, pi, open_call):
    proposal = draft(pi, open_call.id)
    listed = manager.get("/api/v1/observation/proposals").json()["items"]
    assert [p["id"] for p in listed] == [proposal["id"]]
