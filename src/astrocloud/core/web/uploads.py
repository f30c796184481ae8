"""Request bodies into services: one way for every endpoint that takes a file (the file browser
and its API, VOSpace, WebDAV, the site agent) to hand an upload's bytes to blocking code.

`stream_body(request, consume)` runs `consume(chunks)` — a service's upload, a site's write — in
a worker thread while the event loop receives the body and passes it on through a buffer of a
few batches, so memory stays bounded whatever the size of the file and the bytes flow as they
arrive. The loop gathers the server's small body messages (typically 64 KiB) into batches of
about 1 MiB before handing them over: one hop between loop and thread, one checksum update
and one write per MiB instead of per message, which is what lets an upload keep pace with
the disk. A body that stops early raises `UploadAborted` (or `UploadTooLarge` past the upload
limit) inside the iterator, so the consumer's own clean-up runs. When the consumer refuses the
upload before the body has ended, the rest is read and dropped (`drain`, bounded) so that a
client that sends everything before reading gets to read the answer instead of a reset.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anyio
from starlette.requests import ClientDisconnect, Request

from astrocloud.core.errors import DomainError
from astrocloud.core.i18n import _
from astrocloud.core.web.middleware import BodyTooLarge

T = TypeVar("T")

BATCH_BYTES = 1024 * 1024  # body messages are gathered into batches of about this size
BATCHES_IN_FLIGHT = 4  # between the loop and the thread
DRAIN_LIMIT = 32 * 1024 * 1024  # of a refused body; past it the connection is dropped instead
DRAIN_SECONDS = 30


class UploadAborted(DomainError):
    """The request body stopped before its end (the client went away): nothing is stored."""

    status = 400
    code = "upload-aborted"
    title = _("The upload did not arrive completely")


class UploadTooLarge(UploadAborted):
    """The body passed the upload limit while it streamed: nothing is stored."""

    status = 413
    code = "payload-too-large"
    title = _("Request too large")


class _Stopped:
    """The pump's word that the body stopped, and why."""

    def __init__(self, cause: BaseException):
        self.cause = cause

    def error(self) -> UploadAborted:
        if isinstance(self.cause, BodyTooLarge):
            return UploadTooLarge("%(detail)s", detail=self.cause.detail)
        return UploadAborted(_("The upload stopped before its end; nothing was stored."))


async def stream_body(request: Request, consume: Callable[[Iterator[bytes]], T]) -> T:
    """Run `consume(chunks)` in a worker thread, fed the request body as it arrives; return
    what it returns, or raise what it raised (see the module docstring)."""
    send, receive = anyio.create_memory_object_stream[Any](max_buffer_size=BATCHES_IN_FLIGHT)
    ended = False

    async def pump() -> None:
        # ASGI messages are read one by one (not request.stream()), so that `ended` is true as
        # soon as the last one is in hand, even if the pump is cancelled before passing it on:
        # the rest of a refused body is drained only when there is a rest.
        nonlocal ended
        batch: list[bytes] = []
        batched = 0
        try:
            while not ended:
                message = await request.receive()
                if message["type"] != "http.request":
                    raise ClientDisconnect()
                ended = not message.get("more_body", False)
                if body := message.get("body"):
                    batch.append(body)
                    batched += len(body)
                if batch and (batched >= BATCH_BYTES or ended):
                    await send.send(batch[0] if len(batch) == 1 else b"".join(batch))
                    batch, batched = [], 0
        except Exception as exc:  # noqa: BLE001 (a disconnect or the body limit: handed on)
            ended = True
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await send.send(_Stopped(exc))
            return
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await send.send(None)

    def chunks() -> Iterator[bytes]:
        while True:
            item = anyio.from_thread.run(receive.receive)
            if item is None:
                return
            if isinstance(item, _Stopped):
                raise item.error()
            yield item

    outcome: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(pump)
        try:
            outcome.append(await anyio.to_thread.run_sync(lambda: consume(chunks())))
        except Exception as exc:  # noqa: BLE001 (raised below, outside the task group)
            outcome.append(exc)
        group.cancel_scope.cancel()  # the consumer may stop before the body ends
    receive.close()
    result = outcome[0]
    if isinstance(result, Exception):
        if not ended and not isinstance(result, UploadAborted):
            await drain(request)
        raise result
    return result


async def drain(request: Request) -> None:
    """Read and drop the rest of a refused body, up to DRAIN_LIMIT bytes and DRAIN_SECONDS,
    so that a client still sending gets to read the answer; past that the connection is
    dropped after the answer."""
    dropped = 0
    with anyio.move_on_after(DRAIN_SECONDS):
        while dropped <= DRAIN_LIMIT:
            try:
                message = await request.receive()
            except Exception:  # noqa: BLE001 (over the body limit, or gone: stop reading)
                return
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return
