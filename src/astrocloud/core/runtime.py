"""The long-lived parts of a running AstroCloud process, built once by the composition root
(the app factory, the CLI, a worker): settings, database, job system and data-access layer."""

from __future__ import annotations

from dataclasses import dataclass

from astrocloud.core.config import Settings
from astrocloud.core.db import Database
from astrocloud.core.jobs import JobSystem
from astrocloud.core.storage.dal import DataAccess


@dataclass
class Runtime:
    settings: Settings
    database: Database
    jobs: JobSystem
    storage: DataAccess


def build_runtime(settings: Settings, database: Database | None = None) -> Runtime:
    database = database or Database(settings.effective_database_url)
    jobs = JobSystem(settings, database)
    storage = DataAccess(settings,
                         enqueue=lambda name, args, db=None: jobs.enqueue(name, args, db=db))
    runtime = Runtime(settings, database, jobs, storage)
    jobs.runtime = runtime
    return runtime
