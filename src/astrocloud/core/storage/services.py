"""Operations on the storage layer: data-center sites, placement rules, integrity sweeps."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from astrocloud.core.config import Settings
from astrocloud.core.errors import Conflict, ValidationFailed
from astrocloud.core.security.operations import Action, OperationSet, Query
from astrocloud.core.service import Context, operation
from astrocloud.core.storage.backends import StorageError, open_store
from astrocloud.core.storage.models import SITE_STATUSES, PlacementRule, Replica, Site

SITE_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")

# The reference deployment's six data-center cities.
DEFAULT_SITES = (
    ("beijing", "Beijing", 39.9042, 116.4074),
    ("nanjing", "Nanjing", 32.0603, 118.7969),
    ("shanghai", "Shanghai", 31.2304, 121.4737),
    ("kunming", "Kunming", 25.0389, 102.7183),
    ("lijiang", "Lijiang", 26.8721, 100.2299),
    ("urumqi", "Urumqi", 43.8256, 87.6168),
)


class StorageOps(OperationSet):
    SITE_LIST = Query("core.site.list", resource="site", doc="See the data-center sites.")
    SITE_MANAGE = Action("core.site.manage", resource="site",
                         doc="Add a site, change its storage, capacity or status.")
    SWEEP = Action("core.storage.sweep", doc="Run an integrity sweep over every replica.")


def seed_sites(db: Session, settings: Settings) -> int:
    """A fresh installation gets the six default sites, each a folder under $home/sites."""
    if db.scalar(sa.select(sa.func.count()).select_from(Site)):
        return 0
    for position, (name, city, lat, lon) in enumerate(DEFAULT_SITES):
        folder = settings.home / "sites" / name
        folder.mkdir(parents=True, exist_ok=True)
        db.add(Site(name=name, city=city, latitude=lat, longitude=lon, position=position,
                    storage_url=f"file://{folder}"))
    db.add(PlacementRule(prefix="ac://", copies=settings.storage_default_copies,
                         description="Every file: the default number of copies."))
    return len(DEFAULT_SITES)


@operation(StorageOps.SITE_LIST)
def list_sites(ctx: Context) -> list[Site]:
    """The sites the caller may see, in their configured order."""
    ctx.authorize_listing()
    return list(ctx.db.scalars(ctx.visible(sa.select(Site).order_by(Site.position, Site.id))))


def _site_fields(name, city, latitude, longitude, storage_url, capacity_bytes, status) -> list:
    errors = []
    if name is not None and not SITE_NAME_RE.match(name):
        errors.append({"field": "name", "message": "2–64 characters: lower-case letters, digits, "
                                                   "'_' or '-', starting with a letter."})
    if latitude is not None and not -90 <= latitude <= 90:
        errors.append({"field": "latitude", "message": "Between -90 and 90 degrees."})
    if longitude is not None and not -180 <= longitude <= 360:
        errors.append({"field": "longitude", "message": "Between -180 and 360 degrees."})
    if capacity_bytes is not None and capacity_bytes < 0:
        errors.append({"field": "capacity_bytes", "message": "Zero (unknown) or more."})
    if status is not None and status not in SITE_STATUSES:
        errors.append({"field": "status",
                       "message": f"One of: {', '.join(SITE_STATUSES)}."})
    if storage_url is not None:
        try:
            open_store(storage_url)
        except StorageError as exc:
            errors.append({"field": "storage_url", "message": str(exc)})
        except OSError as exc:
            errors.append({"field": "storage_url",
                           "message": f"The folder cannot be used: {exc.strerror}."})
    if city is not None and len(city) > 100:
        errors.append({"field": "city", "message": "At most 100 characters."})
    return errors


@operation(StorageOps.SITE_LIST)
def site_health(ctx: Context) -> dict[int, dict[str, int]]:
    """Per visible site: replicas by status and the bytes held in good copies."""
    from astrocloud.core.storage.models import StoredFile

    ctx.authorize_listing()
    visible = ctx.visible(sa.select(Site.id)).subquery()
    rows = ctx.db.execute(
        sa.select(Replica.site_id, Replica.status, sa.func.count(),
                  sa.func.coalesce(sa.func.sum(StoredFile.size), 0))
        .join(StoredFile, StoredFile.id == Replica.file_id)
        .where(Replica.site_id.in_(sa.select(visible.c.id)))
        .group_by(Replica.site_id, Replica.status)).all()
    health: dict[int, dict[str, int]] = {}
    for site_id, status, count, size in rows:
        entry = health.setdefault(site_id, {"bytes": 0})
        entry[status] = count
        if status == "ok":
            entry["bytes"] += int(size)
    return health


@operation(StorageOps.SITE_MANAGE)
def create_site(ctx: Context, *, name: str, city: str, latitude: float, longitude: float,
                storage_url: str, capacity_bytes: int = 0) -> Site:
    """Add a data-center site."""
    ctx.authorize()
    errors = _site_fields(name, city, latitude, longitude, storage_url, capacity_bytes, None)
    if not errors and ctx.db.scalar(sa.select(Site.id).where(Site.name == name)):
        errors.append({"field": "name", "message": "A site with this name exists already."})
    if errors:
        raise ValidationFailed(errors)
    position = (ctx.db.scalar(sa.select(sa.func.max(Site.position))) or 0) + 1
    site = Site(name=name, city=city, latitude=latitude, longitude=longitude,
                storage_url=storage_url, capacity_bytes=capacity_bytes, position=position)
    ctx.db.add(site)
    ctx.db.flush()
    ctx.set_target(site)
    return site


@operation(StorageOps.SITE_MANAGE)
def update_site(ctx: Context, *, site_id: int, city: str | None = None,
                latitude: float | None = None, longitude: float | None = None,
                storage_url: str | None = None, capacity_bytes: int | None = None,
                status: str | None = None) -> Site:
    """Change a site. Taking a site `down` keeps its replicas on record (reads fail over);
    `draining` stops new writes there."""
    site = ctx.get_visible(Site, site_id, op=StorageOps.SITE_LIST, what="site")
    ctx.authorize(site)
    errors = _site_fields(None, city, latitude, longitude, storage_url, capacity_bytes, status)
    if errors:
        raise ValidationFailed(errors)
    if storage_url is not None and storage_url != site.storage_url and ctx.db.scalar(
            sa.select(Replica.id).where(Replica.site_id == site.id).limit(1)):
        raise Conflict("This site holds replicas: move them before changing where it stores "
                       "data.")
    for field, value in (("city", city), ("latitude", latitude), ("longitude", longitude),
                         ("storage_url", storage_url), ("capacity_bytes", capacity_bytes),
                         ("status", status)):
        if value is not None:
            setattr(site, field, value)
    return site


@operation(StorageOps.SWEEP)
def request_sweep(ctx: Context, *, deep: bool = False) -> int:
    """Queue an integrity sweep; returns the job id."""
    ctx.authorize()
    return ctx.enqueue("storage.sweep", {"deep": deep})


@operation(StorageOps.SITE_MANAGE)
def delete_site(ctx: Context, *, site_id: int) -> None:
    """Remove a site that holds no replicas (take it down and let the sweep move them first)."""
    site = ctx.get_visible(Site, site_id, op=StorageOps.SITE_LIST, what="site")
    ctx.authorize(site)
    if ctx.db.scalar(sa.select(Replica.id).where(Replica.site_id == site.id).limit(1)):
        raise Conflict("This site still holds replicas: set it down and run a sweep so the "
                       "copies are made elsewhere, then remove their records.")
    if ctx.db.scalar(sa.select(sa.func.count()).select_from(Site)) <= 1:
        raise Conflict("The last site cannot be removed.")
    ctx.db.delete(site)


@operation(StorageOps.SITE_LIST)
def list_placement_rules(ctx: Context) -> list[PlacementRule]:
    """The placement rules, longest prefix first (the one that applies)."""
    ctx.authorize_listing()
    rules = list(ctx.db.scalars(sa.select(PlacementRule)))
    return sorted(rules, key=lambda r: (-len(r.prefix), r.prefix))


@operation(StorageOps.SITE_MANAGE)
def set_placement_rule(ctx: Context, *, prefix: str, copies: int,
                       preferred_sites: list[str] | None = None,
                       description: str = "") -> PlacementRule:
    """Create or change the rule for logical names under `prefix` (e.g. ac://archive/lamost/)."""
    ctx.authorize()
    errors = []
    if not isinstance(prefix, str) or not prefix.startswith("ac://") or len(prefix) > 500:
        errors.append({"field": "prefix", "message": "A prefix of logical names, "
                                                     "starting with ac://."})
    if not 1 <= copies <= 10:
        errors.append({"field": "copies", "message": "Between 1 and 10 copies."})
    names = [n.strip() for n in preferred_sites or [] if n.strip()]
    known = set(ctx.db.scalars(sa.select(Site.name)))
    unknown = [n for n in names if n not in known]
    if unknown:
        errors.append({"field": "preferred_sites",
                       "message": f"Unknown sites: {', '.join(unknown)}."})
    if errors:
        raise ValidationFailed(errors)
    rule = ctx.db.scalar(sa.select(PlacementRule).where(PlacementRule.prefix == prefix))
    if rule is None:
        rule = PlacementRule(prefix=prefix)
        ctx.db.add(rule)
    rule.copies, rule.preferred_sites = copies, ",".join(names)
    rule.description = description or ""
    ctx.db.flush()
    return rule
