"""Physical storage at one site, through fsspec: local folders, S3-compatible object stores
(s3fs: Ceph, MinIO, Swift's S3 API), or a remote site's agent over HTTP.

Every backend writes atomically — a partial upload never becomes visible under its key — and
computes size and checksum (`checksums`, "<algorithm>:<hex>") while the bytes stream through.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import fsspec
import httpx

from astrocloud.core.storage import checksums

CHUNK = 1024 * 1024
# A local object is read in blocks this large: few enough Python round trips per GiB that the
# disk, the checksum and the socket set the pace, small enough to keep memory flat.
LOCAL_BLOCK = 4 * 1024 * 1024


class StorageError(Exception):
    """A site could not do what was asked (unreachable, missing object, refused)."""


class ObjectMissing(StorageError):
    pass


class TooLarge(StorageError):
    def __init__(self, limit: int):
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


def sign(secret: str, method: str, key: str, expires: int) -> str:
    message = f"{method.upper()}\n{key}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(secret: str, method: str, key: str, expires: int, signature: str) -> bool:
    if expires < time.time():
        return False
    return hmac.compare_digest(sign(secret, method, key, expires), signature)


class SiteStore(abc.ABC):
    """Objects (named by key) at one site."""

    @abc.abstractmethod
    def write(self, key: str, chunks: Iterable[bytes], *, max_bytes: int | None = None,
              algorithm: str = checksums.DEFAULT) -> tuple[int, str]:
        """Store the streamed bytes atomically under `key`; returns (size, checksum), the
        checksum as "<algorithm>:<hex>"."""

    @abc.abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes [start, end) of the object."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object (no error if it is gone already)."""

    @abc.abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size, or None when it does not exist."""

    def checksum(self, key: str, algorithm: str = "sha256") -> str:
        """The object's checksum in `algorithm`, as "<algorithm>:<hex>", computed where the
        bytes are."""
        return checksums.of_chunks(algorithm, self.read(key))


def _hash_stream(chunks: Iterable[bytes], sink, max_bytes: int | None,
                 algorithm: str) -> tuple[int, str]:
    digest = checksums.new(algorithm)
    size = 0
    for chunk in chunks:
        if not chunk:
            continue
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise TooLarge(max_bytes)
        digest.update(chunk)
        sink(chunk)
    return size, checksums.join(algorithm, digest.hexdigest())


class FsspecStore(SiteStore):
    """Any fsspec filesystem under a root path."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str):
        self.fs = fs
        self.root = root.rstrip("/")

    def path(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"bad object key {key!r}")
        return f"{self.root}/{key}"

    def write(self, key, chunks, *, max_bytes=None, algorithm=checksums.DEFAULT):
        target = self.path(key)
        parent = target.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        f = self.fs.open(target, "wb")
        try:
            result = _hash_stream(chunks, f.write, max_bytes, algorithm)
        except BaseException:
            # An object store makes the object visible on close: abort the upload instead
            # (s3fs aborts the multipart upload), so nothing partial ever appears.
            f.discard()
            f.closed = True
            raise
        f.close()
        return result

    def read(self, key, start=0, end=None):
        path = self.path(key)
        try:
            f = self.fs.open(path, "rb", block_size=CHUNK)
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        return _read_blocks(f, start, end, CHUNK)

    def delete(self, key):
        path = self.path(key)
        if self.fs.exists(path):
            self.fs.rm(path)

    def size(self, key):
        try:
            return int(self.fs.size(self.path(key)))
        except FileNotFoundError:
            return None


class LocalStore(FsspecStore):
    """A local folder. Writes go to a temporary name in the same folder, then are renamed."""

    def __init__(self, root: str | Path):
        Path(root).mkdir(parents=True, exist_ok=True)
        super().__init__(fsspec.filesystem("file"), str(Path(root).resolve()))

    def write(self, key, chunks, *, max_bytes=None, algorithm=checksums.DEFAULT):
        target = Path(self.path(key))
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            # unbuffered: chunks arrive in large batches, each written with one system call
            with temp.open("wb", buffering=0) as f:
                result = _hash_stream(chunks, _write_all(f), max_bytes, algorithm)
            temp.replace(target)  # atomic on the same file system
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return result

    def read(self, key, start=0, end=None):
        # The local file is read directly (not through fsspec's file object) in large blocks.
        path = self.path(key)
        try:
            f = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by the generator)
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        return _read_blocks(f, start, end, LOCAL_BLOCK)


def _write_all(f):
    def write(chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[f.write(view):]
    return write


def _read_blocks(f, start: int, end: int | None, block_size: int) -> Iterator[bytes]:
    # Bytes start..end (end exclusive, None for the end of the file) in blocks. On an
    # unbuffered local file a read(n) is one system call into a fresh bytes object: the page
    # cache is copied once, straight into what goes on to the hash and the socket.
    with f:
        if start:
            f.seek(start)
        remaining = None if end is None else max(0, end - start)
        while remaining is None or remaining > 0:
            block = f.read(block_size if remaining is None else min(block_size, remaining))
            if not block:
                break
            if remaining is not None:
                remaining -= len(block)
            yield block


class AgentStore(SiteStore):
    """A remote site served by `astrocloud site-agent`, reached with signed short-lived URLs."""

    def __init__(self, base_url: str, secret: str, ttl: int = 300, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.ttl = ttl
        self.timeout = timeout

    def url(self, method: str, key: str) -> str:
        expires = int(time.time()) + self.ttl
        signature = sign(self.secret, method, key, expires)
        return f"{self.base_url}/objects/{quote(key)}?expires={expires}&signature={signature}"

    def _error(self, exc: Exception) -> StorageError:
        return StorageError(f"site agent {self.base_url}: {type(exc).__name__}: {exc}")

    def write(self, key, chunks, *, max_bytes=None, algorithm=checksums.DEFAULT):
        digest = checksums.new(algorithm)
        size = 0

        def counted():
            nonlocal size
            for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise TooLarge(max_bytes)
                digest.update(chunk)
                yield chunk

        try:
            response = httpx.put(self.url("PUT", key) + f"&algorithm={algorithm}",
                                 content=counted(), timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise self._error(exc) from None
        if response.status_code != 201:
            raise StorageError(f"site agent refused the upload: {response.status_code}")
        sent = checksums.join(algorithm, digest.hexdigest())
        if _agent_checksum(response.json()) != sent:
            raise StorageError("the site agent stored different bytes than were sent")
        return size, sent

    def read(self, key, start=0, end=None):
        headers = {}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            with httpx.stream("GET", self.url("GET", key), headers=headers,
                              timeout=self.timeout) as response:
                if response.status_code == 404:
                    raise ObjectMissing(key)
                if response.status_code not in (200, 206):
                    raise StorageError(f"site agent answered {response.status_code}")
                yield from response.iter_bytes(CHUNK)
        except httpx.HTTPError as exc:
            raise self._error(exc) from None

    def delete(self, key):
        try:
            response = httpx.delete(self.url("DELETE", key), timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise self._error(exc) from None
        if response.status_code not in (204, 404):
            raise StorageError(f"site agent answered {response.status_code}")

    def size(self, key):
        try:
            response = httpx.head(self.url("HEAD", key), timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise self._error(exc) from None
        if response.status_code == 404:
            return None
        return int(response.headers.get("content-length", "0"))

    def checksum(self, key, algorithm="sha256"):
        try:
            response = httpx.get(self.url("GET", key) + f"&checksum=1&algorithm={algorithm}",
                                 timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise self._error(exc) from None
        if response.status_code == 404:
            raise ObjectMissing(key)
        if response.status_code != 200:
            raise StorageError(f"site agent answered {response.status_code}")
        return _agent_checksum(response.json())


def _agent_checksum(answer: dict) -> str | None:
    """The "<algorithm>:<hex>" in a site agent's answer; an agent of an earlier version
    answers only {"sha256": hex}."""
    if "checksum" in answer:
        return answer["checksum"]
    return checksums.join("sha256", answer["sha256"]) if "sha256" in answer else None


def open_store(storage_url: str, *, secret: str = "", ttl: int = 300,
               s3_options: dict | None = None) -> SiteStore:
    """The backend for a site's storage URL."""
    parts = urlsplit(storage_url)
    if parts.scheme == "file":
        return LocalStore(parts.path)
    if parts.scheme in ("http", "https"):
        return AgentStore(storage_url, secret, ttl)
    if parts.scheme == "s3":
        options = dict(s3_options or {})
        query = dict(parse_qsl(parts.query))
        client_kwargs = {}
        if "endpoint_url" in query:
            client_kwargs["endpoint_url"] = query["endpoint_url"]
        if "region" in query:
            client_kwargs["region_name"] = query["region"]
        fs = fsspec.filesystem("s3", client_kwargs=client_kwargs, skip_instance_cache=True,
                               **options)
        return FsspecStore(fs, f"{parts.netloc}{parts.path}")
    raise StorageError(f"unsupported storage URL {storage_url!r}: use file://, s3:// or http(s)://")
