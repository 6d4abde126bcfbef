"""Request forgery (issue 10, finding 3): a peer names a URL in its message (a callbackAddress,
a push endpoint, the endpoint of a TransferStartMessage) and our node would send a request
there, with our token or a bearer value the peer chose. Here the URL is an "internal
service": a plain aiohttp listener on 127.0.0.1, another port, that records whether it was
called. Real node processes (and a real station in station mode) over real HTTP.

Each attack must be refused when the message arrives, with a DSP 400 naming our rule and
nothing about our network, leaving no process behind, and the listener must never be called.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
from aiohttp import web

from connector.identity import DevSharedSecret
from connector.node.destinations import RULE_OWNER, RULE_PRIVATE
from connector.protocol import wire
from connector.protocol.messages import ContractRequestMessage, TransferRequestMessage, TransferStartMessage
from support.nodes import SHARED_SECRET, NodeProcess, StationProcess, free_port

pytestmark = pytest.mark.slow
VERSIONS = ["2025-1", "2024-1"]
GRACE = 2.0  # how long a refused message is given to (wrongly) reach the listener; on main it takes ~0.1 s
PEER_SECRET = "peer-chosen-bearer-value"


class Listener:
    """A plain aiohttp server in a thread: records every request; answers 405 under /405, else 200."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[str, str, str | None, bytes]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path == "/.well-known/dspace-version":  # it poses as a provider's root, to be discovered
            return web.json_response({"protocolVersions": [{"version": "2025-1", "path": "/dsp/2025-1"}]})
        self.requests.append((request.method, request.path, request.headers.get("Authorization"),
                              await request.read()))
        return web.Response(status=405 if request.path.startswith("/405") else 200)

    def start(self) -> "Listener":
        self.thread.start()

        async def setup() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(setup(), self.loop).result(10)
        return self

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def untouched(self) -> bool:
        time.sleep(GRACE)
        return not self.requests

    def forget(self) -> None:
        """Each attack starts from a clean record (the listener is shared by a module's tests)."""
        self.requests.clear()

    def wait_for(self, suffix: str, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, path, _, body in self.requests:
                if path.endswith(suffix):
                    return body
            time.sleep(0.05)
        raise AssertionError(f"nothing arrived at *{suffix}: {[r[:2] for r in self.requests]}")


def dev_token(participant_id: str, to: NodeProcess) -> str:
    """A dev-mode token naming `participant_id`, for the node `to` only."""
    return "Bearer " + DevSharedSecret(participant_id, SHARED_SECRET).token_for(participant_id, audience=to.participant_id)


def station_token(node: NodeProcess, to: NodeProcess) -> str:
    """A real DAT for an enrolled node, fetched with its own key, as the node itself would."""
    from connector.identity.dat import client_assertion, token_request_form
    from connector.identity.keys import load_private_key

    station_url = node.settings.identity_station_url
    assertion = client_assertion(node.participant_id, load_private_key(node.directory / "keys" / "node.key"),
                                 station_url + "/token", now=time.time())
    answer = httpx.post(station_url + "/token", data=token_request_form(assertion, to.participant_id), timeout=10)
    return "Bearer " + answer.json()["access_token"]


def post(node: NodeProcess, version: str, path: str, neutral: dict, token: str) -> httpx.Response:
    return httpx.post(f"{node.url}/dsp/{version}{path}", json=wire.to_wire(neutral, version), timeout=30,
                      headers={"Authorization": token})


def push_address(endpoint: str) -> dict:
    return {"@type": "DataAddress", "endpointType": "https://w3id.org/idsa/v4.1/HTTP", "endpoint": endpoint,
            "endpointProperties": [{"@type": "EndpointProperty", "name": "authorization", "value": PEER_SECRET},
                                   {"@type": "EndpointProperty", "name": "authType", "value": "bearer"}]}


def assert_refused(resp: httpx.Response, version: str, what: str, rule: str, *hidden: str) -> str:
    """A DSP 400 naming the field and our rule, and nothing of our network (finding 2)."""
    assert resp.status_code == 400, resp.text
    body = wire.from_wire(resp.json(), version)
    reason = " ".join(body["reason"]) if isinstance(body["reason"], list) else body["reason"]
    assert body["code"] == "DestinationRefused" and f"{what} refused" in reason and f"(rule: {rule})" in reason, reason
    assert_no_network(resp.text, *hidden)
    return reason


def assert_no_network(text: str, *hidden: str) -> None:
    for needle in ("Cannot connect", "Connect call failed", "answered", "127.0.0.1", "localhost", *hidden):
        assert needle not in text, (needle, text)


def agreement(consumer: NodeProcess, provider: NodeProcess, version: str) -> str:
    neg = consumer.wait_state(consumer.negotiate(provider, "records", "records-offer", version)["id"])
    assert neg["state"] == "FINALIZED", neg
    return neg["agreement"]["@id"]


def publish(provider: NodeProcess) -> None:
    data = provider.directory / "data"
    data.mkdir(exist_ok=True)
    (data / "records.csv").write_text("id,value\n1,a\n2,b\n")
    provider.api("POST", "/policies", {"id": "open", "policy": {"permission": [{"action": "use"}]}}, expect=201)
    provider.api("POST", "/assets", {"id": "records", "contentType": "text/csv",
                                     "dataAddress": {"type": "file", "path": "records.csv"}}, expect=201)
    provider.api("POST", "/offers", {"id": "records-offer", "assetIds": ["records"], "accessPolicyId": "open",
                                     "contractPolicyId": "open"}, expect=201)


def count(node: NodeProcess, what: str) -> int:
    return len(node.api("GET", f"/{what}?limit=1000", expect=200))


# ------------------------------------------------------------------- the three attacks
def push_to_internal_service(provider, consumer, internal, version, token, agreement_id, rule, endpoint=None):
    """(a) a push TransferRequest whose endpoint is the internal service, with a peer-chosen bearer value."""
    internal.forget()
    before = count(provider, "transfers")
    msg = TransferRequestMessage(consumer_pid=f"urn:uuid:push-attack-{version}-{time.monotonic_ns()}",
                                 agreement_id=agreement_id, format="HttpData-PUSH",
                                 callback_address=consumer.settings.dsp_base(version),
                                 data_address=push_address(endpoint or f"{internal.url}/admin/reset"))
    resp = post(provider, version, "/transfers/request", msg.to_neutral(), token)
    assert internal.untouched(), internal.requests  # on main: a PUT with the peer's bearer value
    assert_refused(resp, version, "the push endpoint (dataAddress endpoint)", rule, str(internal.port))
    assert count(provider, "transfers") == before  # no process left behind


def callback_to_internal_service(provider, internal, version, token, attacker_id, rule):
    """(b) an initial ContractRequestMessage whose callbackAddress is the internal service."""
    internal.forget()
    before = count(provider, "negotiations")
    offer = {"@id": "records-offer", "@type": "Offer", "target": "records", "assigner": provider.participant_id,
             "assignee": attacker_id, "permission": [{"action": "use"}]}
    msg = ContractRequestMessage(consumer_pid=f"urn:uuid:cb-attack-{version}-{time.monotonic_ns()}", offer=offer,
                                 callback_address=f"{internal.url}/dsp/{version}")
    resp = post(provider, version, "/negotiations/request", msg.to_neutral(), token)
    assert internal.untouched(), internal.requests  # on main: the agreement, POSTed with our token
    assert_refused(resp, version, "callbackAddress", rule, str(internal.port))
    assert count(provider, "negotiations") == before


def start_with_internal_endpoint(provider, consumer, internal, version, token, agreement_id, rule):
    """(c) a TransferStartMessage to the consumer whose endpoint is the internal service."""
    internal.forget()
    started = consumer.api("POST", "/transfers", {"agreementId": agreement_id, "format": "HttpData-PULL"}, expect=201)
    row = consumer.api("GET", f"/transfers/{started['id']}?waitFor=STARTED&timeout=20", expect=200)
    assert row["state"] == "STARTED", row
    provider.api("POST", f"/transfers/{row['providerPid']}/suspend", {"reason": "maintenance"}, expect=200)
    row = consumer.api("GET", f"/transfers/{row['id']}?waitFor=SUSPENDED&timeout=20", expect=200)
    assert row["state"] == "SUSPENDED", row
    msg = TransferStartMessage(provider_pid=row["providerPid"], consumer_pid=row["id"],
                               data_address=push_address(f"{internal.url}/internal/records"))
    resp = post(consumer, version, f"/transfers/{row['id']}/start", msg.to_neutral(), token)
    # the consumer's operator reads the transfer's data: on main the consumer fetched it from the internal service
    fetched = httpx.get(f"{consumer.url}/api/v1/transfers/{row['id']}/data", headers=consumer.headers(), timeout=30)
    assert internal.untouched(), internal.requests
    assert_refused(resp, version, "the data endpoint (dataAddress endpoint)", rule, str(internal.port))
    assert fetched.status_code == 409  # still suspended: nothing to fetch from, and nothing fetched
    after = consumer.api("GET", f"/transfers/{row['id']}", expect=200)
    assert after["state"] == "SUSPENDED" and after["endpoint"] == row["endpoint"], after


# ------------------------------------------------------------------------ dev mode
@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    """Two dev-mode nodes that allow each other's ports (and an attacker's own listener) on loopback, nothing else."""
    base = tmp_path_factory.mktemp("forgery")
    internal, attacker = Listener().start(), Listener().start()
    dead = free_port()  # allowed, but nothing listens there
    ports = {"provider": free_port(), "consumer": free_port()}
    allowed = ", ".join(f"127.0.0.1:{p}" for p in (*ports.values(), attacker.port, dead))
    env = {"CONNECTOR_DSP_ALLOWED_DESTINATIONS": allowed}
    provider = NodeProcess(base / "provider", "Provider", port=ports["provider"], env=env)
    consumer = NodeProcess(base / "consumer", "Consumer", port=ports["consumer"], env=env)
    try:
        provider.start()
        consumer.start()
        publish(provider)
        yield provider, consumer, internal, attacker, dead
    finally:
        provider.stop()
        consumer.stop()
        internal.stop()
        attacker.stop()


@pytest.fixture(scope="module")
def dev_agreements(dev):
    provider, consumer, *_ = dev
    return {v: agreement(consumer, provider, v) for v in VERSIONS}


@pytest.mark.parametrize("version", VERSIONS)
def test_a_push_endpoint_on_an_internal_service_is_refused(dev, dev_agreements, version):
    provider, consumer, internal, *_ = dev
    push_to_internal_service(provider, consumer, internal, version, dev_token(consumer.participant_id, provider),
                             dev_agreements[version], RULE_PRIVATE)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_push_endpoint_named_localhost_is_refused_after_resolution(dev, dev_agreements, version):
    """(e) the allow-list names 127.0.0.1 on the nodes' ports only: `localhost` is no public name,
    and what it resolves to (127.0.0.1 on the internal service's port) is not allowed."""
    provider, consumer, internal, *_ = dev
    push_to_internal_service(provider, consumer, internal, version, dev_token(consumer.participant_id, provider),
                             dev_agreements[version], RULE_PRIVATE,
                             endpoint=f"http://localhost:{internal.port}/admin/reset")


@pytest.mark.parametrize("version", VERSIONS)
def test_a_transfer_callback_on_an_internal_service_is_refused(dev, dev_agreements, version):
    provider, consumer, internal, *_ = dev
    internal.forget()
    before = count(provider, "transfers")
    msg = TransferRequestMessage(consumer_pid=f"urn:uuid:tcb-attack-{version}", agreement_id=dev_agreements[version],
                                 format="HttpData-PULL", callback_address=f"{internal.url}/dsp/{version}")
    resp = post(provider, version, "/transfers/request", msg.to_neutral(), dev_token(consumer.participant_id, provider))
    assert internal.untouched(), internal.requests  # on main: the TransferStartMessage, with our token
    assert_refused(resp, version, "callbackAddress", RULE_PRIVATE, str(internal.port))
    assert count(provider, "transfers") == before


@pytest.mark.parametrize("version", VERSIONS)
def test_a_negotiation_callback_on_an_internal_service_is_refused(dev, version):
    provider, _, internal, *_ = dev
    mallory = "urn:hks:participant:mallory"
    callback_to_internal_service(provider, internal, version, dev_token(mallory, provider), mallory, RULE_PRIVATE)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_transfer_start_with_an_internal_endpoint_is_refused(dev, dev_agreements, version):
    provider, consumer, internal, *_ = dev
    start_with_internal_endpoint(provider, consumer, internal, version, dev_token(provider.participant_id, consumer),
                                 dev_agreements[version], RULE_PRIVATE)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_failed_push_does_not_tell_the_peer_whether_a_port_is_open(dev, dev_agreements, version):
    """(f) finding 3's port scan: the provider's termination sent to the peer read "Cannot connect to
    host 127.0.0.1:PORT" for a closed port and "answered 405" for an open one. Now both read alike."""
    provider, consumer, _, attacker, dead = dev
    reasons = []
    for n, endpoint in enumerate((f"http://127.0.0.1:{dead}/push", f"{attacker.url}/405/push")):
        cpid = f"urn:uuid:scan-{version}-{n}"
        msg = TransferRequestMessage(consumer_pid=cpid, agreement_id=dev_agreements[version], format="HttpData-PUSH",
                                     callback_address=f"{attacker.url}/dsp/{version}", data_address=push_address(endpoint))
        resp = post(provider, version, "/transfers/request", msg.to_neutral(), dev_token(consumer.participant_id, provider))
        assert resp.status_code == 201, resp.text
        text = attacker.wait_for(f"/transfers/{cpid}/termination").decode()
        assert "the push failed" in text, text
        assert_no_network(text, str(dead), str(attacker.port))
        reasons.append(wire.from_wire(json.loads(text), version)["reason"])
    assert reasons[0] == reasons[1]


# --------------------------------------------------------------------- station mode
@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """A real station and two enrolled nodes that allow loopback: only the ownership rule stands
    between a peer and the internal service."""
    base = tmp_path_factory.mktemp("forgery-station")
    internal = Listener().start()
    st = StationProcess(base / "station").start()
    provider = NodeProcess(base / "provider", "Provider Org", station=st, jurisdiction="HK")
    consumer = NodeProcess(base / "consumer", "Consumer Org", station=st, jurisdiction="HK")
    try:
        provider.start()
        consumer.start()
        publish(provider)
        yield provider, consumer, internal, {v: agreement(consumer, provider, v) for v in VERSIONS}
    finally:
        provider.stop()
        consumer.stop()
        internal.stop()
        st.stop()


@pytest.mark.parametrize("version", VERSIONS)
def test_station_a_push_endpoint_not_registered_to_the_sender_is_refused(station, version):
    provider, consumer, internal, agreements = station
    push_to_internal_service(provider, consumer, internal, version, station_token(consumer, provider), agreements[version],
                             RULE_OWNER)


@pytest.mark.parametrize("version", VERSIONS)
def test_station_a_callback_not_registered_to_the_sender_is_refused(station, version):
    provider, consumer, internal, _ = station
    callback_to_internal_service(provider, internal, version, station_token(consumer, provider), consumer.participant_id,
                                 RULE_OWNER)


@pytest.mark.parametrize("version", VERSIONS)
def test_station_a_transfer_start_endpoint_not_registered_to_the_sender_is_refused(station, version):
    provider, consumer, internal, agreements = station
    start_with_internal_endpoint(provider, consumer, internal, version, station_token(provider, consumer), agreements[version],
                                 RULE_OWNER)


def test_station_the_refusal_names_the_sender_and_the_rule(station):
    provider, consumer, internal, agreements = station
    internal.forget()
    msg = TransferRequestMessage(consumer_pid="urn:uuid:named", agreement_id=agreements["2025-1"],
                                 format="HttpData-PULL", callback_address=f"{internal.url}/dsp/2025-1")
    resp = post(provider, "2025-1", "/transfers/request", msg.to_neutral(), station_token(consumer, provider))
    reason = assert_refused(resp, "2025-1", "callbackAddress", RULE_OWNER, str(internal.port))
    assert reason == (f"callbackAddress refused: it is not an address registered for participant "
                      f"{consumer.participant_id} at the station (rule: {RULE_OWNER})")


def test_station_a_provider_dsp_address_not_registered_to_it_is_refused(station):
    """A provider's /.well-known/dspace-version names the DSP base our consumer sends its token to:
    one that is not the provider's registered address is refused before the negotiation starts."""
    provider, consumer, internal, _ = station
    internal.forget()
    before = count(consumer, "negotiations")
    offer = {"@id": "records-offer", "@type": "Offer", "target": "records", "assigner": provider.participant_id,
             "permission": [{"action": "use"}]}
    resp = httpx.post(f"{consumer.url}/api/v1/negotiations", headers=consumer.headers(), timeout=30, json={
        "counterPartyAddress": internal.url, "counterPartyId": provider.participant_id, "datasetId": "records",
        "offer": offer})
    assert internal.untouched(), internal.requests  # on main: the ContractRequestMessage with our DAT
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == (f"the provider's DSP address refused: it is not an address registered for "
                                    f"participant {provider.participant_id} at the station (rule: {RULE_OWNER})")
    assert count(consumer, "negotiations") == before

