"""The `astrocloud` command, run as real subprocesses against a home of its own: help, schema
migration and seeding, `serve`, accounts and tokens, the demo data.

Each test gets an empty `ASTROCLOUD_HOME` (on SQLite the database is the default file inside
it) or, when ASTROCLOUD_TEST_DATABASE_URL is set, a freshly created PostgreSQL database of its
own, so the commands always start from a machine where nothing was installed yet."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import typer

from astrocloud.cli import app as cli_app
from astrocloud.core.db import Database
from astrocloud.core.identity.models import Group, User
from astrocloud.core.security.models import Permission, Role, RoleAssignment
from tests.support import server

DEFAULT_ROLES = {"admin", "operator", "telescope_manager", "qc_reviewer", "reviewer",
                 "tac_member", "observer", "astronomer"}
PASSWORD = "a-long-cli-password"


def command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command of the CLI, read from the command tree itself."""

    def walk(command, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):  # a group
            yield from walk(sub, (*path, name))

    return list(walk(typer.main.get_command(cli_app), ()))


def one_line(text: str) -> str:
    """Rich wraps long messages; compare them with the line breaks folded."""
    return " ".join(text.split())


def drop_postgres_database(url: str) -> None:
    url_ = sa.engine.make_url(url)
    admin = sa.create_engine(url_.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url_.database}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class Cli:
    """The `astrocloud` command with its own home (and database)."""

    home: Path
    database_url: str | None  # None: the default SQLite file in the home

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASTROCLOUD_")}
        env.update(
            ASTROCLOUD_HOME=str(self.home),
            # cheap password hashing, as in the other tests' settings
            ASTROCLOUD_ARGON2_TIME_COST="1",
            ASTROCLOUD_ARGON2_MEMORY_COST_KIB="1024",
            COLUMNS="200",
        )
        if self.database_url:
            env["ASTROCLOUD_DATABASE_URL"] = self.database_url
        return env

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'astrocloud.db'}"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "astrocloud", *args], env=self.env,
                              cwd=self.home, capture_output=True, text=True, timeout=timeout)

    def ok(self, *args: str) -> subprocess.CompletedProcess:
        result = self.run(*args)
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    @contextmanager
    def db(self) -> Iterator[sa.orm.Session]:
        database = Database(self.effective_database_url)
        try:
            with database.session(write=False) as session:
                yield session
        finally:
            database.dispose()

    @contextmanager
    def serve(self) -> Iterator[str]:
        """`astrocloud serve` on a free port; yields its base URL once it answers."""
        port = server.free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "astrocloud", "serve", "--port", str(port)],
            env=self.env, cwd=self.home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"serve exited early:\n{process.stdout.read()}")
                try:
                    if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("serve did not answer within 30 s")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def cli(home, worker_id_safe) -> Iterator[Cli]:
    """A CLI on a home where nothing is installed: an empty database."""
    if not os.environ.get("ASTROCLOUD_TEST_DATABASE_URL"):
        yield Cli(home, None)
        return
    url = server.test_database_url(home, f"{worker_id_safe}_cli")  # dropped and created afresh
    try:
        yield Cli(home, url)
    finally:
        drop_postgres_database(url)


@pytest.fixture
def installed(cli) -> Cli:
    cli.ok("db", "upgrade")
    return cli


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the sign-in page has no CSRF field"
    return match.group(1)


# ---- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "astrocloud")
def test_help_of_every_command_exits_0_and_shows_its_usage(home, path):
    result = Cli(home, None).run(*path, "--help")
    assert result.returncode == 0, result.stderr
    usage = one_line(result.stdout)
    assert "Usage:" in usage
    assert " ".join(("astrocloud", *path)) in usage
    assert "Traceback" not in result.stderr


def test_the_cli_knows_the_commands_the_guide_names():
    paths = {" ".join(p) for p in command_paths()}
    assert {"serve", "db upgrade", "demo", "users create", "tokens create"} <= paths


# ---- db upgrade -------------------------------------------------------------------------------


def test_db_upgrade_on_an_empty_home_creates_the_schema_and_seeds_the_default_roles(cli):
    result = cli.run("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert "Database ready" in one_line(result.stderr)
    with cli.db() as session:
        roles = set(session.scalars(sa.select(Role.name)))
        assert roles >= DEFAULT_ROLES
        assert session.scalar(sa.select(sa.func.count()).select_from(Permission)) > 0
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_db_upgrade_twice_changes_nothing_the_second_time(installed):
    with installed.db() as session:
        before = (sorted(session.scalars(sa.select(Role.name))),
                  session.scalar(sa.select(sa.func.count()).select_from(Permission)))
    again = installed.run("db", "upgrade")
    assert again.returncode == 0, again.stderr
    message = one_line(again.stderr)
    assert re.search(r"\b0 roles\b", message) and re.search(r"\b0 permissions\b", message), message
    with installed.db() as session:
        after = (sorted(session.scalars(sa.select(Role.name))),
                 session.scalar(sa.select(sa.func.count()).select_from(Permission)))
    assert after == before


# ---- serve ------------------------------------------------------------------------------------


def test_serve_refuses_to_start_without_a_schema_and_says_what_to_do(cli):
    result = cli.run("serve", "--port", str(server.free_port()), timeout=60)
    assert result.returncode != 0
    message = one_line(result.stderr)
    assert "schema is missing or out of date" in message
    assert "astrocloud db upgrade" in message
    assert "Traceback" not in result.stderr


def test_serve_answers_the_health_check_once_the_schema_exists(installed):
    with installed.serve() as url:
        response = httpx.get(f"{url}/api/health")
    assert response.json() == {"status": "ok"}


# ---- users create -----------------------------------------------------------------------------


def test_users_create_makes_an_active_verified_account_that_can_sign_in(installed):
    installed.ok("users", "create", "vega", "--email", "vega@example.org",
                 "--password", PASSWORD, "--role", "operator")
    with installed.serve() as url, httpx.Client(base_url=url) as browser:
        token = csrf_from(browser.get("/login").text)
        signed_in = browser.post("/login", data={"username": "vega", "password": PASSWORD,
                                                 "next": "/dashboard", "csrf_token": token})
        assert signed_in.status_code == 303, signed_in.text
        me = browser.get("/api/v1/me").json()
    assert me["username"] == "vega"
    assert me["email"] == "vega@example.org"
    assert me["is_active"] is True
    assert me["email_verified"] is True
    assert [r["role"] for r in me["roles"]] == ["operator"]


def test_users_create_gives_the_astronomer_role_by_default(installed):
    installed.ok("users", "create", "vega", "--email", "vega@example.org",
                 "--password", PASSWORD)
    with installed.db() as session:
        roles = list(session.scalars(
            sa.select(Role.name).join(RoleAssignment, RoleAssignment.role_id == Role.id)
            .join(User, User.id == RoleAssignment.user_id).where(User.username == "vega")))
    assert roles == ["astronomer"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "vega@example.org", "--password", "short"],
         "password: Use at least 10 characters."),
        (["--email", "not-an-address", "--password", PASSWORD],
         "email: This is not a valid e-mail address."),
        (["--email", "vega@example.org", "--password", PASSWORD, "--role", "emperor"],
         "There is no role called “emperor”"),
        (["--password", PASSWORD], "Missing option '--email'"),
    ],
    ids=["short-password", "bad-email", "unknown-role", "missing-email"],
)
def test_users_create_refuses_invalid_input_with_a_clear_message_and_creates_nothing(
        installed, args, message):
    result = installed.run("users", "create", "vega", *args)
    assert result.returncode != 0
    assert message in one_line(result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    with installed.db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_users_create_refuses_a_taken_user_name(installed):
    installed.ok("users", "create", "vega", "--email", "vega@example.org", "--password", PASSWORD)
    result = installed.run("users", "create", "vega", "--email", "other@example.org",
                           "--password", PASSWORD)
    assert result.returncode != 0
    assert "username: This user name is taken." in one_line(result.stderr)
    assert "Traceback" not in result.stderr
    with installed.db() as session:
        emails = list(session.scalars(sa.select(User.email)))
    assert emails == ["vega@example.org"]


def test_users_create_refuses_to_run_before_db_upgrade(cli):
    result = cli.run("users", "create", "vega", "--email", "vega@example.org",
                     "--password", PASSWORD)
    assert result.returncode != 0
    assert "run `astrocloud db upgrade` first" in one_line(result.stderr)
    assert "Traceback" not in result.stderr


# ---- tokens create ----------------------------------------------------------------------------


def test_tokens_create_prints_a_token_on_the_last_line_that_works_as_bearer(installed):
    installed.ok("users", "create", "vega", "--email", "vega@example.org", "--password", PASSWORD)
    result = installed.ok("tokens", "create", "vega")
    lines = result.stdout.splitlines()
    token = lines[-1]
    assert re.fullmatch(r"\S{20,}", token), f"not a bare token: {token!r}"
    with installed.serve() as url:
        me = httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        anonymous = httpx.get(f"{url}/api/v1/me")
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "vega"
    assert anonymous.status_code == 401


def test_tokens_create_for_an_unknown_user_fails_with_a_clear_message(installed):
    result = installed.run("tokens", "create", "nobody")
    assert result.returncode != 0
    assert result.stdout.strip() == ""
    assert "There is no user called “nobody”" in one_line(result.stderr)
    assert "Traceback" not in result.stderr


# ---- demo -------------------------------------------------------------------------------------


def test_demo_loads_accounts_and_groups(installed):
    installed.ok("demo")
    with installed.db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) > 0
        assert session.scalar(sa.select(sa.func.count()).select_from(Group)) > 0


def test_demo_run_twice_changes_nothing_the_second_time(installed):
    installed.ok("demo")
    with installed.db() as session:
        before = (sorted(session.scalars(sa.select(User.username))),
                  sorted(session.scalars(sa.select(Group.name))))
    again = installed.ok("demo")
    with installed.db() as session:
        after = (sorted(session.scalars(sa.select(User.username))),
                 sorted(session.scalars(sa.select(Group.name))))
    assert after == before
    assert "created" not in again.stdout + again.stderr
