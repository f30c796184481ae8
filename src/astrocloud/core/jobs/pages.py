"""Pages for following jobs: everyone sees their own, operators see all."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from astrocloud.core.jobs import JOB_STATES, services
from astrocloud.core.jobs.services import JobOps
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import Id, uses
from astrocloud.core.web.templating import render

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]


@pages.get("/jobs", openapi_extra=uses(JobOps.LIST))
def jobs(request: Request, ctx: Ctx, status: Annotated[str | None, Query(max_length=16)] = None,
         page: Annotated[int, Query(ge=1, le=1_000_000)] = 1):
    result = services.list_jobs(ctx, status=status or None, page=page, per_page=50)
    return render(request, "jobs/list.html", result=result, status=status or "",
                  states=JOB_STATES)


@pages.get("/jobs/{job_id}", openapi_extra=uses(JobOps.LIST))
def job(request: Request, ctx: Ctx, job_id: Id, notice: str | None = None):
    return render(request, "jobs/job.html", job=services.get_job(ctx, job_id=job_id),
                  notice=notice)
