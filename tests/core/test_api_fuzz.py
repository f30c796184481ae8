"""Property-based fuzzing of the JSON API with Schemathesis: for every operation in the OpenAPI
document, generated inputs — valid and invalid — sent over real HTTP to the live server never
get a 5xx, neither as an administrator (who reaches every code path past authorization) nor
anonymously.

Each operation is its own test, so it starts from a fresh install with a little data to act on
(an administrator, an astronomer with a token, a group): what one operation's examples do
(revoking the admin's token, deleting a role's permission…) cannot blind the next operation.

The document is built from the application's code when the tests are collected (Schemathesis'
lazy `from_fixture` loader does not work with pytest 9), and a test checks that the live server
serves exactly that document."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from astrocloud.app import create_app
from astrocloud.core.config import Settings
from astrocloud.core.db import Database
from astrocloud.core.identity import services as identity

FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,  # no example database written into the source tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def served_document() -> dict:
    """The OpenAPI document of the application, built without a database or a server."""
    with tempfile.TemporaryDirectory(prefix="astrocloud-openapi-") as home:
        app = create_app(Settings(home=Path(home), secret_key="only-to-build-the-document"),
                         Database("sqlite://"))
        return app.openapi()


DOCUMENT = served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture
def admin_token(users, system) -> str:
    """An administrator's token, with an astronomer, a token and a group to act on."""
    admin = users.create("fuzzadmin", role="admin")
    vega = users.create("vega", role="astronomer")
    group = identity.create_group(system, name="lamost", title="LAMOST")
    identity.add_member(system, group_id=group.id, username=vega.username, manager=True)
    users.token(vega)
    return users.token(admin)


def test_the_fuzzed_document_is_the_one_the_live_server_serves(client):
    assert client.get("/openapi.json").json() == DOCUMENT


@schema.parametrize()
@FUZZ
def test_no_generated_input_gets_a_server_error_as_an_administrator(case, live_server,
                                                                     admin_token):
    case.call_and_validate(base_url=live_server, checks=[not_a_server_error], timeout=30,
                           headers={"Authorization": f"Bearer {admin_token}"})


@schema.parametrize()
@FUZZ
def test_no_generated_input_gets_a_server_error_anonymously(case, live_server, admin_token):
    # admin_token: the same data to act on as above, without using the token
    case.call_and_validate(base_url=live_server, checks=[not_a_server_error], timeout=30)
