"""Source catalogs as the services see them: the cone search agrees with a brute-force
computation everywhere on the sky (the poles, across RA = 0, tiny and large cones) whatever the
spatial index of the back-end, and a proprietary catalog stays hidden — in the list, its
metadata and its cone — from everyone but its owner, the groups it is granted to and the
operators, until its date passes.

This module also holds the synthetic catalogs and fixtures the other catalog tests use."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from alembic import command

from astrocloud.channels import policy_files
from astrocloud.core.db import Database
from astrocloud.core.errors import NotFound, PermissionDenied
from astrocloud.core.identity import services as identity
from astrocloud.core.identity.models import User
from astrocloud.core.migrate import alembic_config, upgrade
from astrocloud.core.security.engine import Subject, load_subject
from astrocloud.core.security.services import seed_policies
from astrocloud.core.service import Context
from astrocloud.data.catalogs import importer, services
from astrocloud.data.catalogs.models import TABLE_PREFIX, Catalog, CatalogColumn
from tests.support import server

# ---- synthetic catalogs -----------------------------------------------------------------------

COLUMNS_META = {
    "source_id": ("", "meta.id;meta.main", "Unique source identifier"),
    "RA": ("deg", "pos.eq.ra;meta.main", "Right ascension (ICRS)"),
    "DEC": ("deg", "pos.eq.dec;meta.main", "Declination (ICRS)"),
    "gmag": ("mag", "phot.mag;em.opt.V", "Mean G magnitude"),
    "class": ("", "src.class", "Spectral class"),
    "good": ("", "meta.code.qual", "Passed the quality checks"),
    "n_obs": ("", "meta.number", "Number of observations"),
}


def sky(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Positions uniform on the sphere, plus crowds at both poles and across RA = 0, where
    position searches go wrong first."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    k = max(n // 10, 1)
    north = (rng.uniform(0, 360, k), rng.uniform(88.5, 90.0, k))
    south = (rng.uniform(0, 360, k), rng.uniform(-90.0, -88.5, k))
    wrap = (np.mod(rng.uniform(-2, 2, k), 360.0), rng.uniform(-3, 3, k))
    ra = np.concatenate([ra, north[0], south[0], wrap[0]])
    dec = np.concatenate([dec, north[1], south[1], wrap[1]])
    return ra, dec


def columns_for(ra: np.ndarray, dec: np.ndarray, seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(ra)
    return {
        "source_id": np.arange(1, n + 1, dtype=np.int64),
        "RA": ra.astype(np.float64),
        "DEC": dec.astype(np.float64),
        "gmag": rng.normal(16, 2, n).astype(np.float32),
        "class": np.array(["STAR", "GALAXY", "QSO"])[rng.integers(0, 3, n)],
        "good": rng.random(n) > 0.2,
        "n_obs": rng.integers(1, 300, n).astype(np.int16),
    }


def write_parquet(path: Path, cols: dict[str, np.ndarray], *, meta: bool = True) -> Path:
    fields = []
    for name, values in cols.items():
        unit, ucd, description = COLUMNS_META.get(name, ("", "", ""))
        md = {k: v for k, v in (("unit", unit), ("ucd", ucd), ("description", description))
              if v} if meta else None
        fields.append(pa.field(name, pa.array(values).type, metadata=md or None))
    pq.write_table(pa.table({k: pa.array(v) for k, v in cols.items()},
                            schema=pa.schema(fields)), path)
    return path


def write_fits(path: Path, cols: dict[str, np.ndarray]) -> Path:
    """A FITS binary table as TOPCAT/STILTS write them: TUNITn, TUCDn and TCOMMn cards."""
    from astropy.io import fits

    formats = {"i": {2: "I", 4: "J", 8: "K"}, "f": {4: "E", 8: "D"}, "b": {1: "L"}}
    fits_cols = []
    for name, values in cols.items():
        unit = COLUMNS_META.get(name, ("", "", ""))[0] or None
        if values.dtype.kind == "U":
            width = max(1, max(len(v) for v in values))
            fits_cols.append(fits.Column(name=name, format=f"{width}A", unit=unit,
                                         array=values.astype(f"S{width}")))
        else:
            fmt = formats[values.dtype.kind][values.dtype.itemsize]
            fits_cols.append(fits.Column(name=name, format=fmt, unit=unit, array=values))
    hdu = fits.BinTableHDU.from_columns(fits_cols, name="SOURCES")
    for i, name in enumerate(cols, start=1):
        _, ucd, description = COLUMNS_META.get(name, ("", "", ""))
        if ucd:
            hdu.header[f"TUCD{i}"] = ucd
        if description:
            hdu.header[f"TCOMM{i}"] = description
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def write_votable(path: Path, cols: dict[str, np.ndarray]) -> Path:
    from astropy.io.votable import from_table
    from astropy.table import Table

    table = Table({k: v for k, v in cols.items()})
    votable = from_table(table)
    for field in votable.get_first_table().fields:
        unit, ucd, description = COLUMNS_META.get(field.name, ("", "", ""))
        field.unit = unit or None
        field.ucd = ucd or None
        field.description = description or None
    votable.to_xml(str(path))
    return path


def write_csv(path: Path, cols: dict[str, np.ndarray], *, sidecar: bool = True) -> Path:
    from pyarrow import csv as pacsv

    pacsv.write_csv(pa.table({k: pa.array(v) for k, v in cols.items()}), path)
    if sidecar:
        meta = {"title": "A CSV catalog", "columns": {
            name: {"unit": u, "ucd": c, "description": d}
            for name, (u, c, d) in COLUMNS_META.items() if name in cols}}
        Path(f"{path}.json").write_text(json.dumps(meta))
    return path


def write_ecsv(path: Path, cols: dict[str, np.ndarray]) -> Path:
    from astropy.table import Table

    table = Table({k: v for k, v in cols.items()})
    for name, (unit, ucd, description) in COLUMNS_META.items():
        if name in table.colnames:
            table[name].unit = unit or None
            table[name].description = description or None
            if ucd:
                table[name].meta["ucd"] = ucd
    table.write(path, format="ascii.ecsv")
    return path


WRITERS = {"fits": write_fits, "votable": write_votable, "csv": write_csv,
           "parquet": write_parquet, "ecsv": write_ecsv}
SUFFIX = {"fits": ".fits", "votable": ".vot", "csv": ".csv", "parquet": ".parquet",
          "ecsv": ".ecsv"}


def synthetic(tmp_path: Path, fmt: str = "parquet", n: int = 2000, *, seed: int = 7,
              name: str = "sources") -> Path:
    ra, dec = sky(n, seed)
    return WRITERS[fmt](tmp_path / f"{name}{SUFFIX[fmt]}", columns_for(ra, dec))


# ---- fixtures ---------------------------------------------------------------------------------


def drop_catalog_tables(database: Database) -> None:
    """The catalogs' own tables are no model's: the per-test reset does not know them."""
    with database.engine.begin() as conn:
        for name in sa.inspect(conn).get_table_names():
            if name.startswith(TABLE_PREFIX):
                conn.execute(sa.text(f'DROP TABLE "{name}"'))


@pytest.fixture(autouse=True)
def no_catalog_tables(database) -> Iterator[None]:
    drop_catalog_tables(database)
    yield
    drop_catalog_tables(database)


def context_of(database: Database, settings, user: User | None) -> Context:
    ctx = Context(database=database, settings=settings, via="api")
    if user is not None:
        ctx.subject = load_subject(ctx.db, ctx.db.get(User, user.id))
        ctx.db.commit()
    return ctx


@pytest.fixture
def acting(database, settings) -> Iterator:
    """acting(user or None) → a service Context for that user (None: an anonymous visitor)."""
    made: list[Context] = []

    def make(user: User | None) -> Context:
        made.append(context_of(database, settings, user))
        return made[-1]

    yield make
    for ctx in made:
        ctx.close()


def q3c_available(database: Database) -> bool:
    if database.dialect != "postgresql":
        return False
    with database.engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'q3c'")).first() is not None


def index_kinds(database: Database) -> list[str]:
    """The spatial indexes this back-end offers."""
    return ["healpix", "q3c"] if q3c_available(database) else ["healpix"]


# ---- the cone search --------------------------------------------------------------------------

CONES = [
    (0.3, 1.0, 1.5),       # across RA = 0
    (359.8, -2.0, 0.8),    # across RA = 0 from the other side
    (0.0, 90.0, 0.9),      # on the north pole
    (200.0, 89.4, 1.0),    # around the north pole
    (15.0, -89.9, 0.6),    # around the south pole
    (123.4, 33.3, 12.0),   # a large cone
    (250.0, -40.0, 3.0),   # an ordinary one
]


def brute_force(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float,
                radius: float) -> dict[int, float]:
    """source_id → distance (degrees) of every source within the cone, by astropy."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    separation = SkyCoord(ra * u.deg, dec * u.deg).separation(
        SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg
    inside = np.flatnonzero(separation <= radius)
    return {int(i) + 1: float(separation[i]) for i in inside}


def test_cone_search_matches_brute_force_everywhere_with_every_spatial_index(
        system, database, tmp_path):
    ra, dec = sky(20_000, seed=11)
    path = write_parquet(tmp_path / "sky.parquet", columns_for(ra, dec))
    for kind in index_kinds(database):
        services.import_catalog(system, path, name=f"sky_{kind}", index=kind)
        for ra0, dec0, radius in CONES:
            expected = brute_force(ra, dec, ra0, dec0, radius)
            result = services.cone(system, f"sky_{kind}", ra0, dec0, radius, limit=100_000)
            found = {row["source_id"]: row["_distance"] for row in result.rows}
            where = f"{kind} cone ({ra0}, {dec0}, {radius})"
            assert set(found) == set(expected), where
            assert all(abs(found[k] - expected[k]) < 1e-8 for k in found), where
            distances = [row["_distance"] for row in result.rows]
            assert distances == sorted(distances), where
            assert len(expected) > 0, where


def test_an_arcsecond_cone_finds_the_one_source_at_its_centre(system, tmp_path):
    ra, dec = sky(5000, seed=5)
    services.import_catalog(system, write_parquet(tmp_path / "s.parquet", columns_for(ra, dec)),
                            name="fine")
    result = services.cone(system, "fine", float(ra[1234]), float(dec[1234]), 1 / 3600)
    assert [row["source_id"] for row in result.rows] == [1235]
    assert result.rows[0]["_distance"] < 1e-9


def test_a_cone_returns_the_nearest_rows_up_to_its_limit_and_says_it_was_cut(system, tmp_path):
    ra, dec = sky(5000, seed=5)
    services.import_catalog(system, write_parquet(tmp_path / "s.parquet", columns_for(ra, dec)),
                            name="cut")
    everything = brute_force(ra, dec, 100.0, 20.0, 10.0)
    nearest = sorted(everything, key=everything.get)[:5]
    result = services.cone(system, "cut", 100.0, 20.0, 10.0, limit=5)
    assert [row["source_id"] for row in result.rows] == nearest
    assert result.truncated is True
    assert services.cone(system, "cut", 100.0, 20.0, 10.0, limit=10_000).truncated is False


def test_a_cone_returns_every_column_with_its_value_and_the_distance(system, tmp_path):
    ra, dec = sky(500, seed=2)
    cols = columns_for(ra, dec)
    services.import_catalog(system, write_parquet(tmp_path / "s.parquet", cols), name="vals")
    row = services.cone(system, "vals", float(ra[7]), float(dec[7]), 1 / 3600).rows[0]
    assert set(row) == {"source_id", "ra", "dec", "gmag", "class", "good", "n_obs",
                        "_distance"}
    assert row["source_id"] == 8
    assert row["ra"] == cols["RA"][7] and row["dec"] == cols["DEC"][7]
    assert row["gmag"] == float(str(cols["gmag"][7]))  # a float32 as it was written
    assert row["class"] == cols["class"][7]
    assert row["good"] is bool(cols["good"][7])
    assert row["n_obs"] == int(cols["n_obs"][7])


def test_a_cone_on_an_unknown_catalog_is_not_found(system):
    with pytest.raises(NotFound):
        services.cone(system, "nothing_here", 10.0, 10.0, 1.0)


# ---- who sees a proprietary catalog ----------------------------------------------------------


@pytest.fixture
def team(users, system):
    """An owner, a member of the group the catalog is granted to, an outsider, an operator."""
    people = {name: users.create(name, role=role) for name, role in
              (("owner", "astronomer"), ("member", "astronomer"), ("outsider", "astronomer"),
               ("operator", "operator"))}
    group = identity.create_group(system, name="lamost-team", title="LAMOST team")
    identity.add_member(system, group_id=group.id, username="member")
    return people


@pytest.fixture
def private_catalog(system, team, tmp_path) -> str:
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    services.import_catalog(system, synthetic(tmp_path, n=300), name="private_dr1",
                            proprietary_until=until, owner="owner", groups=["lamost-team"])
    services.import_catalog(system, synthetic(tmp_path, n=300, name="other"), name="public_dr1")
    return "private_dr1"


def sees(ctx: Context, name: str) -> dict[str, bool]:
    """Whether `ctx` finds catalog `name` in the list, its metadata, and its cone."""
    listed = name in [c.name for c in services.list_catalogs(ctx)]
    try:
        services.get_catalog(ctx, name)
        metadata = True
    except NotFound:
        metadata = False
    try:
        cone = len(services.cone(ctx, name, 0.0, 0.0, 180.0, limit=1).rows) == 1
    except NotFound:
        cone = False
    return {"list": listed, "metadata": metadata, "cone": cone}


ALL = {"list": True, "metadata": True, "cone": True}
NONE = {"list": False, "metadata": False, "cone": False}


def test_a_proprietary_catalog_is_hidden_from_anonymous_visitors(acting, private_catalog):
    assert sees(acting(None), private_catalog) == NONE


def test_a_proprietary_catalog_is_hidden_from_other_users(acting, team, private_catalog):
    assert sees(acting(team["outsider"]), private_catalog) == NONE


def test_a_proprietary_catalog_is_seen_by_its_owner(acting, team, private_catalog):
    assert sees(acting(team["owner"]), private_catalog) == ALL


def test_a_proprietary_catalog_is_seen_by_the_group_it_is_granted_to(acting, team,
                                                                      private_catalog):
    assert sees(acting(team["member"]), private_catalog) == ALL


def test_a_proprietary_catalog_is_seen_by_operators(acting, team, private_catalog):
    assert sees(acting(team["operator"]), private_catalog) == ALL


def test_a_public_catalog_is_seen_by_everyone_meanwhile(acting, team, private_catalog):
    assert sees(acting(None), "public_dr1") == ALL
    assert sees(acting(team["outsider"]), "public_dr1") == ALL


def test_a_proprietary_catalog_becomes_public_once_its_date_has_passed(system, acting,
                                                                        private_catalog):
    with system.database.session() as session:  # the date comes: a year later
        catalog = session.scalar(sa.select(Catalog).where(Catalog.name == private_catalog))
        catalog.proprietary_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    assert sees(acting(None), private_catalog) == ALL


def test_a_catalog_imported_with_a_past_date_is_public_at_once(system, acting, tmp_path):
    services.import_catalog(system, synthetic(tmp_path, n=100), name="old_dr",
                            proprietary_until=dt.date(2020, 1, 1))
    assert sees(acting(None), "old_dr") == ALL


def test_granting_the_catalog_to_a_group_lets_its_members_see_it(system, acting, team, users,
                                                                 private_catalog):
    newcomer = users.create("newcomer")
    group = identity.create_group(system, name="late-team", title="Late")
    identity.add_member(system, group_id=group.id, username="newcomer")
    services.grant_catalog(acting(team["owner"]), private_catalog, ["late-team"])
    assert sees(acting(newcomer), private_catalog) == ALL
    assert sees(acting(team["member"]), private_catalog) == NONE  # the old grant was replaced


def test_only_the_owner_and_operators_grant_a_catalog(acting, team, private_catalog):
    with pytest.raises(PermissionDenied):
        services.grant_catalog(acting(team["member"]), private_catalog, ["lamost-team"])


# ---- deleting ---------------------------------------------------------------------------------


def test_deleting_a_catalog_drops_its_table_and_its_metadata(system, database, tmp_path):
    services.import_catalog(system, synthetic(tmp_path, n=100), name="gone")
    assert services.delete_catalog(system, "gone") == 100 + 30
    assert not sa.inspect(database.engine).has_table(f"{TABLE_PREFIX}gone")
    with database.session(write=False) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Catalog)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(CatalogColumn)) == 0


def test_astronomers_may_not_delete_a_catalog(acting, team, private_catalog):
    with pytest.raises(PermissionDenied):
        services.delete_catalog(acting(team["owner"]), private_catalog)


def test_a_deleted_name_can_be_imported_again(system, tmp_path):
    services.import_catalog(system, synthetic(tmp_path, n=100), name="again")
    services.delete_catalog(system, "again")
    result = services.import_catalog(system, synthetic(tmp_path, n=50, name="b"), name="again")
    assert result.rows == 50 + 15


def test_the_healpix_ranges_of_a_cone_are_few_at_any_size():
    for radius in (1 / 3600, 0.01, 0.1, 1.0, 10.0, 90.0, 180.0):
        ranges = importer.healpix_ranges(42.0, -17.0, radius)
        assert 1 <= len(ranges) <= 64, radius
        assert all(lo <= hi for lo, hi in ranges)


def test_the_system_subject_lists_every_catalog_while_others_see_the_public_ones(
        system, acting, tmp_path):
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    services.import_catalog(system, synthetic(tmp_path, n=50), name="a_public")
    services.import_catalog(system, synthetic(tmp_path, n=50, name="b"), name="b_private",
                            proprietary_until=until)
    assert [c.name for c in services.list_catalogs(system)] == ["a_public", "b_private"]
    assert [c.name for c in services.list_catalogs(acting(None))] == ["a_public"]


# ---- the migration ----------------------------------------------------------------------------


@pytest.fixture
def own_database(tmp_path, worker_id_safe, settings) -> Iterator[Database]:
    """A database of this test's own, migrated to the head and seeded."""
    url = server.test_database_url(tmp_path, f"{worker_id_safe}_catalog_migration")
    database = Database(url)
    upgrade(database)
    with database.session() as session:
        seed_policies(session, policy_files())
    try:
        yield database
    finally:
        database.dispose()
        if os.environ.get("ASTROCLOUD_TEST_DATABASE_URL"):
            name = sa.engine.make_url(url).database
            admin = sa.create_engine(sa.engine.make_url(url).set(database="postgres"),
                                     isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_undoing_the_catalog_migration_drops_the_catalogs_own_tables(own_database, settings,
                                                                     tmp_path):
    with Context(database=own_database, settings=settings, subject=Subject.system_subject(),
                 via="cli") as ctx:
        services.import_catalog(ctx, synthetic(tmp_path, n=10), name="doomed")
    assert sa.inspect(own_database.engine).has_table(f"{TABLE_PREFIX}doomed")
    cfg = alembic_config(own_database)
    with own_database.engine.connect() as connection:
        cfg.attributes["connection"] = connection.execution_options(astrocloud_write=True)
        command.downgrade(cfg, "0003")
        if connection.in_transaction():
            connection.commit()
    tables = set(sa.inspect(own_database.engine).get_table_names())
    assert f"{TABLE_PREFIX}doomed" not in tables and "data_catalogs" not in tables
