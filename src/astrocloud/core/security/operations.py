"""The registry of operations: the named service methods that permissions grant.

An operation is declared once, next to the services that perform it, as a member of an
`OperationSet` (so names are never loose strings):

    class ObservationOps(OperationSet):
        PROPOSAL_SUBMIT = Action("observation.proposal.submit", resource="proposal",
                                 doc="Submit a drafted proposal to its call.")

An *action* is guarded by a prerequisite rule (may this subject do this to this resource now?);
a *query* is guarded by a filter rule (which resources may this subject see?). The filter of a
query also decides single reads: an object the filter excludes is reported as not found.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTION = "action"
QUERY = "query"


@dataclass(frozen=True)
class Operation:
    name: str
    kind: str
    resource: str | None = None
    doc: str = ""

    @property
    def channel(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def rule_kind(self) -> str:
        return "filter" if self.kind == QUERY else "prerequisite"

    def __str__(self) -> str:
        return self.name


def Action(name: str, *, resource: str | None = None, doc: str = "") -> Operation:  # noqa: N802
    return Operation(name=name, kind=ACTION, resource=resource, doc=doc)


def Query(name: str, *, resource: str, doc: str = "") -> Operation:  # noqa: N802
    return Operation(name=name, kind=QUERY, resource=resource, doc=doc)


_OPERATIONS: dict[str, Operation] = {}


class OperationSet:
    """Subclass to declare operations; each member is registered when the class is created."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for value in vars(cls).values():
            if isinstance(value, Operation):
                existing = _OPERATIONS.get(value.name)
                if existing is not None and existing != value:
                    raise ValueError(f"operation {value.name} is declared twice differently")
                _OPERATIONS[value.name] = value


def get_operation(name: str) -> Operation:
    try:
        return _OPERATIONS[name]
    except KeyError:
        raise KeyError(f"unknown operation {name!r}") from None


def all_operations() -> dict[str, Operation]:
    return dict(sorted(_OPERATIONS.items()))
