"""MyVOSpace's web file browser in a real browser (Chromium driven by Playwright): a user signs
in, uploads files and watches their progress reach 100 %, makes a folder, renames and deletes,
shares with a group and publishes a link that works for anyone, watches the usage bar, and does
the same on a phone and without JavaScript."""

from __future__ import annotations

import os
import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from astrocloud.cloud import services as vos
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

BIG = os.urandom(3 * 1024 * 1024)


def sign_in(page: Page, live_server: str, username: str, then: str = "/cloud") -> None:
    page.goto(f"{live_server}/login?next={then}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page).to_have_url(live_server + then)


def row(page: Page, name: str):
    return page.locator(f"#files-table tbody tr[data-name='{name}']")


def manage(page: Page, name: str) -> None:
    page.get_by_role("link", name=f"Manage {name}", exact=True).click()
    expect(page.locator("h1")).to_contain_text(name)


@pytest.fixture
def vega(users):
    return users.create("vega")


# ---- the landing page -------------------------------------------------------------------------


def test_visitors_see_what_the_channel_offers_and_are_invited_to_sign_in(page, live_server):
    page.goto(live_server + "/cloud")
    expect(page.locator("h1")).to_have_text("Cloud")
    expect(page.get_by_text("Your own storage space")).to_be_visible()
    page.get_by_role("link", name="Sign in to use your space").click()
    expect(page).to_have_url(re.compile(r"/login\?next=(%2F|/)cloud$"))


def test_a_signed_in_user_sees_my_space_with_its_usage(page, live_server, vega, users):
    vos.set_quota(users.system, username="vega", quota_bytes=10 * 1024 * 1024)
    sign_in(page, live_server, "vega")
    space = page.locator("section.my-space")
    expect(space.get_by_role("heading", name="My space")).to_be_visible()
    expect(space.locator("#usage")).to_contain_text("0 Bytes of 10.0 MiB")
    expect(space.get_by_text("Your space is empty")).to_be_visible()
    expect(page.get_by_text(f"{live_server}/dav/vega/")).to_be_visible()
    space.get_by_role("link", name="Open my files").click()
    expect(page).to_have_url(live_server + "/cloud/files/vega")


# ---- uploading --------------------------------------------------------------------------------


def test_an_upload_shows_its_progress_reaching_100_and_the_file_listed(page, live_server, vega,
                                                                       users):
    vos.set_quota(users.system, username="vega", quota_bytes=10 * 1024 * 1024)
    sign_in(page, live_server, "vega", "/cloud/files/vega")
    expect(page.locator("#usage-meter")).to_have_attribute("value", "0")
    page.set_input_files("#upload-files", files=[
        {"name": "m31 r-band.fits", "mimeType": "", "buffer": BIG},
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"seeing 0.8 arcsec"},
    ])
    page.get_by_role("button", name="Upload", exact=True).click()
    items = page.locator("#upload-list .upload-item")
    expect(items).to_have_count(2)
    for item in (items.nth(0), items.nth(1)):
        expect(item.locator("progress")).to_have_attribute("value", "100")
        expect(item.locator(".upload-pct")).to_have_text("100 %")
        expect(item).to_have_class(re.compile(r"\bdone\b"))
    expect(page.locator("#upload-status")).to_have_text("2 of 2 files uploaded.")
    expect(row(page, "m31 r-band.fits")).to_contain_text("3.0 MiB")
    expect(row(page, "notes.txt")).to_be_visible()
    expect(row(page, "m31 r-band.fits")).to_have_class(re.compile(r"\bfresh\b"))
    # the usage bar follows, without a reload
    expect(page.locator("#usage-meter")).to_have_attribute("value", str(len(BIG) + 17))
    expect(page.locator("#usage")).to_contain_text("3.0 MiB of 10.0 MiB")
    # what arrived is what was sent
    link = row(page, "m31 r-band.fits").get_by_role("link", name="m31 r-band.fits", exact=True)
    assert page.request.get(live_server + link.get_attribute("href")).body() == BIG


def test_an_upload_over_quota_says_so_clearly_and_stores_nothing(page, live_server, vega, users):
    vos.set_quota(users.system, username="vega", quota_bytes=1024 * 1024)
    sign_in(page, live_server, "vega", "/cloud/files/vega")
    page.set_input_files("#upload-files", files=[
        {"name": "big.fits", "mimeType": "", "buffer": BIG}])
    page.get_by_role("button", name="Upload", exact=True).click()
    failed = page.locator("#upload-list .upload-item.failed")
    expect(failed).to_contain_text("Not enough space")
    expect(failed.get_by_role("alert")).to_contain_text("1.0 MiB is left")
    expect(row(page, "big.fits")).to_have_count(0)

    # when the quota shrinks after the page was shown, the server's answer is shown instead
    vos.set_quota(users.system, username="vega", quota_bytes=20 * 1024 * 1024)
    page.reload()
    vos.set_quota(users.system, username="vega", quota_bytes=1024 * 1024)
    page.set_input_files("#upload-files", files=[
        {"name": "big.fits", "mimeType": "", "buffer": BIG}])
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#upload-list .upload-item.failed")).to_contain_text(
        "Not enough space: The upload does not fit in the space of vega.")
    page.reload()
    expect(row(page, "big.fits")).to_have_count(0)
    expect(page.locator("#usage-meter")).to_have_attribute("value", "0")


def test_uploading_a_name_that_exists_asks_before_replacing(page, live_server, vega):
    sign_in(page, live_server, "vega", "/cloud/files/vega")
    for content, answer in ((b"first", None), (b"second", "dismiss"), (b"third", "accept")):
        if answer:
            page.once("dialog", lambda d, a=answer: getattr(d, a)())
        page.set_input_files("#upload-files", files=[
            {"name": "log.txt", "mimeType": "text/plain", "buffer": content}])
        page.get_by_role("button", name="Upload", exact=True).click()
        expect(page.locator("#upload-status")).not_to_be_empty()
        expected = b"first" if answer == "dismiss" else content
        assert page.request.get(live_server + "/cloud/files/vega/log.txt").body() == expected
        page.reload()


# ---- folders, rename, delete ------------------------------------------------------------------


def test_make_a_folder_rename_it_and_delete_it(page, live_server, vega):
    sign_in(page, live_server, "vega", "/cloud/files/vega")
    page.fill("#folder-name", "m31")
    page.get_by_role("button", name="Create folder").click()
    expect(page.locator(".notice")).to_have_text("The folder m31 is created.")
    expect(row(page, "m31")).to_contain_text("Folder")

    manage(page, "m31")
    page.fill("#move-name", "andromeda")
    page.get_by_role("button", name="Move or rename").click()
    expect(page).to_have_url(re.compile(r"/cloud/files/vega\?notice="))
    expect(page.locator(".notice")).to_have_text("andromeda is moved to vega.")
    expect(row(page, "andromeda")).to_be_visible()
    expect(row(page, "m31")).to_have_count(0)

    row(page, "andromeda").get_by_role("link", name="andromeda", exact=True).click()
    expect(page.locator("h1")).to_have_text("andromeda")
    expect(page.locator(".crumbs")).to_contain_text("My space")
    page.locator(".crumbs").get_by_role("link", name="My space").click()

    manage(page, "andromeda")
    page.fill("#move-name", "andromeda copy")
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator(".notice")).to_have_text("andromeda copy is copied to vega.")
    expect(row(page, "andromeda copy")).to_be_visible()

    manage(page, "andromeda")
    messages = []
    page.once("dialog", lambda d: (messages.append(d.message), d.accept()))
    page.get_by_role("button", name="Delete andromeda").click()
    expect(page.locator(".notice")).to_have_text("andromeda is deleted.")
    assert messages and "andromeda" in messages[0]
    expect(row(page, "andromeda")).to_have_count(0)
    expect(row(page, "andromeda copy")).to_be_visible()


def test_a_refused_rename_is_explained_on_the_page(page, live_server, vega, users):
    alice = users.api(vega)
    for path in ("vega/a", "vega/b"):
        assert alice.post(f"/api/v1/vos/folders/{path}").status_code == 201
    sign_in(page, live_server, "vega", "/cloud/node/vega/a")
    page.fill("#move-name", "b")
    page.get_by_role("button", name="Move or rename").click()
    expect(page.get_by_role("alert")).to_contain_text("vega/b exists already")
    expect(page.locator("#move-name")).to_have_value("b")


def test_a_big_folder_is_shown_a_page_at_a_time_and_sorted(page, live_server, vega, users):
    client = users.api(vega)
    assert client.post("/api/v1/vos/folders/vega/many").status_code == 201
    for i in range(105):
        assert client.put(f"/api/v1/vos/files/vega/many/f{i:03d}.txt",
                          content=b"x" * (i + 1)).status_code == 201
    sign_in(page, live_server, "vega", "/cloud/files/vega/many")
    rows = page.locator("#files-table tbody tr[data-name]")
    expect(rows).to_have_count(100)
    expect(rows.first).to_have_attribute("data-name", "f000.txt")
    page.get_by_role("button", name="Size").click()
    page.get_by_role("button", name="Size").click()  # again: largest first
    expect(rows.first).to_have_attribute("data-name", "f099.txt")
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(5)
    expect(rows.first).to_have_attribute("data-name", "f100.txt")
    page.get_by_role("link", name="First page").click()
    expect(rows).to_have_count(100)


# ---- sharing and publishing -------------------------------------------------------------------


def test_share_with_a_group_and_publish_a_link_anyone_can_open(page, browser, live_server, vega,
                                                                users):
    owner = users.api(vega)
    bob = users.api(username="bob")
    group = owner.post("/api/v1/groups", json={"name": "m31-team", "title": "M31 team"}).json()
    owner.post(f"/api/v1/groups/{group['id']}/members", json={"username": "bob"})
    owner.post("/api/v1/vos/folders/vega/m31")
    owner.put("/api/v1/vos/files/vega/m31/r.fits", content=BIG)
    assert bob.get("/api/v1/vos/files/vega/m31/r.fits").status_code == 404

    sign_in(page, live_server, "vega", "/cloud/files/vega")
    manage(page, "m31")
    page.fill("#share-group", "m31-team")
    page.select_option("#share-access", "write")
    page.get_by_role("button", name="Share", exact=True).click()
    expect(page.locator(".notice")).to_have_text("m31-team may now read and change m31.")
    expect(page.locator("table.shares tr[data-group='m31-team']")).to_contain_text(
        "read and write")
    assert bob.get("/api/v1/vos/files/vega/m31/r.fits").content == BIG
    assert bob.put("/api/v1/vos/files/vega/m31/bob.txt", content=b"hi").status_code == 201

    page.select_option("#share-access", "read")  # down to read only
    page.fill("#share-group", "m31-team")
    page.get_by_role("button", name="Share", exact=True).click()
    expect(page.locator("table.shares tr[data-group='m31-team']")).to_contain_text("read")
    expect(page.locator("table.shares tr[data-group='m31-team']")).not_to_contain_text("write")
    assert bob.put("/api/v1/vos/files/vega/m31/bob2.txt", content=b"hi").status_code == 403

    page.goto(live_server + "/cloud/node/vega/m31/r.fits")
    expect(page.locator("#share .inherited")).to_contain_text("vega/m31")  # shared from above
    expect(page.locator("#share .inherited")).to_contain_text("read: m31-team")
    page.get_by_role("button", name="Publish and get a public link").click()
    link = page.locator("#public-link")
    expect(link).to_have_text(f"{live_server}/cloud/files/vega/m31/r.fits")
    expect(page.locator("#public").get_by_role("button", name="Copy")).to_be_visible()
    expect(page.locator("h1 .tag")).to_have_text("Public")

    visitor = browser.new_context()  # no session: anyone with the link
    try:
        response = visitor.request.get(link.inner_text())
        assert response.status == 200 and response.body() == BIG
        assert "attachment" in response.headers["content-disposition"]
        private = visitor.new_page()
        private.goto(live_server + "/cloud/files/vega/m31")
        expect(private).to_have_url(re.compile(r"/login\?next=/cloud/files/vega/m31$"))
    finally:
        visitor.close()
    assert httpx.get(link.inner_text()).content == BIG

    page.get_by_role("button", name="Make it private again").click()
    expect(page.locator("#public-link")).to_have_count(0)
    assert httpx.get(f"{live_server}/cloud/files/vega/m31/r.fits").status_code in (303, 401)


def test_someone_elses_file_is_not_found(page, live_server, vega, users):
    users.api(username="bob").put("/api/v1/vos/files/bob/secret.txt", content=b"s")
    sign_in(page, live_server, "vega", "/cloud")
    response = page.goto(live_server + "/cloud/files/bob/secret.txt")
    assert response.status == 404
    response = page.goto(live_server + "/cloud/node/bob/secret.txt")
    assert response.status == 404


# ---- a phone, and no JavaScript ---------------------------------------------------------------


def test_the_file_browser_works_on_a_phone(phone_page, live_server, vega, users):
    page = phone_page
    users.api(vega).put("/api/v1/vos/files/vega/a-file-with-a-rather-long-name-for-a-phone.fits",
                        content=b"x" * 2048)
    sign_in(page, live_server, "vega", "/cloud/files/vega")
    expect(page.locator("#usage-meter")).to_be_visible()
    expect(page.locator("#files-table th.col-date")).to_be_hidden()
    expect(page.locator("#files-table th.col-type")).to_be_hidden()
    entry = row(page, "a-file-with-a-rather-long-name-for-a-phone.fits")
    expect(entry.locator(".row-sub")).to_contain_text("2.0 KiB")
    expect(entry.get_by_role("link", name="Manage")).to_be_visible()
    page.set_input_files("#upload-files", files=[
        {"name": "phone.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8" + BIG[:4096]}])
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#upload-list .upload-item progress")).to_have_attribute("value", "100")
    expect(row(page, "phone.jpg")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the file browser scrolls sideways on a phone ({width}px)"
    manage(page, "phone.jpg")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"a node's page scrolls sideways on a phone ({width}px)"
    box = page.get_by_role("button", name="Move or rename").bounding_box()
    assert box["height"] >= 40, "buttons are big enough to tap"


def test_without_javascript_the_basics_still_work(browser, live_server, vega):
    context = browser.new_context(java_script_enabled=False, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        sign_in(page, live_server, "vega", "/cloud/files/vega")
        page.set_input_files("#upload-files", files=[
            {"name": "a.fits", "mimeType": "application/fits", "buffer": BIG},
            {"name": "b.txt", "mimeType": "text/plain", "buffer": b"bee"}])
        page.get_by_role("button", name="Upload", exact=True).click()
        expect(page.locator(".notice")).to_have_text("Uploaded: a.fits, b.txt.")
        expect(row(page, "a.fits")).to_contain_text("3.0 MiB")
        assert page.request.get(live_server + "/cloud/files/vega/a.fits").body() == BIG
        page.get_by_role("button", name="Upload", exact=True).click()  # nothing chosen
        expect(page.get_by_role("alert")).to_contain_text("Choose one or more files")
        page.fill("#folder-name", "plain")
        page.get_by_role("button", name="Create folder").click()
        expect(row(page, "plain")).to_be_visible()
        manage(page, "b.txt")
        page.get_by_role("button", name="Delete b.txt").click()  # no confirmation without JS
        expect(page.locator(".notice")).to_have_text("b.txt is deleted.")
    finally:
        context.close()
