"""HTTP routes of the Data channel: its parts' routers gathered in one place (the archive's
JSON API and pages; the catalogs' and the cross-match's once they are installed). The VO
services' routers are the channel's `protocol_modules` (see `astrocloud.channels`)."""

from importlib import import_module
from importlib.util import find_spec

from fastapi import APIRouter

api = APIRouter()
pages = APIRouter(include_in_schema=False)

for _part in ("archive.routes", "archive.pages", "catalogs.routes", "catalogs.pages",
              "xmatch.routes", "xmatch.pages"):
    _name = f"astrocloud.data.{_part}"
    if find_spec(_name) is None:  # a part not built yet
        continue
    _module = import_module(_name)
    for _kind, _router in (("api", api), ("pages", pages)):
        if getattr(_module, _kind, None) is not None:
            _router.include_router(getattr(_module, _kind))
