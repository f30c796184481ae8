"""Cloud channel jobs: the hourly clean-up of VOSpace transfer jobs.

Every VOSpace (UWS) transfer job is a row of the platform's job table (task
`cloud.vos.transfer`). UWS gives each job a destruction time, after which the service destroys
it; ours is the job's creation time plus

* `vos_transfer_lifetime_seconds` (default 7 days) once the job has been run, and
* `vos_transfer_pending_seconds` (default 1 day) while it is PENDING: a job nobody runs
  expires sooner instead of staying forever.

`cloud.vos.expire_transfers` runs every hour on the job queue's workers (as `storage.sweep`
does) and removes the jobs past their destruction time.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from astrocloud.core.db import utcnow
from astrocloud.core.jobs import task
from astrocloud.core.jobs.models import Job

TRANSFER_TASK = "cloud.vos.transfer"
PENDING_STATUS = "queued"  # a transfer job's row status until it is run (phase PENDING)
DEFAULT_LIFETIME_SECONDS = 7 * 24 * 3600
DEFAULT_PENDING_SECONDS = 24 * 3600


def _setting(settings, name: str, default: int) -> dt.timedelta:
    # Read defensively so that a deployment whose Settings do not name the field yet gets the
    # documented default.
    return dt.timedelta(seconds=int(getattr(settings, name, default)))


def transfer_lifetime(settings) -> dt.timedelta:
    """How long a transfer job that has been run is kept."""
    return _setting(settings, "vos_transfer_lifetime_seconds", DEFAULT_LIFETIME_SECONDS)


def pending_lifetime(settings) -> dt.timedelta:
    """How long a transfer job that is never run is kept."""
    return _setting(settings, "vos_transfer_pending_seconds", DEFAULT_PENDING_SECONDS)


def destruction_of(job: Job, settings) -> dt.datetime:
    """A transfer job's UWS destruction time."""
    pending = job.status == PENDING_STATUS
    return job.created_at + (pending_lifetime(settings) if pending
                             else transfer_lifetime(settings))


@task("cloud.vos.expire_transfers", every_minutes=60)
def expire_transfers(runtime, now: dt.datetime | str | None = None) -> dict:
    """Remove the VOSpace transfer jobs past their destruction time (see the module
    docstring); `now` is for tests and for catching up."""
    moment = dt.datetime.fromisoformat(now) if isinstance(now, str) else now or utcnow()
    settings = runtime.settings
    with runtime.database.session() as db:
        removed = db.execute(sa.delete(Job).where(Job.task == TRANSFER_TASK, sa.or_(
            Job.created_at <= moment - transfer_lifetime(settings),
            sa.and_(Job.status == PENDING_STATUS,
                    Job.created_at <= moment - pending_lifetime(settings)))))
        return {"removed": removed.rowcount}
