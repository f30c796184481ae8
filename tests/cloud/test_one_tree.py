"""MyVOSpace is one tree behind every door: a file uploaded in the browser is the same file
through WebDAV (a real WebDAV client) and through VOSpace (its XML), and the storage layer keeps
its copies at the configured sites."""

from __future__ import annotations

import os
import time

import httpx
import sqlalchemy as sa
from lxml import etree
from playwright.sync_api import expect
from webdav4.client import Client as WebDAVClient

from astrocloud.core.storage.models import Replica, Site, StoredFile
from tests.conftest import PASSWORD

VOS = {"vos": "http://www.ivoa.net/xml/VOSpace/v2.0"}
LENGTH = "ivo://ivoa.net/vospace/core#length"


def test_a_browser_upload_is_seen_through_webdav_and_vospace_with_its_copies(
        page, live_server, users, runtime, tmp_path):
    alice = users.create("alice")
    token = users.token(alice)
    data = os.urandom(150_000)
    local = tmp_path / "ngc6946.fits"
    local.write_bytes(data)

    page.goto(live_server + "/login?next=/cloud/files/alice")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page).to_have_url(live_server + "/cloud/files/alice")
    page.set_input_files("#upload-files", str(local))
    page.locator("#upload-form button[type=submit]").click()
    expect(page.locator("#files-table")).to_contain_text("ngc6946.fits", timeout=20_000)

    dav = WebDAVClient(f"{live_server}/dav/alice/", auth=("alice", token))
    assert "ngc6946.fits" in [os.path.basename(e["name"].rstrip("/")) for e in dav.ls("")]
    with dav.open("ngc6946.fits", mode="rb") as f:
        assert f.read() == data

    response = httpx.get(f"{live_server}/vospace/nodes/alice/ngc6946.fits",
                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    node = etree.fromstring(response.content)
    assert node.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "vos:DataNode"
    length = node.find(f"vos:properties/vos:property[@uri='{LENGTH}']", VOS)
    assert int(length.text) == len(data)

    deadline = time.monotonic() + 30
    while True:
        with runtime.database.session(write=False) as db:
            copies = dict(db.execute(
                sa.select(Site.name, Replica.status).join(Replica.site).join(Replica.file)
                .where(StoredFile.uri == "ac://vos/alice/ngc6946.fits")).all())
        if list(copies.values()) == ["ok", "ok"]:
            break
        assert time.monotonic() < deadline, copies
        time.sleep(0.2)
    assert set(copies) == {"beijing", "nanjing"}
