"""A provider chooses its process id (providerPid) and the consumer puts it into every message
it sends afterwards. A message queued before the id was known carries a placeholder that is
filled in when it is sent: by field, never by text replacement, so a hostile provider's id
with JSON syntax in it (`x","injected":"yes`) cannot add a key to our message, and in the URL it
stays one path segment. A real consumer node; the provider is scripted in the test process."""
import asyncio

import httpx
from aiohttp import web

from connector.protocol import wire
from support.fakepeer import FAKE
from support.nodes import NodeProcess, free_port

VERSION = "2025-1"
HOSTILE_PID = 'x","injected":"yes'


class HostileProvider:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.release_ack = asyncio.Event()
        self.terminations: list[tuple[str, dict]] = []  # (path as received, raw JSON body)
        self.arrived = asyncio.Event()

    async def well_known(self, request: web.Request) -> web.Response:
        return web.json_response({"protocolVersions": [{"version": VERSION, "path": f"/dsp/{VERSION}",
                                                        "binding": "HTTPS"}]})

    async def request(self, request: web.Request) -> web.Response:
        doc = wire.from_wire(await request.json(), VERSION)
        await asyncio.wait_for(self.release_ack.wait(), 20)  # the consumer queues a termination meanwhile
        ack = {"@type": "ContractNegotiation", "providerPid": HOSTILE_PID, "consumerPid": doc["consumerPid"],
               "state": "REQUESTED"}
        return web.json_response(wire.to_wire(ack, VERSION), status=201)

    async def other(self, request: web.Request) -> web.Response:
        self.terminations.append((request.raw_path, await request.json()))
        self.arrived.set()
        return web.json_response({}, status=200)

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/.well-known/dspace-version", self.well_known)
        app.router.add_post(f"/dsp/{VERSION}/negotiations/request", self.request)
        app.router.add_post("/{tail:.*}", self.other)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner


async def test_a_provider_pid_with_json_syntax_adds_no_key_to_our_message(tmp_path):
    provider = HostileProvider()
    runner = await provider.start()
    consumer = NodeProcess(tmp_path / "consumer", "Consumer").start()
    try:
        async with httpx.AsyncClient(timeout=30, headers=consumer.headers()) as client:
            resp = await client.post(f"{consumer.url}/api/v1/negotiations", json={
                "counterPartyAddress": provider.url, "counterPartyId": FAKE, "datasetId": "dataset-1",
                "dspVersion": VERSION,
                "offer": {"@id": "offer-1", "assigner": FAKE, "target": "dataset-1",
                          "permission": [{"action": "use"}]}})
            assert resp.status_code == 201, resp.text
            pid = resp.json()["id"]
            # terminated before the provider has answered: the termination waits, with a placeholder
            resp = await client.post(f"{consumer.url}/api/v1/negotiations/{pid}/terminate", json={"reason": "no"})
            assert resp.status_code == 200, resp.text
            provider.release_ack.set()
            await asyncio.wait_for(provider.arrived.wait(), 30)
        [(path, body)] = provider.terminations
        assert "injected" not in body, body
        assert body["providerPid"] == HOSTILE_PID, body
        assert body["consumerPid"] == pid
        # one path segment, percent-encoded: the id cannot add segments or a query
        assert path == f"/dsp/{VERSION}/negotiations/x%22,%22injected%22:%22yes/termination", path
    finally:
        consumer.stop()
        await runner.cleanup()
