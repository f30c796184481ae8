"""Every door serves and takes files the same way, because they share one answer for bytes out
(core.web.downloads) and one pump for bytes in (core.web.uploads): the file browser's API,
VOSpace's data URLs and WebDAV give the same validators, the same 304, 206 and 416, the same
If-Range rule and the same safety headers, and refuse a body over the upload limit alike."""

from __future__ import annotations

import os

import httpx
import pytest
import sqlalchemy as sa

from astrocloud.app import create_app
from astrocloud.cloud.models import Node
from tests.support.server import LiveServer, free_port

DATA = os.urandom(100_000)
DOORS = {"api": "/api/v1/vos/files/alice/", "vospace": "/vospace/data/alice/",
         "webdav": "/dav/alice/"}


@pytest.fixture
def alice(users):
    client = users.api(username="alice")
    assert client.put("/api/v1/vos/files/alice/r.fits", content=DATA).status_code == 201
    assert client.put("/api/v1/vos/files/alice/page.html", content=b"<script>1</script>",
                      headers={"content-type": "text/html"}).status_code == 201
    return client


@pytest.fixture(params=sorted(DOORS))
def door(request) -> str:
    return DOORS[request.param]


def test_every_door_gives_the_same_validators(alice):
    answers = [alice.head(prefix + "r.fits").headers for prefix in DOORS.values()]
    assert len({(h["etag"], h["last-modified"]) for h in answers}) == 1
    assert all(h["accept-ranges"] == "bytes" and h["content-length"] == str(len(DATA))
               for h in answers)


def test_a_current_copy_is_304_by_etag_or_date(alice, door):
    first = alice.get(door + "r.fits")
    assert first.status_code == 200 and first.content == DATA
    assert alice.get(door + "r.fits", headers={
        "if-none-match": first.headers["etag"]}).status_code == 304
    assert alice.get(door + "r.fits", headers={
        "if-modified-since": first.headers["last-modified"]}).status_code == 304
    assert alice.get(door + "r.fits", headers={
        "if-none-match": '"0-0"'}).status_code == 200


def test_one_byte_range_is_206(alice, door):
    part = alice.get(door + "r.fits", headers={"range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == DATA[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(DATA)}"
    head = alice.head(door + "r.fits", headers={"range": "bytes=-5"})
    assert head.status_code == 206 and head.headers["content-length"] == "5"


def test_a_range_of_another_version_sends_the_whole_file(alice, door):
    response = alice.get(door + "r.fits", headers={"range": "bytes=10-19",
                                                   "if-range": '"0-0"'})
    assert response.status_code == 200 and response.content == DATA


def test_a_range_past_the_end_is_416(alice, door):
    response = alice.get(door + "r.fits", headers={"range": f"bytes={len(DATA)}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


def test_another_range_unit_is_ignored(alice, door):
    response = alice.get(door + "r.fits", headers={"range": "items=0-9"})
    assert response.status_code == 200 and response.content == DATA


def test_a_stored_page_is_never_served_as_one(alice, door):
    response = alice.get(door + "page.html")
    assert response.headers["content-type"].startswith("application/octet-stream")
    assert response.headers["content-security-policy"].startswith("sandbox")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "private, no-cache"


def test_webdav_answers_a_list_of_ranges_with_the_whole_file(alice):
    response = alice.get("/dav/alice/r.fits", headers={"range": "bytes=0-9, 20-29"})
    assert response.status_code == 200 and response.content == DATA


def test_the_api_refuses_a_list_of_ranges(alice):
    response = alice.get("/api/v1/vos/files/alice/r.fits",
                         headers={"range": "bytes=0-9, 20-29"})
    assert response.status_code == 416


def test_the_browser_door_sends_an_attachment_and_vospace_inline(alice):
    attachment = alice.get("/api/v1/vos/files/alice/r.fits").headers["content-disposition"]
    inline = alice.get("/vospace/data/alice/r.fits").headers["content-disposition"]
    assert attachment == "attachment; filename=\"r.fits\"; filename*=UTF-8''r.fits"
    assert inline == "inline; filename=\"r.fits\"; filename*=UTF-8''r.fits"
    assert "content-disposition" not in alice.get("/dav/alice/r.fits").headers


# ---- bytes in ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_limit_server(settings, database):
    """The platform with an upload limit of 50 kB."""
    app = create_app(settings.model_copy(update={"max_upload_bytes": 50_000}), database)
    server = LiveServer(app, free_port()).start()
    yield server.url
    server.stop()


def streamed(total: int, chunk: int = 10_000):
    """A body without a Content-Length, so the limit is met while it streams."""
    for _ in range(total // chunk):
        yield os.urandom(chunk)


@pytest.mark.parametrize("door", sorted(DOORS))
def test_a_body_passing_the_upload_limit_is_413_and_stores_nothing(door, small_limit_server,
                                                                   users, database):
    token = users.token(users.create("alice"))
    with httpx.Client(base_url=small_limit_server, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.put(DOORS[door] + "big.bin", content=streamed(100_000))
        assert response.status_code == 413, response.text
        assert client.put(DOORS[door] + "small.bin", content=streamed(20_000)).status_code \
            == 201
    with database.session(write=False) as db:
        assert list(db.scalars(sa.select(Node.name).where(Node.kind == "data"))) == \
            ["small.bin"]
