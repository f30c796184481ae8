"""The publishing registry (OAI-PMH 2.0 at /oai): every verb over GET and POST, both metadata
formats, a harvest in pages following resumptionTokens, from/until, every error code (HTTP
200, as the protocol says), the records of the VO services and of a public catalog — and no
record of a proprietary one. The VOResource records are validated against the VOResource 1.1,
VODataService 1.2 and TAPRegExt schemas that STILTS ships (the schemas of VORegistry, SSA and
ConeSearch are not available offline: those parts are checked element by element)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import zipfile
from pathlib import Path

import httpx
import pytest
from lxml import etree

from astrocloud.data.archive.synthetic import write_catalog
from astrocloud.data.catalogs import services as catalogs

NS = {"oai": "http://www.openarchives.org/OAI/2.0/",
      "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/",
      "dc": "http://purl.org/dc/elements/1.1/",
      "ri": "http://www.ivoa.net/xml/RegistryInterface/v1.0",
      "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
STILTS_JAR = Path("/usr/share/java/starlink-ttools.jar")
SERVICES = {"ivo://astrocloud/tap": "ivo://ivoa.net/std/TAP",
            "ivo://astrocloud/sia": "ivo://ivoa.net/std/SIA#query-2.0",
            "ivo://astrocloud/ssa": "ivo://ivoa.net/std/SSA",
            "ivo://astrocloud/datalink": "ivo://ivoa.net/std/DataLink#links-1.1",
            "ivo://astrocloud/scs/stars": "ivo://ivoa.net/std/ConeSearch"}


@pytest.fixture
def published(system, users, tmp_path):
    """A public catalog and one still proprietary."""
    users.create("owner1")
    path = write_catalog(tmp_path / "stars.fits", n_rows=50, seed=5, ra_range=(9, 12),
                         dec_range=(40, 42))
    catalogs.import_catalog(system, path, name="stars", title="Stars near M 31",
                            description="Fifty synthetic stars.")
    secret = write_catalog(tmp_path / "secret.fits", n_rows=20, seed=6)
    catalogs.import_catalog(system, secret, name="secret", title="Not yet",
                            proprietary_until=dt.date(2099, 1, 1), owner="owner1")


def oai(live_server, params, *, post=False, headers=None) -> etree._Element:
    if post:
        form: dict[str, list[str]] = {}
        for key, value in (params.items() if isinstance(params, dict) else params):
            form.setdefault(key, []).append(value)
        response = httpx.post(f"{live_server}/oai", data=form, headers=headers, timeout=30)
    else:
        response = httpx.get(f"{live_server}/oai", params=params, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{NS['oai']}}}OAI-PMH"
    assert STAMP.match(root.findtext("oai:responseDate", namespaces=NS))
    assert root.findtext("oai:request", namespaces=NS).endswith("/oai")
    return root


def error_code(root) -> str | None:
    error = root.find("oai:error", namespaces=NS)
    return None if error is None else error.get("code")


def identifiers(root) -> list[str]:
    return [e.text for e in root.iterfind(".//oai:header/oai:identifier", namespaces=NS)]


def resource(live_server, ivoid: str) -> etree._Element:
    root = oai(live_server, {"verb": "GetRecord", "identifier": ivoid,
                             "metadataPrefix": "ivo_vor"})
    assert error_code(root) is None, etree.tostring(root)
    return root.find(".//oai:metadata/ri:Resource", namespaces=NS)


# -- schema validation (the schemas STILTS ships) -------------------------------------------

@pytest.fixture(scope="module")
def vor_schema(tmp_path_factory):
    assert STILTS_JAR.exists(), "STILTS is missing: make test installs it (system-deps.sh)"
    folder = tmp_path_factory.mktemp("xsd")
    with zipfile.ZipFile(STILTS_JAR) as jar:
        for name in jar.namelist():
            if name.startswith("uk/ac/starlink/ttools/taplint/") and name.endswith(".xsd"):
                (folder / Path(name).name).write_bytes(jar.read(name))
    local = {"http://www.ivoa.net/xml/VOResource/v1.0": "VOResource-v1.1.xsd",
             "http://www.ivoa.net/xml/VOResource/VOResource-v1.0.xsd": "VOResource-v1.1.xsd",
             "http://www.ivoa.net/xml/STC/stc-v1.30.xsd": "stc-v1.30.xsd",
             "http://www.ivoa.net/xml/Xlink/xlink.xsd": "xlink.xsd",
             "http://www.w3.org/2001/xml.xsd": "xmlnamespace.xsd",
             "http://www.ivoa.net/xml/VODataService/v1.1": "VODataService-v1.2.xsd"}
    for xsd in folder.glob("*.xsd"):
        text = xsd.read_text()
        for url, name in local.items():
            text = text.replace(f'schemaLocation="{url}"', f'schemaLocation="{name}"')
        xsd.write_text(text)
    # the element RegistryInterface declares (its schema is not shipped): ri:Resource
    (folder / "ri.xsd").write_text(f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
        xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0" targetNamespace="{NS['ri']}">
      <xs:import namespace="http://www.ivoa.net/xml/VOResource/v1.0"
                 schemaLocation="VOResource-v1.1.xsd"/>
      <xs:import namespace="http://www.ivoa.net/xml/VODataService/v1.1"
                 schemaLocation="VODataService-v1.2.xsd"/>
      <xs:import namespace="http://www.ivoa.net/xml/TAPRegExt/v1.0"
                 schemaLocation="TAPRegExt-v1.0-Erratum1.xsd"/>
      <xs:element name="Resource" type="vr:Resource"/>
    </xs:schema>""")
    return etree.XMLSchema(etree.parse(str(folder / "ri.xsd")))


def without_unshipped_types(record) -> etree._Element:
    """A copy of a CatalogService record whose ConeSearch and SSA capabilities (schemas not
    shipped) are reduced to plain capabilities with their interfaces."""
    record = copy.deepcopy(record)
    for capability in record.findall("capability"):
        if capability.get(XSI_TYPE, "").split(":")[0] in ("cs", "ssa"):
            del capability.attrib[XSI_TYPE]
            for child in list(capability):
                if child.tag != "interface":
                    capability.remove(child)
    return record


# -- the verbs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("post", [False, True])
def test_identify_describes_the_registry(live_server, published, post):
    root = oai(live_server, {"verb": "Identify"}, post=post)
    assert error_code(root) is None
    assert root.find("oai:request", namespaces=NS).get("verb") == "Identify"
    ident = root.find("oai:Identify", namespaces=NS)
    assert ident.findtext("oai:baseURL", namespaces=NS) == f"{live_server}/oai"
    assert ident.findtext("oai:protocolVersion", namespaces=NS) == "2.0"
    assert ident.findtext("oai:granularity", namespaces=NS) == "YYYY-MM-DDThh:mm:ssZ"
    assert ident.findtext("oai:deletedRecord", namespaces=NS) == "no"
    assert "@" in ident.findtext("oai:adminEmail", namespaces=NS)
    assert STAMP.match(ident.findtext("oai:earliestDatestamp", namespaces=NS))
    registry = ident.find("oai:description/ri:Resource", namespaces=NS)
    assert registry.get(XSI_TYPE) == "vg:Registry"
    assert registry.findtext("identifier") == "ivo://astrocloud/registry"
    assert registry.findtext("managedAuthority") == "astrocloud"
    assert registry.findtext("full") == "false"
    [harvest] = registry.findall("capability")
    assert harvest.get("standardID") == "ivo://ivoa.net/std/Registry"
    assert harvest.get(XSI_TYPE) == "vg:Harvest"
    assert harvest.find("interface").get(XSI_TYPE) == "vg:OAIHTTP"
    assert harvest.findtext("interface/accessURL") == f"{live_server}/oai"
    assert int(harvest.findtext("maxRecords")) >= 1


def test_list_metadata_formats(live_server, published):
    root = oai(live_server, {"verb": "ListMetadataFormats"})
    formats = {f.findtext("oai:metadataPrefix", namespaces=NS):
               f.findtext("oai:metadataNamespace", namespaces=NS)
               for f in root.iterfind(".//oai:metadataFormat", namespaces=NS)}
    assert formats == {"oai_dc": NS["oai_dc"], "ivo_vor": NS["ri"]}
    one = oai(live_server, {"verb": "ListMetadataFormats",
                            "identifier": "ivo://astrocloud/ssa"})
    assert len(one.findall(".//oai:metadataFormat", namespaces=NS)) == 2
    missing = oai(live_server, {"verb": "ListMetadataFormats",
                                "identifier": "ivo://astrocloud/nothing"})
    assert error_code(missing) == "idDoesNotExist"


def test_list_sets(live_server, published):
    root = oai(live_server, {"verb": "ListSets"})
    assert [s.text for s in root.iterfind(".//oai:set/oai:setSpec", namespaces=NS)] == [
        "ivo_managed"]


def test_list_identifiers_has_every_service_and_public_catalogs_only(live_server, published,
                                                                     users):
    root = oai(live_server, {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc",
                             "set": "ivo_managed"})
    found = identifiers(root)
    assert set(found) == {"ivo://astrocloud", "ivo://astrocloud/registry", *SERVICES}
    assert found == sorted(found)
    for header in root.iterfind(".//oai:header", namespaces=NS):
        assert STAMP.match(header.findtext("oai:datestamp", namespaces=NS))
        assert header.findtext("oai:setSpec", namespaces=NS) == "ivo_managed"
    # the owner of the proprietary catalog sees the same registry
    token = {"Authorization": f"Bearer {users.token(users.create('harvester'))}"}
    assert identifiers(oai(live_server, {"verb": "ListIdentifiers",
                                         "metadataPrefix": "ivo_vor"}, headers=token)) == found
    secret = oai(live_server, {"verb": "GetRecord", "identifier": "ivo://astrocloud/scs/secret",
                               "metadataPrefix": "ivo_vor"})
    assert error_code(secret) == "idDoesNotExist"


def test_list_records_in_vor_gives_each_service_its_capability(live_server, published,
                                                              vor_schema):
    root = oai(live_server, {"verb": "ListRecords", "metadataPrefix": "ivo_vor"})
    records = {r.findtext("oai:header/oai:identifier", namespaces=NS):
               r.find("oai:metadata/ri:Resource", namespaces=NS)
               for r in root.iterfind(".//oai:record", namespaces=NS)}
    assert set(records) == {"ivo://astrocloud", "ivo://astrocloud/registry", *SERVICES}
    for ivoid, standard in SERVICES.items():
        record = records[ivoid]
        assert record.get(XSI_TYPE) == "vs:CatalogService"
        assert record.findtext("identifier") == ivoid
        assert record.get("status") == "active"
        assert STAMP.match(record.get("created")) and STAMP.match(record.get("updated"))
        assert record.findtext("title") and record.findtext("curation/publisher")
        assert "@" in record.findtext("curation/contact/email")
        assert record.findtext("content/subject") and record.findtext("content/description")
        assert record.findtext("content/referenceURL").startswith(live_server)
        standards = {c.get("standardID"): c for c in record.findall("capability")}
        assert {standard, "ivo://ivoa.net/std/VOSI#capabilities",
                "ivo://ivoa.net/std/VOSI#availability"} == set(standards)
        std = standards[standard].find("interface")
        assert std.get("role") == "std" and std.get(XSI_TYPE) == "vs:ParamHTTP"
        assert std.findtext("accessURL").startswith(live_server)
        errors = [] if vor_schema.validate(without_unshipped_types(record)) else \
            [str(e) for e in vor_schema.error_log]
        assert errors == [], (ivoid, errors)
        broken = without_unshipped_types(record)
        broken.remove(broken.find("identifier"))
        assert not vor_schema.validate(broken)  # the schema does judge
    cone = [c for c in records["ivo://astrocloud/scs/stars"].findall("capability")
            if c.get("standardID") == SERVICES["ivo://astrocloud/scs/stars"]][0]
    assert cone.get(XSI_TYPE) == "cs:ConeSearch" and float(cone.findtext("maxSR")) > 0
    assert cone.findtext("interface/accessURL") == f"{live_server}/scs/stars?"
    assert records["ivo://astrocloud/scs/stars"].findtext("title") == "Stars near M 31"
    page = records["ivo://astrocloud/scs/stars"].findtext("content/referenceURL")
    assert httpx.get(page).status_code == 200
    spectra = [c for c in records["ivo://astrocloud/ssa"].findall("capability")
               if c.get("standardID") == "ivo://ivoa.net/std/SSA"][0]
    assert spectra.get(XSI_TYPE) == "ssa:SimpleSpectralAccess"
    assert spectra.findtext("dataSource") == "pointed" and spectra.findtext("maxRecords")
    tap = [c for c in records["ivo://astrocloud/tap"].findall("capability")
           if c.get("standardID") == "ivo://ivoa.net/std/TAP"][0]
    assert tap.get(XSI_TYPE) == "tr:TableAccess" and tap.findtext("language/name") == "ADQL"
    assert tap.findtext("interface/accessURL") == f"{live_server}/tap"
    assert records["ivo://astrocloud/sia"].xpath(
        "capability[@standardID='ivo://ivoa.net/std/SIA#query-2.0']/interface/accessURL"
    )[0].text == f"{live_server}/sia/query"
    authority = records["ivo://astrocloud"]
    assert authority.get(XSI_TYPE) == "vg:Authority" and authority.findtext("managingOrg")
    assert records["ivo://astrocloud/registry"].get(XSI_TYPE) == "vg:Registry"


def test_get_record_in_dublin_core(live_server, published):
    root = oai(live_server, {"verb": "GetRecord", "identifier": "ivo://astrocloud/scs/stars",
                             "metadataPrefix": "oai_dc"})
    dc = root.find(".//oai:metadata/oai_dc:dc", namespaces=NS)
    assert dc.findtext("dc:title", namespaces=NS) == "Stars near M 31"
    assert "ivo://astrocloud/scs/stars" in [e.text for e in dc.iterfind("dc:identifier",
                                                                        namespaces=NS)]
    assert dc.findtext("dc:description", namespaces=NS) == "Fifty synthetic stars."
    assert dc.findtext("dc:publisher", namespaces=NS)
    assert dc.findtext("dc:type", namespaces=NS) == "Service"


def test_a_harvest_follows_resumption_tokens(live_server, published, settings, monkeypatch):
    everything = identifiers(oai(live_server, {"verb": "ListIdentifiers",
                                               "metadataPrefix": "ivo_vor"}))
    monkeypatch.setattr(settings, "oai_page_size", 3)
    harvested, cursors = [], []
    params = {"verb": "ListRecords", "metadataPrefix": "ivo_vor"}
    for _ in range(10):
        root = oai(live_server, params, post=len(cursors) % 2 == 1)
        assert error_code(root) is None
        page = identifiers(root)
        assert 1 <= len(page) <= 3
        harvested.extend(page)
        token = root.find(".//oai:resumptionToken", namespaces=NS)
        assert token is not None and token.get("completeListSize") == str(len(everything))
        cursors.append(int(token.get("cursor")))
        if not token.text:
            break
        params = {"verb": "ListRecords", "resumptionToken": token.text}
    assert harvested == everything and len(everything) == 7
    assert cursors == [0, 3, 6]


@pytest.mark.parametrize("params,count", [
    ({"from": "2000-01-01"}, 7),
    ({"from": "2000-01-01T00:00:00Z", "until": "2999-12-31T23:59:59Z"}, 7),
    ({"until": "2999-12-31"}, 7),
])
def test_from_and_until_select_by_datestamp(live_server, published, params, count):
    root = oai(live_server, {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", **params})
    assert len(identifiers(root)) == count


def test_a_catalog_is_harvested_from_its_import_on(live_server, published):
    today = dt.datetime.now(dt.UTC).date()
    root = oai(live_server, {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc",
                             "from": (today - dt.timedelta(days=1)).isoformat()})
    assert identifiers(root) == ["ivo://astrocloud/scs/stars"]


@pytest.mark.parametrize("params,code", [
    ({}, "badVerb"),
    ({"verb": "Harvest"}, "badVerb"),
    ([("verb", "Identify"), ("verb", "ListSets")], "badVerb"),
    ({"verb": "Identify", "metadataPrefix": "oai_dc"}, "badArgument"),
    ({"verb": "ListRecords"}, "badArgument"),
    ({"verb": "GetRecord", "identifier": "ivo://astrocloud/ssa"}, "badArgument"),
    ([("verb", "ListIdentifiers"), ("metadataPrefix", "oai_dc"),
      ("metadataPrefix", "ivo_vor")], "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "resumptionToken": "x"},
     "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "from": "yesterday"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "from": "2020-02-30"},
     "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "from": "2020-01-01",
      "until": "2021-01-01T00:00:00Z"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "from": "2021-01-01",
      "until": "2020-01-01"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "marc21"}, "cannotDisseminateFormat"),
    ({"verb": "GetRecord", "identifier": "ivo://astrocloud/ssa", "metadataPrefix": "marc21"},
     "cannotDisseminateFormat"),
    ({"verb": "GetRecord", "identifier": "ivo://elsewhere/x", "metadataPrefix": "oai_dc"},
     "idDoesNotExist"),
    ({"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "from": "2999-01-01"},
     "noRecordsMatch"),
    ({"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "until": "2000-01-01"},
     "noRecordsMatch"),
    ({"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "set": "other"},
     "noRecordsMatch"),
    ({"verb": "ListRecords", "resumptionToken": "not-a-token"}, "badResumptionToken"),
    ({"verb": "ListIdentifiers", "resumptionToken": "eyJvZmZzZXQiOjk5OX0"},
     "badResumptionToken"),
    ({"verb": "ListSets", "resumptionToken": "x"}, "badResumptionToken"),
    ({"verb": "Identify\x02"}, "badVerb"),
    ({"verb": "GetRecord", "identifier": "ivo://astrocloud/ssa\x01",
      "metadataPrefix": "oai_dc"}, "idDoesNotExist"),
])
@pytest.mark.parametrize("post", [False, True])
def test_errors_are_oai_documents_with_status_200(live_server, published, params, code,
                                                  post):
    root = oai(live_server, params, post=post)
    assert error_code(root) == code
    assert root.findtext("oai:error", namespaces=NS)
    assert len(root) == 3  # responseDate, request, error
    if code in ("badVerb", "badArgument"):
        assert root.find("oai:request", namespaces=NS).attrib == {}


def test_a_token_past_the_end_is_refused(live_server, published, settings, monkeypatch):
    monkeypatch.setattr(settings, "oai_page_size", 5)
    root = oai(live_server, {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"})
    token = root.findtext(".//oai:resumptionToken", namespaces=NS)
    monkeypatch.setattr(settings, "oai_page_size", 100)
    follow = oai(live_server, {"verb": "ListIdentifiers", "resumptionToken": token})
    assert len(identifiers(follow)) == 2
    far = base64.urlsafe_b64encode(json.dumps({"metadataPrefix": "oai_dc",
                                               "offset": 50}).encode()).decode()
    assert error_code(oai(live_server, {"verb": "ListIdentifiers", "resumptionToken": far})) \
        == "badResumptionToken"
