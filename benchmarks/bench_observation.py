"""The Observation channel's two heavy computations, against the targets of issue 6:

* feasibility of 200 targets over a six-month semester (astroplan, one-hour grid, constraints
  on airmass, Moon distance and astronomical night): target under 10 s;
* ranking and allocation of 1,000 graded proposals (three reviews each, z-score
  normalisation, hours per instrument down the ranking) through the service layer on SQLite,
  with its usage row: target under 1 s.

Usage:  python benchmarks/bench_observation.py [--targets 200] [--proposals 1000]
Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np


def bench_feasibility(n: int) -> float:
    from astrocloud.observation import feasibility

    rng = np.random.default_rng(1)
    telescope = SimpleNamespace(longitude=100.03, latitude=26.7, elevation=3200.0)
    targets = [{"ra": float(ra), "dec": float(dec),
                "constraints": {"max_airmass": float(am), "min_moon_distance": 30.0}}
               for ra, dec, am in zip(rng.uniform(0, 360, n), rng.uniform(-30, 85, n),
                                      rng.choice([1.5, 2.0], n), strict=True)]
    start = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
    started = time.perf_counter()
    results = feasibility.compute(telescope, start, start + dt.timedelta(days=183), targets)
    elapsed = time.perf_counter() - started
    assert len(results) == n
    return elapsed


def bench_allocation(n: int) -> float:
    from astrocloud.channels import load_all, policy_files
    from astrocloud.core.config import Settings
    from astrocloud.core.db import Database
    from astrocloud.core.identity.models import User
    from astrocloud.core.migrate import upgrade
    from astrocloud.core.security.engine import Subject
    from astrocloud.core.security.services import seed_policies
    from astrocloud.core.service import Context
    from astrocloud.observation import allocations, calls, services
    from astrocloud.observation.models import Proposal, Review

    load_all()
    home = Path(tempfile.mkdtemp(prefix="bench-obs-"))
    settings = Settings(home=home, database_url=f"sqlite:///{home}/bench.db",
                        secret_key="bench")
    database = Database(settings.effective_database_url)
    upgrade(database)
    with database.sessionmaker() as session:
        seed_policies(session, policy_files())
        session.commit()
    ctx = Context(database=database, settings=settings, subject=Subject.system_subject(),
                  via="cli")
    services.create_telescope(ctx, name="Bench 2m", longitude=100, latitude=27,
                              elevation=3000, instruments=["IMG", "SPEC"])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    call = calls.create_call(ctx, telescope="Bench 2m", name="B1",
                             opens_at=now - dt.timedelta(days=30),
                             closes_at=now - dt.timedelta(days=20),
                             review_deadline=now - dt.timedelta(days=10),
                             semester_start=now, semester_end=now + dt.timedelta(days=180),
                             instrument_hours={"IMG": 1500.0, "SPEC": 1500.0})
    rng = np.random.default_rng(2)
    db = ctx.db
    reviewers = [User(username=f"r{k}", email=f"r{k}@x.org", password_hash="-")
                 for k in range(30)]
    pis = [User(username=f"p{k}", email=f"p{k}@x.org", password_hash="-") for k in range(n)]
    db.add_all(reviewers + pis)
    db.flush()
    for k, pi in enumerate(pis):
        asked = {"IMG": round(float(rng.uniform(2, 20)), 2)}
        if k % 3 == 0:
            asked["SPEC"] = round(float(rng.uniform(5, 30)), 2)
        proposal = Proposal(call_id=call.id, telescope_id=call.telescope_id, pi_id=pi.id,
                            code=f"B1-{k:04d}", title=f"P{k}", status="submitted",
                            targets=[], custom_fields={}, requested_by_instrument=asked,
                            requested_hours=sum(asked.values()))
        db.add(proposal)
        db.flush()
        for r in rng.choice(len(reviewers), 3, replace=False):
            db.add(Review(proposal_id=proposal.id, call_id=call.id,
                          telescope_id=call.telescope_id, reviewer_id=reviewers[r].id,
                          grade=float(rng.integers(1, 6)), kind="science"))
    db.commit()
    started = time.perf_counter()
    summary = allocations.run_allocation(ctx, call.id)
    elapsed = time.perf_counter() - started
    assert summary["oversubscription"]["IMG"] > 1
    ctx.close()
    database.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--proposals", type=int, default=1000)
    args = parser.parse_args()
    feasibility = bench_feasibility(args.targets)
    allocation = bench_allocation(args.proposals)
    print("| computation | size | time | target |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| feasibility (astroplan, 1 h grid, 183 nights) | {args.targets} targets | "
          f"{feasibility:.2f} s | < 10 s |")
    print(f"| ranking + allocation (z-score, SQLite, one operation) | {args.proposals} "
          f"proposals × 3 reviews | {allocation:.2f} s | < 1 s |")


if __name__ == "__main__":
    main()
