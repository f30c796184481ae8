"""HTTP routes for following jobs."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, field_validator

from astrocloud.core.jobs import services
from astrocloud.core.jobs.services import JobOps
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import Id, uses

api = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    task: str
    args: Any
    status: str
    attempts: int
    max_attempts: int
    progress: float
    error: str
    result: Any
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @field_validator("args", "result", mode="before")
    @classmethod
    def _json(cls, value):
        if isinstance(value, str):
            try:
                return json.loads(value) if value else None
            except ValueError:
                return value
        return value


class JobPage(BaseModel):
    total: int
    page: int
    per_page: int
    items: list[JobOut]


@api.get("", response_model=JobPage, openapi_extra=uses(JobOps.LIST),
         summary="Your jobs (all jobs for operators)")
def list_jobs(ctx: Ctx, status: Annotated[str | None, Query(max_length=16)] = None,
              task: Annotated[str | None, Query(max_length=100)] = None,
              page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
              per_page: Annotated[int, Query(ge=1, le=200)] = 50):
    result = services.list_jobs(ctx, status=status, task=task, page=page, per_page=per_page)
    return JobPage(total=result.total, page=result.page, per_page=result.per_page,
                   items=[JobOut.model_validate(j) for j in result.items])


@api.get("/{job_id}", response_model=JobOut, openapi_extra=uses(JobOps.LIST))
def get_job(job_id: Id, ctx: Ctx):
    return services.get_job(ctx, job_id=job_id)
