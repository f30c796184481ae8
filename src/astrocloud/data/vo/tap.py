"""TAP 1.1 over the archive (ivoa.obscore) and the catalogs, with ADQL, UWS and VOSI.

    GET|POST /tap/sync                    run a query, stream its result
    GET|POST /tap/async                   list your jobs | create a job (PHASE=RUN starts it)
    GET|POST|DELETE /tap/async/<id>       the job (WAIT=, PHASE= block) | ACTION=DELETE
    …/phase, …/executionduration, …/destruction, …/parameters, …/error, …/quote, …/owner,
    …/results, …/results/result           the parts of a job, as UWS 1.1 names them
    GET /tap/tables[/<table>]             VOSI tables (the caller's view)
    GET /tap/capabilities, /tap/availability, /tap/examples

Parameter names are matched without regard to case (values keep theirs). Every error is a
VOTable with QUERY_STATUS=ERROR and an HTTP 4xx status. A personal API token (Bearer, or the
password of HTTP Basic) makes a query see what its owner may see; without one, it sees what
is public."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from lxml import etree
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response, StreamingResponse

from astrocloud.core import errors
from astrocloud.core.i18n import _
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import PUBLIC, uses
from astrocloud.data.vo import services, uws, vosi
from astrocloud.data.vo.formats import parse_format
from astrocloud.data.vo.models import FINAL_PHASES
from astrocloud.data.vo.services import TapOps, Upload
from astrocloud.data.vo.votable import VOTABLE_TYPE, error_document, serve_errors_as_votable

PREFIX = "/tap"
TAP_NS = "http://www.ivoa.net/xml/TAPRegExt/v1.0"
MAX_WAIT = 60.0
OUTPUT_FORMATS = (
    ("application/x-votable+xml", ("votable", "votable/b2")),
    ("application/x-votable+xml;serialization=tabledata", ("votable/td",)),
    ("text/csv;header=present", ("csv",)),
    ("text/tab-separated-values", ("tsv",)),
    ("application/json", ("json",)),
    ("application/fits", ("fits",)),
)

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
serve_errors_as_votable(PREFIX + "/")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _params(request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """The request's parameters (query string, then form), names upper-cased; and the files
    of a multipart request by part name."""
    params: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for key, value in request.query_params.multi_items():
        params[key.upper()] = value
    if request.method == "POST":
        try:
            form = await request.form(max_files=20, max_fields=200)
        except Exception as exc:  # noqa: BLE001 - a broken body is the client's problem
            raise errors.ValidationFailed(_("The request body could not be read: %(reason)s"),
                                          reason=str(exc)[:200]) from None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[key] = await value.read()
            else:
                params[key.upper()] = value
    return params, files


def _uploads(params: dict[str, str], files: dict[str, bytes], settings) -> list[Upload]:
    """The tables a request uploads (UPLOAD=name,param:part or name,http://…)."""
    if not params.get("UPLOAD"):
        return []
    uploads = []
    for name, uri in services.parse_upload_param(params["UPLOAD"]):
        if uri.startswith("param:"):
            part = uri.removeprefix("param:")
            if part not in files:
                raise errors.ValidationFailed(
                    _("UPLOAD names the part “%(part)s”, but the request has no such file."),
                    field="UPLOAD", part=part[:64])
            content = files[part]
            if len(content) > settings.tap_upload_max_bytes:
                raise errors.ValidationFailed(_("An uploaded table may be at most %(n)s bytes."),
                                              field="UPLOAD", n=settings.tap_upload_max_bytes)
        else:
            content = services.fetch_upload(uri, settings.tap_upload_max_bytes)
        uploads.append(Upload(name, content))
    return uploads


def _check_request(params: dict[str, str]) -> None:
    request = params.get("REQUEST")
    if request is not None and request.strip().lower() != "doquery":
        raise errors.ValidationFailed(_("REQUEST must be doQuery, not “%(value)s”."),
                                      field="REQUEST", value=request[:40])


# ---- synchronous queries -----------------------------------------------------------------------


def _sync(request: Request, ctx: Context, params: dict[str, str], files: dict[str, bytes]):
    _check_request(params)
    uploads = _uploads(params, files, ctx.settings)
    prepared = services.prepare_query(
        ctx, query=params.get("QUERY"), lang=params.get("LANG"), maxrec=params.get("MAXREC"),
        response_format=params.get("RESPONSEFORMAT") or params.get("FORMAT"), uploads=uploads,
        base_url=_base(request))
    body = services.execute(ctx.database, prepared)
    disposition = f'inline; filename="result.{prepared.format.extension}"'
    return StreamingResponse(body, media_type=prepared.format.media_type,
                             headers={"Content-Disposition": disposition})


@pages.api_route("/tap/sync", methods=["GET", "POST"], openapi_extra=uses(TapOps.QUERY))
async def sync(request: Request, ctx: Ctx):
    params, files = await _params(request)
    return await run_in_threadpool(_sync, request, ctx, params, files)


# ---- asynchronous queries (UWS) ----------------------------------------------------------------


def _job_url(request: Request, job_id: str) -> str:
    return f"{_base(request)}/tap/async/{job_id}"


def _owner(ctx: Context, job) -> str | None:
    if job.owner_id is None:
        return None
    if ctx.subject.id == job.owner_id:
        return ctx.subject.username
    from astrocloud.core.identity.models import User

    return ctx.db.scalar(sa.select(User.username).where(User.id == job.owner_id))


def _xml(content: bytes, status: int = 200) -> Response:
    return Response(content, status_code=status, media_type=uws.UWS_TYPE)


def _text(value: str) -> Response:
    return Response(value, media_type="text/plain")


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@pages.get("/tap/async", openapi_extra=uses(TapOps.JOB_READ))
def job_list(request: Request, ctx: Ctx):
    phases = [v.upper() for k, v in request.query_params.multi_items() if k.upper() == "PHASE"]
    after = last = None
    for key, value in request.query_params.multi_items():
        if key.upper() == "AFTER":
            after = _datetime(value, "AFTER")
        elif key.upper() == "LAST":
            if not value.isdigit() or int(value) < 1:
                raise errors.ValidationFailed(_("LAST is a positive whole number."),
                                              field="LAST")
            last = int(value)
    jobs = services.list_jobs(ctx, phases=phases, after=after, last=last)
    return _xml(uws.render_job_list(jobs, lambda j: _owner(ctx, j),
                                    lambda j: _job_url(request, j.id)))


def _create(request: Request, ctx: Context, params: dict[str, str], files: dict[str, bytes]):
    _check_request(params)
    uploads = []
    if params.get("UPLOAD"):
        for _name, uri in services.parse_upload_param(params["UPLOAD"]):
            if uri.startswith("param:"):
                part = uri.removeprefix("param:")
                if part not in files:
                    raise errors.ValidationFailed(
                        _("UPLOAD names the part “%(part)s”, but the request has no such "
                          "file."), field="UPLOAD", part=part[:64])
                uploads.append(Upload(part, files[part]))
    job = services.create_job(ctx, params=params, uploads=uploads, base_url=_base(request))
    if (params.get("PHASE") or "").upper() == "RUN":
        services.run_job(ctx, job.id)
    return _see(_job_url(request, job.id))


@pages.post("/tap/async", openapi_extra=uses(TapOps.JOB_MANAGE))
async def create_job(request: Request, ctx: Ctx):
    params, files = await _params(request)
    return await run_in_threadpool(_create, request, ctx, params, files)


def _wait(request: Request, ctx: Context, job_id: str):
    """UWS 1.1 blocking: WAIT=<seconds> (-1: as long as we allow) while the job is in
    PHASE (or, without PHASE, in any phase that is not final)."""
    wait = phase = None
    for key, value in request.query_params.multi_items():
        if key.upper() == "WAIT":
            try:
                wait = float(value)
            except ValueError:
                raise errors.ValidationFailed(_("WAIT is a number of seconds."),
                                              field="WAIT") from None
        elif key.upper() == "PHASE":
            phase = value.upper()
    job = services.get_job(ctx, job_id)
    if wait is None:
        return job
    deadline = time.monotonic() + (MAX_WAIT if wait < 0 else min(wait, MAX_WAIT))
    start_phase = job.phase

    def waiting(current: str) -> bool:
        if phase is not None:
            return current == phase and current in ("PENDING", "QUEUED", "EXECUTING")
        return current == start_phase and current not in FINAL_PHASES

    current, started = job.phase, time.monotonic()
    while waiting(current) and time.monotonic() < deadline:
        time.sleep(0.05 if time.monotonic() - started < 2 else 0.2)  # short queries: soon
        current = services.current_phase(ctx.database, job.id) or current
    if current != job.phase:
        ctx.db.expire_all()  # the worker changed it: read the job afresh
        job = services.get_job(ctx, job_id)
    return job


@pages.get("/tap/async/{job_id}", openapi_extra=uses(TapOps.JOB_READ))
def job(request: Request, job_id: str, ctx: Ctx):
    found = _wait(request, ctx, job_id)
    return _xml(uws.render_job(found, _owner(ctx, found), _job_url(request, found.id)))


def _job_post(request: Request, ctx: Context, job_id: str, params: dict[str, str],
              files: dict[str, bytes]):
    if (params.get("ACTION") or "").upper() == "DELETE":
        services.delete_job(ctx, job_id)
        return _see(f"{_base(request)}/tap/async")
    if params.get("PHASE"):
        return _phase_change(request, ctx, job_id, params["PHASE"])
    uploads = [Upload(part, content) for part, content in files.items()]
    services.update_job(ctx, job_id, params=params, uploads=uploads)
    return _see(_job_url(request, job_id))


@pages.post("/tap/async/{job_id}", openapi_extra=uses(TapOps.JOB_MANAGE))
async def job_post(request: Request, job_id: str, ctx: Ctx):
    params, files = await _params(request)
    return await run_in_threadpool(_job_post, request, ctx, job_id, params, files)


@pages.delete("/tap/async/{job_id}", openapi_extra=uses(TapOps.JOB_MANAGE))
def job_delete(request: Request, job_id: str, ctx: Ctx):
    services.delete_job(ctx, job_id)
    return _see(f"{_base(request)}/tap/async")


@pages.get("/tap/async/{job_id}/phase", openapi_extra=uses(TapOps.JOB_READ))
def phase(job_id: str, ctx: Ctx):
    return _text(services.get_job(ctx, job_id).phase)


def _phase_change(request: Request, ctx: Context, job_id: str, value: str):
    action = value.strip().upper()
    if action == "RUN":
        services.run_job(ctx, job_id)
    elif action == "ABORT":
        services.abort_job(ctx, job_id)
    else:
        raise errors.ValidationFailed(_("PHASE is RUN or ABORT, not “%(value)s”."),
                                      field="PHASE", value=value[:40])
    return _see(_job_url(request, job_id))


@pages.post("/tap/async/{job_id}/phase", openapi_extra=uses(TapOps.JOB_MANAGE))
async def phase_post(request: Request, job_id: str, ctx: Ctx):
    params, _files = await _params(request)
    return await run_in_threadpool(_phase_change, request, ctx, job_id,
                                   params.get("PHASE") or "")


@pages.get("/tap/async/{job_id}/executionduration", openapi_extra=uses(TapOps.JOB_READ))
def execution_duration(job_id: str, ctx: Ctx):
    return _text(str(services.get_job(ctx, job_id).execution_duration))


def _set_duration(request: Request, ctx: Context, job_id: str, value: str | None):
    try:
        seconds = int(value or "")
    except ValueError:
        raise errors.ValidationFailed(_("EXECUTIONDURATION is a whole number of seconds."),
                                      field="EXECUTIONDURATION") from None
    services.set_execution_duration(ctx, job_id, seconds)
    return _see(_job_url(request, job_id))


@pages.post("/tap/async/{job_id}/executionduration", openapi_extra=uses(TapOps.JOB_MANAGE))
async def execution_duration_post(request: Request, job_id: str, ctx: Ctx):
    params, _files = await _params(request)
    return await run_in_threadpool(_set_duration, request, ctx, job_id,
                                   params.get("EXECUTIONDURATION"))


@pages.get("/tap/async/{job_id}/destruction", openapi_extra=uses(TapOps.JOB_READ))
def destruction(job_id: str, ctx: Ctx):
    return _text(uws.iso(services.get_job(ctx, job_id).destruction))


def _datetime(value: str | None, field: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat((value or "").strip().replace("Z", "+00:00"))
    except ValueError:
        raise errors.ValidationFailed(_("%(field)s is an ISO 8601 date and time, e.g. "
                                        "2026-12-31T12:00:00Z."), field=field,
                                      **{"field": field}) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _set_destruction(request: Request, ctx: Context, job_id: str, value: str | None):
    services.set_destruction(ctx, job_id, _datetime(value, "DESTRUCTION"))
    return _see(_job_url(request, job_id))


@pages.post("/tap/async/{job_id}/destruction", openapi_extra=uses(TapOps.JOB_MANAGE))
async def destruction_post(request: Request, job_id: str, ctx: Ctx):
    params, _files = await _params(request)
    return await run_in_threadpool(_set_destruction, request, ctx, job_id,
                                   params.get("DESTRUCTION"))


@pages.get("/tap/async/{job_id}/parameters", openapi_extra=uses(TapOps.JOB_READ))
def parameters(job_id: str, ctx: Ctx):
    return _xml(uws.render_parameters(services.get_job(ctx, job_id)))


@pages.post("/tap/async/{job_id}/parameters", openapi_extra=uses(TapOps.JOB_MANAGE))
async def parameters_post(request: Request, job_id: str, ctx: Ctx):
    params, files = await _params(request)

    def update():
        uploads = [Upload(part, content) for part, content in files.items()]
        services.update_job(ctx, job_id, params=params, uploads=uploads)
        return _see(_job_url(request, job_id))

    return await run_in_threadpool(update)


@pages.get("/tap/async/{job_id}/error", openapi_extra=uses(TapOps.JOB_READ))
def error(job_id: str, ctx: Ctx):
    found = services.get_job(ctx, job_id)
    if found.phase != "ERROR":
        raise errors.NotFound(_("The job has no error: it is %(phase)s."), phase=found.phase)
    return Response(error_document(found.error_message or "Error"), media_type=VOTABLE_TYPE)


@pages.get("/tap/async/{job_id}/quote", openapi_extra=uses(TapOps.JOB_READ))
def quote(job_id: str, ctx: Ctx):
    services.get_job(ctx, job_id)
    return _text("")


@pages.get("/tap/async/{job_id}/owner", openapi_extra=uses(TapOps.JOB_READ))
def owner(job_id: str, ctx: Ctx):
    return _text(_owner(ctx, services.get_job(ctx, job_id)) or "")


@pages.get("/tap/async/{job_id}/results", openapi_extra=uses(TapOps.JOB_READ))
def results(request: Request, job_id: str, ctx: Ctx):
    found = services.get_job(ctx, job_id)
    return _xml(uws.render_results(found, _job_url(request, found.id)))


@pages.get("/tap/async/{job_id}/results/result", openapi_extra=uses(TapOps.JOB_READ))
def result(job_id: str, ctx: Ctx):
    found, stored, chunks = services.open_result(ctx, job_id)
    extension = (found.result_uri or "result").rsplit(".", 1)[-1]
    return StreamingResponse(chunks, media_type=found.result_type or stored.content_type,
                             headers={"Content-Length": str(stored.size),
                                      "Content-Disposition":
                                          f'inline; filename="{found.id}.{extension}"'})


# ---- VOSI --------------------------------------------------------------------------------------

VS = vosi.VS
XSI = vosi.XSI
VOSI_TABLES = "http://www.ivoa.net/xml/VOSITables/v1.0"


def _column_element(parent, column) -> None:
    element = etree.SubElement(parent, "column")
    etree.SubElement(element, "name").text = services.adql_name(column.name)
    if column.description:
        etree.SubElement(element, "description").text = column.description
    if column.unit:
        etree.SubElement(element, "unit").text = column.unit
    if column.ucd:
        etree.SubElement(element, "ucd").text = column.ucd
    if column.utype:
        etree.SubElement(element, "utype").text = column.utype
    datatype = etree.SubElement(element, "dataType")
    datatype.set(f"{{{XSI}}}type", "vs:VOTableType")
    if column.arraysize:
        datatype.set("arraysize", column.arraysize)
    if column.xtype:
        datatype.set("extendedType", column.xtype)
    datatype.text = column.datatype
    for flag, on in (("indexed", column.indexed), ("primary", column.principal),
                     ("std", column.std)):
        if on:
            etree.SubElement(element, "flag").text = flag if flag != "primary" else "principal"


def _table_element(parent, table, detail: bool = True):
    element = etree.SubElement(parent, "table")
    if table.table_type == "view":
        element.set("type", "view")
    etree.SubElement(element, "name").text = table.name
    if table.description:
        etree.SubElement(element, "description").text = table.description
    if table.utype:
        etree.SubElement(element, "utype").text = table.utype
    if detail:
        for column in table.columns:
            _column_element(element, column)
        for index, (target, pairs) in enumerate(table.keys):
            key = etree.SubElement(element, "foreignKey")
            etree.SubElement(key, "targetTable").text = target
            for from_column, target_column in pairs:
                fk = etree.SubElement(key, "fkColumn")
                etree.SubElement(fk, "fromColumn").text = from_column
                etree.SubElement(fk, "targetColumn").text = target_column
            del index
    return element


def _tables(request: Request, ctx: Context) -> list:
    services.sync_tap_schema(ctx.database, ctx.settings)
    return services.tableset(ctx, _base(request))


@pages.get("/tap/tables", openapi_extra=uses(TapOps.QUERY))
def tables(request: Request, ctx: Ctx):
    detail = (request.query_params.get("detail") or "max").lower()
    if detail not in ("min", "max"):
        raise errors.ValidationFailed(_("detail is min or max."), field="detail")
    root = etree.Element(f"{{{VOSI_TABLES}}}tableset",
                         nsmap={"vosi": VOSI_TABLES, "vs": VS, "xsi": XSI})
    by_schema: dict[str, list] = {}
    for table in _tables(request, ctx):
        by_schema.setdefault(table.schema, []).append(table)
    descriptions = dict(services.SCHEMAS)
    for name, found in by_schema.items():
        schema = etree.SubElement(root, "schema")
        etree.SubElement(schema, "name").text = name
        if descriptions.get(name):
            etree.SubElement(schema, "description").text = descriptions[name]
        for table in found:
            _table_element(schema, table, detail == "max")
    return Response(etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                    media_type="text/xml")


@pages.get("/tap/tables/{name}", openapi_extra=uses(TapOps.QUERY))
def table(request: Request, name: str, ctx: Ctx):
    found = {t.name.lower(): t for t in _tables(request, ctx)}.get(name.lower())
    if found is None:
        raise errors.NotFound(_("There is no table “%(name)s”, or you may not see it."),
                              name=name[:100])
    holder = etree.Element("holder")
    element = _table_element(holder, found)
    root = etree.Element(f"{{{VS}}}table", nsmap={"vs": VS, "xsi": XSI})
    for child in element:
        root.append(child)
    return Response(etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                    media_type="text/xml")


@pages.get("/tap/capabilities", openapi_extra=PUBLIC)
def capabilities(request: Request):
    base = f"{_base(request)}/tap"
    settings = request.app.state.settings

    def details(capability) -> None:
        model = etree.SubElement(capability, "dataModel",
                                 {"ivo-id": "ivo://ivoa.net/std/ObsCore#core-1.1"})
        model.text = "ObsCore-1.1"
        for version, ivo_id in (("2.1", "ivo://ivoa.net/std/ADQL#v2.1"),
                                ("2.0", "ivo://ivoa.net/std/ADQL#v2.0")):
            language = etree.SubElement(capability, "language")
            etree.SubElement(language, "name").text = "ADQL"
            etree.SubElement(language, "version", {"ivo-id": ivo_id}).text = version
            etree.SubElement(language, "description").text = (
                f"ADQL {version}, translated for the database; geometry in ICRS degrees")
            features = etree.SubElement(language, "languageFeatures",
                                        type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo")
            for form in ("POINT", "CIRCLE", "BOX", "POLYGON", "CONTAINS", "INTERSECTS",
                         "DISTANCE", "COORD1", "COORD2", "AREA"):
                feature = etree.SubElement(features, "feature")
                etree.SubElement(feature, "form").text = form
            if version != "2.1":
                continue
            for kind, forms in (("adql-string", ("LOWER", "ILIKE")),
                                ("adql-offset", ("OFFSET",)),
                                ("adql-sets", ("UNION", "EXCEPT", "INTERSECT"))):
                group = etree.SubElement(
                    language, "languageFeatures",
                    type=f"ivo://ivoa.net/std/TAPRegExt#features-{kind}")
                for form in forms:
                    etree.SubElement(etree.SubElement(group, "feature"), "form").text = form
        for mime, aliases in OUTPUT_FORMATS:
            output = etree.SubElement(capability, "outputFormat")
            etree.SubElement(output, "mime").text = mime
            for alias in aliases:
                etree.SubElement(output, "alias").text = alias
        for method in ("ivo://ivoa.net/std/TAPRegExt#upload-inline",
                       "ivo://ivoa.net/std/TAPRegExt#upload-http",
                       "ivo://ivoa.net/std/TAPRegExt#upload-https"):
            etree.SubElement(capability, "uploadMethod", {"ivo-id": method})
        seconds = settings.tap_job_days * 86400
        retention = etree.SubElement(capability, "retentionPeriod")
        etree.SubElement(retention, "default").text = str(seconds)
        etree.SubElement(retention, "hard").text = str(seconds)
        duration = etree.SubElement(capability, "executionDuration")
        etree.SubElement(duration, "default").text = str(settings.tap_async_seconds)
        etree.SubElement(duration, "hard").text = str(settings.tap_async_seconds)
        output_limit = etree.SubElement(capability, "outputLimit")
        etree.SubElement(output_limit, "default", unit="row").text = \
            str(settings.tap_default_maxrec)
        etree.SubElement(output_limit, "hard", unit="row").text = str(settings.tap_max_rows)
        upload_limit = etree.SubElement(capability, "uploadLimit")
        etree.SubElement(upload_limit, "default", unit="byte").text = \
            str(settings.tap_upload_max_bytes)
        etree.SubElement(upload_limit, "hard", unit="byte").text = \
            str(settings.tap_upload_max_bytes)

    return vosi.capabilities(base, ("ivo://ivoa.net/std/TAP", base),
                             extra_ns={"tr": TAP_NS}, capability_type="tr:TableAccess",
                             details=details,
                             extra=[("ivo://ivoa.net/std/VOSI#tables", f"{base}/tables"),
                                    ("ivo://ivoa.net/std/DALI#examples", f"{base}/examples")])


@pages.get("/tap/availability", openapi_extra=PUBLIC)
def availability():
    return vosi.availability()


EXAMPLES = (
    ("cone", "Observations around a position",
     "SELECT TOP 100 obs_publisher_did, target_name, s_ra, s_dec, t_min, access_url\n"
     "FROM ivoa.obscore\n"
     "WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10.68, 41.27, 0.5)) = 1"),
    ("spectra", "Spectra taken by a telescope",
     "SELECT obs_id, target_name, em_min, em_max, access_url FROM ivoa.obscore\n"
     "WHERE dataproduct_type = 'spectrum' ORDER BY t_min DESC"),
    ("tables", "Every table and its description",
     "SELECT table_name, description FROM tap_schema.tables ORDER BY table_name"),
)


@pages.get("/tap/examples", openapi_extra=PUBLIC)
def examples():
    """DALI examples: a few queries as an XHTML document with RDFa, as TOPCAT reads them."""
    html = etree.Element("html", nsmap={None: "http://www.w3.org/1999/xhtml"})
    head = etree.SubElement(html, "head")
    etree.SubElement(head, "title").text = "AstroCloud TAP examples"
    body = etree.SubElement(html, "body", vocab="ivo://ivoa.net/std/DALI-examples")
    etree.SubElement(body, "h1").text = "Examples"
    for ident, title, query in EXAMPLES:
        div = etree.SubElement(body, "div", id=ident, resource=f"#{ident}",
                               typeof="example")
        etree.SubElement(div, "h2", property="name").text = title
        etree.SubElement(div, "pre", property="query").text = query
    return Response(etree.tostring(html, xml_declaration=True, encoding="UTF-8",
                                   doctype="<!DOCTYPE html>"),
                    media_type="application/xhtml+xml")


__all__ = ["pages", "parse_format"]
