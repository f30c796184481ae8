"""MyVOSpace's JSON API (/api/v1/vos), the one the web file browser uses, over real HTTP:
listing with paging, streamed uploads and ranged downloads, folders, move, copy, delete,
sharing and publishing, usage; and what it refuses: other users' spaces, visitors without
credentials, paths that could escape, uploads over quota or cut short."""

from __future__ import annotations

import os
import re
import socket

import httpx
import pytest
import sqlalchemy as sa

from astrocloud.cloud import services as vos
from astrocloud.core.storage.models import StoredFile
from tests.conftest import PASSWORD

DATA = os.urandom(150_000)
PROBLEM = "application/problem+json"


@pytest.fixture
def alice(users) -> httpx.Client:
    return users.api(username="alice")


@pytest.fixture
def bob(users) -> httpx.Client:
    return users.api(username="bob")


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM), response.text
    body = response.json()
    assert body["status"] == status
    if code:
        assert body["type"] == f"/problems/{code}", body
    return body


def mkdir(client: httpx.Client, path: str) -> dict:
    response = client.post(f"/api/v1/vos/folders/{path}")
    assert response.status_code == 201, response.text
    return response.json()


def put(client: httpx.Client, path: str, data: bytes = DATA, **kw) -> httpx.Response:
    return client.put(f"/api/v1/vos/files/{path}", content=data, **kw)


def used(client: httpx.Client) -> int:
    return client.get("/api/v1/vos/usage").json()["used"]


def stored_files(settings) -> set:
    return {p for p in (settings.home / "sites").rglob("*") if p.is_file()}


def send_raw(client: httpx.Client, method: str, raw_path: str, **kw) -> httpx.Response:
    """Send a path exactly as written (httpx would otherwise resolve dot segments)."""
    request = client.build_request(method, client.base_url.join("/"), **kw)
    request.url = request.url.copy_with(raw_path=raw_path.encode())
    return client.send(request)


# ---- listing ----------------------------------------------------------------------------------


def test_the_callers_own_space_is_listed_without_naming_it(alice):
    response = alice.get("/api/v1/vos/nodes")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["node"]["path"] == "alice" and body["node"]["kind"] == "container"
    assert body["children"] == [] and body["next_after"] is None


def test_a_folder_lists_its_children_in_name_order_a_page_at_a_time(alice):
    mkdir(alice, "alice/m31")
    for name in ["c.fits", "a.fits", "e.fits", "b.fits", "d.fits"]:
        assert put(alice, f"alice/m31/{name}", name.encode()).status_code == 201
    first = alice.get("/api/v1/vos/nodes/alice/m31", params={"limit": 2}).json()
    assert [c["name"] for c in first["children"]] == ["a.fits", "b.fits"]
    assert first["next_after"] == "b.fits"
    names = [c["name"] for c in first["children"]]
    after = first["next_after"]
    while after:
        page = alice.get("/api/v1/vos/nodes/alice/m31", params={"limit": 2, "after": after}).json()
        names += [c["name"] for c in page["children"]]
        after = page["next_after"]
    assert names == ["a.fits", "b.fits", "c.fits", "d.fits", "e.fits"]
    child = first["children"][0]
    assert child["kind"] == "data" and child["size"] == 6
    assert child["content_type"] == "application/fits"
    assert child["url"] == "/api/v1/vos/files/alice/m31/a.fits"


def test_a_file_is_a_node_without_children(alice):
    put(alice, "alice/x.fits")
    body = alice.get("/api/v1/vos/nodes/alice/x.fits").json()
    assert body["node"]["size"] == len(DATA) and body["children"] == []


def test_a_page_size_out_of_bounds_is_refused(alice):
    problem(alice.get("/api/v1/vos/nodes/alice", params={"limit": 0}), 422)
    problem(alice.get("/api/v1/vos/nodes/alice", params={"limit": 100_000}), 422)


# ---- uploading and downloading ----------------------------------------------------------------


def test_an_upload_is_created_then_replaced_and_comes_back_whole(alice):
    first = put(alice, "alice/r.fits")
    assert first.status_code == 201, first.text
    node = first.json()
    assert node["path"] == "alice/r.fits" and node["size"] == len(DATA)
    assert node["content_type"] == "application/fits"  # named from the file name
    assert alice.get("/api/v1/vos/files/alice/r.fits").content == DATA
    again = put(alice, "alice/r.fits", b"smaller")
    assert again.status_code == 200, again.text
    assert alice.get("/api/v1/vos/files/alice/r.fits").content == b"smaller"
    assert used(alice) == len(b"smaller")


def test_an_upload_streams_in_chunks_and_keeps_a_declared_type(alice):
    def chunks():
        for i in range(0, len(DATA), 10_000):
            yield DATA[i:i + 10_000]

    response = put(alice, "alice/table.dat", chunks(), headers={"content-type": "text/csv"})
    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == "text/csv"
    assert alice.get("/api/v1/vos/files/alice/table.dat").content == DATA


def test_a_download_is_an_attachment_with_its_validators(alice):
    put(alice, "alice/spectrum one.fits")
    response = alice.get("/api/v1/vos/files/alice/spectrum%20one.fits")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["content-type"] == "application/fits"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''spectrum%20one.fits" in response.headers["content-disposition"]
    assert re.fullmatch(r'"\d+-\d+"', response.headers["etag"])
    assert response.headers["last-modified"].endswith("GMT")


@pytest.mark.parametrize("header,span,status", [
    ("bytes=10-19", (10, 20), 206),
    ("bytes=149990-", (149_990, 150_000), 206),
    ("bytes=-5", (149_995, 150_000), 206),
    ("bytes=100-999999999", (100, 150_000), 206),
    ("bytes=0-0", (0, 1), 206),
    ("items=0-9", (0, 150_000), 200),         # another unit: ignored (RFC 9110 §14.2)
])
def test_byte_ranges(alice, header, span, status):
    put(alice, "alice/r.fits")
    response = alice.get("/api/v1/vos/files/alice/r.fits", headers={"range": header})
    assert response.status_code == status, response.text
    assert response.content == DATA[span[0]:span[1]]
    assert response.headers["content-length"] == str(span[1] - span[0])
    if status == 206:
        assert response.headers["content-range"] == \
            f"bytes {span[0]}-{span[1] - 1}/{len(DATA)}"


@pytest.mark.parametrize("header", ["bytes=150000-", "bytes=5-1", "bytes=abc", "bytes=³-4",
                                    "bytes=0-9, 20-29"])
def test_a_range_that_cannot_be_served_is_416(alice, header):
    put(alice, "alice/r.fits")
    response = alice.get("/api/v1/vos/files/alice/r.fits",
                         headers={"range": header.encode("latin-1")})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


def test_a_current_copy_is_not_sent_again_and_if_range_guards_resumes(alice):
    put(alice, "alice/r.fits")
    etag = alice.head("/api/v1/vos/files/alice/r.fits").headers["etag"]
    assert alice.get("/api/v1/vos/files/alice/r.fits",
                     headers={"if-none-match": etag}).status_code == 304
    resumed = alice.get("/api/v1/vos/files/alice/r.fits",
                        headers={"range": "bytes=100-", "if-range": etag})
    assert resumed.status_code == 206 and resumed.content == DATA[100:]
    put(alice, "alice/r.fits", b"changed")
    assert alice.head("/api/v1/vos/files/alice/r.fits").headers["etag"] != etag
    stale = alice.get("/api/v1/vos/files/alice/r.fits",
                      headers={"range": "bytes=2-", "if-range": etag})
    assert stale.status_code == 200 and stale.content == b"changed"


def test_head_answers_the_headers_without_the_bytes(alice):
    put(alice, "alice/r.fits")
    response = alice.head("/api/v1/vos/files/alice/r.fits")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-length"] == str(len(DATA))


def test_an_uploaded_page_or_script_is_never_served_as_one(alice):
    """A file of another user must not run in the platform's pages (stored XSS)."""
    put(alice, "alice/evil.html", b"<script>alert(1)</script>",
        headers={"content-type": "text/html"})
    assert alice.get("/api/v1/vos/nodes/alice/evil.html").json()["node"]["content_type"] \
        == "text/html"
    response = alice.get("/api/v1/vos/files/alice/evil.html",
                         headers={"accept": "text/html"})
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_folder_has_no_bytes(alice):
    mkdir(alice, "alice/d")
    problem(alice.get("/api/v1/vos/files/alice/d"), 422)


def test_an_upload_needs_its_folder(alice):
    problem(put(alice, "alice/nowhere/x.fits"), 404)


# ---- folders, move, copy, delete --------------------------------------------------------------


def test_a_folder_is_created_once(alice):
    node = mkdir(alice, "alice/m31")
    assert node["kind"] == "container" and node["url"] == "/api/v1/vos/nodes/alice/m31"
    problem(alice.post("/api/v1/vos/folders/alice/m31"), 409, "duplicate-node")
    problem(alice.post("/api/v1/vos/folders/alice/a/b"), 404)


def test_moving_renames_and_moves_a_folder_with_everything_in_it(alice):
    mkdir(alice, "alice/a")
    put(alice, "alice/a/x.fits")
    mkdir(alice, "alice/archive")
    response = alice.post("/api/v1/vos/move", json={"src": "alice/a", "dest": "alice/archive/b"})
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "alice/archive/b"
    assert alice.get("/api/v1/vos/files/alice/archive/b/x.fits").content == DATA
    problem(alice.get("/api/v1/vos/nodes/alice/a"), 404)


def test_a_move_onto_an_existing_node_or_into_itself_is_refused(alice):
    mkdir(alice, "alice/a")
    mkdir(alice, "alice/b")
    problem(alice.post("/api/v1/vos/move", json={"src": "alice/a", "dest": "alice/b"}), 409)
    problem(alice.post("/api/v1/vos/move", json={"src": "alice/a", "dest": "alice/a/in"}), 422)
    problem(alice.post("/api/v1/vos/move", json={"src": "alice/a", "dest": "alice/b",
                                                  "extra": 1}), 422)


def test_copying_duplicates_the_bytes_and_the_usage(alice):
    mkdir(alice, "alice/a")
    put(alice, "alice/a/x.fits")
    response = alice.post("/api/v1/vos/copy", json={"src": "alice/a", "dest": "alice/b"})
    assert response.status_code == 201, response.text
    assert alice.get("/api/v1/vos/files/alice/b/x.fits").content == DATA
    assert alice.get("/api/v1/vos/files/alice/a/x.fits").content == DATA
    assert used(alice) == 2 * len(DATA)


def test_a_copy_over_quota_is_507(alice, users):
    put(alice, "alice/x.fits")
    vos.set_quota(users.system, username="alice", quota_bytes=200_000)
    problem(alice.post("/api/v1/vos/copy", json={"src": "alice/x.fits", "dest": "alice/y.fits"}),
            507, "quota-exceeded")
    problem(alice.get("/api/v1/vos/nodes/alice/y.fits"), 404)


def test_deleting_a_folder_frees_its_space(alice, database):
    mkdir(alice, "alice/a")
    put(alice, "alice/a/x.fits")
    assert used(alice) == len(DATA)
    assert alice.delete("/api/v1/vos/nodes/alice/a").status_code == 204
    problem(alice.get("/api/v1/vos/nodes/alice/a/x.fits"), 404)
    assert used(alice) == 0
    with database.session(write=False) as db:  # the bytes go with a job after the commit
        assert db.scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 0
    problem(alice.delete("/api/v1/vos/nodes/alice"), 422)  # the root stays


# ---- sharing and publishing -------------------------------------------------------------------


@pytest.fixture
def team(alice, bob):
    group = alice.post("/api/v1/groups", json={"name": "m31-team", "title": "M31 team"})
    assert group.status_code == 201, group.text
    member = alice.post(f"/api/v1/groups/{group.json()['id']}/members", json={"username": "bob"})
    assert member.status_code == 200, member.text
    mkdir(alice, "alice/shared")
    put(alice, "alice/shared/a.fits")
    return alice, bob


def test_sharing_a_folder_to_read_lets_the_group_read_but_not_write(team):
    alice, bob = team
    response = alice.patch("/api/v1/vos/nodes/alice/shared", json={"group_read": ["m31-team"]})
    assert response.status_code == 200, response.text
    assert response.json()["group_read"] == ["m31-team"]
    assert response.json()["group_write"] == []
    assert bob.get("/api/v1/vos/files/alice/shared/a.fits").content == DATA
    listing = bob.get("/api/v1/vos/nodes/alice/shared").json()
    assert [c["name"] for c in listing["children"]] == ["a.fits"]
    assert listing["node"]["group_read"] is None  # only the owner sees whom it is shared with
    problem(put(bob, "alice/shared/b.fits"), 403)
    problem(bob.delete("/api/v1/vos/nodes/alice/shared/a.fits"), 403)


def test_sharing_to_write_lets_the_group_upload_into_the_owners_quota(team):
    alice, bob = team
    alice.patch("/api/v1/vos/nodes/alice/shared", json={"group_write": ["m31-team"]})
    assert put(bob, "alice/shared/b.fits", b"bob's").status_code == 201
    assert used(alice) == len(DATA) + 5 and used(bob) == 0
    problem(bob.patch("/api/v1/vos/nodes/alice/shared", json={"public_read": True}), 403)


def test_stopping_a_share_closes_the_folder_again(team):
    alice, bob = team
    alice.patch("/api/v1/vos/nodes/alice/shared", json={"group_write": ["m31-team"]})
    response = alice.patch("/api/v1/vos/nodes/alice/shared", json={"group_write": []})
    assert response.json()["group_write"] == []
    problem(bob.get("/api/v1/vos/nodes/alice/shared"), 404)


def test_sharing_with_an_unknown_group_is_refused(alice):
    mkdir(alice, "alice/d")
    body = problem(alice.patch("/api/v1/vos/nodes/alice/d", json={"group_read": ["nobody"]}), 422)
    assert "nobody" in body["detail"]


def test_a_published_file_is_readable_without_credentials(alice, client):
    mkdir(alice, "alice/d")
    put(alice, "alice/d/a.fits")
    problem(client.get("/api/v1/vos/files/alice/d/a.fits"), 401)
    response = alice.patch("/api/v1/vos/nodes/alice/d/a.fits", json={"public_read": True})
    assert response.status_code == 200 and response.json()["public_read"] is True
    assert client.get("/api/v1/vos/files/alice/d/a.fits").content == DATA
    public = client.get("/cloud/files/alice/d/a.fits")  # the public link the browser shows
    assert public.status_code == 200 and public.content == DATA
    assert client.get("/api/v1/vos/files/alice/d/a.fits",
                      headers={"range": "bytes=0-9"}).content == DATA[:10]
    problem(client.get("/api/v1/vos/nodes/alice/d"), 401)  # its folder stays private
    alice.patch("/api/v1/vos/nodes/alice/d/a.fits", json={"public_read": False})
    problem(client.get("/api/v1/vos/files/alice/d/a.fits"), 401)


def test_a_published_folder_opens_to_anyone_read_only(alice, client):
    mkdir(alice, "alice/release")
    put(alice, "alice/release/a.fits")
    alice.patch("/api/v1/vos/nodes/alice/release", json={"public_read": True})
    listing = client.get("/api/v1/vos/nodes/alice/release").json()
    assert [c["name"] for c in listing["children"]] == ["a.fits"]
    assert client.get("/api/v1/vos/files/alice/release/a.fits").content == DATA
    page = client.get("/cloud/files/alice/release", headers={"accept": "text/html"})
    assert page.status_code == 200 and "a.fits" in page.text
    assert 'id="upload-form"' not in page.text and "Details of a.fits" in page.text
    problem(put(client, "alice/release/b.fits"), 401)
    problem(client.delete("/api/v1/vos/nodes/alice/release/a.fits"), 401)


# ---- usage and quota --------------------------------------------------------------------------


def test_usage_reports_bytes_used_and_the_quota(alice, users, settings):
    assert alice.get("/api/v1/vos/usage").json() == {
        "used": 0, "quota": settings.vos_default_quota_bytes}
    put(alice, "alice/x.fits")
    vos.set_quota(users.system, username="alice", quota_bytes=10**6)
    assert alice.get("/api/v1/vos/usage").json() == {"used": len(DATA), "quota": 10**6}


def test_operators_see_anyones_usage_and_others_do_not(alice, bob, users):
    operator = users.api("operator")
    put(alice, "alice/x.fits")
    assert operator.get("/api/v1/vos/usage", params={"username": "alice"}).json()["used"] == \
        len(DATA)
    assert bob.get("/api/v1/vos/usage", params={"username": "alice"}).status_code in (403, 404)


@pytest.mark.parametrize("size", [150_000, 6_000_000])
def test_an_upload_over_quota_is_507_and_leaves_nothing(alice, users, settings, size):
    vos.set_quota(users.system, username="alice", quota_bytes=100_000)
    before = stored_files(settings)
    body = problem(put(alice, "alice/big.bin", os.urandom(size)), 507, "quota-exceeded")
    assert body["title"] == "Not enough space"
    problem(alice.get("/api/v1/vos/nodes/alice/big.bin"), 404)
    assert used(alice) == 0
    assert stored_files(settings) == before
    assert put(alice, "alice/small.bin", b"fits").status_code == 201  # the connection is fine


def test_refused_uploads_answer_at_once(alice, client):
    """Refused before the body is read: the rest is drained, never waited for."""
    import time

    started = time.monotonic()
    for i in range(40):
        problem(put(alice, "alice", DATA[:i * 1000]), 422)             # the root itself
        problem(put(alice, f"alice/missing/{i}.bin", DATA[:i * 1000]), 404)
        problem(put(client, f"alice/{i}.bin", DATA[:i * 1000]), 401)    # no credentials
    assert time.monotonic() - started < 20


def test_a_full_space_refuses_before_reading(alice, users):
    vos.set_quota(users.system, username="alice", quota_bytes=0)
    problem(put(alice, "alice/x.bin", b"x"), 507, "quota-exceeded")


def test_a_client_that_disconnects_mid_upload_leaves_no_node(alice, live_server, settings):
    mkdir(alice, "alice/d")
    before = stored_files(settings)
    host, port = live_server.split("//", 1)[1].split(":")
    token = alice.headers["authorization"]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"PUT /api/v1/vos/files/alice/d/cut.bin HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: {token}\r\nContent-Length: 1000000\r\n\r\n".encode()
                     + DATA[:50_000])
    for _ in range(100):  # the server notices the disconnect shortly after
        response = alice.get("/api/v1/vos/nodes/alice/d")
        if response.json()["children"] == [] and stored_files(settings) == before:
            break
    assert response.json()["children"] == []
    problem(alice.get("/api/v1/vos/nodes/alice/d/cut.bin"), 404)
    assert used(alice) == 0
    assert stored_files(settings) == before
    assert put(alice, "alice/d/cut.bin", b"whole").status_code == 201


# ---- refusals ---------------------------------------------------------------------------------


def test_another_users_space_is_not_found(alice, bob):
    mkdir(alice, "alice/d")
    put(alice, "alice/d/secret.fits")
    problem(bob.get("/api/v1/vos/nodes/alice"), 404)
    problem(bob.get("/api/v1/vos/nodes/alice/d/secret.fits"), 404)
    problem(bob.get("/api/v1/vos/files/alice/d/secret.fits"), 404)
    problem(put(bob, "alice/d/intruder.fits"), 404)
    problem(bob.post("/api/v1/vos/folders/alice/d/x"), 404)
    problem(bob.delete("/api/v1/vos/nodes/alice/d/secret.fits"), 404)
    problem(bob.patch("/api/v1/vos/nodes/alice/d", json={"public_read": True}), 404)
    problem(bob.post("/api/v1/vos/move", json={"src": "alice/d", "dest": "bob/d"}), 404)
    problem(bob.post("/api/v1/vos/copy", json={"src": "alice/d", "dest": "bob/d"}), 404)
    problem(bob.post("/api/v1/vos/copy", json={"src": "bob", "dest": "alice/d/mine"}), 404)
    assert alice.get("/api/v1/vos/files/alice/d/secret.fits").content == DATA


@pytest.mark.parametrize("method,url", [
    ("GET", "/api/v1/vos/nodes"), ("GET", "/api/v1/vos/nodes/alice"),
    ("GET", "/api/v1/vos/files/alice/x.fits"), ("PUT", "/api/v1/vos/files/alice/y.fits"),
    ("POST", "/api/v1/vos/folders/alice/d"), ("DELETE", "/api/v1/vos/nodes/alice/x.fits"),
    ("PATCH", "/api/v1/vos/nodes/alice/x.fits"), ("GET", "/api/v1/vos/usage"),
])
def test_visitors_without_credentials_are_asked_for_them(alice, client, method, url):
    put(alice, "alice/x.fits")
    kwargs = {"json": {"public_read": True}} if method == "PATCH" else \
        {"content": b"x"} if method == "PUT" else {}
    body = problem(client.request(method, url, **kwargs), 401, "not-authenticated")
    assert body["detail"]
    assert "Bearer" in client.request(method, url, **kwargs).headers["www-authenticate"]
    assert alice.get("/api/v1/vos/files/alice/x.fits").content == DATA


def test_a_bad_token_is_401(client):
    problem(client.get("/api/v1/vos/nodes", headers={"authorization": "Bearer nope"}), 401)


@pytest.mark.parametrize("raw_path", [
    "/api/v1/vos/nodes/alice/%2e%2e/bob",    # traversal
    "/api/v1/vos/nodes/alice/%2e/x",         # a dot segment
    "/api/v1/vos/nodes/alice//x",            # an empty segment
    "/api/v1/vos/nodes/alice/a%2Fb",         # an encoded slash
    "/api/v1/vos/nodes/alice/a%5Cb",         # an encoded backslash
    "/api/v1/vos/nodes/alice/a%01b",         # a control character
    "/api/v1/vos/nodes/alice/a%00b",         # NUL
    "/api/v1/vos/files/alice/" + "n" * 300,  # a name too long
    "/api/v1/vos/folders/alice/%2e%2e",
])
def test_paths_that_could_escape_are_400(alice, raw_path):
    for method in ("GET", "POST", "PUT", "DELETE"):
        response = send_raw(alice, method, raw_path, content=b"x" if method == "PUT" else None)
        if response.status_code == 405:  # the route takes other methods
            continue
        problem(response, 400)
    assert alice.get("/api/v1/vos/nodes/alice").json()["children"] == []


def test_an_absolute_path_names_no_space(alice):
    response = send_raw(alice, "GET", "/api/v1/vos/nodes//etc/passwd")
    assert response.status_code in (400, 404), response.text


@pytest.mark.parametrize("field,value", [("src", "alice/../bob"), ("dest", "/etc/x"),
                                          ("dest", "alice/a\\b"), ("dest", "alice/\x01")])
def test_move_and_copy_paths_are_checked(alice, field, value):
    mkdir(alice, "alice/a")
    body = {"src": "alice/a", "dest": "alice/b", field: value}
    for action in ("move", "copy"):
        response = alice.post(f"/api/v1/vos/{action}", json=body)
        assert response.status_code in (400, 404), response.text
    assert [c["name"] for c in alice.get("/api/v1/vos/nodes/alice").json()["children"]] == ["a"]


# ---- the browser's way in: a session cookie and the CSRF header -------------------------------


def signed_in(live_server: str, username: str) -> tuple[httpx.Client, str]:
    """An HTTP client signed in through the /login form, and its CSRF token."""
    client = httpx.Client(base_url=live_server, timeout=30)
    page = client.get("/login")
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    response = client.post("/login", data={"username": username, "password": PASSWORD,
                                           "csrf_token": token, "next": "/cloud"})
    assert response.status_code == 303, response.text
    page = client.get("/cloud")
    return client, re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def test_a_signed_in_browser_must_send_the_csrf_header(users, live_server):
    users.create("carol")
    client, token = signed_in(live_server, "carol")
    try:
        problem(put(client, "carol/x.fits"), 403, "csrf-failed")
        assert put(client, "carol/x.fits", headers={"x-csrf-token": token}).status_code == 201
        assert client.get("/api/v1/vos/files/carol/x.fits").content == DATA
    finally:
        client.close()


def test_the_api_is_described_in_the_openapi_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/vos/nodes/{path}", "/api/v1/vos/files/{path}", "/api/v1/vos/move",
                 "/api/v1/vos/copy", "/api/v1/vos/folders/{path}", "/api/v1/vos/usage"):
        assert path in paths, sorted(p for p in paths if "/vos" in p)
