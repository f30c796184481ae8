"""Serving users' files safely from the platform's own origin: one answer for every endpoint
that sends a stored file (the file browser and its API, VOSpace, WebDAV, the archive).

A stored file keeps the type its uploader gave it, but anything a browser would run (HTML,
scripts, SVG, XML) is sent as `application/octet-stream`, and every download carries a sandbox
CSP, so an uploaded file can never act as a page of the platform.

`file_response` handles the rest of HTTP's file serving in one place (RFC 9110): validators
(ETag, Last-Modified), conditional requests (If-None-Match, If-Modified-Since: 304), a single
byte range (206, or 416 when it cannot be served) guarded by If-Range, HEAD, and
Content-Disposition.

The bytes are produced (read, and checked against the file's checksum by the storage layer) in
one worker thread a few chunks ahead of the socket (`ReadAheadResponse`), so reading and
checking the next chunk overlaps sending this one. There is no zero-copy path: uvicorn
implements neither `http.response.pathsend` nor `http.response.zerocopysend`, so a file cannot
be handed to `sendfile(2)` through ASGI, and a zero-copy send would skip the checksum check of
every read anyway."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from astrocloud.core.web.ranges import (
    RangeNotSatisfiable,
    parse_byte_range,
    parse_byte_range_leniently,
)

ACTIVE_TYPES = re.compile(r"html|javascript|ecmascript|xml|svg|multipart|x-shockwave", re.I)
DOWNLOAD_HEADERS = {"content-security-policy": "sandbox; default-src 'none'",
                    "x-content-type-options": "nosniff"}
# Users' files are private by default: no shared cache keeps them, and a browser revalidates.
CACHE_CONTROL = "private, no-cache"
READ_AHEAD = 2  # chunks produced ahead of the socket


def served_type(content_type: str | None) -> str:
    """The Content-Type to send for a stored file."""
    ctype = content_type or "application/octet-stream"
    return "application/octet-stream" if ACTIVE_TYPES.search(ctype) else ctype


def http_date(when: dt.datetime) -> str:
    """An HTTP date (IMF-fixdate); a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return email.utils.format_datetime(when.astimezone(dt.UTC), usegmt=True)


def content_disposition(kind: str, name: str) -> str:
    """`attachment` or `inline` with the file name: a plain ASCII fallback for old clients and
    the exact name in UTF-8 (RFC 6266)."""
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name) or "file"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@dataclass(frozen=True)
class ServedFile:
    """What an answer needs to know about a stored file, whoever stores it."""

    size: int
    etag: str | None = None  # a strong validator, quoted: '"12-3"'
    modified: dt.datetime | None = None
    content_type: str | None = None  # as stored; `served_type` decides what is sent
    name: str | None = None  # for Content-Disposition


def not_modified(request: Request, etag: str | None, modified: dt.datetime | None) -> bool:
    """The client's copy is current (RFC 9110 §13.2.2): If-None-Match, compared weakly, or
    else If-Modified-Since to the second."""
    match = request.headers.get("if-none-match")
    if match is not None:
        tags = {t.strip().removeprefix("W/") for t in match.split(",")}
        return "*" in tags or (etag is not None and etag in tags)
    since = request.headers.get("if-modified-since")
    if since and modified is not None:
        try:
            when = email.utils.parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if when.tzinfo is None:
            return False
        changed = modified if modified.tzinfo else modified.replace(tzinfo=dt.UTC)
        return changed.replace(microsecond=0) <= when
    return False


def _span(request: Request, file: ServedFile, headers: Mapping[str, str],
          lenient: bool) -> tuple[int, int] | None:
    """The byte range to send, or None for everything; RangeNotSatisfiable for a 416."""
    header = request.headers.get("range")
    if not header:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() not in \
            (headers.get("etag"), headers.get("last-modified")):
        return None  # the client's partial copy is of another version: send it all
    if header.partition("=")[0].strip().lower() != "bytes":
        return None  # another range unit is ignored (RFC 9110 §14.2)
    parse = parse_byte_range_leniently if lenient else parse_byte_range
    return parse(header, file.size)


def file_response(request: Request, file: ServedFile,
                  open_bytes: Callable[[int, int | None], Iterable[bytes]], *,
                  disposition: str | None = None, headers: Mapping[str, str] | None = None,
                  lenient_ranges: bool = False) -> Response:
    """The answer to a GET or HEAD of a stored file: 304 when the client's copy is current,
    206 for one satisfiable byte range, 416 for an unsatisfiable one, otherwise 200.

    `open_bytes(start, end)` streams bytes [start, end) (`end` None: to the end) and is called
    only when bytes are sent. `disposition` ("attachment" or "inline") adds a
    Content-Disposition with the file's name. With `lenient_ranges`, a malformed range or a
    list of ranges is answered with the whole file rather than 416, which RFC 9110 allows and
    some WebDAV clients rely on."""
    out = {"accept-ranges": "bytes", "cache-control": CACHE_CONTROL}
    if file.etag is not None:
        out["etag"] = file.etag
    if file.modified is not None:
        out["last-modified"] = http_date(file.modified)
    if disposition is not None and file.name is not None:
        out["content-disposition"] = content_disposition(disposition, file.name)
    out.update(DOWNLOAD_HEADERS)
    out.update(headers or {})
    if not_modified(request, file.etag, file.modified):
        return Response(status_code=304, headers=out)
    try:
        span = _span(request, file, out, lenient_ranges)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**out,
                                                  "content-range": f"bytes */{file.size}"})
    start, end = span or (0, file.size)
    out["content-length"] = str(end - start)
    status = 200
    if span is not None:
        status = 206
        out["content-range"] = f"bytes {start}-{end - 1}/{file.size}"
    media_type = served_type(file.content_type)
    if request.method == "HEAD":
        return Response(status_code=status, headers=out, media_type=media_type)
    stream = open_bytes(start, end if span is not None else None)
    return ReadAheadResponse(stream, status_code=status, headers=out, media_type=media_type)


class ReadAheadResponse(StreamingResponse):
    """A streamed answer whose blocking chunks come from one worker thread, up to READ_AHEAD
    of them ahead of the socket (rather than one thread hop per chunk, in turn with the
    sending). A chunk producer that fails midway (a replica that turns out corrupt) ends the
    answer without its last bytes, so the client sees an incomplete transfer, never wrong
    bytes passed off as complete."""

    def __init__(self, chunks: Iterable[bytes], **kwargs: Any):
        super().__init__((), **kwargs)
        self.chunks = chunks

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        sender, receiver = anyio.create_memory_object_stream[bytes](max_buffer_size=READ_AHEAD)
        failures: list[BaseException] = []

        def produce() -> None:
            iterator = iter(self.chunks)
            try:
                for chunk in iterator:
                    anyio.from_thread.run(sender.send, chunk)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the sending side stopped (the client went away)
            except Exception as exc:  # noqa: BLE001 (raised below, in the response's task)
                failures.append(exc)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
                # (only fails when the loop is cancelling the answer, which stops reading)
                with contextlib.suppress(Exception):
                    anyio.from_thread.run_sync(sender.close)

        async def producer() -> None:
            await anyio.to_thread.run_sync(produce)

        async with anyio.create_task_group() as group:
            group.start_soon(producer)
            try:
                async with receiver:
                    async for chunk in receiver:
                        await send({"type": "http.response.body", "body": chunk,
                                    "more_body": True})
            except BaseException as exc:  # raised below, once the producer has stopped
                failures.insert(0, exc)
        if failures:
            raise failures[0]
        await send({"type": "http.response.body", "body": b"", "more_body": False})
