"""Source catalogs: one `Catalog` per imported table of sources (its rows live in a table of
their own, `cat_<name>`, made at import time), the metadata of each of its columns
(`CatalogColumn`: name, datatype, unit, UCD, description — what TAP_SCHEMA publishes), and the
groups a proprietary catalog is granted to (`CatalogGrant`)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from astrocloud.core.db import Base, utcnow
from astrocloud.core.identity.models import Group, GroupMember, User
from astrocloud.core.security.resources import INT, Collection, register_resource

# The prefix of every catalog's own table: Alembic leaves tables with it alone (they are made
# at import time, not by a migration).
TABLE_PREFIX = "cat_"
INDEX_KINDS = ("healpix", "q3c")


def _readers(model):
    """SQL: the members of the groups a catalog is granted to."""
    return (sa.select(GroupMember.user_id)
            .join(CatalogGrant, CatalogGrant.group_id == GroupMember.group_id)
            .where(CatalogGrant.catalog_id == model.id))


def _python_readers(catalog) -> list[int]:
    from sqlalchemy.orm import object_session

    session = object_session(catalog)
    if session is None or catalog.id is None:
        return []
    return list(session.scalars(_readers(Catalog).where(Catalog.id == catalog.id)))


@register_resource("catalog", extra=lambda: {
    "reader_ids": Collection(INT, python=_python_readers, sql=_readers,
                             doc="members of the groups the catalog is granted to"),
})
class Catalog(Base):
    """A source catalog: its description, where its rows are (`table_name`), which columns
    hold the position, its spatial index and, while it is proprietary, until when."""

    __tablename__ = "data_catalogs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(48), unique=True)
    title: Mapped[str] = mapped_column(sa.String(255), default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    table_name: Mapped[str] = mapped_column(sa.String(63), unique=True)
    ra_column: Mapped[str] = mapped_column(sa.String(63))
    dec_column: Mapped[str] = mapped_column(sa.String(63))
    n_rows: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"),
                                                 index=True)
    # NULL: public from the start; otherwise public once this moment has passed
    proprietary_until: Mapped[dt.datetime | None] = mapped_column()
    index_kind: Mapped[str] = mapped_column(sa.String(16), default="healpix")
    # the order of the nested HEALPix column (healpix index only)
    healpix_order: Mapped[int | None] = mapped_column()
    source_name: Mapped[str] = mapped_column(sa.String(255), default="",
                                             doc="the file it was imported from")
    source_format: Mapped[str] = mapped_column(sa.String(16), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    owner: Mapped[User | None] = relationship()
    columns: Mapped[list[CatalogColumn]] = relationship(
        back_populates="catalog", order_by="CatalogColumn.position",
        cascade="all, delete-orphan", passive_deletes=True)
    grants: Mapped[list[CatalogGrant]] = relationship(cascade="all, delete-orphan",
                                                      passive_deletes=True)
    groups: Mapped[list[Group]] = relationship(secondary="data_catalog_grants",
                                               viewonly=True, order_by="Group.name")

    def is_public(self, now: dt.datetime) -> bool:
        return self.proprietary_until is None or self.proprietary_until <= now


class CatalogColumn(Base):
    """One column of a catalog's table, described as TAP_SCHEMA.columns describes it
    (datatype, arraysize and xtype as in VOTable)."""

    __tablename__ = "data_catalog_columns"
    __table_args__ = (sa.UniqueConstraint("catalog_id", "name",
                                          name="uq_data_catalog_columns_name"),
                      sa.UniqueConstraint("catalog_id", "position",
                                          name="uq_data_catalog_columns_position"))

    id: Mapped[int] = mapped_column(primary_key=True)
    catalog_id: Mapped[int] = mapped_column(sa.ForeignKey("data_catalogs.id",
                                                          ondelete="CASCADE"))
    position: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(sa.String(63), doc="the column's name in the database")
    original_name: Mapped[str] = mapped_column(sa.String(255), default="",
                                               doc="its name in the imported file")
    datatype: Mapped[str] = mapped_column(sa.String(16))
    arraysize: Mapped[str | None] = mapped_column(sa.String(16))
    xtype: Mapped[str | None] = mapped_column(sa.String(32))
    unit: Mapped[str] = mapped_column(sa.String(64), default="")
    ucd: Mapped[str] = mapped_column(sa.String(255), default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    indexed: Mapped[bool] = mapped_column(default=False)

    catalog: Mapped[Catalog] = relationship(back_populates="columns")


class CatalogGrant(Base):
    """A proprietary catalog opened to the members of a group before its public date."""

    __tablename__ = "data_catalog_grants"

    catalog_id: Mapped[int] = mapped_column(sa.ForeignKey("data_catalogs.id",
                                                          ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"),
                                          primary_key=True, index=True)
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
