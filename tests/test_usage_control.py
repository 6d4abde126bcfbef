"""The policy engine at the node: the access policy filters the catalog per requester,
the contract policy decides negotiations on the requester's verified claims, invalid
policies are refused at creation, and denials reach both sides with their reasons."""
import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from connector.identity import Caller
from connector.node.automation import DefaultStrategy
from connector.node.catalog import CatalogService
from connector.node.negotiations import NegotiationService
from connector.protocol.messages import ContractNegotiationEventMessage, ContractRequestMessage
from connector.store.db import Database
from connector.store.tables import policies
from support.nodes import NodeProcess

ROOT = Path(__file__).resolve().parents[1]
GBA = json.loads((ROOT / "policies" / "gba-cross-border-personal-information.jsonld").read_text())
HK_ONLY = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "hks:recipientJurisdiction", "operator": "eq", "rightOperand": "HK"}]}]}
OPEN = {"permission": [{"action": "use"}]}
CATEGORIES = {"dataCategories": ["pd:Name", "pd:TelephoneNumber", "pd:Age", "pd:Gender", "pd:MedicalHealth"]}


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    base = tmp_path_factory.mktemp("usage")
    provider = NodeProcess(base / "pearl", "Pearl River Medical Centre", jurisdiction="CN-GD-GZ").start()
    harbour = NodeProcess(base / "harbour", "Harbour Lab", jurisdiction="HK").start()
    merlion = NodeProcess(base / "merlion", "Merlion Analytics", jurisdiction="SG").start()
    provider.api("POST", "/assets", {"id": "outpatient-visits-2025", "title": "Outpatient visits (synthetic)",
                                     "properties": CATEGORIES}, expect=201)
    provider.api("POST", "/assets", {"id": "hk-only-dataset", "title": "For Hong Kong"}, expect=201)
    provider.api("POST", "/policies", {"id": "open", "policy": OPEN}, expect=201)
    provider.api("POST", "/policies", {"id": "hk-only", "policy": HK_ONLY}, expect=201)
    provider.api("POST", "/policies", {"id": "gba", "policy": GBA}, expect=201)
    provider.api("POST", "/offers", {"id": "gba-offer", "assetIds": ["outpatient-visits-2025"],
                                     "accessPolicyId": "open", "contractPolicyId": "gba"}, expect=201)
    provider.api("POST", "/offers", {"id": "hk-offer", "assetIds": ["hk-only-dataset"],
                                     "accessPolicyId": "hk-only", "contractPolicyId": "open"}, expect=201)
    try:
        yield provider, harbour, merlion
    finally:
        for node in (provider, harbour, merlion):
            node.stop()


def catalog_ids(consumer, provider):
    catalog = consumer.api("POST", "/catalog/request", {"counterPartyAddress": provider.url}, expect=200)["catalog"]
    return {d["@id"] for d in catalog.get("dataset", [])}


def test_access_policy_filters_the_catalog_per_requester(station):
    provider, harbour, merlion = station
    assert catalog_ids(harbour, provider) == {"outpatient-visits-2025", "hk-only-dataset"}
    assert catalog_ids(merlion, provider) == {"outpatient-visits-2025"}
    # the hidden dataset is not revealed by id either
    resp = merlion.api("POST", "/negotiations", {"counterPartyAddress": provider.url, "datasetId": "hk-only-dataset",
                                                 "offerId": "hk-offer"})
    assert "404" in resp["error"]


def test_contract_policy_permits_hk_and_refuses_sg_with_the_reason(station):
    provider, harbour, merlion = station
    ok = harbour.wait_state(harbour.negotiate(provider, "outpatient-visits-2025", "gba-offer")["id"])
    assert ok["state"] == "FINALIZED"
    assert ok["agreement"]["permission"][0]["constraint"]  # the agreement carries the provider's full terms
    refused = merlion.wait_state(merlion.negotiate(provider, "outpatient-visits-2025", "gba-offer")["id"], "TERMINATED")
    assert refused["state"] == "TERMINATED"
    reason = " ".join(refused["termination"]["reason"])
    assert "Recipient jurisdiction SG is not one of the permitted" in reason
    theirs = [n for n in provider.api("GET", "/negotiations") if n["consumerPid"] == refused["consumerPid"]][0]
    assert theirs["state"] == "TERMINATED" and theirs["termination"]["code"] == "PolicyDenied"
    assert any("SG" in r for r in theirs["termination"]["decision"]["reasons"])
    assert not [a for a in provider.api("GET", "/agreements") if a["consumerId"] == merlion.participant_id]


def test_invalid_policies_are_refused_at_creation(station):
    provider, _, _ = station
    cases = [
        ({"permission": [{"action": "use", "constraint": [{"leftOperand": "noSuchOperand", "operator": "eq",
                                                           "rightOperand": "x"}]}]}, "permission[0].constraint[0]"),
        ({"permission": [{"action": "use", "constraint": [{"leftOperand": "count", "operator": "lteq",
                                                           "rightOperand": "ten"}]}]}, "count"),
        ({"permission": [{"action": "use", "constraint": [{"leftOperand": "dateTime", "operator": "sameAs",
                                                           "rightOperand": "2030-01-01T00:00:00Z"}]}]}, "operator"),
    ]
    for i, (policy, needle) in enumerate(cases):
        resp = httpx.post(provider.url + "/api/v1/policies", headers=provider.headers(),
                          json={"id": f"bad-{i}", "policy": policy})
        assert resp.status_code == 400 and needle in resp.json()["error"], resp.text
    ids = {p["id"] for p in provider.api("GET", "/policies")}
    assert not {"bad-0", "bad-1", "bad-2"} & ids


async def test_the_provider_checks_the_offer_again_before_agreeing(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gate.db'}")
    await db.migrate()
    catalog = CatalogService(db, participant_id="urn:me", title="Me")
    await catalog.create_policy("p", OPEN)
    await catalog.create_policy("everyone", OPEN)  # the access policy stays open: only the terms change
    await catalog.create_asset({"id": "ds"})
    await catalog.create_offer({"id": "o", "assetIds": ["ds"], "accessPolicyId": "everyone", "contractPolicyId": "p"})
    service = NegotiationService(db, participant_id="urn:me", dsp_base=lambda v: "http://me", catalog=catalog,
                                 strategy=DefaultStrategy())
    peer = Caller("urn:peer", {"jurisdiction": "HK"})
    wider = ContractRequestMessage(consumer_pid="urn:c", callback_address="http://peer",
                                   offer={"@id": "o", "@type": "Offer", "target": "ds",
                                          "permission": [{"action": "use"}, {"action": "distribute"}]})
    _, ack = await service.receive_initial_request("2025-1", wider, peer, "d1")
    assert (await service.get(ack["providerPid"]))["state"] == "OFFERED"  # counter-offer with the provider's terms
    # the provider narrows its policy while the counter-offer is open
    await db.transaction(lambda conn: conn.execute(sa.update(policies).where(policies.c.id == "p").values(
        body={"permission": [{"action": "use", "constraint": [
            {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2000-01-01T00:00:00Z"}]}]})))
    accept = ContractNegotiationEventMessage(provider_pid=ack["providerPid"], consumer_pid="urn:c", event_type="ACCEPTED")
    await service.receive("2025-1", ack["providerPid"], None, accept, peer, "d2")
    row = await service.get(ack["providerPid"])
    assert row["state"] == "TERMINATED" and row["termination"]["code"] == "OfferChanged"
    assert row["agreement"] is None
    await db.dispose()
