"""The Data channel's pages: search the archive, a file's page, "My data", bulk downloads.

    /data                          search by position (a name or coordinates) and radius, time,
                                   band, instrument, collection, QC grade; results with
                                   thumbnails, paged
    /data/mine                     the files of the caller's programmes
    /data/observations/<id>        one file: metadata, header, QC, lineage, download
    /data/observations/<id>/qc     POST: a QC reviewer's grade and comment
    /data/download.tar             GET ?id=…&id=…: the files as one streamed tar archive
    /data/download.sh              GET ?id=…: a curl script fetching them (with a token)

What is shown is what the caller may see: every page goes through the archive's services.
"""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from pydantic import BeforeValidator, Field
from starlette.responses import Response, StreamingResponse

from astrocloud.core import errors
from astrocloud.core.identity.pages import flash_redirect
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.inputs import StrictModel
from astrocloud.core.web.routing import Id, uses
from astrocloud.core.web.templating import render
from astrocloud.data.archive import services
from astrocloud.data.archive.services import ArchiveOps
from astrocloud.observation.services import ObservationOps

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
READ = ArchiveOps.FILE_READ
TELESCOPES = ObservationOps.TELESCOPE_READ
MAX_BULK = 500


def _blank_is_none(value):
    return None if isinstance(value, str) and not value.strip() else value


Blank = BeforeValidator(_blank_is_none)


class SearchForm(StrictModel):
    """The search form (every field optional; empty strings count as absent)."""

    position: str = Field("", max_length=100)
    radius: Annotated[float | None, Blank] = Field(None, gt=0, le=90, description="degrees")
    target: str = Field("", max_length=100)
    telescope: str = Field("", max_length=64)
    instrument: str = Field("", max_length=100)
    collection: str = Field("", max_length=128)
    programme: str = Field("", max_length=64)
    dataproduct_type: str = Field("", pattern="^(|image|spectrum|cube)$")
    qc_grade: str = Field("", pattern="^(|pass|warn|fail|none)$")
    wavelength_nm: Annotated[float | None, Blank] = Field(None, gt=0, lt=1e6)
    start: Annotated[dt.date | None, Blank] = None
    end: Annotated[dt.date | None, Blank] = None
    sort: str = Field("date", pattern="^(date|-date|target|id)$")
    page: int = Field(1, ge=1, le=10**6)
    per_page: int = Field(25, ge=1, le=200)
    lang: str = Field("", max_length=16)  # read by the platform's middleware


def _day(value: dt.date | None, end: bool = False) -> dt.datetime | None:
    if value is None:
        return None
    moment = dt.datetime.combine(value, dt.time.max if end else dt.time.min)
    return moment.replace(tzinfo=dt.UTC)


def _search(ctx: Context, form: SearchForm, *, mine: bool = False):
    ra = dec = None
    if form.start and form.end and form.end < form.start:
        raise errors.ValidationFailed("The end of the time interval is before its start.",
                                      field="end")
    if form.position.strip():
        ra, dec = services.resolve(form.position)
    return services.search(
        ctx, ra=ra, dec=dec, radius=(form.radius or 0.25) if ra is not None else None,
        target=form.target or None, telescope=form.telescope or None,
        instrument=form.instrument or None, collection=form.collection or None,
        programme=form.programme or None,
        dataproduct_type=form.dataproduct_type or None, qc_grade=form.qc_grade or None,
        wavelength=form.wavelength_nm * 1e-9 if form.wavelength_nm else None,
        start=_day(form.start), end=_day(form.end, end=True), mine=mine, sort=form.sort,
        page=form.page, per_page=form.per_page)


def _choices(ctx: Context) -> dict:
    from astrocloud.observation import services as observation

    telescopes = observation.list_telescopes(ctx)
    return {"telescopes": telescopes,
            "instruments": sorted({i.name for t in telescopes for i in t.instruments})}


@pages.get("/data", openapi_extra=uses(READ, TELESCOPES), name="data_landing")
def search_page(request: Request, ctx: Ctx, form: Annotated[SearchForm, Query()]):
    problem = None
    try:
        result = _search(ctx, form)
    except errors.ValidationFailed as exc:
        problem, result = exc.localized(ctx.language), None
    return render(request, "data/search.html", form=form, result=result, problem=problem,
                  mine=False, now_utc=dt.datetime.now(dt.UTC), **_choices(ctx))


@pages.get("/data/mine", openapi_extra=uses(READ, TELESCOPES))
def my_data(request: Request, ctx: Ctx, form: Annotated[SearchForm, Query()]):
    if not ctx.subject.authenticated:
        return flash_redirect(f"/login?next={request.url.path}")
    result = _search(ctx, form, mine=True)
    return render(request, "data/search.html", form=form, result=result, problem=None,
                  mine=True, now_utc=dt.datetime.now(dt.UTC), **_choices(ctx))


@pages.get("/data/observations/{file_id}", openapi_extra=uses(READ))
def file_page(request: Request, file_id: Id, ctx: Ctx,
              notice: Annotated[str | None, Query(max_length=300)] = None):
    archived = services.get_file(ctx, file_id)
    links = services.lineage(ctx, file_id)
    return render(request, "data/file.html", f=archived, links=links, notice=notice,
                  can_grade=ctx.can(ArchiveOps.QC_OVERRIDE, archived),
                  can_rerun=ctx.can(ArchiveOps.QC_RERUN, archived),
                  now=dt.datetime.now(dt.UTC))


@pages.post("/data/observations/{file_id}/qc", openapi_extra=uses(ArchiveOps.QC_OVERRIDE))
def grade_form(file_id: Id, ctx: Ctx, grade: Annotated[str, Form(max_length=8)],
               comment: Annotated[str, Form(max_length=2000)] = ""):
    services.override_qc(ctx, file_id, grade=grade, comment=comment)
    return flash_redirect(f"/data/observations/{file_id}", "The grade was saved.")


@pages.post("/data/observations/{file_id}/qc/rerun", openapi_extra=uses(ArchiveOps.QC_RERUN))
def rerun_form(file_id: Id, ctx: Ctx):
    services.rerun_qc(ctx, file_id)
    return flash_redirect(f"/data/observations/{file_id}", "Quality control will run again.")


@pages.get("/data/releases", openapi_extra=uses(ArchiveOps.RELEASE_READ))
def releases_page(request: Request, ctx: Ctx):
    return render(request, "data/releases.html", releases=services.list_releases(ctx),
                  citation=lambda r: services.citation(r, ctx.settings.site_name))


@pages.get("/data/releases/{name}", openapi_extra=uses(ArchiveOps.RELEASE_READ, READ))
def release_page(request: Request, name: str, ctx: Ctx,
                 version: Annotated[int | None, Query(ge=1, le=10**6)] = None,
                 page: Annotated[int, Query(ge=1, le=10**6)] = 1):
    release = services.get_release(ctx, name[:64], version)
    result, catalogs = services.release_contents(ctx, release, page=page, per_page=50)
    return render(request, "data/release.html", release=release, result=result,
                  catalogs=catalogs, citation=services.citation(release, ctx.settings.site_name))


class BulkIn(StrictModel):
    id: list[int] = Field(min_length=1, max_length=MAX_BULK)


def _files(ctx: Context, ids: list[int]):
    if any(not 1 <= i <= 2**31 - 1 for i in ids):
        raise errors.ValidationFailed("Ids are archived file numbers.", field="id")
    return [services.get_file(ctx, i) for i in dict.fromkeys(ids)]


class _Pipe(io.RawIOBase):
    """A write-only file whose bytes are handed out as they are written (tar streams)."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.chunks = b"".join(self.chunks), []
        return out


@pages.get("/data/download.tar", openapi_extra=uses(READ))
def bulk_tar(ctx: Ctx, query: Annotated[BulkIn, Query()]):
    files = _files(ctx, query.id)

    def stream() -> Iterator[bytes]:
        pipe = _Pipe()
        with tarfile.open(fileobj=pipe, mode="w|") as tar:
            for f in files:
                info = tarfile.TarInfo(f"{f.obs_collection}/{f.id}-{f.filename}")
                info.size, info.mtime = f.size, int(f.ingested_at.timestamp())
                _, chunks = services.open_file(ctx, f.id)
                tar.addfile(info, _Reader(chunks))
                yield pipe.take()
        yield pipe.take()

    return StreamingResponse(stream(), media_type="application/x-tar", headers={
        "content-disposition": 'attachment; filename="astrocloud-data.tar"'})


class _Reader(io.RawIOBase):
    """A file-like view of a chunk iterator (what tarfile reads a member from)."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.buffer = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                break
        if size < 0:
            out, self.buffer = self.buffer, b""
        else:
            out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


@pages.get("/data/download.sh", openapi_extra=uses(READ))
def bulk_script(request: Request, ctx: Ctx, query: Annotated[BulkIn, Query()]):
    files = _files(ctx, query.id)
    base = str(request.base_url).rstrip("/")
    lines = ["#!/bin/sh",
             "# AstroCloud download script. Set ASTROCLOUD_TOKEN to a personal API token",
             "# (Account → API tokens) to fetch proprietary files you may see.",
             "set -e",
             'AUTH=""',
             'if [ -n "$ASTROCLOUD_TOKEN" ]; then',
             '  AUTH="Authorization: Bearer $ASTROCLOUD_TOKEN"',
             'fi']
    for f in files:
        name = f"{f.id}-{f.filename}".replace("'", "_")
        lines.append(f"curl -fL --retry 3 -C - ${{AUTH:+-H \"$AUTH\"}} -o '{name}' "
                     f"'{base}/api/v1/data/observations/{f.id}/file'")
    lines.append(f"echo 'Downloaded {len(files)} files.'")
    return Response("\n".join(lines) + "\n", media_type="text/x-shellscript", headers={
        "content-disposition": 'attachment; filename="astrocloud-download.sh"'})
