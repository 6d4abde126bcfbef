"""The dispatcher's retry rules against a real HTTP server: 5xx and timeouts are retried,
4xx ends the message, and a 401 is retried with a renewed token when the identity can
renew one."""
import aiohttp
import pytest
from aiohttp import web

from connector.node.outbox import Dispatcher, PermanentSendError


@pytest.fixture
async def peer():
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.path == "/stale" and request.headers.get("Authorization") == "Bearer old":
            return web.json_response({"error": "token expired"}, status=401)
        if request.path == "/flaky" and len(seen) == 1:
            return web.json_response({"error": "busy"}, status=503)
        if request.path == "/refuse":
            return web.json_response({"error": "no"}, status=400)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


def dispatcher(session, token: dict, renew=None):
    async def authorization(recipient):
        assert recipient == PEER  # the peer's id, never the URL: the token is issued for it alone
        return f"Bearer {token['value']}"
    return Dispatcher(db=_NoDb(), service=None, session=session, authorization=authorization, on_unauthorized=renew)


PEER = "urn:hks:participant:peer"


class _NoDb:
    is_postgres = False


async def test_a_401_is_retried_with_a_renewed_token(peer):
    url, seen = peer
    token = {"value": "old"}
    async with aiohttp.ClientSession() as session:
        d = dispatcher(session, token, renew=lambda: token.update(value="new"))
        assert await d._post_with_retries(url + "/stale", b"{}", "m1", PEER) == {"ok": True}
    assert seen == ["Bearer old", "Bearer new"]


async def test_a_401_ends_the_message_when_the_token_cannot_be_renewed(peer):
    url, _ = peer
    async with aiohttp.ClientSession() as session:
        with pytest.raises(PermanentSendError, match="401"):
            await dispatcher(session, {"value": "old"})._post_with_retries(url + "/stale", b"{}", "m2", PEER)


async def test_5xx_is_retried_and_4xx_is_not(peer):
    url, seen = peer
    async with aiohttp.ClientSession() as session:
        d = dispatcher(session, {"value": "t"})
        assert await d._post_with_retries(url + "/flaky", b"{}", "m3", PEER) == {"ok": True}
        assert len(seen) == 2
        with pytest.raises(PermanentSendError, match="400"):
            await d._post_with_retries(url + "/refuse", b"{}", "m4", PEER)
        assert len(seen) == 3
