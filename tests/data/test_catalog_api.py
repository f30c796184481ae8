"""The catalogs' JSON API over real HTTP: the list, a catalog's metadata and columns, the cone
search, and problem+json answers for bad input and for catalogs the caller may not see."""

from __future__ import annotations

import datetime as dt

import pytest

from astrocloud.core.identity import services as identity
from astrocloud.data.catalogs import services
from tests.data import test_catalogs as shared
from tests.data.test_catalogs import COLUMNS_META, brute_force, columns_for, sky, write_parquet

# the catalog fixtures (tests/data has no conftest of its own)
no_catalog_tables = shared.no_catalog_tables

BASE = "/api/v1/data/catalogs"


@pytest.fixture
def catalogs(system, users, tmp_path):
    """A public catalog and one private to "owner" and the group "team" for a year."""
    people = {"owner": users.create("owner"), "member": users.create("member")}
    group = identity.create_group(system, name="team", title="Team")
    identity.add_member(system, group_id=group.id, username="member")
    ra, dec = sky(3000, seed=21)
    path = write_parquet(tmp_path / "sky.parquet", columns_for(ra, dec))
    services.import_catalog(system, path, name="open_sky", title="Open sky",
                            description="Everyone's")
    services.import_catalog(system, path, name="closed_sky", owner="owner", groups=["team"],
                            proprietary_until=dt.datetime.now(dt.UTC) + dt.timedelta(days=365))
    return {"ra": ra, "dec": dec, **people}


def test_the_list_shows_the_public_catalogs_to_everyone(client, catalogs):
    body = client.get(BASE).json()
    assert body["total"] == 1
    (item,) = body["items"]
    assert {k: item[k] for k in ("name", "title", "description", "n_rows", "n_columns",
                                 "ra_column", "dec_column", "public", "url")} == {
        "name": "open_sky", "title": "Open sky", "description": "Everyone's", "n_rows": 3900,
        "n_columns": 7, "ra_column": "ra", "dec_column": "dec", "public": True,
        "url": "/api/v1/data/catalogs/open_sky"}
    assert item["table_name"] == "cat_open_sky"
    assert item["index_kind"] in ("healpix", "q3c")


def test_the_list_shows_a_private_catalog_to_its_group(users, system, catalogs):
    import sqlalchemy as sa

    from astrocloud.core.identity.models import User

    member = system.db.scalar(sa.select(User).where(User.username == "member"))
    names = [c["name"] for c in users.api(member).get(BASE).json()["items"]]
    assert names == ["closed_sky", "open_sky"]


def test_a_catalogs_metadata_lists_its_columns_as_tap_schema_needs_them(client, catalogs):
    body = client.get(f"{BASE}/open_sky").json()
    columns = {c["name"]: c for c in body["columns"]}
    assert list(columns) == ["source_id", "ra", "dec", "gmag", "class", "good", "n_obs"]
    assert columns["gmag"] == {"name": "gmag", "original_name": "gmag", "position": 3,
                               "datatype": "float", "arraysize": None, "xtype": None,
                               "unit": "mag", "ucd": COLUMNS_META["gmag"][1],
                               "description": COLUMNS_META["gmag"][2], "indexed": False}
    assert columns["ra"]["indexed"] and columns["dec"]["indexed"]
    assert columns["class"]["arraysize"] == "*"
    assert body["groups"] is None  # only whoever may change them sees the groups


def test_the_owner_sees_the_groups_of_a_private_catalog(users, system, catalogs):
    import sqlalchemy as sa

    from astrocloud.core.identity.models import User

    owner = system.db.scalar(sa.select(User).where(User.username == "owner"))
    body = users.api(owner).get(f"{BASE}/closed_sky").json()
    assert body["public"] is False
    assert body["owner"] == "owner"
    assert body["groups"] == ["team"]


def test_the_cone_search_returns_the_rows_nearest_first(client, catalogs):
    expected = brute_force(catalogs["ra"], catalogs["dec"], 10.0, 20.0, 8.0)
    response = client.get(f"{BASE}/open_sky/cone", params={"ra": 10, "dec": 20, "radius": 8})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(expected) and body["truncated"] is False
    assert body["columns"][-1] == "_distance"
    assert [r["source_id"] for r in body["rows"]] == sorted(expected, key=expected.get)


def test_the_cone_search_honours_its_limit(client, catalogs):
    body = client.get(f"{BASE}/open_sky/cone",
                      params={"ra": 10, "dec": 20, "radius": 30, "limit": 3}).json()
    assert body["count"] == 3 and body["truncated"] is True


@pytest.mark.parametrize("params", [
    {"ra": 360, "dec": 0, "radius": 1},
    {"ra": -1, "dec": 0, "radius": 1},
    {"ra": 10, "dec": 90.5, "radius": 1},
    {"ra": 10, "dec": 0, "radius": 0},
    {"ra": 10, "dec": 0, "radius": 181},
    {"ra": "nan", "dec": 0, "radius": 1},
    {"ra": 10, "dec": "inf", "radius": 1},
    {"ra": "ten", "dec": 0, "radius": 1},
    {"ra": 10, "dec": 0},
    {"ra": 10, "dec": 0, "radius": 1, "limit": 0},
    {"ra": 10, "dec": 0, "radius": 1, "limit": 10_001},
], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_bad_cone_parameters_are_a_422_problem(client, catalogs, params):
    response = client.get(f"{BASE}/open_sky/cone", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


@pytest.mark.parametrize("path", ["/no_such_catalog", "/closed_sky", "/no_such_catalog/cone",
                                  "/closed_sky/cone", "/BAD%20NAME", "/x%3Bdrop/cone"])
def test_what_does_not_exist_or_is_hidden_is_a_404_problem(client, catalogs, path):
    response = client.get(f"{BASE}{path}", params={"ra": 1, "dec": 1, "radius": 1})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_a_new_catalog_is_served_the_moment_its_import_commits(client, system, tmp_path):
    assert client.get(BASE).json()["total"] == 0
    ra, dec = sky(100, seed=1)
    services.import_catalog(system, write_parquet(tmp_path / "n.parquet", columns_for(ra, dec)),
                            name="fresh")
    assert [c["name"] for c in client.get(BASE).json()["items"]] == ["fresh"]
    hit = client.get(f"{BASE}/fresh/cone",
                     params={"ra": float(ra[0]), "dec": float(dec[0]), "radius": 1e-4}).json()
    assert [r["source_id"] for r in hit["rows"]] == [1]
