"""ADQL 2.1 → SQL for the TAP service: parse with sqlglot, check every node against what ADQL
allows, resolve names against the published tables, and write one read-only SELECT for SQLite
or PostgreSQL, with the user's string literals as bound parameters.

Geometry is where the dialects differ. A cone (CONTAINS of a column point in a constant circle,
or DISTANCE below a constant) becomes, by the table's spatial index:

- "q3c" (PostgreSQL): ``q3c_join(a, b, ra, dec, r)`` up to 1°, ``q3c_radial_query(ra, dec, a,
  b, r)`` beyond (the same rows; the first plans faster for small cones); polygons
  ``q3c_poly_query(ra, dec, ARRAY[...])``; a two-table CONTAINS ``q3c_join(...)``;
- "pgsphere" (PostgreSQL): ``spoint(radians(ra), radians(dec)) <@ scircle(...)`` / ``<@ spoly``;
  the index the service must build is
  ``CREATE INDEX ... USING gist (spoint(radians(ra), radians(dec)))`` with the same SQL names;
- "healpix" (both): ``healpix BETWEEN lo AND hi OR ...`` over the ranges covering the cone (or
  the polygon's bounding circle), AND the exact test in SQL trigonometry;
- none: a Dec band AND the exact test.

A region column (ObsCore's s_region, STC-S text) is tested exactly on SQLite by functions
registered with `install_sqlite_functions`; on PostgreSQL it is approximated by the circle of
diameter s_fov around (s_ra, s_dec) of its row (see docs/vo.md).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlalchemy.sql import visitors
from sqlglot import exp, parser, tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.postgres import Postgres
from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import ParseError, TokenError

from astrocloud.data.vo import adql_geometry as geo
from astrocloud.data.vo.columns import Column, Table

__all__ = ["AdqlError", "Translation", "install_sqlite_functions", "translate"]


class AdqlError(Exception):
    """A query we cannot run: syntax error (with line/column), unknown table/column, a function
    that is not allowed, a write attempt, ... `.message`, `.line`, `.column` (None if unknown);
    str(e) is a helpful human sentence."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.message, self.line, self.column = message, line, column
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is not None:
            return f"Line {self.line}, column {self.column}: {self.message}"
        return self.message


@dataclass(frozen=True)
class Translation:
    sql: str
    params: dict[str, Any]
    columns: list[Column]
    limit: int | None
    #: the rows of one table, projected: no WHERE, join, grouping, ordering, DISTINCT, subquery
    #: or aggregate, so each row read is a row returned — the database never works long
    #: between two rows (what lets a result be fetched where a query cannot be interrupted)
    plain: bool = False


# ---- dialects ------------------------------------------------------------------------------


class _Adql(Dialect):
    """The base SQL grammar with ADQL's TOP."""

    class Tokenizer(tokens.Tokenizer):
        KEYWORDS = {**tokens.Tokenizer.KEYWORDS, "TOP": tokens.TokenType.TOP}

    class Parser(parser.Parser):
        pass


class _Raw(exp.Expression):
    """SQL text we wrote ourselves (never user text): table sources, geometry predicates."""

    arg_types = {"this": True}


def _raw_sql(self, expression: _Raw) -> str:
    return expression.this


def _ordered_sql(self, expression: exp.Ordered) -> str:
    # the engine's own NULL ordering, without the transpiler's emulation of another dialect's
    return self.sql(expression, "this") + (" DESC" if expression.args.get("desc") else "")


class _SQLiteOut(SQLite):
    class Tokenizer(SQLite.Tokenizer):
        pass

    class Parser(SQLite.Parser):
        pass

    class Generator(SQLite.Generator):
        TRANSFORMS = {**SQLite.Generator.TRANSFORMS, _Raw: _raw_sql}
        ordered_sql = _ordered_sql


class _PostgresOut(Postgres):
    class Tokenizer(Postgres.Tokenizer):
        pass

    class Parser(Postgres.Parser):
        pass

    class Generator(Postgres.Generator):
        TRANSFORMS = {**Postgres.Generator.TRANSFORMS, _Raw: _raw_sql}
        ordered_sql = _ordered_sql


_OUT = {"sqlite": _SQLiteOut, "postgresql": _PostgresOut}

FORBIDDEN_SCHEMAS = ("sqlite_master", "sqlite_schema", "sqlite_temp_master", "pg_catalog",
                     "information_schema", "pg_toast", "main", "temp", "public")


def _sa_dialect(name: str):
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
        return SQLiteDialect_pysqlite(paramstyle="named")
    from sqlalchemy.dialects.postgresql.base import PGDialect
    return PGDialect(paramstyle="named")


# ---- values the translator passes around ----------------------------------------------------


@dataclass
class _Val:
    """A translated scalar expression and what is known of it."""

    sql: exp.Expression
    datatype: str = "double"
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    column: Column | None = None  # set when this is a plain column reference
    source: _Source | None = None
    name: str | None = None  # the output name it suggests
    const: float | None = None  # numeric value when constant
    text: str | None = None  # string value of a string literal
    aggregate: bool = False


@dataclass
class _Point:
    ra: _Val
    dec: _Val
    node: exp.Expression

    @property
    def const(self) -> bool:
        return self.ra.const is not None and self.dec.const is not None


@dataclass
class _Circle:
    centre: _Point
    radius: _Val
    node: exp.Expression


@dataclass
class _Poly:
    shape: geo.Polygon
    node: exp.Expression


@dataclass
class _Region:
    """A column holding an STC-S region (ObsCore s_region)."""

    val: _Val
    node: exp.Expression


_Geom = _Point | _Circle | _Poly | _Region


@dataclass
class _Source:
    """One item of a FROM clause: its SQL alias, the names ADQL may qualify it with, and its
    columns as (SQL name, metadata)."""

    alias: str
    qualifiers: set[str]
    columns: list[tuple[str, Column]]
    table: Table | None = None
    hidden: set[str] = dataclasses.field(default_factory=set)  # right-hand USING columns

    def find(self, name: str, quoted: bool) -> tuple[str, Column] | None:
        for sql_name, col in self.columns:
            if col.name == name:
                return sql_name, col
        if not quoted:
            lowered = name.lower()
            for sql_name, col in self.columns:
                if col.name.lower() == lowered:
                    return sql_name, col
        return None


@dataclass
class _Scope:
    sources: list[_Source]
    parent: _Scope | None = None
    using: dict[str, tuple[_Source, str, Column]] = dataclasses.field(default_factory=dict)
    aliases: dict[str, _Val] = dataclasses.field(default_factory=dict)


_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_INTEGER_TYPES = ("short", "int", "long", "unsignedByte")
_CAST_TYPES = {  # ADQL type → (datatype, PostgreSQL type, SQLite type)
    exp.DataType.Type.SMALLINT: ("short", "SMALLINT", "INTEGER"),
    exp.DataType.Type.INT: ("int", "INTEGER", "INTEGER"),
    exp.DataType.Type.BIGINT: ("long", "BIGINT", "INTEGER"),
    exp.DataType.Type.FLOAT: ("float", "REAL", "REAL"),
    exp.DataType.Type.DOUBLE: ("double", "DOUBLE PRECISION", "REAL"),
    exp.DataType.Type.CHAR: ("char", "CHAR", "TEXT"),
    exp.DataType.Type.VARCHAR: ("char", "VARCHAR", "TEXT"),
    exp.DataType.Type.TIMESTAMP: ("char", "TIMESTAMP", None),
}
_MATH1 = {"ABS": "ABS", "CEILING": "CEIL", "DEGREES": "DEGREES", "EXP": "EXP", "FLOOR": "FLOOR",
          "LOG": "LN", "LOG10": "LOG10", "RADIANS": "RADIANS", "SQRT": "SQRT", "SIN": "SIN",
          "COS": "COS", "TAN": "TAN", "ASIN": "ASIN", "ACOS": "ACOS", "ATAN": "ATAN",
          "COT": "COT"}
_CLASS_NAMES = {"Ceil": "CEILING", "Pow": "POWER", "Trunc": "TRUNCATE", "Ln": "LOG",
                "Contains": "CONTAINS"}
_GEOMETRY = ("POINT", "CIRCLE", "BOX", "POLYGON", "REGION")


def _fname(node: exp.Expression) -> str | None:
    """The ADQL name of a function call node, None for anything else."""
    if isinstance(node, exp.Anonymous):
        return str(node.this).upper()
    if isinstance(node, exp.Func) and not isinstance(node, (exp.Case, exp.Cast)):
        if isinstance(node, exp.Log):
            return "LOG10" if node.args.get("expression") is not None else "LOG"
        name = type(node).__name__
        return _CLASS_NAMES.get(name, name.upper())
    return None


def _fargs(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.Anonymous):
        return list(node.expressions)
    if isinstance(node, exp.Log) and node.args.get("expression") is not None:
        base = node.this
        if not (isinstance(base, exp.Literal) and base.this == "10"):
            raise AdqlError("LOG takes one argument (the natural logarithm)")
        return [node.args["expression"]]
    args = []
    for key in ("this", "expression", "decimals", "expressions"):
        value = node.args.get(key)
        if isinstance(value, list):
            args.extend(value)
        elif isinstance(value, exp.Expression):
            args.append(value)
    return args


def _num(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) < 1e15):
        return str(int(value)) + ".0" if isinstance(value, float) else str(value)
    if not math.isfinite(value):
        raise AdqlError("a number is not finite")
    return repr(float(value))


class _Translator:
    def __init__(self, text: str, tables: Mapping[str, Table], dialect: str):
        self.text = text
        # a dict is copied with lower-case keys; another mapping (the service's, which builds
        # a table when it is named) is used as it is, its keys already lower-case
        self.tables = {k.lower(): v for k, v in tables.items()} if isinstance(tables, dict) \
            else tables
        self.dialect = dialect
        self.pg = dialect == "postgresql"
        self.out = _OUT[dialect]
        self.params: dict[str, Any] = {}
        self.counter = 0
        self._sa = None

    # -- errors and names

    def error(self, message: str, node: exp.Expression | None = None) -> AdqlError:
        line = column = None
        starts = [n.meta["start"] for n in node.walk() if "start" in (n.meta or {})] \
            if node is not None else []
        if starts:  # the first character of the offending part
            start = min(starts)
            line = self.text.count("\n", 0, start) + 1
            column = start - (self.text.rfind("\n", 0, start) + 1) + 1
        return AdqlError(message, line, column)

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def param(self, value: Any) -> exp.Expression:
        name = self.fresh("p")
        self.params[name] = value
        return _Raw(this=f":{name}")

    def s(self, value: _Val | exp.Expression) -> str:
        node = value.sql if isinstance(value, _Val) else value
        return node.sql(dialect=self.out)

    def double(self, number: str) -> str:
        """A float literal as a double: PostgreSQL would make it NUMERIC (a Decimal)."""
        return f"CAST({number} AS DOUBLE PRECISION)" if self.pg else number

    @staticmethod
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    # -- statements

    def statement(self, node: exp.Expression, scope: _Scope | None
                  ) -> tuple[exp.Expression, list[tuple[str, _Val]]]:
        if isinstance(node, exp.Subquery) and not node.args.get("alias"):
            return self.statement(node.this, scope)
        if isinstance(node, (exp.Union, exp.Intersect, exp.Except)):
            return self.set_operation(node, scope)
        if isinstance(node, exp.Select):
            return self.select(node, scope)
        raise self.error("only SELECT queries are allowed", node)

    def set_operation(self, node, scope):
        left, left_cols = self.statement(node.this, scope)
        right, right_cols = self.statement(node.expression, scope)
        if len(left_cols) != len(right_cols):
            raise self.error(f"the two sides of {type(node).__name__.upper()} have different "
                             "numbers of columns", node)
        out = type(node)(this=left, expression=right, distinct=node.args.get("distinct"))
        names = {name.lower(): i for i, (name, _) in enumerate(left_cols)}
        order = node.args.get("order")
        if order is not None:
            items = []
            for ordered in order.expressions:
                target = ordered.this
                if isinstance(target, exp.Column) and not target.table and \
                        target.name.lower() in names:
                    ref = _Raw(this=self.q(left_cols[names[target.name.lower()]][0]))
                elif isinstance(target, exp.Literal) and not target.is_string:
                    ref = exp.Literal.number(self.position(target, len(left_cols)))
                else:
                    raise self.error("ORDER BY of a set operation takes output column names "
                                     "or positions", target)
                items.append(exp.Ordered(this=ref, desc=bool(ordered.args.get("desc"))))
            out.set("order", exp.Order(expressions=items))
        self.limit_offset(node, out)
        return out, left_cols

    def position(self, literal: exp.Literal, count: int) -> int:
        if not _NUMBER.fullmatch(literal.this) or not literal.this.isdigit():
            raise self.error("a column position is a whole number", literal)
        pos = int(literal.this)
        if not 1 <= pos <= count:
            raise self.error(f"there is no output column {pos}", literal)
        return pos

    def limit_offset(self, node, out) -> None:
        for key, cls in (("limit", exp.Limit), ("offset", exp.Offset)):
            item = node.args.get(key)
            if item is None:
                continue
            value = item.args.get("expression") or item.this
            if not (isinstance(value, exp.Literal) and not value.is_string
                    and value.this.isdigit()):
                raise self.error(f"{'TOP' if key == 'limit' else 'OFFSET'} takes a whole number",
                                 item)
            out.set(key, cls(expression=exp.Literal.number(int(value.this))))

    def select(self, node: exp.Select, parent: _Scope | None):
        allowed = ("expressions", "from_", "joins", "where", "group", "having", "order",
                   "limit", "offset", "distinct")
        for key, value in node.args.items():
            if key not in allowed and value:
                raise self.error(f"{key.upper()} is not part of ADQL", node)
        scope = _Scope(sources=[], parent=parent)
        out = exp.Select()
        from_ = node.args.get("from_")
        if from_ is not None:
            source, sql = self.from_item(from_.this)
            scope.sources.append(source)
            out.set("from_", exp.From(this=_Raw(this=sql)))
        joins = []
        pending_on = []
        for join in node.args.get("joins") or []:
            source, sql = self.from_item(join.this)
            left_sources = list(scope.sources)
            scope.sources.append(source)
            new = exp.Join(this=_Raw(this=sql))
            for key in ("side", "kind"):
                if join.args.get(key):
                    new.set(key, join.args[key])
            using = [u.name for u in join.args.get("using") or []]
            if str(join.args.get("method") or "").upper() == "NATURAL":
                right_names = {c.name.lower() for _, c in source.columns}
                using = [c.name for s in left_sources for _, c in s.columns
                         if c.name.lower() in right_names and c.name.lower() not in scope.using]
            if using:
                conditions = []
                for name in using:
                    left = next(((s, s.find(name, False)) for s in left_sources
                                 if s.find(name, False)), None)
                    right = source.find(name, False)
                    if left is None or right is None:
                        raise self.error(f'column "{name}" of USING is not in both tables',
                                         join)
                    conditions.append(f"{self.q(left[0].alias)}.{self.q(left[1][0])} = "
                                      f"{self.q(source.alias)}.{self.q(right[0])}")
                    scope.using[name.lower()] = (left[0], left[1][0], left[1][1])
                    source.hidden.add(right[1].name.lower())
                new.set("on", _Raw(this="(" + " AND ".join(conditions) + ")"))
                if not new.args.get("kind") or str(new.args["kind"]).upper() == "CROSS":
                    new.set("kind", "INNER" if not new.args.get("side") else None)
            elif join.args.get("on") is not None:
                pending_on.append((new, join.args["on"]))
            joins.append(new)
        for new, on in pending_on:
            new.set("on", self.boolean(on, scope))
        if joins:
            out.set("joins", joins)
        if node.args.get("distinct"):
            if node.args["distinct"].args.get("on"):
                raise self.error("DISTINCT ON is not part of ADQL", node)
            out.set("distinct", exp.Distinct())

        # the select list: stars expanded, every item named
        items: list[tuple[str, _Val, bool]] = []  # (name, value, explicit alias)
        for item in node.expressions:
            if isinstance(item, exp.Star) or (isinstance(item, exp.Column)
                                               and isinstance(item.this, exp.Star)):
                items.extend((n, v, False) for n, v in self.star(item, scope))
                continue
            alias = None
            if isinstance(item, exp.Alias):
                alias, item = item.alias, item.this
                if ":" in alias:
                    raise self.error("a column alias may not contain “:”", item)
            value = self.value(item, scope)
            items.append((alias or value.name or "expr", value, alias is not None))
        if not items:
            raise self.error("the select list is empty", node)
        names, seen = [], set()
        for name, _, _ in items:
            base, n, candidate = name, 1, name
            while candidate.lower() in seen:
                n += 1
                candidate = f"{base}_{n}"
            seen.add(candidate.lower())
            names.append(candidate)
        out.set("expressions", [exp.Alias(this=v.sql, alias=_Raw(this=self.q(n)))
                                for n, (_, v, _) in zip(names, items, strict=True)])
        out.meta["aggregate"] = any(v.aggregate for _, v, _ in items)
        for (name, value, explicit), out_name in zip(items, names, strict=True):
            if explicit:
                scope.aliases.setdefault(name.lower(), dataclasses.replace(
                    value, sql=_Raw(this=self.q(out_name))))
        # substituted expressions for aliases used inside GROUP BY / HAVING / ORDER BY terms
        expr_aliases = {name.lower(): value for name, value, explicit in items if explicit}

        if node.args.get("where") is not None:
            out.set("where", exp.Where(this=self.boolean(node.args["where"].this, scope)))
        if node.args.get("group") is not None:
            group = []
            for g in node.args["group"].expressions:
                if isinstance(g, exp.Literal) and not g.is_string:
                    group.append(exp.Literal.number(self.position(g, len(items))))
                elif isinstance(g, exp.Column) and not g.table and self.lookup(
                        g, scope, quiet=True) is None and g.name.lower() in expr_aliases:
                    group.append(expr_aliases[g.name.lower()].sql)
                else:
                    group.append(self.value(g, scope, expr_aliases).sql)
            out.set("group", exp.Group(expressions=group))
        if node.args.get("having") is not None:
            out.set("having", exp.Having(this=self.boolean(node.args["having"].this, scope,
                                                           expr_aliases)))
        if node.args.get("order") is not None:
            ordered_items = []
            lowered = {n.lower(): n for n in names}
            for ordered in node.args["order"].expressions:
                target = ordered.this
                if isinstance(target, exp.Literal) and not target.is_string:
                    ref = exp.Literal.number(self.position(target, len(items)))
                elif isinstance(target, exp.Column) and not target.table and \
                        target.name.lower() in lowered and (
                            target.name.lower() in expr_aliases
                            or self.lookup(target, scope, quiet=True) is not None):
                    ref = _Raw(this=self.q(lowered[target.name.lower()]))
                else:
                    ref = self.value(target, scope, expr_aliases).sql
                ordered_items.append(exp.Ordered(this=ref, desc=bool(ordered.args.get("desc"))))
            out.set("order", exp.Order(expressions=ordered_items))
        self.limit_offset(node, out)
        return out, [(n, v) for n, (_, v, _) in zip(names, items, strict=True)]

    def star(self, item, scope: _Scope) -> list[tuple[str, _Val]]:
        if isinstance(item, exp.Column) and item.table:
            sources = [self.qualified(item, scope.sources)]
        else:
            sources = scope.sources
        if not sources:
            raise self.error("SELECT * needs a FROM clause", item)
        out = []
        for source in sources:
            hidden = source.hidden if not (isinstance(item, exp.Column) and item.table) else set()
            for sql_name, col in source.columns:
                if col.name.lower() in hidden:
                    continue
                out.append((col.name, self.column_val(source, sql_name, col)))
        return out

    def qualified(self, column: exp.Column, sources: list[_Source]) -> _Source:
        parts = [p for p in (column.args.get("catalog"), column.args.get("db"),
                             column.args.get("table")) if p is not None]
        qualifier = ".".join(p.name.lower() for p in parts)
        for source in sources:
            if qualifier in source.qualifiers:
                return source
        raise self.error(f'unknown table "{qualifier}" in a column reference', column)

    # -- FROM

    def from_item(self, node: exp.Expression) -> tuple[_Source, str]:
        if isinstance(node, exp.Table):
            if isinstance(node.this, (exp.Anonymous, exp.Func)) or node.args.get("joins"):
                raise self.error("table functions are not allowed", node)
            table = self.table(node)
            alias_node = node.args.get("alias")
            alias = self.fresh("t")
            if alias_node is not None and alias_node.this is not None:
                if alias_node.args.get("columns"):
                    raise self.error("column aliases in FROM are not supported", node)
                qualifiers = {alias_node.name.lower()}
            else:
                bare = table.name.split(".")[-1].lower()
                qualifiers = {bare, table.name.lower()}
            source = _Source(alias=alias, qualifiers=qualifiers,
                             columns=[(c.sql_name, c) for c in table.columns], table=table)
            return source, f"{self.table_sql(table)} AS {self.q(alias)}"
        if isinstance(node, exp.Subquery):
            alias_node = node.args.get("alias")
            if alias_node is None or not alias_node.name:
                raise self.error("a subquery in FROM needs an alias", node)
            inner, cols = self.statement(node.this, None)
            alias = self.fresh("t")
            source = _Source(alias=alias, qualifiers={alias_node.name.lower()},
                             columns=[(name, self.output_column(name, v)) for name, v in cols])
            return source, f"({self.s(inner)}) AS {self.q(alias)}"
        raise self.error("this kind of FROM item is not supported", node)

    def table(self, node: exp.Table) -> Table:
        parts = [p.name for p in (node.args.get("catalog"), node.args.get("db"), node.this)
                 if p is not None]
        name = ".".join(parts)
        lowered = name.lower()
        if len(parts) > 1 and parts[0].lower() in FORBIDDEN_SCHEMAS or \
                parts[-1].lower().startswith(("sqlite_", "pg_")):
            raise self.error(f'table "{name}" is not available: only the tables published in '
                             "TAP_SCHEMA may be queried", node)
        if lowered in self.tables:
            return self.tables[lowered]
        if len(parts) == 1:
            matches = [t for k, t in self.tables.items() if k.split(".")[-1] == lowered]
            if len(matches) == 1:
                return matches[0]
        close = difflib.get_close_matches(lowered, list(self.tables), n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        raise self.error(f'unknown table "{name}"{hint}', node)

    def table_sql(self, table: Table) -> str:
        source = table.source
        if source is None:
            raise AdqlError(f'table "{table.name}" cannot be queried')
        if self._sa is None:
            self._sa = _sa_dialect(self.dialect)
        if isinstance(source, sa.Table):
            return self._sa.identifier_preparer.format_table(source)
        renames: dict[Any, Any] = {}

        def rename(element, **_):
            if isinstance(element, sa.sql.elements.BindParameter):
                if element not in renames:
                    renames[element] = sa.bindparam(
                        self.fresh("s"), value=element.effective_value, type_=element.type,
                        expanding=element.expanding)
                return renames[element]
            return None

        renamed = visitors.replacement_traverse(source, {}, rename)
        compiled = renamed.compile(dialect=self._sa, compile_kwargs={"render_postcompile": True})
        self.params.update(compiled.params)
        return "(" + str(compiled) + ")"

    # -- columns

    def column_val(self, source: _Source, sql_name: str, col: Column) -> _Val:
        return _Val(sql=_Raw(this=f"{self.q(source.alias)}.{self.q(sql_name)}"),
                    datatype=col.datatype, arraysize=col.arraysize, xtype=col.xtype,
                    unit=col.unit, ucd=col.ucd, column=col, source=source, name=col.name)

    def lookup(self, node: exp.Column, scope: _Scope, quiet: bool = False) -> _Val | None:
        ident = node.this
        name, quoted = ident.name, bool(ident.args.get("quoted"))
        qualified = bool(node.table)
        level: _Scope | None = scope
        while level is not None:
            if qualified:
                try:
                    source = self.qualified(node, level.sources)
                except AdqlError:
                    level = level.parent
                    continue
                found = source.find(name, quoted)
                if found is None:
                    if quiet:
                        return None
                    raise self.unknown_column(node, [source])
                return self.column_val(source, *found)
            if not quoted and name.lower() in level.using:
                source, sql_name, col = level.using[name.lower()]
                return self.column_val(source, sql_name, col)
            hits = [(s, f) for s in level.sources if (f := s.find(name, quoted))]
            if len(hits) > 1:
                raise self.error(f'column "{name}" is ambiguous: qualify it with its table',
                                 node)
            if hits:
                return self.column_val(hits[0][0], *hits[0][1])
            level = level.parent
        if quiet:
            return None
        if qualified:
            parts = [p.name for p in (node.args.get("catalog"), node.args.get("db"),
                                      node.args.get("table")) if p is not None]
            raise self.error(f'unknown table "{".".join(parts)}" in a column reference', node)
        raise self.unknown_column(node, scope.sources)

    def unknown_column(self, node: exp.Column, sources: list[_Source]) -> AdqlError:
        name = node.this.name
        names = [c.name for s in sources for _, c in s.columns]
        close = difflib.get_close_matches(name.lower(), [n.lower() for n in names], n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        where = ""
        if len(sources) == 1 and sources[0].table is not None:
            where = f" in {sources[0].table.name}"
        return self.error(f'unknown column "{name}"{where}{hint}', node)

    def output_column(self, name: str, value: _Val) -> Column:
        if value.column is not None:
            return dataclasses.replace(value.column, name=name, sql=None)
        return Column(name=name, datatype=value.datatype,
                      arraysize=value.arraysize or ("*" if value.datatype == "char" else None),
                      xtype=value.xtype, unit=value.unit, ucd=value.ucd)

    # -- expressions

    def boolean(self, node, scope, aliases=None) -> exp.Expression:
        value = self.value(node, scope, aliases)
        if value.datatype != "boolean":
            raise self.error("a condition is expected here (a comparison, CONTAINS(...) = 1, "
                             "...)", node)
        return value.sql

    def value(self, node: exp.Expression, scope: _Scope,
              aliases: dict[str, _Val] | None = None) -> _Val:
        result = self.expr(node, scope, aliases)
        if not isinstance(result, _Val):
            raise self.error("a geometry value cannot be used here (use COORD1, COORD2, "
                             "DISTANCE, CONTAINS or INTERSECTS)", node)
        return result

    def expr(self, node, scope, aliases=None) -> _Val | _Geom:
        result = self._expr(node, scope, aliases)
        if node.args.get("negate") and isinstance(result, _Val):  # x NOT LIKE / NOT IN ...
            return dataclasses.replace(result, sql=exp.Not(this=exp.Paren(this=result.sql)))
        return result

    def _expr(self, node, scope, aliases=None) -> _Val | _Geom:  # noqa: C901 - one dispatch
        v = lambda n: self.value(n, scope, aliases)  # noqa: E731
        if isinstance(node, exp.Paren):
            inner = self.expr(node.this, scope, aliases)
            if isinstance(inner, _Val):
                return dataclasses.replace(inner, sql=exp.Paren(this=inner.sql), column=None)
            return inner
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                raise self.error("* is only allowed in the select list and COUNT(*)", node)
            if aliases and not node.table and node.name.lower() in aliases and \
                    self.lookup(node, scope, quiet=True) is None:
                return aliases[node.name.lower()]
            found = self.lookup(node, scope)
            if found.column is not None and found.column.xtype in (
                    "polygon", "circle", "region", "moc") or (
                    found.column is not None and found.column.name.lower() == "s_region"):
                return _Region(found, node)
            return found
        if isinstance(node, exp.Literal):
            if node.is_string:
                return _Val(sql=self.param(node.this), datatype="char", arraysize="*",
                            text=node.this, name="expr")
            if not _NUMBER.fullmatch(node.this):
                raise self.error(f"not a number: {node.this}", node)
            is_int = re.fullmatch(r"\d+", node.this) is not None
            value = int(node.this) if is_int else float(node.this)
            return _Val(sql=_Raw(this=node.this if is_int else self.double(node.this)),
                        datatype="long" if is_int else "double", const=value, name="expr")
        if isinstance(node, exp.Null):
            return _Val(sql=exp.Null(), datatype="char", name="expr")
        if isinstance(node, exp.Boolean):
            return _Val(sql=_Raw(this="(1 = 1)" if node.this else "(1 = 0)"),
                        datatype="boolean", name="expr")
        if isinstance(node, exp.Neg):
            inner = v(node.this)
            return dataclasses.replace(inner, sql=exp.Neg(this=inner.sql), column=None,
                                       const=None if inner.const is None else -inner.const,
                                       name="expr")
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
            a, b = v(node.this), v(node.expression)
            for side in (a, b):
                if side.datatype in ("char", "boolean"):
                    raise self.error("arithmetic needs numbers", node)
            const = None
            if a.const is not None and b.const is not None:
                try:
                    const = {exp.Add: lambda: a.const + b.const,
                             exp.Sub: lambda: a.const - b.const,
                             exp.Mul: lambda: a.const * b.const,
                             exp.Div: lambda: a.const / b.const}[type(node)]()
                except ZeroDivisionError:
                    const = None
                if isinstance(node, exp.Div) and isinstance(a.const, int) and isinstance(
                        b.const, int) and b.const:
                    const = int(a.const / b.const)
            integer = a.datatype in _INTEGER_TYPES and b.datatype in _INTEGER_TYPES
            unit = a.unit if isinstance(node, (exp.Add, exp.Sub)) else None
            sql = (_Raw(this=f"({self.s(a)} / {self.s(b)})") if isinstance(node, exp.Div)
                   else type(node)(this=a.sql, expression=b.sql))  # no transpiler's typed /
            return _Val(sql=sql, datatype="long" if integer else "double", const=const,
                        name="expr",
                        unit=unit, aggregate=a.aggregate or b.aggregate)
        if isinstance(node, exp.Mod):  # MOD(a, b) parses as the % operator
            return self.function("MOD", exp.Anonymous(this="MOD", expressions=[
                node.this, node.expression]), scope, aliases)
        if isinstance(node, exp.DPipe):
            a, b = v(node.this), v(node.expression)
            return _Val(sql=exp.DPipe(this=a.sql, expression=b.sql), datatype="char",
                        arraysize="*", name="expr")
        if isinstance(node, (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE)):
            return self.comparison(node, scope, aliases)
        if isinstance(node, (exp.And, exp.Or)):
            a = self.boolean(node.this, scope, aliases)
            b = self.boolean(node.expression, scope, aliases)
            return _Val(sql=type(node)(this=a, expression=b), datatype="boolean", name="expr")
        if isinstance(node, exp.Not):
            return _Val(sql=exp.Not(this=self.boolean(node.this, scope, aliases)),
                        datatype="boolean", name="expr")
        if isinstance(node, exp.Between):
            a, lo, hi = v(node.this), v(node.args["low"]), v(node.args["high"])
            return _Val(sql=exp.Between(this=a.sql, low=lo.sql, high=hi.sql),
                        datatype="boolean", name="expr")
        if isinstance(node, (exp.Like, exp.ILike)):
            return self.like(node, v)
        if isinstance(node, exp.Escape):
            raise self.error("LIKE ... ESCAPE is not supported", node)
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise self.error("IS takes NULL or NOT NULL", node)
            a = v(node.this)
            return _Val(sql=exp.Is(this=a.sql, expression=exp.Null()), datatype="boolean",
                        name="expr")
        if isinstance(node, exp.In):
            a = v(node.this)
            query = node.args.get("query")
            if query is not None:
                inner, cols = self.statement(query, scope)
                if len(cols) != 1:
                    raise self.error("a subquery after IN returns one column", query)
                return _Val(sql=_Raw(this=f"({self.s(a)} IN ({self.s(inner)}))"),
                            datatype="boolean", name="expr")
            if node.args.get("unnest") or node.args.get("field"):
                raise self.error("this form of IN is not supported", node)
            values = [v(e).sql for e in node.expressions]
            return _Val(sql=exp.In(this=a.sql, expressions=values), datatype="boolean",
                        name="expr")
        if isinstance(node, exp.Exists):
            inner, _ = self.statement(node.this, scope)
            return _Val(sql=_Raw(this=f"(EXISTS ({self.s(inner)}))"), datatype="boolean",
                        name="expr")
        if isinstance(node, exp.Subquery):
            if node.args.get("alias"):
                raise self.error("a subquery here takes no alias", node)
            inner, cols = self.statement(node.this, scope)
            if len(cols) != 1:
                raise self.error("a scalar subquery returns one column", node)
            col = self.output_column(cols[0][0], cols[0][1])
            return _Val(sql=_Raw(this=f"({self.s(inner)})"), datatype=col.datatype,
                        arraysize=col.arraysize, unit=col.unit, ucd=col.ucd, name=cols[0][0])
        if isinstance(node, exp.Case):
            operand = v(node.this) if node.this is not None else None
            ifs, first = [], None
            for branch in node.args.get("ifs") or []:
                cond = v(branch.this).sql if operand is not None else self.boolean(
                    branch.this, scope, aliases)
                then = v(branch.args["true"])
                first = first or then
                ifs.append(exp.If(this=cond, true=then.sql))
            default = node.args.get("default")
            other = v(default) if default is not None else None
            first = first or other
            return _Val(sql=exp.Case(this=operand.sql if operand else None, ifs=ifs,
                                     default=other.sql if other else None),
                        datatype=first.datatype if first else "char",
                        arraysize=first.arraysize if first else None,
                        unit=first.unit if first else None, name="expr")
        if isinstance(node, exp.Cast):
            return self.cast(node, v)
        if isinstance(node, exp.Coalesce):
            args = [v(a) for a in _fargs(node)]
            return dataclasses.replace(args[0], sql=exp.Coalesce(
                this=args[0].sql, expressions=[a.sql for a in args[1:]]), column=None,
                name="coalesce")
        name = _fname(node)
        if name is not None:
            return self.function(name, node, scope, aliases)
        if isinstance(node, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
            raise self.error("a subquery needs parentheses here", node)
        raise self.error(f"{type(node).__name__} is not supported in ADQL", node)

    def like(self, node, v) -> _Val:
        a, pattern = v(node.this), v(node.expression)
        insensitive = isinstance(node, exp.ILike)
        if self.pg:
            op = "ILIKE" if insensitive else "LIKE"
            return _Val(sql=_Raw(this=f"({self.s(a)} {op} {self.s(pattern)})"),
                        datatype="boolean", name="expr")
        if insensitive:  # SQLite's LIKE ignores ASCII case; lower() handles the rest
            return _Val(sql=_Raw(this=f"(lower({self.s(a)}) LIKE lower({self.s(pattern)}))"),
                        datatype="boolean", name="expr")
        if pattern.text is not None:  # a case-sensitive literal pattern: GLOB, index-friendly
            glob = "".join({"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}.get(ch, ch)
                           for ch in pattern.text)
            key = self.s(pattern)[1:]
            self.params[key] = glob
            return _Val(sql=_Raw(this=f"({self.s(a)} GLOB {self.s(pattern)})"),
                        datatype="boolean", name="expr")
        return _Val(sql=_Raw(this=f"(adql_like({self.s(a)}, {self.s(pattern)}) = 1)"),
                    datatype="boolean", name="expr")

    def cast(self, node: exp.Cast, v) -> _Val:
        to = node.args["to"]
        kind = to.this
        if kind not in _CAST_TYPES:
            raise self.error(f"CAST to {to.sql()} is not supported (SMALLINT, INTEGER, BIGINT, "
                             "REAL, DOUBLE PRECISION, CHAR(n), VARCHAR(n), TIMESTAMP)", node)
        datatype, pg_type, sqlite_type = _CAST_TYPES[kind]
        a = v(node.this)
        size = None
        if to.expressions:
            size_node = to.expressions[0].this
            if not (isinstance(size_node, exp.Literal) and size_node.this.isdigit()):
                raise self.error("a string length is a whole number", node)
            size = int(size_node.this)
            pg_type = f"{pg_type}({size})"
        xtype = "timestamp" if kind == exp.DataType.Type.TIMESTAMP else None
        if self.pg:
            sql = f"CAST({self.s(a)} AS {pg_type})"
        elif sqlite_type is None:
            sql = f"({self.s(a)})"
        elif size is not None:
            sql = f"substr(CAST({self.s(a)} AS TEXT), 1, {size})"
        else:
            sql = f"CAST({self.s(a)} AS {sqlite_type})"
        arraysize = (f"{size}" if kind == exp.DataType.Type.CHAR else f"{size}*") if size else (
            "*" if datatype == "char" else None)
        return _Val(sql=_Raw(this=sql), datatype=datatype, arraysize=arraysize, xtype=xtype,
                    unit=a.unit, name=a.name or "expr")

    # -- functions

    def function(self, name: str, node, scope, aliases) -> _Val | _Geom:
        args = _fargs(node)
        v = lambda n: self.value(n, scope, aliases)  # noqa: E731

        def arity(*counts):
            if len(args) not in counts:
                want = " or ".join(str(c) for c in counts)
                raise self.error(f"{name} takes {want} argument(s), not {len(args)}", node)

        if name in _GEOMETRY or name in ("CONTAINS", "INTERSECTS", "DISTANCE", "COORD1",
                                         "COORD2", "AREA", "COORDSYS"):
            return self.geometry_function(name, node, args, scope, aliases)
        if name in ("COUNT", "SUM", "AVG", "MIN", "MAX"):
            return self.aggregate(name, node, args, v)
        if name in _MATH1:
            arity(1)
            a = v(args[0])
            self.numeric(a, node, name)
            keep = name in ("ABS", "CEILING", "FLOOR") and a.datatype in _INTEGER_TYPES
            unit = {"DEGREES": "deg", "RADIANS": "rad"}.get(name, a.unit if name in (
                "ABS", "CEILING", "FLOOR") else None)
            return _Val(sql=exp.Anonymous(this=_MATH1[name], expressions=[a.sql]),
                        datatype=a.datatype if keep else "double", unit=unit,
                        name=name.lower(), aggregate=a.aggregate)
        if name in ("ATAN2", "POWER"):
            arity(2)
            a, b = v(args[0]), v(args[1])
            return _Val(sql=exp.Anonymous(this=name, expressions=[a.sql, b.sql]),
                        name=name.lower())
        if name == "MOD":
            arity(2)
            a, b = v(args[0]), v(args[1])
            integer = a.datatype in _INTEGER_TYPES and b.datatype in _INTEGER_TYPES
            if self.pg and not integer:
                sql = (f"CAST(MOD(CAST({self.s(a)} AS NUMERIC), CAST({self.s(b)} AS NUMERIC)) "
                       "AS DOUBLE PRECISION)")
            else:
                sql = f"MOD({self.s(a)}, {self.s(b)})"
            return _Val(sql=_Raw(this=sql), datatype="long" if integer else "double",
                        name="mod")
        if name == "PI":
            arity(0)
            return _Val(sql=_Raw(this="PI()"), const=math.pi, name="pi")
        if name == "RAND":
            arity(0, 1)
            sql = "RANDOM()" if self.pg else "(RANDOM() / 18446744073709551616.0 + 0.5)"
            return _Val(sql=_Raw(this=sql), name="rand")
        if name in ("ROUND", "TRUNCATE"):
            arity(1, 2)
            a = v(args[0])
            self.numeric(a, node, name)
            digits = 0
            if len(args) == 2:
                d = v(args[1])
                if d.const is None or not isinstance(d.const, int):
                    raise self.error(f"the second argument of {name} is a whole number", node)
                digits = d.const
            if name == "ROUND":
                if not digits:
                    sql = f"ROUND({self.s(a)})"
                elif self.pg:
                    sql = (f"CAST(ROUND(CAST({self.s(a)} AS NUMERIC), {digits}) "
                           "AS DOUBLE PRECISION)")
                else:
                    sql = f"ROUND({self.s(a)}, {digits})"
            else:
                scale = _num(10.0 ** digits)
                sql = (f"TRUNC({self.s(a)})" if not digits
                       else f"(TRUNC({self.s(a)} * {scale}) / {scale})")
            return _Val(sql=_Raw(this=sql), datatype="double", unit=a.unit, name=name.lower())
        if name in ("LOWER", "UPPER"):
            arity(1)
            a = v(args[0])
            return _Val(sql=exp.Anonymous(this=name, expressions=[a.sql]), datatype="char",
                        arraysize="*", name=name.lower())
        raise self.error(f"function {name} is not supported", node)

    def numeric(self, value: _Val, node, name: str) -> None:
        if value.datatype in ("char", "boolean"):
            raise self.error(f"{name} needs a number", node)

    def aggregate(self, name, node, args, v) -> _Val:
        if len(args) != 1:
            raise self.error(f"{name} takes one argument", node)
        arg = args[0]
        distinct = ""
        if isinstance(arg, exp.Distinct):
            if len(arg.expressions) != 1:
                raise self.error(f"{name}(DISTINCT ...) takes one expression", node)
            distinct, arg = "DISTINCT ", arg.expressions[0]
        if isinstance(arg, exp.Star):
            if name != "COUNT" or distinct:
                raise self.error("* is only allowed in COUNT(*)", node)
            return _Val(sql=_Raw(this="COUNT(*)"), datatype="long", name="count",
                        aggregate=True)
        a = v(arg)
        if a.aggregate:
            raise self.error("aggregate functions cannot be nested", node)
        sql = _Raw(this=f"{name}({distinct}{self.s(a)})")
        if name == "COUNT":
            return _Val(sql=sql, datatype="long", name="count", aggregate=True)
        if name in ("SUM", "AVG"):
            self.numeric(a, node, name)
        if name in ("MIN", "MAX"):
            return dataclasses.replace(a, sql=sql, name=a.name or name.lower(), aggregate=True,
                                       source=None, const=None)
        datatype = "long" if name == "SUM" and a.datatype in _INTEGER_TYPES else "double"
        return _Val(sql=sql, datatype=datatype, unit=a.unit, ucd=a.ucd, name=name.lower(),
                    aggregate=True)

    # -- geometry

    def coordsys(self, args: list, node) -> list:
        if args and isinstance(args[0], exp.Literal) and args[0].is_string:
            frame = args[0].this.strip().upper()
            if frame and frame.split()[0] not in ("ICRS", "UNKNOWNFRAME"):
                raise self.error(f'coordinate system "{args[0].this}" is not supported (only '
                                 "ICRS)", args[0])
            return args[1:]
        return args

    def const_of(self, value: _Val, node, what: str) -> float:
        if value.const is None:
            raise self.error(f"{what} must be a constant number", node)
        return float(value.const)

    def geometry_function(self, name, node, args, scope, aliases) -> _Val | _Geom:
        v = lambda n: self.value(n, scope, aliases)  # noqa: E731
        g = lambda n: self.expr(n, scope, aliases)  # noqa: E731
        if name == "POINT":
            args = self.coordsys(args, node)
            if len(args) != 2:
                raise self.error("POINT takes (ra, dec)", node)
            return _Point(v(args[0]), v(args[1]), node)
        if name == "CIRCLE":
            args = self.coordsys(args, node)
            if len(args) == 2:
                centre = g(args[0])
                if not isinstance(centre, _Point):
                    raise self.error("CIRCLE(point, radius) needs a POINT", node)
                return _Circle(centre, v(args[1]), node)
            if len(args) != 3:
                raise self.error("CIRCLE takes (ra, dec, radius)", node)
            return _Circle(_Point(v(args[0]), v(args[1]), node), v(args[2]), node)
        if name == "BOX":
            args = self.coordsys(args, node)
            if len(args) == 3:
                centre = g(args[0])
                if not isinstance(centre, _Point) or not centre.const:
                    raise self.error("BOX needs a constant centre", node)
                numbers = [centre.ra.const, centre.dec.const]
                rest = args[1:]
            elif len(args) == 4:
                numbers, rest = [], args
            else:
                raise self.error("BOX takes (ra, dec, width, height)", node)
            numbers += [self.const_of(v(a), a, "BOX arguments") for a in rest]
            try:
                return _Poly(geo.Polygon(geo.box_vertices(*numbers)), node)
            except ValueError as exc:
                raise self.error(f"invalid BOX: {exc}", node) from None
        if name == "POLYGON":
            args = self.coordsys(args, node)
            numbers: list[float] = []
            for a in args:
                item = g(a)
                if isinstance(item, _Point):
                    if not item.const:
                        raise self.error("POLYGON vertices must be constant", a)
                    numbers += [float(item.ra.const), float(item.dec.const)]
                elif isinstance(item, _Val):
                    numbers.append(self.const_of(item, a, "POLYGON vertices"))
                else:
                    raise self.error("POLYGON takes coordinates or points", a)
            if len(numbers) < 6 or len(numbers) % 2:
                raise self.error("POLYGON takes at least three (ra, dec) vertices", node)
            try:
                return _Poly(geo.Polygon(list(zip(numbers[::2], numbers[1::2], strict=True))),
                             node)
            except ValueError as exc:
                raise self.error(f"invalid POLYGON: {exc}", node) from None
        if name == "REGION":
            raise self.error("REGION is not supported: use CIRCLE, BOX or POLYGON", node)
        if name in ("COORD1", "COORD2"):
            if len(args) != 1:
                raise self.error(f"{name} takes one point", node)
            point = g(args[0])
            if not isinstance(point, _Point):
                raise self.error(f"{name} takes a POINT", node)
            part = point.ra if name == "COORD1" else point.dec
            return dataclasses.replace(part, unit=part.unit or "deg", name=part.name or
                                       name.lower())
        if name == "COORDSYS":
            raise self.error("COORDSYS is not supported", node)
        if name == "AREA":
            if len(args) != 1:
                raise self.error("AREA takes one shape", node)
            shape = g(args[0])
            if isinstance(shape, _Circle) and shape.centre.const and shape.radius.const \
                    is not None:
                area = geo.circle_area(float(shape.radius.const))
            elif isinstance(shape, _Poly):
                area = shape.shape.area()
            else:
                raise self.error("AREA is only supported for constant circles, boxes and "
                                 "polygons", node)
            return _Val(sql=_Raw(this=self.double(_num(area))), const=area, unit="deg**2",
                        name="area")
        if name == "DISTANCE":
            if len(args) == 4:
                p1 = _Point(v(args[0]), v(args[1]), node)
                p2 = _Point(v(args[2]), v(args[3]), node)
            elif len(args) == 2:
                p1, p2 = g(args[0]), g(args[1])
                if not (isinstance(p1, _Point) and isinstance(p2, _Point)):
                    raise self.error("DISTANCE takes two points", node)
            else:
                raise self.error("DISTANCE takes two points or four coordinates", node)
            return self.distance(p1, p2)
        # CONTAINS / INTERSECTS used as a value: 1 or 0
        predicate = self.geometry_predicate(name, node, args, scope, aliases)
        return _Val(sql=_Raw(this=f"(CASE WHEN {predicate} THEN 1 ELSE 0 END)"),
                    datatype="int", name=name.lower())

    def geometry_predicate(self, name, node, args, scope, aliases) -> str:
        if len(args) != 2:
            raise self.error(f"{name} takes two geometries", node)
        a, b = (self.expr(x, scope, aliases) for x in args)
        for item, arg in ((a, args[0]), (b, args[1])):
            if isinstance(item, _Val):
                raise self.error(f"{name} takes geometries (POINT, CIRCLE, BOX, POLYGON or a "
                                 "region column)", arg)
        if name == "INTERSECTS":
            if isinstance(b, _Point):
                a, b = b, a
            if isinstance(a, _Point):
                return self.contains(a, b, node)
            if isinstance(b, _Region) and not isinstance(a, _Region):
                a, b = b, a
            if isinstance(a, _Region):
                return self.region_intersects(a, b, node)
            shape_a, shape_b = self.const_shape(a, node), self.const_shape(b, node)
            return "(1 = 1)" if geo.shape_intersects(shape_a, shape_b) else "(1 = 0)"
        if isinstance(a, _Point):
            return self.contains(a, b, node)
        if isinstance(a, _Region):
            return self.region_inside(a, b, node)
        shape_a, shape_b = self.const_shape(a, node), self.const_shape(b, node)
        return "(1 = 1)" if geo.shape_inside(shape_a, shape_b) else "(1 = 0)"

    def const_shape(self, g: _Geom, node) -> tuple:
        if isinstance(g, _Poly):
            return ("polygon", g.shape)
        if isinstance(g, _Circle) and g.centre.const and g.radius.const is not None:
            return ("circle", float(g.centre.ra.const), float(g.centre.dec.const),
                    float(g.radius.const))
        if isinstance(g, _Point) and g.const:
            return ("point", float(g.ra.const), float(g.dec.const))
        raise self.error("this combination of geometries is not supported: one side must be "
                         "a point, a region column, or both constant", node)

    def index_of(self, point: _Point) -> str | None:
        """The spatial index that serves a test on this point, if it is a table's indexed
        position (and the index exists in this dialect)."""
        ra, dec = point.ra, point.dec
        if ra.column is None or dec.column is None or ra.source is None or \
                ra.source is not dec.source or ra.source.table is None:
            return None
        table = ra.source.table
        if (table.ra or "").lower() != ra.column.name.lower() or (
                table.dec or "").lower() != dec.column.name.lower():
            return None
        kind = table.spatial_index
        if kind in ("q3c", "pgsphere") and not self.pg:
            return None
        if kind == "healpix" and not table.healpix:
            return None
        return kind

    def contains(self, point: _Point, shape: _Geom, node) -> str:
        if isinstance(shape, _Region):
            return self.region_contains(shape, point, node)
        if isinstance(shape, _Point):
            shape = _Circle(shape, _Val(sql=_Raw(this="0.0"), const=0.0), node)
        if isinstance(shape, _Poly):
            if point.const:
                inside = shape.shape.contains(float(point.ra.const), float(point.dec.const))
                return "(1 = 1)" if inside else "(1 = 0)"
            return self.in_polygon(point, shape.shape)
        assert isinstance(shape, _Circle)
        centre, radius = shape.centre, shape.radius
        if centre.const and radius.const is not None:
            r = float(radius.const)
            if point.const:
                sep = geo.separation(float(point.ra.const), float(point.dec.const),
                                     float(centre.ra.const), float(centre.dec.const))
                return "(1 = 1)" if sep <= r else "(1 = 0)"
            return self.cone(point, float(centre.ra.const), float(centre.dec.const), r)
        if point.const and radius.const is not None:  # the circle moves with the row
            return self.cone(centre, float(point.ra.const), float(point.dec.const),
                             float(radius.const))
        return self.xmatch(point, centre, radius)

    def hav(self, ra1: str, dec1: str, ra2: str, dec2: str) -> str:
        return (f"(POWER(SIN(RADIANS(({dec1}) - ({dec2})) / 2), 2) + COS(RADIANS({dec1})) * "
                f"COS(RADIANS({dec2})) * POWER(SIN(RADIANS(({ra1}) - ({ra2})) / 2), 2))")

    def prefilter(self, point: _Point, ra: float, dec: float, radius: float) -> str | None:
        """The index step for a cone on this point: HEALPix ranges, or a Dec band."""
        kind = self.index_of(point)
        if kind == "healpix" and radius < 90:
            from astrocloud.data.catalogs.importer import HEALPIX_ORDER, healpix_ranges
            table = point.ra.source.table
            ranges = healpix_ranges(ra, dec, radius, table.healpix_order or HEALPIX_ORDER)
            pixel = f"{self.q(point.ra.source.alias)}.{self.q(table.healpix)}"
            return "(" + " OR ".join(f"{pixel} BETWEEN {lo} AND {hi}" for lo, hi in ranges) + ")"
        if radius < 90:
            return (f"{self.s(point.dec)} BETWEEN {_num(dec - radius)} AND "
                    f"{_num(dec + radius)}")
        return None

    def cone(self, point: _Point, ra: float, dec: float, radius: float) -> str:
        if radius < 0:
            return "(1 = 0)"
        kind = self.index_of(point)
        pra, pdec = self.s(point.ra), self.s(point.dec)
        if kind == "q3c":
            from astrocloud.data.catalogs.importer import Q3C_JOIN_MAX_RADIUS
            if radius <= Q3C_JOIN_MAX_RADIUS:  # the same rows, planned in a tenth of the time
                return f"q3c_join({_num(ra)}, {_num(dec)}, {pra}, {pdec}, {_num(radius)})"
            return f"q3c_radial_query({pra}, {pdec}, {_num(ra)}, {_num(dec)}, {_num(radius)})"
        if kind == "pgsphere":
            return (f"(spoint(RADIANS({pra}), RADIANS({pdec})) <@ scircle(spoint(RADIANS("
                    f"{_num(ra)}), RADIANS({_num(dec)})), RADIANS({_num(radius)})))")
        exact = (f"{self.hav(pra, pdec, _num(ra), _num(dec))} <= "
                 f"{_num(math.sin(math.radians(min(radius, 180.0)) / 2) ** 2)}")
        pre = self.prefilter(point, ra, dec, radius)
        return f"({pre} AND {exact})" if pre else f"({exact})"

    def in_polygon(self, point: _Point, poly: geo.Polygon) -> str:
        kind = self.index_of(point)
        pra, pdec = self.s(point.ra), self.s(point.dec)
        if kind == "q3c":
            coords = ", ".join(_num(x) for vertex in poly.vertices for x in vertex)
            return f"q3c_poly_query({pra}, {pdec}, ARRAY[{coords}]::double precision[])"
        if kind == "pgsphere":
            text = ",".join(f"({_num(ra)}d,{_num(dec)}d)" for ra, dec in poly.vertices)
            return f"(spoint(RADIANS({pra}), RADIANS({pdec})) <@ CAST('{{{text}}}' AS spoly))"
        # gnomonic projection around the polygon's centre, then a ray-crossing count
        cx, cy, cz = poly.centre

        def dot(v):
            return (f"({_num(v[0])} * COS(RADIANS({pdec})) * COS(RADIANS({pra})) + "
                    f"{_num(v[1])} * COS(RADIANS({pdec})) * SIN(RADIANS({pra})) + "
                    f"{_num(v[2])} * SIN(RADIANS({pdec})))")
        w = dot(poly.centre)
        u, vv = f"({dot(poly.e1)} / {w})", f"({dot(poly.e2)} / {w})"
        terms = []
        for (u1, v1), (u2, v2) in poly.edges():
            if v1 == v2:
                continue
            slope = (u2 - u1) / (v2 - v1)
            terms.append(f"CASE WHEN {vv} >= {_num(min(v1, v2))} AND {vv} < "
                         f"{_num(max(v1, v2))} AND {u} < {_num(u1 - v1 * slope)} + "
                         f"{_num(slope)} * {vv} THEN 1 ELSE 0 END")
        exact = (f"(CASE WHEN {w} > 1e-12 THEN ({' + '.join(terms) or '0'}) % 2 ELSE 0 END "
                 "= 1)")
        ra, dec, radius = poly.bounding_circle()
        pre = self.prefilter(point, ra, dec, radius)
        return f"({pre} AND {exact})" if pre else exact

    def xmatch(self, point: _Point, centre: _Point, radius: _Val) -> str:
        """CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, r)): a cross-match."""
        pra, pdec, cra, cdec = (self.s(x) for x in (point.ra, point.dec, centre.ra,
                                                     centre.dec))
        r = self.s(radius)
        kinds = (self.index_of(point), self.index_of(centre))
        if "q3c" in kinds:
            if kinds[0] == "q3c":  # q3c_join(ra1, dec1, ra2, dec2, r) probes the index of 2
                return f"q3c_join({cra}, {cdec}, {pra}, {pdec}, {r})"
            return f"q3c_join({pra}, {pdec}, {cra}, {cdec}, {r})"
        if "pgsphere" in kinds:
            if kinds[0] != "pgsphere":
                pra, pdec, cra, cdec = cra, cdec, pra, pdec
            return (f"(spoint(RADIANS({pra}), RADIANS({pdec})) <@ scircle(spoint(RADIANS("
                    f"{cra}), RADIANS({cdec})), RADIANS({r})))")
        exact = f"{self.hav(pra, pdec, cra, cdec)} <= POWER(SIN(RADIANS({r}) / 2), 2)"
        return f"({pdec} BETWEEN {cdec} - ({r}) AND {cdec} + ({r}) AND {exact})"

    def distance(self, p1: _Point, p2: _Point) -> _Val:
        meta = dict(datatype="double", unit="deg", ucd="pos.angDistance", name="distance")
        if p1.const and p2.const:
            d = geo.separation(*(float(x.const) for x in (p1.ra, p1.dec, p2.ra, p2.dec)))
            return _Val(sql=_Raw(this=self.double(_num(d))), const=d, **meta)
        a = [self.s(x) for x in (p1.ra, p1.dec, p2.ra, p2.dec)]
        kinds = (self.index_of(p1), self.index_of(p2))
        if "q3c" in kinds:
            sql = f"q3c_dist({a[0]}, {a[1]}, {a[2]}, {a[3]})"
        elif "pgsphere" in kinds:
            sql = (f"DEGREES(spoint(RADIANS({a[0]}), RADIANS({a[1]})) <-> "
                   f"spoint(RADIANS({a[2]}), RADIANS({a[3]})))")
        else:
            least = "LEAST" if self.pg else "MIN"
            sql = f"DEGREES(2 * ASIN(SQRT({least}(1.0, {self.hav(*a)}))))"
        return _Val(sql=_Raw(this=f"({sql})"), **meta)

    # -- region columns (STC-S text)

    def region_parts(self, region: _Region, node) -> tuple[str, str, str]:
        source = region.val.source
        table = source.table if source else None
        if table is None or not table.ra or not table.dec or table.column("s_fov") is None:
            raise self.error(f'the region column "{region.val.name}" cannot be searched in '
                             "this database", node)
        cols = [table.column(n) for n in (table.ra, table.dec, "s_fov")]
        return tuple(f"{self.q(source.alias)}.{self.q(c.sql_name)}" for c in cols)

    def region_contains(self, region: _Region, point: _Point, node) -> str:
        if not self.pg:
            return (f"(adql_region_contains({self.s(region.val)}, {self.s(point.ra)}, "
                    f"{self.s(point.dec)}) = 1)")
        ra, dec, fov = self.region_parts(region, node)
        return (f"({self.hav(ra, dec, self.s(point.ra), self.s(point.dec))} <= "
                f"POWER(SIN(RADIANS({fov}) / 4), 2))")

    def region_intersects(self, region: _Region, other: _Geom, node) -> str:
        if isinstance(other, _Region):
            raise self.error("INTERSECTS of two region columns is not supported", node)
        shape = self.const_shape(other, node)
        if not self.pg:
            text = self.param(geo.shape_text(shape))
            return f"(adql_region_intersects({self.s(region.val)}, {self.s(text)}) = 1)"
        ra, dec, fov = self.region_parts(region, node)
        cra, cdec, r = self.bounding(shape)
        return (f"({self.hav(ra, dec, _num(cra), _num(cdec))} <= POWER(SIN(RADIANS("
                f"{_num(r)} + {fov} / 2) / 2), 2))")

    def region_inside(self, region: _Region, other: _Geom, node) -> str:
        if isinstance(other, _Region):
            raise self.error("CONTAINS of two region columns is not supported", node)
        shape = self.const_shape(other, node)
        if not self.pg:
            text = self.param(geo.shape_text(shape))
            return f"(adql_region_inside({self.s(region.val)}, {self.s(text)}) = 1)"
        ra, dec, fov = self.region_parts(region, node)
        cra, cdec, r = self.bounding(shape)
        return (f"({r} >= {fov} / 2 AND {self.hav(ra, dec, _num(cra), _num(cdec))} <= "
                f"POWER(SIN(RADIANS({_num(r)} - {fov} / 2) / 2), 2))")

    @staticmethod
    def bounding(shape: tuple) -> tuple[float, float, float]:
        if shape[0] == "circle":
            return shape[1], shape[2], shape[3]
        if shape[0] == "point":
            return shape[1], shape[2], 0.0
        return shape[1].bounding_circle()

    # -- comparisons (where CONTAINS(...) = 1 and DISTANCE(...) < r are recognised)

    def comparison(self, node, scope, aliases) -> _Val:
        left, right = node.this, node.expression
        for geom_side, other, flip in ((left, right, False), (right, left, True)):
            name = _fname(geom_side)
            if name in ("CONTAINS", "INTERSECTS") and isinstance(node, (exp.EQ, exp.NEQ)) \
                    and isinstance(other, exp.Literal) and other.this in ("0", "1"):
                pred = self.geometry_predicate(name, geom_side, _fargs(geom_side), scope,
                                               aliases)
                truth = (other.this == "1") == isinstance(node, exp.EQ)
                return _Val(sql=_Raw(this=pred if truth else f"(NOT {pred})"),
                            datatype="boolean", name="expr")
            if name == "DISTANCE":
                below = (isinstance(node, (exp.LT, exp.LTE)) and not flip) or (
                    isinstance(node, (exp.GT, exp.GTE)) and flip)
                if below:
                    limit = self.expr(other, scope, aliases)
                    args = _fargs(geom_side)
                    points = self.distance_points(args, geom_side, scope, aliases)
                    if isinstance(limit, _Val) and points is not None:
                        p1, p2 = points
                        if limit.const is not None and p1.const != p2.const:
                            point, centre = (p2, p1) if p1.const else (p1, p2)
                            return _Val(sql=_Raw(this=self.cone(
                                point, float(centre.ra.const), float(centre.dec.const),
                                float(limit.const))), datatype="boolean", name="expr")
                        if not p1.const and not p2.const and p1.ra.source is not p2.ra.source:
                            return _Val(sql=_Raw(this=self.xmatch(p1, p2, limit)),
                                        datatype="boolean", name="expr")
        a, b = self.value(left, scope, aliases), self.value(right, scope, aliases)
        return _Val(sql=type(node)(this=a.sql, expression=b.sql), datatype="boolean",
                    name="expr")

    def distance_points(self, args, node, scope, aliases):
        v = lambda n: self.value(n, scope, aliases)  # noqa: E731
        if len(args) == 4:
            return _Point(v(args[0]), v(args[1]), node), _Point(v(args[2]), v(args[3]), node)
        if len(args) == 2:
            p1, p2 = (self.expr(a, scope, aliases) for a in args)
            if isinstance(p1, _Point) and isinstance(p2, _Point):
                return p1, p2
        return None


# ---- entry points ----------------------------------------------------------------------------


def _parse(adql: str) -> exp.Expression:
    try:
        statements = [s for s in sqlglot.parse(adql, read=_Adql) if s is not None]
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        line, col = err.get("line"), err.get("col")
        highlight = err.get("highlight") or ""
        if col is not None and highlight:
            col = max(1, col - len(highlight) + 1)
        description = err.get("description") or str(exc)
        near = f' near "{highlight}"' if highlight else ""
        raise AdqlError(f"syntax error{near}: {description}", line, col) from None
    except TokenError as exc:
        raise AdqlError(f"syntax error: {exc}") from None
    if not statements:
        raise AdqlError("the query is empty")
    if len(statements) > 1:
        raise AdqlError("only one statement is allowed (no “;”)")
    tree = statements[0]
    if not isinstance(tree, (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)):
        verb = tree.key.upper() if tree.key else "this statement"
        raise AdqlError(f"only SELECT queries are allowed, not {verb}")
    for node in tree.walk():
        if isinstance(node, (exp.Insert, exp.Update, exp.Delete, exp.Drop, exp.Create,
                             exp.Command, exp.Into)):
            raise AdqlError("only SELECT queries are allowed: this one would change data")
    return tree


def translate(adql: str, tables: Mapping[str, Table], *, dialect: str,
              maxrec: int | None = None) -> Translation:
    """Translate one ADQL query for `dialect` ("sqlite" or "postgresql"). `tables` are the
    tables the caller may read, keyed by lower-case qualified name. The LIMIT is min(TOP,
    maxrec + 1) so the caller can tell that the result overflowed. Raises AdqlError."""
    if dialect not in _OUT:
        raise ValueError(f"unsupported dialect {dialect!r}")
    if not adql or not adql.strip():
        raise AdqlError("the query is empty")
    tree = _parse(adql)
    translator = _Translator(adql, tables, dialect)
    out, cols = translator.statement(tree, None)
    top = out.args.get("limit")
    top_n = int(top.expression.this) if top is not None else None
    candidates = [n for n in (top_n, None if maxrec is None else maxrec + 1) if n is not None]
    limit = min(candidates) if candidates else None
    if limit is not None:
        out.set("limit", exp.Limit(expression=exp.Literal.number(limit)))
    columns = [translator.output_column(name, value) for name, value in cols]
    sql = out.sql(dialect=translator.out)
    return Translation(sql=sql, params=translator.params, columns=columns, limit=limit,
                       plain=_plain(out, sql))


def _plain(tree: exp.Expression, sql: str) -> bool:
    source = tree.args.get("from_")
    if not isinstance(tree, exp.Select) or not isinstance(source, exp.From):
        return False
    if any(tree.args.get(k) for k in ("where", "group", "having", "order", "distinct", "joins",
                                      "with", "qualify", "laterals")):
        return False
    # one table, not a SELECT applying access rules (a literal text that looks like one only
    # makes the answer a cautious False)
    if not isinstance(source.this, _Raw) or "(" in source.this.this or \
            len(re.findall(r"\bselect\b", sql, re.IGNORECASE)) != 1:
        return False
    if tree.meta.get("aggregate", True):
        return False
    nested = (exp.Select, exp.Subquery, exp.AggFunc, exp.Window, exp.Union)
    return not any(isinstance(node, nested) for node in tree.walk() if node is not tree)


# ---- SQLite functions --------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _region(text: str) -> tuple | None:
    return geo.parse_stcs(text)


def _region_contains(text, ra, dec):
    shape = _region(text) if isinstance(text, str) else None
    if shape is None or ra is None or dec is None:
        return None
    return int(geo.shape_contains_point(shape, float(ra), float(dec)))


def _region_intersects(text, other):
    a = _region(text) if isinstance(text, str) else None
    b = _region(other) if isinstance(other, str) else None
    if a is None or b is None:
        return None
    return int(geo.shape_intersects(a, b))


def _region_inside(text, other):
    a = _region(text) if isinstance(text, str) else None
    b = _region(other) if isinstance(other, str) else None
    if a is None or b is None:
        return None
    return int(geo.shape_inside(a, b))


@lru_cache(maxsize=256)
def _like_regex(pattern: str) -> re.Pattern:
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.DOTALL)


def _like(value, pattern):
    if value is None or pattern is None:
        return None
    return int(_like_regex(str(pattern)).fullmatch(str(value)) is not None)


def install_sqlite_functions(dbapi_connection) -> None:
    """Register on a sqlite3 connection the functions the SQLite translation calls (region
    tests on STC-S text, case-sensitive LIKE with a computed pattern). Idempotent."""
    for name, n, fn in _SQLITE_FUNCTIONS:
        dbapi_connection.create_function(name, n, fn, deterministic=True)


_SQLITE_FUNCTIONS = (("adql_region_contains", 3, _region_contains),
                     ("adql_region_intersects", 2, _region_intersects),
                     ("adql_region_inside", 2, _region_inside),
                     ("adql_like", 2, _like))
#: the names of the Python functions the SQLite translation may call
SQLITE_FUNCTIONS = tuple(name for name, _, _ in _SQLITE_FUNCTIONS)
