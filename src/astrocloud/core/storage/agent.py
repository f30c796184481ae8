"""The site agent: one data-center site's storage served to the other sites over HTTP.

`astrocloud site-agent --site kunming --port 9001` runs it. Every request carries a short-lived
signature (HMAC of method, object key and expiry with the platform's shared secret), so only
AstroCloud instances can read or write. Reads honour byte ranges; writes are atomic. Bytes go
out and come in through the platform's shared helpers (`core.web.downloads`, `.uploads`).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from astrocloud.core.storage import checksums
from astrocloud.core.storage.backends import (
    ObjectMissing,
    SiteStore,
    StorageError,
    verify_signature,
)
from astrocloud.core.web.downloads import ServedFile, file_response
from astrocloud.core.web.uploads import UploadAborted, stream_body


def create_agent(site_name: str, store: SiteStore, secret: str) -> Starlette:
    def authorized(request: Request, key: str) -> bool:
        try:
            expires = int(request.query_params.get("expires", "0"))
        except ValueError:
            return False
        return verify_signature(secret, request.method, key,
                                expires, request.query_params.get("signature", ""))

    def problem(status: int, detail: str) -> JSONResponse:
        return JSONResponse({"status": status, "detail": detail}, status_code=status,
                            media_type="application/problem+json")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "site": site_name})

    async def objects(request: Request) -> Response:
        key = request.path_params["key"]
        if not authorized(request, key):
            return problem(403, "missing, wrong or expired signature")
        try:
            if request.method == "PUT":
                return await _put(request, store, key)
            if request.method == "DELETE":
                store.delete(key)
                return Response(status_code=204)
            size = store.size(key)
            if size is None:
                return problem(404, "no such object")
            if request.method == "HEAD":
                return Response(headers={"content-length": str(size),
                                         "accept-ranges": "bytes"})
            if request.query_params.get("checksum"):
                return JSONResponse(_checksum(store, key, size, algorithm(request, "sha256")))
            return _get(request, store, key, size)
        except ObjectMissing:
            return problem(404, "no such object")
        except StorageError as exc:
            return problem(400, str(exc))
        except checksums.UnknownAlgorithm as exc:
            return problem(400, str(exc))
        except UploadAborted as exc:  # the body stopped: the write was abandoned, atomically
            return problem(exc.status, str(exc))

    return Starlette(routes=[
        Route("/health", health),
        Route("/objects/{key:path}", objects, methods=["GET", "HEAD", "PUT", "DELETE"]),
    ])


def algorithm(request: Request, default: str) -> str:
    """The checksum algorithm asked for (`?algorithm=`); callers of earlier versions ask for
    none and expect SHA-256."""
    name = request.query_params.get("algorithm", default)
    checksums.new(name)  # UnknownAlgorithm: a 400
    return name


def _checksum(store: SiteStore, key: str, size: int, algo: str) -> dict:
    found = store.checksum(key, algo)
    answer = {"checksum": found, "size": size}
    if algo == "sha256":  # the answer earlier versions read
        answer["sha256"] = checksums.split(found)[1]
    return answer


async def _put(request: Request, store: SiteStore, key: str) -> Response:
    # The body streams into the store's (blocking) write through the platform's upload pump.
    algo = algorithm(request, "sha256")
    size, found = await stream_body(request,
                                    lambda chunks: store.write(key, chunks, algorithm=algo))
    answer = {"size": size, "checksum": found}
    if algo == "sha256":
        answer["sha256"] = checksums.split(found)[1]
    return JSONResponse(answer, status_code=201)


def _get(request: Request, store: SiteStore, key: str, size: int) -> Response:
    """An object's bytes, whole or one range, through the platform's file-serving answer."""
    return file_response(request, ServedFile(size=size),
                         lambda start, end: store.read(key, start, end))
