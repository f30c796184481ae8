"""The cross-match job: a large match runs on the job system as its owner, and its result is
written to the data-access layer for the owner to fetch."""

from __future__ import annotations

from astrocloud.core.jobs import task
from astrocloud.data.xmatch import services


@task(services.TASK)
def run(runtime, **args) -> dict:
    """Match, write the result, and say what was found (kept in the job's record)."""
    return services.run_job(runtime, **args)
