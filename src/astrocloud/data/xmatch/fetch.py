"""Reading a catalog's rows into an Arrow table, a column at a time.

A match reads up to millions of rows; one Python object per value is what made reading them
cost more than matching them. Two ways, the first that applies:

* columnar — an ADBC driver (SQLite's, or PostgreSQL's binary COPY) gives Arrow record
  batches straight from the database, no Python object per row. It runs on its own
  connection, so it sees what is committed (catalogs always are: their import commits) and is
  used for reads of at least `COLUMNAR_MIN_ROWS` rows only. SQLite's driver types a column by
  its first batch and fails on a later value of another type (a column all NULL at first,
  numbers later): any driver error sends the read to the ordinary way, which decides;
* ordinary — the session's own DB-API cursor, `FETCH_ROWS` rows at a time, each batch turned
  into column arrays at once, with the garbage collector paused: millions of fresh tuples
  would otherwise set off its full passes again and again.

Either way the columns come out with the catalog's Arrow types (`importer.ARROW_TYPES`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterator

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from astrocloud.core import columnar
from astrocloud.data.catalogs import importer

log = logging.getLogger("astrocloud.xmatch")

FETCH_ROWS = 50_000  # rows fetched at a time on the ordinary way
COLUMNAR_MIN_ROWS = 50_000  # shorter reads stay on the session's connection (already open)
COLUMNAR_BATCH_ROWS = 65_536


class TooManyRows(Exception):
    """The read passed its row limit."""


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection while a bulk read makes millions of short-lived objects (none of
    them in cycles); what existed before is frozen out of later passes meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


def _empty(names: list[str], kinds: list[str]) -> pa.Table:
    return pa.table({n: pa.array([], type=importer.ARROW_TYPES[k])
                     for n, k in zip(names, kinds, strict=True)})


def _conform(table: pa.Table, names: list[str], kinds: list[str]) -> pa.Table:
    """The columns with the catalog's types (SQLite gives int64 for booleans and shorts,
    double for single-precision floats — which were single-precision when written)."""
    arrays = [table.column(i).cast(importer.ARROW_TYPES[kind])
              for i, kind in enumerate(kinds)]
    return pa.table(arrays, names=names)


def _fetch_columnar(session: Session, stmt: sa.Select, names: list[str], kinds: list[str],
                    check: Callable[[int], None]) -> pa.Table | None:
    """The rows through an ADBC driver; None when that way cannot read them."""
    engine = session.get_bind().engine
    if columnar.uri(engine) is None:
        return None
    try:
        import adbc_driver_manager

        conn = columnar.connect(engine)
    except Exception:  # noqa: BLE001 — no driver, or no connection: the ordinary way reads
        log.warning("cross-match: no columnar connection, the ordinary fetch runs",
                    exc_info=True)
        return None
    sql = str(stmt.compile(dialect=session.get_bind().dialect,
                           compile_kwargs={"literal_binds": True}))
    batches, seen, done = [], 0, False
    try:
        cursor = conn.cursor()
        if engine.dialect.name == "sqlite":
            cursor.adbc_statement.set_options(
                **{"adbc.sqlite.query.batch_rows": str(COLUMNAR_BATCH_ROWS)})
        cursor.execute(sql)
        reader = cursor.fetch_record_batch()
        for batch in reader:
            seen += batch.num_rows
            check(seen)
            batches.append(batch)
        cursor.close()
        done = True
    except (adbc_driver_manager.Error, pa.ArrowException, OSError) as exc:
        # (a driver error while batches are read comes as an Arrow one)
        log.info("cross-match: the columnar fetch gave way to the ordinary one (%s)", exc)
        return None
    finally:
        columnar.release(engine, conn, reusable=done)
    log.debug("cross-match: columnar fetch of %s rows", seen)
    if not seen:
        return _empty(names, kinds)
    return _conform(pa.Table.from_batches(batches), names, kinds)


def _array(values, kind: pa.DataType) -> pa.Array:
    if pa.types.is_boolean(kind):  # SQLite gives 0 and 1
        return pa.array(values, from_pandas=True).cast(kind)
    return pa.array(values, type=kind, from_pandas=True)


def _fetch_ordinary(session: Session, stmt: sa.Select, names: list[str], kinds: list[str],
                    check: Callable[[int], None]) -> pa.Table:
    connection = session.connection()
    compiled = stmt.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    raw = connection.connection.driver_connection
    # on PostgreSQL a server-side cursor, so that a long result streams
    cursor = raw.cursor(name="xmatch_fetch") if connection.dialect.name == "postgresql" else \
        raw.cursor()
    types = [importer.ARROW_TYPES[k] for k in kinds]
    batches, seen = [], 0
    try:
        cursor.execute(str(compiled))
        with gc_paused():
            while rows := cursor.fetchmany(FETCH_ROWS):
                seen += len(rows)
                check(seen)
                columns = zip(*rows, strict=True)
                batches.append(pa.record_batch(
                    [_array(values, kind) for values, kind in zip(columns, types, strict=True)],
                    names=names))
                del rows, columns
    finally:
        cursor.close()
    if not batches:
        return _empty(names, kinds)
    return pa.Table.from_batches(batches)


def fetch_table(session: Session, stmt: sa.Select, names: list[str], kinds: list[str], *,
                max_rows: int | None = None, expected_rows: int = 0) -> pa.Table:
    """The rows of `stmt` (a SELECT of the columns `names`, of catalog datatypes `kinds`) as an
    Arrow table. `expected_rows` (at most how many it may give) picks the way; more than
    `max_rows` rows raise TooManyRows."""

    def check(seen: int) -> None:
        if max_rows is not None and seen > max_rows:
            raise TooManyRows(seen)

    if expected_rows >= COLUMNAR_MIN_ROWS:
        table = _fetch_columnar(session, stmt, names, kinds, check)
        if table is not None:
            return table
    return _fetch_ordinary(session, stmt, names, kinds, check)
