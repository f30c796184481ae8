"""Several writers at once: service calls in many threads, the CLI in another process and HTTP
requests through the live server all write to the same database at the same time, and none
of them fails (SQLite in WAL mode with a busy timeout and IMMEDIATE write transactions;
PostgreSQL with its row locks)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field

import sqlalchemy as sa

from astrocloud.core.db import SQLITE_BUSY_TIMEOUT_MS
from astrocloud.core.identity import services as identity
from astrocloud.core.identity.models import Group, GroupMember, User
from astrocloud.core.security.engine import Subject
from astrocloud.core.service import Context
from astrocloud.core.usage.models import UsageEvent

SERVICE_THREADS = 8
HTTP_THREADS = 3
CLI_USERS = 3
MAX_ROUNDS = 400  # per thread: a safety stop should the CLI hang


def count(database, model, *where) -> int:
    with database.session(write=False) as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


@dataclass
class Tally:
    """What the concurrent writers did, and what went wrong."""

    users: int = 0
    groups: int = 0
    http_groups: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def fail(self, who: str, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(f"{who}: {type(exc).__name__}: {exc}")


def cli_env(settings, home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASTROCLOUD_")}
    env.update(ASTROCLOUD_HOME=str(home), ASTROCLOUD_DATABASE_URL=settings.effective_database_url,
               ASTROCLOUD_ARGON2_TIME_COST="1", ASTROCLOUD_ARGON2_MEMORY_COST_KIB="1024")
    return env


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(database):
    with database.engine.connect() as conn:
        if database.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            timeout_ms = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
            assert timeout_ms == SQLITE_BUSY_TIMEOUT_MS >= 5_000
        else:  # PostgreSQL: a writer waits for another's row lock instead of failing at once
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "0"


def test_threads_the_cli_and_http_requests_write_at_the_same_time_without_failing(
        database, settings, users, tmp_path):
    http_clients = [users.api("astronomer", username=f"web{n}") for n in range(HTTP_THREADS)]
    users_before = count(database, User)
    tally = Tally()
    start = threading.Barrier(SERVICE_THREADS + HTTP_THREADS + 1)
    cli_done = threading.Event()

    def service_writer(n: int) -> None:
        ctx = Context(database=database, settings=settings, subject=Subject.system_subject(),
                      via="worker")
        try:
            start.wait()
            rounds = 0
            while rounds < 3 or not cli_done.is_set() and rounds < MAX_ROUNDS:
                user = identity.create_user(ctx, username=f"t{n}u{rounds}",
                                            email=f"t{n}u{rounds}@example.org", password=None)
                group = identity.create_group(ctx, name=f"t{n}g{rounds}", title="Threaded")
                identity.add_member(ctx, group_id=group.id, username=user.username)
                tally.add(users=1, groups=1)
                rounds += 1
        except BaseException as exc:
            tally.fail(f"thread {n}", exc)
        finally:
            ctx.close()

    def http_writer(n: int) -> None:
        client = http_clients[n]
        try:
            start.wait()
            rounds = 0
            while rounds < 3 or not cli_done.is_set() and rounds < MAX_ROUNDS:
                response = client.post("/api/v1/groups",
                                       json={"name": f"h{n}g{rounds}", "title": "Over HTTP"})
                if response.status_code != 201:
                    raise AssertionError(f"{response.status_code} {response.text}")
                tally.add(http_groups=1)
                rounds += 1
        except BaseException as exc:
            tally.fail(f"http {n}", exc)

    threads = [threading.Thread(target=service_writer, args=(n,)) for n in range(SERVICE_THREADS)]
    threads += [threading.Thread(target=http_writer, args=(n,)) for n in range(HTTP_THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    env = cli_env(settings, tmp_path)
    try:
        cli = [subprocess.Popen(
            [sys.executable, "-m", "astrocloud", "users", "create", f"cli{n}",
             "--email", f"cli{n}@example.org", "--password", "a-long-cli-password"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for n in range(CLI_USERS)]
        cli_results = [(p.wait(timeout=120), *p.communicate()) for p in cli]
    finally:
        cli_done.set()
        for thread in threads:
            thread.join(timeout=120)

    assert tally.errors == []
    assert [(rc, err) for rc, _out, err in cli_results if rc != 0] == []
    cli_users = count(database, User, User.username.like("cli%"))
    assert cli_users == CLI_USERS
    assert count(database, User) == users_before + tally.users + CLI_USERS
    assert count(database, Group) == tally.groups + tally.http_groups
    # every service group has its member; every HTTP group has its creator as manager
    assert count(database, GroupMember) == tally.groups + tally.http_groups
    assert count(database, UsageEvent, UsageEvent.outcome != "ok") == 0
    assert count(database, UsageEvent, UsageEvent.operation == "core.group.create") == (
        tally.groups + tally.http_groups)
