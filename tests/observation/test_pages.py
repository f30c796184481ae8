"""The Observation channel's pages beyond the landing page and the call: a printable proposal,
the manager's page where a call is edited, its reviewer pool and TAC appointed, reviewers
assigned, the allocation run and the results published — all in the browser, through forms."""

from __future__ import annotations

import datetime as dt
import re

from tests.observation.conftest import now, submit_as


def test_the_manager_edits_the_call_and_appoints_in_the_browser(manager, open_call, users):
    users.create("referee")
    page = manager.get(f"/observation/calls/{open_call.id}/manage")
    assert page.status_code == 200 and "Reviewer pool and TAC" in page.text
    saved = manager.post(f"/observation/calls/{open_call.id}/manage",
                         data={"categories": "Stars, Exoplanets",
                               "instrument_hours": "YFOSC=80", "weather_loss": "0.25"})
    assert saved.status_code == 303, saved.text
    call = manager.get(f"/api/v1/observation/calls/{open_call.id}").json()
    assert call["categories"] == ["Stars", "Exoplanets"]
    assert call["instrument_hours"] == {"YFOSC": 80.0}
    assert call["allocation_setup"]["weather_loss"] == 0.25
    appointed = manager.post(f"/observation/calls/{open_call.id}/appoint",
                             data={"username": "referee", "role": "tac_member"})
    assert appointed.status_code == 303
    assert "referee" in manager.get(f"/observation/calls/{open_call.id}/manage").text


def test_a_bad_form_gets_a_friendly_page_and_changes_nothing(manager, open_call):
    response = manager.post(f"/observation/calls/{open_call.id}/manage",
                            data={"closes_at": "next tuesday", "instrument_hours": "YFOSC"},
                            headers={"Accept": "text/html"})
    assert response.status_code == 422
    assert "text/html" in response.headers["content-type"]
    assert manager.get(f"/api/v1/observation/calls/{open_call.id}").json()[
        "instrument_hours"] == {"YFOSC": 100.0}


def test_others_see_no_manager_page_controls(users, open_call):
    astronomer = users.api("astronomer", "someone")
    page = astronomer.get(f"/observation/calls/{open_call.id}/manage")
    assert page.status_code == 200 and "Only the telescope" in page.text
    assert astronomer.post(f"/observation/calls/{open_call.id}/assign").status_code == 403


def test_the_whole_cycle_through_the_managers_page(system, users, manager, open_call):
    pi_user = users.create("pione")
    pid = submit_as(system, pi_user, open_call, "Printable")
    pi = users.api(pi_user)
    page = pi.get(f"/observation/proposals/{pid}")
    assert page.status_code == 200 and "Printable" in page.text and "M 67" in page.text
    assert "/observation/proposals/" in pi.get("/observation").text  # listed as theirs
    for name in ("refa", "refb"):
        users.create(name)
        manager.post(f"/observation/calls/{open_call.id}/appoint", data={"username": name})
    assert manager.post(f"/observation/calls/{open_call.id}/assign").status_code == 303
    t = now()
    from astrocloud.observation import calls

    calls.update_call(system, open_call.id, opens_at=t - dt.timedelta(days=9),
                      closes_at=t - dt.timedelta(days=5),
                      review_deadline=t - dt.timedelta(days=1))
    assert manager.post(f"/observation/calls/{open_call.id}/allocate").status_code == 303
    assert manager.post(f"/observation/calls/{open_call.id}/publish").status_code == 303
    assert pi.get(f"/api/v1/observation/proposals/{pid}").json()["status"] == "rejected"
    assert users.api("astronomer", "stranger").get(
        f"/observation/proposals/{pid}").status_code == 404


def _pdf() -> bytes:
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_pi_drafts_and_submits_in_the_browser_with_a_form_from_the_schema(users, open_call):
    pi = users.api("astronomer", "browserpi")
    started = pi.post(f"/observation/calls/{open_call.id}/propose")
    assert started.status_code == 303
    edit_url = started.headers["location"].split("?")[0]
    page = pi.get(edit_url)
    assert page.status_code == 200
    assert 'name="t0_p_filter"' in page.text and "<option>spectroscopy</option>" in page.text
    version = int(re.search(r'name="version" value="(\d+)"', page.text).group(1))
    form = {"version": str(version), "title": "Clusters", "abstract": "Ages.",
            "category": "Stars", "t0_name": "M 67", "t0_ra": "132.825", "t0_dec": "11.8",
            "t0_instrument": "YFOSC", "t0_p_mode": "imaging", "t0_p_filter": "V",
            "t0_seconds": "300", "t0_count": "4", "t0_airmass": "1.8", "t0_moon": "40"}
    saved = pi.post(edit_url, data=form)
    assert saved.status_code == 303, saved.text
    pid = int(edit_url.rstrip("/").split("/")[-2])
    proposal = pi.get(f"/api/v1/observation/proposals/{pid}").json()
    assert proposal["requested_hours"] == 0.45
    assert proposal["targets"][0]["exposures"][0]["setup"] == {"mode": "imaging",
                                                                "filter": "V"}
    # a stale save: the form comes back with the typed values and a clear message
    stale = pi.post(edit_url, data={**form, "title": "Typed, not lost"})
    assert stale.status_code == 409
    assert "Typed, not lost" in stale.text and "Somebody else saved" in stale.text
    # out-of-range coordinates: every problem on the page, nothing saved
    bad = pi.post(edit_url, data={**form, "version": str(proposal["version"]),
                                  "t0_dec": "123", "t0_p_filter": ""})
    assert bad.status_code == 422
    assert "targets[0].dec" in bad.text and "targets[0].exposures[0].setup.filter" in bad.text
    uploaded = pi.post(f"/observation/proposals/{pid}/justification",
                       files={"file": ("j.pdf", _pdf(), "application/pdf")})
    assert uploaded.status_code == 303
    submitted = pi.post(f"/observation/proposals/{pid}/submit")
    assert submitted.status_code == 303
    assert pi.get(f"/api/v1/observation/proposals/{pid}").json()["status"] == "submitted"
    # the printable page shows each target's feasibility, as the API computes it
    page = pi.get(f"/observation/proposals/{pid}")
    assert "Feasibility" in page.text and 'class="feasibility"' in page.text
    checked = pi.get(f"/api/v1/observation/proposals/{pid}/feasibility").json()["items"][0]
    assert f'{checked["observable_hours"]:.1f}' in page.text


def test_a_reviewer_grades_in_the_browser(system, users, manager, open_call):
    pid = submit_as(system, users.create("pitwo"), open_call, "To be graded")
    referee = users.create("referee")
    manager.post(f"/observation/calls/{open_call.id}/appoint", data={"username": "referee"})
    manager.post(f"/observation/calls/{open_call.id}/assign")
    browser = users.api(referee)
    page = browser.get("/observation/reviews")
    assert page.status_code == 200 and "To be graded" in page.text
    review_id = int(re.search(r'action="/observation/reviews/(\d+)"', page.text).group(1))
    saved = browser.post(f"/observation/reviews/{review_id}",
                         data={"grade": "1.5", "comment": "Strong case."})
    assert saved.status_code == 303
    review = browser.get(f"/api/v1/observation/reviews/{review_id}").json()
    assert (review["grade"], review["comment"], review["proposal_id"]) == (1.5, "Strong case.",
                                                                           pid)
    assert browser.post(f"/observation/reviews/{review_id}",
                        data={"grade": "11"}).status_code == 422


def test_a_co_investigator_edits_the_draft_in_the_browser(system, users, open_call):
    """Co-investigators who accepted their invitation work on the draft in the browser too."""
    from astrocloud.core.security.engine import Subject
    from astrocloud.observation import proposals
    from tests.observation.conftest import as_user

    pi = users.api("astronomer", "draftpi")
    coi = users.api("astronomer", "draftcoi")
    started = pi.post(f"/observation/calls/{open_call.id}/propose")
    edit_url = started.headers["location"].split("?")[0]
    pid = int(edit_url.rstrip("/").split("/")[-2])
    try:
        as_user(system, pi.user)
        member = proposals.invite_coi(system, pid, email=coi.user.email)
        as_user(system, coi.user)
        proposals.accept_invitation(system, pid, token=member.token)
    finally:
        system.subject = Subject.system_subject()
    page = coi.get(edit_url)
    assert page.status_code == 200 and "can no longer be edited" not in page.text
    version = int(re.search(r'name="version" value="(\d+)"', page.text).group(1))
    saved = coi.post(edit_url, data={"version": str(version), "title": "Written by the co-I",
                                     "abstract": "Ages.", "category": "Stars"})
    assert saved.status_code == 303, saved.text
    assert pi.get(f"/api/v1/observation/proposals/{pid}").json()["title"] == \
        "Written by the co-I"
    stranger = users.api("astronomer", "notacoi")
    assert stranger.get(edit_url).status_code == 404


def test_the_manager_ticks_whether_reviewers_are_hidden_from_each_other(manager, open_call):
    page = manager.get(f"/observation/calls/{open_call.id}/manage").text
    assert re.search(r'name="hide_reviewers_from_each_other" value="true" checked', page)

    def flag():
        return manager.get(f"/api/v1/observation/calls/{open_call.id}").json()[
            "review_setup"]["hide_reviewers_from_each_other"]

    # an unticked box sends nothing: the form's marker says the flag is part of it
    assert manager.post(f"/observation/calls/{open_call.id}/manage",
                        data={"review_flags": "1"}).status_code == 303
    assert flag() is False
    page = manager.get(f"/observation/calls/{open_call.id}/manage").text
    assert not re.search(r'name="hide_reviewers_from_each_other" value="true" checked', page)
    assert manager.post(f"/observation/calls/{open_call.id}/manage",
                        data={"review_flags": "1", "hide_reviewers_from_each_other": "true"}
                        ).status_code == 303
    assert flag() is True
    # a form without the marker (another client) leaves it alone
    assert manager.post(f"/observation/calls/{open_call.id}/manage",
                        data={"categories": "Stars"}).status_code == 303
    assert flag() is True
