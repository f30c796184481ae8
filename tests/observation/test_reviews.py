"""Review: the manager appoints a reviewer pool, the platform assigns reviewers respecting
conflicts of interest (PI or co-I, same institute, declared) and balancing load, the manager
overrides by hand; reviewers see and grade only what is assigned to them, before the review
deadline; grades are normalised per reviewer; PIs never learn who reviewed them; the TAC sees
grades only after the review deadline."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from astrocloud.core.security import services as security
from astrocloud.observation import calls, reviews
from astrocloud.observation.models import Review
from tests.observation.conftest import now, submit_as


@pytest.fixture
def cycle(system, users, manager, open_call):
    """Four submitted proposals and a pool of four reviewers, one from the same institute as a
    PI and one who is a co-investigator of another proposal."""
    pis = [users.create(f"pi{n}", institute=inst) for n, inst in
           enumerate(["NAOC", "PMO", "YNAO", "SHAO"])]
    pool = [users.create(name, institute=inst) for name, inst in
            [("rev-a", "NAOC"), ("rev-b", "XAO"), ("rev-c", "IHEP"), ("rev-d", "")]]
    ids = [submit_as(system, pis[0], open_call, "P0"),
           submit_as(system, pis[1], open_call, "P1", cois=[pool[1]]),
           submit_as(system, pis[2], open_call, "P2"),
           submit_as(system, pis[3], open_call, "P3")]
    for user in pool:
        response = manager.post(f"/api/v1/observation/calls/{open_call.id}/appointments",
                                json={"username": user.username})
        assert response.status_code == 200, response.text
    return {"call": open_call, "pis": pis, "pool": pool, "proposals": ids}


def test_automatic_assignment_respects_conflicts_and_balances_load(manager, cycle, users):
    # rev-c declares a conflict with P2 first
    rev_c = users.api(cycle["pool"][2])
    declared = rev_c.post("/api/v1/observation/reviews/conflicts",
                          json={"proposal_id": cycle["proposals"][2], "reason": "my student"})
    assert declared.status_code == 201, declared.text
    result = manager.post("/api/v1/observation/reviews/auto-assign",
                          json={"call_id": cycle["call"].id})
    assert result.status_code == 200, result.text
    assert result.json()["assigned"] == 8 and result.json()["shortfalls"] == []
    listed = manager.get("/api/v1/observation/reviews",
                         params={"call_id": cycle["call"].id}).json()["items"]
    pairs = {(r["proposal_id"], r["reviewer"]) for r in listed}
    p0, p1, p2, _ = cycle["proposals"]
    assert (p0, "rev-a") not in pairs  # same institute (NAOC) as P0's PI
    assert (p1, "rev-b") not in pairs  # a co-investigator of P1
    assert (p2, "rev-c") not in pairs  # declared
    load = Counter(r["reviewer"] for r in listed)
    assert sorted(load.values()) == [2, 2, 2, 2]


def test_a_shortfall_is_reported_when_too_few_reviewers_are_free(system, manager, cycle):
    calls.update_call(system, cycle["call"].id, review_setup={"reviewers_per_proposal": 4})
    result = manager.post("/api/v1/observation/reviews/auto-assign",
                          json={"call_id": cycle["call"].id}).json()
    short = {s["proposal_id"]: s["missing"] for s in result["shortfalls"]}
    assert short == {cycle["proposals"][0]: 1, cycle["proposals"][1]: 1}


def test_manual_override_refuses_a_conflicted_reviewer(manager, cycle):
    p0 = cycle["proposals"][0]
    refused = manager.post("/api/v1/observation/reviews",
                           json={"proposal_id": p0, "username": "rev-a"})
    assert refused.status_code == 409 and "institute" in refused.json()["detail"]
    refused = manager.post("/api/v1/observation/reviews",
                           json={"proposal_id": p0, "username": "pi0"})
    assert refused.status_code == 409
    added = manager.post("/api/v1/observation/reviews",
                         json={"proposal_id": p0, "username": "rev-d", "kind": "technical"})
    assert added.status_code == 201, added.text
    assert manager.delete(f"/api/v1/observation/reviews/{added.json()['id']}"
                          ).status_code == 204


def test_reviewers_see_and_grade_only_their_assigned_proposals(manager, cycle, users):
    manager.post("/api/v1/observation/reviews/auto-assign", json={"call_id": cycle["call"].id})
    rev_d = users.api(cycle["pool"][3])
    mine = rev_d.get("/api/v1/observation/reviews").json()["items"]
    assert {r["reviewer"] for r in mine} == {"rev-d"} and len(mine) == 2
    assigned = {r["proposal_id"] for r in mine}
    visible = {p["id"] for p in rev_d.get("/api/v1/observation/proposals").json()["items"]}
    assert visible == assigned
    other = next(p for p in cycle["proposals"] if p not in assigned)
    assert rev_d.get(f"/api/v1/observation/proposals/{other}").status_code == 404
    graded = rev_d.patch(f"/api/v1/observation/reviews/{mine[0]['id']}",
                         json={"grade": 1.5, "comment": "Excellent."})
    assert graded.status_code == 200, graded.text
    bad = rev_d.patch(f"/api/v1/observation/reviews/{mine[1]['id']}", json={"grade": 9})
    assert bad.status_code == 422
    someone_elses = manager.get("/api/v1/observation/reviews").json()["items"]
    theirs = next(r for r in someone_elses if r["reviewer"] != "rev-d")
    assert rev_d.patch(f"/api/v1/observation/reviews/{theirs['id']}",
                       json={"grade": 1}).status_code == 404


def test_a_reviewer_declaring_a_conflict_loses_the_review_and_the_proposal(manager, cycle,
                                                                          users):
    manager.post("/api/v1/observation/reviews/auto-assign", json={"call_id": cycle["call"].id})
    rev_d = users.api(cycle["pool"][3])
    first = rev_d.get("/api/v1/observation/reviews").json()["items"][0]["proposal_id"]
    rev_d.post("/api/v1/observation/reviews/conflicts", json={"proposal_id": first})
    assert rev_d.get(f"/api/v1/observation/proposals/{first}").status_code == 404
    assert first not in {r["proposal_id"] for r in
                         rev_d.get("/api/v1/observation/reviews").json()["items"]}


def test_no_grading_after_the_review_deadline(system, manager, cycle, users):
    manager.post("/api/v1/observation/reviews/auto-assign", json={"call_id": cycle["call"].id})
    t = now()
    calls.update_call(system, cycle["call"].id, opens_at=t - dt.timedelta(days=10),
                      closes_at=t - dt.timedelta(days=5),
                      review_deadline=t - dt.timedelta(seconds=1))
    rev_d = users.api(cycle["pool"][3])
    mine = rev_d.get("/api/v1/observation/reviews").json()["items"]
    assert rev_d.patch(f"/api/v1/observation/reviews/{mine[0]['id']}",
                       json={"grade": 2}).status_code == 403


def test_the_tac_sees_grades_only_after_the_review_deadline(system, manager, cycle, users):
    manager.post("/api/v1/observation/reviews/auto-assign", json={"call_id": cycle["call"].id})
    tac_user = users.create("tacmember")
    security.assign(system, user_id=tac_user.id, role="tac_member", scope_type="call",
                    scope_id=cycle["call"].id)
    tac = users.api(tac_user)
    assert tac.get("/api/v1/observation/reviews").json()["items"] == []
    t = now()
    calls.update_call(system, cycle["call"].id, opens_at=t - dt.timedelta(days=10),
                      closes_at=t - dt.timedelta(days=5),
                      review_deadline=t - dt.timedelta(seconds=1))
    seen = tac.get("/api/v1/observation/reviews").json()["items"]
    assert len(seen) == 8
    assert all(r["reviewer"].startswith("Reviewer ") for r in seen)  # anonymous to the TAC


def test_pis_never_see_reviews_or_reviewers(manager, cycle, users):
    manager.post("/api/v1/observation/reviews/auto-assign", json={"call_id": cycle["call"].id})
    pi = users.api(cycle["pis"][2])
    assert pi.get("/api/v1/observation/reviews").json()["items"] == []
    assert "rev-" not in pi.get(f"/api/v1/observation/proposals/{cycle['proposals'][2]}").text


def test_only_the_telescopes_managers_appoint_and_assign(users, cycle):
    astronomer = users.api("astronomer", "someone")
    assert astronomer.post(f"/api/v1/observation/calls/{cycle['call'].id}/appointments",
                           json={"username": "someone"}).status_code == 403
    assert astronomer.post("/api/v1/observation/reviews/auto-assign",
                           json={"call_id": cycle["call"].id}).status_code == 403


def _review(rid, pid, reviewer, grade):
    return Review(id=rid, proposal_id=pid, reviewer_id=reviewer, grade=grade, kind="science")


@pytest.mark.parametrize("method, expected", [
    ("none", {1: 1.5, 2: 3.0, 3: 3.5}),
    ("rank", {1: 1.0, 2: 3.0, 3: 5.0}),
])
def test_grades_are_normalised_per_reviewer(open_call, method, expected):
    open_call.review_setup = {**open_call.review_setup, "normalisation": method}
    # reviewer 10 is harsh, reviewer 20 is kind; both rank 1 < 2 < 3
    graded = [_review(1, 1, 10, 2.0), _review(2, 2, 10, 4.0), _review(3, 3, 10, 5.0),
              _review(4, 1, 20, 1.0), _review(5, 2, 20, 2.0), _review(6, 3, 20, 2.0)]
    if method == "rank":
        graded[-1].grade = 3.0
    assert reviews.normalised_grades(open_call, graded) == expected


def test_zscore_puts_a_harsh_and_a_kind_reviewer_on_one_scale(open_call):
    open_call.review_setup = {**open_call.review_setup, "normalisation": "zscore"}
    harsh = [_review(1, 1, 10, 3.0), _review(2, 2, 10, 5.0)]
    kind = [_review(3, 3, 20, 1.0), _review(4, 4, 20, 3.0)]
    scores = reviews.normalised_grades(open_call, harsh + kind)
    assert scores[1] == scores[3] and scores[2] == scores[4] and scores[1] < scores[2]


# ---- who is shown as a reviewer ---------------------------------------------------------------


def _two_reviewers_on(manager, cycle) -> int:
    """P3 reviewed by rev-c and rev-d (assigned by hand, in that order)."""
    p3 = cycle["proposals"][3]
    for name in ("rev-c", "rev-d"):
        added = manager.post("/api/v1/observation/reviews",
                             json={"proposal_id": p3, "username": name})
        assert added.status_code == 201, added.text
    return p3


def test_reviewers_see_each_other_as_labels_when_the_call_hides_them(manager, cycle, users):
    assert cycle["call"].review_setup["hide_reviewers_from_each_other"] is True  # default
    p3 = _two_reviewers_on(manager, cycle)
    rev_d = users.api(cycle["pool"][3])
    shown = rev_d.get(f"/api/v1/observation/proposals/{p3}/reviewers")
    assert shown.status_code == 200, shown.text
    assert [(r["reviewer"], r["named"]) for r in shown.json()["items"]] == [
        ("Reviewer 1", False), ("rev-d", True)]


def test_reviewers_see_each_other_by_name_when_the_call_does_not_hide_them(system, manager,
                                                                          cycle, users):
    calls.update_call(system, cycle["call"].id,
                      review_setup={"hide_reviewers_from_each_other": False})
    p3 = _two_reviewers_on(manager, cycle)
    rev_d = users.api(cycle["pool"][3])
    shown = rev_d.get(f"/api/v1/observation/proposals/{p3}/reviewers").json()["items"]
    assert [r["reviewer"] for r in shown] == ["rev-c", "rev-d"]
    # a reviewer not on the proposal does not even see it
    rev_b = users.api(cycle["pool"][1])
    assert rev_b.get(f"/api/v1/observation/proposals/{p3}/reviewers").status_code == 404


def test_the_pi_never_sees_reviewer_names_whatever_the_call_says(system, manager, cycle,
                                                                users):
    calls.update_call(system, cycle["call"].id,
                      review_setup={"hide_reviewers_from_each_other": False})
    p3 = _two_reviewers_on(manager, cycle)
    pi = users.api(cycle["pis"][3])
    shown = pi.get(f"/api/v1/observation/proposals/{p3}/reviewers")
    assert shown.status_code == 200, shown.text
    assert [r["reviewer"] for r in shown.json()["items"]] == ["Reviewer 1", "Reviewer 2"]
    assert "rev-" not in shown.text
    assert "rev-" not in pi.get(f"/observation/proposals/{p3}").text


def test_managers_identify_reviewers_and_the_tac_does_not(system, manager, cycle, users):
    p3 = _two_reviewers_on(manager, cycle)
    named = manager.get(f"/api/v1/observation/proposals/{p3}/reviewers").json()["items"]
    assert [r["reviewer"] for r in named] == ["rev-c", "rev-d"]
    tac_user = users.create("tacmember")
    security.assign(system, user_id=tac_user.id, role="tac_member", scope_type="call",
                    scope_id=cycle["call"].id)
    tac = users.api(tac_user)
    labels = tac.get(f"/api/v1/observation/proposals/{p3}/reviewers").json()["items"]
    assert [r["reviewer"] for r in labels] == ["Reviewer 1", "Reviewer 2"]


def test_the_tac_sees_the_reviews_table_on_the_manage_page_only_after_the_deadline(
        system, manager, cycle, users):
    p3 = _two_reviewers_on(manager, cycle)
    for user, grade in zip(cycle["pool"][2:], (1.5, 3.0), strict=True):
        reviewer = users.api(user)
        mine = reviewer.get("/api/v1/observation/reviews").json()["items"]
        graded = reviewer.patch(f"/api/v1/observation/reviews/{mine[0]['id']}",
                                json={"grade": grade, "comment": f"Comment by {user.username}"
                                                                 f" on P3."})
        assert graded.status_code == 200, graded.text
    tac_user = users.create("tacmember")
    security.assign(system, user_id=tac_user.id, role="tac_member", scope_type="call",
                    scope_id=cycle["call"].id)
    tac = users.api(tac_user)
    before = tac.get(f"/observation/calls/{cycle['call'].id}/manage").text
    assert "Comment by" not in before and "Normalised grade" not in before
    t = now()
    calls.update_call(system, cycle["call"].id, opens_at=t - dt.timedelta(days=10),
                      closes_at=t - dt.timedelta(days=5),
                      review_deadline=t - dt.timedelta(seconds=1))
    after = tac.get(f"/observation/calls/{cycle['call'].id}/manage").text
    assert "Normalised grade" in after
    assert "Comment by rev-c on P3." in after and "Comment by rev-d on P3." in after
    assert f'href="/observation/proposals/{p3}"' in after
    assert ">Reviewer 1<" in after and ">rev-c<" not in after  # graded, yet anonymous
    assert ">rev-c<" in manager.get(f"/observation/calls/{cycle['call'].id}/manage").text
