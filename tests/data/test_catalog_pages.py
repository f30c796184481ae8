"""The catalogs' pages in a real browser: the list, a catalog's columns with units and UCDs, a
cone search by object name; a proprietary catalog stays hidden from visitors."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from astrocloud.data.archive.synthetic import write_catalog
from astrocloud.data.catalogs import services as catalogs

pytestmark = pytest.mark.browser


@pytest.fixture
def stars(system, tmp_path):
    path = write_catalog(tmp_path / "stars.fits", n_rows=5000, seed=3, ra_range=(9, 12),
                         dec_range=(40, 42))
    catalogs.import_catalog(system, path, name="stars", title="Stars near M 31")
    hidden = write_catalog(tmp_path / "hidden.fits", n_rows=10, seed=4)
    catalogs.import_catalog(system, hidden, name="hidden", title="Not yet",
                            proprietary_until=dt.date(2099, 1, 1))


def test_a_visitor_lists_catalogs_and_searches_one_by_object_name(page, live_server, stars):
    page.goto(f"{live_server}/data/catalogs")
    expect(page.locator("h1")).to_have_text("Catalogs")
    expect(page.locator("table")).to_contain_text("Stars near M 31")
    expect(page.locator("table")).not_to_contain_text("hidden")
    page.get_by_role("link", name="stars").click()
    expect(page.locator("table").last).to_contain_text("pos.eq.ra")
    page.fill("#position", "M 31")
    page.fill("#radius", "0.2")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#result-count")).to_be_visible()
    expect(page.locator("table.cone-results tbody tr").first).to_be_visible()


def test_a_proprietary_catalog_page_is_not_found_for_visitors(page, live_server, stars):
    response = page.goto(f"{live_server}/data/catalogs/hidden")
    assert response.status == 404


def test_a_bad_position_is_explained(page, live_server, stars):
    page.goto(f"{live_server}/data/catalogs/stars?position=nowhere+at+all")
    expect(page.get_by_role("alert")).to_be_visible()
