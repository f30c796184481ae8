"""The application factory: the kernel's routes plus every channel's, over one database."""

from __future__ import annotations

import logging
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

from astrocloud import __version__
from astrocloud.channels import CHANNELS, load_all
from astrocloud.core.config import Settings, get_settings
from astrocloud.core.db import Database
from astrocloud.core.runtime import Runtime, build_runtime
from astrocloud.core.web import errors as web_errors
from astrocloud.core.web.csrf import csrf_protect
from astrocloud.core.web.middleware import PlatformMiddleware
from astrocloud.core.web.routing import PUBLIC
from astrocloud.core.web.templating import STATIC_DIR, make_environment

log = logging.getLogger("astrocloud")

KERNEL_ROUTERS = (
    "astrocloud.core.web.pages",
    "astrocloud.core.identity.routes",
    "astrocloud.core.identity.pages",
    "astrocloud.core.identity.oidc",
    "astrocloud.core.security.routes",
    "astrocloud.core.security.pages",
    "astrocloud.core.usage.routes",
    "astrocloud.core.usage.pages",
    "astrocloud.core.jobs.routes",
    "astrocloud.core.jobs.pages",
    "astrocloud.core.storage.routes",
    "astrocloud.core.storage.pages",
)


def _swagger_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def create_app(settings: Settings | None = None, database: Database | None = None,
               runtime: Runtime | None = None) -> FastAPI:
    load_all()
    if runtime is not None:
        settings, database = runtime.settings, runtime.database
    settings = settings or get_settings()
    database = database or Database(settings.effective_database_url)
    runtime = runtime or build_runtime(settings, database)
    app = FastAPI(
        title="AstroCloud",
        version=__version__,
        description="One place for the whole life of astronomical observations. Authenticate "
                    "with a personal API token: `Authorization: Bearer <token>`, or HTTP Basic "
                    "with the token as the password.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(csrf_protect)],
    )
    app.state.settings = settings
    app.state.database = database
    app.state.runtime = runtime
    app.state.channels = CHANNELS
    template_dirs = [Path(str(__import__(c.package, fromlist=["x"]).__path__[0])) / "templates"
                     for c in CHANNELS]
    app.state.templates = make_environment(template_dirs)

    web_errors.install(app)
    upload_paths = ("/dav/", "/vospace/", "/api/v1/vos/files/", "/cloud/files/")
    limits = {p: settings.max_upload_bytes for p in upload_paths}
    limits.update({p: settings.archive_max_file_bytes
                   for p in ("/api/v1/data/ingest/", "/api/v1/data/products/")})
    limits["/tap/"] = settings.tap_upload_max_bytes + settings.max_body_bytes
    app.add_middleware(PlatformMiddleware, settings=settings, body_limits=limits)

    swagger = _swagger_dir()
    if swagger is not None:  # before /static, which would otherwise shadow it
        app.mount("/static/swagger", StaticFiles(directory=str(swagger)), name="swagger")
        app.routes[-1].astrocloud_public = True
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.routes[-1].astrocloud_public = True

    @app.get("/api/docs", include_in_schema=False, openapi_extra=PUBLIC)
    def api_docs():
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="AstroCloud API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    for channel in CHANNELS:  # the protocol services first (see Channel.protocol_modules)
        for module in channel.protocol_modules:
            _include(app, f"{channel.package}.{module}")
    for module in KERNEL_ROUTERS:
        _include(app, module)
    for channel in CHANNELS:
        for module in channel.route_modules:
            if find_spec(f"{channel.package}.{module}") is not None:  # parts not yet built
                _include(app, f"{channel.package}.{module}")
    # Mark the framework's own routes (the OpenAPI document) as public.
    for route in app.routes:
        if getattr(route, "path", "") in ("/openapi.json",):
            route.astrocloud_public = True
    return app


def _include(app: FastAPI, module_name: str) -> None:
    module = import_module(module_name)
    for name in ("api", "pages"):
        router = getattr(module, name, None)
        if router is not None:
            app.include_router(router)
