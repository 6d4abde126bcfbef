"""Traces and logs across processes: with [telemetry] otlp_endpoint set, one negotiation is ONE
trace that spans the consumer, the provider and the clearing house, each
a real process exporting over OTLP/HTTP to a real receiver in this test process; with
[telemetry] log_format = "json", every log line is a JSON object with the request id, process id
and trace id."""
import json
import time

import httpx
import pytest

from connector.clearinghouse.testing import ClearingHouseProcess
from support.logged_pair import start_logged_pair
from support.nodes import SHARED_SECRET, NodeProcess, free_port
from support.otlp import Receiver

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    base = tmp_path_factory.mktemp("otel")
    receiver = Receiver()
    telemetry = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # the SDK's own setting: export every 0.2 s
    port = free_port()
    ch = ClearingHouseProcess(base / "ch", shared_secret=SHARED_SECRET, port=port,
                              env={**telemetry, "CONNECTOR_CH_TELEMETRY_OTLP_ENDPOINT": receiver.url,
                                   "CONNECTOR_CH_TELEMETRY_LOG_FORMAT": "json"})
    env = {**telemetry, "CONNECTOR_CLEARINGHOUSE_URL": f"http://127.0.0.1:{port}",
           "CONNECTOR_CLEARINGHOUSE_VERIFIER_KEY": ch.verifier_key,
           "CONNECTOR_CLEARINGHOUSE_AUDIENCE": ch.audience,
           "CONNECTOR_TELEMETRY_OTLP_ENDPOINT": receiver.url, "CONNECTOR_TELEMETRY_LOG_FORMAT": "json"}
    provider = NodeProcess(base / "provider", "Provider", jurisdiction="HK",
                           env={**env, "CONNECTOR_TELEMETRY_SERVICE_NAME": "provider"})
    consumer = NodeProcess(base / "consumer", "Consumer", jurisdiction="HK",
                           env={**env, "CONNECTOR_TELEMETRY_SERVICE_NAME": "consumer"})
    start_logged_pair(ch, provider, consumer)
    try:
        yield receiver, ch, provider, consumer
    finally:
        for process in (consumer, provider, ch):
            process.stop()
        receiver.close()


def test_one_negotiation_is_one_trace_across_both_nodes_and_the_clearing_house(traced):
    receiver, ch, provider, consumer = traced
    neg = consumer.wait_state(consumer.negotiate(provider, "visits", "offer")["id"])
    assert neg["state"] == "FINALIZED"
    started = consumer.api("POST", "/transfers", {"agreementId": neg["agreement"]["@id"]}, expect=201)
    assert consumer.api("GET", f"/transfers/{started['id']}?waitFor=STARTED&timeout=20")["state"] == "STARTED"
    wanted = {"consumer", "provider", "connector-clearinghouse"}

    def trace_of(start: str) -> list[dict]:
        """The spans of the trace that the consumer's management request `start` began."""
        with receiver.lock:
            spans = list(receiver.spans)
        first = [s for s in spans if s["service"] == "consumer" and s["name"] == start]
        assert len(first) <= 1, first
        return [s for s in spans if first and s["trace"] == first[0]["trace"]]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(wanted <= {s["service"] for s in trace_of(start)}
               for start in ("POST /api/v1/negotiations", "POST /api/v1/transfers")):
            break
        time.sleep(0.3)
    # the negotiation's trace: the consumer's request that started it, the provider's DSP endpoints,
    # the consumer's endpoints the provider called back, the clearing house's appends, one trace id
    names = {(s["service"], s["name"]) for s in trace_of("POST /api/v1/negotiations")}
    assert ("provider", "POST /dsp/2025-1/negotiations/request") in names, names
    assert ("consumer", "POST /dsp/2025-1/negotiations/{pid}/agreement") in names, names
    assert ("connector-clearinghouse", "POST /entries") in names, names
    # and the transfer's, begun by its own management request
    names = {(s["service"], s["name"]) for s in trace_of("POST /api/v1/transfers")}
    assert ("provider", "POST /dsp/2025-1/transfers/request") in names, names
    assert {service for service, _ in names} == wanted, names
    assert all(s["path"] == "/v1/traces" for s in receiver.spans)


def test_every_json_log_line_names_request_process_and_trace(traced):
    _, ch, provider, consumer = traced
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    # a pull with a forged token, in a trace the caller started: the provider refuses it and logs why
    token = "forged-pull-token-0123456789"
    resp = httpx.get(f"{provider.url}/data/urn:uuid:some-transfer", timeout=10,
                     headers={"Authorization": f"Bearer {token}", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert resp.status_code in (401, 403, 404) and len(resp.headers["X-Request-Id"]) == 32
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "access refused" not in provider.log_path.read_text():
        time.sleep(0.2)
    docs = []
    for node in (provider, consumer):
        lines = [line for line in node.log_path.read_text().splitlines() if line.strip()]
        assert lines and all(line.startswith("{") for line in lines), lines[:3]
        docs += [json.loads(line) for line in lines]
    for doc in docs:
        assert {"time", "level", "logger", "message", "request_id", "process_id", "trace_id"} <= doc.keys()
    refusal = [d for d in docs if "access refused" in d["message"]]
    assert len(refusal) == 1, [d["message"] for d in docs]
    assert refusal[0]["request_id"] == resp.headers["X-Request-Id"]
    assert refusal[0]["process_id"] == "urn:uuid:some-transfer"
    assert refusal[0]["trace_id"] == trace_id
    for node in (provider, consumer):
        text = node.log_path.read_text()
        assert SHARED_SECRET not in text and node.settings.management_api_key not in text
        assert token not in text
