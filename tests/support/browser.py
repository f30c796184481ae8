"""Browser fixtures: Playwright driving Debian's Chromium (never a downloaded browser).

Registered from the conftest with `pytest_plugins = ["tests.support.browser"]`. A failing
browser test leaves a screenshot in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--mute-audio",
    # Loopback only: without this Chromium still looks up accounts.google.com and
    # update.googleapis.com at start-up; every other name (and IP) fails with
    # ERR_NAME_NOT_RESOLVED, so a test can never reach off the machine by mistake.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.* , EXCLUDE ::1",
]
ARTIFACTS = Path("test-artifacts")


def chromium_path() -> str:
    path = os.environ.get("ASTROCLOUD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        pytest.fail(f"Chromium is not installed ({path} not found or not executable): run "
                    "`make test`, which installs Debian's chromium package (or point "
                    "ASTROCLOUD_CHROMIUM at a Chromium binary).", pytrace=False)
    return path


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium_path(), headless=True,
                                     args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.browser_failed = report.failed


def _page(browser, request, **options):
    context = browser.new_context(**options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    if getattr(request.node, "browser_failed", False):
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, timeout=10_000)
        except Exception as error:  # a crashed or closed page must not hide the real failure
            warnings.warn(f"no failure screenshot for {request.node.nodeid}: {error}",
                          stacklevel=1)
    context.close()


@pytest.fixture
def page(browser, request):
    yield from _page(browser, request, locale="en-US", viewport={"width": 1280, "height": 900})


@pytest.fixture
def phone_page(browser, request):
    yield from _page(browser, request, locale="en-US", viewport={"width": 390, "height": 844},
                     is_mobile=True, has_touch=True, device_scale_factor=2)
