"""Real things for the tests: a database (SQLite, or PostgreSQL when ASTROCLOUD_TEST_DATABASE_URL
is set), the application served over real HTTP on loopback, and an SMTP server that receives
the mail the application sends."""

from __future__ import annotations

import email
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from email.policy import default

import sqlalchemy as sa
import uvicorn
from aiosmtpd.controller import Controller

from astrocloud.core.db import Base, Database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_url(tmp_dir, worker: str) -> str:
    """A fresh, empty database for this run (and this xdist worker)."""
    base = os.environ.get("ASTROCLOUD_TEST_DATABASE_URL")
    if not base:
        return f"sqlite:///{tmp_dir / f'test-{worker}.db'}"
    url = sa.engine.make_url(base)
    name = f"{url.database or 'astrocloud_test'}_{worker}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def reset_database(database: Database, seed) -> None:
    """Empty every table and seed the defaults again: each test starts from a fresh install.

    The previous test's server may still be finishing a request (a client that hung up
    mid-upload is noticed on the server's own time), so a lock conflict is waited out."""
    for attempt in range(10):
        try:
            _empty(database)
            break
        except sa.exc.OperationalError:
            if attempt == 9:
                raise
            time.sleep(0.3 * (attempt + 1))
    with database.session() as session:
        seed(session)


def _empty(database: Database) -> None:
    tables = [t for t in reversed(Base.metadata.sorted_tables)]
    with database.engine.begin() as conn:
        # source catalogs keep their rows in tables of their own (cat_<name>), which no model
        # describes: a fresh install has none
        for name in sa.inspect(conn).get_table_names():
            if name.startswith("cat_"):
                conn.execute(sa.text(f'DROP TABLE "{name}"'))
        if database.dialect == "postgresql":
            conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())
            if conn.execute(sa.text(
                    "SELECT name FROM sqlite_master WHERE name='sqlite_sequence'")).first():
                conn.execute(sa.text("DELETE FROM sqlite_sequence"))


class LiveServer:
    """The application under uvicorn in a background thread, on a free loopback port."""

    def __init__(self, app, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Mailbox:
    """Messages received by the test SMTP server."""

    messages: list[Message] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def wait_for(self, to: str, timeout: float = 10.0) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for msg in reversed(self.messages):
                    if to.lower() in (msg["To"] or "").lower():
                        return msg
            time.sleep(0.05)
        raise AssertionError(f"no mail to {to} arrived within {timeout} s")

    @staticmethod
    def body(msg: Message) -> str:
        part = msg.get_body(("plain",)) if hasattr(msg, "get_body") else None
        payload = (part or msg).get_payload(decode=True)
        return payload.decode("utf-8") if isinstance(payload, bytes) else str(payload)

    def link(self, to: str, path: str) -> str:
        """The first link in the latest mail to `to` whose path starts with `path`."""
        import re

        msg = self.wait_for(to)
        for url in re.findall(r"https?://\S+", self.body(msg)):
            if path in url:
                return url
        raise AssertionError(f"no {path} link in the mail to {to}")


def start_smtp() -> tuple[Controller, Mailbox]:
    mailbox = Mailbox()
    mailbox.port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    return controller, mailbox
