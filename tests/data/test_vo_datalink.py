"""DataLink 1.1 for archived files, driven by pyvo: the file, its previews and QC report,
provenance both ways, NotFoundFault rows for unknown or still-private files, VOSI."""

from __future__ import annotations

import time

import httpx
import pytest
import pyvo
import requests
import sqlalchemy as sa
from lxml import etree

from astrocloud.data.archive import services as archive
from astrocloud.data.archive.models import ArchiveFile
from astrocloud.data.archive.synthetic import write_image


def did(ident: int) -> str:
    return f"ivo://astrocloud/archive?{ident}"


def links(live_server, *ids, session=None):
    service = pyvo.dal.adhoc.DatalinkService(f"{live_server}/datalink/links", session=session)
    return service.search(id=list(ids) if len(ids) > 1 else ids[0])


@pytest.fixture
def previewed(world, system):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        system.db.commit()
        system.db.expire_all()
        if system.db.scalar(sa.select(sa.func.count()).select_from(ArchiveFile).where(
                ArchiveFile.preview_uri.is_not(None))) == 2:
            return world
        time.sleep(0.2)
    raise AssertionError("QC did not finish")


def test_the_links_of_a_released_file(live_server, previewed):
    result = links(live_server, did(previewed["released"]))
    semantics = {row["semantics"]: row for row in result}
    assert {"#this", "#preview", "#preview-image", "#auxiliary"} <= set(semantics)
    this = semantics["#this"]
    assert httpx.get(this["access_url"]).content == previewed["paths"]["released"].read_bytes()
    assert int(this["content_length"]) == previewed["paths"]["released"].stat().st_size
    assert httpx.get(semantics["#preview"]["access_url"]).content.startswith(b"\x89PNG")


def test_datalinklint_finds_nothing_wrong(live_server, previewed, tmp_path):
    """STILTS datalinklint (exit status 0 whatever it finds: its report is read) on the links
    of a file with provenance and on a NotFoundFault answer."""
    import subprocess

    for ident in (did(previewed["released"]), did(999999)):
        response = httpx.get(f"{live_server}/datalink/links", params={"ID": ident})
        path = tmp_path / "links.vot"
        path.write_bytes(response.content)
        done = subprocess.run(["stilts", "datalinklint", str(path)], capture_output=True,
                              text=True, timeout=300)
        assert "Totals:" in done.stdout, done.stdout + done.stderr
        bad = [line for line in done.stdout.splitlines() if line.startswith(("E-", "F-"))]
        assert not bad, bad


def test_a_private_or_unknown_file_gives_a_not_found_fault(live_server, previewed):
    for ident in (did(previewed["private"]), did(999999), "ivo://elsewhere/x"):
        [row] = list(links(live_server, ident))
        assert row["error_message"].startswith("NotFoundFault")


def test_its_team_gets_the_links_of_a_proprietary_file_from_pyvo(live_server, previewed,
                                                                  users):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {users.token(previewed['pi'])}"
    result = links(live_server, did(previewed["private"]), session=session)
    assert "#this" in {row["semantics"] for row in result}


def test_provenance_links_both_ways(live_server, previewed, system, runtime, tmp_path):
    product = write_image(tmp_path / "reduced.fits", ra=10.68, dec=41.27,
                          date_obs=previewed_date(system, previewed["released"]), seed=30)
    records, jobs = archive.submit_paths(system, telescope="Xinglong 2.16m",
                                         paths=[str(product)],
                                         derived_from=[previewed["released"]])
    runtime.jobs.wait(jobs, timeout=60)
    [record] = archive.ingest_progress(system.database, [records[0].id])
    raw = {row["semantics"]: row for row in links(live_server, did(previewed["released"]))}
    assert raw["#derivation"]["access_url"].endswith(f"/{record.file_id}/file")
    made = {row["semantics"]: row for row in links(live_server, did(record.file_id))}
    assert made["#progenitor"]["access_url"].endswith(f"/{previewed['released']}/file")


def previewed_date(system, ident):
    return system.db.get(ArchiveFile, ident).date_obs


def test_several_ids_in_one_request(live_server, previewed):
    result = links(live_server, did(previewed["released"]), did(999999))
    assert {row["ID"] for row in result} == {did(previewed["released"]), did(999999)}


@pytest.mark.parametrize("params", [{}, {"ID": ["x"] * 101},
                                    {"ID": "a", "RESPONSEFORMAT": "json"}])
def test_bad_requests_get_a_votable_error(live_server, params):
    response = httpx.get(f"{live_server}/datalink/links", params=params)
    assert 400 <= response.status_code < 500 and b'value="ERROR"' in response.content


def test_vosi(live_server):
    caps = etree.fromstring(httpx.get(f"{live_server}/datalink/capabilities").content)
    assert caps.find("capability").get("standardID") == "ivo://ivoa.net/std/DataLink#links-1.1"
    assert b"true" in httpx.get(f"{live_server}/datalink/availability").content
