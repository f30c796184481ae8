"""A proposal as one PDF: drawn on the server with reportlab (title, team, call, abstract,
targets, hours, feasibility, previous allocations), the justification appended, Chinese text
shown, and given only to those who may read the proposal (a visitor is asked to sign in)."""

from __future__ import annotations

import io

from pypdf import PdfReader

TARGETS = [
    {"name": "M 67", "ra": 132.825, "dec": 11.8, "magnitude": 9.7,
     "exposures": [{"instrument": "YFOSC", "setup": {"mode": "imaging", "filter": "V"},
                    "seconds": 300, "count": 4}]},
    {"name": "NGC 2682 core", "ra": 132.846, "dec": 11.814,
     "exposures": [{"instrument": "YFOSC", "setup": {"mode": "spectroscopy",
                                                     "grating": "G3"},
                    "seconds": 1200, "count": 2}],
     "constraints": {"max_airmass": 1.5, "max_seeing": 2.0}},
]


def justification_pdf(pages: int = 2) -> bytes:
    """A real PDF with a recognisable line of text on each page."""
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out)
    for n in range(1, pages + 1):
        pdf.drawString(72, 720, f"JUSTIFICATION PAGE {n} OF THE SCIENCE CASE")
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def draft(pi, call, title="Blue stragglers in M 67", targets=TARGETS, document=True) -> int:
    """A draft of `pi` (an API client) with targets, previous allocations and a
    justification."""
    created = pi.post("/api/v1/observation/proposals",
                      json={"call_id": call.id, "title": title, "category": "Stars",
                            "abstract": "Mass transfer in an old open cluster."})
    assert created.status_code == 201, created.text
    proposal = created.json()
    saved = pi.patch(f"/api/v1/observation/proposals/{proposal['id']}",
                     json={"version": proposal["version"], "targets": targets,
                           "previous_allocations": "2026A: 12 h, all observed."})
    assert saved.status_code == 200, saved.text
    if document:
        put = pi.put(f"/api/v1/observation/proposals/{proposal['id']}/justification",
                     files={"file": ("case.pdf", justification_pdf(), "application/pdf")})
        assert put.status_code == 200, put.text
    return proposal["id"]


SLOW = 180  # seconds: the first reading computes the targets' feasibility (astroplan)


def pages_text(content: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(content)).pages]


def test_the_proposal_pdf_holds_the_proposal_then_the_justification(users, open_call):
    pi = users.api("astronomer", "liwei")
    pid = draft(pi, open_call)
    response = pi.get(f"/api/v1/observation/proposals/{pid}/pdf", timeout=SLOW)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    text = pages_text(response.content)
    own, appended = text[:-2], text[-2:]
    assert len(own) >= 1
    first = "\n".join(own)
    for expected in ("Blue stragglers in M 67", "Principal investigator", "liwei",
                     "Lijiang 2.4m", "2027A", "Stars", "Mass transfer in an old open cluster.",
                     "M 67", "NGC 2682 core",
                     "08:51:18.00", "+11:48:00.0", "9.7", "airmass", "YFOSC", "grating=G3",
                     "Feasibility", "2026A: 12 h, all observed.", "Requested hours"):
        assert expected in first, expected
    assert "JUSTIFICATION PAGE 1" in appended[0] and "JUSTIFICATION PAGE 2" in appended[1]


def test_the_proposal_page_links_its_pdf_which_the_page_route_serves(users, open_call):
    pi = users.api("astronomer", "pione")
    pid = draft(pi, open_call, document=False)
    page = pi.get(f"/observation/proposals/{pid}", timeout=SLOW)
    assert f'href="/observation/proposals/{pid}/pdf"' in page.text
    response = pi.get(f"/observation/proposals/{pid}/pdf")
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")
    text = "\n".join(pages_text(response.content))
    assert "Blue stragglers in M 67" in text and "none uploaded" in text


def test_a_chinese_title_and_target_are_drawn(users, open_call):
    pi = users.api("astronomer", "pione")
    targets = [dict(TARGETS[0], name="猎户座大星云")]
    pid = draft(pi, open_call, title="银河系疏散星团中的蓝离散星 (M 67)", targets=targets)
    response = pi.get(f"/api/v1/observation/proposals/{pid}/pdf", timeout=SLOW)
    assert response.status_code == 200, response.text
    reader = PdfReader(io.BytesIO(response.content))
    fonts = {str(font.get_object()["/BaseFont"])
             for font in reader.pages[0]["/Resources"]["/Font"].values()}
    assert any("STSong-Light" in f for f in fonts), fonts
    text = reader.pages[0].extract_text()
    assert "银河系疏散星团中的蓝离散星" in text and "猎户座大星云" in text
    assert "(M 67)" in text
    chinese = pi.get(f"/api/v1/observation/proposals/{pid}/pdf", params={"lang": "zh-CN"},
                     timeout=SLOW)
    labels = PdfReader(io.BytesIO(chinese.content)).pages[0].extract_text()
    assert "项目负责人" in labels and "摘要" in labels  # the labels follow the language


def test_who_may_not_read_the_proposal_gets_no_pdf(users, open_call, client):
    pi = users.api("astronomer", "pione")
    pid = draft(pi, open_call)
    stranger = users.api("astronomer", "stranger")
    assert stranger.get(f"/api/v1/observation/proposals/{pid}/pdf").status_code == 404
    assert stranger.get(f"/observation/proposals/{pid}/pdf").status_code == 404
    assert stranger.get(f"/observation/proposals/{pid}").status_code == 404
    assert stranger.get("/api/v1/observation/proposals/999999/pdf").status_code == 404
    assert client.get(f"/api/v1/observation/proposals/{pid}/pdf").status_code == 401
    manager_sees = users.api("operator", "opone").get(
        f"/api/v1/observation/proposals/{pid}/pdf", timeout=SLOW)
    assert manager_sees.status_code == 200


def test_a_visitor_opening_a_proposal_is_sent_to_sign_in(users, open_call, client):
    pi = users.api("astronomer", "pione")
    pid = draft(pi, open_call, document=False)
    html = {"Accept": "text/html"}
    for path in (f"/observation/proposals/{pid}", f"/observation/proposals/{pid}/pdf",
                 "/observation/proposals/999999"):
        response = client.get(path, headers=html)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=/observation/proposals/")
    api = client.get(f"/api/v1/observation/proposals/{pid}")
    assert api.status_code == 401 and api.headers["content-type"].startswith(
        "application/problem+json")
    # signed in but not allowed: still a 404, so existence does not leak
    stranger = users.api("astronomer", "stranger")
    assert stranger.get(f"/observation/proposals/{pid}", headers=html).status_code == 404
