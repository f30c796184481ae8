"""Policy administration: roles, permissions (operation + rule) and role assignments.

Policies are data: an admin edits them at run time and the next request obeys the change.
Defaults are seeded from readable TOML files (`default_policy.toml` here, and one per channel).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from astrocloud.core.errors import Conflict, NotFound, ValidationFailed
from astrocloud.core.identity.models import User
from astrocloud.core.security.engine import operation_patterns
from astrocloud.core.security.models import PUBLIC_ROLE, Permission, Role, RoleAssignment
from astrocloud.core.security.operations import (
    Action,
    OperationSet,
    Query,
    all_operations,
    get_operation,
)
from astrocloud.core.security.rules import RuleError, parse_rule
from astrocloud.core.service import Context, operation

DEFAULT_POLICY = Path(__file__).with_name("default_policy.toml")
ROLE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
SCOPE_TYPES = ("telescope", "call", "group")


class SecurityOps(OperationSet):
    ROLE_LIST = Query("core.role.list", resource="role", doc="See roles and their permissions.")
    ROLE_MANAGE = Action("core.role.manage", resource="role",
                         doc="Create, change or delete a role.")
    PERMISSION_MANAGE = Action("core.permission.manage", resource="permission",
                               doc="Grant, change or withdraw a permission of a role.")
    ASSIGNMENT_LIST = Query("core.role_assignment.list", resource="role_assignment",
                            doc="See who holds which role.")
    ROLE_ASSIGN = Action("core.role.assign", resource="role_assignment",
                         doc="Give a user a role, or take it away.")


# ---- rule checking ----------------------------------------------------------------------------


def check_rule(operation_name: str, rule: str) -> str:
    """Validate a rule for an operation (or an operation pattern); returns the cleaned rule."""
    rule = (rule or "true").strip() or "true"
    ops = _operations_matching(operation_name)
    if not ops:
        raise ValidationFailed(
            "There is no operation “%(op)s”. Use a declared name, or a prefix ending in .* .",
            field="operation", op=operation_name)
    for op in ops:
        try:
            parse_rule(rule, op.resource, for_sql=op.kind == "query")
        except RuleError as exc:
            raise ValidationFailed("The rule does not work for %(op)s: %(reason)s",
                                   field="rule", op=op.name, reason=str(exc)) from None
    return rule


def _operations_matching(pattern: str) -> list:
    ops = all_operations()
    return [op for name, op in ops.items() if pattern in operation_patterns(name)]


# ---- seeding ----------------------------------------------------------------------------------


def load_policy_file(path: Path) -> dict:
    with path.open("rb") as f:
        return tomllib.load(f)


def seed_policies(db: Session, files: list[Path]) -> dict[str, int]:
    """Create missing default roles and permissions; never overwrite what an admin changed."""
    added = {"roles": 0, "permissions": 0}
    for path in files:
        data = load_policy_file(path)
        for name, spec in data.get("roles", {}).items():
            role = db.scalar(sa.select(Role).where(Role.name == name))
            if role is None:
                role = Role(name=name, title=spec.get("title", name),
                            description=spec.get("description", ""), builtin=True,
                            scope_types=",".join(spec.get("scopes", [])))
                db.add(role)
                db.flush()
                added["roles"] += 1
            elif spec.get("scopes"):
                known = set(filter(None, role.scope_types.split(",")))
                role.scope_types = ",".join(sorted(known | set(spec["scopes"])))
            existing = set(db.scalars(sa.select(Permission.operation)
                                      .where(Permission.role_id == role.id)))
            for perm in spec.get("permissions", []):
                if perm["operation"] in existing:
                    continue
                db.add(Permission(role_id=role.id, operation=perm["operation"],
                                  rule=check_rule(perm["operation"], perm.get("rule", "true")),
                                  description=perm.get("description", "")))
                existing.add(perm["operation"])
                added["permissions"] += 1
    return added


# ---- roles ------------------------------------------------------------------------------------


@operation(SecurityOps.ROLE_LIST)
def list_roles(ctx: Context) -> list[Role]:
    """Every role the caller may see, with its permissions."""
    ctx.authorize_listing()
    stmt = ctx.visible(sa.select(Role).options(selectinload(Role.permissions)).order_by(Role.name))
    return list(ctx.db.scalars(stmt))


@operation(SecurityOps.ROLE_LIST)
def get_role(ctx: Context, *, role_id: int | None = None, name: str | None = None) -> Role:
    """One role with its permissions."""
    if name is not None:
        role_id = ctx.db.scalar(sa.select(Role.id).where(Role.name == name))
    return ctx.get_visible(Role, role_id, what="role")


def _scope_list(scopes: list[str] | str | None) -> str:
    if scopes is None:
        return ""
    items = [s.strip() for s in (scopes.split(",") if isinstance(scopes, str) else scopes)]
    items = [s for s in items if s]
    bad = [s for s in items if s not in SCOPE_TYPES]
    if bad:
        raise ValidationFailed("Unknown scope type %(bad)s; choose from %(choices)s.",
                               field="scope_types", bad=", ".join(bad),
                               choices=", ".join(SCOPE_TYPES))
    return ",".join(sorted(set(items)))


@operation(SecurityOps.ROLE_MANAGE)
def create_role(ctx: Context, *, name: str, title: str = "", description: str = "",
                scope_types: list[str] | str | None = None) -> Role:
    """A new, empty role."""
    ctx.authorize()
    name = (name or "").strip()
    if not ROLE_NAME_RE.match(name):
        raise ValidationFailed("2–64 characters: lower-case letters, digits or '_', starting "
                               "with a letter.", field="name")
    if ctx.db.scalar(sa.select(Role.id).where(Role.name == name)):
        raise ValidationFailed("A role with this name exists already.", field="name")
    role = Role(name=name, title=title or name, description=description or "",
                scope_types=_scope_list(scope_types))
    ctx.db.add(role)
    ctx.db.flush()
    ctx.set_target(role)
    return role


@operation(SecurityOps.ROLE_MANAGE)
def update_role(ctx: Context, *, role_id: int, title: str | None = None,
                description: str | None = None,
                scope_types: list[str] | str | None = None) -> Role:
    """Change a role's title, description or allowed scopes."""
    role = ctx.get_visible(Role, role_id, op=SecurityOps.ROLE_LIST, what="role")
    ctx.authorize(role)
    if title is not None:
        role.title = title.strip()[:200] or role.name
    if description is not None:
        role.description = description
    if scope_types is not None:
        role.scope_types = _scope_list(scope_types)
    return role


@operation(SecurityOps.ROLE_MANAGE)
def delete_role(ctx: Context, *, role_id: int) -> None:
    """Delete a role that is not one of the built-in defaults."""
    role = ctx.get_visible(Role, role_id, op=SecurityOps.ROLE_LIST, what="role")
    ctx.authorize(role)
    if role.builtin:
        raise Conflict("Built-in roles cannot be deleted; remove their permissions instead.")
    ctx.db.delete(role)


# ---- permissions ------------------------------------------------------------------------------


@operation(SecurityOps.PERMISSION_MANAGE)
def grant_permission(ctx: Context, *, role_id: int, operation_name: str, rule: str = "true",
                     description: str = "") -> Permission:
    """Let a role perform an operation under a rule."""
    role = ctx.get_visible(Role, role_id, op=SecurityOps.ROLE_LIST, what="role")
    operation_name = (operation_name or "").strip()
    rule = check_rule(operation_name, rule)
    perm = Permission(role_id=role.id, operation=operation_name, rule=rule,
                      description=description or "", updated_by_id=ctx.subject.id)
    ctx.authorize(perm)
    if ctx.db.scalar(sa.select(Permission.id).where(Permission.role_id == role.id,
                                                    Permission.operation == operation_name)):
        raise Conflict("The role %(role)s has a permission for %(op)s already; change that one.",
                       role=role.name, op=operation_name)
    ctx.db.add(perm)
    ctx.db.flush()
    return perm


@operation(SecurityOps.ROLE_LIST)
def get_permission(ctx: Context, *, permission_id: int) -> Permission:
    """One permission (visible to those who may see its role)."""
    perm = ctx.db.get(Permission, permission_id)
    if perm is None:
        raise NotFound("There is no permission with id %(ident)s.", ident=permission_id)
    ctx.get_visible(Role, perm.role_id, what="role")
    ctx.set_target(perm)
    return perm


@operation(SecurityOps.PERMISSION_MANAGE)
def update_permission(ctx: Context, *, permission_id: int, rule: str | None = None,
                      description: str | None = None) -> Permission:
    """Change a permission's rule: it takes effect with the very next request."""
    perm = get_permission(ctx, permission_id=permission_id)
    ctx.authorize(perm)
    if rule is not None:
        perm.rule = check_rule(perm.operation, rule)
    if description is not None:
        perm.description = description
    perm.updated_by_id = ctx.subject.id
    return perm


@operation(SecurityOps.PERMISSION_MANAGE)
def revoke_permission(ctx: Context, *, permission_id: int) -> None:
    """Withdraw a permission from its role."""
    perm = get_permission(ctx, permission_id=permission_id)
    ctx.authorize(perm)
    ctx.db.delete(perm)


# ---- assignments ------------------------------------------------------------------------------


@operation(SecurityOps.ASSIGNMENT_LIST)
def list_assignments(ctx: Context, *, user_id: int | None = None,
                     role_id: int | None = None) -> list[RoleAssignment]:
    """Role assignments the caller may see."""
    ctx.authorize_listing()
    stmt = ctx.visible(sa.select(RoleAssignment).options(selectinload(RoleAssignment.role))
                       .order_by(RoleAssignment.id))
    if user_id is not None:
        stmt = stmt.where(RoleAssignment.user_id == user_id)
    if role_id is not None:
        stmt = stmt.where(RoleAssignment.role_id == role_id)
    return list(ctx.db.scalars(stmt))


@operation(SecurityOps.ROLE_ASSIGN)
def assign(ctx: Context, *, user_id: int, role: str, scope_type: str = "",
           scope_id: int = 0) -> RoleAssignment:
    """Give a user a role, everywhere or within one scope (a telescope, a call, a group)."""
    user = ctx.db.get(User, user_id)
    if user is None:
        raise NotFound("There is no user with id %(ident)s.", ident=user_id)
    role_obj = ctx.db.scalar(sa.select(Role).where(Role.name == role))
    if role_obj is None or role_obj.name == PUBLIC_ROLE:
        raise ValidationFailed("There is no role called “%(role)s” to assign.", field="role",
                               role=role)
    scope_type = scope_type or ""
    allowed = set(filter(None, role_obj.scope_types.split(",")))
    if scope_type and scope_type not in allowed:
        raise ValidationFailed("The role %(role)s cannot be scoped to a %(scope)s.",
                               field="scope_type", role=role, scope=scope_type)
    if scope_type and scope_id <= 0:
        raise ValidationFailed("Give the id of the %(scope)s.", field="scope_id", scope=scope_type)
    assignment = RoleAssignment(user_id=user.id, role_id=role_obj.id, scope_type=scope_type,
                                scope_id=scope_id if scope_type else 0,
                                created_by_id=ctx.subject.id)
    ctx.authorize(assignment)
    if ctx.db.scalar(sa.select(RoleAssignment.id).where(
            RoleAssignment.user_id == user.id, RoleAssignment.role_id == role_obj.id,
            RoleAssignment.scope_type == assignment.scope_type,
            RoleAssignment.scope_id == assignment.scope_id)):
        raise Conflict("%(user)s has this role already.", user=user.username)
    ctx.db.add(assignment)
    ctx.db.flush()
    return assignment


@operation(SecurityOps.ROLE_ASSIGN)
def unassign(ctx: Context, *, assignment_id: int) -> None:
    """Take a role away."""
    assignment = ctx.db.get(RoleAssignment, assignment_id)
    if assignment is None:
        raise NotFound("There is no role assignment with id %(ident)s.", ident=assignment_id)
    ctx.authorize(assignment)
    if assignment.user_id == ctx.subject.id and assignment.role.name == "admin" and \
            not assignment.scope_type:
        raise Conflict("You cannot take the admin role from yourself; ask another admin.")
    ctx.db.delete(assignment)


@operation(SecurityOps.ROLE_LIST)
def list_operations(ctx: Context) -> list[dict]:
    """The operation registry, for the policy editor (visible to those who may see roles)."""
    ctx.authorize_listing()
    return [{"name": op.name, "kind": op.kind, "rule_kind": op.rule_kind,
             "resource": op.resource, "doc": op.doc} for op in all_operations().values()]


__all__ = ["SecurityOps", "get_operation", "seed_policies", "check_rule", "Action"]
