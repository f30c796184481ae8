"""The cross-match service: both engines agree with a brute-force computation (best and all
matches, across RA = 0 and at the poles), an uploaded table is matched over real HTTP, a
proprietary catalog is matched only by those who may read it, large matches run as jobs whose
result only their owner fetches, every kind of bad input is a 4xx problem, and the page works
in a browser."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import subprocess

import numpy as np
import pytest
from playwright.sync_api import expect

from astrocloud.core.errors import NotFound
from astrocloud.core.identity import services as identity
from astrocloud.data.catalogs import services as catalogs
from astrocloud.data.xmatch import engines, fetch, services
from tests.data import test_catalogs as shared
from tests.data.test_catalogs import columns_for, sky, write_parquet

no_catalog_tables = shared.no_catalog_tables
acting = shared.acting

URL = "/api/v1/data/crossmatch"
RADIUS = 30.0  # arcsec


def brute_force(ra1, dec1, ra2, dec2, radius_arcsec):
    """Every separation (arcsec) between the two lists of positions, by the haversine."""
    a1, d1 = np.radians(ra1)[:, None], np.radians(dec1)[:, None]
    a2, d2 = np.radians(ra2)[None, :], np.radians(dec2)[None, :]
    hav = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((a2 - a1) / 2) ** 2
    sep = np.degrees(2 * np.arcsin(np.sqrt(np.clip(hav, 0, 1)))) * 3600
    return sep


def pairs_of(sep, radius, mode):
    i, j = np.nonzero(sep <= radius)
    if mode == "all":
        return {(int(a), int(b)): float(sep[a, b]) for a, b in zip(i, j, strict=True)}
    out = {}
    for a in np.unique(i):
        b = int(np.argmin(sep[a]))
        out[(int(a), b)] = float(sep[a, b])
    return out


def neighbours_of(ra, dec, seed, scatter_arcsec=20.0):
    """A second list of positions: each one moved by up to ~`scatter` arcsec, plus extras
    around each (so that "all" finds several), all wrapped onto the sphere."""
    rng = np.random.default_rng(seed)
    out_ra, out_dec = [], []
    for copies in range(2):
        step = scatter_arcsec / 3600 * (1 + copies)
        d = np.clip(dec + rng.normal(0, step / 2, len(dec)), -90, 90)
        cos = np.maximum(np.cos(np.radians(d)), 1e-3)
        out_ra.append(np.mod(ra + rng.normal(0, step / 2, len(ra)) / cos, 360.0))
        out_dec.append(d)
    ra2, dec2 = np.concatenate(out_ra), np.concatenate(out_dec)
    ra2[ra2 >= 360] = 0.0
    return ra2, dec2


@pytest.fixture
def skies(system, tmp_path, database):
    """Two catalogs with matches everywhere, poles and RA = 0 included: `left_sky` and
    `right_sky` (healpix), and on PostgreSQL `left_q3c`/`right_q3c` (q3c)."""
    ra1, dec1 = sky(600, seed=31)
    ra2, dec2 = neighbours_of(ra1, dec1, seed=32)
    left = write_parquet(tmp_path / "left.parquet", columns_for(ra1, dec1, seed=1))
    right = write_parquet(tmp_path / "right.parquet", columns_for(ra2, dec2, seed=2))
    catalogs.import_catalog(system, left, name="left_sky", index="healpix")
    catalogs.import_catalog(system, right, name="right_sky", index="healpix")
    q3c = database.dialect == "postgresql"
    if q3c:
        catalogs.import_catalog(system, left, name="left_q3c", index="q3c")
        catalogs.import_catalog(system, right, name="right_q3c", index="q3c")
    return {"ra1": ra1, "dec1": dec1, "ra2": ra2, "dec2": dec2, "q3c": q3c,
            "left_path": left, "right_path": right}


def found_pairs(result) -> dict[tuple[int, int], float]:
    """(left row, right row) → separation, from source ids (which count rows from 1)."""
    left_ids = result.table.column("source_id").to_pylist()
    right_ids = result.table.column(f"{result.right}_source_id").to_pylist()
    seps = result.table.column("separation").to_pylist()
    return {(a - 1, b - 1): s for a, b, s in zip(left_ids, right_ids, seps, strict=True)}


def assert_same(found, expected):
    assert set(found) == set(expected)
    for key, sep in expected.items():
        assert found[key] == pytest.approx(sep, abs=1e-6)


# ---- correctness ------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [1.0, 10.0, 120.0, 3600.0])
def test_the_zone_match_agrees_with_brute_force_at_the_poles_and_across_ra_0(radius):
    ra1, dec1 = sky(700, seed=5)
    ra2, dec2 = neighbours_of(ra1, dec1, seed=6, scatter_arcsec=radius / 2)
    sep = brute_force(ra1, dec1, ra2, dec2, radius)
    for mode in ("best", "all"):
        pairs = engines.match_arrays(ra1, dec1, ra2, dec2, radius, mode)
        found = {(int(a), int(b)): float(s) for a, b, s in
                 zip(pairs.left, pairs.right, pairs.separation, strict=True)}
        assert_same(found, pairs_of(sep, radius, mode))
        assert list(pairs.left) == sorted(pairs.left)


def test_the_zone_match_keeps_within_a_small_memory_budget():
    ra1, dec1 = sky(500, seed=8)
    ra2, dec2 = neighbours_of(ra1, dec1, seed=9)
    whole = engines.match_arrays(ra1, dec1, ra2, dec2, 60.0, "all")
    bit_by_bit = engines.match_arrays(ra1, dec1, ra2, dec2, 60.0, "all", budget=7)
    assert len(whole) > 500
    assert np.array_equal(whole.left, bit_by_bit.left)
    assert np.array_equal(whole.right, bit_by_bit.right)


@pytest.mark.parametrize("engine", ["memory", "database"])
@pytest.mark.parametrize("mode", ["best", "all"])
# q3c is PostgreSQL's: its cases are collected when the suite runs on PostgreSQL
@pytest.mark.parametrize("index", ["healpix", "q3c"] if os.environ.get(
    "ASTROCLOUD_TEST_DATABASE_URL", "").startswith("postgresql") else ["healpix"])
def test_catalog_by_catalog_agrees_with_brute_force(system, skies, engine, mode, index):
    assert index == "healpix" or skies["q3c"], "q3c is missing from PostgreSQL"
    left, right = ("left_sky", "right_sky") if index == "healpix" else ("left_q3c", "right_q3c")
    result = services.crossmatch(system, left=left, right=right, radius_arcsec=RADIUS,
                                 mode=mode, engine=engine)
    assert result.engine == engine
    sep = brute_force(skies["ra1"], skies["dec1"], skies["ra2"], skies["dec2"], RADIUS)
    expected = pairs_of(sep, RADIUS, mode)
    assert len(expected) > 500
    assert_same(found_pairs(result), expected)
    names = [c.name for c in result.columns]
    assert names[:2] == ["source_id", "ra"] and names[-1] == "separation"
    assert f"{right}_ra" in names and result.table.num_columns == len(names)


def test_the_limit_cuts_the_result_and_says_so(system, skies):
    result = services.crossmatch(system, left="left_sky", right="right_sky",
                                 radius_arcsec=RADIUS, mode="all", limit=10)
    assert result.rows == 10 and result.truncated


def test_equal_distances_go_to_the_lowest_right_index():
    ra1, dec1 = np.array([10.0, 20.0]), np.array([0.0, 5.0])
    # right rows 1 and 3 are the same position, as are 0 and 2
    ra2, dec2 = np.array([20.0, 10.0, 20.0, 10.0]), np.array([5.0, 0.0001, 5.0, 0.0001])
    best = engines.match_arrays(ra1, dec1, ra2, dec2, 5.0, "best")
    assert list(best.left) == [0, 1] and list(best.right) == [1, 0]
    every = engines.match_arrays(ra1, dec1, ra2, dec2, 5.0, "all")
    assert list(every.left) == [0, 0, 1, 1] and list(every.right) == [1, 3, 0, 2]


def columnar_fetches(caplog) -> int:
    return sum("columnar fetch of" in r.getMessage() for r in caplog.records)


def test_rows_read_in_columns_give_the_same_table(system, skies, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="astrocloud.xmatch")
    ask = {"left": "left_sky", "right": "right_sky", "radius_arcsec": RADIUS, "mode": "all",
           "engine": "memory"}
    ordinary = services.crossmatch(system, **ask)  # small catalogs: the session's cursor
    assert columnar_fetches(caplog) == 0
    monkeypatch.setattr(fetch, "COLUMNAR_MIN_ROWS", 1)
    columnar = services.crossmatch(system, **ask)
    assert columnar_fetches(caplog) == 2
    assert columnar.table.schema == ordinary.table.schema
    assert columnar.table.equals(ordinary.table)
    assert columnar.rows > 500


def test_a_column_null_at_first_is_read_whole_either_way(system, tmp_path, monkeypatch,
                                                         caplog, database):
    caplog.set_level(logging.DEBUG, logger="astrocloud.xmatch")
    ra, dec = sky(300, seed=41)
    cols = columns_for(ra, dec, seed=4)
    cols["parallax"] = [None] * 40 + [float(x) for x in np.linspace(0.1, 9, len(ra) - 40)]
    catalogs.import_catalog(system, write_parquet(tmp_path / "n.parquet", cols), name="nully",
                            index="healpix")
    ask = {"left": "nully", "right": "nully", "radius_arcsec": 1.0, "engine": "memory"}
    ordinary = services.crossmatch(system, **ask)
    monkeypatch.setattr(fetch, "COLUMNAR_MIN_ROWS", 1)
    monkeypatch.setattr(fetch, "COLUMNAR_BATCH_ROWS", 16)
    columnar = services.crossmatch(system, **ask)
    assert columnar.table.equals(ordinary.table)
    parallax = columnar.table.column("parallax").to_pylist()
    assert parallax[:40] == [None] * 40 and parallax[-1] == pytest.approx(9.0)
    # SQLite's driver types a column by its first batch: the ordinary cursor reads instead
    expected = 0 if database.dialect == "sqlite" else 2
    assert columnar_fetches(caplog) == expected


def votlint_errors(tmp_path, content: bytes) -> list[str]:
    path = tmp_path / "crossmatch.vot"
    path.write_bytes(content)
    done = subprocess.run(["stilts", "votlint", f"votable={path}"], capture_output=True,
                          text=True, timeout=300)
    return [line for line in (done.stdout + done.stderr).splitlines() if "ERROR" in line]


def test_the_votable_answer_is_clean_under_votlint(client, skies, tmp_path):
    from astropy.io.votable import parse

    whole = client.post(URL, json={"left": "left_sky", "right": "right_sky",
                                   "radius": RADIUS, "mode": "all"})
    cut = client.post(URL, json={"left": "left_sky", "right": "right_sky", "radius": RADIUS,
                                 "mode": "all", "limit": 5})
    empty = client.post(URL, data={"right": "right_sky", "radius": "1"},
                        files={"file": ("far.csv", b"ra,dec\n100.0,10.0\n", "text/csv")})
    for response, rows, status in ((whole, None, "OK"), (cut, 5, "OVERFLOW"),
                                   (empty, 0, "OK")):
        assert response.status_code == 200, response.text
        assert votlint_errors(tmp_path, response.content) == []
        votable = parse(io.BytesIO(response.content))
        table = votable.get_first_table()
        if rows is not None:
            assert len(table.array) == rows
        statuses = [i.value for i in votable.resources[0].infos if i.name == "QUERY_STATUS"]
        assert statuses[-1] == status
    table = parse(io.BytesIO(whole.content)).get_first_table()
    fields = {f.name: f for f in table.fields}
    assert fields["separation"].unit == "arcsec"
    assert fields["separation"].ucd == "pos.angDistance"
    assert fields["gmag"].datatype == "float" and fields["good"].datatype == "boolean"
    assert fields["right_sky_ra"].ucd == "pos.eq.ra"  # only the left position is the main one
    assert "right_sky" in table.description
    assert len(table.array) == len(pairs_of(brute_force(
        skies["ra1"], skies["dec1"], skies["ra2"], skies["dec2"], RADIUS), RADIUS, "all"))


# ---- over HTTP --------------------------------------------------------------------------------


def upload_csv(ra, dec) -> bytes:
    lines = ["name,RAJ2000,DEJ2000"] + [f"s{i},{a:.10f},{d:.10f}"
                                        for i, (a, d) in enumerate(zip(ra, dec, strict=True))]
    return ("\n".join(lines) + "\n").encode()


def test_an_uploaded_table_is_matched_with_a_catalog(client, skies):
    from astropy.io.votable import parse_single_table

    ra, dec = skies["ra1"][:200], skies["dec1"][:200]
    response = client.post(URL, files={"file": ("mine.csv", upload_csv(ra, dec), "text/csv")},
                           data={"right": "right_sky", "radius": str(RADIUS), "mode": "best"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-votable+xml")
    table = parse_single_table(io.BytesIO(response.content)).to_table()
    sep = brute_force(ra, dec, skies["ra2"], skies["dec2"], RADIUS)
    expected = pairs_of(sep, RADIUS, "best")
    found = {(int(n[1:]), int(r) - 1): float(s) for n, r, s in
             zip(table["name"], table["right_sky_source_id"], table["separation"], strict=True)}
    assert_same(found, expected)
    assert table["separation"].unit == "arcsec"


def test_the_answer_comes_as_json_or_csv(client, skies):
    body = {"left": "left_sky", "right": "right_sky", "radius": RADIUS, "mode": "all",
            "format": "json"}
    answer = client.post(URL, json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["rows"] and data["count"] if "count" in data else data["rows"]
    assert [c["name"] for c in data["columns"]][-1] == "separation"
    csv = client.post(URL, json={**body, "format": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert len(csv.text.strip().splitlines()) == len(data["rows"]) + 1


def test_named_columns_of_an_upload_are_used(client, skies):
    csv = b"x,y,label\n10.0,20.0,a\n"
    response = client.post(URL, files={"file": ("t.csv", csv, "text/csv")},
                           data={"right": "right_sky", "radius": "5", "ra": "x", "dec": "y",
                                 "format": "json"})
    assert response.status_code == 200, response.text
    assert response.json()["left_rows"] == 1


# ---- who may match what -----------------------------------------------------------------------


@pytest.fixture
def private(system, users, skies):
    """`closed_sky`: proprietary to "owner" and the group "team" for a year."""
    people = {"owner": users.create("owner"), "member": users.create("member"),
              "stranger": users.create("stranger")}
    group = identity.create_group(system, name="team", title="Team")
    identity.add_member(system, group_id=group.id, username="member")
    catalogs.import_catalog(system, skies["right_path"], name="closed_sky", owner="owner",
                            groups=["team"], index="healpix",
                            proprietary_until=dt.datetime.now(dt.UTC) + dt.timedelta(days=365))
    return people


def test_a_proprietary_catalog_is_not_found_for_strangers(client, users, private):
    body = {"left": "left_sky", "right": "closed_sky", "radius": RADIUS}
    for who in (client, users.api(private["stranger"])):
        response = who.post(URL, json=body)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
    swapped = users.api(private["stranger"]).post(URL, json={**body, "left": "closed_sky",
                                                             "right": "left_sky"})
    assert swapped.status_code == 404


def test_a_proprietary_catalog_is_matched_by_its_readers(users, private):
    body = {"left": "left_sky", "right": "closed_sky", "radius": RADIUS, "format": "json"}
    for who in ("owner", "member"):
        response = users.api(private[who]).post(URL, json=body)
        assert response.status_code == 200, response.text
        assert response.json()["rows"]


def test_the_service_checks_the_catalog_rule_too(acting, private):
    with pytest.raises(NotFound):
        services.crossmatch(acting(private["stranger"]), left="left_sky", right="closed_sky",
                            radius_arcsec=RADIUS)
    result = services.crossmatch(acting(private["member"]), left="left_sky",
                                 right="closed_sky", radius_arcsec=RADIUS)
    assert result.rows > 0


# ---- asynchronous matches ---------------------------------------------------------------------


def test_a_large_match_runs_as_a_job_whose_result_only_its_owner_fetches(users, client, runtime,
                                                                         skies):
    from astropy.io.votable import parse_single_table

    owner = users.api("astronomer", "alice")
    ra, dec = skies["ra1"], skies["dec1"]
    response = owner.post(URL, files={"file": ("big.csv", upload_csv(ra, dec), "text/csv")},
                          data={"right": "right_sky", "radius": str(RADIUS), "mode": "all",
                                "async": "true"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["result_url"] == f"{URL}/{body['job']}/result"
    (job,) = runtime.jobs.wait([body["job"]], timeout=60)
    assert job.status == "done", job.error
    status = owner.get(body["status_url"]).json()
    assert status["status"] == "done" and status["result"]["rows"] > 0
    result = owner.get(body["result_url"])
    assert result.status_code == 200
    table = parse_single_table(io.BytesIO(result.content)).to_table()
    sep = brute_force(ra, dec, skies["ra2"], skies["dec2"], RADIUS)
    assert len(table) == len(pairs_of(sep, RADIUS, "all"))
    for other in (users.api("astronomer", "bob"), client):
        denied = other.get(body["result_url"])
        assert denied.status_code == 404
        assert denied.headers["content-type"].startswith("application/problem+json")


def test_a_job_result_is_not_ready_before_the_job_is_done(users, skies, system):
    owner = users.api("astronomer", "carol")
    # no worker runs the queue in this test: the job stays queued
    response = owner.post(URL, json={"left": "left_sky", "right": "right_sky",
                                     "radius": RADIUS, "async": True})
    assert response.status_code == 202
    pending = owner.get(response.json()["result_url"])
    assert pending.status_code == 409
    assert "not ready" in pending.json()["detail"]


def test_a_visitor_must_sign_in_for_a_job(client, skies):
    response = client.post(URL, json={"left": "left_sky", "right": "right_sky",
                                      "radius": RADIUS, "async": True})
    assert response.status_code == 401


def test_large_inputs_go_to_a_job_by_themselves(users, skies, monkeypatch):
    monkeypatch.setattr(services, "SYNC_ROWS", 100)  # the server runs in this process
    owner = users.api("astronomer", "dave")
    response = owner.post(URL, json={"left": "left_sky", "right": "right_sky",
                                     "radius": RADIUS})
    assert response.status_code == 202


# ---- bad input --------------------------------------------------------------------------------

GOOD = {"left": "left_sky", "right": "right_sky", "radius": "30"}


@pytest.mark.parametrize(("change", "status", "field"), [
    ({"right": None}, 422, "right"),
    ({"left": None}, 422, "left"),
    ({"radius": None}, 422, "radius"),
    ({"radius": "0"}, 422, "radius"),
    ({"radius": "-1"}, 422, "radius"),
    ({"radius": "3600.5"}, 422, "radius"),
    ({"radius": "wide"}, 422, "radius"),
    ({"radius": "nan"}, 422, "radius"),
    ({"mode": "nearest"}, 422, "mode"),
    ({"limit": "0"}, 422, "limit"),
    ({"limit": "many"}, 422, "limit"),
    ({"format": "xls"}, 422, "format"),
    ({"engine": "gpu"}, 422, "engine"),
    ({"async": "perhaps"}, 422, "async"),
    ({"colour": "red"}, 422, "colour"),
    ({"right": "no_such_catalog"}, 404, None),
    ({"left": "Robert'); DROP TABLE x;--"}, 404, None),
])
def test_bad_parameters_are_422_problems(client, skies, change, status, field):
    data = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    response = client.post(URL, data=data)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if field:
        assert field in {e["field"] for e in response.json()["errors"]}


@pytest.mark.parametrize(("name", "content", "extra", "field"), [
    ("broken.fits", b"SIMPLE  =                    T" + b" " * 2000, {}, "file"),
    ("broken.vot", b"<?xml version='1.0'?><VOTABLE><oops", {}, "file"),
    ("empty.csv", b"", {}, "file"),
    ("header.csv", b"ra,dec\n", {}, "file"),
    ("nopos.csv", b"a,b\n1,2\n", {}, "ra"),
    ("text.csv", b"ra,dec\nfoo,bar\n", {}, "ra"),
    ("outside.csv", b"ra,dec\n10,95\n", {}, "file"),
    ("named.csv", b"x,y\n1,2\n", {"ra": "nope", "dec": "y"}, "ra"),
    ("both.csv", b"ra,dec\n1,2\n", {"left": "left_sky"}, "left"),
    ("fmt.csv", b"ra,dec\n1,2\n", {"file_format": "xlsx"}, "format"),
])
def test_bad_uploads_are_422_problems(client, skies, name, content, extra, field):
    data = {"right": "right_sky", "radius": "5", **extra}
    response = client.post(URL, data=data, files={"file": (name, content, "text/plain")})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in {e["field"] for e in response.json()["errors"]}


def test_a_too_large_upload_is_refused(client, skies, monkeypatch):
    monkeypatch.setattr(services, "MAX_UPLOAD_BYTES", 1000)
    content = upload_csv(skies["ra1"], skies["dec1"])
    response = client.post(URL, data={"right": "right_sky", "radius": "5"},
                           files={"file": ("big.csv", content, "text/csv")})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "file"


@pytest.mark.parametrize("body", [b"[1, 2]", b"{not json", b"\"text\""])
def test_a_bad_json_body_is_a_problem(client, skies, body):
    response = client.post(URL, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


def test_an_unknown_job_result_is_404(client, users):
    assert users.api("astronomer", "erin").get(f"{URL}/999999/result").status_code == 404
    assert client.get(f"{URL}/0/result").status_code == 422


def test_an_empty_catalog_answer_is_an_empty_table(client, skies):
    csv = b"ra,dec\n100.0,10.0\n"  # nothing of the catalogs lies there
    response = client.post(URL, data={"right": "right_sky", "radius": "1", "format": "json"},
                           files={"file": ("far.csv", csv, "text/csv")})
    assert response.status_code == 200
    assert json.loads(response.content)["rows"] == []


# ---- the page ---------------------------------------------------------------------------------


def test_the_page_speaks_chinese(client, skies):
    page = client.get("/data/crossmatch?lang=zh-CN")
    assert page.status_code == 200
    assert "交叉匹配" in page.text


@pytest.mark.browser
def test_a_visitor_uploads_a_table_and_sees_its_matches(page, live_server, skies, tmp_path):
    path = tmp_path / "mine.csv"
    path.write_bytes(upload_csv(skies["ra1"][:50], skies["dec1"][:50]))
    page.goto(f"{live_server}/data/crossmatch")
    expect(page.locator("h1")).to_have_text("Cross-match")
    page.set_input_files("#file", str(path))
    page.select_option("#right", "right_sky")
    page.fill("#radius", "30")
    page.get_by_role("button", name="Match").click()
    expect(page.locator("#result-count")).to_be_visible()
    expect(page.locator("table.xmatch-results tbody tr").first).to_be_visible()
    expect(page.locator("#download")).to_have_attribute("href", __import__("re").compile(
        "^data:text/csv"))


@pytest.mark.browser
def test_a_bad_radius_is_explained_on_the_page(page, live_server, skies):
    page.goto(f"{live_server}/data/crossmatch")
    page.select_option("#left", "left_sky")
    page.select_option("#right", "right_sky")
    page.eval_on_selector("#radius", "e => { e.removeAttribute('max'); e.value = '7200'; }")
    page.get_by_role("button", name="Match").click()
    expect(page.get_by_role("alert")).to_contain_text("3600")


@pytest.mark.browser
def test_a_job_is_followed_on_the_page_until_its_result_shows(page, live_server, users, runtime,
                                                              skies):
    from tests.conftest import PASSWORD

    users.create("frank")
    page.goto(f"{live_server}/login")
    page.fill("#username", "frank")
    page.fill("#password", PASSWORD)
    page.locator("form button[type=submit]").first.click()
    page.goto(f"{live_server}/data/crossmatch")
    page.select_option("#left", "left_sky")
    page.select_option("#right", "right_sky")
    page.fill("#radius", "30")
    page.select_option("#async", "true")
    page.get_by_role("button", name="Match").click()
    expect(page.locator("#job-status")).to_be_visible()
    expect(page.locator("#job-status")).to_contain_text("Finished", timeout=30_000)
    expect(page.locator("table.xmatch-results tbody tr").first).to_be_visible()
    expect(page.locator("#download")).to_have_attribute("href", __import__("re").compile(
        "/api/v1/data/crossmatch/\\d+/result"))
