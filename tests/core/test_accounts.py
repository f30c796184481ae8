"""Accounts over real HTTP with real mail: sign-up, verification, sign-in, throttling, password
reset, sessions with CSRF protection, personal API tokens (Bearer and HTTP Basic)."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
import sqlalchemy as sa

from astrocloud.core.identity.models import ApiToken, User
from tests.conftest import PASSWORD


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def web_login(client: httpx.Client, username: str, password: str = PASSWORD,
              next_url: str = "/dashboard") -> httpx.Response:
    token = csrf_from(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password,
                                       "next": next_url, "csrf_token": token})


def register(client: httpx.Client, username="vega", email="vega@example.org", **extra):
    body = {"username": username, "email": email, "password": PASSWORD, **extra}
    return client.post("/api/v1/account/register", json=body)


# ---- sign-up and verification -----------------------------------------------------------------


def test_sign_up_sends_a_verification_mail_whose_link_confirms_the_address(client, smtp, users):
    response = register(client, display_name="Vega Lyrae")
    assert response.status_code == 201, response.text
    assert response.json()["email_verified"] is False
    link = smtp.link("vega@example.org", "/account/verify?token=")
    page = client.get(link.replace(str(client.base_url), ""))
    assert page.status_code == 200
    assert "Address confirmed" in page.text
    assert web_login(client, "vega").status_code == 303
    me = client.get("/api/v1/me").json()
    assert me["username"] == "vega" and me["email_verified"] is True
    assert [r["role"] for r in me["roles"]] == ["astronomer"]


def test_sign_in_before_verification_is_refused_with_a_way_forward(client, smtp):
    register(client)
    response = web_login(client, "vega")
    assert response.status_code == 403
    assert "confirm your e-mail address" in response.text
    assert "/account/resend" in response.text


def test_a_verification_link_works_once(client, smtp):
    register(client)
    link = smtp.link("vega@example.org", "/account/verify")
    assert client.get(link).status_code == 200
    again = client.get(link)
    assert again.status_code == 400
    assert "not valid any more" in again.text


def test_resending_the_verification_mail_sends_a_new_working_link(client, smtp):
    register(client)
    smtp.clear()
    assert client.post("/api/v1/account/resend-verification",
                       json={"email": "vega@example.org"}).status_code == 202
    assert client.get(smtp.link("vega@example.org", "/account/verify")).status_code == 200


def test_sign_up_lists_every_problem_at_once_and_writes_nothing(client, users, database):
    users.create("taken")
    response = client.post("/api/v1/account/register", json={
        "username": "taken", "email": "not-an-address", "password": "short"})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"username", "email", "password"}
    with database.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_the_sign_up_form_shows_errors_next_to_the_fields(client):
    token = csrf_from(client.get("/signup").text)
    response = client.post("/signup", data={"username": "X", "email": "x", "password": "p",
                                            "csrf_token": token})
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.text
    assert "This is not a valid e-mail address." in response.text


def test_passwords_are_stored_as_argon2_hashes(client, smtp, database):
    register(client)
    with database.session() as s:
        stored = s.scalar(sa.select(User.password_hash).where(User.username == "vega"))
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


# ---- sign-in, sessions and CSRF ---------------------------------------------------------------


def test_signing_in_sets_a_protected_session_cookie(client, users):
    users.create("lyra")
    response = web_login(client, "lyra")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = next(h for h in response.headers.get_list("set-cookie")
                  if h.startswith("astrocloud_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert client.get("/dashboard").status_code == 200


def test_sign_in_accepts_the_e_mail_address_too(client, users):
    users.create("lyra")
    assert web_login(client, "lyra@example.org").status_code == 303


def test_a_wrong_password_is_refused_without_saying_which_part_is_wrong(client, users):
    users.create("lyra")
    wrong_password = web_login(client, "lyra", "not-the-password")
    unknown_user = web_login(client, "nobody", "not-the-password")
    assert wrong_password.status_code == unknown_user.status_code == 422
    assert "The user name or the password is not right." in wrong_password.text
    assert "The user name or the password is not right." in unknown_user.text


def test_repeated_failures_are_throttled(client, users):
    users.create("lyra")
    for _ in range(5):
        assert web_login(client, "lyra", "wrong-password").status_code == 422
    blocked = web_login(client, "lyra")
    assert blocked.status_code == 429
    assert "Too many failed sign-in attempts" in blocked.text
    api = client.post("/api/v1/account/password-reset", json={"email": "lyra@example.org"})
    assert api.status_code == 202  # the way out still works


def test_sign_in_redirects_only_to_local_pages(client, users):
    users.create("lyra")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = web_login(client, "lyra", next_url=target)
        assert response.headers["location"] == "/dashboard"
        client.cookies.clear()
    assert web_login(client, "lyra", next_url="/groups?q=x").headers["location"] == "/groups?q=x"


def test_signing_out_ends_the_session(client, users):
    users.create("lyra")
    web_login(client, "lyra")
    token = csrf_from(client.get("/dashboard").text)
    session = client.cookies.get("astrocloud_session")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    client.cookies.set("astrocloud_session", session)  # even a kept copy no longer works
    assert client.get("/api/v1/me").status_code == 401


def test_a_cookie_authenticated_write_needs_the_csrf_token(client, users):
    users.create("lyra")
    web_login(client, "lyra")
    refused = client.post("/api/v1/groups", json={"name": "g1", "title": "G"})
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/csrf-failed"
    token = csrf_from(client.get("/dashboard").text)
    accepted = client.post("/api/v1/groups", json={"name": "g1", "title": "G"},
                           headers={"X-CSRF-Token": token})
    assert accepted.status_code == 201


def test_a_token_authenticated_write_needs_no_csrf_token(users):
    api = users.api("astronomer", "lyra")
    assert api.post("/api/v1/groups", json={"name": "g1", "title": "G"}).status_code == 201


def test_a_forged_form_post_is_refused(client, users):
    users.create("lyra")
    web_login(client, "lyra")
    response = client.post("/groups", data={"name": "g1", "title": "G", "csrf_token": "forged"},
                           headers={"Accept": "text/html"})
    assert response.status_code == 403
    assert "This form has expired" in response.text


# ---- password reset ---------------------------------------------------------------------------


def test_a_password_reset_link_sets_a_new_password_and_ends_old_sessions(client, users, smtp):
    users.create("lyra")
    other_browser = httpx.Client(base_url=str(client.base_url))
    web_login(other_browser, "lyra")
    assert client.post("/api/v1/account/password-reset",
                       json={"email": "lyra@example.org"}).status_code == 202
    link = smtp.link("lyra@example.org", "/account/reset?token=")
    form = client.get(link)
    token = re.search(r'name="token" value="([^"]+)"', form.text).group(1)
    done = client.post("/account/reset", data={"token": token, "password": "a-brand-new-secret",
                                               "csrf_token": csrf_from(form.text)})
    assert done.status_code == 200 and "Password changed" in done.text
    assert other_browser.get("/api/v1/me").status_code == 401
    assert web_login(client, "lyra").status_code == 422
    assert web_login(client, "lyra", "a-brand-new-secret").status_code == 303
    other_browser.close()


def test_a_reset_for_an_unknown_address_answers_the_same_and_sends_nothing(client, smtp):
    response = client.post("/api/v1/account/password-reset", json={"email": "who@example.org"})
    assert response.status_code == 202
    assert smtp.messages == []


# ---- API tokens -------------------------------------------------------------------------------


def test_api_tokens_are_shown_once_and_stored_hashed(users, database):
    api = users.api("astronomer", "lyra")
    created = api.post("/api/v1/tokens", json={"name": "pyvo"}).json()
    raw = created["token"]
    assert raw.startswith("ac_") and created["prefix"] == raw[:10]
    listed = api.get("/api/v1/tokens").json()
    assert all("token" not in t for t in listed)
    with database.session() as s:
        hashes = s.scalars(sa.select(ApiToken.token_hash)).all()
    assert raw not in hashes and all(raw not in h for h in hashes)


def test_a_revoked_token_stops_working_at_once(users, live_server):
    api = users.api("astronomer", "lyra")
    created = api.post("/api/v1/tokens", json={"name": "temp"}).json()
    with httpx.Client(base_url=live_server,
                      headers={"Authorization": f"Bearer {created['token']}"}) as other:
        assert other.get("/api/v1/me").status_code == 200
        assert api.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
        response = other.get("/api/v1/me")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_a_token_works_as_the_password_of_http_basic(users, live_server):
    user = users.create("lyra")
    token = users.token(user)
    assert httpx.get(f"{live_server}/api/v1/me", auth=("lyra", token)).json()["username"] == "lyra"
    assert httpx.get(f"{live_server}/api/v1/me", auth=("someone", token)).status_code == 401
    assert httpx.get(f"{live_server}/api/v1/me", auth=("lyra", PASSWORD)).status_code == 401


def test_someone_elses_token_cannot_be_revoked(users):
    owner = users.api("astronomer", "owner")
    theirs = owner.post("/api/v1/tokens", json={"name": "x"}).json()
    intruder = users.api("astronomer", "intruder")
    assert intruder.delete(f"/api/v1/tokens/{theirs['id']}").status_code == 404


def test_a_deactivated_account_loses_its_tokens_and_sessions(users, client):
    lyra = users.create("lyra")
    token = users.token(lyra)
    web_login(client, "lyra")
    admin = users.api("admin", "root")
    assert admin.patch(f"/api/v1/users/{lyra.id}", json={"is_active": False}).status_code == 200
    assert client.get("/api/v1/me").status_code == 401
    bearer = httpx.get(f"{client.base_url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 401


def test_secrets_never_reach_the_log(client, smtp, users, caplog):
    caplog.set_level(logging.DEBUG)
    register(client)
    web_login(client, "vega")
    api = users.api("astronomer", "lyra")
    raw = api.post("/api/v1/tokens", json={"name": "x"}).json()["token"]
    text = caplog.text
    assert PASSWORD not in text
    assert raw not in text


@pytest.mark.parametrize("header", ["Bearer", "Basic !!!", "Digest abc", "Bearer " + "x" * 500])
def test_malformed_credentials_are_a_clear_401(live_server, header):
    response = httpx.get(f"{live_server}/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "WWW-Authenticate" in response.headers
