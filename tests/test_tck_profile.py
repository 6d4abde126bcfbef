"""The `tck` profile acts out the Eclipse DSP TCK's negotiation scenarios (reference
TCK.md §2): a node process with the profile, driven by a TCK-like fake counterparty
that answers 200, expects 4xx-but-never-404 for the negative cases and checks states
with GET."""
import asyncio
import uuid

import httpx
import pytest

from support.fakepeer import FAKE, FakePeer, send, token_to
from support.nodes import NodeProcess

pytestmark = pytest.mark.slow
V = "2025-1"
TCK = "TCK_PARTICIPANT"  # the consumer of the seeded TCK agreements


@pytest.fixture(scope="module")
def tck_node(tmp_path_factory):
    node = NodeProcess(tmp_path_factory.mktemp("tck"), "TCK", tck=True).start()
    yield node
    node.stop()


@pytest.fixture
async def fake():
    peer = FakePeer(V)
    runner = await peer.start()
    yield peer
    await runner.cleanup()


async def request(client, node, fake, dataset):
    cpid = f"urn:uuid:{uuid.uuid4()}"
    msg = {"@type": "ContractRequestMessage", "consumerPid": cpid, "callbackAddress": fake.url,
           "offer": {"@id": f"CD123:{dataset}:456", "@type": "Offer", "target": dataset,
                     "permission": [{"action": "use", "constraint": []}]}}
    ack = await send(client, f"{node.url}/dsp/{V}/negotiations/request", msg, V, expect=201)
    return cpid, ack["providerPid"]


async def state(client, node, ppid):
    resp = await client.get(f"{node.url}/dsp/{V}/negotiations/{ppid}", headers={"Authorization": token_to(f"{node.url}/dsp/{V}/negotiations/{ppid}")})
    assert resp.status_code == 200
    return resp.json()["state"]


def msg(mtype, ppid, cpid, **extra):
    return {"@type": mtype, "providerPid": ppid, "consumerPid": cpid, **extra}


async def test_seeded_catalog_has_the_tck_datasets(tck_node, fake):
    async with httpx.AsyncClient(timeout=20) as client:
        catalog = await send(client, f"{tck_node.url}/dsp/{V}/catalog/request", {"@type": "CatalogRequestMessage"}, V)
        ids = {d["@id"] for d in catalog["dataset"]}
        assert {"CAT0101", "ACN0101", "ACN0304"} <= ids
        resp = await client.get(f"{tck_node.url}/dsp/{V}/catalog/datasets/CAT0103", headers={"Authorization": token_to(f"{tck_node.url}/dsp/{V}/catalog/datasets/CAT0103")})
        assert resp.json()["@type"] == "CatalogError"


async def test_cn_01_01_offer_then_consumer_termination(tck_node, fake):
    async with httpx.AsyncClient(timeout=20) as client:
        cpid, ppid = await request(client, tck_node, fake, "ACN0101")
        await fake.next(f"/negotiations/{cpid}/offers")
        await send(client, f"{tck_node.url}/dsp/{V}/negotiations/{ppid}/termination",
                   msg("ContractNegotiationTerminationMessage", ppid, cpid, code="x", reason=[{"message": "bye"}]), V)
        assert await state(client, tck_node, ppid) == "TERMINATED"


async def test_cn_01_04_agreement_verification_finalized_then_03_01_termination_refused(tck_node, fake):
    async with httpx.AsyncClient(timeout=20) as client:
        cpid, ppid = await request(client, tck_node, fake, "ACN0301")
        await fake.next(f"/negotiations/{cpid}/agreement")
        await send(client, f"{tck_node.url}/dsp/{V}/negotiations/{ppid}/agreement/verification",
                   msg("ContractAgreementVerificationMessage", ppid, cpid), V)
        event = await fake.next(f"/negotiations/{cpid}/events")
        assert event["eventType"] == "FINALIZED"
        resp = await client.post(f"{tck_node.url}/dsp/{V}/negotiations/{ppid}/termination",
                                 headers={"Authorization": token_to(tck_node.url)},
                                 json={"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                                       **msg("ContractNegotiationTerminationMessage", ppid, cpid)})
        assert 400 <= resp.status_code < 500 and resp.status_code != 404
        assert await state(client, tck_node, ppid) == "FINALIZED"


async def test_cn_02_02_stays_requested_and_03_04_second_counter_request_refused(tck_node, fake):
    async with httpx.AsyncClient(timeout=20) as client:
        cpid, ppid = await request(client, tck_node, fake, "ACN0202")
        await asyncio.sleep(0.3)
        assert await state(client, tck_node, ppid) == "REQUESTED"
        cpid, ppid = await request(client, tck_node, fake, "ACN0304")
        offer = await fake.next(f"/negotiations/{cpid}/offers")
        counter = msg("ContractRequestMessage", ppid, cpid, offer={**offer["offer"], "target": "ACN0304"})
        await send(client, f"{tck_node.url}/dsp/{V}/negotiations/{ppid}/request", counter, V)
        assert await state(client, tck_node, ppid) == "REQUESTED"
        again = {**counter, "@id": "another-message"}
        resp = await client.post(f"{tck_node.url}/dsp/{V}/negotiations/{ppid}/request", headers={"Authorization": token_to(f"{tck_node.url}/dsp/{V}/negotiations/{ppid}/request")},
                                 json={"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], **again})
        assert 400 <= resp.status_code < 500 and resp.status_code != 404


async def test_cn_c_01_01_consumer_through_the_webhook(tck_node, fake):
    async with httpx.AsyncClient(timeout=20) as client:
        resp = await client.post(f"{tck_node.url}/tck/negotiations/requests", json={
            "providerId": FAKE, "offerId": "offerACNC0101", "datasetId": "ACNC0101", "connectorAddress": fake.url})
        assert resp.status_code == 200
        req = await fake.next("/negotiations/request")
        cpid, ppid = req["consumerPid"], fake.provider_pid
        assert "providerPid" not in req and req["callbackAddress"]
        await send(client, f"{req['callbackAddress']}/negotiations/{cpid}/offers",
                   msg("ContractOfferMessage", ppid, cpid, offer={**req["offer"], "assigner": FAKE}), V)
        accepted = await fake.next(f"/negotiations/{ppid}/events")
        assert accepted["eventType"] == "ACCEPTED"
        await send(client, f"{req['callbackAddress']}/negotiations/{cpid}/agreement", msg(
            "ContractAgreementMessage", ppid, cpid, agreement={
                "@id": f"urn:uuid:{uuid.uuid4()}", "@type": "Agreement", "target": "ACNC0101", "assigner": FAKE,
                "assignee": tck_node.participant_id, "timestamp": "2026-11-22T00:00:00Z",
                "permission": [{"action": "use"}]}), V)
        await fake.next(f"/negotiations/{ppid}/agreement/verification")
        await send(client, f"{req['callbackAddress']}/negotiations/{cpid}/events",
                   msg("ContractNegotiationEventMessage", ppid, cpid, eventType="FINALIZED"), V)
        resp = await client.get(f"{req['callbackAddress']}/negotiations/{cpid}", headers={"Authorization": token_to(f"{req['callbackAddress']}/negotiations/{cpid}")})
        assert resp.json()["state"] == "FINALIZED"


async def test_cn_c_02_02_consumer_terminates_its_own_request(tck_node, fake):
    async with httpx.AsyncClient(timeout=20) as client:
        await client.post(f"{tck_node.url}/tck/negotiations/requests", json={
            "providerId": FAKE, "offerId": "offerACNC0202", "datasetId": "ACNC0202", "connectorAddress": fake.url})
        req = await fake.next("/negotiations/request")
        term = await fake.next("/termination")
        assert term["consumerPid"] == req["consumerPid"] and term["providerPid"] == fake.provider_pid


async def test_tp_01_02_start_then_complete(tck_node, fake):
    async with httpx.AsyncClient(timeout=20) as client:
        cpid = f"urn:uuid:{uuid.uuid4()}"
        ack = await send(client, f"{tck_node.url}/dsp/{V}/transfers/request", {
            "@type": "TransferRequestMessage", "consumerPid": cpid, "agreementId": "ATP0102",
            "format": "HttpData-PULL", "callbackAddress": fake.url}, V, expect=201, participant=TCK)
        start = await fake.next(f"/transfers/{cpid}/start")
        assert start["dataAddress"]["endpointType"]
        await fake.next(f"/transfers/{cpid}/completion")
        resp = await client.get(f"{tck_node.url}/dsp/{V}/transfers/{ack['providerPid']}", headers={"Authorization": token_to(f"{tck_node.url}/dsp/{V}/transfers/{ack['providerPid']}", TCK)})
        assert resp.json()["state"] == "COMPLETED"


async def test_tp_03_01_completion_in_requested_is_refused(tck_node, fake):
    async with httpx.AsyncClient(timeout=20) as client:
        cpid = f"urn:uuid:{uuid.uuid4()}"
        ack = await send(client, f"{tck_node.url}/dsp/{V}/transfers/request", {
            "@type": "TransferRequestMessage", "consumerPid": cpid, "agreementId": "ATP0301",
            "format": "HttpData-PULL", "callbackAddress": fake.url}, V, expect=201, participant=TCK)
        ppid = ack["providerPid"]
        resp = await client.post(f"{tck_node.url}/dsp/{V}/transfers/{ppid}/completion", headers={"Authorization": token_to(f"{tck_node.url}/dsp/{V}/transfers/{ppid}/completion", TCK)},
                                 json={"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                                       "@type": "TransferCompletionMessage", "providerPid": ppid, "consumerPid": cpid})
        assert 400 <= resp.status_code < 500 and resp.status_code != 404
        state = await client.get(f"{tck_node.url}/dsp/{V}/transfers/{ppid}", headers={"Authorization": token_to(f"{tck_node.url}/dsp/{V}/transfers/{ppid}", TCK)})
        assert state.json()["state"] == "REQUESTED"


async def test_tp_c_02_01_consumer_terminates_after_start(tck_node, fake):
    async with httpx.AsyncClient(timeout=20) as client:
        resp = await client.post(f"{tck_node.url}/tck/transfers/requests", json={
            "providerId": FAKE, "agreementId": "ATPC0201", "format": "HttpData-PULL", "connectorAddress": fake.url})
        assert resp.status_code == 200
        req = await fake.next("/transfers/request")
        cpid, callback = req["consumerPid"], req["callbackAddress"]
        await send(client, f"{callback}/transfers/{cpid}/start", msg("TransferStartMessage", fake.provider_pid, cpid,
                   dataAddress={"@type": "DataAddress", "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
                                "endpoint": f"{fake.url}/data"}), V)
        term = await fake.next("/termination")
        assert term["consumerPid"] == cpid
        resp = await client.get(f"{callback}/transfers/{cpid}", headers={"Authorization": token_to(f"{callback}/transfers/{cpid}")})
        assert resp.json()["state"] == "TERMINATED"
