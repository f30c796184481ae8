"""UWS 1.1 documents of the TAP service's asynchronous queries: a job, the job list, the
results list, the parameters — the XML every UWS client (pyvo, TOPCAT, taplint) reads."""

from __future__ import annotations

import datetime as dt

from lxml import etree

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
UWS_TYPE = "text/xml"


def iso(when: dt.datetime | None) -> str:
    """UTC in ISO 8601 with milliseconds and a Z."""
    if when is None:
        return ""
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _u(tag: str) -> str:
    return f"{{{UWS_NS}}}{tag}"


def _doc(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _nillable(parent, tag: str, text: str | None) -> None:
    element = etree.SubElement(parent, _u(tag))
    if text is None or text == "":
        element.set(f"{{{XSI_NS}}}nil", "true")
    else:
        element.text = text


def job_parameters(job) -> list[tuple[str, str, bool]]:
    """(id, value, byReference) of a job's parameters, as UWS lists them."""
    params = [("LANG", job.lang, False), ("QUERY", job.query, False)]
    if job.maxrec is not None:
        params.append(("MAXREC", str(job.maxrec), False))
    if job.response_format:
        params.append(("RESPONSEFORMAT", job.response_format, False))
    if job.upload:
        params.append(("UPLOAD", job.upload, False))
    params += [(k, str(v), False) for k, v in sorted((job.parameters or {}).items())]
    return params


def _parameters(parent, job) -> None:
    box = etree.SubElement(parent, _u("parameters"))
    for ident, value, by_reference in job_parameters(job):
        param = etree.SubElement(box, _u("parameter"), id=ident.lower())
        if by_reference:
            param.set("byReference", "true")
        param.text = value


def _results(parent, job, href: str):
    box = etree.SubElement(parent, _u("results")) if parent is not None else \
        etree.Element(_u("results"), nsmap={"uws": UWS_NS, "xlink": XLINK_NS})
    if job.phase == "COMPLETED" and job.result_uri:
        result = etree.SubElement(box, _u("result"), id="result")
        result.set(f"{{{XLINK_NS}}}type", "simple")
        result.set(f"{{{XLINK_NS}}}href", f"{href}/results/result")
        if job.result_type:
            result.set("mime-type", job.result_type)
        if job.result_size is not None:
            result.set("size", str(job.result_size))
    return box


def render_job(job, owner: str | None, href: str) -> bytes:
    root = etree.Element(_u("job"), nsmap={"uws": UWS_NS, "xlink": XLINK_NS, "xsi": XSI_NS})
    root.set("version", "1.1")
    etree.SubElement(root, _u("jobId")).text = job.id
    if job.run_id:
        etree.SubElement(root, _u("runId")).text = job.run_id
    _nillable(root, "ownerId", owner)
    etree.SubElement(root, _u("phase")).text = job.phase
    _nillable(root, "quote", None)
    etree.SubElement(root, _u("creationTime")).text = iso(job.created_at)
    _nillable(root, "startTime", iso(job.start_time) or None)
    _nillable(root, "endTime", iso(job.end_time) or None)
    etree.SubElement(root, _u("executionDuration")).text = str(job.execution_duration)
    _nillable(root, "destruction", iso(job.destruction) or None)
    _parameters(root, job)
    _results(root, job, href)
    if job.phase == "ERROR":
        summary = etree.SubElement(root, _u("errorSummary"), type="fatal", hasDetail="true")
        etree.SubElement(summary, _u("message")).text = job.error_message or "Error"
    return _doc(root)


def render_results(job, href: str) -> bytes:
    return _doc(_results(None, job, href))


def render_parameters(job) -> bytes:
    root = etree.Element(_u("parameters"), nsmap={"uws": UWS_NS})
    for ident, value, _ref in job_parameters(job):
        etree.SubElement(root, _u("parameter"), id=ident.lower()).text = value
    return _doc(root)


def render_job_list(jobs, owner_of, href_of) -> bytes:
    root = etree.Element(_u("jobs"), nsmap={"uws": UWS_NS, "xlink": XLINK_NS})
    root.set("version", "1.1")
    for job in jobs:
        ref = etree.SubElement(root, _u("jobref"), id=job.id)
        ref.set(f"{{{XLINK_NS}}}type", "simple")
        ref.set(f"{{{XLINK_NS}}}href", href_of(job))
        etree.SubElement(ref, _u("phase")).text = job.phase
        if job.run_id:
            etree.SubElement(ref, _u("runId")).text = job.run_id
        owner = owner_of(job)
        if owner:
            etree.SubElement(ref, _u("ownerId")).text = owner
        etree.SubElement(ref, _u("creationTime")).text = iso(job.created_at)
    return _doc(root)
