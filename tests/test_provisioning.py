"""Issue 11, findings 10 and 11, between real node processes: what cannot be delivered is refused
with a reason (never a 500 recorded as an access), a delivery that fails before its first byte
consumes no use, a number as a rightOperand keeps the catalog schema-valid, data-plane refusals
leave a line in the node's log, a push stops when its transfer is suspended, a rejected agreement
is not recorded, a provider-initiated offer is logged at the clearing house, and a retried
management POST with an Idempotency-Key creates nothing twice."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import httpx
import pytest

from connector.clearinghouse.testing import ClearingHouseProcess
from connector.identity import DevSharedSecret
from support import schemas
from support.nodes import SHARED_SECRET, NodeProcess, free_port, pull_suspended_midway

pytestmark = pytest.mark.slow
OPEN = {"permission": [{"action": "use"}]}
TWICE = {"permission": [{"action": "use", "constraint": [{"leftOperand": "count", "operator": "lteq",
                                                          "rightOperand": 2}]}]}
CTX = ["https://w3id.org/dspace/2025/1/context.jsonld"]


class SlowUpstream:
    """An HTTP source in the test process that sends `size` bytes in 80 steps `pause` s apart."""

    def __init__(self, size: int = 4_000_000, port: int = 0, pause: float = 0.05) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                step = size // 80
                try:
                    for _ in range(80):
                        self.wfile.write(b"x" * step)
                        self.wfile.flush()
                        time.sleep(pause)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slow"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    base = tmp_path_factory.mktemp("provisioning")
    provider = NodeProcess(base / "provider", "Provider", env={"CONNECTOR_DATAPLANE_UPSTREAM_HOSTS": "127.0.0.1"})
    consumer = NodeProcess(base / "consumer", "Consumer")
    (provider.directory / "data").mkdir(exist_ok=True)
    provider.start()
    consumer.start()
    upstream = SlowUpstream()
    for name, policy in {"open": OPEN, "twice": TWICE}.items():
        provider.api("POST", "/policies", {"id": name, "policy": policy}, expect=201)
    assets = {"nowhere": None, "later": {"type": "file", "path": "later.csv"},
              "slow": {"type": "http", "url": upstream.url}}
    for name, address in assets.items():
        body = {"id": name, "contentType": "text/csv"} | ({"dataAddress": address} if address else {})
        provider.api("POST", "/assets", body, expect=201)
    for name, policy in (("nowhere", "open"), ("later", "twice"), ("slow", "open")):
        provider.api("POST", "/offers", {"id": f"offer-{name}", "assetIds": [name], "accessPolicyId": "open",
                                         "contractPolicyId": policy}, expect=201)
    try:
        yield provider, consumer
    finally:
        provider.stop()
        consumer.stop()
        upstream.server.shutdown()


def agree(consumer: NodeProcess, provider: NodeProcess, name: str) -> str:
    neg = consumer.wait_state(consumer.negotiate(provider, name, f"offer-{name}")["id"])
    assert neg["state"] == "FINALIZED", neg
    return neg["agreement"]["@id"]


def transfer(consumer: NodeProcess, agreement_id: str, expect: str, fmt: str = "HttpData-PULL") -> dict:
    started = consumer.api("POST", "/transfers", {"agreementId": agreement_id, "format": fmt}, expect=201)
    row = consumer.api("GET", f"/transfers/{started['id']}?waitFor={expect}&timeout=20", expect=200)
    assert row["state"] == expect, row
    return row


def data(consumer: NodeProcess, transfer_id: str) -> httpx.Response:
    return httpx.get(f"{consumer.url}/api/v1/transfers/{transfer_id}/data", headers=consumer.headers(), timeout=60)


def test_an_asset_without_a_data_address_is_refused_at_transfer_start_not_a_500(nodes):
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "nowhere"), "TERMINATED")
    assert "AssetUnavailable" in row["error"] and "no data address" in row["termination"]["reason"][0], row
    accesses = provider.api("GET", "/access-log?limit=1000")
    assert not [a for a in accesses if a["permitted"] and a.get("stage", "access") == "access"
                and a.get("transferId") == row["providerPid"]]


def test_a_delivery_that_fails_before_its_first_byte_consumes_no_use(nodes):
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "later"), "STARTED")
    missing = data(consumer, row["id"])
    assert missing.status_code == 404 and "missing" in missing.json()["reasons"][0]
    (provider.directory / "data" / "later.csv").write_text("a,b\n1,2\n")
    assert [data(consumer, row["id"]).status_code for _ in range(3)] == [200, 200, 403]  # both uses delivered
    log = (provider.directory / "node.log").read_text()
    assert "failed before any byte was sent (404)" in log


def test_a_pull_from_an_upstream_that_is_down_consumes_no_use(nodes):
    provider, consumer = nodes
    port = free_port()  # nothing listens there yet
    provider.api("POST", "/assets", {"id": "down", "dataAddress": {"type": "http", "url": f"http://127.0.0.1:{port}/d"}},
                 expect=201)
    provider.api("POST", "/offers", {"id": "offer-down", "assetIds": ["down"], "accessPolicyId": "open",
                                     "contractPolicyId": "twice"}, expect=201)
    row = transfer(consumer, agree(consumer, provider, "down"), "STARTED")
    down = data(consumer, row["id"])
    assert down.status_code == 502 and "unavailable" in down.json()["reasons"][0]
    assert str(port) not in down.text  # our network is not the consumer's business
    upstream = SlowUpstream(size=800, port=port, pause=0)
    try:
        assert [data(consumer, row["id"]).status_code for _ in range(3)] == [200, 200, 403]
    finally:
        upstream.server.shutdown()
    accesses = [a for a in provider.api("GET", "/access-log?limit=1000") if a.get("transferId") == row["providerPid"]]
    assert sum(1 for a in accesses if a["permitted"]) == 2, accesses


def test_data_plane_refusals_leave_a_line_in_the_log_without_the_token(nodes):
    provider, consumer = nodes
    token = "Z" * 43
    resp = httpx.get(f"{provider.url}/data/urn:uuid:no-such-transfer", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    deadline = time.monotonic() + 5
    while "'urn:uuid:no-such-transfer': access refused (401)" not in (provider.directory / "node.log").read_text():
        assert time.monotonic() < deadline, "no log line for the refusal"
        time.sleep(0.1)
    assert token not in (provider.directory / "node.log").read_text()


@pytest.mark.needs_reference("dsp/dsp-2025-1/schema", "dsp/tck-2025-1-schemas", "dsp/dsp-2024-1/schema")
def test_a_number_as_right_operand_keeps_the_catalog_schema_valid(nodes):
    provider, consumer = nodes
    stored = provider.api("GET", "/policies/twice", expect=200)["policy"]
    assert stored["permission"][0]["constraint"][0]["rightOperand"] == {"@value": "2", "@type": "xsd:integer"}
    caller = "urn:hks:participant:schema-check"
    token = DevSharedSecret(caller, SHARED_SECRET).token_for(caller, audience=provider.participant_id)
    catalog = httpx.post(f"{provider.url}/dsp/2025-1/catalog/request", headers={"Authorization": f"Bearer {token}"},
                         json={"@context": CTX, "@type": "CatalogRequestMessage"}).json()
    assert any(d["@id"] == "later" for d in catalog["dataset"])
    schemas.validate(catalog, "2025-1")


def test_a_push_stops_when_its_transfer_is_suspended_mid_stream(nodes):
    provider, consumer = nodes
    row = transfer(consumer, agree(consumer, provider, "slow"), "STARTED", fmt="HttpData-PUSH")
    time.sleep(1.0)  # the push is under way (the source takes about 4 s)
    provider.api("POST", f"/transfers/{row['providerPid']}/suspend", {"reason": "maintenance"}, expect=200)
    time.sleep(5.0)  # longer than the source takes
    assert provider.api("GET", f"/transfers/{row['providerPid']}")["state"] == "SUSPENDED"
    assert consumer.api("GET", f"/transfers/{row['id']}")["state"] == "SUSPENDED"
    received = data(consumer, row["id"])
    assert received.status_code == 404 or len(received.content) < 4_000_000, "the push went on after the suspension"


def test_an_idempotency_key_makes_a_retried_post_create_nothing_twice(nodes):
    provider, consumer = nodes
    body = {"counterPartyAddress": provider.url, "counterPartyId": provider.participant_id,
            "datasetId": "later", "offerId": "offer-later"}
    before = len(consumer.api("GET", "/negotiations?limit=1000"))

    def post(path: str, doc: dict, key: str) -> httpx.Response:
        return httpx.post(f"{consumer.url}/api/v1{path}", json=doc, timeout=30,
                          headers={**consumer.headers(), "Idempotency-Key": key})

    first, again = post("/negotiations", body, "retry-1"), post("/negotiations", body, "retry-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert len(consumer.api("GET", "/negotiations?limit=1000")) == before + 1
    other = post("/negotiations", {**body, "datasetId": "slow", "offerId": "offer-slow"}, "retry-1")
    assert other.status_code == 422 and "different request body" in other.json()["error"]
    assert post("/negotiations", body, "k" * 300).status_code == 400
    agreement_id = consumer.wait_state(first.json()["id"])["agreement"]["@id"]
    t1, t2 = (post("/transfers", {"agreementId": agreement_id}, "transfer-1") for _ in range(2))
    assert t1.status_code == t2.status_code == 201 and t1.json()["id"] == t2.json()["id"]
    assert [t["agreementId"] for t in consumer.api("GET", "/transfers?limit=1000")].count(agreement_id) == 1


def _as_provider(consumer: NodeProcess, provider_id: str, path: str, body: dict) -> httpx.Response:
    token = DevSharedSecret(provider_id, SHARED_SECRET).token_for(provider_id, audience=consumer.participant_id)
    return httpx.post(f"{consumer.url}/dsp/2025-1{path}", json={"@context": CTX, **body},
                      headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _offer_to(consumer: NodeProcess, provider_id: str, provider_pid: str) -> str:
    """A provider-initiated offer (as a hostile provider would send it); returns the consumer's pid."""
    offer = {"@id": "urn:offer:1", "@type": "Offer", "target": "urn:dataset:1", "assigner": provider_id,
             "permission": [{"action": "use"}]}
    resp = _as_provider(consumer, provider_id, "/negotiations/offers", {
        "@type": "ContractOfferMessage", "providerPid": provider_pid, "offer": offer,
        "callbackAddress": "http://127.0.0.1:9/dsp"})
    assert resp.status_code == 201, resp.text
    return resp.json()["consumerPid"]


def test_a_rejected_agreement_is_not_recorded(nodes):
    _, consumer = nodes
    provider_id, provider_pid = "urn:hks:participant:hostile-provider", "urn:uuid:hostile-1"
    pid = _offer_to(consumer, provider_id, provider_pid)
    consumer.api("POST", f"/negotiations/{pid}/accept", expect=200)
    other_terms = {"@id": "urn:agreement:hostile", "@type": "Agreement", "target": "urn:dataset:OTHER",
                   "assigner": provider_id, "assignee": consumer.participant_id,
                   "timestamp": "2026-01-01T00:00:00Z", "permission": [{"action": "use"}]}
    resp = _as_provider(consumer, provider_id, f"/negotiations/{pid}/agreement", {
        "@type": "ContractAgreementMessage", "providerPid": provider_pid, "consumerPid": pid,
        "agreement": other_terms})
    assert resp.status_code == 200, resp.text
    assert consumer.api("GET", f"/negotiations/{pid}")["state"] == "TERMINATED"
    listed = consumer.api("GET", "/agreements")
    assert "urn:agreement:hostile" not in [a["id"] for a in listed]
    assert consumer.api("GET", "/agreements/urn:agreement:hostile").get("error")
    assert all(a["state"] is not None for a in listed)


def test_a_provider_initiated_offer_is_logged_at_the_clearing_house(tmp_path):
    port = free_port()
    ch = ClearingHouseProcess(tmp_path / "ch", shared_secret=SHARED_SECRET, port=port)
    consumer = NodeProcess(tmp_path / "consumer", "Consumer", env={
        "CONNECTOR_CLEARINGHOUSE_URL": f"http://127.0.0.1:{port}", "CONNECTOR_CLEARINGHOUSE_VERIFIER_KEY": ch.verifier_key,
        "CONNECTOR_CLEARINGHOUSE_AUDIENCE": ch.audience})
    subprocess.run([sys.executable, "-m", "connector", "clearinghouse", "trust", str(ch.directory),
                    "--node", str(consumer.directory)], check=True, capture_output=True)
    ch.start()
    consumer.start()
    try:
        pid = _offer_to(consumer, "urn:hks:participant:offering-provider", "urn:uuid:offering-1")
        deadline = time.monotonic() + 20
        while not consumer.api("GET", f"/negotiations/{pid}/receipts", expect=200):
            assert time.monotonic() < deadline, "the offer was never logged at the clearing house"
            time.sleep(0.2)
    finally:
        consumer.stop()
        ch.stop()


@pytest.mark.postgres
def test_a_suspension_at_one_replica_stops_a_pull_streaming_from_the_other(tmp_path, pg_url):
    """What decides an access is in the database: replica B suspends, replica A's stream stops."""
    import asyncio

    first = NodeProcess(tmp_path / "a", "Replicated", database_url=pg_url)
    second = NodeProcess(tmp_path / "b", "Replicated", database_url=pg_url, participant_id=first.participant_id)
    consumer = NodeProcess(tmp_path / "c", "Consumer")
    for replica in (first, second):
        (replica.directory / "data").mkdir(exist_ok=True)
        (replica.directory / "data" / "big.bin").write_bytes(bytes(range(256)) * 4096 * 40)  # 40 MiB
    first.start()  # applies the migrations
    second.start()
    consumer.start()
    try:
        first.api("POST", "/policies", {"id": "open", "policy": OPEN}, expect=201)
        first.api("POST", "/assets", {"id": "big", "dataAddress": {"type": "file", "path": "big.bin"}}, expect=201)
        first.api("POST", "/offers", {"id": "offer-big", "assetIds": ["big"], "accessPolicyId": "open",
                                      "contractPolicyId": "open"}, expect=201)
        row = transfer(consumer, agree(consumer, first, "big"), "STARTED")

        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            pull_suspended_midway(consumer, row['id'], second, row['providerPid'])
    finally:
        for node in (consumer, second, first):
            node.stop()


DELETE_SOON = {"permission": [{"action": "use", "duty": [{"action": [{"rdf:value": {"@id": "odrl:delete"}, "refinement": [
    {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": {"@value": "PT3S", "@type": "xsd:duration"}}]}]}]}]}


def test_a_push_receiver_killed_mid_write_leaves_no_data_without_a_delete_deadline(tmp_path):
    """The retention duty is evaluated and its deadline recorded before the first pushed byte is
    written: a receiver killed while writing still deletes what it wrote when the deadline comes."""
    provider = NodeProcess(tmp_path / "provider", "Provider", env={"CONNECTOR_DATAPLANE_UPSTREAM_HOSTS": "127.0.0.1"})
    consumer = NodeProcess(tmp_path / "consumer", "Consumer")
    upstream = SlowUpstream()
    provider.start()
    consumer.start()
    try:
        provider.api("POST", "/policies", {"id": "delete-soon", "policy": DELETE_SOON}, expect=201)
        provider.api("POST", "/assets", {"id": "slow", "dataAddress": {"type": "http", "url": upstream.url}}, expect=201)
        provider.api("POST", "/offers", {"id": "offer-slow", "assetIds": ["slow"], "accessPolicyId": "delete-soon",
                                         "contractPolicyId": "delete-soon"}, expect=201)
        transfer(consumer, agree(consumer, provider, "slow"), "STARTED", fmt="HttpData-PUSH")
        received = consumer.directory / "received"
        deadline = time.monotonic() + 10
        while not (received.is_dir() and any(received.iterdir())):
            assert time.monotonic() < deadline, "the push never started writing"
            time.sleep(0.05)
        consumer.kill()  # mid-write: the source takes about 4 s
        assert any(received.iterdir())
        consumer.start()
        deadline = time.monotonic() + 20
        while any(received.iterdir()):
            assert time.monotonic() < deadline, f"data kept with no delete deadline: {list(received.iterdir())}"
            time.sleep(0.2)
    finally:
        consumer.stop()
        provider.stop()
        upstream.server.shutdown()


def test_an_access_refused_for_a_missing_data_address_is_logged_as_refused(nodes):
    """The address went away after the transfer started (an operator's edit straight in the
    database): the consumer is refused, and the provider's access log says refused, not permitted."""
    import sqlalchemy as sa

    from connector.config import default_database_url

    provider, consumer = nodes
    provider.api("POST", "/assets", {"id": "vanishing", "dataAddress": {"type": "file", "path": "later.csv"}},
                 expect=201)
    provider.api("POST", "/offers", {"id": "offer-vanishing", "assetIds": ["vanishing"], "accessPolicyId": "open",
                                     "contractPolicyId": "open"}, expect=201)
    row = transfer(consumer, agree(consumer, provider, "vanishing"), "STARTED")
    engine = sa.create_engine(default_database_url(provider.directory).replace("+aiosqlite", ""))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE assets SET data_address = '{}' WHERE id = 'vanishing'"))
    engine.dispose()
    refused = data(consumer, row["id"])
    assert refused.status_code == 403, refused.text
    logged = [a for a in provider.api("GET", "/access-log?limit=1000")
              if a.get("transferId") == row["providerPid"] and a.get("stage", "access") == "access"]
    assert logged and not logged[-1]["permitted"] and "no data address" in logged[-1]["reasons"][0], logged


# ------------------------------------------- the data plane's refusals in the console's languages

def _set_address(node: NodeProcess, asset_id: str, address: dict) -> None:
    """An asset's data address changed behind the management API (which would refuse it): as when
    the node's rules change after the asset was made (data root, allowed upstreams)."""
    import sqlalchemy as sa

    from connector.config import default_database_url
    engine = sa.create_engine(default_database_url(node.directory).replace("+aiosqlite", ""))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE assets SET data_address = :a WHERE id = :i"),
                     {"a": json.dumps(address), "i": asset_id})
    engine.dispose()


def _pull_token(consumer: NodeProcess, transfer_id: str) -> str:
    """The pull token the provider gave the consumer (kept in the consumer's transfer row only)."""
    import sqlalchemy as sa

    from connector.config import default_database_url
    from connector.protocol.messages import endpoint_property
    engine = sa.create_engine(default_database_url(consumer.directory).replace("+aiosqlite", ""))
    with engine.begin() as conn:
        address = conn.execute(sa.text("SELECT data_address FROM transfers WHERE id = :i"), {"i": transfer_id}).scalar()
    engine.dispose()
    return endpoint_property(json.loads(address) if isinstance(address, str) else address, "authorization")


def _refusals(provider: NodeProcess, provider_pid: str) -> list[dict]:
    return [a for a in provider.api("GET", "/access-log?limit=1000")
            if a.get("transferId") == provider_pid and not a["permitted"]]


def _in(locale: str, stored: list) -> list[str]:
    """Stored sentences (reasonMessages) as the console renders them in `locale`."""
    from connector.console import i18n
    from connector.policy.explain import msg_from_json
    i18n.activate(locale)
    try:
        return [i18n.sentence(msg_from_json(m)) for m in stored]
    finally:
        i18n.activate("en")


def _console(node: NodeProcess, accept_language: str) -> httpx.Client:
    """A signed-in console session on `node` in the language asked for."""
    import secrets

    user, password = f"op{secrets.token_hex(3)}", f"pw-{secrets.token_hex(8)}"
    subprocess.run([sys.executable, "-m", "connector", "user", "add", str(node.directory), user, "--role", "viewer",
                    "--password-stdin"], input=password + "\n", text=True, check=True, capture_output=True)
    client = httpx.Client(base_url=node.url, timeout=30, headers={"Accept-Language": accept_language})
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text).group(1)
    assert client.post("/console/login", data={"csrf": token, "username": user, "password": password}
                       ).status_code == 303
    return client


HAN = re.compile(r"[\u4e00-\u9fff]")


def test_a_source_no_longer_allowed_at_access_is_refused_in_our_words_translated(nodes):
    """A file moved outside the data root, an upstream no longer on the allowed list, an upstream
    that is down: the consumer is told the rule (no path, host or port of ours); our access log
    keeps the detail with the sentences' message ids, and the console shows them in Chinese."""
    provider, consumer = nodes
    port = free_port()  # nothing listens there
    for name, address in (("moved", {"type": "file", "path": "later.csv"}),
                          ("unlisted", {"type": "http", "url": f"http://127.0.0.1:{port}/u"}),
                          ("gone-up", {"type": "http", "url": f"http://127.0.0.1:{port}/g"})):
        provider.api("POST", "/assets", {"id": name, "contentType": "text/csv", "dataAddress": address}, expect=201)
        provider.api("POST", "/offers", {"id": f"offer-{name}", "assetIds": [name], "accessPolicyId": "open",
                                         "contractPolicyId": "open"}, expect=201)
    _set_address(provider, "moved", {"type": "file", "path": "../secret-place/outside.csv"})
    _set_address(provider, "unlisted", {"type": "http", "url": "http://internal-only.example/u"})
    expected = {"moved": (403, "the asset's file is outside this node's data root: refused", "../secret-place",
                          "該資產的檔案 '../secret-place/outside.csv' 在本節點的數據根目錄之外：拒絕"),
                "unlisted": (403, "the asset's HTTP source is not allowed by this node's rules: refused",
                             "internal-only.example", "本節點的規則（[dataplane] upstream_hosts、[dsp] "
                             "allowed_destinations）不容許該資產的 HTTP 來源 'http://internal-only.example/u'：拒絕"),
                "gone-up": (502, "the asset's data source is unavailable", str(port), "該資產的數據來源無法使用：")}
    pages = {}
    for name, (status, told, ours_only, chinese) in expected.items():
        row = transfer(consumer, agree(consumer, provider, name), "STARTED")
        refused = data(consumer, row["id"])
        assert refused.status_code == status and refused.json()["reasons"] == [told], refused.text
        assert ours_only not in refused.text  # our path, host or port is not the consumer's business
        logged = _refusals(provider, row["providerPid"])
        assert len(logged) == 1 and logged[0]["reasonMessages"], logged
        assert ours_only in logged[0]["reasons"][0]  # our operator sees which path, host or error
        shown = _in("zh_Hant_HK", logged[0]["reasonMessages"])
        assert shown[0].startswith(chinese) and "refused" not in shown[0] and "unavailable" not in shown[0], shown
        assert HAN.search(_in("zh_Hans", logged[0]["reasonMessages"])[0])
        pages[name] = row["providerPid"]
    # the provider's console, in Traditional Chinese: the transfer's access log in its sentences
    client = _console(provider, "zh-HK")
    try:
        page = client.get(f"/console/transfers/{quote(pages['moved'], safe='')}").text
        assert "在本節點的數據根目錄之外：拒絕" in page and "outside this node's data root" not in page
        page = client.get(f"/console/transfers/{quote(pages['gone-up'], safe='')}").text
        assert "該資產的數據來源無法使用：" in page and "data source is unavailable" not in page
    finally:
        client.close()


def test_a_range_refused_is_logged_in_our_words_translated(nodes):
    provider, consumer = nodes
    (provider.directory / "data" / "ranged.csv").write_text("a,b\n1,2\n")
    provider.api("POST", "/assets", {"id": "ranged", "contentType": "text/csv",
                                     "dataAddress": {"type": "file", "path": "ranged.csv"}}, expect=201)
    provider.api("POST", "/offers", {"id": "offer-ranged", "assetIds": ["ranged"], "accessPolicyId": "open",
                                     "contractPolicyId": "open"}, expect=201)
    row = transfer(consumer, agree(consumer, provider, "ranged"), "STARTED")
    token = _pull_token(consumer, row["id"])
    for header, english, chinese in (("bytes=0-1,3-4", "only a single byte range is supported", "只支援單一位元組範圍"),
                                     ("bytes=x-y", "malformed Range 'bytes=x-y'", "Range 'bytes=x-y' 格式錯誤"),
                                     ("bytes=500-", "range 'bytes=500-' is outside the 8 bytes",
                                      "範圍 'bytes=500-' 超出了這 8 個位元組")):
        resp = httpx.get(f"{provider.url}/data/{row['providerPid']}", timeout=30,
                         headers={"Authorization": f"Bearer {token}", "Range": header})
        assert resp.status_code == 416 and resp.json()["error"] == english, resp.text
        logged = _refusals(provider, row["providerPid"])[0]  # newest first
        assert logged["reasons"] == [english] and _in("zh_Hant_HK", logged["reasonMessages"]) == [chinese], logged


def test_a_computation_refused_at_transfer_start_is_logged_in_our_words_translated(nodes):
    """The compute service's refusals of an HKS-Compute transfer: an asset it cannot compute on, a
    policy without the terms of what may be computed. Stored with their message ids; the provider's
    console shows them in Chinese."""
    provider, consumer = nodes
    provider.api("POST", "/assets", {"id": "no-terms", "contentType": "text/csv",
                                     "dataAddress": {"type": "file", "path": "no-terms.csv"}}, expect=201)
    provider.api("POST", "/offers", {"id": "offer-no-terms", "assetIds": ["no-terms"], "accessPolicyId": "open",
                                     "contractPolicyId": "open"}, expect=201)
    cases = (("slow", "computations run over a CSV, Parquet or NDJSON file under the data root; this asset is "
                      "none of these", "計算只能在數據根目錄下的 CSV、Parquet 或 NDJSON 檔案上執行；此資產並非其中任何一種"),
             ("no-terms", "the agreement's policy has no hks:aggregate duty stating what may be computed: refused "
                          "(fail closed)", "協議的政策沒有列明可計算內容的 hks:aggregate 義務：拒絕（失效即關閉）"))
    for name, english, chinese in cases:
        agreement = agree(consumer, provider, name)
        ended = transfer(consumer, agreement, "TERMINATED", fmt="HKS-Compute")
        assert english in " ".join(ended["termination"]["reason"]), ended
        logged = [a for a in provider.api("GET", f"/access-log?agreementId={quote(agreement)}")
                  if a["stage"] == "transfer-start"]
        assert logged and logged[0]["reasons"] == [english], logged
        assert _in("zh_Hant_HK", logged[0]["reasonMessages"]) == [chinese]
        assert HAN.search(_in("zh_Hans", logged[0]["reasonMessages"])[0])
    client = _console(provider, "zh-HK")
    try:  # the dashboard's feed of accesses (a refused request leaves no transfer behind to show)
        page = client.get("/console/").text
        assert all(chinese in page for _, _, chinese in cases)
        assert "none of these" not in page and "stating what may be computed" not in page
    finally:
        client.close()
