"""Demo data for `make demo`: accounts and groups to look around with. Idempotent.

Later channels add their own demo loaders here (telescopes, calls, archive files).
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from astrocloud.core.identity import services as identity
from astrocloud.core.identity.models import Group, User
from astrocloud.core.service import Context

DEMO_PASSWORD = "astrocloud-demo"

DEMO_USERS = (
    # username, e-mail, full name, institute, role
    ("admin", "admin@demo.astrocloud.org", "Platform Administrator", "AstroCloud", "admin"),
    ("operator", "operator@demo.astrocloud.org", "Wang Fang", "Yunnan Observatories", "operator"),
    ("demo", "demo@demo.astrocloud.org", "Li Hua", "National Astronomical Observatories",
     "astronomer"),
    ("chen", "chen@demo.astrocloud.org", "Chen Jing", "Purple Mountain Observatory", "astronomer"),
)

DEMO_GROUPS = (
    ("lamost-stellar", "LAMOST stellar spectra working group", "collaboration", "demo",
     ["chen"]),
    ("ynao", "Yunnan Observatories", "institute", "operator", ["demo"]),
)


def load_demo(ctx: Context) -> Iterator[str]:
    for username, email, name, institute, role in DEMO_USERS:
        if ctx.db.scalar(sa.select(User.id).where(User.username == username)):
            yield f"user {username} exists"
            continue
        identity.create_user(ctx, username=username, email=email, password=DEMO_PASSWORD,
                             role=role, display_name=name, institute=institute)
        yield f"user {username} created ({role})"
    for name, title, kind, owner, members in DEMO_GROUPS:
        if ctx.db.scalar(sa.select(Group.id).where(Group.name == name)):
            yield f"group {name} exists"
            continue
        group = identity.create_group(ctx, name=name, title=title, kind=kind)
        identity.add_member(ctx, group_id=group.id, username=owner, manager=True)
        for member in members:
            identity.add_member(ctx, group_id=group.id, username=member)
        yield f"group {name} created"
    yield from _demo_space(ctx)
    yield from _demo_archive(ctx)
    yield (f"Demo sign-in: user [bold]demo[/] (astronomer) or [bold]admin[/], "
           f"password [bold]{DEMO_PASSWORD}[/]")


WELCOME = """Welcome to your MyVOSpace!

This is your private storage space. The same files are here in the browser
(Cloud > My space), through WebDAV at /dav/demo/ and through VOSpace at
/vospace/nodes/demo. Copies are kept at two data-center sites.
"""


def _demo_space(ctx: Context) -> Iterator[str]:
    from astrocloud.cloud import services as vos
    from astrocloud.core.errors import NotFound

    try:
        vos.get_node(ctx, "demo/welcome.txt")
        yield "MyVOSpace of demo exists"
        return
    except NotFound:
        pass
    vos.create_container(ctx, "demo/observations")
    vos.upload(ctx, "demo/welcome.txt", iter([WELCOME.encode()]), content_type="text/plain")
    yield "MyVOSpace of demo created (welcome.txt, observations/)"


# ---- the archive ------------------------------------------------------------------------------

DEMO_TELESCOPES = (
    # name, longitude, latitude, elevation, instruments
    ("Xinglong 2.16m", 117.575, 40.396, 960.0, ["BFOSC", "OMR"]),
    ("Lijiang 2.4m", 100.031, 26.695, 3200.0, ["YFOSC"]),
)
DEMO_PROGRAMMES = (
    # code, telescope, PI, co-investigators, groups, months
    ("2025B-017", "Xinglong 2.16m", "demo", ["chen"], [], 12),
    ("2024A-003", "Lijiang 2.4m", "chen", [], ["lamost-stellar"], 18),
)
# target, ra, dec
DEMO_TARGETS = (("M 31", 10.6847, 41.2690), ("M 51", 202.4696, 47.1952),
                ("M 42", 83.8221, -5.3911), ("M 13", 250.4235, 36.4613),
                ("M 1", 83.6331, 22.0145), ("NGC 7000", 314.75, 44.3333))


def _demo_archive(ctx: Context) -> Iterator[str]:
    """Synthetic images and spectra of a few telescopes, run through the real ingest path:
    some old enough to be public, some still proprietary to their programme."""
    import datetime as dt

    from astrocloud.data.archive import services as archive
    from astrocloud.data.archive.synthetic import write_image, write_spectrum
    from astrocloud.observation import services as observation

    if observation.telescope_by_name(ctx, DEMO_TELESCOPES[0][0]) is not None:
        yield "demo archive exists"
        return
    for name, lon, lat, elevation, instruments in DEMO_TELESCOPES:
        observation.create_telescope(ctx, name=name, longitude=lon, latitude=lat,
                                     elevation=elevation, instruments=instruments)
    for code, telescope, pi, cois, groups, months in DEMO_PROGRAMMES:
        observation.create_programme(ctx, code=code, telescope=telescope, pi=pi,
                                     co_investigators=cois, groups=groups,
                                     proprietary_months=months)
    folder = ctx.settings.home / "demo-data"
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    batches: dict[str, list[str]] = {}
    for n, (target, ra, dec) in enumerate(DEMO_TARGETS):
        for k, (telescope, instrument, propid, age_days) in enumerate((
                ("Xinglong 2.16m", "BFOSC", "2025B-017", 40 + n),      # proprietary
                ("Xinglong 2.16m", "BFOSC", "2025B-017", 900 + 30 * n),  # public
                ("Lijiang 2.4m", "YFOSC", "2024A-003", 700 + 10 * n))):  # public
            night = now - dt.timedelta(days=age_days, hours=n)
            path = write_image(
                folder / f"{telescope.split()[0].lower()}-{n}{k}.fits", ra=ra + 0.01 * k,
                dec=dec, date_obs=night, telescope=telescope, instrument=instrument,
                filter="BVR"[k], object=target, propid=propid, seed=10 * n + k,
                seeing_arcsec=1.2 + 0.4 * k, saturate_some=(n == 2 and k == 0))
            batches.setdefault(telescope, []).append(str(path))
        spectrum = write_spectrum(folder / f"spectrum-{n}.fits", ra=ra, dec=dec,
                                  date_obs=now - dt.timedelta(days=300 + 200 * n),
                                  telescope="Xinglong 2.16m", instrument="OMR",
                                  object=target, propid="2025B-017", seed=n)
        batches["Xinglong 2.16m"].append(str(spectrum))
    yield from _demo_catalog(ctx, folder)
    jobs = []
    for telescope, paths in batches.items():
        _records, ids = archive.submit_paths(ctx, telescope=telescope, paths=paths)
        jobs += ids
    count = sum(map(len, batches.values()))
    yield f"demo archive: {count} synthetic images and spectra sent to ingest"
    runtime = ctx.runtime
    if runtime is not None and ctx.settings.job_backend == "embedded":
        runtime.jobs.start_embedded()
        done = runtime.jobs.wait(jobs, timeout=600)
        yield f"demo archive: {len([j for j in done if j.status == 'done'])} ingest jobs done"


def _demo_catalog(ctx: Context, folder) -> Iterator[str]:
    """A synthetic star catalog (100,000 rows around the sky), imported like any other."""
    from astrocloud.data.archive.synthetic import write_catalog
    from astrocloud.data.catalogs import services as catalogs

    path = write_catalog(folder / "demo_stars.fits", n_rows=100_000, seed=1)
    result = catalogs.import_catalog(ctx, path, name="demo_stars",
                                     title="Demo stars (synthetic)",
                                     description="A synthetic all-sky star catalog with g and "
                                                 "r magnitudes and parallaxes, for trying the "
                                                 "cone search and TAP.")
    yield f"demo catalog demo_stars: {result.rows} rows imported"
