"""What the VO services know about a column and a table: the metadata TAP_SCHEMA publishes,
the ADQL translator resolves names against, and the result writers (VOTable, CSV, FITS, …)
describe their output with. One description serves all three, so a catalog's units and UCDs
reach every client the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: VOTable datatypes a column may have
DATATYPES = ("boolean", "unsignedByte", "short", "int", "long", "float", "double", "char",
             "unicodeChar")


@dataclass(frozen=True)
class Column:
    """One column. `name` is its ADQL name; `sql` the name in the backing table or SELECT when
    it differs; `datatype`, `arraysize` and `xtype` as in VOTable/DALI ("*" for a variable-
    length string; xtype "timestamp" for dates, "point", "circle", "polygon" for geometry)."""

    name: str
    datatype: str = "char"
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None
    sql: str | None = None
    indexed: bool = False
    principal: bool = False
    std: bool = False

    @property
    def sql_name(self) -> str:
        return self.sql or self.name


@dataclass(frozen=True)
class Table:
    """One table as the VO services publish it. `name` is qualified (`ivoa.obscore`,
    `catalogs.demo_stars`, `tap_upload.mine`); `source` is what to read — a SQLAlchemy table, or
    a SELECT that already applies the caller's access rules (the release policy lives there,
    never in the translator). `ra`/`dec` name the position columns (ADQL names) and
    `spatial_index` says which index serves a cone on them: "healpix" (with `healpix` the SQL
    column holding the nested HEALPix index at `healpix_order`), "q3c", "pgsphere" or None."""

    name: str
    columns: tuple[Column, ...]
    source: Any = None
    description: str = ""
    utype: str | None = None
    table_type: str = "table"
    ra: str | None = None
    dec: str | None = None
    spatial_index: str | None = None
    healpix: str | None = None
    healpix_order: int | None = None
    #: foreign keys for TAP_SCHEMA.keys: (target table, ((from column, target column), …))
    keys: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = field(default=())

    @property
    def schema(self) -> str:
        return self.name.split(".", 1)[0] if "." in self.name else ""

    def column(self, name: str) -> Column | None:
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)
