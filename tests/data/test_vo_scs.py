"""Simple Cone Search 1.03 over every catalog, driven by pyvo (the client astronomers use):
results, the UCD1 markers the standard asks for, VOSI, errors as VOTables, and proprietary
catalogs for their readers only (a personal API token from pyvo)."""

from __future__ import annotations

import datetime as dt
import math

import httpx
import pytest
import pyvo
import requests
from astropy.io.votable import parse_single_table
from lxml import etree

from astrocloud.data.archive.synthetic import write_catalog
from astrocloud.data.catalogs import services as catalogs


@pytest.fixture
def reader(users):
    return users.create("reader1")


@pytest.fixture
def stars(system, tmp_path, reader):
    path = write_catalog(tmp_path / "stars.fits", n_rows=3000, seed=5, ra_range=(9, 12),
                         dec_range=(40, 42))
    catalogs.import_catalog(system, path, name="stars", title="Stars near M 31")
    secret = write_catalog(tmp_path / "secret.fits", n_rows=200, seed=6, ra_range=(9, 12),
                           dec_range=(40, 42))
    catalogs.import_catalog(system, secret, name="secret", title="Not yet",
                            proprietary_until=dt.date(2099, 1, 1), owner="reader1")
    return path


def brute_force(path, ra, dec, radius) -> int:
    from astropy.table import Table

    table = Table.read(path)
    count = 0
    for r, d in zip(table["ra"], table["dec"], strict=True):
        cos = (math.sin(math.radians(d)) * math.sin(math.radians(dec))
               + math.cos(math.radians(d)) * math.cos(math.radians(dec))
               * math.cos(math.radians(r - ra)))
        count += math.degrees(math.acos(min(1.0, cos))) <= radius
    return count


def test_pyvo_finds_the_sources_in_a_cone(live_server, stars):
    service = pyvo.dal.SCSService(f"{live_server}/scs/stars")
    result = service.search(pos=(10.68, 41.27), radius=0.3)
    assert len(result) == brute_force(stars, 10.68, 41.27, 0.3) > 0
    table = result.to_table()
    assert list(table["_r"]) == sorted(table["_r"])  # nearest first
    assert max(table["_r"]) <= 0.3


def test_the_table_marks_id_and_position_with_scs_ucds(live_server, stars):
    response = httpx.get(f"{live_server}/scs/stars",
                         params={"RA": 10.68, "DEC": 41.27, "SR": 0.1})
    assert response.headers["content-type"].startswith("application/x-votable+xml")
    import io

    table = parse_single_table(io.BytesIO(response.content))
    ucds = {f.ucd for f in table.fields}
    assert {"ID_MAIN", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN"} <= ucds
    ra = next(f for f in table.fields if f.ucd == "POS_EQ_RA_MAIN")
    assert str(ra.unit) == "deg"


def test_verbosity_and_metadata_only_queries(live_server, stars):
    import io

    small = parse_single_table(io.BytesIO(httpx.get(f"{live_server}/scs/stars", params={
        "RA": 10.68, "DEC": 41.27, "SR": 0.1, "VERB": 1}).content))
    full = parse_single_table(io.BytesIO(httpx.get(f"{live_server}/scs/stars", params={
        "ra": 10.68, "dec": 41.27, "sr": 0.1, "verb": 3}).content))
    assert len(small.fields) == 4 < len(full.fields)  # id, ra, dec, distance
    empty = parse_single_table(io.BytesIO(httpx.get(f"{live_server}/scs/stars", params={
        "RA": 10.68, "DEC": 41.27, "SR": 0}).content))
    assert len(empty.array) == 0 and len(empty.fields) == len(full.fields)


@pytest.mark.parametrize("params", [
    {"RA": 10, "DEC": 41}, {"RA": "ten", "DEC": 41, "SR": 1}, {"RA": 10, "DEC": 95, "SR": 1},
    {"RA": 10, "DEC": 41, "SR": 45}, {"RA": 10, "DEC": 41, "SR": -1},
    {"RA": 10, "DEC": 41, "SR": 1, "VERB": 7}, {"RA": "nan", "DEC": 41, "SR": 1},
])
def test_bad_queries_get_a_votable_error(live_server, stars, params):
    response = httpx.get(f"{live_server}/scs/stars", params=params)
    assert 400 <= response.status_code < 500
    assert b"QUERY_STATUS" in response.content and b'value="ERROR"' in response.content


def test_pyvo_reports_a_refused_query_as_an_error(live_server, stars):
    with pytest.raises(pyvo.dal.DALQueryError):
        pyvo.dal.SCSService(f"{live_server}/scs/stars").search(pos=(10, 41), radius=45)


def test_an_unknown_or_proprietary_catalog_is_not_found(live_server, stars):
    for name in ("nothing", "secret"):
        response = httpx.get(f"{live_server}/scs/{name}", params={"RA": 10, "DEC": 41,
                                                                  "SR": 1})
        assert response.status_code == 404 and b'value="ERROR"' in response.content


def test_its_reader_queries_a_proprietary_catalog_from_pyvo_with_a_token(
        live_server, stars, users, reader):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {users.token(reader)}"
    service = pyvo.dal.SCSService(f"{live_server}/scs/secret", session=session)
    assert len(service.search(pos=(10.5, 41.0), radius=2.0)) > 0
    basic = requests.Session()
    basic.auth = ("reader1", users.token(reader))  # the token as the password of Basic auth
    assert len(pyvo.dal.SCSService(f"{live_server}/scs/secret", session=basic).search(
        pos=(10.5, 41.0), radius=2.0)) > 0


def test_vosi_capabilities_and_availability(live_server, stars):
    caps = etree.fromstring(httpx.get(f"{live_server}/scs/stars/capabilities").content)
    ids = [c.get("standardID") for c in caps.findall("capability")]
    assert ids == ["ivo://ivoa.net/std/ConeSearch", "ivo://ivoa.net/std/VOSI#capabilities",
                   "ivo://ivoa.net/std/VOSI#availability"]
    assert caps.findtext("capability/maxSR") == "10.0"
    avail = etree.fromstring(httpx.get(f"{live_server}/scs/stars/availability").content)
    assert avail.findtext("{http://www.ivoa.net/xml/VOSIAvailability/v1.0}available") == "true"
