"""Shared fixtures: one fresh database and one live server per test session (per xdist worker),
every table emptied and the defaults seeded again before each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from astrocloud.app import create_app
from astrocloud.channels import policy_files
from astrocloud.core.config import Settings
from astrocloud.core.db import Database
from astrocloud.core.identity import services as identity
from astrocloud.core.migrate import upgrade
from astrocloud.core.security.engine import Subject
from astrocloud.core.security.services import seed_policies
from astrocloud.core.service import Context
from astrocloud.core.storage.services import seed_sites
from tests.support.server import (
    LiveServer,
    free_port,
    reset_database,
    start_smtp,
    test_database_url,
)

pytest_plugins = ["tests.support.browser"]

PASSWORD = "a-long-test-password"


def _seeder(settings):
    def seed(session) -> None:
        seed_policies(session, policy_files())
        seed_sites(session, settings)

    return seed


@pytest.fixture(scope="session")
def worker_id_safe(request) -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def smtp():
    controller, mailbox = start_smtp()
    yield mailbox
    controller.stop()


@pytest.fixture(scope="session")
def server_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def settings(tmp_path_factory, worker_id_safe, smtp, server_port) -> Settings:
    home = tmp_path_factory.mktemp("home")
    return Settings(
        home=home,
        database_url=test_database_url(home, worker_id_safe),
        secret_key="test-secret-key-not-for-production",
        base_url=f"http://127.0.0.1:{server_port}",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port(smtp),
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        strict_security_audit=True,
    )


def smtp_port(mailbox) -> int:
    return mailbox.port


@pytest.fixture(scope="session")
def database(settings) -> Iterator[Database]:
    db = Database(settings.effective_database_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture(autouse=True)
def fresh_install(request, database, settings, smtp):
    """Every test starts from a freshly installed platform with an empty mailbox."""
    reset_database(database, _seeder(settings))
    smtp.clear()
    yield


@pytest.fixture(scope="session")
def app(settings, database):
    return create_app(settings, database)


@pytest.fixture(scope="session")
def live_server(app, server_port) -> Iterator[str]:
    server = LiveServer(app, server_port).start()
    yield server.url
    server.stop()


@pytest.fixture
def client(live_server) -> Iterator[httpx.Client]:
    """An anonymous HTTP client (no cookies kept between tests)."""
    with httpx.Client(base_url=live_server, timeout=30) as c:
        yield c


@pytest.fixture
def system(database, settings) -> Iterator[Context]:
    """A service context acting as the platform itself (like the CLI)."""
    with Context(database=database, settings=settings, subject=Subject.system_subject(),
                 via="cli") as ctx:
        yield ctx


@pytest.fixture
def runtime(settings, database):
    """A runtime (jobs, storage) whose embedded job queue is worked by threads for the test's
    duration."""
    from astrocloud.core.runtime import build_runtime

    rt = build_runtime(settings, database)
    rt.jobs.huey.flush()
    rt.jobs.start_embedded(workers=2)
    yield rt
    rt.jobs.stop_embedded()


class Users:
    """Factory for accounts, their API tokens and HTTP clients acting as them."""

    def __init__(self, system: Context, live_server: str):
        self.system = system
        self.live_server = live_server
        self._clients: list[httpx.Client] = []

    def create(self, username: str, role: str = "astronomer", *, password: str = PASSWORD,
               email: str | None = None, **kwargs):
        return identity.create_user(self.system, username=username,
                                    email=email or f"{username}@example.org",
                                    password=password, role=role, **kwargs)

    def token(self, user) -> str:
        return identity.create_token(self.system, user_id=user.id, name="test")[1]

    def api(self, user_or_role="astronomer", username: str | None = None) -> httpx.Client:
        """An HTTP client authenticated with a fresh API token of a (new) user."""
        user = user_or_role
        if isinstance(user_or_role, str):
            user = self.create(username or f"{user_or_role}1", role=user_or_role)
        c = httpx.Client(base_url=self.live_server, timeout=30,
                         headers={"Authorization": f"Bearer {self.token(user)}"})
        c.user = user
        self._clients.append(c)
        return c

    def close(self) -> None:
        for c in self._clients:
            c.close()


@pytest.fixture
def users(system, live_server) -> Iterator[Users]:
    factory = Users(system, live_server)
    yield factory
    factory.close()
