"""Simple Spectral Access 1.1 over the archive's spectra, driven by pyvo's SSAService: each
constraint (POS/SIZE, BAND, TIME, FORMAT, TARGETNAME, MAXREC), the SSA fields and utypes, only
spectra, the release rule with and without a token, the metadata query, VOSI, VOTable errors,
and STILTS votlint on the answers."""

from __future__ import annotations

import io
import subprocess

import httpx
import pytest
import pyvo
import requests
from astropy.io.votable import parse
from lxml import etree

from astrocloud.data.archive import services as archive
from astrocloud.data.archive.synthetic import write_spectrum
from tests.data.conftest import OLD, SCOPE, recent

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


@pytest.fixture
def spectra(world, system, runtime, tmp_path):
    """Two spectra of the programme next to the world's images: one released (near M 31),
    one proprietary (near M 51)."""
    released = write_spectrum(tmp_path / "spec-old.fits", ra=10.70, dec=41.25, date_obs=OLD,
                              telescope=SCOPE, instrument="BFOSC", object="M 31",
                              propid="2026A-001", seed=3, wave_range_nm=(370, 900))
    private = write_spectrum(tmp_path / "spec-new.fits", ra=202.5, dec=47.2,
                             date_obs=recent(), telescope=SCOPE, instrument="BFOSC",
                             object="M 51", propid="2026A-001", seed=4,
                             wave_range_nm=(400, 700))
    records, jobs = archive.submit_paths(system, telescope=SCOPE,
                                         paths=[str(released), str(private)])
    runtime.jobs.wait(jobs, timeout=60)
    done = archive.ingest_progress(system.database, [r.id for r in records])
    assert [r.status for r in done] == ["archived", "archived"], [r.reason for r in done]
    return {**world, "spec_released": done[0].file_id, "spec_private": done[1].file_id,
            "spec_paths": {"released": released, "private": private}}


def did(ident: int) -> str:
    return f"ivo://astrocloud/archive?{ident}"


def ssa(live_server, session=None):
    return pyvo.dal.SSAService(f"{live_server}/ssa", session=session)


def fetch(live_server, params, headers=None) -> httpx.Response:
    return httpx.get(f"{live_server}/ssa", params=params, headers=headers, timeout=30)


def found(live_server, params, headers=None) -> list[str]:
    response = fetch(live_server, params, headers)
    assert response.status_code == 200, response.text
    table = parse(io.BytesIO(response.content)).get_first_table()
    return [str(row["ssa_pubDID"]) for row in table.array]


def votlint(tmp_path, content: bytes) -> str:
    path = tmp_path / "answer.vot"
    path.write_bytes(content)
    run = subprocess.run(["stilts", "votlint", f"votable={path}"], capture_output=True,
                         text=True, timeout=120)
    return run.stdout + run.stderr


def test_pyvo_finds_a_released_spectrum_by_position(live_server, spectra):
    results = ssa(live_server).search(pos=(10.70, 41.25), diameter=0.1)
    assert [r["ssa_pubDID"] for r in results] == [did(spectra["spec_released"])]
    record = results[0]
    assert record.format == "application/fits"
    assert record.acref.endswith(f"/api/v1/data/observations/{spectra['spec_released']}/file")
    assert httpx.get(record.acref).content == spectra["spec_paths"]["released"].read_bytes()
    assert "M 31" in record.title and record.dateobs.isot.startswith("2020-01-05")
    assert record.filesize == spectra["spec_paths"]["released"].stat().st_size
    assert list(record["ssa_location"]) == pytest.approx([10.70, 41.25])
    assert 3.6e-7 < record["ssa_specstart"] < record["ssa_specend"] < 9.1e-7
    assert record["ssa_dstype"] == "Spectrum" and record["ssa_targname"] == "M 31"
    links = record.getdatalink().to_table()  # through the DataLink service descriptor
    assert "#this" in list(links["semantics"])


def test_the_answer_carries_the_ssa_utypes_and_ucds(live_server, spectra):
    response = fetch(live_server, {"REQUEST": "queryData", "POS": "10.70,41.25;ICRS"})
    votable = parse(io.BytesIO(response.content))
    table = votable.get_first_table()
    by_utype = {f.utype.lower(): f for f in table.fields if f.utype}
    for utype in ("ssa:Access.Reference", "ssa:Access.Format", "ssa:Access.Size",
                  "ssa:DataID.Title", "ssa:Target.Name", "ssa:Curation.PublisherDID",
                  "ssa:DataID.Collection", "ssa:Dataset.Type", "ssa:Dataset.DataModel",
                  "ssa:Char.SpatialAxis.Coverage.Location.Value",
                  "ssa:Char.SpectralAxis.Coverage.Location.Value",
                  "ssa:Char.SpectralAxis.Coverage.Bounds.Start",
                  "ssa:Char.SpectralAxis.Coverage.Bounds.Stop",
                  "ssa:Char.TimeAxis.Coverage.Bounds.Start",
                  "ssa:Char.TimeAxis.Coverage.Bounds.Stop", "ssa:Char.SpectralAxis.Unit",
                  "ssa:Char.FluxAxis.Unit", "ssa:Char.FluxAxis.Ucd"):
        assert utype.lower() in by_utype, utype
    location = by_utype["ssa:char.spatialaxis.coverage.location.value"]
    assert (location.datatype, location.arraysize, location.ucd) == ("double", "2", "pos.eq")
    assert by_utype["ssa:access.reference"].ucd == "meta.ref.url"
    assert by_utype["ssa:char.spectralaxis.coverage.bounds.start"].unit == "m"
    row = table.array[0]
    assert row["ssa_spectralunit"] == "Angstrom" and row["ssa_fluxunit"] == "adu"
    assert 58853 < row["ssa_timestart"] < row["ssa_timestop"] < 58854
    info = {i.name: i.value for i in votable.resources[0].infos}
    assert info["QUERY_STATUS"] == "OK" and info["SERVICE_PROTOCOL"] == "1.1"


def test_only_spectra_are_returned(live_server, spectra):
    # the world's released image lies 0.03 degrees away from the released spectrum
    assert found(live_server, {"POS": "10.68,41.27", "SIZE": "1"}) == [
        did(spectra["spec_released"])]


@pytest.mark.parametrize("params,expected", [
    ({"POS": "10.7,41.25", "SIZE": "0.01"}, "spec_released"),
    ({"POS": "11.5,41.25", "SIZE": "0.2"}, None),
    ({"POS": "11.5,41.25", "SIZE": "2"}, "spec_released"),
    ({"BAND": "5e-7/6e-7"}, "spec_released"),
    ({"BAND": "1e-6/2e-6"}, None),
    ({"BAND": "/3e-7"}, None),
    ({"BAND": "8e-7/"}, "spec_released"),
    ({"BAND": "6.5e-7"}, "spec_released"),
    ({"BAND": "1e-6/2e-6,8e-7/8.5e-7"}, "spec_released"),
    ({"TIME": "2020-01-05T00:00:00/2020-01-06T00:00:00"}, "spec_released"),
    ({"TIME": "2020-01-05"}, "spec_released"),
    ({"TIME": "2020-01-04/2020-01-04"}, None),
    ({"TIME": "2021-01-01/"}, None),
    ({"TIME": "/2020-02-01T00:00:00Z"}, "spec_released"),
    ({"TARGETNAME": "M 31"}, "spec_released"),
    ({"TARGETNAME": "Vega"}, None),
    ({"FORMAT": "all"}, "spec_released"),
    ({"FORMAT": "native"}, "spec_released"),
    ({"FORMAT": "fits"}, "spec_released"),
    ({"FORMAT": "application/fits"}, "spec_released"),
    ({"FORMAT": "votable"}, None),
    ({"FORMAT": "graphic"}, None),
    ({"FORMAT": "compliant"}, None),
])
def test_each_constraint(live_server, spectra, params, expected):
    assert found(live_server, {"REQUEST": "queryData", **params}) == (
        [did(spectra[expected])] if expected else [])


def test_pyvo_band_and_time_constraints(live_server, spectra):
    results = ssa(live_server).search(pos=(10.70, 41.25), diameter=0.1,
                                      band=(5e-7, 6e-7),
                                      time=("2020-01-05T00:00:00", "2020-01-06T00:00:00"))
    assert [r["ssa_pubDID"] for r in results] == [did(spectra["spec_released"])]
    assert len(ssa(live_server).search(pos=(10.70, 41.25), diameter=0.1,
                                       band=(1e-5, 2e-5))) == 0


def test_proprietary_spectra_need_a_token_of_their_team(live_server, spectra, users):
    assert found(live_server, {"POS": "202.5,47.2"}) == []
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {users.token(spectra['pi'])}"
    results = ssa(live_server, session).search(pos=(202.5, 47.2), diameter=0.1)
    assert [r["ssa_pubDID"] for r in results] == [did(spectra["spec_private"])]
    stranger = {"Authorization": f"Bearer {users.token(users.create('stranger'))}"}
    assert found(live_server, {"POS": "202.5,47.2"}, stranger) == []


def test_maxrec_marks_an_overflow(live_server, spectra, users):
    token = {"Authorization": f"Bearer {users.token(spectra['pi'])}"}
    response = fetch(live_server, {"MAXREC": "1"}, token)
    assert b'name="QUERY_STATUS" value="OVERFLOW"' in response.content
    table = parse(io.BytesIO(response.content)).get_first_table()
    assert len(table.array) == 1
    assert sorted(found(live_server, {}, token)) == sorted(
        [did(spectra["spec_released"]), did(spectra["spec_private"])])


def test_the_metadata_query_describes_inputs_and_fields(live_server, spectra, tmp_path):
    response = fetch(live_server, {"REQUEST": "queryData", "FORMAT": "METADATA"})
    assert response.status_code == 200
    votable = parse(io.BytesIO(response.content))
    table = votable.get_first_table()
    assert len(table.array) == 0 and len(table.fields) > 20
    params = {p.name: p for p in votable.resources[0].params}
    assert {"INPUT:POS", "INPUT:SIZE", "INPUT:BAND", "INPUT:TIME", "INPUT:FORMAT",
            "INPUT:MAXREC"} <= set(params)
    assert params["INPUT:BAND"].unit == "m"
    assert "ERROR" not in votlint(tmp_path, response.content)


def test_answers_pass_votlint(live_server, spectra, tmp_path, users):
    token = {"Authorization": f"Bearer {users.token(spectra['pi'])}"}
    response = fetch(live_server, {"REQUEST": "queryData"}, token)
    report = votlint(tmp_path, response.content)
    assert [line for line in report.splitlines() if "ERROR" in line] == [], report
    error = fetch(live_server, {"POS": "nowhere"})
    report = votlint(tmp_path, error.content)
    assert [line for line in report.splitlines() if "ERROR" in line] == [], report


@pytest.mark.parametrize("params", [
    {"POS": "10.7"}, {"POS": "10.7,41,3"}, {"POS": "400,41"}, {"POS": "ten,41"},
    {"POS": "10,41;GALACTIC"}, {"SIZE": "0"}, {"SIZE": "-1"}, {"SIZE": "wide"},
    {"SIZE": "nan"}, {"BAND": "6e-7/5e-7"}, {"BAND": "red"}, {"BAND": "/"},
    {"BAND": "-1/2"}, {"BAND": "1/2/3"}, {"TIME": "yesterday"},
    {"TIME": "2020-02-01/2020-01-01"}, {"TIME": "2020-13-01"}, {"MAXREC": "-1"},
    {"MAXREC": "many"}, {"FORMAT": "jpeg please"}, {"FORMAT": "pdfish"},
    {"REQUEST": "getData"},
])
def test_bad_queries_get_a_votable_error(live_server, spectra, params):
    response = fetch(live_server, params)
    assert 400 <= response.status_code < 500, response.text
    assert b'name="QUERY_STATUS" value="ERROR"' in response.content


def test_an_error_echoing_control_characters_is_still_xml(live_server, spectra):
    response = fetch(live_server, {"POS": "\x01,2"})
    assert 400 <= response.status_code < 500
    root = etree.fromstring(response.content)
    assert root.xpath("//*[local-name()='INFO'][@name='QUERY_STATUS']/@value") == ["ERROR"]


def test_pyvo_reports_the_error(live_server, spectra):
    with pytest.raises(pyvo.dal.DALQueryError):
        ssa(live_server).search(pos=(10.7, 41.25), diameter=0.1, format="pdfish")


def test_vosi_capabilities_describe_ssa(live_server):
    caps = etree.fromstring(httpx.get(f"{live_server}/ssa/capabilities").content)
    [cap] = [c for c in caps.findall("capability")
             if c.get("standardID") == "ivo://ivoa.net/std/SSA"]
    assert cap.get(XSI_TYPE) == "ssa:SimpleSpectralAccess"
    assert cap.findtext("interface/accessURL").endswith("/ssa?")
    assert cap.find("interface").get("role") == "std"
    for tag in ("complianceLevel", "dataSource", "creationType", "supportedFrame",
                "maxSearchRadius", "maxRecords", "defaultMaxRecords"):
        assert cap.findtext(tag), tag
    assert int(cap.findtext("defaultMaxRecords")) <= int(cap.findtext("maxRecords"))
    test_query = cap.findtext("testQuery/queryDataCmd")
    assert httpx.get(f"{live_server}/ssa?{test_query}").status_code == 200
    standards = {c.get("standardID") for c in caps.findall("capability")}
    assert {"ivo://ivoa.net/std/VOSI#capabilities",
            "ivo://ivoa.net/std/VOSI#availability"} <= standards
    avail = etree.fromstring(httpx.get(f"{live_server}/ssa/availability").content)
    assert avail.findtext("{http://www.ivoa.net/xml/VOSIAvailability/v1.0}available") == "true"


def test_a_record_without_a_position_still_passes_votlint(tmp_path):
    """A null POS (double[2]) is written as NaNs: an empty cell would lack its elements."""
    from astrocloud.data.vo.ssa import ssa_columns
    from astrocloud.data.vo.votable import results_table, to_bytes

    row = {"accref": "http://example.org/f", "mime": "application/fits", "accsize": 10,
           "ssa_location": None, "ssa_targetpos": (1.0, 2.0)}
    content = to_bytes(results_table(ssa_columns(), [row], name="spectra"))
    assert b"<TD>NaN NaN</TD>" in content
    report = votlint(tmp_path, content)
    assert [line for line in report.splitlines() if "ERROR" in line] == [], report
