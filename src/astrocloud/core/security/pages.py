"""Admin pages of accounts and policies: users and their roles, roles and the policy editor.

Thin pages over the identity and security services, which decide who may do what: an operator
sees and creates accounts, an admin also edits policies. Forms re-render with the problems
listed when input is not valid; a refused or conflicting change says why.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from pydantic import AfterValidator

from astrocloud.core.errors import Conflict, DomainError, ValidationFailed
from astrocloud.core.i18n import gettext
from astrocloud.core.identity import services as identity
from astrocloud.core.identity.operations import IdentityOps
from astrocloud.core.identity.pages import field_errors, flash_redirect
from astrocloud.core.security import services as security
from astrocloud.core.security.resources import get_resource_type
from astrocloud.core.security.rules import describe_grammar
from astrocloud.core.security.services import SCOPE_TYPES
from astrocloud.core.security.services import SecurityOps as Ops
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.inputs import FormText, no_nul
from astrocloud.core.web.routing import Id, uses
from astrocloud.core.web.templating import render

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
Text = FormText
OptText = FormText
Notice = Annotated[str | None, Query(max_length=300)]
# A form field that may be absent (None = leave unchanged), as opposed to sent empty.
MaybeText = Annotated[str | None, Form(max_length=10_000),
                      AfterValidator(lambda v: v if v is None else no_nul(v))]
ScopeList = Annotated[list[str] | None, Form(max_length=10)]

USERS_PER_PAGE = 50


def _message(ctx: Context, exc: DomainError) -> str:
    """A service error in the reader's language."""
    return exc.translated(ctx.language)


def _int_or(value: str, fallback: int) -> int:
    """A number typed into a form; `fallback` (which the service refuses) when it is not one."""
    value = (value or "").strip()
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        return fallback


# ---- users ------------------------------------------------------------------------------------


def _users_page(request: Request, ctx: Context, *, q: str | None, page: int,
                status_code: int = 200, form: dict | None = None,
                errors: dict | None = None, notice: str | None = None):
    result = identity.list_users(ctx, q=q, page=page, per_page=USERS_PER_PAGE)
    can_create = ctx.can(IdentityOps.USER_CREATE)
    roles = security.list_roles(ctx) if can_create else []
    return render(request, "admin/users.html", status_code=status_code, result=result,
                  q=q or "", can_create=can_create, roles=roles,
                  form=form or {"role": "astronomer"}, errors=errors or {}, notice=notice)


@pages.get("/admin/users", openapi_extra=uses(IdentityOps.USER_LIST, Ops.ROLE_LIST))
def users(request: Request, ctx: Ctx, q: Annotated[str | None, Query(max_length=100)] = None,
          page: Annotated[int, Query(ge=1, le=100000)] = 1, notice: Notice = None):
    return _users_page(request, ctx, q=q, page=page, notice=notice)


@pages.post("/admin/users",
            openapi_extra=uses(IdentityOps.USER_CREATE, IdentityOps.USER_LIST, Ops.ROLE_LIST))
def create_user(request: Request, ctx: Ctx, username: Text = "", email: Text = "",
                password: OptText = "", display_name: OptText = "", institute: OptText = "",
                role: OptText = "astronomer"):
    try:
        user = identity.create_user(ctx, username=username, email=email,
                                    password=password or None, role=role,
                                    display_name=display_name, institute=institute)
    except ValidationFailed as exc:
        form = {"username": username, "email": email, "display_name": display_name,
                "institute": institute, "role": role}
        return _users_page(request, ctx, q=None, page=1, status_code=422, form=form,
                           errors=field_errors(exc))
    return flash_redirect(f"/admin/users/{user.id}",
                          gettext(ctx.language, "The account %(name)s is created.",
                                  name=user.username))


def _user_page(request: Request, ctx: Context, user_id: int, *, status_code: int = 200,
               errors: dict | None = None, problem: str | None = None,
               notice: str | None = None, assign_form: dict | None = None):
    user = identity.get_user(ctx, user_id=user_id)
    assignments = security.list_assignments(ctx, user_id=user.id)
    can_assign = ctx.can(Ops.ROLE_ASSIGN)
    roles = security.list_roles(ctx) if can_assign else []
    return render(request, "admin/user.html", status_code=status_code, account=user,
                  assignments=assignments, roles=roles, scope_types=SCOPE_TYPES,
                  can_assign=can_assign, can_update=ctx.can(IdentityOps.USER_UPDATE, user),
                  errors=errors or {}, problem=problem, notice=notice,
                  assign_form=assign_form or {})


@pages.get("/admin/users/{user_id}",
           openapi_extra=uses(IdentityOps.USER_LIST, Ops.ASSIGNMENT_LIST, Ops.ROLE_LIST))
def user_page(request: Request, ctx: Ctx, user_id: Id, notice: Notice = None):
    return _user_page(request, ctx, user_id, notice=notice)


@pages.post("/admin/users/{user_id}",
            openapi_extra=uses(IdentityOps.USER_UPDATE, IdentityOps.USER_LIST,
                               Ops.ASSIGNMENT_LIST))
def update_user(request: Request, ctx: Ctx, user_id: Id, display_name: MaybeText = None,
                institute: MaybeText = None, is_active: MaybeText = None):
    active = None if is_active is None else is_active in ("1", "true", "on", "yes")
    try:
        user = identity.update_user(ctx, user_id=user_id, is_active=active,
                                    display_name=display_name, institute=institute)
    except ValidationFailed as exc:
        return _user_page(request, ctx, user_id, status_code=422, errors=field_errors(exc))
    if active is True:
        message = gettext(ctx.language, "The account %(name)s is active.", name=user.username)
    elif active is False:
        message = gettext(ctx.language, "The account %(name)s is deactivated.",
                          name=user.username)
    else:
        message = gettext(ctx.language, "The account is saved.")
    return flash_redirect(f"/admin/users/{user_id}", message)


@pages.post("/admin/users/{user_id}/roles",
            openapi_extra=uses(Ops.ROLE_ASSIGN, IdentityOps.USER_LIST, Ops.ASSIGNMENT_LIST))
def assign_role(request: Request, ctx: Ctx, user_id: Id, role: Text = "",
                scope_type: OptText = "", scope_id: OptText = ""):
    try:
        security.assign(ctx, user_id=user_id, role=role, scope_type=scope_type,
                        scope_id=_int_or(scope_id, -1))
    except (ValidationFailed, Conflict) as exc:
        errors = field_errors(exc) if isinstance(exc, ValidationFailed) else {}
        return _user_page(request, ctx, user_id, status_code=exc.status, errors=errors,
                          problem=_message(ctx, exc),
                          assign_form={"role": role, "scope_type": scope_type,
                                       "scope_id": scope_id})
    return flash_redirect(f"/admin/users/{user_id}",
                          gettext(ctx.language, "The role %(role)s is given.", role=role))


@pages.post("/admin/role-assignments/{assignment_id}/delete",
            openapi_extra=uses(Ops.ROLE_ASSIGN, IdentityOps.USER_LIST, Ops.ASSIGNMENT_LIST))
def unassign_role(request: Request, ctx: Ctx, assignment_id: Id, user_id: OptText = ""):
    back = _int_or(user_id, 0)
    try:
        security.unassign(ctx, assignment_id=assignment_id)
    except Conflict as exc:
        if back <= 0:
            raise
        return _user_page(request, ctx, back, status_code=exc.status, problem=_message(ctx, exc))
    return flash_redirect(f"/admin/users/{back}" if back > 0 else "/admin/users",
                          gettext(ctx.language, "The role is taken away."))


# ---- roles and the policy editor --------------------------------------------------------------


def _roles_page(request: Request, ctx: Context, *, status_code: int = 200,
                form: dict | None = None, errors: dict | None = None,
                notice: str | None = None):
    roles = security.list_roles(ctx)
    return render(request, "admin/roles.html", status_code=status_code, roles=roles,
                  can_manage=ctx.can(Ops.ROLE_MANAGE), scope_types=SCOPE_TYPES,
                  form=form or {}, errors=errors or {}, notice=notice)


@pages.get("/admin/roles", openapi_extra=uses(Ops.ROLE_LIST))
def roles(request: Request, ctx: Ctx, notice: Notice = None):
    return _roles_page(request, ctx, notice=notice)


@pages.post("/admin/roles", openapi_extra=uses(Ops.ROLE_MANAGE, Ops.ROLE_LIST))
def create_role(request: Request, ctx: Ctx, name: Text = "", title: OptText = "",
                description: OptText = "", scope_types: ScopeList = None):
    try:
        role = security.create_role(ctx, name=name, title=title, description=description,
                                    scope_types=scope_types or [])
    except ValidationFailed as exc:
        form = {"name": name, "title": title, "description": description,
                "scope_types": scope_types or []}
        return _roles_page(request, ctx, status_code=422, form=form, errors=field_errors(exc))
    return flash_redirect(f"/admin/roles/{role.id}",
                          gettext(ctx.language, "The role %(name)s is created.", name=role.name))


def _resource_types(operations: list[dict]) -> dict[str, list[tuple[str, str, str]]]:
    """(attribute, type, meaning) of every resource type an operation works on."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for name in sorted({op["resource"] for op in operations if op["resource"]}):
        try:
            rtype = get_resource_type(name)
        except KeyError:
            continue
        out[name] = [(attr, spec.type, spec.doc) for attr, spec in
                     sorted(rtype.attributes.items())]
    return out


def _role_page(request: Request, ctx: Context, role_id: int, *, status_code: int = 200,
               problem: str | None = None, notice: str | None = None,
               rule_errors: dict[int, list[str]] | None = None, edited: dict | None = None,
               grant_form: dict | None = None, grant_errors: dict | None = None,
               role_errors: dict | None = None):
    role = security.get_role(ctx, role_id=role_id)
    operations = security.list_operations(ctx)
    return render(request, "admin/role.html", status_code=status_code, role=role,
                  operations=operations, op_index={op["name"]: op for op in operations},
                  resource_types=_resource_types(operations), grammar=describe_grammar(),
                  scope_types=SCOPE_TYPES,
                  can_edit=ctx.can(Ops.PERMISSION_MANAGE), can_manage=ctx.can(Ops.ROLE_MANAGE),
                  problem=problem, notice=notice, rule_errors=rule_errors or {},
                  edited=edited or {}, grant_form=grant_form or {},
                  grant_errors=grant_errors or {}, role_errors=role_errors or {})


@pages.get("/admin/roles/{role_id}", openapi_extra=uses(Ops.ROLE_LIST))
def role_page(request: Request, ctx: Ctx, role_id: Id, notice: Notice = None):
    return _role_page(request, ctx, role_id, notice=notice)


@pages.post("/admin/roles/{role_id}", openapi_extra=uses(Ops.ROLE_MANAGE, Ops.ROLE_LIST))
def update_role(request: Request, ctx: Ctx, role_id: Id, title: OptText = "",
                description: OptText = "", scope_types: ScopeList = None):
    try:
        security.update_role(ctx, role_id=role_id, title=title, description=description,
                             scope_types=scope_types or [])
    except ValidationFailed as exc:
        return _role_page(request, ctx, role_id, status_code=422, problem=str(exc),
                          role_errors=field_errors(exc))
    return flash_redirect(f"/admin/roles/{role_id}",
                          gettext(ctx.language, "The role is saved."))


@pages.post("/admin/roles/{role_id}/delete", openapi_extra=uses(Ops.ROLE_MANAGE, Ops.ROLE_LIST))
def delete_role(request: Request, ctx: Ctx, role_id: Id):
    try:
        security.delete_role(ctx, role_id=role_id)
    except Conflict as exc:
        return _role_page(request, ctx, role_id, status_code=exc.status,
                          problem=_message(ctx, exc))
    return flash_redirect("/admin/roles", gettext(ctx.language, "The role is deleted."))


@pages.post("/admin/roles/{role_id}/permissions",
            openapi_extra=uses(Ops.PERMISSION_MANAGE, Ops.ROLE_LIST))
def grant_permission(request: Request, ctx: Ctx, role_id: Id, operation: Text = "",
                     rule: OptText = "true", description: OptText = ""):
    try:
        perm = security.grant_permission(ctx, role_id=role_id, operation_name=operation,
                                         rule=rule, description=description)
    except (ValidationFailed, Conflict) as exc:
        errors = field_errors(exc) if isinstance(exc, ValidationFailed) else {}
        return _role_page(request, ctx, role_id, status_code=exc.status,
                          problem=_message(ctx, exc), grant_errors=errors,
                          grant_form={"operation": operation, "rule": rule,
                                      "description": description})
    return flash_redirect(f"/admin/roles/{role_id}",
                          gettext(ctx.language, "The permission for %(op)s is granted.",
                                  op=perm.operation))


@pages.post("/admin/permissions/{permission_id}",
            openapi_extra=uses(Ops.PERMISSION_MANAGE, Ops.ROLE_LIST))
def update_permission(request: Request, ctx: Ctx, permission_id: Id, rule: MaybeText = None,
                      description: MaybeText = None):
    try:
        perm = security.update_permission(ctx, permission_id=permission_id, rule=rule,
                                          description=description)
    except ValidationFailed as exc:
        role_id = security.get_permission(ctx, permission_id=permission_id).role_id
        return _role_page(request, ctx, role_id, status_code=422, problem=str(exc),
                          rule_errors={permission_id: [e["message"] for e in exc.errors]},
                          edited={"id": permission_id, "rule": rule,
                                  "description": description})
    return flash_redirect(f"/admin/roles/{perm.role_id}",
                          gettext(ctx.language, "The rule for %(op)s is saved; it applies from "
                                  "the next request.", op=perm.operation))


@pages.post("/admin/permissions/{permission_id}/delete",
            openapi_extra=uses(Ops.PERMISSION_MANAGE, Ops.ROLE_LIST))
def revoke_permission(request: Request, ctx: Ctx, permission_id: Id):
    perm = security.get_permission(ctx, permission_id=permission_id)
    role_id, operation = perm.role_id, perm.operation
    security.revoke_permission(ctx, permission_id=permission_id)
    return flash_redirect(f"/admin/roles/{role_id}",
                          gettext(ctx.language, "The permission for %(op)s is withdrawn.",
                                  op=operation))
