"""A hostile provider's catalog page links (Link: rel="next") are followed only to the provider's
own catalog endpoint: a link to another host (where our token for the provider would go) and a
link that loops back are refused with our rule, and nothing reaches the other host."""
from __future__ import annotations

import asyncio
import threading

import pytest
from aiohttp import web

from support.nodes import NodeProcess, free_port

pytestmark = pytest.mark.slow
CATALOG = {"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@id": "urn:hostile#catalog",
           "@type": "Catalog", "participantId": "urn:hostile",
           "service": [{"@id": "urn:hostile#dsp", "@type": "DataService", "endpointURL": "http://x/dsp/2025-1"}],
           "dataset": [{"@id": "ds-1", "@type": "Dataset",
                        "hasPolicy": [{"@id": "o-1", "@type": "Offer", "assigner": "urn:hostile",
                                       "permission": [{"action": "use"}]}],
                        "distribution": [{"@type": "Distribution", "format": "HttpData-PULL",
                                          "accessService": "urn:hostile#dsp"}]}]}


class Servers:
    """The hostile provider and the host its link names (which records whatever reaches it)."""

    def __init__(self) -> None:
        self.provider_port, self.victim_port = free_port(), free_port()
        self.link = ""
        self.victim_hits: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()

    async def well_known(self, request: web.Request) -> web.Response:
        return web.json_response({"protocolVersions": [{"version": "2025-1", "path": "/dsp/2025-1",
                                                        "binding": "HTTPS"}]})

    async def catalog(self, request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(CATALOG, headers={"Link": f'<{self.link}>; rel="next"'})

    async def victim(self, request: web.Request) -> web.Response:
        self.victim_hits.append(request.headers.get("Authorization", ""))
        return web.json_response(CATALOG)

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            provider = web.Application()
            provider.add_routes([web.get("/.well-known/dspace-version", self.well_known),
                                 web.post("/dsp/2025-1/catalog/request", self.catalog)])
            victim = web.Application()
            victim.add_routes([web.route("*", "/{tail:.*}", self.victim)])
            for app, port in ((provider, self.provider_port), (victim, self.victim_port)):
                runner = web.AppRunner(app)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", port).start()
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()


def test_a_providers_next_link_to_another_host_or_back_is_not_followed(tmp_path):
    servers = Servers()
    threading.Thread(target=servers.run, daemon=True).start()
    assert servers.ready.wait(10)
    consumer = NodeProcess(tmp_path / "consumer", "Consumer").start()
    provider = f"http://127.0.0.1:{servers.provider_port}"
    try:
        for link, rule in ((f"http://127.0.0.1:{servers.victim_port}/dsp/2025-1/catalog/request?p=2",
                            "not the provider's catalog endpoint: not followed"),
                           (f"{provider}/dsp/2025-1/catalog/request", "leads back to a page already read")):
            servers.link = link
            answer = consumer.api("POST", "/catalog/request", {"counterPartyAddress": provider}, expect=502)
            assert rule in answer["error"], answer
            assert str(servers.victim_port) not in answer["error"]
        assert servers.victim_hits == []
    finally:
        consumer.stop()
        servers.loop.call_soon_threadsafe(servers.loop.stop)
