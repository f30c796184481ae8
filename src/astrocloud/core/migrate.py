"""Schema migrations (Alembic) and the seed data a fresh installation needs."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from astrocloud.core.db import Database


def alembic_config(database: Database) -> Config:
    import astrocloud.migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(astrocloud.migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return cfg


def upgrade(database: Database, revision: str = "head") -> None:
    cfg = alembic_config(database)
    with database.engine.connect() as connection:
        connection = connection.execution_options(astrocloud_write=True)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
        if connection.in_transaction():
            connection.commit()


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()


def is_up_to_date(database: Database) -> bool:
    return current_revision(database) == head_revision(database)
