"""The outbox never gives up silently and keeps the order of a process's messages, against a
real provider node and a scripted consumer in the test process (real HTTP both ways):

- a message the peer keeps refusing with 5xx is retried until the deadline of its kind
  ([outbox] message_deadline_seconds, short here), then it is a dead letter: the negotiation is
  terminated on our side with the cause and towards the peer (a durable message too); the dead
  letter is listed by the management API with its true cause, counted in /metrics, logged,
  and can be retried by an operator;
- a later message (FINALIZED) never overtakes an earlier one (the agreement) waiting in backoff."""
import asyncio
import uuid

import httpx
import pytest
from aiohttp import web

from connector.protocol import wire
from support.fakepeer import send
from support.nodes import NodeProcess, free_port

pytestmark = pytest.mark.slow
VERSION = "2025-1"
FAST_RETRIES = {"CONNECTOR_OUTBOX_RETRY_INITIAL_MS": "200", "CONNECTOR_OUTBOX_RETRY_MAX_SECONDS": "1"}


class Consumer:
    """A scripted consumer: records every message with the status it answered; `refuse(path)`
    decides a 503 for the agreement."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[tuple[str, int, dict]] = []  # (what, status answered, message)
        self.refuse = lambda what, count: False
        self.after = None  # async callback(what, count)
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        doc = wire.from_wire(await request.json(), VERSION)
        what = request.path.rsplit("/", 1)[-1]
        if what == "events":
            what = doc.get("eventType", "events")
        count = sum(1 for w, _, _ in self.seen if w == what) + 1
        status = 503 if self.refuse(what, count) else 200
        self.seen.append((what, status, doc))
        self.changed.set()
        if self.after is not None:
            asyncio.get_running_loop().create_task(self.after(what, count))
        body = {"@type": "ContractNegotiation", "providerPid": doc.get("providerPid", "x"),
                "consumerPid": doc.get("consumerPid", "x"), "state": "REQUESTED"}
        if status != 200:
            return web.json_response({"error": "busy"}, status=status)
        return web.json_response(wire.to_wire(body, VERSION))

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    async def wait(self, predicate, timeout: float = 60.0) -> None:
        async def loop():
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        try:
            await asyncio.wait_for(loop(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"the consumer saw: {[(w, s) for w, s, _ in self.seen]}") from None

    def accepted(self, what: str) -> bool:
        return any(w == what and s == 200 for w, s, _ in self.seen)


async def request_offer(client: httpx.AsyncClient, provider: NodeProcess, consumer: Consumer) -> tuple[str, str]:
    """The consumer asks for the provider's offer; returns (consumerPid, providerPid)."""
    base = f"{provider.url}/dsp/{VERSION}"
    catalog = await send(client, f"{base}/catalog/request", {"@type": "CatalogRequestMessage"}, VERSION)
    offer = catalog["dataset"][0]["hasPolicy"][0]
    cpid = f"urn:uuid:{uuid.uuid4()}"
    ack = await send(client, f"{base}/negotiations/request",
                     {"@type": "ContractRequestMessage", "consumerPid": cpid, "callbackAddress": f"{consumer.url}/cb",
                      "offer": {**offer, "target": "dataset-1"}}, VERSION, expect=201)
    return cpid, ack["providerPid"]


async def api(node: NodeProcess, method: str, path: str, expect: int = 200):  # noqa: ANN201
    async with httpx.AsyncClient(timeout=30) as client:
        resp = await client.request(method, node.url + "/api/v1" + path, headers=node.headers())
    assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
    return resp.json() if "json" in resp.headers.get("content-type", "") else resp.text


async def test_a_later_message_never_overtakes_an_earlier_one_waiting_in_backoff(tmp_path):
    provider = NodeProcess(tmp_path / "provider", "Provider", env=FAST_RETRIES).start()
    consumer = Consumer()
    runner = await consumer.start()
    try:
        provider.publish()
        # The agreement is refused through several attempts of the dispatcher (each of them 3 posts).
        consumer.refuse = lambda what, count: what == "agreement" and count <= 7
        async with httpx.AsyncClient(timeout=30) as client:
            cpid, ppid = await request_offer(client, provider, consumer)

            async def verify_while_refused(what, count):  # noqa: ANN001, ANN202
                if what == "agreement" and count == 3:  # after the dispatcher's first attempt has failed
                    await asyncio.sleep(0.3)
                    await send(client, f"{provider.url}/dsp/{VERSION}/negotiations/{ppid}/agreement/verification",
                               {"@type": "ContractAgreementVerificationMessage", "providerPid": ppid,
                                "consumerPid": cpid}, VERSION)
            consumer.after = verify_while_refused
            await consumer.wait(lambda: consumer.accepted("FINALIZED"))
        order = [(w, s) for w, s, _ in consumer.seen]
        finalized_at = order.index(("FINALIZED", 200))
        assert ("agreement", 200) in order[:finalized_at], f"FINALIZED overtook the agreement: {order}"
        assert [w for w, _ in order].count("FINALIZED") == 1, order
        neg = await api(provider, "GET", f"/negotiations/{ppid}")
        assert neg["state"] == "FINALIZED", neg
    finally:
        provider.stop()
        await runner.cleanup()


async def test_a_message_refused_past_its_deadline_is_a_dead_letter_and_ends_both_sides(tmp_path):
    provider = NodeProcess(tmp_path / "provider", "Provider",
                           env={**FAST_RETRIES, "CONNECTOR_OUTBOX_MESSAGE_DEADLINE_SECONDS": "3"}).start()
    consumer = Consumer()
    runner = await consumer.start()
    try:
        provider.publish()
        consumer.refuse = lambda what, count: what == "agreement"
        async with httpx.AsyncClient(timeout=30) as client:
            cpid, ppid = await request_offer(client, provider, consumer)
        # the termination reaches the peer, with the reason
        await consumer.wait(lambda: consumer.accepted("termination"))
        [termination] = [doc for w, _, doc in consumer.seen if w == "termination"]
        assert termination["code"] == "DeliveryDeadline", termination
        assert "deadline" in termination["reason"][0] and "503" in termination["reason"][0], termination
        assert termination["consumerPid"] == cpid and termination["providerPid"] == ppid
        # our side ended with the same reason
        neg = await api(provider, "GET", f"/negotiations/{ppid}")
        assert neg["state"] == "TERMINATED", neg
        assert neg["termination"]["code"] == "DeliveryDeadline" and "503" in neg["termination"]["reason"][0], neg
        # the dead letter: in the management API with its true cause, in /metrics, in the log
        [dead] = await api(provider, "GET", "/dead-letters")
        assert dead["kind"] == "ContractAgreementMessage" and dead["processId"] == ppid, dead
        assert dead["status"] == "dead" and "the peer answered 503" in dead["cause"], dead
        assert dead["attempts"] >= 2 and dead["deadAt"] is not None
        metrics = await api(provider, "GET", "/metrics")
        assert 'hks_outbox_dead_letters{kind="ContractAgreementMessage"} 1' in metrics, metrics
        log = provider.log_path.read_text()
        assert "DEAD LETTER" in log and "the peer answered 503" in log
        # an operator retries it once the peer is back
        consumer.refuse = lambda what, count: False
        await api(provider, "POST", "/dead-letters/999999/retry", expect=404)
        await api(provider, "POST", "/dead-letters/nope/retry", expect=404)
        retried = await api(provider, "POST", f"/dead-letters/{dead['id']}/retry")
        assert retried["status"] == "pending" and retried["id"] == dead["id"]
        await consumer.wait(lambda: consumer.accepted("agreement"))
        assert await api(provider, "GET", "/dead-letters") == []
        metrics = await api(provider, "GET", "/metrics")
        assert "hks_outbox_dead_letters 0" in metrics, metrics
    finally:
        provider.stop()
        await runner.cleanup()
