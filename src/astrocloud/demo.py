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
    ("zhao", "zhao@demo.astrocloud.org", "Zhao Lei", "Xinjiang Observatory", "astronomer"),
    ("sun", "sun@demo.astrocloud.org", "Sun Mei", "Shanghai Astronomical Observatory",
     "astronomer"),
    ("nightowl", "nightowl@demo.astrocloud.org", "Liu Yang", "Yunnan Observatories",
     "astronomer"),
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
    yield from _demo_observation(ctx)
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


# ---- the observation cycle --------------------------------------------------------------------

YFOSC_SCHEMA = {
    "parameters": {
        "mode": {"type": "choice", "choices": ["imaging", "spectroscopy"], "required": True},
        "filter": {"type": "choice", "choices": ["U", "B", "V", "R", "I"], "required": True,
                   "only_if": {"mode": ["imaging"]}, "overhead_s": {"*": 20}},
        "grating": {"type": "choice", "choices": ["G3", "G8", "G10"], "required": True,
                    "only_if": {"mode": ["spectroscopy"]}, "overhead_s": {"*": 60}},
        "binning": {"type": "choice", "choices": ["1x1", "2x2"], "default": "1x1"},
        "readout": {"type": "choice", "choices": ["fast", "slow"], "default": "fast",
                    "overhead_s": {"fast": 10, "slow": 40}},
    },
    "overheads": {"per_target_s": 300, "per_exposure_s": 0},
}


def _demo_target(name: str, ra: float, dec: float, filt: str = "V") -> dict:
    return {"name": name, "ra": ra, "dec": dec, "magnitude": 9.0,
            "exposures": [{"instrument": "YFOSC", "setup": {"mode": "imaging", "filter": filt},
                           "seconds": 300, "count": 6}],
            "constraints": {"max_airmass": 2.0, "min_moon_distance": 30}}


def _blank_pdf() -> bytes:
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _demo_observation(ctx: Context) -> Iterator[str]:
    """The Lijiang 2.4m's proposal cycle: a call closed earlier this semester (reviewed,
    allocated, published; its programme observed and its files archived) and a call open now
    with a submitted and a draft proposal."""
    import datetime as dt

    from astrocloud.core.security import services as security
    from astrocloud.core.security.engine import Subject, load_subject
    from astrocloud.observation import allocations, calls, observing, proposals, reviews
    from astrocloud.observation import services as observation

    telescope = observation.telescope_by_name(ctx, "Lijiang 2.4m")
    if telescope is None:
        return
    if calls.list_calls(ctx, telescope="Lijiang 2.4m"):
        yield "demo calls exist"
        return
    observation.update_telescope(ctx, "Lijiang 2.4m", aperture=2.4, time_zone="Asia/Shanghai")
    observation.set_instrument_schema(ctx, "Lijiang 2.4m", "YFOSC", YFOSC_SCHEMA,
                                      "spectrograph")
    users = {u.username: u for u in ctx.db.scalars(sa.select(User))}
    security.assign(ctx, user_id=users["operator"].id, role="telescope_manager",
                    scope_type="telescope", scope_id=telescope.id)
    security.assign(ctx, user_id=users["nightowl"].id, role="observer",
                    scope_type="telescope", scope_id=telescope.id)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    common = dict(telescope="Lijiang 2.4m", instrument_hours={"YFOSC": 120.0},
                  categories=["Stars and stellar populations", "Galaxies", "Transients"],
                  form={"page_limit": 4, "size_limit_mb": 5.0, "max_targets": 20},
                  review_setup={"reviewers_per_proposal": 2, "normalisation": "zscore"},
                  proprietary_months=12)
    # the earlier call: open while its proposals are written, then moved into the past
    past = calls.create_call(ctx, name=f"{now.year}-early", title="Early-semester call",
                             opens_at=now - dt.timedelta(days=1),
                             closes_at=now + dt.timedelta(days=1),
                             review_deadline=now + dt.timedelta(days=2),
                             semester_start=now - dt.timedelta(days=30),
                             semester_end=now + dt.timedelta(days=150), **common)

    def submitted(call, pi: str, title: str, targets: list[dict], submit: bool = True) -> int:
        ctx.subject = load_subject(ctx.db, users[pi])
        try:
            p = proposals.create_proposal(ctx, call_id=call.id, title=title,
                                          abstract=f"{title}: the demo abstract.",
                                          category="Stars and stellar populations")
            proposals.update_proposal(ctx, p.id, version=None, targets=targets)
            proposals.upload_justification(ctx, p.id, filename="justification.pdf",
                                           content=_blank_pdf())
            if submit:
                proposals.submit_proposal(ctx, p.id)
            return p.id
        finally:
            ctx.subject = Subject.system_subject()

    first = submitted(past, "demo", "Variable stars in M 67",
                      [_demo_target("M 67", 132.825, 11.8)])
    submitted(past, "chen", "Blue stragglers in NGC 188", [_demo_target("NGC 188", 12.11,
                                                                        85.255, "B")])
    for name in ("zhao", "sun"):
        reviews.appoint(ctx, past.id, username=name)
    reviews.appoint(ctx, past.id, username="operator", role="tac_member")
    reviews.auto_assign(ctx, past.id)
    for name, grade in (("zhao", 1.5), ("sun", 2.0)):
        ctx.subject = load_subject(ctx.db, users[name])
        for review in reviews.list_reviews(ctx, call_id=past.id):
            reviews.grade(ctx, review.id, grade=grade + (0.5 if review.proposal_id != first
                                                         else 0),
                          comment="Clear science case; the exposure times are realistic.")
        ctx.subject = Subject.system_subject()
    calls.update_call(ctx, past.id, opens_at=now - dt.timedelta(days=60),
                      closes_at=now - dt.timedelta(days=40),
                      review_deadline=now - dt.timedelta(days=35))
    allocations.run_allocation(ctx, past.id)
    allocations.publish(ctx, past.id)
    yield f"demo call {past.name}: 2 proposals reviewed, allocated and published"
    code = proposals.get_proposal(ctx, first).code
    folder = ctx.settings.home / "demo-data"
    folder.mkdir(parents=True, exist_ok=True)
    from astrocloud.data.archive import services as archive
    from astrocloud.data.archive.synthetic import write_image

    paths = []
    ctx.subject = load_subject(ctx.db, users["nightowl"])
    try:
        for n in range(2):
            start = now - dt.timedelta(days=10 - n, hours=6)
            file_id = f"lj-{start:%Y%m%d}-{n:04d}"
            paths.append(str(write_image(folder / f"{file_id}.fits", ra=132.825, dec=11.8,
                                         date_obs=start, telescope="Lijiang 2.4m",
                                         instrument="YFOSC", filter="V", object="M 67",
                                         propid=code, seed=100 + n)))
            observing.record(ctx, "Lijiang 2.4m", programme=code, target="M 67",
                             start=start, end=start + dt.timedelta(minutes=40),
                             instrument="YFOSC", conditions={"seeing_arcsec": 1.3},
                             file_ids=[file_id])
    finally:
        ctx.subject = Subject.system_subject()
    _records, jobs = archive.submit_paths(ctx, telescope="Lijiang 2.4m", paths=paths)
    runtime = ctx.runtime
    if runtime is not None and ctx.settings.job_backend == "embedded":
        runtime.jobs.start_embedded()
        runtime.jobs.wait(jobs, timeout=600)
    yield f"demo programme {code}: 2 observations logged, their files sent to the archive"
    # the call open now
    current = calls.create_call(ctx, name=f"{now.year}-open", title="Call for proposals",
                                opens_at=now - dt.timedelta(days=3),
                                closes_at=now + dt.timedelta(days=21),
                                review_deadline=now + dt.timedelta(days=35),
                                semester_start=now + dt.timedelta(days=45),
                                semester_end=now + dt.timedelta(days=225), **common)
    submitted(current, "demo", "Eclipsing binaries in Praesepe",
              [_demo_target("Praesepe", 130.1, 19.67)])
    submitted(current, "chen", "A draft on open clusters",
              [_demo_target("M 44", 130.1, 19.98)], submit=False)
    yield f"demo call {current.name}: open until {current.closes_at:%Y-%m-%d %H:%M} UTC"
