"""Models and migrations agree: one Alembic history whose head builds exactly the schema the
models describe, on SQLite and on PostgreSQL, from an empty database."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from astrocloud.channels import load_all
from astrocloud.core.db import Database
from astrocloud.core.migrate import alembic_config, current_revision, head_revision, upgrade
from tests.support import server


def models_metadata() -> sa.MetaData:
    load_all()  # every channel's models registered on the one metadata
    from astrocloud.models import metadata

    return metadata


def schema_differences(database: Database) -> list:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, models_metadata())


@pytest.fixture
def empty_database(tmp_path, worker_id_safe) -> Iterator[Database]:
    """A brand-new database with nothing in it (a PostgreSQL database of its own on PG)."""
    url = server.test_database_url(tmp_path, f"{worker_id_safe}_migrate")
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()
        if os.environ.get("ASTROCLOUD_TEST_DATABASE_URL"):
            name = sa.engine.make_url(url).database
            admin = sa.create_engine(sa.engine.make_url(url).set(database="postgres"),
                                     isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_the_migrated_test_database_matches_the_models_exactly(database):
    differences = schema_differences(database)
    assert differences == [], (
        "models and migrations disagree; write a migration (alembic revision --autogenerate) "
        f"for: {differences}")


def test_the_comparison_notices_a_model_that_has_no_migration(database):
    # Guards the test above against passing vacuously.
    models = sa.MetaData()
    for table in models_metadata().tables.values():
        table.to_metadata(models)
    sa.Table("not_migrated", models, sa.Column("id", sa.Integer, primary_key=True))
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), models)
    assert [(d[0], d[1].name) for d in differences] == [("add_table", "not_migrated")]


def test_the_migration_history_has_a_single_head(database):
    heads = ScriptDirectory.from_config(alembic_config(database)).get_heads()
    assert len(heads) == 1, f"several Alembic heads, merge them: {heads}"


def test_upgrade_on_a_brand_new_database_reaches_head_with_every_model_table(empty_database):
    assert sa.inspect(empty_database.engine).get_table_names() == []
    upgrade(empty_database)
    assert current_revision(empty_database) == head_revision(empty_database)
    tables = set(sa.inspect(empty_database.engine).get_table_names())
    assert set(models_metadata().tables) <= tables
    assert schema_differences(empty_database) == []


def test_upgrade_at_head_changes_nothing(empty_database):
    upgrade(empty_database)
    revision = current_revision(empty_database)
    upgrade(empty_database)
    assert current_revision(empty_database) == revision
    assert schema_differences(empty_database) == []


def test_every_migration_can_be_reversed_and_applied_again(empty_database):
    upgrade(empty_database)
    cfg = alembic_config(empty_database)
    with empty_database.engine.connect() as connection:
        cfg.attributes["connection"] = connection.execution_options(astrocloud_write=True)
        command.downgrade(cfg, "base")
        if connection.in_transaction():
            connection.commit()
    left = set(sa.inspect(empty_database.engine).get_table_names()) - {"alembic_version"}
    assert left == set(), f"downgrade to base left tables behind: {left}"
    upgrade(empty_database)
    assert current_revision(empty_database) == head_revision(empty_database)
    assert schema_differences(empty_database) == []


def test_upgrading_an_installation_that_holds_data_keeps_it(empty_database):
    """Later migrations run on a live installation: telescopes with archived files that refer
    to them (foreign keys on) must survive the upgrade to head untouched."""
    import datetime as dt

    upgrade(empty_database, "0006")
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with empty_database.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO telescopes (id, name, title, longitude, latitude, "
                             "elevation, time_zone, header_mapping, proprietary_months, "
                             "created_at) VALUES (1, 'T', '', 1, 2, 3, 'UTC', '{}', 12, :now)"),
                     {"now": now})
        conn.execute(sa.text("INSERT INTO instruments (id, telescope_id, name, kind, qc_config) "
                             "VALUES (1, 1, 'I', 'imager', '{}')"))
    upgrade(empty_database)
    with empty_database.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM telescopes")).scalar() == "T"
        assert conn.execute(sa.text("SELECT name FROM instruments")).scalar() == "I"
