"""Storage jobs: replicate a file to the sites its placement asks for, remove replaced bytes,
and sweep every replica for integrity, repairing what is missing or corrupt from a good copy.

Transfers never hold a database transaction open: state is read, the bytes move, and the
outcome is written in a short transaction of its own.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from astrocloud.core.db import utcnow
from astrocloud.core.jobs import Retry, task
from astrocloud.core.storage import checksums
from astrocloud.core.storage.backends import ObjectMissing, StorageError
from astrocloud.core.storage.dal import Unavailable
from astrocloud.core.storage.models import Replica, Site, StoredFile
from astrocloud.core.storage.placement import Costs, origin_of

log = logging.getLogger("astrocloud.storage")


def mark_bad(runtime, replica_id: int, reason: str) -> None:
    """Flag a replica that failed a read or a check; the next repair pass replaces it."""
    with runtime.database.session() as db:
        replica = db.get(Replica, replica_id)
        if replica is not None and replica.status == "ok":
            replica.status = reason if reason in ("missing", "corrupt") else "failed"
            replica.last_error = f"{reason} (found {utcnow():%Y-%m-%d %H:%M:%S} UTC)"
            file_id = replica.file_id
        else:
            return
    runtime.jobs.enqueue("storage.replicate", {"file_id": file_id})


@task("storage.replicate", retries=8, retry_delay=2)
def replicate(runtime, file_id: int) -> dict:
    """Bring every replica of a file that is not `ok` to `ok`, copying from a good one and
    verifying the checksum at the target by reading the copy back (in the algorithm the
    file's record names)."""
    storage = runtime.storage
    with runtime.database.session(write=False) as db:
        record = db.get(StoredFile, file_id)
        if record is None:
            return {"file_id": file_id, "skipped": "the file was deleted"}
        todo = [(r.id, r.site) for r in record.replicas if r.status != "ok"]
        if not todo:
            return {"file_id": file_id, "copied": 0}
        key, expected, uri = record.object_key, record.checksum, record.uri
        algorithm = checksums.split(expected)[0]
        sources = {}
        for replica_id, site in todo:
            if not site.writable:
                continue
            bad: list[tuple[int, str]] = []
            try:
                sources[replica_id] = (site, storage.open(
                    db, record, requester=origin_of(site),
                    on_bad_replica=lambda rid, why, bad=bad: bad.append((rid, why))), bad)
            except Unavailable as exc:
                sources[replica_id] = (site, exc, [])
    copied, problems = 0, []
    for replica_id, (site, stream, bad) in sources.items():
        for bad_id, why in bad:
            _set(runtime, bad_id, why, f"{why} when read for replication")
        if isinstance(stream, Exception):
            problems.append(f"{site.name}: {stream}")
            _set(runtime, replica_id, "failed", str(stream), attempt=True)
            continue
        target = storage.store(site)
        try:
            target.write(key, stream, algorithm=algorithm)
            found = target.checksum(key, algorithm)
        except (StorageError, Unavailable) as exc:
            problems.append(f"{site.name}: {exc}")
            _set(runtime, replica_id, "failed", str(exc), attempt=True)
            continue
        if found != expected:
            target.delete(key)
            problems.append(f"{site.name}: checksum mismatch after copy")
            _set(runtime, replica_id, "failed", "checksum mismatch after copy", attempt=True)
            continue
        _set(runtime, replica_id, "ok", "", attempt=True)
        copied += 1
    waiting = [s.name for _, s in todo if not s.writable]
    if problems:
        raise Retry(f"{uri}: " + "; ".join(problems))
    return {"file_id": file_id, "copied": copied, "waiting_for_sites": waiting}


def _set(runtime, replica_id: int, status: str, error: str, attempt: bool = False) -> None:
    with runtime.database.session() as db:
        replica = db.get(Replica, replica_id)
        if replica is None:
            return
        replica.status = status
        replica.last_error = error[:500]
        if attempt:
            replica.attempts += 1
        if status == "ok":
            replica.verified_at = utcnow()


@task("storage.remove_object", retries=5, retry_delay=10)
def remove_object(runtime, site_id: int, key: str) -> dict:
    """Delete bytes no file refers to any more (after a delete or a new version)."""
    with runtime.database.session(write=False) as db:
        site = db.get(Site, site_id)
        in_use = db.scalar(sa.select(StoredFile.id).where(StoredFile.object_key == key))
        if site is None or in_use is not None:
            return {"removed": False}
        store = runtime.storage.store(site)
    try:
        store.delete(key)
    except StorageError as exc:
        raise Retry(f"{site.name}: {exc}") from None
    return {"removed": True, "site": site.name}


@task("storage.sweep", every_minutes=60)
def sweep(runtime, deep: bool = False, batch: int = 500) -> dict:
    """Check every replica at every reachable site (size, and with `deep` the checksum), mark
    what is missing or corrupt, make sure each file has as many copies as it wants, and queue
    repairs from good copies. A site that is down is skipped, not written off."""
    storage = runtime.storage
    checked = bad = added = 0
    to_repair: set[int] = set()
    after = 0
    while True:
        with runtime.database.session(write=False) as db:
            files = list(db.scalars(sa.select(StoredFile).where(StoredFile.id > after)
                                    .order_by(StoredFile.id).limit(batch)))
            if not files:
                break
            after = files[-1].id
            sites = [s for s in db.scalars(sa.select(Site)) if s.writable]
            plans = []
            for record in files:
                replicas = [(r.id, r.status, r.site) for r in record.replicas]
                plans.append((record.id, record.object_key, record.size,
                              record.checksum, record.copies_wanted,
                              replicas, Costs(db, origin_of(replicas[0][2])).order(sites)
                              if replicas else sites))
        for file_id, key, size, expected, wanted, replicas, ordered_sites in plans:
            for replica_id, status, site in replicas:
                if not site.readable:
                    continue
                if status != "ok":
                    to_repair.add(file_id)
                    continue
                checked += 1
                problem = _check(storage.store(site), key, size, expected, deep)
                if problem:
                    bad += 1
                    _set(runtime, replica_id, problem, f"{problem} (sweep)")
                    to_repair.add(file_id)
            have = {site.id for _, _, site in replicas}
            missing_count = wanted - len(have)
            if missing_count > 0:
                new_sites = [s for s in ordered_sites if s.id not in have][:missing_count]
                with runtime.database.session() as db:
                    for site in new_sites:
                        db.add(Replica(file_id=file_id, site_id=site.id, status="pending"))
                        added += 1
                if new_sites:
                    to_repair.add(file_id)
    repair_jobs = [runtime.jobs.enqueue("storage.replicate", {"file_id": file_id})
                   for file_id in sorted(to_repair)]
    return {"checked": checked, "bad": bad, "added": added, "repair_jobs": repair_jobs}


def _check(store, key: str, size: int, expected: str, deep: bool) -> str | None:
    try:
        found = store.size(key)
        if found is None:
            return "missing"
        if found != size:
            return "corrupt"
        if deep and store.checksum(key, checksums.split(expected)[0]) != expected:
            return "corrupt"
    except ObjectMissing:
        return "missing"
    except StorageError as exc:
        log.warning("sweep could not check %s: %s", key, exc)
    return None
