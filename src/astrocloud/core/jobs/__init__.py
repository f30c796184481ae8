"""The job system: one way to run asynchronous work, embedded or on a distributed queue."""

from astrocloud.core.jobs.models import JOB_STATES, Job
from astrocloud.core.jobs.queue import TASKS, JobSystem, Retry, task, watcher

__all__ = ["JOB_STATES", "Job", "JobSystem", "Retry", "TASKS", "task", "watcher"]
