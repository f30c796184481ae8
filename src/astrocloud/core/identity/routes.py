"""HTTP routes of accounts, tokens, users and groups: parse, call one service, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from astrocloud.core.identity import services
from astrocloud.core.identity.models import Group, User
from astrocloud.core.identity.operations import IdentityOps as Ops
from astrocloud.core.identity.schemas import (
    ApiTokenOut,
    EmailIn,
    GroupCreate,
    GroupDetail,
    GroupOut,
    GroupPage,
    GroupUpdate,
    MemberIn,
    MemberOut,
    MeOut,
    Message,
    MeUpdate,
    NewTokenOut,
    RegisterIn,
    ResetIn,
    RoleRef,
    TokenCreate,
    TokenIn,
    UserCreate,
    UserOut,
    UserPage,
    UserUpdate,
)
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.routing import Id, uses

api = APIRouter(prefix="/api/v1", tags=["accounts"], route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
PageNo = Annotated[int, Query(ge=1, le=1_000_000)]
PerPage = Annotated[int, Query(ge=1, le=200)]


def me_out(ctx: Context, user: User) -> MeOut:
    roles = [RoleRef(id=a[0], role=a[1], scope_type=a[2], scope_id=a[3])
             for a in ctx.subject.assignments]
    return MeOut(**UserOut.model_validate(user).model_dump(), roles=roles,
                 group_ids=ctx.subject.group_ids)


def group_detail(group: Group) -> GroupDetail:
    members = [MemberOut(user_id=m.user_id, username=m.user.username,
                         display_name=m.user.display_name, is_manager=m.is_manager)
               for m in sorted(group.members, key=lambda m: m.user.username)]
    return GroupDetail(**GroupOut.model_validate(group).model_dump(), members=members)


# ---- own account ------------------------------------------------------------------------------


@api.get("/me", response_model=MeOut, openapi_extra=uses(Ops.ME_READ),
         summary="The signed-in user")
def read_me(ctx: Ctx):
    return me_out(ctx, services.me(ctx))


@api.patch("/me", response_model=MeOut, openapi_extra=uses(Ops.ME_UPDATE),
           summary="Change your profile, language or password")
def patch_me(body: MeUpdate, ctx: Ctx):
    user = services.update_me(ctx, **body.model_dump(exclude_unset=True))
    return me_out(ctx, user)


@api.post("/account/register", response_model=UserOut, status_code=201,
          openapi_extra=uses(Ops.REGISTER), summary="Sign up (a verification mail is sent)")
def register(body: RegisterIn, ctx: Ctx):
    return services.register(ctx, **body.model_dump())


@api.post("/account/verify", response_model=UserOut, openapi_extra=uses(Ops.VERIFY_EMAIL),
          summary="Confirm an e-mail address with the token from the mail")
def verify(body: TokenIn, ctx: Ctx):
    return services.verify_email(ctx, token=body.token)


@api.post("/account/resend-verification", response_model=Message, status_code=202,
          openapi_extra=uses(Ops.RESEND_VERIFICATION))
def resend(body: EmailIn, ctx: Ctx):
    services.resend_verification(ctx, email=body.email)
    return Message(detail="If an unconfirmed account has this address, a new link is on its way.")


@api.post("/account/password-reset", response_model=Message, status_code=202,
          openapi_extra=uses(Ops.REQUEST_PASSWORD_RESET), summary="Ask for a reset link")
def password_reset(body: EmailIn, ctx: Ctx):
    services.request_password_reset(ctx, email=body.email)
    return Message(detail="If an account has this address, a reset link is on its way.")


@api.post("/account/password-reset/confirm", response_model=UserOut,
          openapi_extra=uses(Ops.RESET_PASSWORD), summary="Set a new password with a reset token")
def password_reset_confirm(body: ResetIn, ctx: Ctx):
    return services.reset_password(ctx, token=body.token, password=body.password)


# ---- tokens -----------------------------------------------------------------------------------


@api.get("/tokens", response_model=list[ApiTokenOut], openapi_extra=uses(Ops.TOKEN_LIST),
         summary="Your personal API tokens")
def list_tokens(ctx: Ctx):
    return services.list_tokens(ctx)


@api.post("/tokens", response_model=NewTokenOut, status_code=201,
          openapi_extra=uses(Ops.TOKEN_CREATE), summary="Create a personal API token")
def create_token(body: TokenCreate, ctx: Ctx):
    token, raw = services.create_token(ctx, name=body.name, expires_days=body.expires_days)
    return NewTokenOut(**ApiTokenOut.model_validate(token).model_dump(), token=raw)


@api.delete("/tokens/{token_id}", status_code=204, openapi_extra=uses(Ops.TOKEN_REVOKE),
            summary="Revoke a token")
def revoke_token(token_id: Id, ctx: Ctx):
    services.revoke_token(ctx, token_id=token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---- users ------------------------------------------------------------------------------------


@api.get("/users", response_model=UserPage, openapi_extra=uses(Ops.USER_LIST), tags=["admin"])
def list_users(ctx: Ctx, q: Annotated[str | None, Query(max_length=100)] = None,
               page: PageNo = 1, per_page: PerPage = 50):
    result = services.list_users(ctx, q=q, page=page, per_page=per_page)
    return UserPage(total=result.total, page=result.page, per_page=result.per_page,
                    items=[UserOut.model_validate(u) for u in result.items])


@api.post("/users", response_model=UserOut, status_code=201,
          openapi_extra=uses(Ops.USER_CREATE), tags=["admin"])
def create_user(body: UserCreate, ctx: Ctx):
    return services.create_user(ctx, **body.model_dump())


@api.get("/users/{user_id}", response_model=UserOut, openapi_extra=uses(Ops.USER_LIST),
         tags=["admin"])
def get_user(user_id: Id, ctx: Ctx):
    return services.get_user(ctx, user_id=user_id)


@api.patch("/users/{user_id}", response_model=UserOut, openapi_extra=uses(Ops.USER_UPDATE),
           tags=["admin"])
def update_user(user_id: Id, body: UserUpdate, ctx: Ctx):
    return services.update_user(ctx, user_id=user_id, **body.model_dump(exclude_unset=True))


# ---- groups -----------------------------------------------------------------------------------


@api.get("/groups", response_model=GroupPage, openapi_extra=uses(Ops.GROUP_LIST),
         tags=["groups"])
def list_groups(ctx: Ctx, q: Annotated[str | None, Query(max_length=100)] = None,
                mine: bool = False, page: PageNo = 1, per_page: PerPage = 50):
    result = services.list_groups(ctx, q=q, mine=mine, page=page, per_page=per_page)
    return GroupPage(total=result.total, page=result.page, per_page=result.per_page,
                     items=[GroupOut.model_validate(g) for g in result.items])


@api.post("/groups", response_model=GroupDetail, status_code=201,
          openapi_extra=uses(Ops.GROUP_CREATE), tags=["groups"])
def create_group(body: GroupCreate, ctx: Ctx):
    group = services.create_group(ctx, **body.model_dump())
    return group_detail(services.get_group(ctx, group_id=group.id))


@api.get("/groups/{group_id}", response_model=GroupDetail, openapi_extra=uses(Ops.GROUP_LIST),
         tags=["groups"])
def get_group(group_id: Id, ctx: Ctx):
    return group_detail(services.get_group(ctx, group_id=group_id))


@api.patch("/groups/{group_id}", response_model=GroupDetail,
           openapi_extra=uses(Ops.GROUP_UPDATE), tags=["groups"])
def update_group(group_id: Id, body: GroupUpdate, ctx: Ctx):
    services.update_group(ctx, group_id=group_id, **body.model_dump(exclude_unset=True))
    return group_detail(services.get_group(ctx, group_id=group_id))


@api.delete("/groups/{group_id}", status_code=204, openapi_extra=uses(Ops.GROUP_DELETE),
            tags=["groups"])
def delete_group(group_id: Id, ctx: Ctx):
    services.delete_group(ctx, group_id=group_id)
    return Response(status_code=204)


@api.post("/groups/{group_id}/members", response_model=GroupDetail,
          openapi_extra=uses(Ops.GROUP_MANAGE_MEMBERS), tags=["groups"])
def add_member(group_id: Id, body: MemberIn, ctx: Ctx):
    services.add_member(ctx, group_id=group_id, username=body.username, manager=body.manager)
    return group_detail(services.get_group(ctx, group_id=group_id))


@api.delete("/groups/{group_id}/members/{user_id}", status_code=204,
            openapi_extra=uses(Ops.GROUP_MANAGE_MEMBERS), tags=["groups"])
def remove_member(group_id: Id, user_id: Id, ctx: Ctx):
    services.remove_member(ctx, group_id=group_id, user_id=user_id)
    return Response(status_code=204)
