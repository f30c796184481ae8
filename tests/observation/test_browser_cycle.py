"""A whole observing cycle in Chromium: the manager opens a call, a PI drafts and submits, a
reviewer grades, the TAC allocates, the manager publishes, the PI reads the decision, an
observer logs an observation, and the ingested file appears under the proposal."""

from __future__ import annotations

import datetime as dt
import io
import re
from urllib.parse import quote

import pytest
from playwright.sync_api import expect
from pypdf import PdfWriter

from astrocloud.core.security import services as security
from astrocloud.data.archive import services as archive
from astrocloud.data.archive.synthetic import write_image
from tests.conftest import PASSWORD
from tests.observation.conftest import SCOPE

pytestmark = pytest.mark.browser


def actor(browser, live_server: str, username: str):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    # generous: the first view of a proposal computes its feasibility (astroplan), which takes
    # well over 15 s on a loaded two-core machine
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(f"{live_server}/login?next=/observation")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url("**/observation")
    return page


def iso(moment: dt.datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def test_a_whole_cycle_in_the_browser(browser, live_server, system, users, telescope,
                                      manager_user, runtime, tmp_path):
    pi_user, referee, tac_user, observer_user = (users.create(n) for n in (
        "vega", "referee", "tacmember", "nightowl"))
    security.assign(system, user_id=observer_user.id, role="observer", scope_type="telescope",
                    scope_id=telescope.id)
    now = dt.datetime.now(dt.UTC)
    telescope_url = f"{live_server}/observation/telescopes/{quote(SCOPE)}"

    # the manager opens a call
    manager = actor(browser, live_server, manager_user.username)
    manager.goto(telescope_url)
    form = manager.locator("form#new-call")
    form.locator("[name=call_name]").fill("2027A")
    form.locator("[name=opens_at]").fill(iso(now - dt.timedelta(days=1)))
    form.locator("[name=closes_at]").fill(iso(now + dt.timedelta(days=7)))
    form.locator("[name=review_deadline]").fill(iso(now + dt.timedelta(days=14)))
    form.locator("[name=semester_start]").fill(iso(now + dt.timedelta(days=30)))
    form.locator("[name=semester_end]").fill(iso(now + dt.timedelta(days=200)))
    form.locator("[name=instrument_hours]").fill("YFOSC=50")
    form.locator("[name=categories]").fill("Stars, Galaxies")
    form.locator("button[type=submit]").click()
    manager.wait_for_url(re.compile(r"/observation/calls/\d+/manage"))
    call_id = int(re.search(r"/calls/(\d+)/", manager.url).group(1))
    for name, role in (("referee", "Reviewer"), ("tacmember", "TAC member")):
        manager.fill("input[name=username]", name)
        manager.select_option("select[name=role]", label=role)
        manager.get_by_role("button", name="Appoint").click()
    expect(manager.locator("main")).to_contain_text("referee")

    # a PI finds the call on the landing page, drafts and submits
    pi = actor(browser, live_server, pi_user.username)
    pi.get_by_role("link", name="2027A").click()
    pi.get_by_role("button", name="Write a proposal").click()
    pi.wait_for_url(re.compile(r"/proposals/\d+/edit"))
    pi.fill("input[name=title]", "Eclipsing binaries in Praesepe")
    pi.fill("textarea[name=abstract]", "Light curves of detached binaries.")
    pi.select_option("select[name=category]", "Stars")
    pi.fill("input[name=t0_name]", "Praesepe")
    pi.fill("input[name=t0_ra]", "130.1")
    pi.fill("input[name=t0_dec]", "19.67")
    pi.select_option("select[name=t0_p_mode]", "imaging")
    pi.select_option("select[name=t0_p_filter]", "V")
    pi.fill("input[name=t0_seconds]", "300")
    pi.fill("input[name=t0_count]", "4")
    pi.get_by_role("button", name="Save the draft").click()
    expect(pi.locator(".notice")).to_contain_text("The draft was saved.")
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    pdf = io.BytesIO()
    writer.write(pdf)
    pi.set_input_files("input[name=file]", files=[{"name": "justification.pdf",
                                                    "mimeType": "application/pdf",
                                                    "buffer": pdf.getvalue()}])
    pi.get_by_role("button", name="Upload").click()
    expect(pi.locator(".notice")).to_contain_text("The justification was uploaded.")
    pi.get_by_role("button", name="Submit the proposal").click()
    expect(pi.locator(".notice")).to_contain_text("The proposal was submitted.")
    proposal_url = pi.url.split("?")[0]

    # the deadline passes (the manager moves it), reviewers are assigned and grade
    manager.goto(f"{live_server}/observation/calls/{call_id}/manage")
    manager.fill("input[name=opens_at]", iso(now - dt.timedelta(days=3)))
    manager.fill("input[name=closes_at]", iso(now - dt.timedelta(minutes=1)))
    manager.get_by_role("button", name="Save").first.click()
    expect(manager.locator(".notice")).to_contain_text("The call was saved.")
    manager.get_by_role("button", name="Assign reviewers automatically").click()
    expect(manager.locator(".notice")).to_contain_text("1 reviews assigned.")
    reviewer = actor(browser, live_server, referee.username)
    reviewer.goto(f"{live_server}/observation/reviews")
    reviewer.fill("input[name=grade]", "1.5")
    reviewer.fill("textarea[name=comment]", "A strong, well-planned programme.")
    reviewer.get_by_role("button", name="Save the review").click()
    expect(reviewer.locator(".notice")).to_contain_text("The review was saved.")

    # the review deadline passes; the TAC allocates; the manager publishes
    manager.goto(f"{live_server}/observation/calls/{call_id}/manage")
    manager.fill("input[name=review_deadline]", iso(now - dt.timedelta(seconds=5)))
    manager.get_by_role("button", name="Save").first.click()
    expect(manager.locator(".notice")).to_contain_text("The call was saved.")
    tac = actor(browser, live_server, tac_user.username)
    tac.goto(f"{live_server}/observation/calls/{call_id}/manage")
    # the reviews, now that the deadline has passed: grades and comments, reviewers anonymous
    expect(tac.locator("table.reviews")).to_contain_text("A strong, well-planned programme.")
    expect(tac.locator("table.reviews")).to_contain_text("Reviewer 1")
    expect(tac.locator("table.reviews")).not_to_contain_text(referee.username)
    tac.get_by_role("button", name="Run the allocation").click()
    expect(tac.locator("main table.ranking")).to_contain_text("Eclipsing binaries")
    manager.goto(f"{live_server}/observation/calls/{call_id}/manage")
    manager.get_by_role("button", name="Publish the results").click()
    expect(manager.locator(".notice")).to_contain_text("The results are published.")

    # the PI reads the decision
    pi.goto(proposal_url)
    expect(pi.locator(".decision")).to_contain_text("grade A")
    pdf = pi.request.get(live_server + pi.locator("a.pdf").get_attribute("href"))
    assert pdf.ok and pdf.body().startswith(b"%PDF-")
    code = pi.locator("nav.crumbs span").inner_text().strip()

    # an observer logs an observation; the file is ingested and appears under the proposal
    observer = actor(browser, live_server, observer_user.username)
    observer.goto(telescope_url)
    start = dt.datetime(2027, 3, 12, 14, 0, tzinfo=dt.UTC)
    log = observer.locator("form#log")
    log.locator("[name=programme]").fill(code)
    log.locator("[name=target]").fill("Praesepe")
    log.locator("[name=start]").fill(iso(start))
    log.locator("[name=end]").fill(iso(start + dt.timedelta(minutes=24)))
    log.locator("[name=file_ids]").fill("lj-20270312-0001")
    log.locator("button[type=submit]").click()
    expect(observer.locator(".notice")).to_contain_text("The observation was logged.")
    system.runtime = runtime
    path = write_image(tmp_path / "lj-20270312-0001.fits", ra=130.1, dec=19.67,
                       telescope=SCOPE, instrument="YFOSC", date_obs=start, propid=code)
    records, jobs = archive.submit_paths(system, telescope=SCOPE, paths=[str(path)])
    runtime.jobs.wait(jobs, timeout=60)
    pi.goto(proposal_url)
    expect(pi.locator("ul.files")).to_contain_text("lj-20270312-0001.fits")
    expect(pi.locator("main")).to_contain_text("Remaining")
