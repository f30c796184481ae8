"""The rule language: what it accepts, what it refuses (and says why), and that its two
back-ends — Python evaluation and SQL compilation — always agree."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrocloud.core.identity.models import Group, GroupMember, User
from astrocloud.core.security.engine import Subject
from astrocloud.core.security.rules import RuleError, parse_rule

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def subject(uid=None, groups=()):
    return Subject(id=uid, username=f"u{uid}" if uid else "", authenticated=uid is not None,
                   group_ids=list(groups))


# ---- parsing and type checking ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("subject.id = 3", "syntax error"),
        ("nonsense == 1", "has no attribute 'nonsense'"),
        ("subject.id == 'a'", "cannot compare int with str"),
        ("__import__('os').system('x')", "only functions"),
        ("subject.nope", "unknown 'subject.nope'"),
        ("member_ids == 3", "compare lists with 'in'"),
        ("kind", "must be true or false"),
        ("1 < id < 3", "chained comparisons"),
        ("name.upper() == 'X'", "only functions"),
        ("id ** 2 == 4", "is not allowed"),
        ("lambda: True", "is not allowed"),
        ("[x for x in member_ids]", "is not allowed"),
        ("created_at + days(1) <= now", "put the arithmetic on the other side"),
        ("days('x') == now", "takes one number"),
        ("True == None == None", "chained"),
    ],
)
def test_a_bad_rule_is_refused_with_the_reason(rule, reason):
    with pytest.raises(RuleError) as info:
        parse_rule(rule, "group", for_sql=True)
    assert reason in str(info.value)


def test_an_error_names_the_column_where_the_rule_goes_wrong():
    with pytest.raises(RuleError) as info:
        parse_rule("subject.authenticated and bogus == 1", "group")
    assert info.value.col == 26
    assert "column 27" in str(info.value)


def test_an_operation_without_resource_allows_only_subject_and_time():
    parse_rule("subject.authenticated and now > now - days(1)", None)
    with pytest.raises(RuleError, match="has no resource"):
        parse_rule("owner_id == subject.id", None)


def test_a_rule_longer_than_the_limit_is_refused():
    with pytest.raises(RuleError, match="at most"):
        parse_rule(" or ".join(["subject.authenticated"] * 200), "group")


def test_the_resource_can_be_named_by_its_type_or_as_resource():
    group = Group(id=7, name="g", title="t", kind="project", created_by_id=3)
    for rule in ("group.created_by_id == subject.id", "resource.created_by_id == subject.id",
                 "created_by_id == subject.id"):
        assert parse_rule(rule, "group").evaluate(subject(3), group, NOW)
        assert not parse_rule(rule, "group").evaluate(subject(4), group, NOW)


def test_a_missing_value_never_satisfies_a_comparison():
    group = Group(id=1, name="g", title="t", kind="project", created_by_id=None)
    anonymous = subject()
    assert not parse_rule("created_by_id == subject.id", "group").evaluate(anonymous, group, NOW)
    assert not parse_rule("created_by_id != 5", "group").evaluate(anonymous, group, NOW)
    assert parse_rule("created_by_id == None", "group").evaluate(anonymous, group, NOW)


def test_durations_shift_the_current_time():
    rule = parse_rule("created_at <= now - days(30)", "group")
    old = Group(id=1, name="g", title="t", kind="x", created_at=NOW - dt.timedelta(days=31))
    new = Group(id=2, name="h", title="t", kind="x", created_at=NOW - dt.timedelta(days=29))
    assert rule.evaluate(subject(1), old, NOW)
    assert not rule.evaluate(subject(1), new, NOW)


# ---- Python and SQL agree ---------------------------------------------------------------------

ATOMS = [
    "true", "false", "subject.authenticated", "not subject.authenticated",
    "created_by_id == subject.id", "created_by_id != subject.id", "created_by_id == None",
    "created_by_id != None", "subject.id in member_ids", "subject.id not in member_ids",
    "subject.id in manager_ids", "kind == 'institute'", "kind != 'institute'",
    "kind in ['project', 'other']", "kind not in ['project']", "kind in []",
    "created_at <= now - days(10)", "created_at > now - hours(36)", "id > 3", "4 >= id",
    "title != name", "created_by_id in subject.group_ids", "id not in subject.group_ids",
    "subject.id == 2", "subject.id in [1, 2]", "2 in member_ids", "id in member_ids",
]

rules = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) and ({p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) or ({p[1]})"),
        inner.map(lambda r: f"not ({r})"),
    ),
    max_leaves=6,
)
subjects = st.one_of(
    st.just(subject()),
    st.builds(subject, st.integers(1, 5), st.lists(st.integers(1, 8), max_size=3)),
)


@pytest.fixture
def groups_on_disk(database):
    """Eight groups with assorted owners, kinds, ages and members."""
    with database.session() as s:
        people = [User(id=i, username=f"u{i}", email=f"u{i}@example.org") for i in range(1, 6)]
        s.add_all(people)
        s.flush()
        kinds = ["institute", "project", "other", "collaboration"]
        for i in range(1, 9):
            s.add(Group(id=i, name=f"g{i}", title=f"g{i}" if i % 3 else f"T{i}",
                        kind=kinds[i % 4], created_by_id=None if i % 4 == 0 else (i % 5) + 1,
                        created_at=NOW - dt.timedelta(hours=12 * i * i)))
        s.flush()
        for gid, uid, manager in [(1, 1, True), (1, 2, False), (2, 2, True), (3, 3, False),
                                  (5, 4, True), (6, 2, False), (6, 5, True), (8, 1, False)]:
            s.add(GroupMember(group_id=gid, user_id=uid, is_manager=manager))
    with database.session() as s:
        loaded = list(s.scalars(sa.select(Group)))
        for g in loaded:
            _ = [m.user_id for m in g.members]
        s.expunge_all()
    return loaded


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule=rules, who=subjects)
def test_sql_filter_selects_exactly_the_rows_python_allows(database, groups_on_disk, rule, who):
    compiled = parse_rule(rule, "group", for_sql=True)
    expected = {g.id for g in groups_on_disk if compiled.evaluate(who, g, NOW)}
    with database.session() as s:
        got = set(s.scalars(sa.select(Group.id).where(compiled.to_sql(who, NOW))))
    assert got == expected, rule
