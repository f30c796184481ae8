"""data: source catalogs, their columns and group grants

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:00:00.000000

Each catalog's rows live in a table of their own (cat_<name>) made at import time; they are
not part of the models' metadata, and a downgrade drops them with the catalogs they belong to.
"""

from alembic import op
import sqlalchemy as sa
import astrocloud.core.db


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('data_catalogs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=48), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('table_name', sa.String(length=63), nullable=False),
    sa.Column('ra_column', sa.String(length=63), nullable=False),
    sa.Column('dec_column', sa.String(length=63), nullable=False),
    sa.Column('n_rows', sa.BigInteger(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('proprietary_until', astrocloud.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('index_kind', sa.String(length=16), nullable=False),
    sa.Column('healpix_order', sa.Integer(), nullable=True),
    sa.Column('source_name', sa.String(length=255), nullable=False),
    sa.Column('source_format', sa.String(length=16), nullable=False),
    sa.Column('created_at', astrocloud.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', astrocloud.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_data_catalogs_owner_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_catalogs')),
    sa.UniqueConstraint('name', name=op.f('uq_data_catalogs_name')),
    sa.UniqueConstraint('table_name', name=op.f('uq_data_catalogs_table_name'))
    )
    with op.batch_alter_table('data_catalogs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_data_catalogs_owner_id'), ['owner_id'], unique=False)

    op.create_table('data_catalog_columns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('catalog_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('original_name', sa.String(length=255), nullable=False),
    sa.Column('datatype', sa.String(length=16), nullable=False),
    sa.Column('arraysize', sa.String(length=16), nullable=True),
    sa.Column('xtype', sa.String(length=32), nullable=True),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('ucd', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('indexed', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['catalog_id'], ['data_catalogs.id'], name=op.f('fk_data_catalog_columns_catalog_id_data_catalogs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_catalog_columns')),
    sa.UniqueConstraint('catalog_id', 'name', name='uq_data_catalog_columns_name'),
    sa.UniqueConstraint('catalog_id', 'position', name='uq_data_catalog_columns_position')
    )
    op.create_table('data_catalog_grants',
    sa.Column('catalog_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('granted_at', astrocloud.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['catalog_id'], ['data_catalogs.id'], name=op.f('fk_data_catalog_grants_catalog_id_data_catalogs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_data_catalog_grants_group_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('catalog_id', 'group_id', name=op.f('pk_data_catalog_grants'))
    )
    with op.batch_alter_table('data_catalog_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_data_catalog_grants_group_id'), ['group_id'], unique=False)


def downgrade() -> None:
    # The catalogs' own tables first: nothing else knows they exist.
    connection = op.get_bind()
    for (table_name,) in connection.execute(sa.text('SELECT table_name FROM data_catalogs')):
        sa.Table(table_name, sa.MetaData()).drop(connection, checkfirst=True)
    with op.batch_alter_table('data_catalog_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_data_catalog_grants_group_id'))

    op.drop_table('data_catalog_grants')
    op.drop_table('data_catalog_columns')
    with op.batch_alter_table('data_catalogs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_data_catalogs_owner_id'))

    op.drop_table('data_catalogs')
