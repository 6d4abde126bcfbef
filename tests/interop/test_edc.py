"""A real Eclipse EDC runtime (control plane + data plane, iam-mock; coordinates in
tests/interop/edc/pom.xml) and a real node process in the test-only identity mode
`edc-iam-mock-test-only`, over DSP 2025-1 on loopback.

EDC as consumer, our node as provider: EDC reads our catalog, negotiates to FINALIZED, starts an
HttpData-PULL transfer; the EDR EDC publishes in its TransferProcessStarted event (EDC's own way of
handing a pull endpoint to the consumer's application; the EDR management API is not on Maven
Central at this version) fetches the asset's bytes from our data plane; EDC terminates. A policy
EDC's claims cannot satisfy ends at TERMINATED on EDC's side."""
from __future__ import annotations

import json
import time
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest

from support.edc import PROTOCOL, EdcRuntime
from support.interop import classpath, edc_mode_node, require_tools
from support.nodes import NodeProcess, free_port

pytestmark = pytest.mark.interop
HERE = Path(__file__).parent / "edc"
EDC_ID = "edc-interop-participant"
ASSET = b"id,visits\n" + b"".join(b"%d,%d\n" % (i, i * 7 % 101) for i in range(5000))
MEMBERS_ONLY = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "membership", "operator": "isAnyOf",
     "rightOperand": [{"@id": "https://w3id.org/hks/ns/StationMember"}]}]}]}


class Events:
    """Receives the events EDC posts to a transfer's callbackAddresses."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.arrived = threading.Condition()
        events = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(min(int(self.headers.get("content-length", 0)), 1 << 20))
                with events.arrived:
                    events.received.append(json.loads(body))
                    events.arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, kind: str, timeout: float = 30.0) -> dict:
        with self.arrived:
            assert self.arrived.wait_for(lambda: any(e["type"] == kind for e in self.received), timeout), \
                f"EDC sent no {kind} event; got {[e['type'] for e in self.received]}"
            return next(e for e in self.received if e["type"] == kind)


@pytest.fixture(scope="module")
def edc(tmp_path_factory):
    java = require_tools()
    lib, seconds = classpath(HERE, "edc")
    print(f"\nEDC class path fetched in {seconds:.0f} s")
    runtime = EdcRuntime(tmp_path_factory.mktemp("edc"), lib, java, EDC_ID).start()
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    node = edc_mode_node(tmp_path_factory.mktemp("ours"), "Ours").start()
    try:  # stopped even when the setup below fails
        data = node.directory / "data"
        data.mkdir(exist_ok=True)
        (data / "visits.csv").write_bytes(ASSET)
        node.api("POST", "/assets", {"id": "visits", "contentType": "text/csv",
                                     "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
        node.api("POST", "/policies", {"id": "use", "policy": {"permission": [{"action": "use"}]}}, expect=201)
        node.api("POST", "/policies", {"id": "members", "policy": MEMBERS_ONLY}, expect=201)
        node.api("POST", "/offers", {"id": "offer-visits", "assetIds": ["visits"], "accessPolicyId": "use",
                                     "contractPolicyId": "use"}, expect=201)
        node.api("POST", "/assets", {"id": "members-data", "contentType": "text/csv",
                                     "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
        node.api("POST", "/offers", {"id": "offer-members", "assetIds": ["members-data"], "accessPolicyId": "use",
                                     "contractPolicyId": "members"}, expect=201)
        yield node
    finally:
        node.stop()


def edc_offer(catalog: dict, dataset_id: str) -> dict:
    datasets = catalog.get("dataset") or catalog.get("dcat:dataset") or []
    datasets = datasets if isinstance(datasets, list) else [datasets]
    dataset = next(d for d in datasets if d.get("@id") == dataset_id)
    policy = dataset.get("hasPolicy") or dataset.get("odrl:hasPolicy")
    return policy[0] if isinstance(policy, list) else policy


def negotiate(edc: EdcRuntime, provider: NodeProcess, dataset_id: str) -> dict:
    dsp = provider.url + "/dsp/2025-1"
    catalog = edc.api("POST", "/v3/catalog/request", {"counterPartyAddress": dsp, "counterPartyId": provider.participant_id,
                                                      "protocol": PROTOCOL}, expect=200)
    offer = edc_offer(catalog, dataset_id)
    policy = {"@context": "http://www.w3.org/ns/odrl.jsonld", **{k: v for k, v in offer.items() if k != "@context"},
              "assigner": provider.participant_id, "target": dataset_id}
    neg = edc.api("POST", "/v3/contractnegotiations", {"@type": "ContractRequest", "counterPartyAddress": dsp,
                                                       "protocol": PROTOCOL, "policy": policy})
    return edc.wait(f"/v3/contractnegotiations/{neg['@id']}", "state", {"FINALIZED", "TERMINATED"})


def test_edc_consumer_negotiates_and_pulls_from_our_provider(edc, provider):
    negotiation = negotiate(edc, provider, "visits")
    assert negotiation["state"] == "FINALIZED", negotiation
    ours = [n for n in provider.api("GET", "/negotiations") if n.get("counterPartyId") == EDC_ID]
    assert any(n["state"] == "FINALIZED" for n in ours), ours

    events = Events()
    try:
        transfer = edc.api("POST", "/v3/transferprocesses", {
            "@type": "TransferRequest", "counterPartyAddress": provider.url + "/dsp/2025-1", "protocol": PROTOCOL,
            "contractId": negotiation["contractAgreementId"], "transferType": "HttpData-PULL",
            "callbackAddresses": [{"uri": events.url, "events": ["transfer.process"], "transactional": False}]})
        state = edc.wait(f"/v3/transferprocesses/{transfer['@id']}", "state", {"STARTED", "TERMINATED"})
        assert state["state"] == "STARTED", state
        edr = events.wait("TransferProcessStarted")["payload"]["dataAddress"]["properties"]
    finally:
        events.server.shutdown()
    endpoint = edr.get("endpoint") or edr.get("https://w3id.org/edc/v0.0.1/ns/endpoint")
    assert endpoint and endpoint.startswith(provider.url), edr
    resp = httpx.get(endpoint, headers={"Authorization": edr["authorization"]}, timeout=30)
    assert resp.status_code == 200 and resp.content == ASSET

    edc.api("POST", f"/v3/transferprocesses/{transfer['@id']}/terminate", {"@type": "TerminateTransfer", "reason": "done"})
    assert edc.wait(f"/v3/transferprocesses/{transfer['@id']}", "state", {"TERMINATED"})["state"] == "TERMINATED"
    ours = [t for t in provider.api("GET", "/transfers") if t["counterPartyId"] == EDC_ID]
    assert [t["state"] for t in ours] == ["TERMINATED"] and ours[0]["termination"]["by"] == "consumer"
    assert httpx.get(endpoint, headers={"Authorization": edr["authorization"]}, timeout=30).status_code in (401, 403, 409)


def test_edc_consumer_refused_by_our_policy_ends_terminated(edc, provider):
    negotiation = negotiate(edc, provider, "members-data")
    assert negotiation["state"] == "TERMINATED", negotiation
    ours = [n for n in provider.api("GET", "/negotiations") if n.get("datasetId") == "members-data"]
    assert ours and all(n["state"] == "TERMINATED" for n in ours), ours
    assert "membership" in json.dumps(negotiation.get("errorDetail", "")) + json.dumps(ours[0]["termination"])


class AssetServer:
    """The HTTP origin an EDC HttpData asset points at."""

    def __init__(self, payload: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/visits.csv"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_our_consumer_negotiates_and_pulls_from_edc_provider(edc, tmp_path):
    origin = AssetServer(ASSET[::-1])
    consumer = edc_mode_node(tmp_path / "consumer", "Consumer").start()
    try:
        edc.api("POST", "/v3/assets", {"@id": "edc-visits", "properties": {"name": "visits"},
                                       "dataAddress": {"@type": "DataAddress", "type": "HttpData", "baseUrl": origin.url}})
        edc.api("POST", "/v3/policydefinitions", {"@id": "edc-use", "policy": {
            "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "permission": [{"action": "use"}]}})
        edc.api("POST", "/v3/contractdefinitions", {"@id": "edc-cd", "accessPolicyId": "edc-use",
                                                    "contractPolicyId": "edc-use", "assetsSelector": []})
        found = consumer.api("POST", "/catalog/request", {"counterPartyAddress": edc.protocol}, expect=200)
        assert found["dspVersion"] == "2025-1"
        dataset = next(d for d in found["catalog"]["dataset"] if d["@id"] == "edc-visits")
        offer = dataset["hasPolicy"][0]  # EDC's ODRL as EDC writes it; its offer ids change per request
        neg = consumer.api("POST", "/negotiations", {"counterPartyAddress": edc.protocol, "counterPartyId": EDC_ID,
                                                     "datasetId": "edc-visits", "offer": offer}, expect=201)
        neg = consumer.wait_state(neg["id"], "FINALIZED,TERMINATED")
        assert neg["state"] == "FINALIZED", neg
        theirs = edc.api("POST", "/v3/contractnegotiations/request", {"@type": "QuerySpec"})
        assert [n["state"] for n in theirs if n.get("correlationId") == neg["id"]] == ["FINALIZED"], theirs

        agreement = next(a for a in consumer.api("GET", "/agreements") if a["negotiationId"] == neg["id"])
        transfer = consumer.api("POST", "/transfers", {"agreementId": agreement["id"], "format": "HttpData-PULL"},
                                expect=201)
        deadline = time.monotonic() + 30
        while transfer["state"] not in ("STARTED", "TERMINATED") and time.monotonic() < deadline:
            time.sleep(0.1)
            transfer = consumer.api("GET", f"/transfers/{transfer['id']}")
        assert transfer["state"] == "STARTED", transfer
        resp = httpx.get(f"{consumer.url}/api/v1/transfers/{transfer['id']}/data", headers=consumer.headers(), timeout=30)
        assert resp.status_code == 200 and resp.content == ASSET[::-1]

        # termination path: our consumer ends the transfer, EDC's provider sees it
        consumer.api("POST", f"/transfers/{transfer['id']}/terminate", {"reason": "done"}, expect=200)
        ended = edc.wait(f"/v3/transferprocesses/{transfer['providerPid']}", "state", {"TERMINATED", "DEPROVISIONED"})
        assert ended["state"] in ("TERMINATED", "DEPROVISIONED"), ended
    finally:
        consumer.stop()
        origin.server.shutdown()
