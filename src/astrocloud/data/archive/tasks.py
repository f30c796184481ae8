"""The archive's jobs — ingest a batch of received files, grade and preview files — and the
watcher every worker runs beside them, which takes what telescopes copy into their drop
folders."""

from __future__ import annotations

import logging
import threading

from astrocloud.core.jobs import task, watcher
from astrocloud.data.archive import services

log = logging.getLogger("astrocloud.archive")
SWEEP_SECONDS = 60


@task("data.archive.ingest")
def ingest(runtime, ids: list[int]) -> dict:
    """Archive, refuse as duplicates, or quarantine the received files `ids`."""
    return services.ingest_batch(runtime, ids)


@task("data.archive.qc", retries=2, retry_delay=10)
def quality(runtime, file_id: int | None = None, file_ids: list[int] | None = None) -> dict:
    """Grade archived files (one, or a batch just ingested) and make their previews."""
    grades: dict[str, int] = {}
    for ident in [*(file_ids or []), *([file_id] if file_id is not None else [])]:
        try:
            grade = services.check_quality(runtime, ident).get("grade", "missing")
        except Exception:  # one file's failure must not leave the rest of the batch ungraded
            log.exception("quality control of archived file %s failed", ident)
            grade = "error"
        grades[grade] = grades.get(grade, 0) + 1
    if grades.get("error"):
        from astrocloud.core.jobs import Retry

        raise Retry(f"quality control failed for {grades['error']} file(s)")
    return grades


@watcher("data.archive.drop-folders")
def watch_drop_folders(runtime):
    """Watch the drop folders with watchdog (inotify on Linux): a change schedules a claim once
    the file has had time to settle, and a claim every minute catches anything missed (an
    event lost, a file that was still settling)."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    root = runtime.settings.home / "archive" / "drop"
    root.mkdir(parents=True, exist_ok=True)
    settle = runtime.settings.archive_drop_settle_seconds
    pending: dict[str, threading.Timer] = {}
    lock = threading.Lock()

    def claim():
        with lock:
            pending.pop("claim", None)
        try:
            services.claim_dropped(runtime)
        except Exception:  # the periodic task will try again
            log.exception("claiming dropped files failed")

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event):
            if event.is_directory:
                return
            with lock:  # one claim per quiet period, not one per event
                timer = pending.get("claim")
                if timer is not None:
                    timer.cancel()
                timer = threading.Timer(settle + 0.2, claim)
                timer.daemon = True
                pending["claim"] = timer
                timer.start()

    observer = Observer()
    observer.schedule(Handler(), str(root), recursive=True)
    observer.daemon = True
    observer.start()
    stopping = threading.Event()

    def sweep():
        while not stopping.wait(SWEEP_SECONDS):
            claim()

    sweeper = threading.Thread(target=sweep, name="drop-folder-sweep", daemon=True)
    sweeper.start()

    def stop():
        stopping.set()
        observer.stop()
        with lock:
            for timer in pending.values():
                timer.cancel()
        observer.join(5)

    return stop
