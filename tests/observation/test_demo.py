"""`astrocloud demo` sets up a whole observing cycle on the Lijiang 2.4m: a call open relative
to today, a published call with a submitted and reviewed proposal, an allocated programme with
logged observations whose files are in the archive."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from astrocloud.data.archive.models import ArchiveFile
from astrocloud.observation.models import (
    Allocation,
    ObservationCall,
    ObservationLog,
    Proposal,
    Review,
)


def test_the_demo_has_an_open_call_and_a_whole_cycle(installed):
    result = installed.ok("demo")
    assert "demo call" in result.stdout + result.stderr
    now = dt.datetime.now(dt.UTC)
    with installed.db() as session:
        open_calls = [c for c in session.scalars(sa.select(ObservationCall))
                      if c.opens_at <= now < c.closes_at]
        assert len(open_calls) == 1
        statuses = sorted(session.scalars(sa.select(Proposal.status)))
        assert statuses == ["accepted", "accepted", "draft", "submitted"]
        assert session.scalar(sa.select(sa.func.count()).where(
            Review.grade.is_not(None))) == 4
        allocated = session.scalar(sa.select(Allocation).where(Allocation.rank == 1))
        assert allocated.published and allocated.programme_id is not None
        logs = list(session.scalars(sa.select(ObservationLog)))
        assert len(logs) == 2
        files = list(session.scalars(sa.select(ArchiveFile).where(
            ArchiveFile.programme_id == allocated.programme_id)))
        assert len(files) == 2
