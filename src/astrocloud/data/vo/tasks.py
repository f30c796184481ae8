"""The TAP service's jobs: asynchronous queries, and the hourly removal of expired ones."""

from __future__ import annotations

from astrocloud.core.jobs import task
from astrocloud.data.vo import services


@task("data.tap.run")
def run(runtime, job_id: str) -> dict:
    """Run an asynchronous TAP query (a UWS job) and store its result."""
    return services.run_async(runtime, job_id)


@task("data.tap.destroy_expired", every_minutes=60)
def destroy_expired(runtime) -> dict:
    """Delete asynchronous queries past their destruction time, with their results."""
    return services.destroy_expired(runtime)
