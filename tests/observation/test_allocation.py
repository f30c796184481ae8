"""TAC, allocation, publication and observing: the TAC ranks after the review deadline, moves
proposals with written reasons and allocates hours per instrument down the ranking with the
weather-loss factor; the manager publishes (programmes, e-mails with anonymised comments);
observers log observations, whose time is charged to the programme, and the archive links the
files to it."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from astrocloud.core.security import services as security
from astrocloud.data.archive import services as archive
from astrocloud.data.archive.synthetic import write_image
from astrocloud.observation import calls, reviews
from tests.observation.conftest import SCOPE, as_user, now, submit_as


@pytest.fixture
def graded(system, users, manager, open_call):
    """Three submitted proposals graded by two reviewers each (P0 best, P2 below grade C),
    with 1 h on YFOSC, then the review deadline passed."""
    calls.update_call(system, open_call.id, instrument_hours={"YFOSC": 1.0},
                      allocation_setup={"max_share": 1.0},
                      review_setup={"normalisation": "none"})
    pis = [users.create(f"pi{n}", institute=f"I{n}") for n in range(3)]
    ids = [submit_as(system, pi, open_call, f"P{n}") for n, pi in enumerate(pis)]
    pool = [users.create(f"rev{n}", institute=f"R{n}") for n in range(2)]
    for user in pool:
        reviews.appoint(system, open_call.id, username=user.username)
    reviews.auto_assign(system, open_call.id)
    grades = {ids[0]: 1.0, ids[1]: 2.5, ids[2]: 4.5}
    for user in pool:
        as_user(system, user)
        for review in reviews.list_reviews(system, call_id=open_call.id):
            reviews.grade(system, review.id, grade=grades[review.proposal_id],
                          comment=f"A thoughtful comment on proposal {review.proposal_id}.")
    from astrocloud.core.security.engine import Subject

    system.subject = Subject.system_subject()
    tac_user = users.create("tacmember")
    security.assign(system, user_id=tac_user.id, role="tac_member", scope_type="call",
                    scope_id=open_call.id)
    return {"call": open_call, "pis": pis, "ids": ids, "tac": users.api(tac_user)}


def _past_deadlines(system, call):
    t = now()
    calls.update_call(system, call.id, opens_at=t - dt.timedelta(days=10),
                      closes_at=t - dt.timedelta(days=5),
                      review_deadline=t - dt.timedelta(seconds=1))


def test_the_tac_may_not_allocate_before_the_review_deadline(graded):
    response = graded["tac"].post("/api/v1/observation/allocations/run",
                                  json={"call_id": graded["call"].id})
    assert response.status_code == 403
    assert graded["tac"].get("/api/v1/observation/allocations").json()["items"] == []


def test_allocation_down_the_ranking_with_weather_loss_and_oversubscription(system, graded):
    _past_deadlines(system, graded["call"])
    response = graded["tac"].post("/api/v1/observation/allocations/run",
                                  json={"call_id": graded["call"].id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["available"] == {"YFOSC": 0.7}  # 1 h less 30 % weather loss
    assert body["oversubscription"] == {"YFOSC": round(1.35 / 0.7, 3)}
    p0, p1, p2 = body["items"]
    assert [a["proposal_id"] for a in body["items"]] == graded["ids"]
    assert (p0["rank"], p0["grade"], p0["outcome"], p0["hours"]) == (1, "A", "full",
                                                                      {"YFOSC": 0.45})
    assert (p1["grade"], p1["outcome"], p1["hours"]) == ("B", "partial", {"YFOSC": 0.25})
    assert (p2["grade"], p2["outcome"], p2["total_hours"]) == (None, "none", 0)


def test_a_rank_change_needs_a_reason_and_reallocates(system, graded):
    _past_deadlines(system, graded["call"])
    tac = graded["tac"]
    items = tac.post("/api/v1/observation/allocations/run",
                     json={"call_id": graded["call"].id}).json()["items"]
    second = items[1]
    assert tac.patch(f"/api/v1/observation/allocations/{second['id']}",
                     json={"rank": 1, "reason": "  "}).status_code == 422
    moved = tac.patch(f"/api/v1/observation/allocations/{second['id']}",
                      json={"rank": 1, "reason": "Time-critical event this semester."})
    assert moved.status_code == 200, moved.text
    assert moved.json()["rank"] == 1 and moved.json()["outcome"] == "full"
    assert moved.json()["rank_history"][0]["reason"] == "Time-critical event this semester."
    listed = tac.get("/api/v1/observation/allocations",
                     params={"call_id": graded["call"].id}).json()["items"]
    assert listed[1]["proposal_id"] == graded["ids"][0] and listed[1]["outcome"] == "partial"


def test_publication_makes_programmes_and_mails_pis_anonymised_comments(
        system, graded, manager, users, smtp):
    _past_deadlines(system, graded["call"])
    astronomer = users.api(graded["pis"][0])
    response = manager.post("/api/v1/observation/allocations/publish",
                            json={"call_id": graded["call"].id})
    assert response.status_code == 200, response.text
    assert response.json() == {"allocated": 2, "declined": 1}
    mine = astronomer.get("/api/v1/observation/allocations").json()["items"]
    assert len(mine) == 1 and mine[0]["grade"] == "A" and mine[0]["published"]
    programmes = {p["code"]: p for p in astronomer.get("/api/v1/observation/programmes").json()}
    assert programmes[mine[0]["code"]]["proprietary_months"] == 12
    proposal = astronomer.get(f"/api/v1/observation/proposals/{mine[0]['proposal_id']}")
    assert proposal.json()["status"] == "accepted"
    body = _mail_to(smtp, "pi0@example.org")
    assert "ALLOCATED (full), grade A" in body and "Reviewer 1" in body
    assert body.count("A thoughtful comment") == 2
    assert "rev0" not in body and "rev1" not in body  # reviewers stay anonymous
    declined = _mail_to(smtp, "pi2@example.org")
    assert "NOT ALLOCATED" in declined
    again = manager.post("/api/v1/observation/allocations/publish",
                         json={"call_id": graded["call"].id})
    assert again.status_code == 409


def _mail_to(smtp, to: str) -> str:
    for _ in range(50):
        for message in smtp.messages:
            if message["To"] == to:
                return message.get_content()
        time.sleep(0.1)
    raise AssertionError(f"no mail to {to}")


def test_observers_log_observations_charged_to_the_programme_and_the_archive_links_files(
        system, graded, manager, users, runtime, tmp_path):
    _past_deadlines(system, graded["call"])
    manager.post("/api/v1/observation/allocations/publish", json={"call_id": graded["call"].id})
    observer_user = users.create("nightobs")
    security.assign(system, user_id=observer_user.id, role="observer",
                    scope_type="telescope", scope_id=graded["call"].telescope_id)
    observer = users.api(observer_user)
    queue = observer.get(f"/api/v1/observation/queue/{SCOPE}").json()["items"]
    assert [q["grade"] for q in queue] == ["A", "B"]
    code = queue[0]["programme"]
    start = dt.datetime(2027, 3, 10, 14, 0, tzinfo=dt.UTC)
    logged = observer.post("/api/v1/observation/observation-logs", json={
        "telescope": SCOPE, "programme": code, "target": "M 67",
        "start": start.isoformat(), "end": (start + dt.timedelta(minutes=18)).isoformat(),
        "status": "done", "conditions": {"seeing_arcsec": 1.4},
        "file_ids": ["lj-20270310-0001"], "instrument": "YFOSC"})
    assert logged.status_code == 201, logged.text
    assert logged.json()["balance"] == {"allocated_hours": 0.45, "charged_hours": 0.3,
                                        "remaining_hours": 0.15}
    pi = users.api(graded["pis"][0])
    assert [e["target"] for e in pi.get("/api/v1/observation/observation-logs").json()[
        "items"]] == ["M 67"]
    assert users.api(graded["pis"][1]).get(
        "/api/v1/observation/observation-logs").json()["items"] == []
    # the archive links a file with the programme code in its header, released after 12 months
    system.runtime = runtime
    path = write_image(tmp_path / "lj.fits", ra=132.8, dec=11.8, telescope=SCOPE,
                       instrument="YFOSC", date_obs=start, propid=code)
    records, jobs = archive.submit_paths(system, telescope=SCOPE, paths=[str(path)])
    runtime.jobs.wait(jobs, timeout=60)
    [record] = archive.ingest_progress(system.database, [records[0].id])
    archived = archive.get_file(system, record.file_id)
    assert archived.programme_code == code
    assert archived.obs_release_date.date() == dt.date(2028, 3, 10)


@pytest.mark.parametrize("change, field", [
    ({"end": "2027-03-10T13:00:00+00:00"}, "end"),
    ({"status": "lovely"}, "status"),
    ({"programme": "NOPE"}, "programme"),
])
def test_bad_log_entries_are_refused(system, graded, manager, change, field):
    _past_deadlines(system, graded["call"])
    manager.post("/api/v1/observation/allocations/publish", json={"call_id": graded["call"].id})
    code = manager.get("/api/v1/observation/allocations").json()["items"][0]["code"]
    entry = {"telescope": SCOPE, "programme": code, "target": "M 67",
             "start": "2027-03-10T14:00:00+00:00", "end": "2027-03-10T14:30:00+00:00",
             **change}
    response = manager.post("/api/v1/observation/observation-logs", json=entry)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.json()["errors"]}


def test_astronomers_may_not_log_or_publish(graded, users):
    someone = users.api("astronomer", "someone")
    assert someone.post("/api/v1/observation/allocations/publish",
                        json={"call_id": graded["call"].id}).status_code == 403
    assert someone.post("/api/v1/observation/observation-logs", json={
        "telescope": SCOPE, "programme": "X", "target": "M 67",
        "start": "2027-03-10T14:00:00+00:00",
        "end": "2027-03-10T14:30:00+00:00"}).status_code == 403


def test_the_nightly_plan_orders_by_grade_and_visibility(system, graded, manager):
    _past_deadlines(system, graded["call"])
    manager.post("/api/v1/observation/allocations/publish", json={"call_id": graded["call"].id})
    plan = manager.get(f"/api/v1/observation/queue/{SCOPE}/plan",
                       params={"night": "2027-03-10"}).json()["items"]
    assert plan, "M 67 is up at night in March"
    assert plan[0]["grade"] == "A"
    for block in plan:
        assert block["end"] > block["start"]
