"""Every message a node emits, as provider and as consumer, in both DSP versions,
validates against the official JSON Schemas (2025-1: the spec's and the TCK's copies;
2024-1: the spec's). A scripted fake peer in the test process plays the other side,
the way the TCK does."""
import asyncio
import uuid

import httpx
import orjson
import pytest

from connector.protocol import wire
from support import schemas
from support.fakepeer import FAKE, VERSIONS, FakePeer, send, token_to
from support.nodes import NodeProcess

pytestmark = [pytest.mark.slow, pytest.mark.needs_reference("dsp/dsp-2025-1/schema", "dsp/tck-2025-1-schemas", "dsp/dsp-2024-1/schema")]
@pytest.fixture(scope="module")
def provider_node(tmp_path_factory):
    node = NodeProcess(tmp_path_factory.mktemp("prov"), "Provider").start()
    node.publish("dataset-1", "offer-1", data_address={"type": "file", "path": "dataset-1.csv"})
    yield node
    node.stop()


@pytest.fixture(scope="module")
def consumer_node(tmp_path_factory):
    node = NodeProcess(tmp_path_factory.mktemp("cons"), "Consumer").start()
    yield node
    node.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_provider_messages_validate(provider_node, version):
    fake = FakePeer(version)
    runner = await fake.start()
    base = f"{provider_node.url}/dsp/{version}"
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            catalog = await send(client, f"{base}/catalog/request", {"@type": "CatalogRequestMessage"}, version)
            offer = catalog["dataset"][0]["hasPolicy"][0]
            resp = await client.get(f"{base}/catalog/datasets/dataset-1", headers={"Authorization": token_to(f"{base}/catalog/datasets/dataset-1")})
            schemas.validate(resp.json(), version)
            resp = await client.get(f"{base}/catalog/datasets/nope", headers={"Authorization": token_to(f"{base}/catalog/datasets/nope")})
            assert resp.status_code == 404
            schemas.validate(resp.json(), version)

            # happy path: request -> agreement -> verification -> finalized
            cpid = f"urn:uuid:{uuid.uuid4()}"
            request = {"@type": "ContractRequestMessage", "consumerPid": cpid, "callbackAddress": f"{fake.url}/cb",
                       "offer": {**offer, "target": "dataset-1"}}
            if version == "2024-1":
                request["offer"]["assigner"] = provider_node.participant_id
            ack = await send(client, f"{base}/negotiations/request", request, version, expect=201)
            ppid = ack["providerPid"]
            agreement = await fake.next(f"/cb/negotiations/{cpid}/agreement")
            assert agreement["agreement"]["target"] == "dataset-1"
            await send(client, f"{base}/negotiations/{ppid}/agreement/verification",
                       {"@type": "ContractAgreementVerificationMessage", "providerPid": ppid, "consumerPid": cpid}, version)
            finalized = await fake.next(f"/cb/negotiations/{cpid}/events")
            assert finalized["eventType"] == "FINALIZED"
            resp = await client.get(f"{base}/negotiations/{ppid}", headers={"Authorization": token_to(f"{base}/negotiations/{ppid}")})
            schemas.validate(resp.json(), version)

            # different terms -> the provider's counter-offer; then the provider terminates
            cpid2 = f"urn:uuid:{uuid.uuid4()}"
            wider = {**request, "consumerPid": cpid2,
                     "offer": {**request["offer"], "permission": [{"action": "use"}, {"action": "distribute"}]}}
            ack2 = await send(client, f"{base}/negotiations/request", wider, version, expect=201)
            counter = await fake.next(f"/cb/negotiations/{cpid2}/offers")
            assert counter["offer"]["permission"] == [{"action": "use"}]
            await asyncio.to_thread(provider_node.api, "POST", f"/negotiations/{ack2['providerPid']}/terminate",
                                    {"reason": "no"}, 200)
            term = await fake.next(f"/cb/negotiations/{cpid2}/termination")
            assert term["reason"] == ["no"]

            # an error object validates too
            resp = await client.post(f"{base}/negotiations/{ppid}/termination", headers={"Authorization": token_to(f"{base}/negotiations/{ppid}/termination")},
                                     content=orjson.dumps(wire.to_wire({"@type": "ContractNegotiationTerminationMessage",
                                                                        "providerPid": ppid, "consumerPid": cpid}, version)))
            assert resp.status_code == 400
            schemas.validate(resp.json(), version)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("version", VERSIONS)
async def test_consumer_messages_validate(consumer_node, version):
    fake = FakePeer(version)
    runner = await fake.start()
    offer = {"@id": "fake-offer", "@type": "Offer", "assigner": FAKE, "permission": [{"action": "use"}]}
    ppid = fake.provider_pid
    try:
        async with httpx.AsyncClient(timeout=20, headers=consumer_node.headers()) as mgmt:
            resp = await mgmt.post(consumer_node.url + "/api/v1/negotiations", json={
                "counterPartyAddress": fake.url, "datasetId": "fake-dataset", "offer": offer, "dspVersion": version})
            assert resp.status_code == 201, resp.text
            request = await fake.next("/negotiations/request")
            cpid, callback = request["consumerPid"], request["callbackAddress"]
            assert request["offer"]["target"] == "fake-dataset"
            async with httpx.AsyncClient(timeout=20) as client:
                # the provider makes an offer with the same terms: the consumer accepts it
                await send(client, f"{callback}/negotiations/{cpid}/offers",
                           {"@type": "ContractOfferMessage", "providerPid": ppid, "consumerPid": cpid,
                            "offer": {**offer, "target": "fake-dataset"}}, version)
                accepted = await fake.next(f"/negotiations/{ppid}/events")
                assert accepted["eventType"] == "ACCEPTED"
                agreement = {"@id": f"urn:uuid:{uuid.uuid4()}", "@type": "Agreement", "target": "fake-dataset",
                             "assigner": FAKE, "assignee": consumer_node.participant_id,
                             "timestamp": "2026-11-22T10:00:00Z", "permission": [{"action": "use"}]}
                msg = {"@type": "ContractAgreementMessage", "providerPid": ppid, "consumerPid": cpid, "agreement": agreement}
                if version == "2024-1":
                    msg["callbackAddress"] = f"{fake.url}/dsp/{version}"
                await send(client, f"{callback}/negotiations/{cpid}/agreement", msg, version)
                await fake.next(f"/negotiations/{ppid}/agreement/verification")
                await send(client, f"{callback}/negotiations/{cpid}/events",
                           {"@type": "ContractNegotiationEventMessage", "providerPid": ppid, "consumerPid": cpid,
                            "eventType": "FINALIZED"}, version)
                resp = await client.get(f"{callback}/negotiations/{cpid}", headers={"Authorization": token_to(f"{callback}/negotiations/{cpid}")})
                body = resp.json()
                schemas.validate(body, version)
                assert wire.from_wire(body, version)["state"] == "FINALIZED"
            # a consumer-side termination
            resp = await mgmt.post(consumer_node.url + "/api/v1/negotiations", json={
                "counterPartyAddress": fake.url, "datasetId": "fake-dataset", "offer": offer, "dspVersion": version})
            fake.provider_pid = f"urn:uuid:{uuid.uuid4()}"
            second = await fake.next("/negotiations/request")
            resp = await mgmt.post(consumer_node.url + f"/api/v1/negotiations/{second['consumerPid']}/terminate",
                                   json={"reason": "cancelled"})
            assert resp.status_code == 200, resp.text
            term = await fake.next("/termination")
            assert term["reason"] == ["cancelled"]
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("version", VERSIONS)
async def test_transfer_messages_validate(provider_node, consumer_node, version):
    """The fake plays the consumer: it negotiates an agreement with the real provider and
    asks for a transfer; the provider's ACK, TransferStart, suspension, termination and
    error objects all validate."""
    fake = FakePeer(version)
    runner = await fake.start()
    base = f"{provider_node.url}/dsp/{version}"
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            catalog = await send(client, f"{base}/catalog/request", {"@type": "CatalogRequestMessage"}, version)
            offer = catalog["dataset"][0]["hasPolicy"][0]
            cpid = f"urn:uuid:{uuid.uuid4()}"
            request = {"@type": "ContractRequestMessage", "consumerPid": cpid, "callbackAddress": f"{fake.url}/cb",
                       "offer": {**offer, "target": "dataset-1"}}
            ack = await send(client, f"{base}/negotiations/request", request, version, expect=201)
            ppid = ack["providerPid"]
            agreement = (await fake.next(f"/cb/negotiations/{cpid}/agreement"))["agreement"]
            await send(client, f"{base}/negotiations/{ppid}/agreement/verification",
                       {"@type": "ContractAgreementVerificationMessage", "providerPid": ppid, "consumerPid": cpid}, version)
            await fake.next(f"/cb/negotiations/{cpid}/events")
            tcpid = f"urn:uuid:{uuid.uuid4()}"
            tack = await send(client, f"{base}/transfers/request", {
                "@type": "TransferRequestMessage", "consumerPid": tcpid, "agreementId": agreement["@id"],
                "format": "HttpData-PULL", "callbackAddress": f"{fake.url}/cb"}, version, expect=201)
            tppid = tack["providerPid"]
            start = await fake.next(f"/cb/transfers/{tcpid}/start")
            assert start["dataAddress"]["endpoint"].endswith(f"/data/{tppid}")
            await asyncio.to_thread(provider_node.api, "POST", f"/transfers/{tppid}/suspend", {"reason": "pause"}, 200)
            suspension = await fake.next(f"/cb/transfers/{tcpid}/suspension")
            assert suspension["reason"] == ["pause"]
            await asyncio.to_thread(provider_node.api, "POST", f"/transfers/{tppid}/terminate", {"reason": "stop"}, 200)
            await fake.next(f"/cb/transfers/{tcpid}/termination")
            resp = await client.get(f"{base}/transfers/{tppid}", headers={"Authorization": token_to(f"{base}/transfers/{tppid}")})
            schemas.validate(resp.json(), version)
            resp = await client.post(f"{base}/transfers/{tppid}/completion", headers={"Authorization": token_to(f"{base}/transfers/{tppid}/completion")},
                                     content=orjson.dumps(wire.to_wire({"@type": "TransferCompletionMessage",
                                                                        "providerPid": tppid, "consumerPid": tcpid}, version)))
            assert resp.status_code == 400
            schemas.validate(resp.json(), version)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("version", VERSIONS)
async def test_provider_initiated_offer_waits_for_the_user(consumer_node, version):
    """An initial ContractOfferMessage (POST /negotiations/offers) creates the consumer's
    process in OFFERED; nothing is sent until the user accepts, and the acceptance validates."""
    fake = FakePeer(version)
    runner = await fake.start()
    ppid = f"urn:uuid:{uuid.uuid4()}"
    offer = {"@id": "unsolicited-offer", "@type": "Offer", "target": "fake-dataset", "assigner": FAKE,
             "permission": [{"action": "use"}]}
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            msg = {"@type": "ContractOfferMessage", "providerPid": ppid, "offer": offer,
                   "callbackAddress": f"{fake.url}/dsp/{version}"}
            ack = await send(client, f"{consumer_node.url}/dsp/{version}/negotiations/offers", msg, version, expect=201)
            assert ack["state"] == "OFFERED" and ack["providerPid"] == ppid
            again = await send(client, f"{consumer_node.url}/dsp/{version}/negotiations/offers", msg, version,
                               expect=201)
            assert again["consumerPid"] == ack["consumerPid"]  # the same offer twice: one process
            cpid = ack["consumerPid"]
        async with httpx.AsyncClient(timeout=20, headers=consumer_node.headers()) as mgmt:
            shown = (await mgmt.get(f"{consumer_node.url}/api/v1/negotiations/{cpid}")).json()
            assert shown["state"] == "OFFERED" and shown["datasetId"] == "fake-dataset"
            assert fake.received == []
            resp = await mgmt.post(f"{consumer_node.url}/api/v1/negotiations/{cpid}/accept")
            assert resp.status_code == 200 and resp.json()["state"] == "ACCEPTED"
        accepted = await fake.next(f"/negotiations/{ppid}/events")
        assert accepted["eventType"] == "ACCEPTED"
    finally:
        await runner.cleanup()
