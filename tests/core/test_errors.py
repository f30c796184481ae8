"""Bad input of every kind gets a clear 4xx — problem+json for the API, a friendly page for
browsers — never a 500 or a stack trace, and never half-written data."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from astrocloud.core.identity.models import Group

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body


@pytest.fixture
def api(users):
    return users.api("astronomer", "lyra")


def test_malformed_json_is_a_400(api):
    body = assert_problem(api.post("/api/v1/groups", content=b"{not json",
                                   headers={"content-type": "application/json"}), 400)
    assert body["detail"] == "The request body is not valid JSON."


@pytest.mark.parametrize("payload", [
    {"name": 5, "title": ["x"]},
    {"name": "ok-name"},
    {"name": "ok-name", "title": "T", "unexpected": True},
    [1, 2, 3],
    "just a string",
    None,
])
def test_wrong_shapes_and_unknown_fields_are_a_422_naming_the_field(api, payload):
    body = assert_problem(api.post("/api/v1/groups", json=payload), 422)
    assert body["errors"]


def test_an_unknown_id_is_a_404(api):
    assert_problem(api.get("/api/v1/groups/999999"), 404)
    assert_problem(api.patch("/api/v1/groups/999999", json={"title": "x"}), 404)


def test_a_non_numeric_id_is_a_422(api):
    assert_problem(api.get("/api/v1/groups/abc"), 422)


def test_an_out_of_range_id_is_not_a_500(api):
    response = api.get(f"/api/v1/groups/{2**70}")
    assert response.status_code in (404, 422)


@pytest.mark.parametrize("text", [
    "'; DROP TABLE users; --", "\" OR 1=1 --", "%", "_", "\\", "\x00", "é漢字🚀",
])
def test_sql_looking_and_odd_strings_are_just_data(api, database, text):
    assert api.get("/api/v1/groups", params={"q": text}).status_code in (200, 400, 422)
    response = api.post("/api/v1/groups", json={"name": "odd", "title": text})
    assert response.status_code in (201, 422)
    with database.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Group)) in (0, 1)


def test_an_oversized_body_is_a_413(api, settings):
    big = {"name": "big", "title": "x" * (settings.max_body_bytes + 10)}
    assert_problem(api.post("/api/v1/groups", json=big), 413)


def test_an_oversized_chunked_body_is_a_413(api, settings):
    def chunks():
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536

    response = api.post("/api/v1/groups", content=chunks(),
                        headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_validation_failure_leaves_nothing_half_written(api, database):
    created = api.post("/api/v1/groups", json={"name": "first", "title": "First"}).json()
    response = api.post(f"/api/v1/groups/{created['id']}/members",
                        json={"username": "nobody-by-this-name"})
    assert_problem(response, 422)
    assert [m["username"] for m in api.get(f"/api/v1/groups/{created['id']}").json()["members"]] \
        == ["lyra"]


def test_an_unknown_api_path_is_a_problem_404(client):
    assert_problem(client.get("/api/v1/no-such-thing"), 404)


def test_a_wrong_method_is_a_405(client):
    assert_problem(client.delete("/api/health"), 405)


def test_an_unknown_page_is_a_friendly_404_page(client):
    response = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "There is nothing at this address." in response.text
    assert 'href="/"' in response.text


def test_a_broken_form_post_is_a_friendly_page_not_a_500(client, users):
    from tests.core.test_accounts import csrf_from, web_login

    users.create("lyra")
    web_login(client, "lyra")
    token = csrf_from(client.get("/groups").text)
    response = client.post("/groups/notanumber/members", data={"csrf_token": token},
                           headers={"Accept": "text/html"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    garbage = client.post("/groups", content=b"\xff\xfe\x00garbage",
                          headers={"content-type": "application/x-www-form-urlencoded",
                                   "Accept": "text/html", "X-CSRF-Token": token})
    assert 400 <= garbage.status_code < 500


def test_an_anonymous_browser_is_sent_to_sign_in(client):
    response = client.get("/dashboard", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/dashboard"


def test_a_forbidden_page_is_friendly(users):
    api = users.api("astronomer", "lyra")
    response = api.get("/api/v1/roles/1", headers={"Accept": "text/html"})
    assert response.status_code in (200, 404)  # the API stays JSON whatever is asked
    assert response.headers["content-type"].startswith(("application/json", PROBLEM))


def test_health_and_openapi_are_public(client):
    assert client.get("/api/health").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    assert "/api/v1/me" in spec["paths"]
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "/static/swagger/swagger-ui-bundle.js" in docs.text
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200


def test_me_without_credentials_is_a_401(client):
    assert_problem(client.get("/api/v1/me"), 401)


def test_pages_carry_security_headers(client):
    response = client.get("/", headers={"Accept": "text/html"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in response.headers["content-security-policy"]
