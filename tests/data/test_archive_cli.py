"""`astrocloud telescopes/programmes/archive …` as an operator runs them: real subprocesses on a
home of their own (the CLI works the embedded queue itself while it waits)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from astrocloud.data.archive.synthetic import write_bad_files, write_image

NIGHT = dt.datetime(2025, 11, 2, 16, 0, tzinfo=dt.UTC)


def test_an_operator_creates_a_telescope_and_a_programme(installed):
    installed.ok("users", "create", "wang", "--email", "wang@example.org", "--password",
                 "a-long-password")
    done = installed.ok("telescopes", "create", "Xinglong 2.16m", "--lon", "117.575", "--lat",
                        "40.396", "--elevation", "960", "--instrument", "BFOSC")
    out = done.stdout + done.stderr
    assert "Created telescope" in out
    installed.ok("programmes", "create", "2025B-042", "--telescope", "Xinglong 2.16m", "--pi",
                 "wang", "--proprietary-months", "12")
    listing = installed.ok("telescopes", "list").stdout
    assert "Xinglong 2.16m" in listing and "BFOSC" in listing
    assert "2025B-042" in installed.ok("programmes", "list").stdout


def test_bad_telescope_input_is_refused_clearly(installed):
    result = installed.run("telescopes", "create", "X", "--lon", "500", "--lat", "0",
                           "--elevation", "1")
    assert result.returncode != 0 and "Longitude" in result.stderr
    assert "Traceback" not in result.stderr
    installed.ok("telescopes", "create", "X", "--lon", "1", "--lat", "0", "--elevation", "1")
    again = installed.run("telescopes", "create", "X", "--lon", "1", "--lat", "0",
                          "--elevation", "1")
    assert again.returncode != 0 and "already" in again.stderr


def test_archive_ingest_reports_every_file_and_exits_zero(installed, tmp_path):
    installed.ok("telescopes", "create", "Xinglong 2.16m", "--lon", "117.575", "--lat",
                 "40.396", "--elevation", "960", "--instrument", "BFOSC")
    folder = tmp_path / "night"
    folder.mkdir()
    for n in range(3):
        write_image(folder / f"img{n}.fits", ra=10 + n, dec=41, date_obs=NIGHT, seed=n)
    bad = write_bad_files(tmp_path / "bad")
    result = installed.run("archive", "ingest", str(folder), str(bad["truncated"]),
                           "--telescope", "Xinglong 2.16m", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 archived" in result.stdout and "1 quarantined" in result.stdout
    assert "truncated" in result.stdout.lower()
    with installed.db() as db:
        count = db.scalar(sa.text("SELECT count(*) FROM archive_files"))
    assert count == 3
    again = installed.run("archive", "ingest", str(folder / "img0.fits"), "--telescope",
                          "Xinglong 2.16m", timeout=300)
    assert again.returncode == 0 and "1 duplicates" in again.stdout
    quarantine = installed.ok("archive", "quarantine").stdout
    assert "1 quarantined" in quarantine


def test_archive_ingest_refuses_what_it_cannot_start(installed, tmp_path):
    result = installed.run("archive", "ingest", str(tmp_path / "nothing.fits"),
                           "--telescope", "Xinglong 2.16m")
    assert result.returncode != 0 and "no such file" in result.stderr
    write_image(tmp_path / "a.fits", ra=1, dec=1, date_obs=NIGHT)
    unknown = installed.run("archive", "ingest", str(tmp_path / "a.fits"), "--telescope",
                            "Nowhere")
    assert unknown.returncode != 0 and "Nowhere" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_the_demo_fills_the_archive_with_graded_previewed_data(installed):
    installed.ok("demo")
    with installed.db() as db:
        files = db.scalar(sa.text("SELECT count(*) FROM archive_files"))
        graded = db.scalar(sa.text("SELECT count(*) FROM archive_files WHERE qc_grade IS NOT "
                                   "NULL AND thumbnail_uri IS NOT NULL"))
        stars = db.scalar(sa.text("SELECT n_rows FROM data_catalogs WHERE name = 'demo_stars'"))
    # 24 archive demo files + 2 observed for the demo observing cycle's programme
    assert files == 26 and graded == files and stars == 100_000
    token = installed.ok("tokens", "create", "demo").stdout.strip().splitlines()[-1]
    import httpx

    with installed.serve() as url:
        public = httpx.get(f"{url}/api/v1/data/observations").json()["total"]
        mine = httpx.get(f"{url}/api/v1/data/observations",
                         headers={"Authorization": f"Bearer {token}"}).json()["total"]
    assert 0 < public < mine == files  # demo is the PI of the proprietary files
