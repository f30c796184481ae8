"""The rule language: a small, typed subset of Python expressions.

A rule is parsed with Python's own parser (`ast`), then checked against a whitelist of node
types and against the attribute types of the operation's resource, and turned into a small tree
of our own. That tree has two back-ends:

* `evaluate` runs it in Python over a subject, a resource object and the time (prerequisites,
  and the object check of a filter);
* `to_sql` compiles it into a SQLAlchemy boolean expression for a query's WHERE clause
  (filters), so counts and pagination stay right on any number of rows.

Both back-ends give the same answer: every comparison is two-valued, and a comparison with a
missing value (an anonymous subject's id, a NULL column) is false. `x == None` tests for a
missing value explicitly. See docs/security.md for the grammar and examples.
"""

from __future__ import annotations

import ast
import datetime as dt
import operator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .resources import (
    BOOL,
    DATETIME,
    DURATION,
    FLOAT,
    INT,
    NULL,
    STR,
    Attr,
    Collection,
    Relation,
    ResourceType,
    get_resource_type,
    list_of,
)

MAX_RULE_LENGTH = 2000
MAX_DEPTH = 32

SUBJECT_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "id": (INT, "the user's id (missing for anonymous visitors)"),
    "username": (STR, "the user's login name"),
    "authenticated": (BOOL, "true when signed in"),
    "institute": (STR, "the user's institute"),
    "group_ids": (list_of(INT), "ids of the groups the user belongs to"),
    "roles": (list_of(STR), "names of the user's roles (unscoped and scoped)"),
}

DURATIONS = {"days": "days", "hours": "hours", "minutes": "minutes", "weeks": "weeks"}


class RuleError(ValueError):
    """A rule that cannot be parsed or does not type-check; says where and why."""

    def __init__(self, message: str, source: str = "", col: int | None = None):
        self.reason = message
        self.col = col
        where = f" (at column {col + 1})" if col is not None else ""
        super().__init__(f"{message}{where}")


# ---- the typed tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    type: str


@dataclass(frozen=True)
class Const(Node):
    value: Any


@dataclass(frozen=True)
class SubjectAttr(Node):
    name: str


@dataclass(frozen=True)
class Now(Node):
    pass


@dataclass(frozen=True)
class ResAttr(Node):
    """A resource attribute, possibly reached through relations: path = (rel, rel, ..., attr)."""

    path: tuple[str, ...]
    rtypes: tuple[str, ...]  # the resource type at each step of the path
    nullable: bool


@dataclass(frozen=True)
class Compare(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class IsNull(Node):
    operand: Node
    negate: bool


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # "and" | "or"
    values: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class Arith(Node):
    op: str  # "+" | "-"
    left: Node
    right: Node


@dataclass(frozen=True)
class Rule:
    """A checked rule, ready to evaluate or compile."""

    source: str
    tree: Node
    resource_type: str | None

    def evaluate(self, subject, resource=None, now: dt.datetime | None = None) -> bool:
        return bool(_eval(self.tree, subject, resource, now or dt.datetime.now(dt.UTC)))

    def to_sql(self, subject, now: dt.datetime | None = None) -> sa.ColumnElement[bool]:
        if self.resource_type is None:
            raise RuleError("this rule has no resource to filter")
        rtype = get_resource_type(self.resource_type)
        return _sql(self.tree, rtype, subject, now or dt.datetime.now(dt.UTC))


TRUE_RULE_SOURCE = "true"

# ---- parsing and type checking -----------------------------------------------------------------

_CMP = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in",
}
_NUMERIC = {INT, FLOAT}
ANY = "any"  # the item type of an empty list literal


def parse_rule(source: str, resource_type: str | None, *, for_sql: bool = False) -> Rule:
    """Parse and type-check `source`; `for_sql` also insists that it compiles to SQL."""
    source = (source or "").strip()
    if not source or source.lower() == "true":
        return Rule(source=TRUE_RULE_SOURCE, tree=Const(BOOL, True), resource_type=resource_type)
    if len(source) > MAX_RULE_LENGTH:
        raise RuleError(f"a rule may be at most {MAX_RULE_LENGTH} characters long")
    # A rule typed over several lines is one expression: newlines become spaces, so columns
    # still point at the characters that were typed.
    source = source.replace("\r\n", " \n").replace("\r", " ").replace("\n", " ")
    try:
        expr = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        at_end = not exc.offset or exc.offset > len(source)
        raise RuleError(f"syntax error: {exc.msg}", source,
                        len(source) if at_end else exc.offset - 1) from None
    rtype = get_resource_type(resource_type) if resource_type else None
    tree = _Checker(source, rtype).node(expr.body, 0)
    if tree.type != BOOL:
        raise RuleError(f"a rule must be true or false, but this is a {tree.type}", source, 0)
    rule = Rule(source=source, tree=tree, resource_type=resource_type)
    if for_sql:
        if rtype is None:
            raise RuleError("a filter needs an operation that works on a resource type")
        _check_sql(tree)
    return rule


class _Checker:
    def __init__(self, source: str, rtype: ResourceType | None):
        self.source = source
        self.rtype = rtype

    def fail(self, message: str, node: ast.AST) -> RuleError:
        return RuleError(message, self.source, getattr(node, "col_offset", None))

    def node(self, n: ast.AST, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail("the rule is nested too deeply", n)
        d = depth + 1
        if isinstance(n, ast.BoolOp):
            values = tuple(self.node(v, d) for v in n.values)
            for v, src in zip(values, n.values, strict=True):
                if v.type != BOOL:
                    raise self.fail(f"'and'/'or' need true/false operands, not {v.type}", src)
            return BoolOp(BOOL, "and" if isinstance(n.op, ast.And) else "or", values)
        if isinstance(n, ast.UnaryOp):
            if isinstance(n.op, ast.Not):
                operand = self.node(n.operand, d)
                if operand.type != BOOL:
                    raise self.fail(f"'not' needs a true/false operand, not {operand.type}", n)
                return Not(BOOL, operand)
            if isinstance(n.op, ast.USub) and isinstance(n.operand, ast.Constant):
                value = n.operand.value
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return Const(INT if isinstance(value, int) else FLOAT, -value)
            raise self.fail("only 'not' and a minus sign on a number are allowed here", n)
        if isinstance(n, ast.Compare):
            if len(n.ops) != 1:
                raise self.fail("write chained comparisons with 'and' (a < b and b < c)", n)
            return self.compare(n, d)
        if isinstance(n, ast.Constant):
            return self.constant(n.value, n)
        if isinstance(n, ast.List | ast.Tuple):
            items = [self.node(e, d) for e in n.elts]
            if not all(isinstance(i, Const) for i in items):
                raise self.fail("a list may only hold literal values", n)
            types = {i.type for i in items}
            if len(types) > 1 and types != _NUMERIC:
                raise self.fail("all values of a list must have the same type", n)
            item_type = FLOAT if types == _NUMERIC else (types.pop() if types else ANY)
            return Const(list_of(item_type), [i.value for i in items])
        if isinstance(n, ast.Name | ast.Attribute):
            return self.name(n)
        if isinstance(n, ast.Call):
            return self.call(n)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add | ast.Sub):
            left, right = self.node(n.left, d), self.node(n.right, d)
            if left.type == DATETIME and right.type == DURATION:
                return Arith(DATETIME, "+" if isinstance(n.op, ast.Add) else "-", left, right)
            if left.type == DURATION and right.type == DATETIME and isinstance(n.op, ast.Add):
                return Arith(DATETIME, "+", right, left)
            raise self.fail("only a time plus or minus a duration (e.g. now - days(30))", n)
        raise self.fail(f"'{ast.unparse(n)}' is not allowed in a rule", n)

    def constant(self, value: Any, n: ast.AST) -> Const:
        if value is None:
            return Const(NULL, None)
        if isinstance(value, bool):
            return Const(BOOL, value)
        if isinstance(value, int):
            return Const(INT, value)
        if isinstance(value, float):
            return Const(FLOAT, value)
        if isinstance(value, str):
            return Const(STR, value)
        raise self.fail(f"literal {value!r} is not allowed", n)

    def call(self, n: ast.Call) -> Node:
        if not isinstance(n.func, ast.Name) or n.func.id not in DURATIONS or n.keywords:
            raise self.fail(
                "the only functions are days(n), hours(n), minutes(n) and weeks(n)", n
            )
        if len(n.args) != 1 or not isinstance(n.args[0], ast.Constant) or not isinstance(
            n.args[0].value, int | float
        ) or isinstance(n.args[0].value, bool):
            raise self.fail(f"{n.func.id}() takes one number", n)
        value = n.args[0].value
        if abs(value) > 365 * 1000 * (24 * 60 if n.func.id == "minutes" else 24):
            raise self.fail(f"{n.func.id}({value}) is out of range", n)
        return Const(DURATION, dt.timedelta(**{DURATIONS[n.func.id]: value}))

    def name(self, n: ast.AST) -> Node:
        parts: list[str] = []
        cur = n
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            raise self.fail(f"'{ast.unparse(n)}' is not allowed in a rule", n)
        parts.append(cur.id)
        parts.reverse()
        head, rest = parts[0], parts[1:]
        if head in ("true", "false") and not rest:
            return Const(BOOL, head == "true")
        if head == "now" and not rest:
            return Now(DATETIME)
        if head == "subject":
            if len(rest) != 1 or rest[0] not in SUBJECT_ATTRIBUTES:
                known = ", ".join(f"subject.{k}" for k in SUBJECT_ATTRIBUTES)
                raise self.fail(f"unknown '{'.'.join(parts)}'; known: {known}", n)
            return SubjectAttr(SUBJECT_ATTRIBUTES[rest[0]][0], rest[0])
        if self.rtype is None:
            raise self.fail(
                f"unknown name '{head}': this operation has no resource, so a rule may use "
                "only subject.* and now",
                n,
            )
        if head in ("resource", self.rtype.name):
            if not rest:
                raise self.fail(f"name an attribute of {head}, e.g. {head}.id", n)
            return self.resource_path(rest, n)
        return self.resource_path(parts, n)

    def resource_path(self, path: list[str], n: ast.AST) -> Node:
        rtype = self.rtype
        assert rtype is not None
        rtypes = [rtype.name]
        nullable = False
        for i, part in enumerate(path):
            attr = rtype.attributes.get(part)
            if attr is None:
                known = ", ".join(sorted(rtype.attributes))
                raise self.fail(f"'{rtype.name}' has no attribute '{part}'; known: {known}", n)
            last = i == len(path) - 1
            if isinstance(attr, Relation):
                if last:
                    raise self.fail(f"'{part}' is a {attr.target}; name one of its attributes", n)
                rtype = get_resource_type(attr.target)
                rtypes.append(rtype.name)
                nullable = True
                continue
            if not last:
                raise self.fail(f"'{part}' has no attributes", n)
            if isinstance(attr, Attr):
                nullable = nullable or attr.nullable
            return ResAttr(attr.type, tuple(path), tuple(rtypes), nullable)
        raise AssertionError("unreachable")

    def compare(self, n: ast.Compare, depth: int) -> Node:
        op = _CMP.get(type(n.ops[0]))
        if op is None:
            raise self.fail("use ==, !=, <, <=, >, >=, in or not in", n)
        left = self.node(n.left, depth)
        right = self.node(n.comparators[0], depth)
        if op in ("==", "!=") and NULL in (left.type, right.type):
            other = right if left.type == NULL else left
            if other.type == NULL:
                raise self.fail("compare a value with None, not None with None", n)
            return IsNull(BOOL, other, negate=op == "!=")
        if op in ("in", "not in"):
            if not right.type.startswith("list["):
                raise self.fail(f"the right side of '{op}' must be a list, not {right.type}", n)
            item = right.type[5:-1]
            if not _comparable(left.type, item):
                raise self.fail(f"cannot look for a {left.type} in a list of {item}", n)
            return Compare(BOOL, op, left, right)
        if left.type.startswith("list[") or right.type.startswith("list["):
            raise self.fail("compare lists with 'in', not with a comparison operator", n)
        if not _comparable(left.type, right.type):
            raise self.fail(f"cannot compare {left.type} with {right.type}", n)
        if op not in ("==", "!=") and left.type == BOOL:
            raise self.fail("true/false values can only be compared with == or !=", n)
        return Compare(BOOL, op, left, right)


def _comparable(a: str, b: str) -> bool:
    return a == b or {a, b} <= _NUMERIC or ANY in (a, b)


# ---- shared helpers ---------------------------------------------------------------------------


def _refers_to_resource(node: Node) -> bool:
    if isinstance(node, ResAttr):
        return True
    if isinstance(node, Compare | Arith):
        return _refers_to_resource(node.left) or _refers_to_resource(node.right)
    if isinstance(node, BoolOp):
        return any(_refers_to_resource(v) for v in node.values)
    if isinstance(node, Not | IsNull):
        return _refers_to_resource(node.operand)
    return False


def _check_sql(tree: Node) -> None:
    """Refuse what a filter cannot express in SQL, with a message saying how to rewrite it."""
    if isinstance(tree, Arith) and _refers_to_resource(tree):
        raise RuleError("in a filter put the arithmetic on the other side: "
                        "'created_at <= now - days(30)', not 'created_at + days(30) <= now'")
    if isinstance(tree, ResAttr) and tree.type.startswith("list[") and len(tree.path) > 1:
        raise RuleError("a filter cannot use a list that belongs to a related resource")
    for child in _children(tree):
        _check_sql(child)


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Compare | Arith):
        return (node.left, node.right)
    if isinstance(node, BoolOp):
        return node.values
    if isinstance(node, Not | IsNull):
        return (node.operand,)
    return ()


# ---- Python evaluation ------------------------------------------------------------------------

_PY_OPS = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def _resource_value(node: ResAttr, resource) -> Any:
    obj = resource
    for rtype_name, part in zip(node.rtypes, node.path, strict=False):
        if obj is None:
            return None
        attr = get_resource_type(rtype_name).attributes[part]
        obj = attr.python(obj)
    return obj


def _eval(node: Node, subject, resource, now: dt.datetime) -> Any:
    if isinstance(node, Const):
        return node.value
    if isinstance(node, SubjectAttr):
        return getattr(subject, node.name)
    if isinstance(node, Now):
        return now
    if isinstance(node, ResAttr):
        if resource is None:
            return None
        return _resource_value(node, resource)
    if isinstance(node, BoolOp):
        if node.op == "and":
            return all(_eval(v, subject, resource, now) for v in node.values)
        return any(_eval(v, subject, resource, now) for v in node.values)
    if isinstance(node, Not):
        return not _eval(node.operand, subject, resource, now)
    if isinstance(node, IsNull):
        value = _eval(node.operand, subject, resource, now)
        return (value is not None) if node.negate else (value is None)
    if isinstance(node, Arith):
        left = _eval(node.left, subject, resource, now)
        right = _eval(node.right, subject, resource, now)
        if left is None or right is None:
            return None
        return left + right if node.op == "+" else left - right
    if isinstance(node, Compare):
        left = _eval(node.left, subject, resource, now)
        right = _eval(node.right, subject, resource, now)
        if left is None or right is None:
            return False  # a missing value never satisfies a comparison (as in SQL)
        if node.op == "in":
            return left in right
        if node.op == "not in":
            return left not in right
        return _PY_OPS[node.op](left, right)
    raise AssertionError(f"unknown node {node!r}")


# ---- SQL compilation --------------------------------------------------------------------------


def _sql(node: Node, rtype: ResourceType, subject, now: dt.datetime) -> sa.ColumnElement:
    if not _refers_to_resource(node):
        return sa.true() if _eval(node, subject, None, now) else sa.false()
    if isinstance(node, ResAttr):  # a boolean attribute used on its own
        expr = _sql_value(node, rtype)
        return expr.is_(sa.true()) if not node.nullable else sa.and_(
            expr.is_not(None), expr.is_(sa.true())
        )
    if isinstance(node, BoolOp):
        parts = [_sql(v, rtype, subject, now) for v in node.values]
        return sa.and_(*parts) if node.op == "and" else sa.or_(*parts)
    if isinstance(node, Not):
        return sa.not_(_sql(node.operand, rtype, subject, now))
    if isinstance(node, IsNull):
        expr = _sql_value(node.operand, rtype)
        return expr.is_not(None) if node.negate else expr.is_(None)
    if isinstance(node, Compare):
        return _sql_compare(node, rtype, subject, now)
    raise RuleError("this part of the rule cannot be used in a filter")


def _operand(node: Node, rtype: ResourceType, subject, now):
    """(is_sql, value, nullable) for one side of a comparison."""
    if _refers_to_resource(node):
        if not isinstance(node, ResAttr):
            raise RuleError("in a filter compare resource attributes directly")
        return True, node, node.nullable
    return False, _eval(node, subject, None, now), False


def _sql_value(node: ResAttr, rtype: ResourceType) -> sa.ColumnElement:
    """A resource attribute as SQL; relations become correlated scalar subqueries."""
    if len(node.path) == 1:
        attr = rtype.attributes[node.path[0]]
        if isinstance(attr, Collection):
            raise RuleError(f"'{node.path[0]}' is a list: use it with 'in'")
        return attr.sql(rtype.model)
    relation = rtype.attributes[node.path[0]]
    assert isinstance(relation, Relation)
    target = get_resource_type(relation.target)
    inner = _sql_value(ResAttr(node.type, node.path[1:], node.rtypes[1:], node.nullable), target)
    pk = sa.inspect(target.model).primary_key[0]
    fk = getattr(rtype.model, relation.foreign_key)
    return sa.select(inner).where(pk == fk).correlate(rtype.model).scalar_subquery()


def _collection_select(node: ResAttr, rtype: ResourceType) -> sa.Select:
    attr = rtype.attributes[node.path[0]]
    assert isinstance(attr, Collection)
    return attr.sql(rtype.model)


def _sql_compare(node: Compare, rtype: ResourceType, subject, now) -> sa.ColumnElement:
    l_sql, left, l_null = _operand(node.left, rtype, subject, now)
    r_sql, right, r_null = _operand(node.right, rtype, subject, now)
    if (not l_sql and left is None) or (not r_sql and right is None):
        return sa.false()
    guards = []

    if node.op in ("in", "not in"):
        if r_sql and right.type.startswith("list["):  # ... in <resource collection>
            sel = _collection_select(right, rtype)
            column = sel.selected_columns[0]
            if l_sql:
                value = _sql_value(left, rtype)
                if l_null:
                    guards.append(value.is_not(None))
            else:
                value = left
            exists = sa.exists(sel.where(column == value))
            cond = exists if node.op == "in" else sa.not_(exists)
            return sa.and_(*guards, cond) if guards else cond
        # <resource attribute> in <constant list>
        value = _sql_value(left, rtype)
        if l_null:
            guards.append(value.is_not(None))
        items = list(right)
        if node.op == "in":
            cond = value.in_(items) if items else sa.false()
        else:
            cond = value.not_in(items) if items else sa.true()
        return sa.and_(*guards, cond) if guards else cond

    lhs = _sql_value(left, rtype) if l_sql else left
    rhs = _sql_value(right, rtype) if r_sql else right
    if l_sql and l_null:
        guards.append(lhs.is_not(None))
    if r_sql and r_null:
        guards.append(rhs.is_not(None))
    if not l_sql:  # keep the column on the left so the constant takes the column's type
        lhs, rhs = rhs, lhs
        op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(node.op, node.op)
    else:
        op = node.op
    cond = _PY_OPS[op](lhs, rhs)
    return sa.and_(*guards, cond) if guards else cond


def describe_grammar() -> dict[str, Any]:
    """What a rule may use, for the admin page and the API."""
    return {
        "operators": ["and", "or", "not", "==", "!=", "<", "<=", ">", ">=", "in", "not in"],
        "functions": [f"{f}(n)" for f in DURATIONS],
        "names": {"now": "the current time (UTC)", "true": "always", "false": "never"},
        "subject": {f"subject.{k}": v[1] for k, v in SUBJECT_ATTRIBUTES.items()},
    }


__all__ = ["Rule", "RuleError", "parse_rule", "describe_grammar", "DATETIME", "STR", "INT", "FLOAT"]
