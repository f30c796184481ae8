"""The security framework: every route is guarded, every default role gets exactly what the
policy says, denials name the failing rule, scoped roles stay in their scope, and policies are
live data whose filters run inside the SQL WHERE clause."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute
from sqlalchemy import event
from starlette.routing import Mount

from astrocloud.core.errors import NotAuthenticated, PermissionDenied
from astrocloud.core.identity import services as identity
from astrocloud.core.identity.models import ApiToken, Group, User
from astrocloud.core.jobs import Job
from astrocloud.core.security import engine
from astrocloud.core.security import services as security
from astrocloud.core.security.models import Permission, Role, RoleAssignment
from astrocloud.core.security.operations import all_operations, get_operation
from astrocloud.core.security.resources import Attr, register_resource
from astrocloud.core.storage.models import Site
from astrocloud.core.usage.models import UsageEvent
from astrocloud.core.web.routing import iter_routes, route_declaration

# ---- every route is guarded --------------------------------------------------------------------


def test_every_route_invokes_an_operation_or_is_marked_public(app):
    unguarded, unknown = [], []
    for route in iter_routes(app.routes):
        public, ops = route_declaration(route)
        if isinstance(route, Mount):
            if not public:
                unguarded.append(route.path)
            continue
        if not public and not ops:
            unguarded.append(f"{sorted(getattr(route, 'methods', []) or [])} {route.path}")
        for name in ops:
            try:
                get_operation(name)
            except KeyError:
                unknown.append(f"{route.path}: {name}")
    assert not unguarded, f"routes with neither an operation nor PUBLIC: {unguarded}"
    assert not unknown, f"routes naming undeclared operations: {unknown}"


def test_the_route_table_is_not_empty_and_audited(app):
    api_routes = [r for r in iter_routes(app.routes) if isinstance(r, APIRoute)]
    assert len(api_routes) > 40
    guarded = [r for r in api_routes if route_declaration(r)[1]]
    assert len(guarded) > 30


def test_a_route_that_forgets_its_operation_fails_in_strict_mode():
    from fastapi import APIRouter, FastAPI

    from astrocloud.core.identity.operations import IdentityOps
    from astrocloud.core.web.context import AuditedRoute
    from astrocloud.core.web.routing import uses

    router = APIRouter(route_class=AuditedRoute)

    @router.get("/forgetful", openapi_extra=uses(IdentityOps.ME_READ))
    def forgetful():
        return {"ok": True}

    import httpx

    from tests.support.server import LiveServer, free_port

    app = FastAPI()
    app.state.settings = type("S", (), {"strict_security_audit": True})()
    app.include_router(router)
    server = LiveServer(app, free_port()).start()
    try:
        response = httpx.get(f"{server.url}/forgetful")
    finally:
        server.stop()
    assert response.status_code == 500
    assert "core.me.read" in response.json()["detail"]


# ---- the permission matrix --------------------------------------------------------------------

ROLES = ["anonymous", "astronomer", "admin", "operator", "telescope_manager", "qc_reviewer",
         "reviewer", "tac_member", "observer"]
SIGNED_IN = set(ROLES) - {"anonymous"}
PUBLIC = set(ROLES)

# Who may perform each kernel operation on *someone else's* resource (own resources: below).
MATRIX: dict[str, set[str]] = {
    "core.account.register": {"anonymous", "admin"},
    "core.account.verify_email": PUBLIC,
    "core.account.resend_verification": PUBLIC,
    "core.account.request_password_reset": PUBLIC,
    "core.account.reset_password": PUBLIC,
    "core.session.login": PUBLIC,
    "core.session.sso_login": PUBLIC,
    "core.session.logout": PUBLIC,
    "core.me.read": SIGNED_IN,
    "core.me.update": SIGNED_IN,
    "core.token.create": {"admin"},
    "core.token.list": {"admin"},
    "core.token.revoke": {"admin"},
    "core.user.list": {"admin", "operator"},
    "core.user.create": {"admin", "operator"},
    "core.user.update": {"admin", "operator"},
    "core.group.list": SIGNED_IN,
    "core.group.create": {"admin", "astronomer"},
    "core.group.update": {"admin"},
    "core.group.manage_members": {"admin"},
    "core.group.delete": {"admin"},
    "core.role.list": {"admin", "operator", "astronomer"},
    "core.role.manage": {"admin"},
    "core.permission.manage": {"admin"},
    "core.role_assignment.list": {"admin", "operator"},
    "core.role.assign": {"admin"},
    "core.usage.list": {"admin", "operator"},
    "core.usage.stats": {"admin", "operator"},
    "core.site.list": {"admin", "operator"} | SIGNED_IN,
    "core.site.manage": {"admin", "operator"},
    "core.storage.sweep": {"admin", "operator"},
    "core.job.list": {"admin", "operator"},
    # the Observation channel: telescopes and someone else's programme
    "observation.telescope.read": PUBLIC,
    "observation.telescope.create": {"admin", "operator"},
    "observation.telescope.update": {"admin", "operator", "telescope_manager"},
    "observation.programme.read": PUBLIC,
    "observation.programme.create": {"admin", "operator", "telescope_manager"},
    "observation.programme.update": {"admin", "operator", "telescope_manager"},
    "observation.call.read": PUBLIC,
    "observation.call.create": {"admin", "operator", "telescope_manager"},
    "observation.call.update": {"admin", "operator", "telescope_manager"},
    "observation.proposal.read": {"admin", "operator", "telescope_manager"},
    "observation.proposal.create": SIGNED_IN,
    "observation.proposal.update": {"admin"},
    "observation.proposal.submit": {"admin"},
    "observation.proposal.withdraw": {"admin"},
    "observation.proposal.join": SIGNED_IN,
    "observation.call.appoint": {"admin", "operator", "telescope_manager"},
    "observation.review.read": {"admin", "operator", "telescope_manager"},
    "observation.review.assign": {"admin", "operator", "telescope_manager"},
    "observation.review.identify": {"admin", "operator", "telescope_manager"},
    "observation.review.grade": {"admin"},
    "observation.review.declare_conflict": {"admin", "reviewer"},
    "observation.allocation.read": {"admin", "operator", "telescope_manager"},
    "observation.allocation.run": {"admin", "operator", "telescope_manager"},
    "observation.allocation.rank": {"admin", "operator", "telescope_manager"},
    "observation.allocation.publish": {"admin", "operator", "telescope_manager"},
    "observation.log.read": {"admin", "operator", "telescope_manager", "observer"},
    "observation.log.write": {"admin", "operator", "telescope_manager", "observer"},
    # the archive, on someone else's proprietary file and ingest
    "data.file.read": {"admin", "operator", "telescope_manager", "qc_reviewer"},
    "data.archive.ingest": {"admin", "operator", "telescope_manager", "observer"},
    "data.archive.deposit": {"admin"},
    "data.ingest.read": {"admin", "operator", "telescope_manager"},
    "data.qc.override": {"admin", "qc_reviewer"},
    "data.qc.rerun": {"admin", "operator", "telescope_manager", "qc_reviewer"},
    "data.release.read": {"admin", "operator"},
    "data.release.manage": {"admin", "operator"},
    # the source catalogs, on someone else's proprietary catalog
    "data.catalog.read": {"admin", "operator"},
    "data.catalog.import": {"admin", "operator"},
    "data.catalog.delete": {"admin", "operator"},
    "data.catalog.grant": {"admin", "operator"},
    # TAP: everyone queries; someone else's asynchronous query
    "data.tap.query": PUBLIC,
    "data.tap.job.read": {"admin", "operator"},
    "data.tap.job.manage": {"admin", "operator"},
    # the cross-match: everyone matches; someone else's asynchronous result is theirs alone
    "data.crossmatch.run": PUBLIC,
    "data.crossmatch.result": {"admin"},
    # the Cloud channel, on someone else's private node / account
    "cloud.vos.read": {"admin"},
    "cloud.vos.write": {"admin"},
    "cloud.vos.share": {"admin"},
    "cloud.vos.quota": {"admin", "operator"},
    "cloud.vos.set_quota": {"admin", "operator"},
}


@pytest.fixture
def world(system):
    """Somebody else's things, for every resource type the kernel's operations act on."""
    other = identity.create_user(system, username="someone", email="someone@example.org",
                                 password="a-long-password", role="astronomer")
    subjects = {"anonymous": engine.Subject.anonymous()}
    for role in ROLES[1:]:
        user = identity.create_user(system, username=f"as-{role.replace('_', '-')}",
                                    email=f"{role}@example.org", password="a-long-password",
                                    role=role)
        subjects[role] = engine.load_subject(system.db, user)
    system.subject = engine.Subject(id=other.id, username="someone", authenticated=True,
                                    roles=["astronomer"],
                                    assignments=[(0, "astronomer", "", 0)])
    group = identity.create_group(system, name="others", title="Someone else's group")
    token, _ = identity.create_token(system, user_id=other.id, name="theirs")
    system.subject = engine.Subject.system_subject()
    db = system.db
    return {
        "subjects": subjects,
        "user": db.get(User, other.id),
        "group": db.get(Group, group.id),
        "api_token": db.get(ApiToken, token.id),
        "role": db.scalar(sa.select(Role).where(Role.name == "astronomer")),
        "permission": db.scalar(sa.select(Permission).limit(1)),
        "role_assignment": db.scalar(sa.select(RoleAssignment)
                                     .where(RoleAssignment.user_id == other.id)),
        "site": db.scalar(sa.select(Site).limit(1)),
        "vos_node": _private_node(db, other),
        **_archive_world(db, other),
        "catalog": _proprietary_catalog(db, other),
        "job": Job(id=0, task="storage.sweep", owner_id=other.id),
        "tap_job": _tap_job(other),
        "usage_event": db.scalar(sa.select(UsageEvent).where(UsageEvent.user_id == other.id)
                                 .limit(1)) or UsageEvent(id=0, user_id=other.id,
                                                          operation="x", channel="core",
                                                          outcome="ok"),
    }


def _archive_world(db, owner):
    """A telescope, someone else's programme, a still-proprietary file of it and an ingest."""
    import datetime as dt

    from astrocloud.data.archive.models import ArchiveFile, IngestRecord
    from astrocloud.observation.models import Programme, ProgrammeMember, Telescope

    telescope = Telescope(name="Matrix 1m", longitude=117.6, latitude=40.4, elevation=900)
    db.add(telescope)
    db.flush()
    programme = Programme(code="M-001", telescope_id=telescope.id, pi_id=owner.id)
    db.add(programme)
    db.flush()
    db.add(ProgrammeMember(programme_id=programme.id, user_id=owner.id, role="pi"))
    db.commit()
    now = dt.datetime.now(dt.UTC)
    archived = ArchiveFile(id=0, telescope_id=telescope.id, programme_id=programme.id,
                           date_obs=now, obs_release_date=now + dt.timedelta(days=300),
                           filename="x.fits", size=1, checksum="sha256:0", obs_collection="m",
                           obs_id="x", facility_name="Matrix 1m", uri="ac://archive/m/x")
    ingest = IngestRecord(id=0, telescope_id=telescope.id, source="upload", filename="x.fits",
                          path="/nowhere", submitted_by_id=owner.id)
    from astrocloud.data.archive.models import DataRelease

    draft = DataRelease(id=0, name="DR9", title="A draft", release_date=now, status="draft")
    return {"telescope": telescope, "programme": programme, "archive_file": archived,
            "ingest": ingest, "data_release": draft, **_observation_world(db, telescope, owner)}


def _observation_world(db, telescope, owner):
    """A call on the telescope and someone else's draft proposal answering it."""
    import datetime as dt

    from astrocloud.observation.models import (
        Allocation,
        ObservationCall,
        ObservationLog,
        Proposal,
        Review,
    )

    now = dt.datetime.now(dt.UTC)
    call = ObservationCall(telescope_id=telescope.id, name="M1", opens_at=now,
                           closes_at=now + dt.timedelta(days=9),
                           semester_start=now + dt.timedelta(days=30),
                           semester_end=now + dt.timedelta(days=200),
                           review_deadline=now + dt.timedelta(days=20))
    db.add(call)
    db.flush()
    proposal = Proposal(call_id=call.id, telescope_id=telescope.id, pi_id=owner.id,
                        title="Theirs", targets=[], custom_fields={},
                        requested_by_instrument={})
    db.add(proposal)
    db.flush()
    review = Review(proposal_id=proposal.id, call_id=call.id, telescope_id=telescope.id,
                    reviewer_id=owner.id)
    db.add(review)
    db.commit()
    # not stored: rules only read their attributes
    allocation = Allocation(id=0, proposal_id=proposal.id, call_id=call.id, call=call,
                            telescope_id=telescope.id, pi_id=owner.id, rank=1,
                            published=False)
    log = ObservationLog(id=0, telescope_id=telescope.id, programme_id=0, pi_id=owner.id,
                         target="x", start=now, end=now)
    return {"call": call, "proposal": proposal, "review": review, "allocation": allocation,
            "observation_log": log}


def _proprietary_catalog(db, owner):
    """Someone else's catalog, private for another year (its metadata is enough for rules)."""
    import datetime as dt

    from astrocloud.data.catalogs.models import Catalog

    catalog = Catalog(name="matrix", table_name="cat_matrix", ra_column="ra",
                      dec_column="dec", owner_id=owner.id,
                      proprietary_until=dt.datetime.now(dt.UTC) + dt.timedelta(days=365))
    db.add(catalog)
    db.commit()
    return catalog


def _tap_job(owner):
    import datetime as dt

    from astrocloud.data.vo.models import TapJob

    return TapJob(id="0" * 20, owner_id=owner.id, phase="PENDING", query="SELECT 1",
                  destruction=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))


def _private_node(db, owner):
    from astrocloud.cloud.models import Node

    root = Node(owner_id=owner.id, path=owner.username, name=owner.username, kind="container")
    db.add(root)
    db.flush()
    node = Node(owner_id=owner.id, path=f"{owner.username}/private.fits", name="private.fits",
                kind="data", parent_id=root.id)
    db.add(node)
    db.commit()
    return node


def test_the_matrix_covers_every_operation():
    declared = {name for name in all_operations() if not name.startswith("testing.")}
    assert declared == set(MATRIX), "add new operations to the permission matrix"


@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(system, world, role):
    subject = world["subjects"][role]
    allowed, denied = set(), set()
    for name, op in all_operations().items():
        if name not in MATRIX:
            continue
        resource = world[op.resource] if op.resource else None
        ok, _ = engine.evaluate(system.db, subject, op, resource)
        (allowed if ok else denied).add(name)
    expected = {name for name, roles in MATRIX.items() if role in roles}
    assert allowed == expected, (
        f"{role}: unexpectedly allowed {sorted(allowed - expected)}, "
        f"unexpectedly denied {sorted(expected - allowed)}")


def test_everyone_may_act_on_their_own_tokens_and_see_their_own_usage(system, world):
    me = world["subjects"]["observer"]
    user = system.db.get(User, me.id)
    token, _ = identity.create_token(system, user_id=me.id, name="mine")
    own_event = UsageEvent(user_id=me.id, operation="core.me.read", channel="core", outcome="ok")
    for op_name, resource in [("core.token.create", user), ("core.token.list", token),
                              ("core.token.revoke", token), ("core.usage.list", own_event)]:
        assert engine.evaluate(system.db, me, get_operation(op_name), resource)[0], op_name


def test_group_managers_manage_their_own_group(system, world):
    manager = world["subjects"]["astronomer"]
    system.subject = manager
    group = identity.create_group(system, name="mine", title="Mine")
    system.subject = engine.Subject.system_subject()
    for op in ("core.group.update", "core.group.manage_members", "core.group.delete"):
        assert engine.evaluate(system.db, manager, get_operation(op), group)[0], op


# ---- denials ----------------------------------------------------------------------------------


def test_a_denial_names_the_rule_that_failed(system, world):
    astronomer = world["subjects"]["astronomer"]
    with pytest.raises(PermissionDenied) as info:
        engine.authorize(system.db, astronomer, get_operation("core.group.update"),
                         world["group"])
    assert "subject.id in manager_ids" in str(info.value)
    assert info.value.extra["operation"] == "core.group.update"
    assert any("manager_ids" in r for r in info.value.extra["failed_rules"])


def test_a_denial_without_any_grant_says_so(system, world):
    with pytest.raises(PermissionDenied, match="None of your roles grants"):
        engine.authorize(system.db, world["subjects"]["observer"],
                         get_operation("core.role.manage"), world["role"])


def test_anonymous_visitors_are_asked_to_sign_in(system, world):
    with pytest.raises(NotAuthenticated):
        engine.authorize(system.db, world["subjects"]["anonymous"],
                         get_operation("core.group.create"))


def test_the_api_reports_the_failed_rule_in_problem_json(users, system):
    owner = users.api("astronomer", "owner")
    group = owner.post("/api/v1/groups", json={"name": "owned", "title": "Owned"}).json()
    intruder = users.api("astronomer", "intruder")
    response = intruder.patch(f"/api/v1/groups/{group['id']}", json={"title": "Mine now"})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["operation"] == "core.group.update"
    assert any("subject.id in manager_ids" in rule for rule in body["failed_rules"])
    assert owner.get(f"/api/v1/groups/{group['id']}").json()["title"] == "Owned"


# ---- scoped role assignments ------------------------------------------------------------------


@register_resource("scoped_probe", scopes={"group": "group_id"},
                   extra={"group_id": Attr("int", python=lambda o: o.group_id,
                                           sql=lambda m: m.id)})
class ScopedProbe:
    """A stand-in resource that lives in a group, for testing scoped assignments."""

    def __init__(self, group_id):
        self.group_id = group_id


def test_a_scoped_role_applies_only_inside_its_scope(system, users):
    from astrocloud.core.security.operations import Action, OperationSet

    class ProbeOps(OperationSet):
        POKE = Action("testing.poke_scoped", resource="scoped_probe")

    role = security.create_role(system, name="probe_keeper", scope_types=["group"])
    security.grant_permission(system, role_id=role.id, operation_name=ProbeOps.POKE.name)
    keeper = users.create("keeper")
    security.assign(system, user_id=keeper.id, role="probe_keeper", scope_type="group",
                    scope_id=5)
    subject = engine.load_subject(system.db, keeper)
    assert engine.evaluate(system.db, subject, ProbeOps.POKE, ScopedProbe(5))[0]
    assert not engine.evaluate(system.db, subject, ProbeOps.POKE, ScopedProbe(6))[0]
    with pytest.raises(PermissionDenied):
        engine.authorize(system.db, subject, ProbeOps.POKE, ScopedProbe(6))


def test_a_role_cannot_be_scoped_to_a_scope_type_it_does_not_allow(users):
    admin = users.api("admin")
    someone = users.create("someone")
    response = admin.post(f"/api/v1/users/{someone.id}/roles",
                          json={"role": "reviewer", "scope_type": "telescope", "scope_id": 3})
    assert response.status_code == 422
    assert "cannot be scoped" in response.json()["detail"]


def test_scoped_filter_compiles_into_sql_with_the_scope(system, users):
    group_a = identity.create_group(system, name="scope-a", title="A")
    identity.create_group(system, name="scope-b", title="B")
    role = security.create_role(system, name="group_reader", scope_types=["group"])
    # Only scoped grants: take away the public "signed-in users see groups" grant first.
    public = system.db.scalar(sa.select(Permission).join(Role).where(
        Role.name == "public", Permission.operation == "core.group.list"))
    security.revoke_permission(system, permission_id=public.id)
    security.grant_permission(system, role_id=role.id, operation_name="core.group.list")
    reader = users.create("reader", role="")
    security.assign(system, user_id=reader.id, role="group_reader", scope_type="group",
                    scope_id=group_a.id)
    client = users.api(reader)
    listing = client.get("/api/v1/groups").json()
    assert [g["name"] for g in listing["items"]] == ["scope-a"]
    assert listing["total"] == 1


# ---- policies are live data, enforced in SQL --------------------------------------------------


@pytest.fixture
def sql_log(database):
    statements: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", capture)
    yield statements
    event.remove(database.engine, "before_cursor_execute", capture)


def test_an_admin_changing_a_filter_changes_the_next_listing_through_sql(system, users, sql_log):
    for i in range(30):
        identity.create_group(system, name=f"inst-{i:02d}" if i % 3 == 0 else f"coll-{i:02d}",
                              title=f"Group {i}", kind="institute" if i % 3 == 0 else
                              "collaboration")
    astronomer = users.api("astronomer", "stargazer")
    before = astronomer.get("/api/v1/groups", params={"per_page": 5}).json()
    assert before["total"] == 30 and len(before["items"]) == 5

    admin = users.api("admin", "root")
    perms = admin.get("/api/v1/roles").json()
    public = next(r for r in perms if r["name"] == "public")
    perm = next(p for p in public["permissions"] if p["operation"] == "core.group.list")
    changed = admin.patch(f"/api/v1/permissions/{perm['id']}",
                          json={"rule": "subject.authenticated and kind == 'institute'"})
    assert changed.status_code == 200, changed.text

    sql_log.clear()
    after = astronomer.get("/api/v1/groups", params={"per_page": 5}).json()
    assert after["total"] == 10
    assert len(after["items"]) == 5
    assert all(g["kind"] == "institute" for g in after["items"])
    listing_sql = [s for s in sql_log if "FROM groups" in s and "groups.kind" in s]
    assert any(re.search(r"WHERE.*groups\.kind\s*=", s, re.S) for s in listing_sql), listing_sql
    assert any("count(" in s.lower() for s in listing_sql), "the count is filtered in SQL too"
    assert any("LIMIT" in s for s in listing_sql), "the page is cut in SQL"


def test_an_invalid_rule_is_refused_and_nothing_changes(users):
    admin = users.api("admin", "root")
    roles = admin.get("/api/v1/roles").json()
    astronomer = next(r for r in roles if r["name"] == "astronomer")
    perm = astronomer["permissions"][0]
    response = admin.patch(f"/api/v1/permissions/{perm['id']}", json={"rule": "owner_id =="})
    assert response.status_code == 422
    assert "syntax error" in response.json()["detail"]
    assert admin.get(f"/api/v1/permissions/{perm['id']}").json()["rule"] == perm["rule"]


def test_granting_a_new_permission_takes_effect_at_once(users):
    operator_client = users.api("operator", "opera")
    assert operator_client.post("/api/v1/roles", json={"name": "x_role"}).status_code == 403
    admin = users.api("admin", "root")
    operator_role = next(r for r in admin.get("/api/v1/roles").json() if r["name"] == "operator")
    granted = admin.post(f"/api/v1/roles/{operator_role['id']}/permissions",
                         json={"operation": "core.role.manage", "rule": "not builtin"})
    assert granted.status_code == 201, granted.text
    assert operator_client.post("/api/v1/roles", json={"name": "x_role"}).status_code == 201


def test_a_rule_that_uses_the_time_is_evaluated_at_request_time(system, users):
    reader = users.create("timekeeper")
    subject = engine.load_subject(system.db, reader)
    old = identity.create_group(system, name="old", title="Old")
    system.db.get(Group, old.id).created_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    system.db.commit()
    identity.create_group(system, name="new", title="New")
    public = system.db.scalar(sa.select(Permission).join(Role).where(
        Role.name == "public", Permission.operation == "core.group.list"))
    security.update_permission(system, permission_id=public.id,
                               rule="created_at <= now - days(30)")
    visible = system.db.scalars(sa.select(Group.name).where(engine.query_filter(
        system.db, subject, get_operation("core.group.list")))).all()
    assert visible == ["old"]
