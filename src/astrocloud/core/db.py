"""Database engine, declarative base and sessions.

The embedded default is SQLite in WAL mode with a busy timeout, so the CLI, the server and the
workers can write at the same time; PostgreSQL uses SQLAlchemy's normal connection pool.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy import exc as exc_module
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "astrocloud_write"


class UTCDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC-aware values")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            # SQLite compares timestamps as text: store one fixed format so comparisons hold.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of every model in every channel (one metadata, one Alembic history)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy manage transactions, not the sqlite3 module's implicit ones.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        try:  # position searches need SQL math; older SQLite builds lack it
            cursor.execute("SELECT sin(0), asin(0), sqrt(1), radians(0), degrees(0)")
        except Exception:  # noqa: BLE001 - sqlite3.OperationalError: no such function
            _add_math_functions(dbapi_connection)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A unit of work that will write (an operation, a migration) begins IMMEDIATE: it takes
        # the write lock up front, so two writers queue on the busy timeout instead of one
        # failing when it upgrades a read lock. Plain reads begin DEFERRED and never block.
        if conn.get_execution_options().get(WRITE_OPTION, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


#: the SQL functions SQLite connections get from Python (`_add_math_functions`)
SQLITE_MATH_FUNCTIONS = ("sin", "cos", "asin", "sqrt", "radians", "degrees")


def _add_math_functions(connection) -> None:
    import math

    for name in SQLITE_MATH_FUNCTIONS:
        fn = getattr(math, name)
        connection.create_function(name, 1, lambda x, fn=fn: None if x is None else fn(x),
                                   deterministic=True)


#: a pooled connection idle for longer than this is pinged before it is handed out again
PRE_PING_IDLE_SECONDS = 2.0


def _pre_ping_when_idle(engine: Engine, idle_seconds: float = PRE_PING_IDLE_SECONDS) -> None:
    """Ping a pooled connection before reuse only when it has been idle for `idle_seconds`.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: one more round trip per unit of work
    (a cone search has three). A connection used a moment ago is alive; one that sat in the pool
    may have been cut by a server restart, so it is pinged, and a dead one is replaced
    (`DisconnectionError` makes the pool discard it and check out another). A connection that
    dies while in use is invalidated by SQLAlchemy as usual and never returns to the pool."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):
        if record is not None:
            record.info["astrocloud_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):
        since = record.info.get("astrocloud_idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            if not getattr(dbapi_connection, "autocommit", True):
                dbapi_connection.rollback()  # end the ping's own transaction
        except Exception as exc:  # noqa: BLE001 - any driver error: the connection is gone
            raise exc_module.DisconnectionError(str(exc)) from exc


def make_engine(url: str, idle_ping_seconds: float = PRE_PING_IDLE_SECONDS) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _configure_sqlite(engine)
    else:
        engine = create_engine(url, pool_size=10, max_overflow=20)
    _pre_ping_when_idle(engine, idle_ping_seconds)
    return engine


class Database:
    """An engine and its session factory."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @staticmethod
    def begin_write(session: Session) -> None:
        """Make `session`'s transaction a writing one. On SQLite the reading transaction is
        committed and the next begins IMMEDIATE (it takes the write lock, see `_begin`). A
        PostgreSQL transaction can write as it is, row locks being taken as rows are written:
        an open one carries on (each statement sees what is committed when it starts, so the
        checks a streaming operation repeats here see the latest state), which spares a
        COMMIT and a BEGIN, two round trips."""
        if session.in_transaction():
            if session.get_bind().dialect.name != "sqlite":
                return
            session.commit()
        session.connection(execution_options={WRITE_OPTION: True})

    @contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any exception."""
        session = self.sessionmaker()
        if write:
            self.begin_write(session)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
