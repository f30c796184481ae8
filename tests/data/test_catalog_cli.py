"""`astrocloud catalog import | list | delete`, run as real subprocesses on the test database
while the test server runs in this process: an imported catalog is served at once (no restart,
nothing cached across processes), and every mistake is one clear line and a non-zero exit."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sqlalchemy as sa

from astrocloud.core.identity import services as identity
from astrocloud.data.catalogs import services
from astrocloud.data.catalogs.models import Catalog
from tests.core.test_cli import Cli, one_line
from tests.data import test_catalogs as shared
from tests.data.test_catalogs import columns_for, sky, synthetic, write_parquet

# the catalog fixtures (tests/data has no conftest of its own)
no_catalog_tables = shared.no_catalog_tables


@pytest.fixture
def cli(tmp_path, settings) -> Cli:
    """The `astrocloud` command on the test database (a home of its own for the rest)."""
    home = tmp_path / "home"
    home.mkdir()
    return Cli(home, settings.effective_database_url)


def test_import_shows_its_progress_and_a_summary_and_the_catalog_is_served_at_once(
        cli, client, tmp_path):
    assert client.get("/api/v1/data/catalogs").json()["total"] == 0  # the server is up
    path = synthetic(tmp_path, "parquet", n=2000)
    result = cli.ok("catalog", "import", str(path), "--name", "cli_dr1")
    summary = one_line(result.stdout)
    assert re.search(r"Imported 2,600 rows into catalog cli_dr1 \(table cat_cli_dr1, 7 "
                     r"columns, position ra/dec, (healpix|q3c) index, public\) in [\d.]+ s, "
                     r"[\d,]+ rows/s\.", summary), summary
    progress = one_line(result.stderr)
    assert "Importing sources.parquet" in progress and "2600/2600 rows" in progress, progress
    ra, dec = sky(2000)
    hit = client.get("/api/v1/data/catalogs/cli_dr1/cone",
                     params={"ra": float(ra[5]), "dec": float(dec[5]), "radius": 1e-4}).json()
    assert [r["source_id"] for r in hit["rows"]] == [6]


def test_import_takes_the_position_columns_title_date_owner_and_groups(cli, system, users,
                                                                       tmp_path):
    users.create("vega")
    identity.create_group(system, name="lamost-team", title="LAMOST")
    ra, dec = sky(100)
    write_parquet(tmp_path / "odd.parquet", {"id": np.arange(len(ra)), "lon": ra, "lat": dec},
                  meta=False)
    result = cli.ok("catalog", "import", str(tmp_path / "odd.parquet"), "--name", "odd",
                    "--ra", "lon", "--dec", "lat", "--title", "Odd names",
                    "--proprietary-until", "2099-12-31", "--owner", "vega",
                    "--group", "lamost-team")
    assert "private until 2099-12-31" in one_line(result.stdout)
    catalog = services.get_catalog(system, "odd")
    assert (catalog.ra_column, catalog.dec_column, catalog.title) == ("lon", "lat", "Odd names")
    assert catalog.proprietary_until.isoformat() == "2099-12-31T00:00:00+00:00"
    assert catalog.owner.username == "vega"
    assert [g.name for g in catalog.groups] == ["lamost-team"]


def test_import_can_skip_rows_without_a_valid_position_and_says_how_many(cli, tmp_path):
    ra, dec = sky(100)
    dec[:4] = 99.0
    write_parquet(tmp_path / "some.parquet", columns_for(ra, dec))
    result = cli.ok("catalog", "import", str(tmp_path / "some.parquet"), "--name", "some",
                    "--skip-invalid")
    assert "Imported 126 rows" in one_line(result.stdout)
    assert "4 rows without a valid position skipped" in one_line(result.stdout)


def test_catalog_list_shows_each_catalog_with_its_rows(cli, system, tmp_path):
    services.import_catalog(system, synthetic(tmp_path, n=1000), name="listed",
                            title="A listed catalog")
    result = cli.ok("catalog", "list")
    line = next(line for line in result.stdout.splitlines() if "listed" in line)
    assert re.search(r"listed\s.*1,300\s.*7\s.*ra/dec\s.*(healpix|q3c)\s.*yes\s.*A listed "
                     r"catalog", line), line


def test_catalog_delete_removes_the_catalog(cli, client, system, tmp_path):
    services.import_catalog(system, synthetic(tmp_path, n=100), name="doomed")
    result = cli.ok("catalog", "delete", "doomed")
    assert "Deleted catalog doomed (130 rows)." in one_line(result.stderr)
    assert client.get("/api/v1/data/catalogs/doomed").status_code == 404


def _bad_position_file(tmp_path):
    ra, dec = sky(100)
    dec[41] = 95.0
    return write_parquet(tmp_path / "bad.parquet", columns_for(ra, dec))


def _no_position_file(tmp_path):
    return write_parquet(tmp_path / "xy.parquet", {"x": np.arange(5.0), "y": np.arange(5.0)},
                         meta=False)


def _garbage_fits(tmp_path):
    path = tmp_path / "garbage.fits"
    path.write_bytes(b"not a FITS file at all " * 200)
    return path


ERRORS = {
    "unknown format": (lambda p: synthetic(p, n=10), ["--format", "xls"],
                       "Unknown format “xls”; choose one of fits, votable, csv, parquet."),
    "no position": (_no_position_file, [], "No column holds the right ascension"),
    "bad name": (lambda p: synthetic(p, n=10), ["--name", "Bad-Name"], "A catalog name is 1 to "
                 "48 lower-case letters"),
    "unreadable": (_garbage_fits, [], "garbage.fits cannot be read as fits"),
    "missing file": (lambda p: p / "missing.fits", [], "There is no file"),
    "bad date": (lambda p: synthetic(p, n=10), ["--proprietary-until", "next year"],
                 "--proprietary-until takes a date as YYYY-MM-DD"),
    "invalid position": (_bad_position_file, [], "Row 42 has no valid position"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_a_failed_import_says_why_in_one_message_and_exits_non_zero(cli, tmp_path, case):
    make, options, message = ERRORS[case]
    path = make(tmp_path)
    args = ["catalog", "import", str(path), "--name", "failing", *options]
    result = cli.run(*args)
    assert result.returncode != 0
    assert message in one_line(result.stderr), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert no_catalog_rows(cli)


def no_catalog_rows(cli: Cli) -> bool:
    with cli.db() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Catalog)) == 0


def test_importing_a_name_in_use_fails_and_keeps_the_first_catalog(cli, system, tmp_path):
    services.import_catalog(system, synthetic(tmp_path, n=100), name="taken")
    result = cli.run("catalog", "import", str(synthetic(tmp_path, n=10, name="b")), "--name",
                     "taken")
    assert result.returncode != 0
    assert "There is already a catalog called “taken”." in one_line(result.stderr)
    assert "Traceback" not in result.stderr
    assert services.get_catalog(system, "taken").n_rows == 130


def test_deleting_an_unknown_catalog_fails_with_a_message(cli):
    result = cli.run("catalog", "delete", "nothing")
    assert result.returncode != 0
    assert "There is no catalog “nothing”" in one_line(result.stderr)
    assert "Traceback" not in result.stderr
