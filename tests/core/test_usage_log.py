"""The usage log: every operation call is recorded whatever its outcome (who, which operation,
on what, outcome, duration, client address, door), and the log is read back through the API —
paginated and filtered for operators, one's own entries for everyone else — with the usage
figures behind the statistics page."""

from __future__ import annotations

import re

import httpx
import pytest
import sqlalchemy as sa

from astrocloud.core.identity.models import Group, GroupMember
from astrocloud.core.usage.models import UsageEvent
from tests.conftest import PASSWORD


def events(database, **where) -> list[UsageEvent]:
    """Usage events straight from the database, oldest first."""
    with database.session(write=False) as session:
        stmt = sa.select(UsageEvent).order_by(UsageEvent.id)
        for column, value in where.items():
            stmt = stmt.where(getattr(UsageEvent, column) == value)
        return list(session.scalars(stmt))


def web_login(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert match, "the sign-in page has no CSRF field"
    return client.post("/login", data={"username": username, "password": password,
                                       "next": "/dashboard", "csrf_token": match.group(1)})


def listing(api: httpx.Client, **params) -> dict:
    response = api.get("/api/v1/usage", params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def admin(users) -> httpx.Client:
    return users.api("admin")


# ---- recording --------------------------------------------------------------------------------


def test_an_api_call_is_recorded_with_who_what_target_outcome_duration_address_and_door(
        users, database):
    vega = users.api("astronomer", username="vega")
    response = vega.post("/api/v1/groups", json={"name": "lamost", "title": "LAMOST"})
    assert response.status_code == 201, response.text
    [event] = events(database, operation="core.group.create")
    assert (event.user_id, event.username) == (vega.user.id, "vega")
    assert event.channel == "core"
    assert (event.target_type, event.target_id) == ("group", str(response.json()["id"]))
    assert event.outcome == "ok"
    assert event.duration_ms > 0
    assert event.client_addr == "127.0.0.1"
    assert event.via == "api"
    assert event.at is not None


def test_a_denied_call_is_recorded_as_denied_and_changes_nothing(users, database):
    owner = users.api("astronomer", username="owner")
    group_id = owner.post("/api/v1/groups", json={"name": "lamost", "title": "LAMOST"}).json()["id"]
    intruder = users.api("astronomer", username="intruder")
    before = len(events(database))

    response = intruder.delete(f"/api/v1/groups/{group_id}")

    assert response.status_code == 403, response.text
    new = events(database)[before:]
    assert [(e.operation, e.outcome, e.user_id, e.target_id) for e in new] == [
        ("core.group.delete", "denied", intruder.user.id, str(group_id))]
    assert new[0].detail  # the reason is kept
    with database.session(write=False) as session:
        assert session.scalar(sa.select(Group.title).where(Group.id == group_id)) == "LAMOST"
        assert session.scalar(sa.select(sa.func.count()).select_from(GroupMember)
                              .where(GroupMember.group_id == group_id)) == 1


def test_an_anonymous_call_to_a_protected_operation_is_recorded_as_unauthenticated(
        client, database):
    response = client.post("/api/v1/groups", json={"name": "lamost", "title": "LAMOST"})
    assert response.status_code == 401, response.text
    [event] = events(database, operation="core.group.create")
    assert event.outcome == "unauthenticated"
    assert event.user_id is None
    assert event.client_addr == "127.0.0.1"
    with database.session(write=False) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Group)) == 0


def test_an_invalid_call_is_recorded_as_invalid_with_its_reason(users, database):
    vega = users.api("astronomer", username="vega")
    response = vega.post("/api/v1/groups", json={"name": "No Spaces!", "title": "x"})
    assert response.status_code == 422, response.text
    [event] = events(database, operation="core.group.create")
    assert event.outcome == "invalid"
    assert event.detail


def test_a_call_made_by_the_platform_itself_is_recorded_as_coming_from_the_cli(
        system, database):
    from astrocloud.core.identity import services as identity

    identity.create_group(system, name="lamost", title="LAMOST")
    [event] = events(database, operation="core.group.create")
    assert (event.via, event.user_id, event.outcome) == ("cli", None, "ok")


# ---- the admin listing ------------------------------------------------------------------------


def test_the_listing_paginates_newest_first_with_a_stable_total(users, admin):
    vega = users.api("astronomer", username="vega")
    for _ in range(5):
        assert vega.get("/api/v1/me").status_code == 200
    pages = [listing(admin, operation="core.me.read", per_page=2, page=n) for n in (1, 2, 3)]
    assert [(p["total"], p["page"], p["per_page"]) for p in pages] == [
        (5, 1, 2), (5, 2, 2), (5, 3, 2)]
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    ids = [item["id"] for p in pages for item in p["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 5
    assert listing(admin, operation="core.me.read", per_page=2, page=4)["items"] == []


def test_the_listing_items_carry_every_recorded_field(users, admin):
    vega = users.api("astronomer", username="vega")
    vega.get("/api/v1/me")
    [item] = listing(admin, operation="core.me.read")["items"]
    assert item["user_id"] == vega.user.id
    assert item["username"] == "vega"
    assert (item["operation"], item["channel"], item["outcome"]) == ("core.me.read", "core", "ok")
    assert (item["target_type"], item["target_id"]) == ("user", str(vega.user.id))
    assert item["client_addr"] == "127.0.0.1" and item["via"] == "api"
    assert item["duration_ms"] > 0 and item["at"]


def test_the_operation_filter_takes_a_star_wildcard(users, admin, database):
    vega = users.api("astronomer", username="vega")
    vega.post("/api/v1/groups", json={"name": "lamost", "title": "LAMOST"})
    vega.get("/api/v1/groups")
    vega.get("/api/v1/me")
    recorded = [e.operation for e in events(database) if e.operation.startswith("core.group.")]
    groups = listing(admin, operation="core.group.*")
    assert {i["operation"] for i in groups["items"]} == {"core.group.create", "core.group.list"}
    assert groups["total"] == len(recorded) >= 2
    reads = listing(admin, operation="core.*.read")
    assert {i["operation"] for i in reads["items"]} == {"core.me.read"}


def test_the_operation_filter_without_a_star_matches_exactly(users, admin):
    vega = users.api("astronomer", username="vega")
    vega.post("/api/v1/groups", json={"name": "lamost", "title": "LAMOST"})
    assert listing(admin, operation="core.group.create")["total"] == 1
    assert listing(admin, operation="core.group")["total"] == 0


def test_the_outcome_filter_keeps_only_that_outcome(users, admin, client):
    client.post("/api/v1/groups", json={"name": "lamost", "title": "LAMOST"})
    users.api("astronomer", username="vega").get("/api/v1/usage/stats")
    denied = listing(admin, outcome="denied")
    assert denied["total"] == 1
    assert [(i["operation"], i["outcome"]) for i in denied["items"]] == [
        ("core.usage.stats", "denied")]
    unauthenticated = listing(admin, outcome="unauthenticated")
    assert [i["operation"] for i in unauthenticated["items"]] == ["core.group.create"]


def test_an_unknown_outcome_is_refused_with_the_choices(admin):
    response = admin.get("/api/v1/usage", params={"outcome": "exploded"})
    assert response.status_code == 422
    assert "denied" in response.json()["detail"]


def test_the_channel_filter_keeps_only_that_channel(users, admin, database):
    users.api("astronomer", username="vega").get("/api/v1/me")
    with database.session() as session:  # a channel's operation, as a channel would record it
        session.add(UsageEvent(operation="data.archive.ingest", channel="data", outcome="ok",
                               via="worker"))
    data = listing(admin, channel="data")
    assert [(i["operation"], i["channel"]) for i in data["items"]] == [
        ("data.archive.ingest", "data")]
    core = listing(admin, channel="core")
    assert core["total"] >= 1
    assert {i["channel"] for i in core["items"]} == {"core"}


def test_the_user_filter_keeps_only_that_users_events(users, admin, database):
    vega = users.api("astronomer", username="vega")
    rigel = users.api("astronomer", username="rigel")
    vega.get("/api/v1/me")
    rigel.get("/api/v1/me")
    rigel.get("/api/v1/groups")
    result = listing(admin, user_id=rigel.user.id)
    assert {i["user_id"] for i in result["items"]} == {rigel.user.id}
    assert result["total"] == len(events(database, user_id=rigel.user.id)) == 2


# ---- who may read the log ---------------------------------------------------------------------


def test_an_astronomer_sees_only_their_own_events(users, database):
    vega = users.api("astronomer", username="vega")
    rigel = users.api("astronomer", username="rigel")
    rigel.get("/api/v1/me")
    vega.get("/api/v1/me")
    vega.post("/api/v1/groups", json={"name": "lamost", "title": "LAMOST"})
    recorded = len(events(database, user_id=vega.user.id))
    own = listing(vega)
    assert own["total"] == recorded >= 2
    assert {i["user_id"] for i in own["items"]} == {vega.user.id}
    assert listing(vega, user_id=rigel.user.id)["total"] == 0


def test_an_anonymous_visitor_is_asked_to_sign_in_to_read_the_log(client, users):
    users.api("astronomer", username="vega").get("/api/v1/me")
    response = client.get("/api/v1/usage")
    assert response.status_code == 401
    assert "items" not in response.json()


# ---- statistics -------------------------------------------------------------------------------


def test_an_admin_gets_registered_and_online_users_and_sign_ins(users, admin, live_server):
    users.create("vega")
    users.create("rigel")
    users.create("pipeline", service=True)
    with httpx.Client(base_url=live_server) as browser:
        assert web_login(browser, "vega").status_code == 303
    with httpx.Client(base_url=live_server) as browser:
        assert web_login(browser, "rigel", "not-the-password").status_code == 422

    response = admin.get("/api/v1/usage/stats")

    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["registered_users"] == 3  # admin1, vega, rigel; not the service account
    assert stats["online_users"] == 1
    assert stats["logins"] == 1
    assert stats["failed_logins"] == 1
    assert stats["operations_per_channel"]["core"] > 0
    assert stats["outcomes"]["ok"] > 0 and stats["outcomes"]["invalid"] == 1


def test_an_astronomer_may_not_see_the_statistics(users, database):
    vega = users.api("astronomer", username="vega")
    response = vega.get("/api/v1/usage/stats")
    assert response.status_code == 403
    [event] = events(database, operation="core.usage.stats")
    assert (event.user_id, event.outcome) == (vega.user.id, "denied")
