"""Following jobs: everyone sees their own; operators see all (the filter rule decides)."""

from __future__ import annotations

import sqlalchemy as sa

from astrocloud.core.errors import ValidationFailed
from astrocloud.core.jobs.models import JOB_STATES, Job
from astrocloud.core.security.operations import OperationSet, Query
from astrocloud.core.service import Context, Page, operation, paginate


class JobOps(OperationSet):
    LIST = Query("core.job.list", resource="job", doc="Follow jobs: state, attempts, errors.")


@operation(JobOps.LIST)
def list_jobs(ctx: Context, *, status: str | None = None, task: str | None = None,
              page: int = 1, per_page: int = 50) -> Page:
    """Jobs the caller may see, newest first."""
    if status is not None and status not in JOB_STATES:
        raise ValidationFailed("Unknown job state; choose from %(choices)s.", field="status",
                               choices=", ".join(JOB_STATES))
    stmt = ctx.visible(sa.select(Job).order_by(Job.created_at.desc(), Job.id.desc()))
    if status:
        stmt = stmt.where(Job.status == status)
    if task:
        stmt = stmt.where(Job.task == task[:100])
    return paginate(ctx.db, stmt, page, per_page)


@operation(JobOps.LIST)
def get_job(ctx: Context, *, job_id: int) -> Job:
    """One job, if the caller may see it."""
    return ctx.get_visible(Job, job_id, what="job")
