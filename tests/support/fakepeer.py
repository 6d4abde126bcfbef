"""A scripted DSP counterparty in the test process, answering the way the Eclipse TCK
does (200 + a ContractNegotiation body) and validating what it receives."""
import asyncio
import uuid
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from connector.identity import DevSharedSecret
from connector.protocol import wire
from support import schemas
from support.nodes import SHARED_SECRET, free_port

FAKE = "urn:hks:participant:fake-peer"
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
        if schemas.schemas_available():
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


def token_to(url: str, participant: str = FAKE) -> str:
    """A dev-mode token naming `participant`, for the node at `url` only (its public URL as audience)."""
    parts = urlsplit(url)
    audience = f"{parts.scheme}://{parts.netloc}"
    return "Bearer " + DevSharedSecret(participant, SHARED_SECRET).token_for(participant, audience=audience)


async def send(client, url, neutral, version, expect=200, token=None, participant=FAKE):
    token = token or token_to(url, participant)
    resp = await client.post(url, content=orjson.dumps(wire.to_wire(neutral, version)),
                             headers={"Authorization": token, "Content-Type": "application/json"})
    assert resp.status_code == expect, resp.text
    body = resp.json()
    if schemas.schemas_available():
        schemas.validate(body, version)
    return wire.from_wire(body, version)


