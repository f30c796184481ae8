"""The security manager: who may invoke an operation, and which rows a query may return.

For a subject and an operation it collects the *grants*: the permissions of the subject's roles
(plus the implicit public role) whose operation pattern matches. A scoped role assignment only
applies to resources inside its scope. Then

* `authorize` evaluates each grant's prerequisite over the resource until one allows it, and
  otherwise raises PermissionDenied naming the rules that failed;
* `query_filter` ORs the grants' filters, compiled to SQL, for the WHERE clause.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.orm import Session

from astrocloud.core.errors import NotAuthenticated, PermissionDenied
from astrocloud.core.security.models import PUBLIC_ROLE, Permission, Role, RoleAssignment
from astrocloud.core.security.operations import QUERY, Operation
from astrocloud.core.security.resources import get_resource_type, resource_type_of
from astrocloud.core.security.rules import (
    Compare,
    Const,
    ResAttr,
    Rule,
    RuleError,
    parse_rule,
)


@dataclass
class Subject:
    """The acting party as rules see it."""

    id: int | None = None
    username: str = ""
    display_name: str = ""
    authenticated: bool = False
    institute: str = ""
    group_ids: list[int] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    # (role_id, role_name, scope_type, scope_id) for every assignment
    assignments: list[tuple[int, str, str, int]] = field(default_factory=list)
    user: object | None = None  # the User row, when signed in
    system: bool = False  # the platform itself (seeding, migrations): bypasses rules

    @classmethod
    def anonymous(cls) -> Subject:
        return cls()

    @classmethod
    def system_subject(cls) -> Subject:
        return cls(username="system", authenticated=True, system=True, roles=["system"])

    def has_role(self, name: str, scope_type: str = "", scope_id: int = 0) -> bool:
        return any(
            r == name and s == scope_type and (not scope_type or i == scope_id)
            for _, r, s, i in self.assignments
        )


def load_subject(db: Session, user) -> Subject:
    """Build the subject of a signed-in user: its roles and groups, read fresh per request."""
    from astrocloud.core.identity.models import GroupMember

    rows = db.execute(
        sa.select(RoleAssignment.role_id, Role.name, RoleAssignment.scope_type,
                  RoleAssignment.scope_id)
        .join(Role, Role.id == RoleAssignment.role_id)
        .where(RoleAssignment.user_id == user.id)
    ).all()
    group_ids = db.scalars(sa.select(GroupMember.group_id).where(GroupMember.user_id == user.id))
    assignments = [(r[0], r[1], r[2] or "", r[3] or 0) for r in rows]
    return Subject(
        id=user.id,
        username=user.username,
        display_name=user.display_name or user.username,
        authenticated=True,
        institute=user.institute or "",
        group_ids=sorted(group_ids),
        roles=sorted({a[1] for a in assignments}),
        assignments=assignments,
        user=user,
    )


@dataclass(frozen=True)
class Grant:
    role: str
    permission_id: int
    pattern: str
    rule: Rule
    scope_type: str = ""
    scope_id: int = 0

    def describe(self) -> str:
        scope = f" [{self.scope_type} {self.scope_id}]" if self.scope_type else ""
        return f"{self.role}{scope}: {self.rule.source}"


def operation_patterns(name: str) -> list[str]:
    """The permission patterns that match an operation: itself, each prefix + '.*', and '*'."""
    parts = name.split(".")
    return [name] + [".".join(parts[:i]) + ".*" for i in range(len(parts) - 1, 0, -1)] + ["*"]


@lru_cache(maxsize=4096)
def compiled_rule(source: str, resource_type: str | None, kind: str) -> Rule:
    return parse_rule(source, resource_type, for_sql=(kind == QUERY))


@lru_cache(maxsize=2)
def _grants_statement(signed_in: bool) -> sa.Select | sa.CompoundSelect:
    """The grants query, built once with bound parameters (the operation's patterns, the
    user's id): building it per call cost more than running it."""
    patterns = sa.bindparam("patterns", expanding=True)
    public = (
        sa.select(Permission.id, Permission.operation, Permission.rule, Role.name,
                  sa.literal("").label("scope_type"), sa.literal(0).label("scope_id"))
        .join(Role, Role.id == Permission.role_id)
        .where(Role.name == PUBLIC_ROLE, Permission.operation.in_(patterns))
    )
    if not signed_in:
        return public
    assigned = (
        sa.select(Permission.id, Permission.operation, Permission.rule, Role.name,
                  RoleAssignment.scope_type, RoleAssignment.scope_id)
        .join(Role, Role.id == Permission.role_id)
        .join(RoleAssignment, RoleAssignment.role_id == Role.id)
        .where(RoleAssignment.user_id == sa.bindparam("user_id"),
               Permission.operation.in_(patterns))
    )
    return sa.union_all(public, assigned)


def grants_for(db: Session, subject: Subject, op: Operation) -> list[Grant]:
    patterns = operation_patterns(op.name)
    params: dict = {"patterns": patterns}
    if subject.id is not None:
        params["user_id"] = subject.id
    stmt = _grants_statement(subject.id is not None)
    grants = []
    for pid, pattern, source, role, scope_type, scope_id in db.execute(stmt, params):
        try:
            rule = compiled_rule(source, op.resource, op.kind)
        except RuleError:
            # A rule that no longer checks (e.g. after an operation changed) grants nothing.
            continue
        grants.append(Grant(role, pid, pattern, rule, scope_type or "", scope_id or 0))
    # Most specific first, so a denial lists the rules in a sensible order.
    grants.sort(key=lambda g: (patterns.index(g.pattern), g.role))
    return grants


def _scope_rule(op: Operation, grant: Grant) -> Rule | None:
    """The implicit rule of a scoped grant: the resource lies inside the scope."""
    if not grant.scope_type:
        return None
    if op.resource is None:
        return Rule(source="false", tree=Const("bool", False), resource_type=None)
    rtype = get_resource_type(op.resource)
    attr_name = rtype.scopes.get(grant.scope_type)
    if attr_name is None:
        return Rule(source="false", tree=Const("bool", False), resource_type=op.resource)
    attr = rtype.attributes[attr_name]
    tree = Compare("bool", "==", ResAttr(attr.type, (attr_name,), (rtype.name,), True),
                   Const("int", grant.scope_id))
    return Rule(source=f"{attr_name} == {grant.scope_id}", tree=tree, resource_type=op.resource)


def check_resource_type(op: Operation, resource) -> None:
    if resource is None or op.resource is None:
        return
    rtype = resource_type_of(resource)
    if rtype is None or rtype.name != op.resource:
        raise TypeError(f"{op.name} works on {op.resource}, not on {type(resource).__name__}")


def evaluate(db: Session, subject: Subject, op: Operation, resource=None,
             now: dt.datetime | None = None) -> tuple[bool, list[Grant]]:
    """(allowed, grants considered). The object check of a query uses its filter rule."""
    if subject.system:
        return True, []
    check_resource_type(op, resource)
    now = now or dt.datetime.now(dt.UTC)
    grants = grants_for(db, subject, op)
    for grant in grants:
        scope = _scope_rule(op, grant)
        if scope is not None and not scope.evaluate(subject, resource, now):
            continue
        if grant.rule.evaluate(subject, resource, now):
            return True, grants
    return False, grants


def authorize(db: Session, subject: Subject, op: Operation, resource=None,
              now: dt.datetime | None = None) -> None:
    """Raise unless some grant allows `subject` to perform `op` (on `resource`)."""
    allowed, grants = evaluate(db, subject, op, resource, now)
    if allowed:
        return
    if not subject.authenticated:
        raise NotAuthenticated("Please sign in to do this (%(operation)s).", operation=op.name)
    if not grants:
        raise PermissionDenied(
            "None of your roles grants the operation “%(operation)s”.",
            operation=op.name, rules=[],
        )
    failed = [g.describe() for g in grants]
    raise PermissionDenied(
        "The operation “%(operation)s” is not allowed here; the rules that failed: %(failed)s",
        operation=op.name, rules=failed, failed=" | ".join(failed),
    )


def query_filter(db: Session, subject: Subject, op: Operation,
                 now: dt.datetime | None = None) -> sa.ColumnElement[bool]:
    """The SQL condition selecting exactly the rows `subject` may see through `op`."""
    if op.kind != QUERY or op.resource is None:
        raise TypeError(f"{op.name} is not a query on a resource type")
    if subject.system:
        return sa.true()
    now = now or dt.datetime.now(dt.UTC)
    clauses = []
    for grant in grants_for(db, subject, op):
        condition = grant.rule.to_sql(subject, now)
        if isinstance(condition, sa.sql.elements.False_):
            continue  # false for this subject whatever the row (e.g. `subject.authenticated`)
        if isinstance(condition, sa.sql.elements.True_):
            condition = None
        scope = _scope_rule(op, grant)
        if scope is not None:
            scoped = scope.to_sql(subject, now)
            condition = scoped if condition is None else sa.and_(scoped, condition)
        if condition is None:
            return sa.true()  # this grant shows every row
        clauses.append(condition)
    if not clauses:
        return sa.false()
    return sa.or_(*clauses)
