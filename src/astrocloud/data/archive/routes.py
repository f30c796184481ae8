"""HTTP routes of the observation archive (JSON API).

    PUT  /api/v1/data/ingest/<telescope>/<filename>   a telescope's raw file (the raw body);
                                                      202 with its ingest record
    PUT  /api/v1/data/products/<filename>?derived_from=ID&derived_from=ID
                                                      a derived product of archived files
    GET  /api/v1/data/ingests[?status=quarantined]    ingest records (operators: all)
    GET  /api/v1/data/ingests/<id>
    GET  /api/v1/data/observations                    search: {"total": N, "items": [...]}
    GET  /api/v1/data/observations/<id>               one file: ObsCore fields, header, QC,
                                                      lineage
    GET  /api/v1/data/observations/<id>/file          its bytes (Range, ETag)
    GET  /api/v1/data/observations/<id>/preview.png, /thumbnail.png
    POST /api/v1/data/observations/<id>/qc            a reviewer's grade {grade, comment}
    POST /api/v1/data/observations/<id>/qc/rerun

Routes parse and render; the archive's services decide who may do what (the release rule).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field
from starlette.responses import StreamingResponse

from astrocloud.core import errors
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.downloads import ServedFile, file_response
from astrocloud.core.web.inputs import StrictModel
from astrocloud.core.web.routing import Id, uses
from astrocloud.core.web.uploads import stream_body
from astrocloud.data.archive import services
from astrocloud.data.archive.models import ArchiveFile, IngestRecord
from astrocloud.data.archive.services import ArchiveOps

api = APIRouter(prefix="/api/v1/data", tags=["archive"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
MAX_PAGE = 200


# ---- representations --------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def ingest_out(record: IngestRecord) -> dict[str, Any]:
    return {"id": record.id, "status": record.status, "filename": record.filename,
            "source": record.source, "size": record.size, "checksum": record.checksum,
            "code": record.code or None, "reason": record.reason or None,
            "warnings": record.warnings or [], "file_id": record.file_id,
            "job_id": record.job_id, "derived_from": record.derived_from or [],
            "created_at": _iso(record.created_at), "finished_at": _iso(record.finished_at)}


OBSCORE_FIELDS = ("dataproduct_type", "calib_level", "obs_collection", "obs_id", "s_ra",
                  "s_dec", "s_fov", "s_region", "s_resolution", "t_min", "t_max", "t_exptime",
                  "em_min", "em_max", "em_res_power", "o_ucd", "facility_name",
                  "instrument_name", "target_name", "access_format")


def file_out(request: Request, archived: ArchiveFile) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    out: dict[str, Any] = {"id": archived.id}
    out.update({name: getattr(archived, name) for name in OBSCORE_FIELDS})
    out.update({
        "obs_publisher_did": archived.obs_publisher_did,
        "access_url": f"{base}/api/v1/data/observations/{archived.id}/file",
        "access_estsize": archived.access_estsize,
        "obs_release_date": _iso(archived.obs_release_date),
        "date_obs": _iso(archived.date_obs),
        "filename": archived.filename, "version": archived.version,
        "is_latest": archived.is_latest, "size": archived.size,
        "checksum": archived.checksum, "filter": archived.filter_name,
        "programme": archived.programme_code, "linked_programme": archived.programme_id
        is not None, "qc_grade": archived.qc_grade,
        "preview_url": f"{base}/api/v1/data/observations/{archived.id}/preview.png"
        if archived.preview_uri else None,
        "thumbnail_url": f"{base}/api/v1/data/observations/{archived.id}/thumbnail.png"
        if archived.thumbnail_uri else None,
        "warnings": archived.warnings or [],
    })
    return out


def file_detail(request: Request, ctx: Context, archived: ArchiveFile) -> dict[str, Any]:
    out = file_out(request, archived)
    links = services.lineage(ctx, archived.id)
    out.update({
        "header": archived.header,
        "qc": {"grade": archived.qc_grade, "automatic_grade": archived.qc_auto_grade,
               "checked_at": _iso(archived.qc_at), "comment": archived.qc_comment or None,
               "overridden": archived.qc_reviewer_id is not None, **(archived.qc or {})},
        "derived_from": [f.id for f in links["sources"]],
        "products": [f.id for f in links["products"]],
    })
    return out


# ---- bytes in ---------------------------------------------------------------------------------


BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary"}}}}}


@api.put("/ingest/{telescope}/{filename}", status_code=202,
         openapi_extra={**uses(ArchiveOps.INGEST), **BODY},
         summary="Send a telescope's raw file to the archive (ingest runs as a job)")
async def put_ingest(request: Request, telescope: str, filename: str, ctx: Ctx):
    def consume(chunks):
        return ingest_out(services.receive(ctx, telescope=telescope, filename=filename,
                                           chunks=chunks))

    return await stream_body(request, consume)


@api.put("/products/{filename}", status_code=202,
         openapi_extra={**uses(ArchiveOps.DEPOSIT), **BODY},
         summary="Deposit a derived product made from archived files")
async def put_product(request: Request, filename: str, ctx: Ctx,
                      derived_from: Annotated[list[int], Query(max_length=100)]):
    if any(not 1 <= i <= 2**31 - 1 for i in derived_from):
        raise errors.ValidationFailed("derived_from holds archived file ids.",
                                      field="derived_from")

    def consume(chunks):
        return ingest_out(services.deposit(ctx, derived_from=derived_from, filename=filename,
                                           chunks=chunks))

    return await stream_body(request, consume)


# ---- ingest records ---------------------------------------------------------------------------


@api.get("/ingests", openapi_extra=uses(ArchiveOps.INGEST_READ),
         summary="Ingest records: what reached the archive and what became of it")
def get_ingests(ctx: Ctx, status: Annotated[str | None, Query(
        pattern="^(queued|running|archived|duplicate|quarantined)$")] = None,
                page: Annotated[int, Query(ge=1, le=10**6)] = 1,
                per_page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50):
    result = services.list_ingests(ctx, status=status, page=page, per_page=per_page)
    return {"total": result.total, "page": result.page, "per_page": result.per_page,
            "items": [ingest_out(r) for r in result.items]}


@api.get("/ingests/{ingest_id}", openapi_extra=uses(ArchiveOps.INGEST_READ),
         summary="One ingest record")
def get_ingest(ingest_id: Id, ctx: Ctx):
    result = services.list_ingests(ctx, ids=[ingest_id], per_page=1)
    if not result.items:
        raise errors.NotFound("There is no ingest %(id)s, or you may not see it.", id=ingest_id)
    return ingest_out(result.items[0])


# ---- observations -----------------------------------------------------------------------------


class SearchIn(StrictModel):
    ra: float | None = Field(None, ge=0, lt=360)
    dec: float | None = Field(None, ge=-90, le=90)
    radius: float | None = Field(None, gt=0, le=90)
    target: str | None = Field(None, max_length=100)
    telescope: str | None = Field(None, max_length=64)
    instrument: str | None = Field(None, max_length=100)
    collection: str | None = Field(None, max_length=128)
    programme: str | None = Field(None, max_length=64)
    dataproduct_type: str | None = Field(None, max_length=16)
    calib_level: int | None = Field(None, ge=0, le=4)
    qc_grade: str | None = Field(None, pattern="^(pass|warn|fail|none)$")
    wavelength: float | None = Field(None, gt=0, lt=1)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    mine: bool = False
    all_versions: bool = False
    sort: str = Field("date", pattern="^(date|-date|target|id)$")
    page: int = Field(1, ge=1, le=10**6)
    per_page: int = Field(50, ge=1, le=MAX_PAGE)
    lang: str | None = Field(None, max_length=16, description="the answer's language")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def run_search(ctx: Context, query: SearchIn):
    params = query.model_dump(exclude={"lang"})
    params["start"], params["end"] = _utc(query.start), _utc(query.end)
    return services.search(ctx, **params)


@api.get("/observations", openapi_extra=uses(ArchiveOps.FILE_READ),
         summary="Search the archive: {total, items}, only what you may see")
def get_observations(request: Request, ctx: Ctx, query: Annotated[SearchIn, Query()]):
    result = run_search(ctx, query)
    return {"total": result.total, "page": result.page, "per_page": result.per_page,
            "items": [file_out(request, f) for f in result.items]}


@api.get("/observations/{file_id}", openapi_extra=uses(ArchiveOps.FILE_READ),
         summary="One archived file: ObsCore metadata, header, QC and lineage")
def get_observation(request: Request, file_id: Id, ctx: Ctx):
    return file_detail(request, ctx, services.get_file(ctx, file_id))


@api.get("/observations/{file_id}/file", openapi_extra=uses(ArchiveOps.FILE_READ),
         summary="Download an archived file (byte ranges, ETag, If-Range)")
@api.head("/observations/{file_id}/file", openapi_extra=uses(ArchiveOps.FILE_READ),
          include_in_schema=False)
def download(request: Request, file_id: Id, ctx: Ctx):
    archived = services.get_file(ctx, file_id)
    served = ServedFile(size=archived.size, etag=f'"{archived.checksum.split(":")[-1][:32]}"',
                        modified=archived.ingested_at, content_type=archived.access_format,
                        name=archived.filename)

    def open_bytes(start: int, end: int | None):
        return services.open_file(ctx, file_id, start=start, end=end)[1]

    return file_response(request, served, open_bytes, disposition="attachment")


@api.get("/observations/{file_id}/{kind}.png", openapi_extra=uses(ArchiveOps.FILE_READ),
         summary="A file's preview or thumbnail (PNG)")
def preview(file_id: Id, kind: str, ctx: Ctx):
    if kind not in ("preview", "thumbnail"):
        raise errors.NotFound("There is no such image: %(kind)s.", kind=kind[:20])
    chunks = services.open_preview(ctx, file_id, kind)
    return StreamingResponse(chunks, media_type="image/png",
                             headers={"cache-control": "private, max-age=3600"})


class GradeIn(StrictModel):
    grade: str = Field(pattern="^(pass|warn|fail)$")
    comment: str = Field(min_length=1, max_length=2000)


@api.post("/observations/{file_id}/qc", openapi_extra=uses(ArchiveOps.QC_OVERRIDE),
          summary="Override a file's quality grade (QC reviewers), with a comment")
def post_grade(request: Request, file_id: Id, body: GradeIn, ctx: Ctx):
    archived = services.override_qc(ctx, file_id, grade=body.grade, comment=body.comment)
    return file_out(request, archived)


@api.post("/observations/{file_id}/qc/rerun", status_code=202,
          openapi_extra=uses(ArchiveOps.QC_RERUN), summary="Run a file's quality control again")
def post_rerun(file_id: Id, ctx: Ctx):
    return {"job_id": services.rerun_qc(ctx, file_id)}



# ---- data releases ----------------------------------------------------------------------------


def release_out(request: Request, release, settings) -> dict[str, Any]:
    return {"id": release.id, "name": release.name, "version": release.version,
            "title": release.title, "notes": release.notes, "status": release.status,
            "release_date": _iso(release.release_date),
            "published_at": _iso(release.published_at), "n_files": release.n_files,
            "total_bytes": release.total_bytes, "identifier": release.identifier,
            "citation": services.citation(release, settings.site_name)}


@api.get("/releases", openapi_extra=uses(ArchiveOps.RELEASE_READ),
         summary="Data releases (everyone: the published ones)")
def get_releases(request: Request, ctx: Ctx):
    return [release_out(request, r, ctx.settings) for r in services.list_releases(ctx)]


@api.get("/releases/{name}", openapi_extra=uses(ArchiveOps.RELEASE_READ, ArchiveOps.FILE_READ),
         summary="A data release: its description, citation, catalogs and a page of files")
def get_release(request: Request, name: str, ctx: Ctx,
                version: Annotated[int | None, Query(ge=1, le=10**6)] = None,
                page: Annotated[int, Query(ge=1, le=10**6)] = 1,
                per_page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50):
    release = services.get_release(ctx, name, version)
    files, catalogs = services.release_contents(ctx, release, page=page, per_page=per_page)
    out = release_out(request, release, ctx.settings)
    out.update({"catalogs": catalogs, "files": {
        "total": files.total, "page": files.page, "per_page": files.per_page,
        "items": [file_out(request, f) for f in files.items]}})
    return out


class ReleaseIn(StrictModel):
    name: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=300)
    release_date: dt.datetime
    notes: str = Field("", max_length=20000)


@api.post("/releases", status_code=201, openapi_extra=uses(ArchiveOps.RELEASE_MANAGE),
          summary="Start a data release (a draft; a new version when the name exists)")
def post_release(request: Request, body: ReleaseIn, ctx: Ctx):
    release = services.create_release(ctx, name=body.name, title=body.title,
                                      release_date=_utc(body.release_date), notes=body.notes)
    return release_out(request, release, ctx.settings)


class ContentsIn(StrictModel):
    file_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(
        default_factory=list, max_length=10000)
    catalogs: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list,
                                                                 max_length=100)


@api.post("/releases/{release_id}/contents", openapi_extra=uses(ArchiveOps.RELEASE_MANAGE),
          summary="Add files and catalogs to a draft release")
def post_contents(request: Request, release_id: Id, body: ContentsIn, ctx: Ctx):
    release = services.add_to_release(ctx, release_id, file_ids=body.file_ids,
                                      catalogs=body.catalogs)
    return release_out(request, release, ctx.settings)


@api.post("/releases/{release_id}/publish", openapi_extra=uses(ArchiveOps.RELEASE_MANAGE),
          summary="Publish a draft release: its contents are frozen from then on")
def post_publish(request: Request, release_id: Id, ctx: Ctx):
    return release_out(request, services.publish_release(ctx, release_id), ctx.settings)
