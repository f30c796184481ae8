"""The Data channel's pages in a real browser (Chromium driven by Playwright): a visitor searches
the archive by object name and sees only released data with thumbnails; the PI signs in and sees
their proprietary file in "My data"; a file's page shows its metadata, QC and header; bulk
downloads; Chinese; a phone-sized screen."""

from __future__ import annotations

import io
import tarfile
import time

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from astrocloud.data.archive.models import ArchiveFile
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def sign_in(page: Page, live_server: str, username: str, then: str) -> None:
    page.goto(f"{live_server}/login?next={then}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url(f"**{then}")


@pytest.fixture
def graded(world, system):
    """The world's files once quality control has graded them and made their previews."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        system.db.commit()
        system.db.expire_all()
        done = system.db.scalar(sa.select(sa.func.count()).select_from(ArchiveFile).where(
            ArchiveFile.thumbnail_uri.is_not(None)))
        if done == 2:
            return world
        time.sleep(0.2)
    raise AssertionError("QC did not finish")


def test_a_visitor_finds_released_data_by_object_name(page, live_server, graded):
    page.goto(f"{live_server}/data")
    expect(page.locator("h1")).to_have_text("Search the archive")
    page.fill("#position", "M 31")
    page.fill("#radius", "0.5")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#result-count")).to_have_text("1 file")
    row = page.locator("table.data-results tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("img")).to_be_visible()
    expect(row).to_contain_text("Released")
    page.goto(f"{live_server}/data?target=M 51")
    expect(page.locator("#result-count")).to_have_text("0 files")


def test_a_bad_position_is_explained_on_the_page(page, live_server, graded):
    page.goto(f"{live_server}/data?position=Planet+Nine")
    expect(page.get_by_role("alert")).to_contain_text("neither a known object nor coordinates")


def test_the_pi_sees_the_proprietary_file_in_my_data(page, live_server, graded):
    sign_in(page, live_server, "piwang", "/data/mine")
    expect(page.locator("h1")).to_have_text("My data")
    expect(page.locator("#result-count")).to_have_text("2 files")
    expect(page.locator("table.data-results")).to_contain_text("Proprietary")


def test_a_file_page_shows_metadata_quality_and_header(page, live_server, graded):
    page.goto(f"{live_server}/data/observations/{graded['released']}")
    expect(page.locator("h1")).to_contain_text("M 31")
    expect(page.locator("dl.facts")).to_contain_text("Xinglong 2.16m")
    expect(page.locator("#h-qc")).to_be_visible()
    expect(page.locator("pre.fits-header")).to_contain_text("DATE-OBS")
    expect(page.locator("img.preview")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "old.fits"


def test_a_proprietary_file_page_is_not_found_for_visitors(page, live_server, graded):
    response = page.goto(f"{live_server}/data/observations/{graded['private']}")
    assert response.status == 404
    expect(page.locator("h1")).to_be_visible()


def test_bulk_downloads_stream_a_tar_and_a_curl_script(live_server, graded, users):
    api = users.api(graded["pi"])
    ids = [graded["released"], graded["private"]]
    tar = api.get("/data/download.tar", params={"id": ids})
    assert tar.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(tar.content)) as archive:
        names = sorted(m.name for m in archive.getmembers())
        assert len(names) == 2
        member = archive.extractfile(next(m for m in archive.getmembers()
                                          if m.name.endswith("old.fits")))
        assert member.read() == graded["paths"]["released"].read_bytes()
    script = api.get("/data/download.sh", params={"id": ids}).text
    assert script.startswith("#!/bin/sh") and script.count("curl -fL") == 2
    anonymous = httpx.get(f"{live_server}/data/download.tar",
                          params={"id": [graded["private"]]})
    assert anonymous.status_code == 404


def test_the_search_page_in_chinese(page, live_server, graded):
    page.goto(f"{live_server}/data?lang=zh-CN")
    expect(page.locator("h1")).to_have_text("搜索数据归档")


def test_the_search_works_on_a_phone(browser, live_server, graded):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    phone = context.new_page()
    try:
        phone.goto(f"{live_server}/data?position=M31")
        expect(phone.locator("#result-count")).to_have_text("1 file")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1  # no sideways scrolling of the page itself
    finally:
        context.close()


def test_data_releases_are_listed_and_citable(page, live_server, graded, users):
    operator = users.api("operator", "op1")
    release = operator.post("/api/v1/data/releases", json={
        "name": "DR1", "title": "First data release",
        "release_date": "2026-01-01T00:00:00Z"}).json()
    operator.post(f"/api/v1/data/releases/{release['id']}/contents",
                  json={"file_ids": [graded["released"]]})
    operator.post(f"/api/v1/data/releases/{release['id']}/publish")
    page.goto(f"{live_server}/data/releases")
    page.get_by_role("link", name="DR1 v1").click()
    expect(page.locator("h1")).to_contain_text("First data release")
    expect(page.locator("code.wrap")).to_contain_text("ivo://astrocloud/release/DR1/v1")


def test_from_a_file_to_all_files_of_its_programme(page, live_server, graded):
    page.goto(f"{live_server}/data/observations/{graded['released']}")
    page.get_by_role("link", name="2026A-001").click()
    expect(page.locator("#result-count")).to_have_text("1 file")  # a visitor: the public one
