"""MyVOSpace as an IVOA VOSpace 2.1 service: every document it writes is checked against the
official schemas (VOSpace-2.1.xsd, UWS 1.1), every endpoint and fault is driven over real HTTP,
CADC's own `vos` command-line client works against it over TLS, and transfer jobs are removed
once past their UWS destruction time."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import urllib.parse
from pathlib import Path

import httpx
import pytest
import xmlschema
from lxml import etree
from xmlschema.locations import FALLBACK_LOCATIONS

from astrocloud.cloud import services as vos
from astrocloud.cloud.tasks import expire_transfers
from astrocloud.core.db import utcnow
from astrocloud.core.identity import services as identity
from astrocloud.core.jobs.models import Job
from astrocloud.core.runtime import build_runtime

HERE = Path(__file__).parent
V = "http://www.ivoa.net/xml/VOSpace/v2.0"
UWS = "http://www.ivoa.net/xml/UWS/v1.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XLINK = "http://www.w3.org/1999/xlink"
NS = {"vos": V, "uws": UWS, "xlink": XLINK}
AUTH = "vos://astrocloud.local!vospace"
CORE = "ivo://ivoa.net/vospace/core#"
DATA = os.urandom(150_000)


# ---- the official schemas ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    """VOSpace 2.1 with the UWS 1.1 schema it imports, all from local files."""
    local = {"http://www.ivoa.net/xml/UWS/v1.0": str(HERE / "UWS-1.1.xsd"),
             "http://www.ivoa.net/xml/Xlink/xlink.xsd": FALLBACK_LOCATIONS[XLINK]}
    return xmlschema.XMLSchema(str(HERE / "VOSpace-2.1.xsd"),
                               uri_mapper=lambda uri: local.get(uri, uri))


def _check(xsd_component, element) -> etree._Element:
    errors = [str(e.reason) for e in xsd_component.iter_errors(element)]
    assert not errors, f"{etree.tostring(element).decode()[:2000]}\n{errors}"
    return element


def node_doc(schema, response: httpx.Response) -> etree._Element:
    """A node document, valid as the schema's vos:Node type (with its xsi:type)."""
    assert response.headers["content-type"].startswith("text/xml"), response.text
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{V}}}node" and root.get("version") == "2.1"
    return _check(schema.types["Node"], root)


def transfer_doc(schema, response: httpx.Response) -> etree._Element:
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{V}}}transfer"
    schema.validate(root)
    return root


def uws_doc(schema, response: httpx.Response) -> etree._Element:
    """A UWS job, job list or results document (jobInfo's vos:transfer is checked too)."""
    root = etree.fromstring(response.content)
    uws = schema.maps.namespaces[UWS][0]
    uws.validate(root)
    for transfer in root.iterfind("uws:jobInfo/vos:transfer", NS):
        schema.validate(transfer)
    return root


def props(root) -> dict[str, str]:
    return {p.get("uri"): p.text or "" for p in root.iterfind("vos:properties/vos:property", NS)}


def fault(response: httpx.Response, status: int, name: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("text/plain"), response.text
    assert response.text.split()[0] == name, response.text
    return response.text


def node_xml(path: str, kind: str = "vos:ContainerNode", properties: dict | None = None,
             target: str | None = None, uri: str | None = None) -> bytes:
    props_xml = "".join(
        f'<vos:property uri="{k}" xsi:nil="true"/>' if v is None else
        f'<vos:property uri="{k}">{v}</vos:property>' for k, v in (properties or {}).items())
    target_xml = f"<vos:target>{target}</vos:target>" if target else ""
    return (f'<vos:node xmlns:vos="{V}" xmlns:xsi="{XSI}" xsi:type="{kind}" '
            f'uri="{uri or AUTH + "/" + path}"><vos:properties>{props_xml}</vos:properties>'
            f"{target_xml}</vos:node>").encode()


def transfer_xml(target: str, direction: str, protocols=(), keep_bytes=None, view=None) -> bytes:
    parts = [f"<vos:target>{target}</vos:target>", f"<vos:direction>{direction}</vos:direction>"]
    if view:
        parts.append(f'<vos:view uri="{view}"/>')
    for uri, *methods in protocols:
        inner = "".join(f'<vos:securityMethod uri="{m}"/>' for m in methods)
        parts.append(f'<vos:protocol uri="{uri}">{inner}</vos:protocol>')
    if keep_bytes is not None:
        parts.append(f"<vos:keepBytes>{str(keep_bytes).lower()}</vos:keepBytes>")
    return (f'<vos:transfer xmlns:vos="{V}" version="2.1">' + "".join(parts) +
            "</vos:transfer>").encode()


XML_HEADERS = {"content-type": "text/xml"}




@pytest.fixture
def alice(users) -> httpx.Client:
    return users.api(username="alice")


@pytest.fixture
def bob(users) -> httpx.Client:
    return users.api(username="bob")


def mkdir(client, path):
    response = client.put(f"/vospace/nodes/{path}", content=node_xml(path), headers=XML_HEADERS)
    assert response.status_code == 201, response.text
    return response


def push(client, path, data=DATA) -> httpx.Response:
    """Upload through a parameter-negotiated pushToVoSpace (VOSpace 2.1 §5.5.2, example 4)."""
    negotiated = client.post("/vospace/synctrans", params={
        "TARGET": f"{AUTH}/{path}", "DIRECTION": "pushToVoSpace",
        "PROTOCOL": CORE + "httpput"})
    assert negotiated.status_code == 200, negotiated.text
    endpoint = etree.fromstring(negotiated.content).findtext("vos:protocol/vos:endpoint",
                                                             namespaces=NS)
    return httpx.put(endpoint, content=data, timeout=30)


# ---- service metadata -------------------------------------------------------------------------


def test_capabilities_name_every_vospace_endpoint_with_the_token_security_methods(client):
    response = client.get("/vospace/capabilities")
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    caps = {c.get("standardID"): c for c in root.iterfind("capability")}
    for sid in ("ivo://ivoa.net/std/VOSpace/v2.0#nodes", "ivo://ivoa.net/std/VOSpace#sync-2.1",
                "ivo://ivoa.net/std/VOSpace/v2.0#transfers", "ivo://ivoa.net/std/VOSI#capabilities",
                "ivo://ivoa.net/std/VOSI#availability"):
        assert sid in caps
    nodes = caps["ivo://ivoa.net/std/VOSpace/v2.0#nodes"]
    assert nodes.findtext("interface/accessURL").endswith("/vospace/nodes")
    methods = {m.get("standardID") for m in nodes.iterfind("interface/securityMethod")}
    assert methods == {"ivo://ivoa.net/sso#token", "ivo://ivoa.net/sso#BasicAA"}


def test_availability_says_the_service_is_up(client):
    root = etree.fromstring(client.get("/vospace/availability").content)
    assert root.findtext("{http://www.ivoa.net/xml/VOSIAvailability/v1.0}available") == "true"


@pytest.mark.parametrize("resource, xsd_type", [("protocols", "GetProtocolsResponse"),
                                                ("views", "GetViewsResponse"),
                                                ("properties", "GetPropertiesResponse")])
def test_service_metadata_documents_are_valid(client, schema, resource, xsd_type):
    response = client.get(f"/vospace/{resource}")
    assert response.status_code == 200
    root = _check(schema.types[xsd_type], etree.fromstring(response.content))
    assert root.tag == f"{{{V}}}{resource}"


def test_protocols_offer_plain_http_get_and_put_on_a_plain_http_server(client):
    root = etree.fromstring(client.get("/vospace/protocols").content)
    provided = {p.get("uri") for p in root.iterfind("vos:provides/vos:protocol", NS)}
    assert provided == {CORE + "httpget", CORE + "httpput"}


# ---- nodes ------------------------------------------------------------------------------------


def test_a_users_root_container_appears_with_quota_and_usage(alice, schema):
    root = node_doc(schema, alice.get("/vospace/nodes/alice"))
    assert root.get(f"{{{XSI}}}type") == "vos:ContainerNode"
    assert root.get("uri") == f"{AUTH}/alice"
    p = props(root)
    assert p[CORE + "quota"] == str(10 * 1024**3)
    assert p[CORE + "length"] == "0" and p[CORE + "availableSpace"] == str(10 * 1024**3)
    assert p[CORE + "publicread"] == "false"
    assert p["ivo://cadc.nrc.ca/vospace/core#ispublic"] == "false"
    for time_property in ("date", "mtime", "ctime", "btime"):
        assert p[CORE + time_property][:4].isdigit()


def test_creating_a_container_returns_its_document_and_lists_it_in_the_parent(alice, schema):
    created = node_doc(schema, mkdir(alice, "alice/results"))
    assert created.get("uri") == f"{AUTH}/alice/results"
    parent = node_doc(schema, alice.get("/vospace/nodes/alice"))
    children = parent.findall("vos:nodes/vos:node", NS)
    assert [c.get("uri") for c in children] == [f"{AUTH}/alice/results"]
    assert children[0].get(f"{{{XSI}}}type") == "vos:ContainerNode"
    assert props(children[0])[CORE + "date"]  # clients (vls) read every child's date


def test_detail_min_keeps_only_what_the_schema_requires(alice, schema):
    mkdir(alice, "alice/d")
    assert push(alice, "alice/d/x.fits").status_code == 201
    root = node_doc(schema, alice.get("/vospace/nodes/alice/d", params={"detail": "min"}))
    assert root.find("vos:properties", NS) is None
    child = root.find("vos:nodes/vos:node", NS)
    assert child.get(f"{{{XSI}}}type") == "vos:DataNode" and len(child) == 0


def test_detail_properties_lists_properties_but_no_children_or_views(alice, schema):
    mkdir(alice, "alice/d")
    push(alice, "alice/d/x.fits")
    root = node_doc(schema, alice.get("/vospace/nodes/alice/d", params={"detail": "properties"}))
    assert props(root)[CORE + "date"]
    assert root.find("vos:accepts", NS) is None
    assert root.findall("vos:nodes/vos:node", NS) == []


def test_a_data_node_reports_length_type_and_views(alice, schema):
    mkdir(alice, "alice/d")
    push(alice, "alice/d/x.fits")
    root = node_doc(schema, alice.get("/vospace/nodes/alice/d/x.fits"))
    assert root.get(f"{{{XSI}}}type") == "vos:DataNode"
    p = props(root)
    assert p[CORE + "length"] == str(len(DATA))
    assert p[CORE + "type"] == "application/fits"
    assert root.find("vos:accepts/vos:view", NS).get("uri") == CORE + "anyview"


def test_children_are_paged_with_limit_and_a_starting_uri(alice, schema):
    mkdir(alice, "alice/many")
    for name in "abcde":
        mkdir(alice, f"alice/many/{name}")

    def page(**params):
        root = node_doc(schema, alice.get("/vospace/nodes/alice/many", params=params))
        return [n.get("uri").rsplit("/", 1)[-1] for n in root.iterfind("vos:nodes/vos:node", NS)]

    assert page(limit=2) == ["a", "b"]
    assert page(limit=2, uri=f"{AUTH}/alice/many/b") == ["b", "c"]  # starts at the given child
    assert page(limit=0) == []
    assert page() == list("abcde")


def test_a_link_node_keeps_its_target(alice, schema):
    mkdir(alice, "alice/d")
    response = alice.put("/vospace/nodes/alice/link", headers=XML_HEADERS, content=node_xml(
        "alice/link", "vos:LinkNode", target=f"{AUTH}/alice/d"))
    assert response.status_code == 201, response.text
    root = node_doc(schema, alice.get("/vospace/nodes/alice/link"))
    assert root.get(f"{{{XSI}}}type") == "vos:LinkNode"
    assert root.findtext("vos:target", namespaces=NS) == f"{AUTH}/alice/d"


def test_a_data_node_can_be_created_empty_with_properties(alice, schema):
    response = alice.put("/vospace/nodes/alice/empty.txt", headers=XML_HEADERS, content=node_xml(
        "alice/empty.txt", "vos:DataNode", {CORE + "title": "Nothing yet"}))
    root = node_doc(schema, response)
    assert response.status_code == 201
    assert props(root)[CORE + "length"] == "0"
    assert props(root)[CORE + "title"] == "Nothing yet"


def test_setting_properties_publishes_shares_and_removes_with_nil(alice, users, schema):
    group = identity.create_group(users.system, name="survey", title="Survey team")
    assert group.id
    mkdir(alice, "alice/shared")
    body = node_xml("alice/shared", properties={
        CORE + "title": "Light curves", CORE + "publicread": "true",
        CORE + "groupread": "ivo://astrocloud.local/gms?survey"})
    root = node_doc(schema, alice.post("/vospace/nodes/alice/shared", content=body,
                                       headers=XML_HEADERS))
    p = props(root)
    assert p[CORE + "title"] == "Light curves"
    assert p[CORE + "publicread"] == "true"
    assert p[CORE + "groupread"] == "survey"
    removed = node_doc(schema, alice.post("/vospace/nodes/alice/shared", headers=XML_HEADERS,
                                          content=node_xml("alice/shared", properties={
                                              CORE + "title": None,
                                              "ivo://cadc.nrc.ca/vospace/core#ispublic": "false"})))
    assert CORE + "title" not in props(removed)
    assert props(removed)[CORE + "publicread"] == "false"


def test_a_published_node_is_readable_anonymously(alice, client, schema):
    mkdir(alice, "alice/pub")
    alice.post("/vospace/nodes/alice/pub", headers=XML_HEADERS,
               content=node_xml("alice/pub", properties={CORE + "publicread": "true"}))
    fault(client.get("/vospace/nodes/alice"), 404, "NodeNotFound")
    node_doc(schema, client.get("/vospace/nodes/alice/pub"))


def test_deleting_a_container_removes_everything_in_it(alice):
    mkdir(alice, "alice/d")
    push(alice, "alice/d/x.fits")
    assert alice.delete("/vospace/nodes/alice/d").status_code == 204
    fault(alice.get("/vospace/nodes/alice/d"), 404, "NodeNotFound")
    fault(alice.get("/vospace/nodes/alice/d/x.fits"), 404, "ContainerNotFound")
    root = etree.fromstring(alice.get("/vospace/nodes/alice").content)
    assert props(root)[CORE + "length"] == "0"


# ---- the bytes --------------------------------------------------------------------------------


def test_bytes_pushed_come_back_whole_and_by_range(alice):
    mkdir(alice, "alice/d")
    put = push(alice, "alice/d/x.fits")
    assert put.status_code == 201
    assert put.headers["digest"] == "md5=" + base64.b64encode(
        hashlib.md5(DATA).digest()).decode()
    whole = alice.get("/vospace/data/alice/d/x.fits")
    assert whole.content == DATA
    assert whole.headers["content-type"] == "application/fits"
    part = alice.get("/vospace/data/alice/d/x.fits", headers={"range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == DATA[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(DATA)}"
    tail = alice.get("/vospace/data/alice/d/x.fits", headers={"range": "bytes=-10"})
    assert tail.content == DATA[-10:]
    bad = alice.get("/vospace/data/alice/d/x.fits", headers={"range": f"bytes={len(DATA)}-"})
    assert bad.status_code == 416


def test_pushing_again_replaces_the_bytes(alice):
    mkdir(alice, "alice/d")
    push(alice, "alice/d/x.fits")
    again = push(alice, "alice/d/x.fits", b"short")
    assert again.status_code == 200
    assert alice.get("/vospace/data/alice/d/x.fits").content == b"short"


def test_a_digest_that_does_not_match_the_bytes_stores_nothing(alice):
    mkdir(alice, "alice/d")
    wrong = "md5=" + base64.b64encode(hashlib.md5(b"other").digest()).decode()
    response = alice.put("/vospace/data/alice/d/x.bin", content=DATA, headers={"digest": wrong})
    fault(response, 412, "InvalidData")
    fault(alice.get("/vospace/nodes/alice/d/x.bin"), 404, "NodeNotFound")


def test_a_pull_redirect_hands_out_a_signed_url_that_needs_no_credentials(alice):
    mkdir(alice, "alice/d")
    push(alice, "alice/d/x.fits")
    response = alice.get("/vospace/synctrans", params={
        "TARGET": "vos://astrocloud.local~vospace/alice/d/x.fits",  # "~" works like "!"
        "DIRECTION": "pullFromVoSpace", "PROTOCOL": CORE + "httpget", "REQUEST": "redirect"})
    assert response.status_code == 303
    url = response.headers["location"]
    assert "signature=" in url
    assert httpx.get(url).content == DATA
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query["signature"] = "0" * 64
    forged = parts._replace(query=urllib.parse.urlencode(query)).geturl()
    fault(httpx.get(forged), 403, "PermissionDenied")
    other_file = url.replace("/x.fits?", "/y.fits?")
    fault(httpx.get(other_file), 403, "PermissionDenied")


def test_a_parameter_negotiation_returns_a_valid_transfer_document(alice, schema):
    mkdir(alice, "alice/d")
    push(alice, "alice/d/x.fits")
    response = alice.post("/vospace/synctrans", params={
        "TARGET": f"{AUTH}/alice/d/x.fits", "DIRECTION": "pullFromVoSpace",
        "PROTOCOL": CORE + "httpget", "SECURITYMETHOD": "ivo://ivoa.net/sso#token"})
    root = transfer_doc(schema, response)
    protocol = root.find("vos:protocol", NS)
    assert protocol.find("vos:securityMethod", NS).get("uri") == "ivo://ivoa.net/sso#token"
    endpoint = protocol.findtext("vos:endpoint", namespaces=NS)
    assert "signature" not in endpoint  # the caller's token opens it
    assert alice.get(endpoint).content == DATA
    assert httpx.get(endpoint).status_code == 404  # not without it


# ---- UWS transfer jobs ------------------------------------------------------------------------


def test_an_async_push_job_goes_pending_executing_completed(alice, schema):
    mkdir(alice, "alice/d")
    created = alice.post("/vospace/transfers", headers=XML_HEADERS, content=transfer_xml(
        f"{AUTH}/alice/d/new.dat", "pushToVoSpace", [(CORE + "httpput",)]))
    assert created.status_code == 303
    job_url = created.headers["location"]
    job = uws_doc(schema, alice.get(job_url))
    assert job.findtext("uws:phase", namespaces=NS) == "PENDING"
    assert job.findtext("uws:ownerId", namespaces=NS) == "alice"
    run = alice.post(job_url + "/phase", data={"PHASE": "RUN"})
    assert run.status_code == 303 and run.headers["location"] == job_url
    assert alice.get(job_url + "/phase").text == "EXECUTING"
    job = uws_doc(schema, alice.get(job_url))
    details_url = job.find("uws:results/uws:result[@id='transferDetails']", NS).get(
        f"{{{XLINK}}}href")
    details = transfer_doc(schema, alice.get(details_url))
    endpoint = details.findtext("vos:protocol/vos:endpoint", namespaces=NS)
    assert httpx.put(endpoint, content=b"abc").status_code == 201
    assert alice.get(job_url + "/phase").text == "COMPLETED"
    assert alice.get("/vospace/data/alice/d/new.dat").content == b"abc"
    uws_doc(schema, alice.get(job_url + "/results"))


def test_a_transfer_document_posted_to_synctrans_redirects_to_its_details(alice, schema):
    mkdir(alice, "alice/d")
    push(alice, "alice/d/x.fits")
    response = alice.post("/vospace/synctrans", headers=XML_HEADERS, content=transfer_xml(
        f"{AUTH}/alice/d/x.fits", "pullFromVoSpace",
        [(CORE + "httpget", "ivo://ivoa.net/sso#token"), (CORE + "httpget",)]))
    assert response.status_code == 303
    assert response.headers["location"].endswith("/results/transferDetails")
    details = transfer_doc(schema, alice.get(response.headers["location"]))
    endpoints = [p.findtext("vos:endpoint", namespaces=NS)
                 for p in details.iterfind("vos:protocol", NS)]
    assert len(endpoints) == 2
    assert alice.get(endpoints[0]).content == DATA
    assert httpx.get(endpoints[1]).content == DATA  # the anonymous one is signed
    job_url = response.headers["location"].rsplit("/results", 1)[0]
    assert alice.get(job_url + "/phase").text == "COMPLETED"


def run_job(client, body: bytes) -> str:
    created = client.post("/vospace/transfers", params={"PHASE": "RUN"}, content=body,
                          headers=XML_HEADERS)
    assert created.status_code == 303, created.text
    return created.headers["location"]


def test_a_move_job_moves_the_node(alice, schema):
    mkdir(alice, "alice/a")
    push(alice, "alice/a/x.fits")
    job_url = run_job(alice, transfer_xml(f"{AUTH}/alice/a/x.fits", f"{AUTH}/alice/a/y.fits",
                                          keep_bytes=False))
    job = uws_doc(schema, alice.get(job_url))
    assert job.findtext("uws:phase", namespaces=NS) == "COMPLETED"
    assert job.findtext("uws:endTime", namespaces=NS)
    fault(alice.get("/vospace/nodes/alice/a/x.fits"), 404, "NodeNotFound")
    assert alice.get("/vospace/data/alice/a/y.fits").content == DATA


def test_a_move_onto_an_existing_container_moves_into_it(alice):
    mkdir(alice, "alice/a")
    mkdir(alice, "alice/b")
    push(alice, "alice/a/x.fits")
    job_url = run_job(alice, transfer_xml(f"{AUTH}/alice/a/x.fits", f"{AUTH}/alice/b",
                                          keep_bytes=False))
    assert alice.get(job_url + "/phase").text == "COMPLETED"
    assert alice.get("/vospace/data/alice/b/x.fits").content == DATA


def test_a_copy_job_keeps_the_source_and_counts_against_the_quota(alice):
    mkdir(alice, "alice/a")
    push(alice, "alice/a/x.fits")
    job_url = run_job(alice, transfer_xml(f"{AUTH}/alice/a/x.fits", f"{AUTH}/alice/a/copy.fits",
                                          keep_bytes=True))
    assert alice.get(job_url + "/phase").text == "COMPLETED"
    assert alice.get("/vospace/data/alice/a/copy.fits").content == DATA
    assert alice.get("/vospace/data/alice/a/x.fits").content == DATA
    root = etree.fromstring(alice.get("/vospace/nodes/alice").content)
    assert props(root)[CORE + "length"] == str(2 * len(DATA))


def test_a_copy_to_auto_reports_the_name_it_chose(alice, schema):
    mkdir(alice, "alice/a")
    push(alice, "alice/a/x.fits")
    job_url = run_job(alice, transfer_xml(f"{AUTH}/alice/a/x.fits", f"{AUTH}/alice/a/.auto",
                                          keep_bytes=True))
    job = uws_doc(schema, alice.get(job_url))
    chosen = job.find("uws:results/uws:result[@id='destination']", NS).get(f"{{{XLINK}}}href")
    assert chosen.startswith(f"{AUTH}/alice/a/") and not chosen.endswith(".auto")
    node_doc(schema, alice.get("/vospace/nodes/" + chosen.split("!vospace/", 1)[1]))


def test_a_failed_job_has_an_error_summary_and_the_fault_at_its_error_uri(alice, schema):
    job_url = run_job(alice, transfer_xml(f"{AUTH}/alice/missing", f"{AUTH}/alice/other",
                                          keep_bytes=False))
    job = uws_doc(schema, alice.get(job_url))
    assert job.findtext("uws:phase", namespaces=NS) == "ERROR"
    assert job.findtext("uws:errorSummary/uws:message", namespaces=NS) == "Node Not Found"
    assert alice.get(job_url + "/error").text.startswith("NodeNotFound ")


def test_a_pending_job_can_be_aborted_and_deleted(alice, schema):
    created = alice.post("/vospace/transfers", headers=XML_HEADERS, content=transfer_xml(
        f"{AUTH}/alice/x", f"{AUTH}/alice/y", keep_bytes=False))
    job_url = created.headers["location"]
    assert alice.post(job_url + "/phase", data={"PHASE": "ABORT"}).status_code == 303
    assert alice.get(job_url + "/phase").text == "ABORTED"
    listing = uws_doc(schema, alice.get("/vospace/transfers"))
    assert [r.get("id") for r in listing.iterfind("uws:jobref", NS)] == [job_url.rsplit("/")[-1]]
    deleted = alice.delete(job_url)
    assert deleted.status_code == 303
    assert alice.get(job_url).status_code == 404


def test_jobs_are_private_to_their_owner(alice, bob, schema):
    job_url = run_job(alice, transfer_xml(f"{AUTH}/alice/x", f"{AUTH}/alice/y", keep_bytes=True))
    assert bob.get(job_url).status_code == 404
    assert uws_doc(schema, bob.get("/vospace/transfers")).findall("uws:jobref", NS) == []


def test_the_public_share_protocol_is_not_supported(alice):
    mkdir(alice, "alice/d")
    push(alice, "alice/d/x.fits")
    fault(alice.get("/vospace/synctrans", params={
        "TARGET": f"{AUTH}/alice/d/x.fits", "DIRECTION": "pullFromVoSpace",
        "PROTOCOL": "http://wiki.ivoa.net/twiki/bin/view/IVOA/VOSpacePublicShare"}),
        400, "ProtocolNotSupported")


def test_an_unknown_view_is_not_supported(alice):
    mkdir(alice, "alice/d")
    push(alice, "alice/d/x.fits")
    job_url = run_job(alice, transfer_xml(f"{AUTH}/alice/d/x.fits", "pullFromVoSpace",
                                          [(CORE + "httpget",)], view="ivo://example/cutout"))
    assert alice.get(job_url + "/error").text.startswith("ViewNotSupported")


# ---- the lifetime of transfer jobs -------------------------------------------------------------


def uws_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def job_times(schema, client, job_url) -> tuple[dt.datetime, dt.datetime]:
    """(creationTime, destruction) of a UWS job."""
    job = uws_doc(schema, client.get(job_url))
    return (uws_time(job.findtext("uws:creationTime", namespaces=NS)),
            uws_time(job.findtext("uws:destruction", namespaces=NS)))


def pending_job(client) -> str:
    created = client.post("/vospace/transfers", headers=XML_HEADERS, content=transfer_xml(
        f"{AUTH}/alice/x", f"{AUTH}/alice/y", keep_bytes=False))
    assert created.status_code == 303, created.text
    return created.headers["location"]


def job_ids(client) -> list[str]:
    listing = etree.fromstring(client.get("/vospace/transfers").content)
    return [r.get("id") for r in listing.iterfind("uws:jobref", NS)]


def test_a_pending_job_is_destroyed_a_day_after_it_was_created(alice, schema):
    job_url = pending_job(alice)
    created, destruction = job_times(schema, alice, job_url)
    assert destruction - created == dt.timedelta(days=1)
    assert uws_time(alice.get(job_url + "/destruction").text) == destruction


def test_a_job_that_ran_is_destroyed_a_week_after_it_was_created(alice, schema):
    job_url = run_job(alice, transfer_xml(f"{AUTH}/alice/x", f"{AUTH}/alice/y",
                                          keep_bytes=False))
    created, destruction = job_times(schema, alice, job_url)
    assert destruction - created == dt.timedelta(days=7)


def test_the_clean_up_removes_a_job_past_its_destruction_time(alice, schema, runtime):
    job_url = run_job(alice, transfer_xml(f"{AUTH}/alice/x", f"{AUTH}/alice/y",
                                          keep_bytes=False))
    _, destruction = job_times(schema, alice, job_url)
    assert expire_transfers(runtime, now=destruction + dt.timedelta(seconds=1)) == \
        {"removed": 1}
    assert alice.get(job_url).status_code == 404
    assert job_ids(alice) == []


def test_the_clean_up_keeps_jobs_before_their_destruction_time(alice, schema, runtime):
    ran = run_job(alice, transfer_xml(f"{AUTH}/alice/x", f"{AUTH}/alice/y", keep_bytes=False))
    waiting = pending_job(alice)
    _, first = job_times(schema, alice, waiting)
    assert expire_transfers(runtime, now=first - dt.timedelta(seconds=1)) == {"removed": 0}
    assert sorted(job_ids(alice)) == sorted(u.rsplit("/", 1)[1] for u in (ran, waiting))


def test_a_pending_job_never_run_expires_after_the_configured_time(alice, settings,
                                                                    database):
    ran = run_job(alice, transfer_xml(f"{AUTH}/alice/x", f"{AUTH}/alice/y", keep_bytes=False))
    waiting = pending_job(alice)
    configured = build_runtime(settings.model_copy(update={
        "vos_transfer_pending_seconds": 60, "vos_transfer_lifetime_seconds": 3600}), database)
    later = utcnow() + dt.timedelta(seconds=61)
    assert expire_transfers(configured, now=later) == {"removed": 1}
    assert alice.get(waiting).status_code == 404
    assert job_ids(alice) == [ran.rsplit("/", 1)[1]]


def test_the_clean_up_leaves_other_jobs_alone(alice, runtime, database):
    pending_job(alice)
    other = runtime.jobs.enqueue("storage.sweep", {"batch": 10})
    runtime.jobs.wait([other])
    expire_transfers(runtime, now=utcnow() + dt.timedelta(days=30))
    with database.session(write=False) as db:
        assert db.get(Job, other).task == "storage.sweep"


def test_the_clean_up_runs_hourly_on_the_job_queue_like_the_storage_sweep(runtime):
    runtime.jobs.bind_all()
    on_the_hour = {t.name for t in runtime.jobs.huey.read_periodic(
        dt.datetime(2026, 11, 25, 13, 0))}
    assert {"periodic.cloud.vos.expire_transfers", "periodic.storage.sweep"} <= on_the_hour
    half_past = {t.name for t in runtime.jobs.huey.read_periodic(
        dt.datetime(2026, 11, 25, 13, 30))}
    assert "periodic.cloud.vos.expire_transfers" not in half_past


def test_the_clean_up_job_runs_on_the_queue(alice, runtime):
    pending_job(alice)
    job_id = runtime.jobs.enqueue("cloud.vos.expire_transfers",
                                  {"now": (utcnow() + dt.timedelta(days=2)).isoformat()})
    [job] = runtime.jobs.wait([job_id])
    assert job.status == "done" and json.loads(job.result) == {"removed": 1}
    assert job_ids(alice) == []


# ---- faults -----------------------------------------------------------------------------------


def test_a_missing_node_is_node_not_found(alice):
    fault(alice.get("/vospace/nodes/alice/nothing"), 404, "NodeNotFound")
    fault(alice.delete("/vospace/nodes/alice/nothing"), 404, "NodeNotFound")


def test_a_node_under_a_missing_container_or_a_link_says_so(alice):
    fault(alice.get("/vospace/nodes/alice/no/x"), 404, "ContainerNotFound")
    fault(alice.delete("/vospace/nodes/alice/no/x"), 404, "ContainerNotFound")
    mkdir(alice, "alice/d")
    alice.put("/vospace/nodes/alice/l", headers=XML_HEADERS,
              content=node_xml("alice/l", "vos:LinkNode", target=f"{AUTH}/alice/d"))
    fault(alice.get("/vospace/nodes/alice/l/x"), 400, "LinkFound")


def test_the_top_node_lists_the_callers_own_space(alice, bob, schema):
    mkdir(bob, "bob/x")
    root = node_doc(schema, alice.get("/vospace/nodes/"))
    assert root.get("uri") == AUTH
    assert [n.get("uri") for n in root.iterfind("vos:nodes/vos:node", NS)] == [f"{AUTH}/alice"]


def test_creating_an_existing_node_is_duplicate_node(alice):
    mkdir(alice, "alice/d")
    response = alice.put("/vospace/nodes/alice/d", content=node_xml("alice/d"),
                         headers=XML_HEADERS)
    fault(response, 409, "DuplicateNode")


def test_creating_under_a_missing_container_is_container_not_found(alice):
    response = alice.put("/vospace/nodes/alice/no/d", content=node_xml("alice/no/d"),
                         headers=XML_HEADERS)
    fault(response, 404, "ContainerNotFound")


def test_creating_under_a_link_is_link_found(alice):
    mkdir(alice, "alice/d")
    alice.put("/vospace/nodes/alice/l", headers=XML_HEADERS,
              content=node_xml("alice/l", "vos:LinkNode", target=f"{AUTH}/alice/d"))
    response = alice.put("/vospace/nodes/alice/l/x", content=node_xml("alice/l/x"),
                         headers=XML_HEADERS)
    fault(response, 400, "LinkFound")


def test_a_document_for_another_node_is_invalid_uri(alice):
    response = alice.put("/vospace/nodes/alice/d", content=node_xml("alice/elsewhere"),
                         headers=XML_HEADERS)
    fault(response, 400, "InvalidURI")


def test_an_unknown_node_type_is_type_not_supported(alice):
    response = alice.put("/vospace/nodes/alice/d", headers=XML_HEADERS,
                         content=node_xml("alice/d", "vos:TableNode"))
    fault(response, 400, "TypeNotSupported")


def test_setting_a_read_only_property_is_permission_denied(alice):
    mkdir(alice, "alice/d")
    response = alice.post("/vospace/nodes/alice/d", headers=XML_HEADERS,
                          content=node_xml("alice/d", properties={CORE + "length": "1"}))
    fault(response, 403, "PermissionDenied")


def test_writing_into_a_tree_one_may_only_read_is_permission_denied(alice, bob):
    mkdir(bob, "bob/pub")
    bob.post("/vospace/nodes/bob/pub", headers=XML_HEADERS,
             content=node_xml("bob/pub", properties={CORE + "publicread": "true"}))
    response = alice.put("/vospace/nodes/bob/pub/mine", content=node_xml("bob/pub/mine"),
                         headers=XML_HEADERS)
    fault(response, 403, "PermissionDenied")
    fault(alice.delete("/vospace/nodes/bob/pub"), 403, "PermissionDenied")
    fault(alice.get("/vospace/synctrans", params={
        "TARGET": f"{AUTH}/bob/pub/f", "DIRECTION": "pushToVoSpace",
        "PROTOCOL": CORE + "httpput"}), 403, "PermissionDenied")


def test_another_users_private_tree_is_not_even_visible(alice, bob):
    mkdir(bob, "bob/private")
    fault(alice.get("/vospace/nodes/bob"), 404, "NodeNotFound")
    fault(alice.get("/vospace/nodes/bob/private"), 404, "ContainerNotFound")
    response = alice.put("/vospace/nodes/bob/private/x", content=node_xml("bob/private/x"),
                         headers=XML_HEADERS)
    fault(response, 404, "ContainerNotFound")


def test_anonymous_callers_cannot_write_or_start_jobs(live_server, alice):
    # a fresh client each time: no cookies, so no CSRF token is expected either
    response = httpx.put(f"{live_server}/vospace/nodes/alice/d", content=node_xml("alice/d"),
                         headers=XML_HEADERS)
    fault(response, 404, "ContainerNotFound")  # alice's space is not visible to them at all
    created = httpx.post(f"{live_server}/vospace/transfers", headers=XML_HEADERS,
                         content=transfer_xml(f"{AUTH}/alice/x", f"{AUTH}/alice/y",
                                              keep_bytes=False))
    fault(created, 401, "PermissionDenied")
    assert "Bearer" in created.headers["www-authenticate"]


def test_a_bad_token_is_permission_denied(client):
    response = client.get("/vospace/nodes/alice", headers={"authorization": "Bearer nope"})
    fault(response, 401, "PermissionDenied")


@pytest.mark.parametrize("raw_path", [
    "/vospace/nodes/alice/%2e%2e/bob",         # traversal
    "/vospace/nodes//etc/passwd",              # absolute
    "/vospace/nodes/alice/a%2Fb",              # encoded slash
    "/vospace/nodes/alice/a%5Cb",              # encoded backslash
    "/vospace/nodes/alice/a%01b",              # control character
])
def test_paths_that_could_escape_are_invalid_uri(alice, raw_path):
    request = alice.build_request("PUT", alice.base_url.join("/"), content=node_xml("alice/x"),
                                  headers=XML_HEADERS)
    request.url = request.url.copy_with(raw_path=raw_path.encode())
    fault(alice.send(request), 400, "InvalidURI")


def test_a_nul_in_a_path_is_invalid_uri(alice):
    request = alice.build_request("GET", alice.base_url.join("/"))
    request.url = request.url.copy_with(raw_path=b"/vospace/nodes/alice/a%00b")
    fault(alice.send(request), 400, "InvalidURI")


def test_a_transfer_target_of_another_service_is_invalid_uri(alice):
    response = alice.get("/vospace/synctrans", params={
        "TARGET": "vos://example.org!vospace/alice/x", "DIRECTION": "pullFromVoSpace",
        "PROTOCOL": CORE + "httpget"})
    fault(response, 400, "InvalidURI")


def test_an_upload_over_quota_is_quota_exceeded_and_stores_nothing(alice, users):
    vos.set_quota(users.system, username="alice", quota_bytes=100_000)
    mkdir(alice, "alice/d")
    fault(push(alice, "alice/d/big.bin"), 413, "QuotaExceeded")
    fault(alice.get("/vospace/nodes/alice/d/big.bin"), 404, "NodeNotFound")
    root = etree.fromstring(alice.get("/vospace/nodes/alice").content)
    assert props(root)[CORE + "length"] == "0"


def test_malformed_xml_and_entities_are_invalid_argument(alice):
    fault(alice.put("/vospace/nodes/alice/d", content=b"<vos:node", headers=XML_HEADERS),
          400, "InvalidArgument")
    bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>'
            b'<node xmlns="' + V.encode() + b'" uri="' + AUTH.encode() + b'/alice/d">&a;</node>')
    fault(alice.put("/vospace/nodes/alice/d", content=bomb, headers=XML_HEADERS),
          400, "InvalidArgument")


def test_an_unknown_endpoint_is_not_a_node_fault(client):
    response = client.get("/vospace/nothing-here")
    assert response.status_code == 404 and response.text.startswith("NotFound")


# ---- CADC's vos client ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(app, tmp_path_factory):
    from tests.support.server import free_port
    from tests.support.vos_client import TLSLiveServer, self_signed_certificate

    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    server = TLSLiveServer(app, free_port(), cert, key).start()
    yield server.url
    server.stop()


@pytest.fixture
def vos_cli(tls_server, users, tmp_path):
    from tests.support.vos_client import VosClient

    carol = users.create("carol")
    home = tmp_path / "home"
    home.mkdir()
    return VosClient(home, tls_server, users.token(carol))


def test_vos_client_makes_containers_and_lists_them(vos_cli):
    from tests.support.vos_client import VOS_BASE

    vos_cli.run("vmkdir", f"{VOS_BASE}/carol/run1")
    vos_cli.run("vmkdir", "-p", f"{VOS_BASE}/carol/run1/a/b")
    listing = vos_cli.run("vls", "-l", f"{VOS_BASE}/carol/run1").stdout
    assert listing.split()[0].startswith("d") and listing.split()[-1] == "a"


def test_vos_client_copies_files_up_and_down(vos_cli, tmp_path):
    from tests.support.vos_client import VOS_BASE

    source = tmp_path / "image.fits"
    source.write_bytes(DATA)
    vos_cli.run("vcp", str(source), f"{VOS_BASE}/carol/image.fits")
    listing = vos_cli.run("vls", "-l", f"{VOS_BASE}/carol").stdout
    assert "image.fits" in listing and str(len(DATA)) in listing
    back = tmp_path / "back.fits"
    vos_cli.run("vcp", f"{VOS_BASE}/carol/image.fits", str(back))
    assert back.read_bytes() == DATA


def test_vos_client_moves_and_removes_files(vos_cli, tmp_path):
    from tests.support.vos_client import VOS_BASE

    source = tmp_path / "table.vot"
    source.write_bytes(b"<VOTABLE/>")
    vos_cli.run("vmkdir", f"{VOS_BASE}/carol/old")
    vos_cli.run("vcp", str(source), f"{VOS_BASE}/carol/old/table.vot")
    vos_cli.run("vmv", f"{VOS_BASE}/carol/old/table.vot", f"{VOS_BASE}/carol/new.vot")
    assert vos_cli.run("vls", f"{VOS_BASE}/carol").stdout.split() == ["new.vot", "old"]
    vos_cli.run("vrm", f"{VOS_BASE}/carol/new.vot")
    assert vos_cli.run("vls", f"{VOS_BASE}/carol").stdout.split() == ["old"]


def test_vos_client_reports_a_missing_node(vos_cli):
    from tests.support.vos_client import VOS_BASE

    result = vos_cli.run("vls", f"{VOS_BASE}/carol/nothing", check=False)
    assert result.returncode != 0
    assert "NodeNotFound" in result.stderr or "not found" in result.stderr.lower()


def test_a_client_that_disconnects_mid_upload_leaves_nothing_behind(alice, live_server):
    import socket

    mkdir(alice, "alice/d")
    host, port = live_server.split("//", 1)[1].split(":")
    token = alice.headers["authorization"]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"PUT /vospace/data/alice/d/cut.bin HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: {token}\r\nContent-Length: 1000000\r\n\r\n".encode()
                     + DATA[:50_000])
    for _ in range(50):  # the server notices the disconnect shortly after
        response = alice.get("/vospace/nodes/alice/d/cut.bin")
        if response.status_code == 404:
            break
    fault(response, 404, "NodeNotFound")
    assert alice.put("/vospace/data/alice/d/cut.bin", content=b"whole").status_code == 201
    assert props(etree.fromstring(alice.get("/vospace/nodes/alice").content))[
        CORE + "length"] == "5"


def test_vos_client_copies_an_empty_file(vos_cli, tmp_path):
    from tests.support.vos_client import VOS_BASE

    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    vos_cli.run("vcp", str(empty), f"{VOS_BASE}/carol/empty.fits")
    listing = vos_cli.run("vls", "-l", f"{VOS_BASE}/carol").stdout.split()
    assert listing[-1] == "empty.fits" and listing[-5] == "0"
