"""The channels that make up the platform, in the order the portal shows them.

This module (like `app`, `cli` and `models`) sits above both the kernel and the channels and
is the one place that composes them: the kernel never imports a channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from astrocloud.core.i18n import _


@dataclass(frozen=True)
class Channel:
    key: str
    title: str  # an English msgid, translated where shown
    summary: str
    path: str
    icon: str
    available: bool
    # the channel's modules holding HTTP routers (`api` and/or `pages`), relative to its package
    route_modules: tuple[str, ...] = ("routes",)
    # the modules declaring its models, resources and operations (imported before policies are
    # checked); a channel made of sub-packages lists each one's
    service_modules: tuple[str, ...] = ("models", "services")
    # its protocol services for machines (VO services, VOSpace, WebDAV), each under top-level
    # paths of its own: their routers come first in the route table, before the kernel's and
    # every channel's pages and API, so that the high request rates of VO clients and mounted
    # drives are matched in a few steps rather than after some two hundred routes. (Nothing
    # else matches their prefixes, so the order changes no request's route.)
    protocol_modules: tuple[str, ...] = ()

    @property
    def package(self) -> str:
        return f"astrocloud.{self.key}"

    def policy_files(self) -> list[Path]:
        """The channel's default policies: a `policy.toml` in its package or any sub-package."""
        root = Path(str(resources.files(self.package)))
        return sorted(root.rglob("policy.toml"))


CHANNELS: tuple[Channel, ...] = (
    Channel("observation", _("Observation"),
            _("Apply for telescope time: calls, proposals, review, allocation, observing."),
            "/observation", "telescope", True, ("routes",),
            ("models", "services", "calls", "proposals", "feasibility", "reviews",
             "allocations", "observing")),
    Channel("data", _("Data"),
            _("The observation archive, catalogs and Virtual Observatory services."),
            "/data", "database", True, ("routes",),
            ("archive.models", "archive.services", "archive.tasks",
             "catalogs.models", "catalogs.services", "vo.models", "vo.services", "vo.tasks",
             "xmatch.services", "xmatch.tasks"),
            ("vo.scs", "vo.tap", "vo.sia", "vo.ssa", "vo.datalink", "vo.oai")),
    Channel("tools", _("Tools"), _("A catalogue of tools for processing and analysis."),
            "/tools", "wrench", False),
    Channel("cloud", _("Cloud"),
            _("Compute next to the data, with your private storage space, MyVOSpace."),
            "/cloud", "cloud", True, ("routes",),
            ("models", "services", "tasks"), ("vospace", "dav")),
    Channel("public", _("Public"),
            _("For everyone: the gallery, the supernova search, the astronomy dictionary."),
            "/public", "star", False),
)


def policy_files() -> list[Path]:
    from astrocloud.core.security.services import DEFAULT_POLICY

    load_all()
    files = [DEFAULT_POLICY]
    for channel in CHANNELS:
        files += channel.policy_files()
    return files


KERNEL_SERVICE_MODULES = (
    "astrocloud.core.identity.services",
    "astrocloud.core.security.services",
    "astrocloud.core.usage.services",
    "astrocloud.core.jobs.services",
    "astrocloud.core.storage.services",
    "astrocloud.core.storage.tasks",
)


def load_all() -> None:
    """Import every models and services module, so that every resource type and every
    operation is registered before policies are checked or seeded."""
    from importlib import import_module
    from importlib.util import find_spec

    import astrocloud.models  # noqa: F401

    for name in KERNEL_SERVICE_MODULES:
        import_module(name)
    for channel in CHANNELS:
        for part in channel.service_modules:
            module = f"{channel.package}.{part}"
            if find_spec(module) is not None:
                import_module(module)
