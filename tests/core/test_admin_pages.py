"""The admin area of the portal over real HTTP: the overview of usage figures, users and their
roles, roles and the policy editor, and the usage log. Who may see what is the services'
business; these tests check that the pages show it, that forms change it, and that refusals
and mistakes are explained on the page."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

import httpx
import pytest

from tests.conftest import PASSWORD

HTML = {"Accept": "text/html"}


# ---- helpers ----------------------------------------------------------------------------------


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def text_of(response: httpx.Response) -> str:
    """The page's text with entities decoded, for plain `in` checks."""
    return unescape(response.text)


def role_json(client: httpx.Client, name: str) -> dict:
    roles = client.get("/api/v1/roles").json()
    return next(r for r in roles if r["name"] == name)


def permission_json(client: httpx.Client, role: str, operation: str) -> dict:
    return next(p for p in role_json(client, role)["permissions"] if p["operation"] == operation)


def user_links(html: str) -> list[str]:
    return re.findall(r'href="/admin/users/(\d+)"', html)


@pytest.fixture
def admin(users) -> httpx.Client:
    """An admin's browser-like client (API token, asking for HTML)."""
    client = users.api("admin", username="ada")
    client.headers.update(HTML)
    return client


@pytest.fixture
def astronomer(users) -> httpx.Client:
    """An astronomer's client; refusals come back as problem+json unless HTML is asked for."""
    return users.api("astronomer", username="vega")


# ---- the overview -----------------------------------------------------------------------------


def test_an_admin_sees_the_usage_figures_and_the_sections_on_the_overview(admin):
    page = admin.get("/admin")
    assert page.status_code == 200, page.text
    text = text_of(page)
    for label in ("Registered users", "Active users", "Online now", "Sign-ins",
                  "Operations per channel", "Outcomes"):
        assert label in text
    for link in ('href="/admin/users"', 'href="/admin/roles"', 'href="/admin/usage"'):
        assert link in page.text


def test_the_overview_counts_registered_users(admin, users):
    users.create("altair")
    users.create("deneb")
    page = admin.get("/admin")
    figure = re.search(r"Registered users</h2><p class=\"figure\">(\d+)<", page.text)
    assert figure and int(figure.group(1)) == 3  # ada, altair, deneb


def test_an_operator_sees_the_overview(users):
    operator = users.api("operator")
    page = operator.get("/admin", headers=HTML)
    assert page.status_code == 200
    assert "Registered users" in page.text


def test_an_astronomer_is_refused_the_overview(astronomer):
    response = astronomer.get("/admin")
    assert response.status_code == 403
    assert response.json()["operation"] == "core.usage.stats"


# ---- who may enter ----------------------------------------------------------------------------


def test_an_astronomer_is_refused_the_user_list(astronomer):
    response = astronomer.get("/admin/users")
    assert response.status_code == 403
    assert response.json()["operation"] == "core.user.list"


def test_an_astronomer_refused_in_the_browser_gets_the_friendly_403_page(astronomer):
    page = astronomer.get("/admin/users", headers=HTML)
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "Permission denied" in page.text and "core.user.list" in text_of(page)


def test_an_astronomer_cannot_open_another_users_page(astronomer, users):
    # A single read goes through the listing's filter: what one may not see is not found.
    other = users.create("altair")
    assert astronomer.get(f"/admin/users/{other.id}").status_code == 404


def test_an_astronomer_may_see_roles_but_neither_the_admin_role_nor_the_editor(astronomer):
    # The default policy lets astronomers read roles except admin (core.role.list with the
    # rule name != 'admin'), so this page is open to them, read-only.
    page = astronomer.get("/admin/roles", headers=HTML)
    assert page.status_code == 200
    assert "<code>astronomer</code>" in page.text
    assert "<code>admin</code>" not in page.text
    assert "Create a role" not in page.text


def test_an_astronomer_gets_no_editor_on_a_roles_page(astronomer, users):
    role_id = role_json(users.api("admin", username="root"), "astronomer")["id"]
    page = astronomer.get(f"/admin/roles/{role_id}", headers=HTML)
    assert page.status_code == 200
    assert "<textarea" not in page.text
    assert "Grant a permission" not in page.text


def test_an_astronomer_is_refused_an_admin_form(astronomer, users):
    role_id = role_json(users.api("admin", username="root"), "astronomer")["id"]
    response = astronomer.post(f"/admin/roles/{role_id}/permissions",
                               data={"operation": "core.user.list", "rule": "true"})
    assert response.status_code == 403


def test_an_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get("/admin/users", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/admin/users"


# ---- users ------------------------------------------------------------------------------------


def test_an_admin_sees_the_users_with_their_status(admin, users):
    users.create("altair", institute="NAOC")
    page = admin.get("/admin/users")
    assert page.status_code == 200
    text = text_of(page)
    assert "altair@example.org" in text and "NAOC" in text
    assert "2 accounts" in text
    assert "Create an account" in text


def test_the_user_search_finds_by_institute(admin, users):
    users.create("altair", institute="Purple Mountain")
    users.create("deneb", institute="NAOC")
    page = admin.get("/admin/users", params={"q": "purple"})
    assert page.status_code == 200
    assert "altair" in page.text and "deneb" not in page.text
    assert "1 account" in page.text


def test_the_user_list_is_paginated(admin, users):
    for i in range(60):
        users.create(f"user{i:02d}", password=None)
    first = admin.get("/admin/users")
    assert "61 accounts" in first.text
    assert len(user_links(first.text)) == 50
    assert "Page 1 of 2" in first.text
    assert 'href="?page=2" rel="next"' in first.text
    second = admin.get("/admin/users", params={"page": 2})
    assert len(user_links(second.text)) == 11
    assert not set(user_links(first.text)) & set(user_links(second.text))
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text


def test_the_pager_keeps_the_search(admin, users):
    for i in range(55):
        users.create(f"star{i:02d}", password=None)
    page = admin.get("/admin/users", params={"q": "star"})
    assert "q=star&amp;page=2" in page.text


def test_an_operator_sees_the_users(users):
    users.create("altair")
    operator = users.api("operator")
    page = operator.get("/admin/users", headers=HTML)
    assert page.status_code == 200 and "altair" in page.text


def test_an_admin_creates_an_active_confirmed_account_through_the_form(admin, client):
    response = admin.post("/admin/users", data={
        "username": "sirius", "email": "sirius@example.org", "password": PASSWORD,
        "display_name": "Sirius Canis", "institute": "NAOC", "role": "observer"})
    assert response.status_code == 303
    location = response.headers["location"]
    assert re.match(r"/admin/users/\d+\?notice=", location)
    page = admin.get(location)
    text = text_of(page)
    assert "Sirius Canis" in text and "The account sirius is created." in text
    assert "observer" in text and "confirmed" in text
    created = admin.get(f"/api/v1/users/{location.split('/')[3].split('?')[0]}").json()
    assert created["is_active"] and created["email_verified"] and created["institute"] == "NAOC"
    token = csrf_from(client.get("/login").text)
    login = client.post("/login", data={"username": "sirius", "password": PASSWORD,
                                        "csrf_token": token})
    assert login.status_code == 303


def test_creating_an_account_with_bad_input_lists_every_problem_and_keeps_the_form(admin, users):
    users.create("taken")
    response = admin.post("/admin/users", data={
        "username": "taken", "email": "not-an-address", "password": "",
        "institute": "NAOC", "role": "astronomer"})
    assert response.status_code == 422
    text = text_of(response)
    assert "This user name is taken." in text
    assert 'id="email-error"' in response.text
    assert 'value="NAOC"' in response.text


def test_an_admin_sees_a_users_roles_and_groups(admin, users):
    altair = users.create("altair")
    member = users.api(altair)
    group = member.post("/api/v1/groups", json={"name": "lamost", "title": "LAMOST survey"})
    assert group.status_code == 201, group.text
    page = admin.get(f"/admin/users/{altair.id}")
    assert page.status_code == 200
    text = text_of(page)
    assert "altair@example.org" in text
    assert "LAMOST survey" in text and f'href="/groups/{group.json()["id"]}"' in text
    assert "Astronomer" in text and "everywhere" in text


def test_an_admin_deactivates_an_account_and_activates_it_again(admin, users):
    altair = users.create("altair")
    response = admin.post(f"/admin/users/{altair.id}", data={"is_active": "0"})
    assert response.status_code == 303
    assert "deactivated" in text_of(admin.get(response.headers["location"]))
    assert admin.get(f"/api/v1/users/{altair.id}").json()["is_active"] is False
    admin.post(f"/admin/users/{altair.id}", data={"is_active": "1"})
    assert admin.get(f"/api/v1/users/{altair.id}").json()["is_active"] is True


def test_an_admin_changes_a_users_name_and_institute(admin, users):
    altair = users.create("altair")
    response = admin.post(f"/admin/users/{altair.id}",
                          data={"display_name": "Altair Aquilae", "institute": "YNAO"})
    assert response.status_code == 303
    page = admin.get(f"/admin/users/{altair.id}")
    assert 'value="Altair Aquilae"' in page.text and 'value="YNAO"' in page.text
    assert admin.get(f"/api/v1/users/{altair.id}").json()["is_active"] is True


def test_deactivating_ones_own_account_is_refused_on_the_page(admin):
    response = admin.post(f"/admin/users/{admin.user.id}", data={"is_active": "0"})
    assert response.status_code == 422
    assert "You cannot deactivate your own account." in text_of(response)


def test_an_admin_gives_a_role_and_takes_it_away(admin, users):
    altair = users.create("altair")
    operator_link = f'href="/admin/roles/{role_json(admin, "operator")["id"]}"'
    given = admin.post(f"/admin/users/{altair.id}/roles", data={"role": "operator"})
    assert given.status_code == 303
    page = admin.get(f"/admin/users/{altair.id}")
    assert operator_link in page.text
    roles = admin.get(f"/api/v1/users/{altair.id}/roles").json()
    assert {r["role"] for r in roles} == {"astronomer", "operator"}
    assignment = next(r["id"] for r in roles if r["role"] == "operator")
    assert f'action="/admin/role-assignments/{assignment}/delete"' in page.text
    taken = admin.post(f"/admin/role-assignments/{assignment}/delete",
                       data={"user_id": str(altair.id)})
    assert taken.status_code == 303
    assert taken.headers["location"].startswith(f"/admin/users/{altair.id}?")
    assert operator_link not in admin.get(f"/admin/users/{altair.id}").text
    assert {r["role"] for r in admin.get(f"/api/v1/users/{altair.id}/roles").json()} == \
        {"astronomer"}


def test_an_admin_gives_a_role_within_a_scope(admin, users):
    altair = users.create("altair")
    response = admin.post(f"/admin/users/{altair.id}/roles",
                          data={"role": "reviewer", "scope_type": "call", "scope_id": "7"})
    assert response.status_code == 303
    assert "call 7" in text_of(admin.get(f"/admin/users/{altair.id}"))


def test_a_scoped_role_without_its_scope_id_is_explained(admin, users):
    altair = users.create("altair")
    response = admin.post(f"/admin/users/{altair.id}/roles",
                          data={"role": "reviewer", "scope_type": "call", "scope_id": ""})
    assert response.status_code == 422
    assert "Give the id of the call." in text_of(response)


def test_giving_a_role_twice_is_explained_on_the_page(admin, users):
    altair = users.create("altair")
    response = admin.post(f"/admin/users/{altair.id}/roles", data={"role": "astronomer"})
    assert response.status_code == 409
    assert "altair has this role already." in text_of(response)


def test_an_admin_cannot_take_their_own_admin_role_and_is_told_why(admin):
    roles = admin.get(f"/api/v1/users/{admin.user.id}/roles").json()
    assignment = next(r["id"] for r in roles if r["role"] == "admin")
    response = admin.post(f"/admin/role-assignments/{assignment}/delete",
                          data={"user_id": str(admin.user.id)})
    assert response.status_code == 409
    assert "You cannot take the admin role from yourself" in text_of(response)


# ---- roles and the policy editor --------------------------------------------------------------


def test_an_admin_sees_every_role_with_its_permission_count(admin):
    page = admin.get("/admin/roles")
    assert page.status_code == 200
    for name in ("admin", "operator", "astronomer", "reviewer", "public"):
        assert f"<code>{name}</code>" in page.text
    operator = role_json(admin, "operator")
    row = re.search(rf'href="/admin/roles/{operator["id"]}".*?<td class="num">(\d+)</td>',
                    page.text, re.S)
    assert row and int(row.group(1)) == len(operator["permissions"])


def test_the_policy_editor_shows_rules_operations_and_the_cheat_sheet(admin):
    role = role_json(admin, "astronomer")
    page = admin.get(f"/admin/roles/{role['id']}")
    assert page.status_code == 200
    text = text_of(page)
    perm = permission_json(admin, "astronomer", "core.group.update")
    assert f'action="/admin/permissions/{perm["id"]}"' in page.text
    assert f'form="perm-{perm["id"]}"' in page.text
    assert "subject.id in manager_ids" in text
    assert '<datalist id="operation-list">' in page.text
    assert re.search(r'<option value="core\.user\.list">filter · user', page.text)
    assert re.search(r'<option value="core\.user\.create">prerequisite', page.text)
    assert "Writing rules" in text and "subject.group_ids" in text and "days(n)" in text
    assert "<code>manager_ids</code>" in page.text  # an attribute of the group resource


def test_an_admin_changes_a_rule_through_the_form_and_the_page_shows_it(admin):
    perm = permission_json(admin, "astronomer", "core.group.update")
    new_rule = "subject.id in manager_ids and kind != 'institute'"
    response = admin.post(f"/admin/permissions/{perm['id']}",
                          data={"rule": new_rule, "description": "Managers, not institutes."})
    assert response.status_code == 303
    page = admin.get(response.headers["location"])
    text = text_of(page)
    assert new_rule in text and "Managers, not institutes." in text
    assert "it applies from the next request" in text
    assert permission_json(admin, "astronomer", "core.group.update")["rule"] == new_rule


def test_an_invalid_rule_is_refused_with_its_column_and_nothing_changes(admin):
    perm = permission_json(admin, "astronomer", "core.group.update")
    bad = "subject.id in manager_ids or title = 1"
    response = admin.post(f"/admin/permissions/{perm['id']}", data={"rule": bad})
    assert response.status_code == 422
    text = text_of(response)
    assert "The rule does not work for core.group.update" in text
    assert "(at column 36)" in text
    assert f'id="rule-{perm["id"]}-error"' in response.text
    assert bad in text  # the editor keeps what was typed, to correct it
    assert permission_json(admin, "astronomer", "core.group.update")["rule"] == perm["rule"]


def test_an_admin_grants_a_permission_through_the_form(admin):
    role = role_json(admin, "reviewer")
    response = admin.post(f"/admin/roles/{role['id']}/permissions", data={
        "operation": "core.user.list", "rule": "is_active == true",
        "description": "Reviewers see active accounts."})
    assert response.status_code == 303
    text = text_of(admin.get(response.headers["location"]))
    assert "core.user.list" in text and "is_active == true" in text
    assert permission_json(admin, "reviewer", "core.user.list")["rule"] == "is_active == true"


def test_granting_an_unknown_operation_is_explained_and_keeps_the_form(admin):
    role = role_json(admin, "reviewer")
    response = admin.post(f"/admin/roles/{role['id']}/permissions",
                          data={"operation": "core.nothing.here", "rule": "true"})
    assert response.status_code == 422
    assert "There is no operation “core.nothing.here”" in text_of(response)
    assert 'value="core.nothing.here"' in response.text


def test_an_admin_withdraws_a_permission(admin):
    perm = permission_json(admin, "astronomer", "core.group.delete")
    response = admin.post(f"/admin/permissions/{perm['id']}/delete")
    assert response.status_code == 303
    page = admin.get(response.headers["location"])
    assert f'id="permission-{perm["id"]}"' not in page.text
    ops = [p["operation"] for p in role_json(admin, "astronomer")["permissions"]]
    assert "core.group.delete" not in ops


def test_an_admin_creates_a_role_and_deletes_it(admin):
    response = admin.post("/admin/roles", data={
        "name": "archivist", "title": "Archivist", "description": "Keeps the archive.",
        "scope_types": ["telescope"]})
    assert response.status_code == 303
    page = admin.get(response.headers["location"])
    assert "Archivist" in page.text and "The role archivist is created." in text_of(page)
    role = role_json(admin, "archivist")
    assert role["scope_types"] == "telescope" and role["builtin"] is False
    deleted = admin.post(f"/admin/roles/{role['id']}/delete")
    assert deleted.status_code == 303
    assert "<code>archivist</code>" not in admin.get("/admin/roles").text


def test_a_role_with_a_bad_name_is_refused_on_the_form(admin):
    response = admin.post("/admin/roles", data={"name": "Bad Name"})
    assert response.status_code == 422
    assert 'id="name-error"' in response.text
    assert 'value="Bad Name"' in response.text


def test_a_built_in_role_cannot_be_deleted_and_the_page_says_why(admin):
    role = role_json(admin, "reviewer")
    response = admin.post(f"/admin/roles/{role['id']}/delete")
    assert response.status_code == 409
    assert "Built-in roles cannot be deleted" in text_of(response)
    assert "Proposal reviewer" in response.text  # the role page, not a bare error page
    assert role_json(admin, "reviewer")["id"] == role["id"]


def test_an_admin_edits_a_role_through_a_signed_in_browser_session(users, client):
    users.create("ada", role="admin")
    token = csrf_from(client.get("/login").text)
    assert client.post("/login", data={"username": "ada", "password": PASSWORD,
                                       "csrf_token": token}).status_code == 303
    perm = permission_json(users.api("admin", username="root"), "astronomer",
                           "core.group.update")
    editor = client.get(f"/admin/roles/{perm['role_id']}", headers=HTML)
    assert editor.status_code == 200
    response = client.post(f"/admin/permissions/{perm['id']}", data={
        "rule": "subject.id in member_ids", "description": perm["description"],
        "csrf_token": csrf_from(editor.text)})
    assert response.status_code == 303
    assert "subject.id in member_ids" in client.get(response.headers["location"]).text


def test_a_form_without_its_csrf_token_is_refused_in_a_browser_session(users, client):
    users.create("ada", role="admin")
    token = csrf_from(client.get("/login").text)
    client.post("/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token})
    response = client.post("/admin/roles", data={"name": "forged"}, headers=HTML)
    assert response.status_code == 403
    assert "This form has expired" in text_of(response)


# ---- the usage log ----------------------------------------------------------------------------


def test_an_admin_sees_the_usage_log(admin, astronomer):
    astronomer.get("/admin/users")  # a denied core.user.list
    page = admin.get("/admin/usage")
    assert page.status_code == 200
    text = text_of(page)
    assert "core.user.list" in text and "vega" in text and "denied" in text


def test_the_usage_log_filters_by_operation_with_a_wildcard(admin):
    admin.get("/admin/users")
    admin.get("/admin/roles")
    page = admin.get("/admin/usage", params={"operation": "core.role.*"})
    assert page.status_code == 200
    assert "<code>core.role.list</code>" in page.text
    assert "<code>core.user.list</code>" not in page.text


def test_the_usage_log_filters_by_outcome_and_user(admin, astronomer, users):
    astronomer.get("/admin/users")
    admin.get("/admin/users")
    vega = astronomer.user
    page = admin.get("/admin/usage", params={"outcome": "denied", "user_id": vega.id})
    rows = re.findall(r"<tr>\s*<td>.*?</tr>", page.text, re.S)
    assert rows, page.text
    assert all("vega" in row and "denied" in row for row in rows)
    assert "1 entry" in page.text


def test_the_usage_log_filters_by_date(admin):
    admin.get("/admin/users")
    today = dt.datetime.now(dt.UTC).date()
    tomorrow, yesterday = today + dt.timedelta(days=1), today - dt.timedelta(days=1)
    assert "No entries match." in admin.get("/admin/usage", params={"since": tomorrow}).text
    assert "No entries match." in admin.get("/admin/usage", params={"until": yesterday}).text
    both = admin.get("/admin/usage", params={"since": today, "until": today})
    assert "<code>core.user.list</code>" in both.text


def test_empty_filters_from_the_form_are_no_filters(admin):
    admin.get("/admin/users")
    page = admin.get("/admin/usage?user_id=&operation=&channel=&outcome=&since=&until=")
    assert page.status_code == 200
    assert "<code>core.user.list</code>" in page.text


def test_an_unknown_outcome_is_explained(admin):
    page = admin.get("/admin/usage", params={"outcome": "maybe"})
    assert page.status_code == 422
    assert "Unknown outcome" in text_of(page)


def test_the_usage_log_is_paginated_and_the_pager_keeps_the_filters(admin):
    for _ in range(55):
        admin.get("/api/v1/roles")
    page = admin.get("/admin/usage", params={"operation": "core.role.list"})
    assert "Page 1 of 2" in page.text
    assert "operation=core.role.list&amp;page=2" in page.text


def test_an_astronomer_sees_only_their_own_usage(astronomer, users):
    users.api("admin", username="root").get("/admin/users")
    astronomer.get("/api/v1/me")
    page = astronomer.get("/admin/usage")
    assert page.status_code == 200
    assert "core.me.read" in page.text
    assert "root" not in page.text
    assert 'aria-label="Administration"' not in page.text  # no admin navigation for them


def test_an_operator_sees_a_users_roles_but_is_offered_no_role_changes(users):
    altair = users.create("altair")
    operator = users.api("operator")
    page = operator.get(f"/admin/users/{altair.id}", headers=HTML)
    assert page.status_code == 200
    assert "Astronomer" in page.text
    assert "Give a role" not in page.text and "/admin/role-assignments/" not in page.text


def test_an_operator_reads_the_policies_without_an_editor(users):
    operator = users.api("operator")
    role_id = role_json(operator, "astronomer")["id"]
    page = operator.get(f"/admin/roles/{role_id}", headers=HTML)
    assert page.status_code == 200
    assert "subject.id in manager_ids" in text_of(page)
    assert "<textarea" not in page.text and "Role settings" not in page.text

