"""Columnar reads: ADBC connections beside an engine's own, for results read as Arrow batches.

Long results (TAP streams, cross-match catalog reads) are fetched through an ADBC driver
(`adbc-driver-sqlite`, or `adbc-driver-postgresql`, which reads PostgreSQL's binary COPY)
straight into Arrow record batches: no Python object per value. Such a connection is separate
from the engine's pool, so it sees what is committed. PostgreSQL's take about a tenth of a
second to open, so a few idle ones are kept per engine and closed with it; SQLite's are opened
read-only each time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.parse
import weakref

import sqlalchemy as sa
from sqlalchemy.engine import Engine

IDLE_PER_ENGINE = 4

_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def uri(engine: Engine) -> str | None:
    """The ADBC URI of the engine's database, or None where there is no columnar way (an
    in-memory or URI-named SQLite database, another dialect)."""
    url = engine.url
    dialect = url.get_backend_name()
    if dialect == "sqlite":
        path = url.database
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        return "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    if dialect == "postgresql":
        return url.set(drivername="postgresql").render_as_string(hide_password=False)
    return None


def connect(engine: Engine):
    """An idle ADBC connection kept for `engine`, or a new one to its database (where `uri`
    gives one). Raises what the driver raises when it cannot connect."""
    with _lock:
        idle = _pools.get(engine)
        if idle:
            return idle.pop()
    target = uri(engine)
    if target is None:
        raise ValueError(f"no columnar driver for {engine.dialect.name} databases of this kind")
    if target.startswith("file:"):
        import adbc_driver_sqlite.dbapi as driver
    else:
        import adbc_driver_postgresql.dbapi as driver
    return driver.connect(target)


def release(engine: Engine, conn, *, reusable: bool) -> None:
    """Give a connection back: kept for the next read when `reusable` (it finished cleanly)
    and it is PostgreSQL's, closed otherwise."""
    with contextlib.suppress(Exception):
        if reusable and engine.dialect.name == "postgresql":
            conn.rollback()
            with _lock:
                if engine not in _pools:
                    _pools[engine] = []
                    sa.event.listen(engine, "engine_disposed", _close_pool)
                idle = _pools[engine]
                if len(idle) < IDLE_PER_ENGINE:
                    idle.append(conn)
                    return
        conn.close()


def _close_pool(engine: Engine) -> None:
    with _lock:
        idle = _pools.pop(engine, [])
    for conn in idle:
        with contextlib.suppress(Exception):
            conn.close()
