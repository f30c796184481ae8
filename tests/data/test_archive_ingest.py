"""The archive's ingest path, end to end on the real job queue and storage: what gets archived
with which ObsCore metadata and release date, duplicates and versions, lifecycle links, and
every kind of bad input quarantined with its reason and its bytes kept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from astrocloud.core.security.engine import load_subject
from astrocloud.core.service import Context
from astrocloud.core.storage.models import Replica, StoredFile
from astrocloud.data.archive import services as archive
from astrocloud.data.archive.models import ArchiveFile, IngestRecord, Provenance
from astrocloud.data.archive.synthetic import write_bad_files, write_image, write_spectrum
from astrocloud.observation import services as observation

SCOPE = "Xinglong 2.16m"
NIGHT = dt.datetime(2026, 3, 14, 15, 30, tzinfo=dt.UTC)


@pytest.fixture
def site(system, users, runtime):
    """A telescope with one instrument, a programme with a PI, a co-I and a granted group."""
    system.runtime = runtime
    observation.create_telescope(system, name=SCOPE, longitude=117.575, latitude=40.396,
                                 elevation=960, instruments=["BFOSC"])
    pi, coi = users.create("piwang"), users.create("coi")
    users.create("stranger")
    from astrocloud.core.identity import services as identity

    friend = users.create("friend")
    system.subject = load_subject(system.db, pi)
    group = identity.create_group(system, name="friends", title="Friends of the PI")
    identity.add_member(system, group_id=group.id, username="friend")
    from astrocloud.core.security.engine import Subject

    system.subject = Subject.system_subject()
    observation.create_programme(system, code="2026A-001", telescope=SCOPE, pi="piwang",
                                 co_investigators=["coi"], groups=["friends"],
                                 proprietary_months=12)
    return {"pi": pi, "coi": coi, "friend": friend}


def ingest(system, runtime, *paths, derived_from=None) -> list[IngestRecord]:
    records, jobs = archive.submit_paths(system, telescope=SCOPE,
                                         paths=[str(p) for p in paths],
                                         derived_from=derived_from)
    ids = [r.id for r in records]
    runtime.jobs.wait(jobs, timeout=60)
    return archive.ingest_progress(system.database, ids)


def image(tmp_path, name="img.fits", **kw) -> Path:
    kw.setdefault("date_obs", NIGHT)
    kw.setdefault("propid", "2026A-001")
    return write_image(tmp_path / name, ra=kw.pop("ra", 202.47), dec=kw.pop("dec", 47.2), **kw)


def as_user(system, user) -> Context:
    ctx = Context(database=system.database, settings=system.settings, runtime=system.runtime,
                  subject=load_subject(system.db, user))
    return ctx


def test_an_image_is_archived_with_its_obscore_record_at_the_nearest_site(
        system, runtime, site, tmp_path):
    system.runtime = runtime
    [record] = ingest(system, runtime, image(tmp_path, exptime=120, filter="V"))
    assert record.status == "archived" and record.reason == ""
    f = system.db.get(ArchiveFile, record.file_id)
    assert f.obs_collection == "xinglong-2-16m" and f.facility_name == SCOPE
    assert f.instrument_name == "BFOSC" and f.instrument_id is not None
    assert f.programme_code == "2026A-001" and f.programme_id is not None
    assert f.dataproduct_type == "image" and f.calib_level == 1
    assert f.s_ra == pytest.approx(202.47, abs=0.01) and f.s_dec == pytest.approx(47.2, abs=0.01)
    assert f.s_region.startswith("POLYGON") and f.s_fov > 0
    assert f.t_exptime == 120 and f.t_max > f.t_min
    assert 4.0e-7 < f.em_min < f.em_max < 7.0e-7  # V band
    assert f.date_obs == NIGHT.replace(tzinfo=f.date_obs.tzinfo)
    # the programme's twelve months, from the observation date
    assert f.obs_release_date.date() == dt.date(2027, 3, 14)
    assert f.uri == "ac://archive/xinglong-2-16m/20260314/img.fits"
    stored = system.db.get(StoredFile, f.stored_file_id)
    assert stored.checksum == f.checksum and stored.size == f.size
    # written first at the site nearest Xinglong (Beijing)
    first = system.db.scalar(sa.select(Replica).where(Replica.file_id == stored.id,
                                                      Replica.status == "ok"))
    assert first.site.name == "beijing"


def test_the_same_bytes_twice_are_a_duplicate_not_a_second_copy(system, runtime, site,
                                                                  tmp_path):
    path = image(tmp_path)
    [first] = ingest(system, runtime, path)
    [second] = ingest(system, runtime, path)
    assert second.status == "duplicate" and second.file_id == first.file_id
    assert system.db.scalar(sa.select(sa.func.count()).select_from(ArchiveFile)) == 1


def test_the_same_name_with_new_content_is_a_new_version(system, runtime, site, tmp_path):
    [first] = ingest(system, runtime, image(tmp_path, seed=1))
    (tmp_path / "again").mkdir()
    [second] = ingest(system, runtime, image(tmp_path / "again", seed=2))
    assert second.status == "archived" and second.file_id != first.file_id
    old, new = system.db.get(ArchiveFile, first.file_id), system.db.get(ArchiveFile,
                                                                        second.file_id)
    assert (old.version, old.is_latest) == (1, False)
    assert (new.version, new.is_latest) == (2, True)
    assert new.uri.endswith("/v2/img.fits")


def test_an_unknown_programme_or_instrument_is_archived_unlinked_with_a_warning(
        system, runtime, site, tmp_path):
    [record] = ingest(system, runtime, image(tmp_path, propid="2031Z-999",
                                             instrument="NEWCAM"))
    assert record.status == "archived"
    f = system.db.get(ArchiveFile, record.file_id)
    assert f.programme_id is None and f.programme_code == "2031Z-999"
    assert f.instrument_id is None and f.instrument_name == "NEWCAM"
    assert any("2031Z-999" in w for w in f.warnings)
    assert any("NEWCAM" in w for w in f.warnings)
    # the telescope's default period: 18 months
    assert f.obs_release_date.date() == dt.date(2027, 9, 14)


def test_a_programme_of_another_telescope_is_quarantined(system, runtime, site, tmp_path):
    observation.create_telescope(system, name="Lijiang 2.4m", longitude=100.03,
                                 latitude=26.69, elevation=3200)
    observation.create_programme(system, code="LJ-7", telescope="Lijiang 2.4m", pi="piwang")
    [record] = ingest(system, runtime, image(tmp_path, propid="LJ-7"))
    assert record.status == "quarantined" and record.code == "foreign-programme"
    assert "LJ-7" in record.reason


@pytest.mark.parametrize("kind", ["truncated", "not_fits", "no_date_obs", "corrupt_header",
                                  "empty"])
def test_bad_files_are_quarantined_with_a_reason_and_kept(system, runtime, site, tmp_path,
                                                          kind):
    bad = write_bad_files(tmp_path / "bad")[kind]
    original = bad.read_bytes()
    [record] = ingest(system, runtime, bad)
    assert record.status == "quarantined"
    assert record.reason and record.code
    assert Path(record.held_path).read_bytes() == original  # nothing lost
    assert bad.read_bytes() == original  # the operator's own file is left alone
    assert system.db.scalar(sa.select(sa.func.count()).select_from(ArchiveFile)) == 0


@pytest.mark.parametrize("kind", ["no_wcs", "nonsense_wcs"])
def test_a_missing_or_nonsensical_wcs_archives_with_a_warning(system, runtime, site, tmp_path,
                                                              kind):
    bad = write_bad_files(tmp_path / "bad")[kind]
    [record] = ingest(system, runtime, bad)
    assert record.status == "archived", record.reason
    f = system.db.get(ArchiveFile, record.file_id)
    assert f.s_region is None and f.warnings


def test_a_file_over_the_size_limit_is_quarantined(system, runtime, site, tmp_path):
    path = image(tmp_path)
    limit = runtime.settings.archive_max_file_bytes
    runtime.settings.archive_max_file_bytes = path.stat().st_size - 1
    try:
        [record] = ingest(system, runtime, path)
    finally:
        runtime.settings.archive_max_file_bytes = limit
    assert record.status == "quarantined" and record.code == "too-large"


def test_compressed_files_are_archived(system, runtime, site, tmp_path):
    records = ingest(system, runtime, image(tmp_path, "a.fits.gz", compress="gzip", seed=3),
                     image(tmp_path, "b.fits.fz", compress="rice", seed=4))
    assert [r.status for r in records] == ["archived", "archived"]


def test_a_spectrum_is_archived_as_one(system, runtime, site, tmp_path):
    path = write_spectrum(tmp_path / "spec.fits", ra=10.0, dec=41.2, date_obs=NIGHT,
                          telescope=SCOPE, instrument="BFOSC", propid="2026A-001")
    [record] = ingest(system, runtime, path)
    f = system.db.get(ArchiveFile, record.file_id)
    assert f.dataproduct_type == "spectrum"
    assert 3.6e-7 < f.em_min < f.em_max < 9.1e-7


def test_a_derived_product_links_to_its_raw_file_both_ways(system, runtime, site, tmp_path):
    [raw] = ingest(system, runtime, image(tmp_path, seed=5))
    (tmp_path / "cal").mkdir()
    [product] = ingest(system, runtime, image(tmp_path / "cal", "cal.fits", seed=6),
                       derived_from=[raw.file_id])
    link = system.db.scalar(sa.select(Provenance))
    assert (link.product_id, link.source_id) == (product.file_id, raw.file_id)
    f = system.db.get(ArchiveFile, product.file_id)
    assert f.calib_level == 2
    assert [s.id for s in f.sources] == [raw.file_id]
    assert [p.id for p in system.db.get(ArchiveFile, raw.file_id).products] == [f.id]


def test_quality_control_grades_the_file_and_makes_previews(system, runtime, site, tmp_path):
    [record] = ingest(system, runtime, image(tmp_path, seed=7))
    f = system.db.get(ArchiveFile, record.file_id)
    import time

    deadline = time.monotonic() + 60
    while f.qc_grade is None and time.monotonic() < deadline:
        time.sleep(0.1)
        system.db.commit()  # a new snapshot
        system.db.expire_all()
        f = system.db.get(ArchiveFile, record.file_id)
    assert f.qc_grade in ("pass", "warn", "fail")
    assert f.qc["values"]["n_sources"] > 0
    ctx = as_user(system, site["pi"])
    ctx.runtime = runtime
    png = b"".join(archive.open_preview(ctx, f.id, "thumbnail"))
    assert png.startswith(b"\x89PNG")
    ctx.close()


def test_files_dropped_in_the_telescopes_folder_are_archived(system, runtime, site, tmp_path):
    import shutil
    import time

    folder = archive.drop_dir(runtime.settings, SCOPE)
    folder.mkdir(parents=True, exist_ok=True)
    source = image(tmp_path, "dropped.fits", seed=8)
    partial = folder / "dropped.fits.part"
    shutil.copyfile(source, partial)
    partial.rename(folder / "dropped.fits")  # the telescope's copy is complete
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        system.db.commit()  # a new snapshot
        system.db.expire_all()
        record = system.db.scalar(sa.select(IngestRecord).where(
            IngestRecord.filename == "dropped.fits", IngestRecord.status == "archived"))
        if record is not None:
            break
        time.sleep(0.2)
    assert record is not None and record.source == "drop"
    assert not (folder / "dropped.fits").exists()


def test_within_one_batch_twins_are_duplicates_and_namesakes_are_versions(system, runtime,
                                                                          site, tmp_path):
    first = image(tmp_path, seed=20)
    (tmp_path / "b").mkdir()
    namesake = image(tmp_path / "b", seed=21)
    records = ingest(system, runtime, first, first, namesake)
    assert [r.status for r in records] == ["archived", "duplicate", "archived"]
    assert records[1].file_id == records[0].file_id
    versions = [system.db.get(ArchiveFile, r.file_id) for r in (records[0], records[2])]
    assert [(f.version, f.is_latest) for f in versions] == [(1, False), (2, True)]


def test_one_bad_file_does_not_hold_up_its_batch(system, runtime, site, tmp_path):
    bad = write_bad_files(tmp_path / "bad")["truncated"]
    records = ingest(system, runtime, image(tmp_path, seed=22), bad,
                     image(tmp_path, "other.fits", seed=23))
    assert [r.status for r in records] == ["archived", "quarantined", "archived"]
