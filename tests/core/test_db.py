"""The connection pool: a pooled connection that was cut while it sat idle (a database server
restart, a closed handle) is noticed at checkout and replaced, so the next unit of work does
not fail. A connection used a moment ago is handed out without that extra round trip: should
it have died in that moment, its next statement fails and the pool replaces it."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from astrocloud.core.db import make_engine

IDLE = 0.05  # seconds: a short idle threshold, so the test need not wait the default's 2 s


def _cut(database, engine, raw) -> None:
    """End a pooled connection under the pool's feet: PostgreSQL's server process is
    terminated (what a server restart does to it), SQLite's handle is closed."""
    if engine.dialect.name == "postgresql":
        with database.engine.connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                          {"pid": raw.info.backend_pid})
            admin.commit()
        time.sleep(0.2)  # the server process takes a moment to go
    else:
        raw.close()


def test_a_pooled_connection_cut_while_idle_is_replaced_at_checkout(database):
    engine = make_engine(database.url, idle_ping_seconds=IDLE)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
            raw = conn.connection.dbapi_connection
        _cut(database, engine, raw)
        time.sleep(IDLE * 4)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 2")).scalar() == 2
            assert conn.connection.dbapi_connection is not raw
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(database):
    engine = make_engine(database.url, idle_ping_seconds=60)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            raw = conn.connection.dbapi_connection
        _cut(database, engine, raw)
        # not pinged: the dead connection itself comes back
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError):
            conn.execute(sa.text("SELECT 2"))
        with engine.connect() as conn:  # … and, invalidated by its failure, is replaced
            assert conn.execute(sa.text("SELECT 3")).scalar() == 3
            assert conn.connection.dbapi_connection is not raw
    finally:
        engine.dispose()
