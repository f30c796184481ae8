"""The portal in a real browser (Chromium driven by Playwright): a newcomer signs up, confirms
the address from the mail, signs in, switches to Chinese and sees the dashboard."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_sign_up_verify_sign_in_and_switch_to_chinese(page, live_server, smtp):
    page.goto(live_server + "/")
    page.get_by_role("link", name="Create an account").first.click()
    expect(page).to_have_url(re.compile(r"/signup$"))
    page.fill("#username", "vega")
    page.fill("#email", "vega@example.org")
    page.fill("#password", PASSWORD)
    page.fill("#display_name", "Vega Lyrae")
    page.fill("#institute", "Yunnan Observatories")
    page.locator("form[action='/signup'] button[type=submit]").click()
    expect(page.locator("h1")).to_have_text("Check your mail")

    page.goto(smtp.link("vega@example.org", "/account/verify?token="))
    expect(page.locator("h1")).to_have_text("Address confirmed")
    page.locator("main").get_by_role("link", name="Sign in").click()

    page.fill("#username", "vega")
    page.fill("#password", PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page).to_have_url(live_server + "/dashboard")
    expect(page.locator("h1")).to_contain_text("Vega Lyrae")
    english_heading = page.locator("h1").inner_text()

    page.locator("a.lang[hreflang='zh-CN']").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_contain_text("Vega Lyrae")
    assert page.locator("h1").inner_text() != english_heading
    assert re.search(r"[\u4e00-\u9fff]", page.locator("h1").inner_text())

    page.goto(live_server + "/account")  # the choice is remembered
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


def test_a_wrong_password_shows_a_clear_message_in_the_form(page, live_server, users):
    users.create("lyra")
    page.goto(live_server + "/login")
    page.fill("#username", "lyra")
    page.fill("#password", "not-the-password")
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page.get_by_role("alert")).to_contain_text("The user name or the password is not right")
    expect(page.locator("#username")).to_have_value("lyra")


def test_the_portal_is_usable_on_a_phone(phone_page, live_server):
    phone_page.goto(live_server + "/")
    nav = phone_page.locator("#site-nav")
    toggle = phone_page.locator(".nav-toggle")
    expect(toggle).to_be_visible()
    expect(nav.get_by_role("link", name="Observation")).to_be_hidden()
    toggle.click()
    expect(nav.get_by_role("link", name="Observation")).to_be_visible()
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the front page must not scroll sideways on a phone"
