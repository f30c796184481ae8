"""HTTP routes of the cross-match service (JSON API).

    POST /api/v1/data/crossmatch             match a catalog (`left`) or an uploaded table
                                              (`file`, multipart) with catalog `right`:
                                              radius (arcsec), mode (best|all), limit, format
                                              (votable|csv|json), engine, async, ra/dec (the
                                              upload's position columns). Multipart form or JSON.
                                              200 with the result, or 202 with the job.
    GET  /api/v1/data/crossmatch/{job}/result the result of one's own asynchronous match

Routes parse and render; the services decide who may match what.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from astrocloud.core.errors import ValidationFailed
from astrocloud.core.i18n import _
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import Id, uses
from astrocloud.data.xmatch import formats, services
from astrocloud.data.xmatch.services import CrossmatchOps

api = APIRouter(prefix="/api/v1/data/crossmatch", tags=["crossmatch"],
                route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
FIELDS = ("left", "right", "radius", "mode", "limit", "format", "engine", "async", "ra", "dec",
          "file_format", "csrf_token")


def _number(values: dict, name: str, default: Any, kind: type) -> Any:
    raw = values.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return default
    if isinstance(raw, bool):
        raise ValidationFailed(_("“%(name)s” must be a number."), field=name, name=name)
    try:
        value = kind(raw) if not isinstance(raw, str) else kind(raw.strip())
    except (TypeError, ValueError):
        raise ValidationFailed(_("“%(name)s” must be a number."), field=name,
                               name=name) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationFailed(_("“%(name)s” must be a number."), field=name, name=name)
    return value


def _flag(raw: Any) -> bool | None:
    if raw is None or raw == "" or (isinstance(raw, str) and raw.strip().lower() == "auto"):
        return None
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValidationFailed(_("“async” is true, false or auto."), field="async")


def _text(values: dict, name: str, max_length: int = 255) -> str | None:
    raw = values.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str) or "\x00" in raw or len(raw) > max_length:
        raise ValidationFailed(_("“%(name)s” must be a short text."), field=name, name=name)
    return raw.strip() or None


async def read_request(request: Request) -> tuple[dict[str, Any], services.Upload | None]:
    """The parameters of a cross-match request (form or JSON) and its uploaded table."""
    ctype = request.headers.get("content-type", "").lower()
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > services.MAX_UPLOAD_BYTES + 1_000_000:
        raise ValidationFailed(_("The uploaded table is larger than the %(n)s MB allowed."),
                               field="file", n=services.MAX_UPLOAD_BYTES // (1024 * 1024))
    upload = None
    if ctype.startswith("application/json"):
        try:
            values = await request.json()
        except ValueError:
            raise ValidationFailed(_("The request body is not valid JSON."),
                                   field="body") from None
        if not isinstance(values, dict):
            raise ValidationFailed(_("The request body must be a JSON object."), field="body")
    elif ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form(max_files=1, max_fields=50)
        values = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "file":
                    raise ValidationFailed(_("Send the table as the “file” part."), field=key)
                if value.filename:
                    data = await value.read(services.MAX_UPLOAD_BYTES + 1)
                    upload = services.Upload(data, value.filename or "upload")
                await value.close()
            else:
                values[key] = value
    else:
        raise ValidationFailed(_("Send the request as a form (multipart/form-data) or as "
                                 "JSON."), field="body")
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValidationFailed(_("Unknown parameters: %(names)s."), field=unknown[0],
                               names=", ".join(str(n)[:40] for n in unknown[:10]))
    return values, upload


def parse(values: dict, upload: services.Upload | None) -> dict[str, Any]:
    """The keyword arguments of `services.request_crossmatch` from the request's values."""
    left = _text(values, "left", 64)
    if upload is not None:
        if left:
            raise ValidationFailed(_("Give the left table either as a catalog or as a file, "
                                     "not both."), field="left")
        upload.ra, upload.dec = _text(values, "ra", 255), _text(values, "dec", 255)
        upload.format = _text(values, "file_format", 16)
    output = formats.output_format(_text(values, "format", 100))
    if output is None:
        raise ValidationFailed(_("The response format is one of %(formats)s."),
                               field="format", formats=", ".join(formats.FORMATS))
    return {"left": upload if upload is not None else left,
            "right": _text(values, "right", 64),
            "radius_arcsec": _number(values, "radius", None, float),
            "mode": _text(values, "mode", 16) or "best",
            "limit": _number(values, "limit", services.DEFAULT_LIMIT, int),
            "engine": _text(values, "engine", 16) or "auto",
            "asynchronous": _flag(values.get("async")),
            "output": output}


def result_response(result: services.MatchResult, output: str) -> Response:
    body = formats.render(result, output)
    headers = {"X-Crossmatch-Engine": result.engine,
               "X-Crossmatch-Truncated": "true" if result.truncated else "false"}
    if output != "json":
        headers["Content-Disposition"] = \
            f'attachment; filename="crossmatch.{formats.SUFFIX[output]}"'
    return Response(body, media_type=formats.MEDIA_TYPES[output], headers=headers)


def submitted_response(submitted: services.Submitted) -> JSONResponse:
    return JSONResponse(
        {"job": submitted.job_id, "status": "queued", "status_url": submitted.status_url,
         "result_url": submitted.result_url, "format": submitted.format},
        status_code=202, headers={"Location": submitted.status_url})


@api.post("", openapi_extra=uses(CrossmatchOps.RUN), status_code=200,
          summary="Cross-match a catalog or an uploaded table with a catalog",
          responses={200: {"content": {"application/x-votable+xml": {}, "text/csv": {},
                                       "application/json": {}}},
                     202: {"description": "Queued as a job: {job, status_url, result_url}"}})
async def crossmatch(request: Request, ctx: Ctx):
    values, upload = await read_request(request)
    kwargs = parse(values, upload)
    outcome = await run_in_threadpool(lambda: services.request_crossmatch(ctx, **kwargs))
    if isinstance(outcome, services.Submitted):
        return submitted_response(outcome)
    return await run_in_threadpool(result_response, outcome, kwargs["output"])


@api.get("/{job_id}/result", openapi_extra=uses(CrossmatchOps.RESULT),
         summary="The result of your asynchronous cross-match",
         response_class=StreamingResponse,
         responses={200: {"content": {"application/x-votable+xml": {}, "text/csv": {},
                                      "application/json": {}}},
                    409: {"description": "The match has not finished (or failed)"}})
def crossmatch_result(job_id: Id, ctx: Ctx):
    stored = services.open_result(ctx, job_id)
    return StreamingResponse(
        stored.chunks, media_type=stored.media_type,
        headers={"Content-Length": str(stored.size),
                 "Content-Disposition": f'attachment; filename="crossmatch-{stored.job_id}.'
                                        f'{formats.SUFFIX[stored.format]}"'})
