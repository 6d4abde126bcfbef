"""Self-descriptions: the graph (pure), the station's SHACL shapes and the official IDS
shapes, content negotiation on a real node, and the station registry: signed registration,
refusals with the shape report, re-registration on catalog change, and search from the CLI."""
import datetime as dt
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from rdflib import RDF, RDFS, Graph
from rdflib.compare import isomorphic

from connector.identity import jose, sd
from connector.identity.keys import load_private_key
from connector.identity.pki import load_certificate
from connector.node.selfdescription import (NodeFacts, PublicOffer, build_graph, choose_media_type, public_offers,
                                            serialize_all)
from support.nodes import NodeProcess, StationProcess
from support.schemas import shared_dir

PID = "3C:0F:A3:41:83:D1:D7:25:67:90:4A:67:E2:37:FD:4C:AC:91:00:C1:keyid:7B:51:6C:C6:DD:01:84:4C:82:C1:3C:79:A4:C1:71:C8:AF:87:9C:83"
GBA = json.loads((Path(__file__).resolve().parents[1] / "policies" / "gba-cross-border-personal-information.jsonld").read_text())
FACTS = NodeFacts(participant_id=PID, name="Pearl River Medical Centre", public_url="http://127.0.0.1:8282",
                  station_url="http://127.0.0.1:8090", jurisdiction="CN-GD-GZ", membership=("hks:StationMember",),
                  membership_status="active")
OFFER = PublicOffer(offer_id="outpatient-offer", dataset_id="outpatient-visits-2025",
                    title="Outpatient visits 2025 (synthetic)", description="De-identified outpatient records",
                    keywords=("diabetes",), themes=(sd.theme_iri("health"),), data_categories=("pd:Age",),
                    policy={"@id": "outpatient-offer", "@type": "Offer", "assigner": PID, **GBA})


# ------------------------------------------------------------------ pure part
def test_the_graph_conforms_to_the_station_shapes():
    graph = build_graph(FACTS, [OFFER])
    report = sd.validate(graph)
    assert report.conforms, report.text
    index = sd.index_graph(graph)
    assert index.participant_id == PID and index.jurisdiction == "CN-GD-GZ"
    assert index.endpoints == {"2025-1": "http://127.0.0.1:8282/dsp/2025-1", "2024-1": "http://127.0.0.1:8282/dsp/2024-1"}
    assert [o.offer_id for o in index.offers] == ["outpatient-offer"]
    assert index.offers[0].policy["permission"][0]["action"] == "use"


@pytest.mark.parametrize("facts,needle", [
    (NodeFacts(**{**FACTS.__dict__, "jurisdiction": None}), "hks:establishedIn"),
    (NodeFacts(**{**FACTS.__dict__, "membership_status": "revoked"}), "active participant"),
    (NodeFacts(**{**FACTS.__dict__, "participant_id": "urn:hks:participant:x"}), "SKI:keyid:AKI"),
    (NodeFacts(**{**FACTS.__dict__, "security_profile": "idsc:SOME_OTHER_PROFILE"}), "security profiles"),
    (NodeFacts(**{**FACTS.__dict__, "station_url": None}), "station authority"),
])
def test_shape_violations_are_reported_by_name(facts, needle):
    report = sd.validate(build_graph(facts, [OFFER]))
    assert not report.conforms
    assert any(needle in r["message"] for r in report.results), report.results


def test_an_offer_without_its_policy_document_violates_the_shapes():
    graph = build_graph(FACTS, [OFFER])
    graph.remove((None, sd.HKS.policyDocument, None))
    report = sd.validate(graph)
    assert not report.conforms and any("hks:policyDocument" in r["message"] for r in report.results)


def test_idscp2_security_profile_spelling_is_normalised():
    facts = NodeFacts(**{**FACTS.__dict__, "security_profile": "idsc:TRUSTED_CONNECTOR_SECURITY_PROFILE"})
    graph = build_graph(facts, [])
    assert (None, sd.IDS.securityProfile, sd.IDSC.TRUST_SECURITY_PROFILE) in graph
    assert sd.validate(graph).conforms


def ids_reference() -> Path:
    base = shared_dir() / "reference" / "ids" / "ids-infomodel"
    if not base.is_dir():
        pytest.skip(f"the IDS Information Model is not available at {base} (set CONNECTOR_SHARED_DIR)")
    return base


def ids_context(data: Graph, base: Path) -> Graph:
    """ids/NOTES.md §4: inference "none", plus the class/property hierarchy and the rdf:type of
    each referenced idsc: individual (not the whole code lists)."""
    ont = Graph()
    for f in sorted(glob.glob(f"{base}/model/**/*.ttl", recursive=True)) + sorted(glob.glob(f"{base}/codes/*.ttl")) \
            + sorted(glob.glob(f"{base}/taxonomies/*.ttl")):
        if "/references/" not in f:
            ont.parse(f, format="turtle")
    out = Graph()
    for t in data:
        out.add(t)
    for p in (RDFS.subClassOf, RDFS.subPropertyOf):
        for t in ont.triples((None, p, None)):
            out.add(t)
    for o in set(data.objects()):
        for t in ont.triples((o, RDF.type, None)):
            out.add(t)
    return out


@pytest.mark.needs_reference("ids/ids-infomodel")
def test_the_self_description_conforms_to_the_official_ids_shapes():
    base = ids_reference()
    shapes = Graph()
    for f in sorted(glob.glob(f"{base}/testing/**/*Shape.ttl", recursive=True)) + [f"{base}/testing/shacl/abox-shapes.ttl"]:
        shapes.parse(f, format="turtle")
    graph = build_graph(FACTS, [OFFER, PublicOffer(offer_id="traffic", dataset_id="traffic-speed-feed",
                                                   title="Traffic speed feed", policy={"permission": [{"action": "use"}]})])
    report = sd.validate(ids_context(graph, base), shapes)
    assert report.conforms, "\n".join(r["message"] for r in report.results)
    wrong = build_graph(NodeFacts(**{**FACTS.__dict__, "security_profile": "idsc:BASE_CONNECTOR_SECURITY_PROFILE_X"}), [])
    assert not sd.validate(ids_context(wrong, base), shapes).conforms


def test_serialisations_are_deterministic_and_equivalent():
    graph = build_graph(FACTS, [OFFER])
    bodies = serialize_all(graph)
    assert bodies == serialize_all(build_graph(FACTS, [OFFER]))
    assert isomorphic(Graph().parse(data=bodies["text/turtle"], format="turtle"), graph)
    assert isomorphic(Graph().parse(data=bodies["application/n-triples"], format="nt"), graph)
    assert isomorphic(Graph().parse(data=bodies["application/ld+json"], format="json-ld"), graph)


@pytest.mark.parametrize("accept,expected", [
    (None, "text/turtle"), ("*/*", "text/turtle"), ("text/turtle", "text/turtle"),
    ("application/ld+json", "application/ld+json"), ("application/n-triples", "application/n-triples"),
    ("text/html, application/ld+json;q=0.5", "application/ld+json"),
    ("application/n-triples;q=0.4, text/turtle;q=0.9", "text/turtle"),
    ("application/*", "application/ld+json"),
    ("text/html", None), ("application/json", None), ("text/turtle;q=0", None),
])
def test_content_negotiation_choice(accept, expected):
    assert choose_media_type(accept) == expected


def test_only_offers_whose_access_policy_admits_anyone_are_public():
    now = dt.datetime.now(dt.timezone.utc)
    assets = [{"id": "a", "title": "A", "properties": {"theme": "transport", "keywords": ["traffic"]}},
              {"id": "b", "title": "B", "properties": {}}]
    policies = [{"id": "open", "body": {"permission": [{"action": "use"}]}},
                {"id": "hk-only", "body": {"permission": [{"action": "use", "constraint": [
                    {"leftOperand": "hks:recipientJurisdiction", "operator": "eq", "rightOperand": "HK"}]}]}}]
    offers = [{"id": "o1", "asset_ids": ["a"], "access_policy_id": "open", "contract_policy_id": "open"},
              {"id": "o2", "asset_ids": ["b"], "access_policy_id": "hk-only", "contract_policy_id": "open"}]
    found = public_offers(assets, policies, offers, participant_id=PID, now=now)
    assert [(o.offer_id, o.dataset_id) for o in found] == [("o1", "a")]
    assert found[0].themes == (sd.DATA_THEME + "TRAN",) and found[0].keywords == ("traffic",)


# ----------------------------------------------------------- real processes


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("registry")
    station = StationProcess(base / "station").start()
    pearl = NodeProcess(base / "pearl", "Pearl River Medical Centre", station=station, jurisdiction="CN-GD-GZ").start()
    harbour = NodeProcess(base / "harbour", "Harbour University Research Lab", station=station, jurisdiction="HK").start()
    merlion = NodeProcess(base / "merlion", "Merlion Analytics", station=station, jurisdiction="SG")
    pearl.api("POST", "/assets", {"id": "outpatient-visits-2025", "title": "Outpatient visits 2025 (synthetic)",
                                  "description": "De-identified outpatient records for diabetes research",
                                  "properties": {"theme": "health", "keywords": ["diabetes", "hba1c"],
                                                 "dataCategories": ["pd:Age", "pd:MedicalHealth"]}}, expect=201)
    pearl.api("POST", "/policies", {"id": "open", "policy": {"permission": [{"action": "use"}]}}, expect=201)
    pearl.api("POST", "/policies", {"id": "gba", "policy": GBA}, expect=201)
    pearl.api("POST", "/offers", {"id": "outpatient-offer", "assetIds": ["outpatient-visits-2025"],
                                  "accessPolicyId": "open", "contractPolicyId": "gba"}, expect=201)
    wait_registered(pearl, offers=1)
    try:
        yield station, pearl, harbour, merlion
    finally:
        for process in (harbour, pearl, station):
            process.stop()


def wait_registered(node, offers, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(node.url + "/health", timeout=10).json()["selfDescription"]
        if status["registered"] and status["offers"] == offers:
            return status
        time.sleep(0.1)
    raise AssertionError(f"not registered with {offers} offers: {status}")


def search_cli(node, *args):
    out = subprocess.run([sys.executable, "-m", "connector", "search", str(node.directory), *args, "--json"],
                         capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])["results"]


@pytest.mark.slow
def test_the_node_serves_its_self_description_by_content_negotiation(net):
    station, pearl, harbour, _ = net
    url = pearl.url + "/.well-known/self-description"
    cert = load_certificate((pearl.directory / "keys" / "node.crt").read_bytes())
    graphs = []
    for media, fmt in (("text/turtle", "turtle"), ("application/ld+json", "json-ld"), ("application/n-triples", "nt")):
        resp = httpx.get(url, headers={"Accept": media}, timeout=10)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith(media)
        assert resp.headers["vary"] == "Accept" and resp.headers["etag"].startswith('"')
        header = jose.verify_detached(resp.headers["hks-signature"], resp.content, cert.public_key())
        assert header["kid"] == pearl.participant_id and header["cty"] == media
        again = httpx.get(url, headers={"Accept": media, "If-None-Match": resp.headers["etag"]}, timeout=10)
        assert again.status_code == 304
        graphs.append(Graph().parse(data=resp.content, format=fmt))
    assert isomorphic(graphs[0], graphs[1]) and isomorphic(graphs[0], graphs[2])
    assert sd.validate(graphs[0]).conforms
    refused = httpx.get(url, headers={"Accept": "text/html"}, timeout=10)
    assert refused.status_code == 406 and refused.headers["vary"] == "Accept" and "text/turtle" in refused.text
    assert httpx.get(url, timeout=10).headers["content-type"].startswith("text/turtle")


def registration(node, body: bytes, *, key=None, kid=None, media="text/turtle", token=None):
    from connector.identity.dat import client_assertion, token_request_form

    station_url = node.settings.identity_station_url
    own_key = load_private_key(node.directory / "keys" / "node.key")
    if token is None:
        assertion = client_assertion(node.participant_id, own_key, station_url + "/token", now=time.time())
        token = httpx.post(station_url + "/token", data=token_request_form(assertion, station_url),
                           timeout=10).json()["access_token"]
    sig = jose.sign_detached(body, key or own_key, {"kid": kid or node.participant_id})
    return httpx.post(station_url + "/registry/self-descriptions", content=body, timeout=20,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": media, "Hks-Signature": sig})


@pytest.mark.slow
def test_the_registry_refuses_bad_entries_with_the_reason_and_keeps_the_old_one(net):
    from cryptography.hazmat.primitives.asymmetric import ec

    station, pearl, harbour, _ = net
    body = httpx.get(pearl.url + "/.well-known/self-description", timeout=10).content
    before = station.admin("GET", "/registry/search?jurisdiction=CN-GD-GZ")["results"]
    resp = registration(pearl, body, key=ec.generate_private_key(ec.SECP256R1()))
    assert resp.status_code == 400 and "bad signature" in resp.json()["error"]
    tampered = body.replace(b"Outpatient visits 2025", b"Outpatient visits 2026")
    sig_of_original = jose.sign_detached(body, load_private_key(pearl.directory / "keys" / "node.key"),
                                         {"kid": pearl.participant_id})
    assert sig_of_original  # (a signature over other bytes)
    graph = Graph().parse(data=body, format="turtle")
    graph.remove((None, sd.HKS.establishedIn, None))
    no_jurisdiction = graph.serialize(format="turtle").encode()
    resp = registration(pearl, no_jurisdiction)
    assert resp.status_code == 400 and resp.json()["code"] == "ShapesViolated"
    assert any("hks:establishedIn" in r["message"] for r in resp.json()["report"]["results"])
    graph.add((next(graph.subjects(RDF.type, sd.IDS.BaseConnector)), sd.HKS.establishedIn, sd.HKS["SG"]))
    resp = registration(pearl, graph.serialize(format="turtle").encode())
    assert resp.status_code == 400 and "claims jurisdiction 'SG'" in resp.json()["error"]
    resp = registration(pearl, body, token="not-a-token")
    assert resp.status_code == 401 and "malformed token" in resp.json()["error"]
    resp = registration(pearl, body, media="application/ld+json")
    assert resp.status_code == 415
    resp = registration(harbour, body)  # harbour registering pearl's description
    assert resp.status_code == 400 and "for participant" in resp.json()["error"]
    resp = registration(pearl, tampered, kid=pearl.participant_id)
    assert resp.status_code in (200, 201)  # signed by its own key: a legitimate (changed) description
    resp = registration(pearl, body)
    assert resp.status_code == 200
    assert station.admin("GET", "/registry/search?jurisdiction=CN-GD-GZ")["results"] == before


@pytest.mark.slow
def test_search_from_the_cli_finds_the_other_participants_offer(net):
    station, pearl, harbour, _ = net
    found = search_cli(harbour, "--jurisdiction", "CN-GD-GZ", "--theme", "health")
    assert [(r["organisation"], r["offerId"]) for r in found] == [("Pearl River Medical Centre", "outpatient-offer")]
    assert found[0]["participantId"] == pearl.participant_id and found[0]["counterPartyAddress"] == pearl.url
    assert search_cli(harbour, "--jurisdiction", "HK", "--theme", "health") == []
    assert search_cli(harbour, "--theme", "transport") == []
    assert len(search_cli(harbour, "-q", "diabetes")) == 1
    usable = search_cli(harbour, "--purpose", "hks:MedicalResearch", "--usable-by", "HK")
    assert [r["offerId"] for r in usable] == ["outpatient-offer"]
    assert search_cli(harbour, "--purpose", "hks:MedicalResearch", "--usable-by", "SG") == []
    assert search_cli(harbour, "--purpose", "hks:Evaluation") == []
    # the offer found is the one to negotiate
    started = harbour.api("POST", "/negotiations", {"counterPartyAddress": found[0]["counterPartyAddress"],
                                                    "counterPartyId": found[0]["participantId"],
                                                    "datasetId": found[0]["datasetId"], "offerId": found[0]["offerId"]},
                          expect=201)
    assert harbour.wait_state(started["id"])["state"] == "FINALIZED"


@pytest.mark.slow
def test_a_catalog_change_re_registers_and_a_bad_query_is_one_line(net):
    station, pearl, harbour, merlion = net
    pearl.api("POST", "/assets", {"id": "traffic-copy", "title": "Traffic speeds",
                                  "properties": {"theme": "TRAN"}}, expect=201)
    pearl.api("POST", "/offers", {"id": "traffic-offer", "assetIds": ["traffic-copy"], "accessPolicyId": "open",
                                  "contractPolicyId": "open"}, expect=201)
    wait_registered(pearl, offers=2)
    assert [r["offerId"] for r in search_cli(harbour, "--theme", "transport")] == ["traffic-offer"]
    out = subprocess.run([sys.executable, "-m", "connector", "search", str(harbour.directory), "--theme", "gardening"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1 and "unknown theme" in out.stderr
    # a participant never registered is not found, and a revoked one disappears
    station.admin("POST", f"/admin/participants/{pearl.participant_id}/revoke", {}, expect=200)
    assert search_cli(harbour, "--jurisdiction", "CN-GD-GZ") == []


@pytest.mark.slow
def test_a_dev_mode_node_serves_an_unsigned_description_without_station_claims(tmp_path):
    node = NodeProcess(tmp_path / "dev", "Dev Org", jurisdiction="HK").start()
    try:
        resp = httpx.get(node.url + "/.well-known/self-description", headers={"Accept": "application/n-triples"},
                         timeout=10)
        assert resp.status_code == 200 and "hks-signature" in resp.headers  # signed with the node key
        graph = Graph().parse(data=resp.content, format="nt")
        assert (None, sd.HKS.stationAuthority, None) not in graph
        assert (None, sd.HKS.establishedIn, sd.HKS["HK"]) in graph
        assert httpx.get(node.url + "/health", timeout=10).json()["identityMode"] == "dev-shared-secret"
    finally:
        node.stop()
