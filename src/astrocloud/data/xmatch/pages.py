"""The cross-match page of the Data channel.

    GET  /data/crossmatch            the form: a catalog or a file on the left, a catalog on
                                     the right, a radius, best or all matches
    POST /data/crossmatch            run it: a small match is shown at once (a preview and a
                                     CSV download); a large one becomes a job
    GET  /data/crossmatch?job=<id>   an asynchronous match: its state while it runs (the page
                                     reloads itself), then a preview and the download link
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from astrocloud.core import errors
from astrocloud.core.i18n import gettext
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import MAX_ID, uses
from astrocloud.core.web.templating import render
from astrocloud.data.catalogs import services as catalogs
from astrocloud.data.catalogs.services import CatalogOps
from astrocloud.data.xmatch import formats, routes, services
from astrocloud.data.xmatch.services import CrossmatchOps

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
SHOWN = 100  # rows shown on the page
PAGE_LIMIT = 5000  # rows of an immediate match offered for download from the page


def _message(ctx: Context, exc: errors.DomainError) -> list[str]:
    if isinstance(exc, errors.ValidationFailed):
        return [e["message"] for e in exc.localized(ctx.language)]
    return [exc.translated(ctx.language)]


def _page(request: Request, ctx: Context, *, status_code: int = 200, form: dict | None = None,
          **context):
    return render(request, "xmatch/crossmatch.html", status_code=status_code,
                  catalogs=catalogs.list_catalogs(ctx), form=form or {}, shown=SHOWN,
                  modes=services.MODES, max_radius=int(services.MAX_RADIUS_ARCSEC),
                  **context)


def _job_view(ctx: Context, job_id: int) -> dict:
    job = services.job_of(ctx, job_id)
    view: dict = {"job": job}
    if job.status == "done":
        stored = services.open_result(ctx, job_id)
        names, rows = services.preview(b"".join(stored.chunks), stored.format, SHOWN)
        view.update(job_columns=names, job_rows=rows,
                    download=f"/api/v1/data/crossmatch/{job_id}/result")
    elif job.status == "failed":
        view["problems"] = [gettext(ctx.language, "The cross-match failed.")]
    return view


@pages.get("/data/crossmatch", openapi_extra=uses(CatalogOps.READ, CrossmatchOps.RESULT))
def crossmatch_page(request: Request, ctx: Ctx,
                    job: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None):
    if job is None:
        return _page(request, ctx)
    return _page(request, ctx, **_job_view(ctx, job))


@pages.post("/data/crossmatch", openapi_extra=uses(CrossmatchOps.RUN, CatalogOps.READ))
async def run_crossmatch(request: Request, ctx: Ctx):
    form: dict = {}
    try:
        values, upload = await routes.read_request(request)
        form = {k: v for k, v in values.items() if isinstance(v, str) and k != "csrf_token"}
        kwargs = routes.parse(values, upload)
        kwargs["output"] = "votable"
        if kwargs["asynchronous"] is not True:
            kwargs["limit"] = min(kwargs["limit"], PAGE_LIMIT) \
                if isinstance(kwargs["limit"], int) else kwargs["limit"]
        outcome = await run_in_threadpool(lambda: services.request_crossmatch(ctx, **kwargs))
    except errors.DomainError as exc:
        if isinstance(exc, errors.PermissionDenied):
            raise
        status = 422 if isinstance(exc, errors.ValidationFailed) else exc.status
        problems = _message(ctx, exc)
        return await run_in_threadpool(lambda: _page(request, ctx, status_code=status,
                                                     form=form, problems=problems))
    if isinstance(outcome, services.Submitted):
        return RedirectResponse(f"/data/crossmatch?job={outcome.job_id}", status_code=303)

    def show():
        csv = base64.b64encode(formats.csv_bytes(outcome)).decode()
        names = outcome.table.column_names
        rows = [list(r) for r in zip(*[c.to_pylist() for c in
                                       outcome.table.slice(0, SHOWN).columns], strict=True)]
        return _page(request, ctx, form=form, result=outcome, columns=names, rows=rows,
                     download=f"data:text/csv;base64,{csv}")

    return await run_in_threadpool(show)
