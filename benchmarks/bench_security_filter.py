"""How much does the security framework cost on a large table?

Fills the groups table with N rows (and memberships), then times, in the same run:

* baseline   — the same WHERE clause written by hand in SQLAlchemy: first page by name + count
               (and, for reference, the listing with no filter at all);
* filtered   — the same listing through the service layer (`identity.list_groups`), whose filter
               rule `kind == 'institute' or subject.id in member_ids` is compiled into WHERE,
               plus the usage-log row the operation writes;
* authorize  — one prerequisite check (`core.group.update` on one group) through the engine;
* compile    — parsing + type-checking + SQL compilation of a rule, uncached.

Usage:  python benchmarks/bench_security_filter.py [--rows 1000000] [--database-url URL]
Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from astrocloud.channels import load_all, policy_files
from astrocloud.core.config import Settings
from astrocloud.core.db import Database, utcnow
from astrocloud.core.identity import services as identity
from astrocloud.core.identity.models import Group, GroupMember, User
from astrocloud.core.migrate import upgrade
from astrocloud.core.security import engine
from astrocloud.core.security.models import Permission, Role
from astrocloud.core.security.operations import get_operation
from astrocloud.core.security.rules import parse_rule
from astrocloud.core.security.services import seed_policies
from astrocloud.core.service import Context

RULE = "kind == 'institute' or subject.id in member_ids"


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def fill(db: Database, rows: int) -> int:
    with db.session() as s:
        s.add(User(id=1, username="bench", email="bench@example.org"))
    now = utcnow()
    batch = 50_000
    kinds = ("collaboration", "institute", "project", "other")
    with db.engine.begin() as conn:
        for start in range(0, rows, batch):
            conn.execute(sa.insert(Group), [
                {"id": i + 1, "name": f"g{i:08d}", "title": f"Group {i}", "description": "",
                 "kind": kinds[i % 4] if i % 20 == 1 else "collaboration", "created_at": now}
                for i in range(start, min(rows, start + batch))])
        conn.execute(sa.insert(GroupMember), [
            {"group_id": i + 1, "user_id": 1, "is_manager": False, "added_at": now}
            for i in range(0, rows, 97)])
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
    return rows


def fresh_postgres(url: str) -> None:
    """Drop and create the benchmark's PostgreSQL database."""
    parsed = sa.engine.make_url(url)
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    load_all()
    if args.database_url and args.database_url.startswith("postgresql"):
        fresh_postgres(args.database_url)
    workdir = tempfile.TemporaryDirectory(prefix="ac-bench-")
    home = Path(workdir.name)
    settings = Settings(home=home, database_url=args.database_url)
    db = Database(settings.effective_database_url)
    upgrade(db)
    with db.session() as s:
        seed_policies(s, policy_files())
        perm = s.scalar(sa.select(Permission).join(Role).where(
            Role.name == "public", Permission.operation == "core.group.list"))
        perm.rule = RULE
    t = time.perf_counter()
    fill(db, args.rows)
    fill_s = time.perf_counter() - t

    with db.session(write=False) as s:
        subject = engine.load_subject(s, s.get(User, 1))
    ctx = Context(database=db, settings=settings, subject=subject, via="cli")

    def unfiltered():
        with db.session(write=False) as s:
            stmt = sa.select(Group).order_by(Group.name)
            s.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
            s.scalars(stmt.limit(50)).all()

    def baseline():
        # The same WHERE clause written by hand: what a listing without the framework costs.
        with db.session(write=False) as s:
            member = sa.exists(sa.select(GroupMember.user_id).where(
                GroupMember.group_id == Group.id, GroupMember.user_id == 1))
            stmt = sa.select(Group).where(sa.or_(Group.kind == "institute", member)) \
                .order_by(Group.name)
            s.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
            s.scalars(stmt.limit(50)).all()

    def filtered():
        page = identity.list_groups(ctx, page=1, per_page=50)
        assert len(page.items) == 50

    op = get_operation("core.group.update")
    with db.session(write=False) as s:
        group = s.get(Group, 1)

        def authorize():
            engine.evaluate(s, subject, op, group)

        def compile_rule():
            parse_rule(RULE + f" or id == {time.perf_counter_ns() % 1000}", "group",
                       for_sql=True).to_sql(subject)

        results = {
            "baseline: the same filter hand-written in SQL (first page + count)":
                timed(baseline, args.repeat),
            "reference: no filter at all (first page + count)": timed(unfiltered, args.repeat),
            "filtered listing via service (first page + count + usage row)":
                timed(filtered, args.repeat),
            "authorize one action (prerequisite)": timed(authorize, args.repeat * 20),
            "parse + check + compile one rule": timed(compile_rule, args.repeat * 20),
        }
    total = identity.list_groups(ctx, page=1, per_page=1).total
    ctx.close()
    base = statistics.median(next(iter(results.values())))
    print(f"\n{db.dialect}, {args.rows:,} groups (filled in {fill_s:.1f} s); "
          f"the subject may see {total:,} of them\n")
    print("| measurement | median ms | p90 ms | ratio to baseline |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in results.items():
        values = sorted(values)
        med = statistics.median(values)
        p90 = values[int(len(values) * 0.9) - 1]
        print(f"| {name} | {med:.3f} | {p90:.3f} | {med / base:.2f} |")
    db.dispose()
    workdir.cleanup()


if __name__ == "__main__":
    main()
