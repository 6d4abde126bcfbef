"""Every message a node emits, as provider and as consumer, in both DSP versions,
validates against the official JSON Schemas (2025-1: the spec's and the TCK's copies;
2024-1: the spec's). A scripted fake peer in the test process plays the other side,
the way the TCK does."""
import asyncio
import uuid

import httpx
import orjson
import pytest
from aiohttp import web

from connector.identity import DevSharedSecret
from connector.protocol import wire
from support import schemas
from support.nodes import SHARED_SECRET, NodeProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not schemas.schemas_available(),
                                                   reason="../shared/reference/dsp schemas are absent")]
FAKE = "urn:hks:participant:fake-peer"
TOKEN = "Bearer " + DevSharedSecret(FAKE, SHARED_SECRET).token_for(FAKE)
VERSIONS = ["2025-1", "2024-1"]


class FakePeer:
    """Records what the node sends; answers like the TCK (200 + ContractNegotiation)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[tuple[str, dict]] = []
        self.log: list[str] = []
        self.arrived = asyncio.Event()
        self.on_message = None  # async callback(path, neutral)
        self.provider_pid = f"urn:uuid:{uuid.uuid4()}"  # what it answers to an initial request

    def validated(self, doc: dict) -> dict:
        schemas.validate(doc, self.version)
        return wire.from_wire(doc, self.version)

    async def handle(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"].startswith("Bearer ")
        doc = orjson.loads(await request.read())
        try:
            neutral = self.validated(doc)
        except AssertionError as exc:
            self.log.append(f"INVALID {request.path}: {exc}")
            raise
        self.received.append((request.path, neutral))
        self.log.append(request.path)
        self.arrived.set()
        if request.path.endswith("/.well-known/dspace-version"):
            pass
        status = 201 if request.path.endswith("/negotiations/request") else 200
        body = {"@type": "ContractNegotiation", "providerPid": neutral.get("providerPid") or self.provider_pid,
                "consumerPid": neutral.get("consumerPid") or "urn:uuid:fake-consumer-pid", "state": "REQUESTED"}
        if self.on_message:
            asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(self.on_message(request.path, neutral)))
        return web.json_response(wire.to_wire(body, self.version), status=status)

    async def well_known(self, request: web.Request) -> web.Response:
        return web.json_response({"protocolVersions": [{"version": v, "path": f"/dsp/{v}", "binding": "HTTPS"} for v in VERSIONS]})

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.add_routes([web.get("/.well-known/dspace-version", self.well_known), web.post("/{tail:.*}", self.handle)])
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    async def next(self, suffix: str, timeout: float = 15) -> dict:
        async def wait():
            while True:
                for i, (path, doc) in enumerate(self.received):
                    if path.endswith(suffix):
                        self.received.pop(i)
                        return doc
                self.arrived.clear()
                await self.arrived.wait()
        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"nothing arrived at *{suffix}; the peer got: {self.log}") from None


async def send(client, url, neutral, version, expect=200):
    resp = await client.post(url, content=orjson.dumps(wire.to_wire(neutral, version)),
                             headers={"Authorization": TOKEN, "Content-Type": "application/json"})
    assert resp.status_code == expect, resp.text
    body = resp.json()
    schemas.validate(body, version)
    return wire.from_wire(body, version)


@pytest.fixture(scope="module")
def provider_node(tmp_path_factory):
    node = NodeProcess(tmp_path_factory.mktemp("prov"), "Provider").start()
    node.publish("dataset-1", "offer-1")
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
            resp = await client.get(f"{base}/catalog/datasets/dataset-1", headers={"Authorization": TOKEN})
            schemas.validate(resp.json(), version)
            resp = await client.get(f"{base}/catalog/datasets/nope", headers={"Authorization": TOKEN})
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
            resp = await client.get(f"{base}/negotiations/{ppid}", headers={"Authorization": TOKEN})
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
            resp = await client.post(f"{base}/negotiations/{ppid}/termination", headers={"Authorization": TOKEN},
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
                resp = await client.get(f"{callback}/negotiations/{cpid}", headers={"Authorization": TOKEN})
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
