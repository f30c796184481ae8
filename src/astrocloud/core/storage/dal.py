"""The data-access layer: one interface to every file on the platform, wherever it lives.

Upper systems name files logically — `ac://archive/<collection>/<path>`, `ac://vos/<user>/<path>`
— and never care which sites hold them. A write lands at the site nearest its origin and is
recorded with its size and checksum; the other copies its placement rule asks for are made by
transfer jobs afterwards. A read goes to the nearest healthy replica for the requester and falls
through to the next one when a site is down or a copy is bad, queueing the bad copy for repair.
"""

from __future__ import annotations

import logging
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.orm import Session

from astrocloud.core.config import Settings
from astrocloud.core.db import utcnow
from astrocloud.core.errors import NotFound, ValidationFailed
from astrocloud.core.storage import checksums
from astrocloud.core.storage.backends import (
    ObjectMissing,
    SiteStore,
    StorageError,
    TooLarge,
    open_store,
)
from astrocloud.core.storage.models import Replica, Site, StoredFile
from astrocloud.core.storage.placement import Costs, Origin, choose_sites, origin_of

log = logging.getLogger("astrocloud.storage")

SCHEME = "ac://"
NAMESPACES = ("archive", "vos", "previews", "jobs", "scratch")
MAX_PATH = 1024
MAX_SEGMENT = 255
VERIFY_BEFORE_SEND_BYTES = 64 * 1024 * 1024
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


class Unavailable(Exception):
    """No healthy replica of a file could be read."""


@dataclass(frozen=True)
class LogicalName:
    namespace: str
    path: str

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.namespace}/{self.path}"


@dataclass(frozen=True)
class Staged:
    """Bytes uploaded to a site under a fresh key, not yet recorded as any file's content."""

    name: LogicalName
    key: str
    size: int
    checksum: str  # "<algorithm>:<hex>"
    site_id: int
    site_name: str
    target_ids: list[int]
    origin_site_id: int | None


def check_path(path: str, *, field: str = "path") -> str:
    """Validate a relative logical path: no traversal, no control characters, sane lengths."""
    if not isinstance(path, str) or not path or path.startswith("/") or path.endswith("/"):
        raise ValidationFailed("A path must be relative and name a file: “a/b.fits”.",
                               field=field)
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise ValidationFailed("A path may be at most %(n)s bytes long.", field=field,
                               n=MAX_PATH)
    if _BAD_CHARS.search(path):
        raise ValidationFailed("A path may not contain control characters or backslashes.",
                               field=field)
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise ValidationFailed("A path may not contain empty, “.” or “..” parts.",
                                   field=field)
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT:
            raise ValidationFailed("A name may be at most %(n)s bytes long.", field=field,
                                   n=MAX_SEGMENT)
    return path


def parse_uri(uri: str) -> LogicalName:
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise ValidationFailed("A logical name starts with ac://, e.g. ac://vos/alice/x.fits.",
                               field="uri")
    namespace, _, path = uri[len(SCHEME):].partition("/")
    if namespace not in NAMESPACES:
        raise ValidationFailed("Unknown storage namespace “%(ns)s”.", field="uri", ns=namespace)
    return LogicalName(namespace, check_path(path, field="uri"))


@lru_cache(maxsize=256)
def _store_cached(storage_url: str, secret: str, ttl: int, s3_key: str, s3_secret: str
                  ) -> SiteStore:
    options = {"key": s3_key, "secret": s3_secret} if s3_key else {}
    return open_store(storage_url, secret=secret, ttl=ttl, s3_options=options)


class DataAccess:
    """The one interface to stored files. Methods take the caller's session; the caller's unit
    of work commits, and follow-ups (replication, removal of replaced bytes) run after it."""

    def __init__(self, settings: Settings, enqueue: Callable[..., object] | None = None):
        self.settings = settings
        # enqueue(task, args, db=session): queued with the caller's transaction
        self.enqueue = enqueue or (lambda task, args, db=None: None)

    # -- sites ----------------------------------------------------------------------------------

    def store(self, site: Site) -> SiteStore:
        s = self.settings
        return _store_cached(site.storage_url, s.effective_secret_key(),
                             s.storage_signing_ttl_seconds, s.s3_access_key_id or "",
                             s.s3_secret_access_key or "")

    def local_site(self, db: Session) -> Site:
        """The site this instance runs at (configuration; default the first site)."""
        stmt = sa.select(Site).order_by(Site.position, Site.id)
        if self.settings.site:
            site = db.scalar(stmt.where(Site.name == self.settings.site))
            if site is None:
                raise StorageError(f"configured site {self.settings.site!r} does not exist")
            return site
        site = db.scalar(stmt.limit(1))
        if site is None:
            raise StorageError("no storage site is configured: run `astrocloud db upgrade`")
        return site

    # -- writing --------------------------------------------------------------------------------

    def write(self, db: Session, uri: str, chunks: Iterable[bytes], *,
              origin: Origin | None = None, owner_id: int | None = None,
              content_type: str = "application/octet-stream", max_bytes: int | None = None
              ) -> StoredFile:
        """Store bytes under a logical name (a new file, or a new version of an existing one),
        in one call: `stage` then `record`. Nothing becomes visible unless both the upload and
        the caller's transaction succeed."""
        staged = self.stage(db, uri, chunks, origin=origin, max_bytes=max_bytes)
        return self.record(db, staged, owner_id=owner_id, content_type=content_type)

    def stage(self, db: Session, uri: str, chunks: Iterable[bytes], *,
              origin: Origin | None = None, max_bytes: int | None = None,
              algorithm: str | None = None) -> Staged:
        """Upload the bytes to the site nearest their origin, under a fresh key, without
        touching the database beyond reading the sites. Long uploads should stage outside
        any write transaction, then `record` in a short one (or `discard` on failure).
        The checksum is computed in `algorithm` (default: the configured one)."""
        name = parse_uri(uri)
        origin = origin or origin_of(self.local_site(db))
        targets = choose_sites(db, name.uri, origin, self.settings.storage_default_copies)
        if not targets:
            raise StorageError("no storage site is accepting writes")
        key = f"{name.namespace}/{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}"
        site = targets[0]
        try:
            size, checksum = self.store(site).write(
                key, chunks, max_bytes=max_bytes,
                algorithm=algorithm or self.settings.storage_checksum)
        except TooLarge:
            raise ValidationFailed("The upload is larger than the %(n)s bytes allowed.",
                                   field="file", n=max_bytes) from None
        return Staged(name=name, key=key, size=size, checksum=checksum, site_id=site.id,
                      site_name=site.name, target_ids=[t.id for t in targets],
                      origin_site_id=origin.site_id)

    def discard(self, db: Session, staged: Staged) -> None:
        """Remove staged bytes that will not be recorded."""
        site = db.get(Site, staged.site_id)
        if site is not None:
            self.store(site).delete(staged.key)

    def record(self, db: Session, staged: Staged, *, owner_id: int | None = None,
               content_type: str = "application/octet-stream") -> StoredFile:
        """Record staged bytes as the current content of their logical name, in the caller's
        transaction; replication and removal of replaced bytes are queued with it."""
        site = db.get(Site, staged.site_id)
        self._forget_on_rollback(db, site, staged.key)
        existing = db.scalar(sa.select(StoredFile).where(StoredFile.uri == staged.name.uri))
        replaced: list[tuple[int, str]] = []
        if existing is None:
            record = StoredFile(uri=staged.name.uri, namespace=staged.name.namespace,
                                path=staged.name.path)
            db.add(record)
        else:  # a new version: the old bytes go once the new ones are committed
            record = existing
            replaced = [(r.site_id, existing.object_key) for r in existing.replicas]
            for replica in list(existing.replicas):
                existing.replicas.remove(replica)
            db.flush()
        record.object_key = staged.key
        record.size = staged.size
        record.checksum = staged.checksum
        record.content_type = content_type or "application/octet-stream"
        record.origin_site_id = staged.origin_site_id
        record.owner_id = owner_id if owner_id is not None else record.owner_id
        record.copies_wanted = len(staged.target_ids)
        record.updated_at = utcnow()
        db.flush()
        db.add(Replica(file_id=record.id, site_id=staged.site_id, status="ok",
                       verified_at=utcnow()))
        for site_id in staged.target_ids:
            if site_id != staged.site_id:
                db.add(Replica(file_id=record.id, site_id=site_id, status="pending"))
        db.flush()
        # Queued with the caller's transaction: they start only once it has committed.
        if len(staged.target_ids) > 1:
            self.enqueue("storage.replicate", {"file_id": record.id}, db=db)
        for site_id, stale in replaced:
            self.enqueue("storage.remove_object", {"site_id": site_id, "key": stale}, db=db)
        return record

    def _forget_on_rollback(self, db: Session, site: Site, key: str) -> None:
        """If the caller's transaction rolls back, the bytes just written are removed too:
        a failed write leaves neither a row nor a file."""
        state = {"committed": False}
        store = self.store(site)

        def committed(_session) -> None:
            state["committed"] = True

        def rolled_back(_session, _transaction) -> None:
            if not state["committed"]:
                try:
                    store.delete(key)
                except StorageError as exc:  # the sweep's orphan pass will find it
                    log.warning("could not remove %s at %s after a rollback: %s", key,
                                site.name, exc)

        sa.event.listen(db, "after_commit", committed, once=True)
        sa.event.listen(db, "after_soft_rollback", rolled_back, once=True)

    # -- reading --------------------------------------------------------------------------------

    def stat(self, db: Session, uri: str) -> StoredFile:
        name = parse_uri(uri)
        record = db.scalar(sa.select(StoredFile).where(StoredFile.uri == name.uri))
        if record is None:
            raise NotFound("There is no file %(uri)s.", uri=name.uri)
        return record

    def list(self, db: Session, prefix: str, *, limit: int = 1000, after: str | None = None
             ) -> list[StoredFile]:
        """Files whose logical name starts with `prefix`, in name order (keyset paging)."""
        stmt = sa.select(StoredFile).where(StoredFile.uri.startswith(prefix, autoescape=True))
        if after:
            stmt = stmt.where(StoredFile.uri > after)
        return list(db.scalars(stmt.order_by(StoredFile.uri).limit(limit)))

    def replicas_in_order(self, db: Session, record: StoredFile,
                          requester: Origin | None = None) -> list[Replica]:
        """Healthy replicas, nearest to the requester first."""
        requester = requester or origin_of(self.local_site(db))
        costs = Costs(db, requester)
        replicas = [r for r in db.scalars(sa.select(Replica).where(Replica.file_id == record.id))
                    if r.status == "ok" and r.site.readable]
        return sorted(replicas, key=lambda r: (costs(r.site), r.site.position, r.site_id))

    def open(self, db: Session, record: StoredFile, *, start: int = 0, end: int | None = None,
             requester: Origin | None = None, on_bad_replica: Callable[[int, str], None] | None
             = None) -> Iterator[bytes]:
        """Stream a file (or bytes [start, end)) from the nearest healthy replica, failing over.

        A whole file up to 64 MiB is checked against its checksum before the first byte leaves,
        so a corrupt copy is skipped unseen; larger files are checked as they stream, and a
        mismatch aborts the transfer rather than deliver wrong bytes. A byte range is not
        checked (its checksum is not known); the sweep's deep pass checks whole replicas.
        Each file is checked in the algorithm its record names. Bad replicas are reported
        through `on_bad_replica(replica_id, reason)` for repair."""
        replicas = self.replicas_in_order(db, record, requester)
        if not replicas:
            raise Unavailable(f"no healthy replica of {record.uri}")
        plan = [(r.id, r.site, self.store(r.site)) for r in replicas]
        whole = start == 0 and end is None
        report = on_bad_replica or (lambda rid, reason: None)
        expected = record.checksum
        if whole and record.size <= VERIFY_BEFORE_SEND_BYTES:
            return self._verified_copy(plan, record, expected, report)
        return self._streamed(plan, record, start, end, expected if whole else None, report)

    def _verified_copy(self, plan, record, expected, report) -> Iterator[bytes]:
        for replica_id, site, store in plan:
            # handed to _drain, which closes it once the caller has read it all
            spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
            algorithm, want = checksums.split(expected)
            digest = checksums.new(algorithm)
            try:
                for chunk in store.read(record.object_key):
                    digest.update(chunk)
                    spool.write(chunk)
            except ObjectMissing:
                spool.close()
                report(replica_id, "missing")
                continue
            except StorageError as exc:
                spool.close()
                log.warning("site %s unreadable for %s: %s", site.name, record.uri, exc)
                continue
            if digest.hexdigest() != want:
                spool.close()
                report(replica_id, "corrupt")
                continue
            spool.seek(0)
            return _drain(spool)
        raise Unavailable(f"no healthy replica of {record.uri} could be read")

    def _streamed(self, plan, record, start, end, expected, report) -> Iterator[bytes]:
        position = start
        algorithm, want = checksums.split(expected) if expected else (None, None)
        digest = checksums.new(algorithm) if algorithm else None
        for replica_id, site, store in plan:
            try:
                for chunk in store.read(record.object_key, position, end):
                    position += len(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    yield chunk
                if digest is not None and digest.hexdigest() != want:
                    report(replica_id, "corrupt")
                    raise Unavailable(f"{record.uri}: the copy at {site.name} is corrupt")
                return
            except ObjectMissing:
                report(replica_id, "missing")
            except StorageError as exc:
                log.warning("site %s failed while reading %s at byte %s: %s", site.name,
                            record.uri, position, exc)
            # fall through to the next replica, resuming where this one stopped
        raise Unavailable(f"no healthy replica of {record.uri} could be read")

    # -- removing -------------------------------------------------------------------------------

    def delete(self, db: Session, record: StoredFile) -> None:
        """Forget a file; its bytes are removed from every site after the commit."""
        targets = [(r.site_id, record.object_key) for r in record.replicas]
        db.delete(record)
        for site_id, key in targets:
            self.enqueue("storage.remove_object", {"site_id": site_id, "key": key}, db=db)


def _drain(spool) -> Iterator[bytes]:
    with spool:
        while True:
            chunk = spool.read(1024 * 1024)
            if not chunk:
                return
            yield chunk
