"""Alembic environment: the URL comes from the caller (astrocloud db upgrade), the metadata from
`astrocloud.models`, which imports every package's models."""

from alembic import context

from astrocloud.core.db import make_engine
from astrocloud.data.catalogs.models import TABLE_PREFIX as CATALOG_TABLE_PREFIX
from astrocloud.models import metadata

config = context.config


def include_name(name, type_, parent_names) -> bool:
    """Each source catalog's rows live in a table made at import time (cat_<name>), which no
    model describes: autogenerate must neither drop nor report them."""
    return not (type_ == "table" and name and name.startswith(CATALOG_TABLE_PREFIX))


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    if connection.dialect.name != "sqlite":
        _migrate(connection)
        return
    # SQLite changes a table by rebuilding it (batch mode: copy, drop, rename). With foreign
    # keys enforced, dropping a table other rows refer to fails on any installation that holds
    # data, so they are switched off for the migration (outside its transaction, where SQLite
    # honours the pragma) and every reference is checked before they are on again.
    raw = connection.connection.dbapi_connection
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        _migrate(connection)
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"the migration left broken references: {broken[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _migrate(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
