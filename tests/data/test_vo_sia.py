"""SIA 2.0 over the archive, driven by pyvo's SIA2Service: discovery by position (circle,
range, polygon), band, time and the other constraints, ObsCore records, the release rule with
and without a token, VOSI, and VOTable errors."""

from __future__ import annotations

import io

import httpx
import pytest
import pyvo
import requests
from astropy.io.votable import parse_single_table
from lxml import etree


def sia(live_server, session=None):
    return pyvo.dal.SIA2Service(f"{live_server}/sia", session=session)


def query(live_server, params, headers=None):
    response = httpx.get(f"{live_server}/sia/query", params=params, headers=headers)
    assert response.status_code == 200, response.text
    table = parse_single_table(io.BytesIO(response.content))
    return [row["obs_publisher_did"] for row in table.array]


def did(ident: int) -> str:
    return f"ivo://astrocloud/archive?{ident}"


def test_pyvo_finds_released_images_by_position(live_server, world):
    results = sia(live_server).search(pos=(10.68, 41.27, 0.2))
    assert [r.obs_publisher_did for r in results] == [did(world["released"])]
    record = results[0]
    assert record.dataproduct_type == "image" and record.facility_name == "Xinglong 2.16m"
    assert record.access_url.endswith(f"/api/v1/data/observations/{world['released']}/file")
    assert httpx.get(record.access_url).content == world["paths"]["released"].read_bytes()


def test_proprietary_images_need_a_token_of_their_team(live_server, world, users):
    assert query(live_server, {"POS": "CIRCLE 202.47 47.2 0.5"}) == []
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {users.token(world['pi'])}"
    results = sia(live_server, session).search(pos=(202.47, 47.2, 0.5))
    assert [r.obs_publisher_did for r in results] == [did(world["private"])]


@pytest.mark.parametrize("params,expected", [
    ({"POS": "RANGE 10 11.5 40 42"}, "released"),
    ({"POS": "RANGE 350 11 40 42"}, "released"),  # across RA = 0
    ({"POS": "POLYGON 10 40 12 40 12 42 10 42"}, "released"),
    ({"POS": "POLYGON 100 0 101 0 101 1"}, None),
    ({"BAND": "5e-7 5.6e-7"}, "released"),
    ({"BAND": "2e-6 +Inf"}, None),
    ({"TIME": "58853 58854"}, "released"),  # 2020-01-05
    ({"TIME": "60000 +Inf"}, None),
    ({"EXPTIME": "30 90"}, "released"),
    ({"FOV": "0 0.001"}, None),
    ({"INSTRUMENT": "BFOSC", "FACILITY": "Xinglong 2.16m", "DPTYPE": "image"}, "released"),
    ({"COLLECTION": "nowhere"}, None),
    ({"CALIB": "1"}, "released"),
    ({"CALIB": "3"}, None),
    ({"TARGET": "M 31"}, "released"),
    ({"POL": "I"}, None),
    ({"FORMAT": "application/fits"}, "released"),
])
def test_each_constraint(live_server, world, params, expected):
    found = query(live_server, params)
    assert found == ([did(world[expected])] if expected else [])


def test_alternatives_of_one_parameter_combine_with_or(live_server, world, users):
    token = {"Authorization": f"Bearer {users.token(world['pi'])}"}
    found = query(live_server, [("POS", "CIRCLE 10.68 41.27 0.2"),
                                ("POS", "CIRCLE 202.47 47.2 0.2")], token)
    assert sorted(found) == sorted([did(world["released"]), did(world["private"])])
    assert query(live_server, [("ID", did(world["released"]))]) == [did(world["released"])]


def test_maxrec_marks_an_overflow(live_server, world, users):
    token = {"Authorization": f"Bearer {users.token(world['pi'])}"}
    response = httpx.get(f"{live_server}/sia/query", params={"MAXREC": 1}, headers=token)
    assert b'name="QUERY_STATUS" value="OVERFLOW"' in response.content


@pytest.mark.parametrize("params", [
    {"POS": "CIRCLE 10 41"}, {"POS": "CIRCLE 400 41 1"}, {"POS": "BOX 1 2 3 4"},
    {"POS": "POLYGON 1 2 3 4"}, {"BAND": "7e-7 5e-7"}, {"BAND": "red"}, {"TIME": "1 2 3"},
    {"CALIB": "9"}, {"POL": "Z"}, {"MAXREC": "-1"}, {"RESPONSEFORMAT": "fits"},
    {"BAND": "nan 1"},
])
def test_bad_queries_get_a_votable_error(live_server, world, params):
    response = httpx.get(f"{live_server}/sia/query", params=params)
    assert 400 <= response.status_code < 500, response.text
    assert b'value="ERROR"' in response.content


def test_vosi_capabilities_point_at_the_query_endpoint(live_server):
    caps = etree.fromstring(httpx.get(f"{live_server}/sia/capabilities").content)
    sia2 = next(c for c in caps.findall("capability")
                if c.get("standardID") == "ivo://ivoa.net/std/SIA#query-2.0")
    assert sia2.findtext("interface/accessURL").endswith("/sia/query")
    avail = etree.fromstring(httpx.get(f"{live_server}/sia/availability").content)
    assert avail.findtext("{http://www.ivoa.net/xml/VOSIAvailability/v1.0}available") == "true"


def test_results_carry_a_datalink_service_descriptor(live_server, world):
    """pyvo (and TOPCAT) find each image's links through the descriptor in the result."""
    results = sia(live_server).search(pos=(10.68, 41.27, 0.2))
    links = results[0].getdatalink().to_table()
    assert "#this" in list(links["semantics"])
