"""JSON shapes of the policy API."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from astrocloud.core.web.inputs import StrictModel

Strict = StrictModel


class PermissionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    role_id: int
    operation: str
    rule: str
    description: str
    updated_at: dt.datetime


class RoleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    title: str
    description: str
    builtin: bool
    scope_types: str
    permissions: list[PermissionOut]


class RoleCreate(Strict):
    name: str = Field(max_length=64)
    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=5000)
    scope_types: list[str] = Field(default_factory=list, max_length=10)


class RoleUpdate(Strict):
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    scope_types: list[str] | None = Field(default=None, max_length=10)


class PermissionCreate(Strict):
    operation: str = Field(max_length=128)
    rule: str = Field(default="true", max_length=2000)
    description: str = Field(default="", max_length=2000)


class PermissionUpdate(Strict):
    rule: str | None = Field(default=None, max_length=2000)
    description: str | None = Field(default=None, max_length=2000)


class AssignmentIn(Strict):
    role: str = Field(max_length=64)
    scope_type: str = Field(default="", max_length=32)
    scope_id: int = Field(default=0, ge=0, le=2**31 - 1)


class AssignmentOut(BaseModel):
    id: int
    user_id: int
    role: str
    scope_type: str
    scope_id: int


class OperationOut(BaseModel):
    name: str
    kind: str
    rule_kind: str
    resource: str | None
    doc: str
