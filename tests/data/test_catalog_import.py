"""Importing a source catalog: every format arrives whole with its column metadata, columns get
safe database names, the position columns are found (or named), invalid positions are refused
(or skipped and counted), and an import that fails at any point leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from astrocloud.core.errors import Conflict, PermissionDenied, ValidationFailed
from astrocloud.data.catalogs import importer, services
from astrocloud.data.catalogs.models import TABLE_PREFIX, Catalog, CatalogColumn, CatalogGrant
from tests.data import test_catalogs as shared
from tests.data.test_catalogs import (
    COLUMNS_META,
    columns_for,
    index_kinds,
    sky,
    synthetic,
    write_parquet,
)

# the catalog fixtures (tests/data has no conftest of its own)
acting, no_catalog_tables = shared.acting, shared.no_catalog_tables

TYPED = {"source_id": "long", "ra": "double", "dec": "double", "gmag": "float",
         "class": "char", "good": "boolean", "n_obs": "short"}


def stored_rows(system, name: str) -> list[dict]:
    catalog = services.get_catalog(system, name)
    table = services.catalog_table(catalog)
    with system.database.session(write=False) as session:
        return [dict(r._mapping) for r in session.execute(
            sa.select(*[table.c[c.name] for c in catalog.columns])
            .order_by(table.c.source_id))]


def nothing_left(database) -> bool:
    with database.session(write=False) as session:
        counts = [session.scalar(sa.select(sa.func.count()).select_from(m))
                  for m in (Catalog, CatalogColumn, CatalogGrant)]
    tables = [t for t in sa.inspect(database.engine).get_table_names()
              if t.startswith(TABLE_PREFIX)]
    return counts == [0, 0, 0] and tables == []


# ---- every format -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["fits", "votable", "csv", "ecsv", "parquet"])
def test_every_row_and_value_arrives_as_written(system, tmp_path, fmt):
    path = synthetic(tmp_path, fmt, n=1000)
    result = services.import_catalog(system, path, name=f"from_{fmt}")
    ra, dec = sky(1000)
    expected = columns_for(ra, dec)
    rows = stored_rows(system, f"from_{fmt}")
    assert result.rows == len(rows) == len(ra)
    assert [r["source_id"] for r in rows] == expected["source_id"].tolist()
    assert [r["ra"] for r in rows] == expected["RA"].tolist()
    assert [r["dec"] for r in rows] == expected["DEC"].tolist()
    assert [r["class"] for r in rows] == expected["class"].tolist()
    assert [r["good"] for r in rows] == expected["good"].tolist()
    assert [r["n_obs"] for r in rows] == expected["n_obs"].tolist()
    assert np.allclose([r["gmag"] for r in rows], expected["gmag"], rtol=1e-6)


@pytest.mark.parametrize("fmt", ["fits", "votable", "ecsv", "parquet"])
def test_typed_formats_keep_their_column_types(system, tmp_path, fmt):
    services.import_catalog(system, synthetic(tmp_path, fmt, n=100), name="typed")
    columns = services.get_catalog(system, "typed").columns
    assert {c.name: c.datatype for c in columns} == TYPED
    assert [c.arraysize for c in columns if c.datatype == "char"] == ["*"]


def test_csv_column_types_are_inferred_from_the_values(system, tmp_path):
    services.import_catalog(system, synthetic(tmp_path, "csv", n=100), name="plain")
    columns = {c.name: c.datatype for c in services.get_catalog(system, "plain").columns}
    assert columns == {**TYPED, "gmag": "double", "n_obs": "long"}


@pytest.mark.parametrize("fmt", ["fits", "votable", "csv", "ecsv", "parquet"])
def test_units_ucds_and_descriptions_come_from_the_file(system, tmp_path, fmt):
    services.import_catalog(system, synthetic(tmp_path, fmt, n=100), name="described")
    columns = services.get_catalog(system, "described").columns
    found = {c.original_name: (c.unit, c.ucd, c.description) for c in columns}
    assert found == COLUMNS_META


def test_the_columns_keep_the_files_order_and_original_names(system, tmp_path):
    services.import_catalog(system, synthetic(tmp_path, "fits", n=100), name="ordered")
    columns = services.get_catalog(system, "ordered").columns
    assert [(c.position, c.name, c.original_name) for c in columns] == [
        (i, n.lower(), n) for i, n in enumerate(COLUMNS_META)]


def test_a_sidecar_overrides_the_files_metadata(system, tmp_path):
    path = synthetic(tmp_path, "parquet", n=100)
    sidecar = tmp_path / "meta.json"
    sidecar.write_text(json.dumps({"title": "From the sidecar", "columns": {
        "gmag": {"unit": "mmag", "description": "Faintness"}}}))
    services.import_catalog(system, path, name="overridden", meta=sidecar)
    catalog = services.get_catalog(system, "overridden")
    gmag = next(c for c in catalog.columns if c.name == "gmag")
    assert (gmag.unit, gmag.ucd, gmag.description) == ("mmag", "phot.mag;em.opt.V", "Faintness")
    assert catalog.title == "From the sidecar"


def test_a_csv_sidecar_can_set_a_columns_datatype(system, tmp_path):
    path = synthetic(tmp_path, "csv", n=100)
    meta = json.loads((tmp_path / "sources.csv.json").read_text())
    meta["columns"]["source_id"]["datatype"] = "char"
    (tmp_path / "sources.csv.json").write_text(json.dumps(meta))
    services.import_catalog(system, path, name="as_text")
    columns = {c.name: c.datatype for c in services.get_catalog(system, "as_text").columns}
    assert columns["source_id"] == "char"


def test_array_valued_columns_are_skipped_and_reported(system, tmp_path):
    from astropy.io import fits

    ra, dec = sky(50)
    hdu = fits.BinTableHDU.from_columns([
        fits.Column(name="ra", format="D", array=ra), fits.Column(name="dec", format="D",
                                                                  array=dec),
        fits.Column(name="flux", format="3E", array=np.ones((len(ra), 3), np.float32))])
    path = tmp_path / "vector.fits"
    hdu.writeto(path)
    result = services.import_catalog(system, path, name="vector")
    assert result.skipped_columns == [("flux", "array-valued")]
    assert [c.name for c in result.catalog.columns] == ["ra", "dec"]


def test_nan_and_infinite_values_are_stored_as_null(system, tmp_path):
    ra, dec = sky(10)
    flux = np.arange(len(ra), dtype=np.float64)
    flux[[1, 2]] = [np.nan, np.inf]
    write_parquet(tmp_path / "nan.parquet", {"source_id": np.arange(1, len(ra) + 1), "ra": ra,
                                             "dec": dec, "flux": flux})
    services.import_catalog(system, tmp_path / "nan.parquet", name="gaps")
    fluxes = [r["flux"] for r in stored_rows(system, "gaps")]
    assert fluxes[:4] == [0.0, None, None, 3.0]


# ---- column names -----------------------------------------------------------------------------


def test_column_names_are_made_safe_unique_and_never_keywords():
    names = ["Mag (G)", "select", "2MASS_ID", "mag_g", "MAG G", "", "Ångström", "ra", "dec",
             "x" * 80, "group", "_hidden"]
    assert importer.sanitise_names(names) == [
        "mag_g", "select_", "c_2mass_id", "mag_g_2", "mag_g_3", "col", "angstrom", "ra",
        "dec", "x" * 60, "group_", "hidden"]


# ---- the position -----------------------------------------------------------------------------


def _two_positions(tmp_path, **meta):
    ra, dec = sky(200)
    cols = {"source_id": np.arange(1, len(ra) + 1), "alpha_x": ra, "delta_y": dec,
            "ra": np.mod(ra + 180, 360), "dec": -dec}
    fields = [pa.field(n, pa.array(v).type, metadata=meta.get(n)) for n, v in cols.items()]
    path = tmp_path / "two.parquet"
    pq.write_table(pa.table(cols, schema=pa.schema(fields)), path)
    return path, ra, dec


def test_the_position_is_found_by_its_ucd_before_its_name(system, tmp_path):
    path, ra, dec = _two_positions(tmp_path, alpha_x={"ucd": "pos.eq.ra;meta.main"},
                                   delta_y={"ucd": "pos.eq.dec;meta.main"})
    catalog = services.import_catalog(system, path, name="by_ucd").catalog
    assert (catalog.ra_column, catalog.dec_column) == ("alpha_x", "delta_y")
    hit = services.cone(system, "by_ucd", float(ra[3]), float(dec[3]), 1 / 3600).rows
    assert [r["source_id"] for r in hit] == [4]


def test_the_position_is_found_by_a_common_name_and_described_for_vo_clients(system, tmp_path):
    ra, dec = sky(100)
    write_parquet(tmp_path / "v.parquet", {"RAJ2000": ra, "DEJ2000": dec}, meta=False)
    catalog = services.import_catalog(system, tmp_path / "v.parquet", name="by_name").catalog
    columns = {c.name: (c.unit, c.ucd, c.indexed) for c in catalog.columns}
    assert (catalog.ra_column, catalog.dec_column) == ("raj2000", "dej2000")
    assert columns == {"raj2000": ("deg", "pos.eq.ra;meta.main", True),
                       "dej2000": ("deg", "pos.eq.dec;meta.main", True)}


def test_the_position_columns_can_be_named(system, tmp_path):
    path, ra, dec = _two_positions(tmp_path)
    catalog = services.import_catalog(system, path, name="named", ra="alpha_x",
                                      dec="delta_y").catalog
    assert (catalog.ra_column, catalog.dec_column) == ("alpha_x", "delta_y")
    hit = services.cone(system, "named", float(ra[9]), float(dec[9]), 1 / 3600).rows
    assert [r["source_id"] for r in hit] == [10]


def test_without_a_position_column_the_import_says_how_to_name_it(system, database, tmp_path):
    write_parquet(tmp_path / "p.parquet", {"x": np.arange(5.0), "y": np.arange(5.0)},
                  meta=False)
    with pytest.raises(ValidationFailed, match="--ra"):
        services.import_catalog(system, tmp_path / "p.parquet", name="nowhere")
    assert nothing_left(database)


def test_a_named_position_column_that_does_not_exist_is_refused(system, tmp_path):
    with pytest.raises(ValidationFailed, match="There is no column “ra_x”"):
        services.import_catalog(system, synthetic(tmp_path, n=10), name="x", ra="ra_x")


def test_two_columns_claiming_the_main_position_must_be_chosen_between(system, tmp_path):
    main = {"ucd": "pos.eq.ra;meta.main"}
    path, _, _ = _two_positions(tmp_path, alpha_x=main, ra=main)
    with pytest.raises(ValidationFailed, match="Several columns could hold the right "
                                               "ascension"):
        services.import_catalog(system, path, name="ambiguous")


def test_a_position_in_another_unit_than_degrees_is_refused(system, tmp_path):
    ra, dec = sky(10)
    pq.write_table(pa.table({"ra": np.radians(ra), "dec": dec}, schema=pa.schema([
        pa.field("ra", pa.float64(), metadata={"unit": "rad"}), pa.field("dec", pa.float64())])),
        tmp_path / "rad.parquet")
    with pytest.raises(ValidationFailed, match="positions must be in degrees"):
        services.import_catalog(system, tmp_path / "rad.parquet", name="radians")


def test_a_row_outside_the_sky_makes_the_import_fail_with_its_row_number(system, database,
                                                                         tmp_path):
    ra, dec = sky(100)
    dec[41] = 91.5
    write_parquet(tmp_path / "bad.parquet", {"ra": ra, "dec": dec})
    with pytest.raises(importer.InvalidPositions, match="Row 42 has no valid position"):
        services.import_catalog(system, tmp_path / "bad.parquet", name="bad")
    assert nothing_left(database)


def test_rows_without_a_valid_position_can_be_skipped_and_are_counted(system, tmp_path):
    ra, dec = sky(100)
    ra[[3, 5]] = [360.0, -0.5]
    dec[7] = np.nan
    write_parquet(tmp_path / "bad.parquet", {"source_id": np.arange(1, len(ra) + 1), "ra": ra,
                                             "dec": dec})
    result = services.import_catalog(system, tmp_path / "bad.parquet", name="some",
                                     skip_invalid=True)
    assert (result.rows, result.skipped_rows) == (len(ra) - 3, 3)
    assert result.catalog.n_rows == len(ra) - 3
    kept = {r["source_id"] for r in stored_rows(system, "some")}
    assert kept.isdisjoint({4, 6, 8}) and len(kept) == len(ra) - 3


# ---- all or nothing ---------------------------------------------------------------------------


def test_an_import_failing_halfway_leaves_no_table_and_no_metadata(system, database, tmp_path):
    ra, dec = sky(200_000)  # 260,000 rows: three chunks are in when the bad row comes
    dec[250_000] = -100.0
    write_parquet(tmp_path / "late.parquet", {"ra": ra, "dec": dec})
    chunks = []
    with pytest.raises(importer.InvalidPositions):
        services.import_catalog(system, tmp_path / "late.parquet", name="halfway",
                                progress=lambda done, total: chunks.append(done))
    assert chunks == [100_000, 200_000]
    assert nothing_left(database)


def test_an_import_interrupted_by_its_caller_leaves_nothing(system, database, tmp_path):
    class Interrupted(Exception):
        pass

    def interrupt(done, total):
        raise Interrupted

    with pytest.raises(Interrupted):
        services.import_catalog(system, synthetic(tmp_path, n=1000), name="stopped",
                                groups=[], progress=interrupt)
    assert nothing_left(database)


def test_a_csv_whose_later_rows_break_its_column_types_leaves_nothing(system, database,
                                                                      tmp_path):
    lines = ["ra,dec,n"] + [f"{i % 360}.5,{i % 90}.25,{i}" for i in range(700_000)]
    lines.append("10.0,10.0,not-a-number")
    (tmp_path / "late.csv").write_text("\n".join(lines) + "\n")
    # the bad value lies beyond the first block, from which the types are inferred
    assert (tmp_path / "late.csv").stat().st_size > 1.5 * importer.CSV_BLOCK_BYTES
    with pytest.raises(importer.UnreadableCatalog, match="late.csv cannot be read as csv"):
        services.import_catalog(system, tmp_path / "late.csv", name="late")
    assert nothing_left(database)


# ---- the name, the file, the caller -----------------------------------------------------------


@pytest.mark.parametrize("name", ["LAMOST", "lamost-dr1", "1st", "", "a" * 49, "dr1;drop"])
def test_a_catalog_name_must_be_a_safe_identifier(system, tmp_path, name):
    with pytest.raises(ValidationFailed, match="A catalog name is"):
        services.import_catalog(system, synthetic(tmp_path, n=10), name=name)


def test_a_name_in_use_is_refused(system, tmp_path):
    services.import_catalog(system, synthetic(tmp_path, n=10), name="taken")
    with pytest.raises(Conflict, match="already a catalog called “taken”"):
        services.import_catalog(system, synthetic(tmp_path, n=10, name="b"), name="taken")


def test_a_table_left_by_someone_else_is_not_overwritten(system, database, tmp_path):
    with database.engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {TABLE_PREFIX}stray (x INTEGER)"))
    with pytest.raises(Conflict, match="without a catalog"):
        services.import_catalog(system, synthetic(tmp_path, n=10), name="stray")


def test_an_unknown_format_is_refused(system, tmp_path):
    with pytest.raises(ValidationFailed, match="Unknown format “xls”"):
        services.import_catalog(system, synthetic(tmp_path, n=10), name="x", format="xls")


def test_a_file_name_that_tells_no_format_is_refused(system, tmp_path):
    path = tmp_path / "sources.dat"
    path.write_text("ra,dec\n1,2\n")
    with pytest.raises(ValidationFailed, match="Cannot tell the format of sources.dat"):
        services.import_catalog(system, path, name="x")


def test_an_unreadable_file_is_refused_with_the_reason(system, tmp_path):
    path = tmp_path / "broken.fits"
    path.write_bytes(b"SIMPLE  = this is not a FITS file" * 100)
    with pytest.raises(importer.UnreadableCatalog, match="broken.fits cannot be read as fits"):
        services.import_catalog(system, path, name="x")


def test_a_missing_file_is_refused(system, tmp_path):
    with pytest.raises(ValidationFailed, match="There is no file"):
        services.import_catalog(system, tmp_path / "nowhere.parquet", name="x")


def test_astronomers_may_not_import_catalogs(acting, users, tmp_path):
    with pytest.raises(PermissionDenied):
        services.import_catalog(acting(users.create("vega")), synthetic(tmp_path, n=10),
                                name="mine")


def test_operators_import_catalogs_and_own_them(acting, users, tmp_path):
    operator = users.create("opal", role="operator")
    catalog = services.import_catalog(acting(operator), synthetic(tmp_path, n=10),
                                      name="theirs").catalog
    assert catalog.owner_id == operator.id


def test_unknown_groups_are_refused_before_anything_is_read(system, database, tmp_path):
    with pytest.raises(ValidationFailed, match="There is no group called “nobody”"):
        services.import_catalog(system, synthetic(tmp_path, n=10), name="x", groups=["nobody"],
                                proprietary_until=dt.date(2100, 1, 1))
    assert nothing_left(database)


def test_the_spatial_index_is_q3c_where_postgresql_has_it_and_healpix_elsewhere(system,
                                                                              database,
                                                                              tmp_path):
    catalog = services.import_catalog(system, synthetic(tmp_path, n=10), name="indexed").catalog
    expected = "q3c" if "q3c" in index_kinds(database) else "healpix"
    assert catalog.index_kind == expected
    assert catalog.healpix_order == (12 if expected == "healpix" else None)


def test_times_categories_and_text_with_nul_arrive_as_text(system, tmp_path):
    ra, dec = sky(3)
    n = len(ra)
    when = pa.array([dt.datetime(2012, 10, 24, 12, 30, 5)] * n, pa.timestamp("ms"))
    kind = pa.array(["STAR", "QSO"] * (n // 2) + ["STAR"] * (n % 2)).dictionary_encode()
    label = pa.array(["a\x00b"] * n)
    pq.write_table(pa.table({"ra": ra, "dec": dec, "obs_time": when, "kind": kind,
                             "label": label}), tmp_path / "t.parquet")
    catalog = services.import_catalog(system, tmp_path / "t.parquet", name="texts").catalog
    columns = {c.name: (c.datatype, c.xtype) for c in catalog.columns}
    assert columns["obs_time"] == ("char", "timestamp")
    assert columns["kind"] == ("char", None)
    row = services.cone(system, "texts", float(ra[0]), float(dec[0]), 1 / 3600).rows[0]
    assert (row["obs_time"], row["kind"], row["label"]) == ("2012-10-24T12:30:05.000", "STAR",
                                                            "ab")


def test_fits_null_integers_and_unsigned_columns_arrive_as_written(system, tmp_path):
    from astropy.io import fits

    ra, dec = sky(5)
    n = len(ra)
    hdu = fits.BinTableHDU.from_columns([
        fits.Column(name="ra", format="D", array=ra),
        fits.Column(name="dec", format="D", array=dec),
        fits.Column(name="plate", format="J", null=-999,
                    array=np.array([7, -999] * (n // 2) + [7] * (n % 2), dtype=np.int32)),
        fits.Column(name="fiber", format="I", bzero=32768,
                    array=np.full(n, 65000, dtype=np.uint16)),
    ])
    hdu.writeto(tmp_path / "nulls.fits")
    catalog = services.import_catalog(system, tmp_path / "nulls.fits", name="nulls").catalog
    assert {c.name: c.datatype for c in catalog.columns}["fiber"] == "int"
    rows = {round(r["ra"], 9): r for r in services.cone(system, "nulls", 0.0, 0.0, 180.0,
                                                         limit=100).rows}
    first, second = rows[round(ra[0], 9)], rows[round(ra[1], 9)]
    assert (first["plate"], second["plate"]) == (7, None)
    assert first["fiber"] == 65000
