"""Fixtures of the Data channel's tests: a small archive world, and the CLI on a home of its own
(from the kernel's CLI tests)."""

import datetime as dt

import pytest

from astrocloud.core.identity import services as identity
from astrocloud.core.security.engine import Subject, load_subject
from astrocloud.data.archive import services as archive
from astrocloud.data.archive.synthetic import write_image
from astrocloud.observation import services as observation
from tests.core.test_cli import cli, home, installed  # noqa: F401 - fixtures

SCOPE = "Xinglong 2.16m"
OLD = dt.datetime(2020, 1, 5, 14, 0, tzinfo=dt.UTC)  # released long ago


def recent() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=20)


@pytest.fixture
def world(system, users, runtime, tmp_path):
    """Two archived files of a programme: one released, one still proprietary."""
    system.runtime = runtime
    observation.create_telescope(system, name=SCOPE, longitude=117.575, latitude=40.396,
                                 elevation=960, instruments=["BFOSC"])
    pi, coi = users.create("piwang"), users.create("coi")
    friend = users.create("friend")
    system.subject = load_subject(system.db, pi)
    group = identity.create_group(system, name="friends", title="Friends")
    identity.add_member(system, group_id=group.id, username="friend")
    system.subject = Subject.system_subject()
    observation.create_programme(system, code="2026A-001", telescope=SCOPE, pi="piwang",
                                 co_investigators=["coi"], groups=["friends"])
    released = write_image(tmp_path / "old.fits", ra=10.68, dec=41.27, date_obs=OLD,
                           object="M 31", propid="2026A-001", seed=1)
    private = write_image(tmp_path / "new.fits", ra=202.47, dec=47.2, date_obs=recent(),
                          object="M 51", propid="2026A-001", seed=2)
    records, jobs = archive.submit_paths(system, telescope=SCOPE,
                                         paths=[str(released), str(private)])
    runtime.jobs.wait(jobs, timeout=60)
    done = archive.ingest_progress(system.database, [r.id for r in records])
    assert [r.status for r in done] == ["archived", "archived"], [r.reason for r in done]
    return {"released": done[0].file_id, "private": done[1].file_id, "pi": pi, "coi": coi,
            "friend": friend, "paths": {"released": released, "private": private}}


