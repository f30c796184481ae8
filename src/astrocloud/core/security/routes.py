"""HTTP routes of the policy administration (roles, permissions, role assignments)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from astrocloud.core.security import services
from astrocloud.core.security.schemas import (
    AssignmentIn,
    AssignmentOut,
    OperationOut,
    PermissionCreate,
    PermissionOut,
    PermissionUpdate,
    RoleCreate,
    RoleOut,
    RoleUpdate,
)
from astrocloud.core.security.services import SecurityOps as Ops
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import Id, uses

api = APIRouter(prefix="/api/v1", tags=["policies"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]


def assignment_out(a) -> AssignmentOut:
    return AssignmentOut(id=a.id, user_id=a.user_id, role=a.role.name, scope_type=a.scope_type,
                         scope_id=a.scope_id)


@api.get("/operations", response_model=list[OperationOut], openapi_extra=uses(Ops.ROLE_LIST),
         summary="Every operation a permission can grant")
def list_operations(ctx: Ctx):
    return services.list_operations(ctx)


@api.get("/roles", response_model=list[RoleOut], openapi_extra=uses(Ops.ROLE_LIST))
def list_roles(ctx: Ctx):
    return services.list_roles(ctx)


@api.post("/roles", response_model=RoleOut, status_code=201, openapi_extra=uses(Ops.ROLE_MANAGE))
def create_role(body: RoleCreate, ctx: Ctx):
    return services.create_role(ctx, **body.model_dump())


@api.get("/roles/{role_id}", response_model=RoleOut, openapi_extra=uses(Ops.ROLE_LIST))
def get_role(role_id: Id, ctx: Ctx):
    return services.get_role(ctx, role_id=role_id)


@api.patch("/roles/{role_id}", response_model=RoleOut, openapi_extra=uses(Ops.ROLE_MANAGE))
def update_role(role_id: Id, body: RoleUpdate, ctx: Ctx):
    return services.update_role(ctx, role_id=role_id, **body.model_dump(exclude_unset=True))


@api.delete("/roles/{role_id}", status_code=204, openapi_extra=uses(Ops.ROLE_MANAGE))
def delete_role(role_id: Id, ctx: Ctx):
    services.delete_role(ctx, role_id=role_id)
    return Response(status_code=204)


@api.post("/roles/{role_id}/permissions", response_model=PermissionOut, status_code=201,
          openapi_extra=uses(Ops.PERMISSION_MANAGE), summary="Grant an operation under a rule")
def grant(role_id: Id, body: PermissionCreate, ctx: Ctx):
    return services.grant_permission(ctx, role_id=role_id, operation_name=body.operation,
                                     rule=body.rule, description=body.description)


@api.get("/permissions/{permission_id}", response_model=PermissionOut,
         openapi_extra=uses(Ops.ROLE_LIST))
def get_permission(permission_id: Id, ctx: Ctx):
    return services.get_permission(ctx, permission_id=permission_id)


@api.patch("/permissions/{permission_id}", response_model=PermissionOut,
           openapi_extra=uses(Ops.PERMISSION_MANAGE),
           summary="Change a rule (effective with the next request)")
def update_permission(permission_id: Id, body: PermissionUpdate, ctx: Ctx):
    return services.update_permission(ctx, permission_id=permission_id,
                                      **body.model_dump(exclude_unset=True))


@api.delete("/permissions/{permission_id}", status_code=204,
            openapi_extra=uses(Ops.PERMISSION_MANAGE))
def revoke_permission(permission_id: Id, ctx: Ctx):
    services.revoke_permission(ctx, permission_id=permission_id)
    return Response(status_code=204)


@api.get("/users/{user_id}/roles", response_model=list[AssignmentOut],
         openapi_extra=uses(Ops.ASSIGNMENT_LIST))
def user_roles(user_id: Id, ctx: Ctx):
    return [assignment_out(a) for a in services.list_assignments(ctx, user_id=user_id)]


@api.post("/users/{user_id}/roles", response_model=AssignmentOut, status_code=201,
          openapi_extra=uses(Ops.ROLE_ASSIGN), summary="Give a user a role (optionally scoped)")
def assign(user_id: Id, body: AssignmentIn, ctx: Ctx):
    return assignment_out(services.assign(ctx, user_id=user_id, **body.model_dump()))


@api.delete("/role-assignments/{assignment_id}", status_code=204,
            openapi_extra=uses(Ops.ROLE_ASSIGN))
def unassign(assignment_id: Id, ctx: Ctx):
    services.unassign(ctx, assignment_id=assignment_id)
    return Response(status_code=204)
