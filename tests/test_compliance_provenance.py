"""Policies that follow the data (issue 14, item 4), with real processes: Pearl River (Guangzhou)
-> Harbour Lab (Hong Kong), which pulls the records under the GBA template and offers what it
derived from them. An onward offer weaker than the source (open, or admitting Singapore, or another
purpose) is refused naming the agreement the data came under; one under the GBA template is
accepted, Merlion (Singapore) is refused by it and a Shenzhen hospital agrees."""
import json
import secrets
import subprocess
import sys
from datetime import date
from pathlib import Path

import httpx
import pytest

from connector.clearinghouse.testing import ClearingHouseProcess
from support.nodes import SHARED_SECRET, NodeProcess, free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
GBA = json.loads((ROOT / "policies" / "gba-cross-border-personal-information.jsonld").read_text())
CATEGORIES = ["pd:Name", "pd:TelephoneNumber", "pd:Identifier", "pd:Age", "pd:MedicalHealth"]
OPEN = {"permission": [{"action": "use"}]}


def admits(*where, purpose="hks:MedicalResearch"):
    return {"permission": [{"action": "use", "constraint": [
        {"leftOperand": "hks:recipientJurisdiction", "operator": "isAnyOf", "rightOperand": list(where)},
        {"leftOperand": "purpose", "operator": "isA", "rightOperand": {"@id": purpose}}]}]}


def node(base, slug, name, jurisdiction, env=None):
    return NodeProcess(base / slug, name, jurisdiction=jurisdiction, env=env,
                       participant_id=f"urn:hks:participant:{slug}-{secrets.token_hex(3)}")


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    base = tmp_path_factory.mktemp("provenance")
    port = free_port()
    ch = ClearingHouseProcess(base / "ch", shared_secret=SHARED_SECRET, port=port)
    env = {"CONNECTOR_CLEARINGHOUSE_URL": f"http://127.0.0.1:{port}",
           "CONNECTOR_CLEARINGHOUSE_VERIFIER_KEY": ch.verifier_key, "CONNECTOR_CLEARINGHOUSE_AUDIENCE": ch.audience}
    pearl = node(base, "pearl", "Pearl River Medical Centre", "CN-GD-GZ", env)
    harbour = node(base, "harbour", "Harbour Lab", "HK", env)
    merlion = node(base, "merlion", "Merlion Analytics", "SG")
    shenzhen = node(base, "shenzhen", "Shenzhen Hospital", "CN-GD-SZ")
    for n in (pearl, harbour):
        subprocess.run([sys.executable, "-m", "connector", "clearinghouse", "trust", str(ch.directory),
                        "--node", str(n.directory)], check=True, capture_output=True)
    (pearl.directory / "data").mkdir(exist_ok=True)
    (pearl.directory / "data" / "visits.csv").write_text("patient_id,name,phone,age\nP1,Li,91234567,40\n")
    (harbour.directory / "data").mkdir(exist_ok=True)
    (harbour.directory / "data" / "cohort.csv").write_text("cohort,mean_age\nA,40\n")
    ch.start()
    for n in (pearl, harbour, merlion, shenzhen):
        n.start()
    pearl.api("POST", "/policies", {"id": "open", "policy": OPEN}, expect=201)
    pearl.api("POST", "/policies", {"id": "gba", "policy": GBA}, expect=201)
    pearl.api("POST", "/assets", {"id": "visits", "contentType": "text/csv", "dataAddress": {"type": "file", "path": "visits.csv"},
                                  "properties": {"dataCategories": CATEGORIES}}, expect=201)
    pearl.api("POST", "/offers", {"id": "offer-visits", "assetIds": ["visits"], "accessPolicyId": "open",
                                  "contractPolicyId": "gba"}, expect=201)
    try:
        yield pearl, harbour, merlion, shenzhen
    finally:
        for process in (shenzhen, merlion, harbour, pearl, ch):
            process.stop()


def negotiate(consumer, provider, asset, offer):
    neg = consumer.wait_state(consumer.negotiate(provider, asset, offer)["id"], "FINALIZED,TERMINATED")
    return neg


def offer(node, offer_id, asset, policy_id):
    return httpx.post(f"{node.url}/api/v1/offers", json={"id": offer_id, "assetIds": [asset], "accessPolicyId": "open",
                                                        "contractPolicyId": policy_id}, headers=node.headers())


def test_onward_offers_may_not_weaken_the_policy_the_data_came_under(space):
    pearl, harbour, merlion, shenzhen = space
    neg = negotiate(harbour, pearl, "visits", "offer-visits")
    assert neg["state"] == "FINALIZED", neg
    aid = neg["agreement"]["@id"]
    resp = httpx.post(f"{pearl.url}/api/v1/compliance/records/{aid}/pipia", headers=pearl.headers(),
                      json={"reference": "PIPIA-1", "date": date.today().isoformat()})
    assert resp.status_code == 200, resp.text
    started = harbour.api("POST", "/transfers", {"agreementId": aid}, expect=201)
    row = harbour.api("GET", f"/transfers/{started['id']}?waitFor=STARTED&timeout=20")
    pulled = httpx.get(f"{harbour.url}/api/v1/transfers/{row['id']}/data", params={"purpose": "hks:MedicalResearch"},
                       headers=harbour.headers(), timeout=30)
    assert pulled.status_code == 200, pulled.text  # Harbour Lab received the data through its node

    # Harbour Lab publishes a cohort it derived from that transfer
    for pid, policy in (("open", OPEN), ("gba", GBA), ("hk-sg", admits("HK", "SG")),
                        ("hk-marketing", admits("HK", purpose="dpv:Marketing")), ("hk-only", admits("HK"))):
        harbour.api("POST", "/policies", {"id": pid, "policy": policy}, expect=201)
    harbour.api("POST", "/assets", {"id": "cohort", "contentType": "text/csv", "dataAddress": {"type": "file", "path": "cohort.csv"},
                                    "properties": {"derivedFrom": [row["id"]], "dataCategories": ["pd:Age"]}}, expect=201)
    for policy_id, needle in (("open", "admits recipients in any jurisdiction"), ("hk-sg", "admits recipients in SG"),
                              ("hk-marketing", "dpv:Marketing")):
        resp = offer(harbour, f"cohort-{policy_id}", "cohort", policy_id)
        assert resp.status_code == 409, resp.text
        error = resp.json()["error"]
        assert f"came under agreement {aid}" in error and needle in error, error
    assert {o["id"] for o in harbour.api("GET", "/offers")} == set()  # nothing was offered
    assert offer(harbour, "cohort-hk", "cohort", "hk-only").status_code == 201  # narrower: allowed
    assert offer(harbour, "cohort-gba", "cohort", "gba").status_code == 201  # the same: allowed
    # changing an offer is checked the same way
    put = httpx.put(f"{harbour.url}/api/v1/offers/cohort-gba", headers=harbour.headers(),
                    json={"id": "cohort-gba", "assetIds": ["cohort"], "accessPolicyId": "open", "contractPolicyId": "open"})
    assert put.status_code == 409 and aid in put.json()["error"]

    # Merlion (Singapore) is refused by the onward policy; a Shenzhen hospital, in the GBA, agrees
    refused = negotiate(merlion, harbour, "cohort", "cohort-gba")
    assert refused["state"] == "TERMINATED" and "Recipient jurisdiction SG" in " ".join(refused["termination"]["reason"])
    assert negotiate(shenzhen, harbour, "cohort", "cohort-gba")["state"] == "FINALIZED"


def test_a_derivation_from_an_unknown_agreement_is_not_offered(space):
    _, harbour, _, _ = space
    harbour.api("POST", "/assets", {"id": "orphan", "dataAddress": {"type": "file", "path": "cohort.csv"},
                                    "properties": {"derivedFrom": "urn:uuid:never-received"}}, expect=201)
    harbour.api("POST", "/policies", {"id": "open-2", "policy": OPEN}, expect=201)
    resp = offer(harbour, "orphan-offer", "orphan", "open-2")
    assert resp.status_code == 409 and "provenance cannot be checked" in resp.json()["error"], resp.text
