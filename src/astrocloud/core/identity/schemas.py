"""JSON shapes of the account API (requests forbid unknown fields)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from astrocloud.core.web.inputs import StrictModel

Strict = StrictModel


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RegisterIn(Strict):
    username: str = Field(max_length=64)
    email: str = Field(max_length=254)
    password: str = Field(max_length=256)
    display_name: str = Field(default="", max_length=200)
    institute: str = Field(default="", max_length=200)
    language: str | None = Field(default=None, max_length=16)


class TokenIn(Strict):
    token: str = Field(max_length=200)


class EmailIn(Strict):
    email: str = Field(max_length=254)


class ResetIn(Strict):
    token: str = Field(max_length=200)
    password: str = Field(max_length=256)


class MeUpdate(Strict):
    display_name: str | None = Field(default=None, max_length=200)
    institute: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=16)
    current_password: str | None = Field(default=None, max_length=256)
    new_password: str | None = Field(default=None, max_length=256)


class RoleRef(Out):
    id: int
    role: str
    scope_type: str
    scope_id: int


class UserOut(Out):
    id: int
    username: str
    email: str
    display_name: str
    institute: str
    is_active: bool
    email_verified: bool
    language: str | None
    created_at: dt.datetime
    last_login_at: dt.datetime | None


class MeOut(UserOut):
    roles: list[RoleRef]
    group_ids: list[int]


class UserCreate(Strict):
    username: str = Field(max_length=64)
    email: str = Field(max_length=254)
    password: str | None = Field(default=None, max_length=256)
    role: str = Field(default="astronomer", max_length=64)
    display_name: str = Field(default="", max_length=200)
    institute: str = Field(default="", max_length=200)


class UserUpdate(Strict):
    is_active: bool | None = None
    display_name: str | None = Field(default=None, max_length=200)
    institute: str | None = Field(default=None, max_length=200)
    email_verified: bool | None = None


class UserPage(BaseModel):
    total: int
    page: int
    per_page: int
    items: list[UserOut]


class TokenCreate(Strict):
    name: str = Field(default="API token", max_length=100)
    expires_days: int | None = Field(default=None, ge=1, le=3650)


class ApiTokenOut(Out):
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class NewTokenOut(ApiTokenOut):
    token: str = Field(description="The token itself; shown once, never again.")


class GroupCreate(Strict):
    name: str = Field(max_length=64)
    title: str = Field(max_length=200)
    description: str = Field(default="", max_length=5000)
    kind: str = Field(default="collaboration", max_length=32)


class GroupUpdate(Strict):
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=5000)


class MemberIn(Strict):
    username: str = Field(max_length=64)
    manager: bool = False


class MemberOut(BaseModel):
    user_id: int
    username: str
    display_name: str
    is_manager: bool


class GroupOut(Out):
    id: int
    name: str
    title: str
    description: str
    kind: str
    created_at: dt.datetime


class GroupDetail(GroupOut):
    members: list[MemberOut]


class GroupPage(BaseModel):
    total: int
    page: int
    per_page: int
    items: list[GroupOut]


class Message(BaseModel):
    detail: str
