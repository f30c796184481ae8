"""Policies as data: roles, their permissions (operation + rule) and role assignments."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from astrocloud.core.db import Base, utcnow
from astrocloud.core.security.resources import register_resource

PUBLIC_ROLE = "public"  # implicit: every visitor, signed in or not


@register_resource("role")
class Role(Base):
    """A named set of permissions, assigned to users (optionally within a scope)."""

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200), default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    builtin: Mapped[bool] = mapped_column(default=False)
    # The scope types this role can be assigned within ("" = only globally), comma-separated.
    scope_types: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    permissions: Mapped[list[Permission]] = relationship(
        back_populates="role", cascade="all, delete-orphan", order_by="Permission.operation"
    )


@register_resource("permission")
class Permission(Base):
    """A role may perform `operation` where `rule` holds (a prerequisite or a filter)."""

    __tablename__ = "permissions"
    __table_args__ = (sa.UniqueConstraint("role_id", "operation"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role_id: Mapped[int] = mapped_column(sa.ForeignKey("roles.id", ondelete="CASCADE"), index=True)
    operation: Mapped[str] = mapped_column(sa.String(128), index=True)
    rule: Mapped[str] = mapped_column(sa.Text, default="true")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )

    role: Mapped[Role] = relationship(back_populates="permissions")


@register_resource("role_assignment")
class RoleAssignment(Base):
    """User U has role R — everywhere, or only within one telescope, call or group."""

    __tablename__ = "role_assignments"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "role_id", "scope_type", "scope_id"),
        sa.Index("ix_role_assignments_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    role_id: Mapped[int] = mapped_column(sa.ForeignKey("roles.id", ondelete="CASCADE"))
    scope_type: Mapped[str] = mapped_column(sa.String(32), default="")
    scope_id: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )

    role: Mapped[Role] = relationship()

    @property
    def scoped(self) -> bool:
        return bool(self.scope_type)
