"""Resource types: what a rule may say about a guarded model.

Every model that operations act on is registered here with its *rule attributes*: its columns
(automatically) plus computed values, collections and relations declared by the model's owner.
Each attribute knows how to read itself from an object (for prerequisite checks) and how to
express itself in SQL (for filters compiled into the WHERE clause).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

# Rule types. Collections are ("list", item_type).
INT, FLOAT, STR, BOOL, DATETIME, DURATION, NULL = (
    "int", "float", "str", "bool", "datetime", "duration", "null",
)


def list_of(item: str) -> str:
    return f"list[{item}]"


@dataclass(frozen=True)
class Attr:
    """A plain value of the resource (a column or a computed scalar)."""

    type: str
    python: Callable[[Any], Any]
    sql: Callable[[type], sa.ColumnElement]
    nullable: bool = True
    doc: str = ""


@dataclass(frozen=True)
class Collection:
    """A set of values attached to the resource, e.g. the ids of a group's members."""

    item_type: str
    python: Callable[[Any], list]
    sql: Callable[[type], sa.Select]  # a one-column SELECT correlated to the model
    doc: str = ""

    @property
    def type(self) -> str:
        return list_of(self.item_type)


@dataclass(frozen=True)
class Relation:
    """A many-to-one link to another resource type, navigable with a dot (`call.deadline`)."""

    target: str
    foreign_key: str
    python: Callable[[Any], Any]
    doc: str = ""

    @property
    def type(self) -> str:
        return f"resource:{self.target}"


@dataclass
class ResourceType:
    name: str
    model: type
    attributes: dict[str, Attr | Collection | Relation] = field(default_factory=dict)
    # scope type -> attribute holding the id that a scoped role assignment must match
    scopes: dict[str, str] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, ResourceType] = {}


def _python_type(column: sa.Column) -> str | None:
    col_type = column.type
    if isinstance(col_type, sa.types.TypeDecorator):
        col_type = col_type.impl_instance
    try:
        py = col_type.python_type
    except NotImplementedError:
        return None
    if py is bool:
        return BOOL
    if py is int:
        return INT
    if py is float:
        return FLOAT
    if py is str:
        return STR
    if py is dt.datetime:
        return DATETIME
    return None


def column_attributes(model: type[DeclarativeBase]) -> dict[str, Attr]:
    out: dict[str, Attr] = {}
    mapper = sa.inspect(model, raiseerr=False)
    if mapper is None:  # not a mapped class: only its declared attributes count
        return out
    for column in mapper.columns:
        rule_type = _python_type(column)
        if rule_type is None or column.key.startswith("_"):
            continue
        if column.info.get("rule_hidden"):
            continue  # secrets such as password hashes never appear in rules
        key = column.key
        out[key] = Attr(
            type=rule_type,
            python=lambda obj, k=key: getattr(obj, k),
            sql=lambda m, k=key: getattr(m, k),
            nullable=bool(column.nullable),
            doc=column.doc or "",
        )
    return out


def register_resource(
    name: str,
    *,
    scopes: dict[str, str] | None = None,
    extra: dict[str, Attr | Collection | Relation] | Callable[[], dict] | None = None,
    description: str = "",
):
    """Class decorator: make a model a resource type that rules can talk about.

    `extra` may be a callable so that it can refer to models defined later in the module.
    """

    def decorate(model: type) -> type:
        rtype = ResourceType(name=name, model=model, scopes=dict(scopes or {}),
                             description=description or (model.__doc__ or "").strip())
        # Attributes are read on first use, once every model (and foreign-key target) exists.
        rtype._pending = extra if extra is not None else {}
        _REGISTRY[name] = rtype
        model.__resource_type__ = name
        return model

    return decorate


def get_resource_type(name: str) -> ResourceType:
    rtype = _REGISTRY[name]
    pending = getattr(rtype, "_pending", None)
    if pending is not None:
        if sa.inspect(rtype.model, raiseerr=False) is not None:
            sa.orm.configure_mappers()
        rtype.attributes.update(column_attributes(rtype.model))
        rtype.attributes.update(pending() if callable(pending) else pending)
        del rtype._pending
    return rtype


def resource_type_of(obj_or_model: Any) -> ResourceType | None:
    name = getattr(obj_or_model, "__resource_type__", None)
    return get_resource_type(name) if name else None


def all_resource_types() -> dict[str, ResourceType]:
    return {name: get_resource_type(name) for name in sorted(_REGISTRY)}
