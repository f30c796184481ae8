"""A proposal as one PDF: its own pages (title, team, call, abstract, targets, hours,
feasibility, previous allocations) followed by the justification PDF the PI uploaded.

The pages are drawn with reportlab and the justification appended with pypdf, so the PDF is
made on the server, offline, from what the caller may read (observation.proposal.read: the
same rule as the printable page). Latin text is set in Helvetica; any run of characters that
Helvetica cannot show (Chinese, mostly) in reportlab's built-in CID font STSong-Light, which
needs no font file.
"""

from __future__ import annotations

import io
import re
from typing import Any
from xml.sax.saxutils import escape

from astrocloud.core.i18n import gettext
from astrocloud.core.service import Context, operation
from astrocloud.observation import feasibility, proposals
from astrocloud.observation.models import Proposal
from astrocloud.observation.proposals import ProposalOps

CJK_FONT = "STSong-Light"
_registered = False


def _fonts() -> None:
    """Register the CID font once per process (reportlab keeps a global registry)."""
    global _registered
    if not _registered:
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont

        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
        _registered = True


def _latin(ch: str) -> bool:
    """Whether Helvetica (WinAnsi encoding) can show the character."""
    try:
        ch.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def markup(text: Any) -> str:
    """`text` as Paragraph markup: escaped, runs outside WinAnsi set in the CJK font, line
    breaks kept."""
    text = "" if text is None else str(text)
    out, run, latin = [], [], True
    for ch in text:
        if ch in "\r":
            continue
        is_latin = _latin(ch) or ch == "\n"
        if is_latin != latin and run:
            chunk = escape("".join(run))
            out.append(chunk if latin else f'<font name="{CJK_FONT}">{chunk}</font>')
            run = []
        latin = is_latin
        run.append(ch)
    if run:
        chunk = escape("".join(run))
        out.append(chunk if latin else f'<font name="{CJK_FONT}">{chunk}</font>')
    return "".join(out).replace("\n", "<br/>")


def sexagesimal(ra: float, dec: float) -> str:
    """ICRS degrees as hh:mm:ss.ss ±dd:mm:ss.s."""
    total = round(ra / 15 * 3600, 2) % 86400
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    sign = "-" if dec < 0 else "+"
    arcsec = round(abs(dec) * 3600, 1)
    d, rest = divmod(arcsec, 3600)
    dm, ds = divmod(rest, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:05.2f} {sign}{int(d):02d}:{int(dm):02d}:{ds:04.1f}"


def _exposures(target: dict) -> str:
    parts = []
    for e in target.get("exposures", []):
        setup = ", ".join(f"{k}={v}" for k, v in (e.get("setup") or {}).items())
        parts.append(f"{e.get('count', 1)} × {e.get('seconds'):g} s {e.get('instrument')}"
                     + (f" ({setup})" if setup else ""))
    return "\n".join(parts) or "—"


def _constraints(target: dict) -> str:
    names = {"max_airmass": "airmass ≤", "min_moon_distance": "moon ≥",
             "max_seeing": "seeing ≤"}
    units = {"min_moon_distance": "°", "max_seeing": "″"}
    return "\n".join(f"{names.get(k, k)} {v:g}{units.get(k, '')}"
                     for k, v in (target.get("constraints") or {}).items()
                     if v is not None) or "—"


def render(proposal: Proposal, *, pi: str, team: list[str], checked: list[dict],
           lang: str = "en") -> bytes:
    """The proposal's own pages (without the justification) as PDF bytes, labelled in
    `lang`."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    _fonts()
    sheet = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=sheet["BodyText"], fontName="Helvetica",
                          fontSize=9.5, leading=12.5)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10)
    head = ParagraphStyle("head", parent=sheet["Heading2"], fontName="Helvetica-Bold",
                          fontSize=12, spaceBefore=8, spaceAfter=4)
    title = ParagraphStyle("title", parent=sheet["Title"], fontName="Helvetica-Bold",
                           fontSize=16, leading=20, alignment=0)
    call = proposal.call
    code = proposal.code or gettext(lang, "Draft proposal")

    def p(text: Any, style=body) -> Paragraph:
        return Paragraph(markup(text), style)

    grid = TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8ecf2")),
                       ("VALIGN", (0, 0), (-1, -1), "TOP"),
                       ("LEFTPADDING", (0, 0), (-1, -1), 3),
                       ("RIGHTPADDING", (0, 0), (-1, -1), 3)])
    hours = ", ".join(f"{k}: {v:g} h" for k, v in (proposal.requested_by_instrument or {}).items())
    facts = [
        (gettext(lang, "Proposal"), f"{code} · {proposal.status} · "
                                     f"{gettext(lang, 'version')} {proposal.version}"),
        (gettext(lang, "Principal investigator"), pi or "—"),
        (gettext(lang, "Co-investigators"), ", ".join(team) or "—"),
        (gettext(lang, "Call"), f"{call.name} {call.title or ''}".strip()),
        (gettext(lang, "Telescope"), call.telescope.name),
        (gettext(lang, "Semester"),
         f"{call.semester_start:%Y-%m-%d} – {call.semester_end:%Y-%m-%d}"),
        (gettext(lang, "Category"), proposal.category or "—"),
        (gettext(lang, "Requested hours"),
         f"{proposal.requested_hours:g} h" + (f" ({hours})" if hours else "")),
        (gettext(lang, "Submitted"), f"{proposal.submitted_at:%Y-%m-%d %H:%M:%S} UTC"
         if proposal.submitted_at else gettext(lang, "not yet")),
        (gettext(lang, "Justification"),
         gettext(lang, "%(pages)s page(s), appended", pages=proposal.document.pages)
         if proposal.document else gettext(lang, "none uploaded")),
    ]
    story: list[Any] = [p(proposal.title or gettext(lang, "Untitled"), title),
                        Spacer(1, 2 * mm)]
    fact_table = Table([[p(k, small), p(v)] for k, v in facts], colWidths=[38 * mm, 132 * mm])
    fact_table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                    ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey)]))
    story += [fact_table, p(gettext(lang, "Abstract"), head), p(proposal.abstract or "—")]

    story.append(p(gettext(lang, "Targets"), head))
    rows = [[p(h, small) for h in (
        gettext(lang, "Target"), gettext(lang, "ICRS (degrees)"),
        gettext(lang, "ICRS (sexagesimal)"), gettext(lang, "Magnitude"),
        gettext(lang, "Exposures and set-up"), gettext(lang, "Constraints"))]]
    for t in proposal.targets or []:
        magnitude = t.get("magnitude")
        rows.append([p(t.get("name"), small),
                     p(f"{t['ra']:.5f}\n{t['dec']:+.5f}", small),
                     p(sexagesimal(t["ra"], t["dec"]), small),
                     p("—" if magnitude is None else f"{magnitude:g}", small),
                     p(_exposures(t), small), p(_constraints(t), small)])
    if len(rows) == 1:
        story.append(p(gettext(lang, "No targets yet.")))
    else:
        targets = Table(rows, colWidths=[28 * mm, 22 * mm, 30 * mm, 10 * mm, 52 * mm, 28 * mm],
                        repeatRows=1)
        targets.setStyle(grid)
        story.append(targets)

    story.append(p(gettext(lang, "Feasibility"), head))
    if checked:
        story.append(p(gettext(lang, "Hours each target is observable from the telescope "
                                     "during the call's semester, under its constraints "
                                     "(astroplan, on a %(minutes)s-minute grid).",
                               minutes=checked[0]["grid_minutes"]), small))
        rows = [[p(h, small) for h in (
            gettext(lang, "Target"), gettext(lang, "Observable"),
            gettext(lang, "Observable hours"), gettext(lang, "Nights"),
            gettext(lang, "Hours requested"))]]
        for f in checked:
            verdict = gettext(lang, "yes") if f["observable"] else gettext(lang, "no")
            if f["observable"] and not f["enough_time"]:
                verdict = gettext(lang, "yes, but not long enough")
            rows.append([p(f["name"], small), p(verdict, small),
                         p(f"{f['observable_hours']:.1f}", small), p(f["nights"], small),
                         p(f"{f['exposure_hours']:.2f}", small)])
        table = Table(rows, colWidths=[50 * mm, 40 * mm, 28 * mm, 20 * mm, 30 * mm])
        table.setStyle(grid)
        story.append(table)
        short = [f["name"] for f in checked if not f["enough_time"]]
        story.append(Spacer(1, 2 * mm))
        summary = gettext(lang, "%(good)s of %(all)s target(s) observable long enough.",
                          good=len(checked) - len(short), all=len(checked))
        if short:
            summary += " " + gettext(lang, "Not long enough: %(names)s.",
                                     names=", ".join(short))
        story.append(p(summary, body))
    else:
        story.append(p(gettext(lang, "No targets yet.")))
    story.append(KeepTogether([p(gettext(lang, "Previous allocations"), head),
                               p(proposal.previous_allocations or "—")]))

    def footer(canvas, doc) -> None:
        canvas.saveState()
        line = f"{code} · {call.telescope.name} · {call.name}"
        canvas.setFont("Helvetica" if all(map(_latin, line)) else CJK_FONT, 7.5)
        canvas.setFillColor(colors.grey)
        canvas.drawString(18 * mm, 10 * mm, line)
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, str(doc.page))
        canvas.restoreState()

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                            topMargin=16 * mm, bottomMargin=18 * mm,
                            title=proposal.title or "Proposal", author=pi or "",
                            subject=f"{call.telescope.name} {call.name} {code}",
                            creator="AstroCloud")
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def merge(first: bytes, appended: bytes | None) -> bytes:
    """`first` followed by the pages of `appended` (if any), as one PDF."""
    if not appended:
        return first
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(first)))
    writer.append(PdfReader(io.BytesIO(appended), strict=False))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@operation(ProposalOps.READ)
def proposal_pdf(ctx: Context, proposal_id: int) -> tuple[str, bytes]:
    """A proposal the caller may see (observation.proposal.read) as one PDF, its
    justification appended; returns a file name and the bytes."""
    proposal = proposals.get_proposal(ctx, proposal_id)
    names = proposals.usernames(ctx, [proposal.pi_id] + [m.user_id for m in proposal.members
                                                         if m.user_id])
    invited = gettext(ctx.language, "invited")
    team = [f"{names.get(m.user_id)} <{m.email}>" if m.accepted_at else f"{m.email} ({invited})"
            for m in proposal.members]
    checked = feasibility.proposal_feasibility(ctx, proposal.id) if proposal.targets else []
    own = render(proposal, pi=names.get(proposal.pi_id, ""), team=team, checked=checked,
                 lang=ctx.language)
    document = proposal.document
    pdf = merge(own, document.content if document is not None else None)
    ctx.note(f"{len(pdf)} bytes")
    return f"proposal-{re.sub(r'[^A-Za-z0-9._-]', '', proposal.code or '') or proposal.id}.pdf", pdf
