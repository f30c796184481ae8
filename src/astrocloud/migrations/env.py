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
