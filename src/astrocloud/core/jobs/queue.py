"""The job system: every piece of asynchronous work goes through here.

Two modes, chosen by `job_backend`, with the same task code:

* `embedded` — huey on a SQLite file in $ASTROCLOUD_HOME; `astrocloud serve` works the queue in
  threads of its own process, so nothing else needs to run;
* `redis`    — huey on Redis; `astrocloud worker` processes on any machine work the queue.

Every job also has a row in the `jobs` table — its state, attempts, error and result — so users
and admins can follow it; huey is the transport, the table is the record.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from huey import RedisHuey, SqliteHuey
from huey.consumer import Consumer
from huey.exceptions import RetryTask

from astrocloud.core.config import Settings
from astrocloud.core.db import Database, utcnow
from astrocloud.core.jobs.models import Job

log = logging.getLogger("astrocloud.jobs")

@dataclass(frozen=True)
class TaskSpec:
    name: str
    fn: Callable[..., Any]
    retries: int
    retry_delay: int
    every_minutes: int | None = None  # also run periodically


TASKS: dict[str, TaskSpec] = {}


def task(name: str, *, retries: int = 0, retry_delay: int = 5, every_minutes: int | None = None):
    """Declare a task: `fn(runtime, **args)`. Raise `Retry` to try again later; with
    `every_minutes` the queue's workers also run it on that schedule."""

    def decorate(fn):
        TASKS[name] = TaskSpec(name, fn, retries, retry_delay, every_minutes)
        return fn

    return decorate


# Things a worker process runs beside the queue while it works (e.g. the archive's drop-folder
# watcher): `start(runtime)` returns a function that stops it.
WATCHERS: dict[str, Callable[[Any], Callable[[], None]]] = {}


def watcher(name: str):
    """Declare a watcher that every worker (embedded or `astrocloud worker`) starts."""

    def decorate(fn):
        WATCHERS[name] = fn
        return fn

    return decorate


class Retry(Exception):
    """Raised by a task that should be tried again after its retry delay."""


class EmbeddedConsumer(Consumer):
    """A huey consumer living inside another program (the web server, the tests): the host
    owns the process's signals."""

    def _set_signal_handlers(self):
        return None


class JobSystem:
    """The queue, the task registry bound to it, and the `jobs` table."""

    def __init__(self, settings: Settings, database: Database):
        self.settings = settings
        self.database = database
        self.runtime: Any = None  # set by the composition root (what tasks receive)
        if settings.job_backend == "redis":
            self.huey = RedisHuey(settings.job_queue_name, url=settings.redis_url,
                                  results=False)
        else:
            settings.home.mkdir(parents=True, exist_ok=True)
            self.huey = SqliteHuey(settings.job_queue_name, results=False,
                                   filename=str(settings.home / "jobs.db"))
        self._bound: dict[str, Any] = {}
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()
        self._stop_watchers: list[Callable[[], None]] = []

    def _start_watchers(self) -> None:
        for name, start in WATCHERS.items():
            try:
                self._stop_watchers.append(start(self.runtime))
            except Exception:  # a watcher that cannot start must not stop the queue
                log.exception("watcher %s did not start", name)

    def _stop_all_watchers(self) -> None:
        for stop in self._stop_watchers:
            try:
                stop()
            except Exception:  # noqa: BLE001 - stopping is best effort
                log.exception("a watcher did not stop cleanly")
        self._stop_watchers = []

    def _bind(self, name: str):
        if name in self._bound:
            return self._bound[name]
        spec = TASKS[name]

        def run(job_id: int, args: dict, task=None):
            self._run(spec, job_id, args, task)

        bound = self.huey.task(retries=spec.retries, retry_delay=spec.retry_delay,
                               name=spec.name, context=True)(run)
        self._bound[name] = bound
        return bound

    def bind_all(self) -> None:
        from huey import crontab

        for name, spec in TASKS.items():
            self._bind(name)
            if spec.every_minutes and f"periodic:{name}" not in self._bound:
                def periodic(spec=spec):
                    self.enqueue(spec.name, {})

                self._bound[f"periodic:{name}"] = self.huey.periodic_task(
                    crontab(minute=f"*/{spec.every_minutes}"), name=f"periodic.{name}")(periodic)

    def enqueue(self, name: str, args: dict | None = None, *, owner_id: int | None = None,
                db=None, after_commit: Callable[[Callable[[], None]], None] | None = None) -> int:
        """Record a job and put it on the queue; returns the job's id.

        With a session (`db`), the job row is part of that session's transaction and the job is
        queued only once it has committed (through `after_commit`, or the session's own
        after-commit event). A job pushed for a transaction that rolled back finds no row and
        does nothing."""
        if name not in TASKS:
            raise KeyError(f"unknown task {name!r}")
        args = args or {}
        spec = TASKS[name]
        job = Job(task=name, args=json.dumps(args, sort_keys=True), owner_id=owner_id,
                  max_attempts=spec.retries + 1)
        if db is None:
            with self.database.session() as own:
                own.add(job)
                own.flush()
                job_id = job.id
            self._bind(name)(job_id, args)
            return job_id
        db.add(job)
        db.flush()
        job_id = job.id
        push = lambda: self._bind(name)(job_id, args)  # noqa: E731
        if after_commit is not None:
            after_commit(push)
        else:
            sa.event.listen(db, "after_commit", lambda _session: push(), once=True)
        return job_id

    def _update(self, job_id: int, **values) -> None:
        with self.database.session() as db:
            db.execute(sa.update(Job).where(Job.id == job_id).values(**values))

    def _run(self, spec: TaskSpec, job_id: int, args: dict, task) -> None:
        with self.database.session() as db:
            job = db.get(Job, job_id)
            if job is None:  # the record was removed: nothing to do
                return
            job.attempts += 1
            job.status = "running"
            job.started_at = job.started_at or utcnow()
        try:
            result = spec.fn(self.runtime, **args)
        except Retry as exc:
            retries_left = getattr(task, "retries", 0) if task is not None else 0
            if retries_left > 0:
                self._update(job_id, status="retrying", error=str(exc)[:2000])
                raise RetryTask(str(exc)) from None
            self._update(job_id, status="failed", error=str(exc)[:2000], finished_at=utcnow())
            return
        except Exception as exc:  # a task's failure is recorded, never lost, never re-raised
            log.error("job %s (%s) failed", job_id, spec.name, exc_info=exc)
            self._update(job_id, status="failed", finished_at=utcnow(),
                         error=f"{type(exc).__name__}: {exc}\n"
                               f"{traceback.format_exc(limit=5)}"[:4000])
            return
        self._update(job_id, status="done", progress=1.0, finished_at=utcnow(),
                     result=json.dumps(result, default=str)[:10000] if result is not None
                     else "")

    # -- workers ------------------------------------------------------------------------------

    def start_embedded(self, workers: int | None = None) -> None:
        """Work the queue in threads of this process (the embedded default's `serve`)."""
        with self._lock:
            if self._consumer is not None:
                return
            self.bind_all()
            self._consumer = EmbeddedConsumer(self.huey, workers=workers or
                                              self.settings.job_workers, worker_type="thread",
                                              periodic=True, check_worker_health=False,
                                              initial_delay=0.05, backoff=1.15, max_delay=0.5)
            self._consumer.start()
            self._start_watchers()

    def stop_embedded(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._stop_all_watchers()
                self._consumer.stop(graceful=True)
                self._consumer = None

    def run_worker(self, workers: int) -> None:
        """Work the queue until interrupted (`astrocloud worker`)."""
        self.bind_all()
        self._start_watchers()
        try:
            Consumer(self.huey, workers=workers, worker_type="thread", periodic=True,
                     initial_delay=0.1, backoff=1.15, max_delay=1.0).run()
        finally:
            self._stop_all_watchers()

    def wait(self, job_ids: list[int], timeout: float = 60.0) -> list[Job]:
        """Block until the jobs are done or failed (the CLI waits for what it started)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            with self.database.session(write=False) as db:
                jobs = list(db.scalars(sa.select(Job).where(Job.id.in_(job_ids))))
            if all(j.status in ("done", "failed") for j in jobs) or time.monotonic() > deadline:
                return jobs
            time.sleep(0.05)
