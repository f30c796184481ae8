"""DataLink 1.1 for archived files, with its VOSI resources.

    GET /datalink/links?ID=ivo://astrocloud/archive?<n>[&ID=…]   the links of each file
    GET /datalink/capabilities, /datalink/availability             VOSI

For each file: the file itself (#this), its preview and thumbnail (#preview, #preview-image —
the vocabulary's #thumbnail is newer than the validators astronomers have), its
quality-control report and metadata (#auxiliary), the files it was made from (#progenitor)
and the products made from it (#derivation). An identifier that is unknown — or a file the
caller may not see yet — gives a row with a NotFoundFault, as the standard asks; the release
rule decides, as everywhere.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from astrocloud.core import errors
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import PUBLIC, uses
from astrocloud.data.archive import services as archive
from astrocloud.data.archive.services import ArchiveOps
from astrocloud.data.vo import vosi
from astrocloud.data.vo.votable import (
    VOTABLE_TYPE,
    results_table,
    serve_errors_as_votable,
    to_bytes,
)

PREFIX = "/datalink/"
MAX_IDS = 100
LINKS_TYPE = VOTABLE_TYPE + ";content=datalink"

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
serve_errors_as_votable(PREFIX)

COLUMNS = [
    {"name": "ID", "datatype": "char", "ucd": "meta.id;meta.main",
     "description": "The identifier the links belong to"},
    {"name": "access_url", "datatype": "char", "ucd": "meta.ref.url",
     "description": "Where to get the linked resource"},
    {"name": "service_def", "datatype": "char", "ucd": "meta.ref",
     "description": "A service descriptor (none here)"},
    {"name": "error_message", "datatype": "char", "ucd": "meta.code.error",
     "description": "Why there is no link"},
    {"name": "semantics", "datatype": "char", "ucd": "meta.code",
     "description": "What the link is, from the IVOA DataLink vocabulary"},
    {"name": "description", "datatype": "char", "ucd": "meta.note",
     "description": "The link in words"},
    {"name": "content_type", "datatype": "char", "ucd": "meta.code.mime",
     "description": "Its MIME type"},
    {"name": "content_length", "datatype": "long", "unit": "byte", "ucd": "phys.size;meta.file",
     "description": "Its size"},
]


def _ids(request: Request) -> list[str]:
    ids = [v.strip() for k, v in request.query_params.multi_items() if k.upper() == "ID"]
    if not ids:
        raise errors.ValidationFailed("Give at least one ID (ivo://astrocloud/archive?<n>).",
                                      field="ID")
    if len(ids) > MAX_IDS:
        raise errors.ValidationFailed("At most %(n)s IDs at once.", field="ID", n=MAX_IDS)
    formats = [v for k, v in request.query_params.multi_items() if k.upper() == "RESPONSEFORMAT"]
    if formats and formats[-1].split(";")[0].strip().lower() not in (
            "votable", "application/x-votable+xml", "text/xml"):
        raise errors.ValidationFailed("RESPONSEFORMAT: only VOTable is offered.",
                                      field="RESPONSEFORMAT")
    return ids


def _links(request: Request, ctx: Context, did: str, archived) -> list[dict]:
    if archived is None:
        return [{"ID": did, "semantics": "#this",
                 "error_message": f"NotFoundFault: {did} is not a file of this "
                                  f"archive, or you may not see it (yet)."}]
    base = str(request.base_url).rstrip("/")
    api = f"{base}/api/v1/data/observations/{archived.id}"
    rows = [{"ID": did, "access_url": f"{api}/file", "semantics": "#this",
             "description": f"The file {archived.filename}",
             "content_type": archived.access_format, "content_length": archived.size}]
    if archived.preview_uri:
        rows.append({"ID": did, "access_url": f"{api}/preview.png", "semantics": "#preview",
                     "description": "A preview image", "content_type": "image/png"})
    if archived.thumbnail_uri:
        rows.append({"ID": did, "access_url": f"{api}/thumbnail.png",
                     "semantics": "#preview-image", "description": "A thumbnail",
                     "content_type": "image/png"})
    rows.append({"ID": did, "access_url": api, "semantics": "#auxiliary",
                 "description": "Metadata, FITS header and quality-control report",
                 "content_type": "application/json"})
    lineage = archive.lineage(ctx, archived.id)
    for kind, semantics, words in (("sources", "#progenitor", "Made from"),
                                   ("products", "#derivation", "A product made from it:")):
        for other in lineage[kind]:
            rows.append({"ID": did, "access_url": f"{base}/api/v1/data/observations/"
                                                  f"{other.id}/file",
                         "semantics": semantics, "description": f"{words} {other.filename}",
                         "content_type": other.access_format, "content_length": other.size})
    return rows


@pages.get("/datalink/links", openapi_extra=uses(ArchiveOps.FILE_READ))
def links(request: Request, ctx: Ctx):
    found = archive.by_publisher_did(ctx, _ids(request))
    rows = [row for did, archived in found.items() for row in _links(request, ctx, did, archived)]
    votable = results_table(COLUMNS, rows, name="links")
    return Response(to_bytes(votable), media_type=LINKS_TYPE)


@pages.get("/datalink/capabilities", openapi_extra=PUBLIC)
def capabilities(request: Request):
    base = f"{str(request.base_url).rstrip('/')}/datalink"
    return vosi.capabilities(base, ("ivo://ivoa.net/std/DataLink#links-1.1", f"{base}/links"))


@pages.get("/datalink/availability", openapi_extra=PUBLIC)
def availability():
    return vosi.availability()
