"""The service layer's frame: a `Context` per caller and the `@operation` decorator.

Every service function is declared with the operation that guards it:

    @operation(IdentityOps.GROUP_CREATE)
    def create_group(ctx: Context, *, name: str, title: str) -> Group:
        ctx.authorize()             # the prerequisite, before any change
        ...

The decorator makes the call one unit of work (commit on success, rollback on any error, so
nothing is ever half-written), records it in the usage log whatever the outcome, and lets the
body reach the security framework through `ctx.authorize(resource)`, `ctx.visible(select)` and
`ctx.can(op, resource)`. Routes, the CLI and the workers all call the same functions.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from astrocloud.core import errors
from astrocloud.core.config import Settings
from astrocloud.core.db import Database, utcnow
from astrocloud.core.security import engine
from astrocloud.core.security.engine import Subject
from astrocloud.core.security.operations import Operation
from astrocloud.core.security.resources import resource_type_of
from astrocloud.core.usage.models import UsageEvent

log = logging.getLogger("astrocloud.service")

F = TypeVar("F", bound=Callable[..., Any])

_OUTCOMES: dict[type, str] = {
    errors.NotAuthenticated: "unauthenticated",
    errors.PermissionDenied: "denied",
    errors.NotFound: "not_found",
    errors.Conflict: "conflict",
    errors.ValidationFailed: "invalid",
    errors.TooManyRequests: "denied",
}


@dataclass
class Context:
    """Who is acting, through which door, with which database session."""

    database: Database
    settings: Settings
    subject: Subject = field(default_factory=Subject.anonymous)
    client_addr: str = ""
    via: str = "api"  # web, api, cli, worker
    language: str = "en"
    session: Session | None = None
    runtime: Any = None  # core.runtime.Runtime: jobs and storage
    # filled while an operation runs
    operation: Operation | None = None
    target: tuple[str, str] | None = None
    invoked: list[str] = field(default_factory=list)
    _depth: int = 0
    _after_commit: list[Callable[[], None]] = field(default_factory=list)
    _keep: list[Any] = field(default_factory=list)
    _writing: bool = False
    _note: str = ""

    # -- session ---------------------------------------------------------------------------

    @property
    def db(self) -> Session:
        if self.session is None:
            self.session = self.database.sessionmaker()
        return self.session

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def now(self) -> dt.datetime:
        return utcnow()

    def keep(self, record: Any) -> None:
        """Add a new record that is saved even when the operation fails (e.g. a login attempt)."""
        self._keep.append(record)
        self.db.add(record)

    def begin_write(self) -> None:
        """End the current read transaction and begin a writing one (BEGIN IMMEDIATE on
        SQLite). Streaming operations call this after their long transfer, then re-check."""
        self.database.begin_write(self.db)
        self._writing = True

    def enqueue(self, task: str, args: dict | None = None) -> int:
        """Queue a job as part of the current operation (it starts once that commits)."""
        return self.runtime.jobs.enqueue(task, args, owner_id=self.subject.id, db=self.db,
                                         after_commit=self.after_commit)

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the current unit of work has committed (mail, jobs)."""
        self._after_commit.append(fn)

    # -- the security framework ------------------------------------------------------------

    def _op(self, op: Operation | None) -> Operation:
        op = op or self.operation
        if op is None:
            raise RuntimeError("authorization outside an operation")
        return op

    def authorize(self, resource: Any = None, op: Operation | None = None) -> None:
        """Check the prerequisite of the current (or given) operation; raise if it fails."""
        op = self._op(op)
        if resource is not None and self.target is None:
            self.set_target(resource)
        engine.authorize(self.db, self.subject, op, resource, self.now())

    def authorize_listing(self, op: Operation | None = None) -> None:
        """For a query: raise unless at least one of the caller's grants could show them
        something (a filter that is false for this caller, e.g. `subject.authenticated` for a
        visitor, does not count)."""
        op = self._op(op)
        if self.subject.system:
            return
        condition = engine.query_filter(self.db, self.subject, op, self.now())
        if not isinstance(condition, sa.sql.elements.False_):
            return
        if not self.subject.authenticated:
            raise errors.NotAuthenticated("Please sign in to do this (%(operation)s).",
                                          operation=op.name)
        raise errors.PermissionDenied("None of your roles grants the operation “%(operation)s”.",
                                      operation=op.name)

    def can(self, op: Operation, resource: Any = None) -> bool:
        return engine.evaluate(self.db, self.subject, op, resource, self.now())[0]

    def visible(self, stmt: sa.Select, op: Operation | None = None) -> sa.Select:
        """Add the current query operation's filter to a SELECT (into its WHERE clause)."""
        return stmt.where(engine.query_filter(self.db, self.subject, self._op(op), self.now()))

    def get_visible(self, model: type, ident: Any, op: Operation | None = None,
                    what: str | None = None):
        """One object by primary key, or NotFound if it does not exist *or* may not be seen."""
        op = self._op(op)
        obj = self.db.get(model, ident) if ident is not None else None
        if obj is None or not engine.evaluate(self.db, self.subject, op, obj, self.now())[0]:
            raise errors.NotFound(
                "There is no %(what)s with id %(ident)s, or you may not see it.",
                what=what or getattr(model, "__resource_type__", model.__name__.lower()),
                ident=ident,
            )
        self.set_target(obj)
        return obj

    def note(self, text: str) -> None:
        """Say in the usage log what a successful operation changed (e.g. old → new values)."""
        self._note = text

    def set_target(self, resource: Any) -> None:
        rtype = resource_type_of(resource)
        ident = getattr(resource, "id", None)
        self.target = (rtype.name if rtype else type(resource).__name__.lower(),
                       "" if ident is None else str(ident))

    # -- usage log ------------------------------------------------------------------------

    def _record(self, op: Operation, outcome: str, started: float, detail: str = "") -> None:
        # A plain INSERT, not an object for the unit of work to flush: the statement is built
        # once and its compiled form reused, which costs a fraction of an ORM flush.
        target_type, target_id = self.target or ("", "")
        self.db.execute(_INSERT_USAGE, {
            "at": utcnow(),
            "user_id": self.subject.id,
            "username": self.subject.username,
            "operation": op.name,
            "channel": op.channel,
            "target_type": target_type,
            "target_id": target_id[:128],
            "outcome": outcome,
            "detail": detail[:500],
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "client_addr": self.client_addr[:64],
            "via": self.via,
        })


_INSERT_USAGE = sa.insert(UsageEvent.__table__)


def operation(op: Operation, *, streaming: bool = False) -> Callable[[F], F]:
    """Declare the operation a service function performs (see the module docstring).

    A `streaming` operation (a long upload) does not take the database's write lock up front:
    it reads, moves its bytes, then calls `ctx.begin_write()` for its short writing part."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def run(ctx: Context, *args, **kwargs):
            ctx.invoked.append(op.name)
            if ctx._depth:  # called from another operation: part of its unit of work
                outer = ctx.operation
                ctx.operation = op
                try:
                    return fn(ctx, *args, **kwargs)
                finally:
                    ctx.operation = outer
            return _run_unit(ctx, op, fn, args, kwargs, streaming)

        run.__operation__ = op
        return run  # type: ignore[return-value]

    return decorate


def _run_unit(ctx: Context, op: Operation, fn, args, kwargs, streaming: bool = False):
    started = time.perf_counter()
    ctx.operation, ctx.target, ctx._depth = op, None, 1
    ctx._after_commit, ctx._keep, ctx._writing, ctx._note = [], [], False, ""
    db = ctx.db
    if streaming:
        if db.in_transaction():
            db.commit()
    else:
        ctx.database.begin_write(db)
    try:
        result = fn(ctx, *args, **kwargs)
        if streaming and not ctx._writing:
            ctx.begin_write()  # the usage row needs a writing transaction
        ctx._record(op, "ok", started, ctx._note)
        db.commit()
    except BaseException as exc:
        db.rollback()
        ctx.database.begin_write(db)
        outcome = "error"
        for cls, name in _OUTCOMES.items():
            if isinstance(exc, cls):
                outcome = name
                break
        detail = str(exc) if isinstance(exc, errors.DomainError) else type(exc).__name__
        try:
            for record in ctx._keep:
                db.add(record)
            ctx._record(op, outcome, started, detail)
            db.commit()
        except Exception:  # the log must never hide the original error
            db.rollback()
            log.exception("could not record the usage of %s", op.name)
        if not isinstance(exc, errors.DomainError):
            log.exception("operation %s failed", op.name)
        raise
    finally:
        ctx.operation, ctx._depth, ctx._keep = None, 0, []
    callbacks, ctx._after_commit = ctx._after_commit, []
    for callback in callbacks:
        try:
            callback()
        except Exception:  # side effects after commit must not undo a committed operation
            log.exception("a follow-up of %s failed", op.name)
    return result


@dataclass
class Page:
    """One page of a listing, with the total that the caller may see."""

    total: int
    items: list
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


MAX_PER_PAGE = 200


def paginate(db: Session, stmt: sa.Select, page: int = 1, per_page: int = 50) -> Page:
    """Count and slice in the database; `stmt` already carries the security filter."""
    if page < 1:
        raise errors.ValidationFailed("page must be 1 or more", field="page")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise errors.ValidationFailed("per_page must be between 1 and %(max)s",
                                      field="per_page", max=MAX_PER_PAGE)
    total = db.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery()))
    items = list(db.scalars(stmt.limit(per_page).offset((page - 1) * per_page)))
    return Page(total=total or 0, items=items, page=page, per_page=per_page)
