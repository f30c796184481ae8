"""Single sign-on ("Passport") end to end against a real OpenID Connect provider on loopback
(built with authlib's server components, tests/support/oidc_provider.py):
the first sign-in creates or links the account, later ones find it, and every way the
protocol can go wrong ends on a clear page, never a signed-in session."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from astrocloud.core.config import OIDCProviderSettings
from astrocloud.core.identity import oidc
from tests.support.oidc_provider import OIDCProvider


@pytest.fixture
def provider(settings, live_server):
    with OIDCProvider(redirect_uris=[f"{live_server}/auth/oidc/passport/callback"],
                      auto_approve=True) as p:
        settings.oidc_providers = [OIDCProviderSettings(
            name="passport", title="CSTNET Passport", issuer=p.issuer, client_id=p.client_id,
            client_secret=p.client_secret)]
        oidc._metadata_cache.clear()
        yield p
        settings.oidc_providers = []
        oidc._metadata_cache.clear()


def sign_in(live_server) -> httpx.Client:
    client = httpx.Client(base_url=live_server, follow_redirects=True, timeout=30)
    response = client.get("/auth/oidc/passport/login", params={"next": "/account"})
    client.last = response
    return client


def test_the_first_sso_sign_in_creates_a_verified_account(provider, live_server):
    client = sign_in(live_server)
    assert client.last.status_code == 200
    assert str(client.last.url).endswith("/account")
    me = client.get("/api/v1/me").json()
    assert me["username"] == "alice" and me["email"] == "alice@example.org"
    assert me["email_verified"] is True and me["display_name"] == "Alice Liddell"
    assert [r["role"] for r in me["roles"]] == ["astronomer"]


def test_a_later_sso_sign_in_finds_the_same_account(provider, live_server):
    first = sign_in(live_server).get("/api/v1/me").json()
    provider.set_user(sub="alice-sub", email="alice@new-address.org",
                      preferred_username="alice2")
    second = sign_in(live_server).get("/api/v1/me").json()
    assert second["id"] == first["id"]


def test_a_verified_address_links_to_the_existing_local_account(provider, live_server, users):
    local = users.create("aliceinwonderland", email="alice@example.org")
    me = sign_in(live_server).get("/api/v1/me").json()
    assert me["id"] == local.id


def test_an_unverified_address_of_an_existing_account_is_not_taken_over(provider, live_server,
                                                                        users):
    users.create("alice-local", email="alice@example.org")
    provider.set_user(email_verified=False, sub="someone-else")
    client = sign_in(live_server)
    assert client.last.status_code == 409
    assert "Sign in with your password first" in client.last.text
    assert client.get("/api/v1/me").status_code == 401


def test_a_callback_that_did_not_start_here_is_refused(provider, live_server):
    client = httpx.Client(base_url=live_server, timeout=30)
    response = client.get("/auth/oidc/passport/callback", params={"code": "x", "state": "y"})
    assert response.status_code == 400
    assert "did not start here" in response.text
    assert "astrocloud_session" not in response.cookies


def test_a_wrong_client_secret_is_refused_by_the_provider(provider, live_server, settings):
    settings.oidc_providers[0].client_secret = "not-the-secret"
    client = sign_in(live_server)
    assert client.last.status_code == 400
    assert "refused the sign-in (invalid_client)" in client.last.text
    assert client.get("/api/v1/me").status_code == 401


def test_an_error_from_the_provider_is_shown(provider, live_server):
    client = httpx.Client(base_url=live_server, follow_redirects=False, timeout=30)
    start = client.get("/auth/oidc/passport/login")
    state = httpx.URL(start.headers["location"]).params["state"]
    response = client.get("/auth/oidc/passport/callback",
                          params={"error": "access_denied", "state": state})
    assert response.status_code == 400 and "access_denied" in response.text


def test_an_unknown_provider_is_a_404(live_server):
    response = httpx.get(f"{live_server}/auth/oidc/nowhere/login",
                         headers={"Accept": "text/html"})
    assert response.status_code == 404


def test_sso_sign_in_in_the_browser(provider, page, live_server):
    provider.auto_approve = False
    page.goto(live_server + "/login")
    page.get_by_role("link", name="Sign in with CSTNET Passport").click()
    expect(page.locator("h1")).to_have_text("Test OpenID Provider")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(live_server + "/dashboard")
    expect(page.locator("h1")).to_contain_text("Alice Liddell")
