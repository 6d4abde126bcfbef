"""Metrics (prometheus-client) of the node, the station and the clearing house, scraped from real
processes: requests are labelled by their route's pattern (never the raw path), token checks and
policy decisions by outcome, data-plane bytes by direction; the clearing house's append latency
and tree size; the names the hand-written exposition had are kept."""
from __future__ import annotations

import secrets

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import BACKENDS, database_url
from connector.clearinghouse.testing import ClearingHouseProcess, Participant
from support.nodes import NodeProcess, StationProcess

CSV = b"patient_id,name,age\np1,Alice,34\np2,Bob,51\n"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def request_count(found: dict, route: str, status: str, method: str = "POST") -> float:
    return value(found, "hks_http_request_duration_seconds_count", route=route, method=method, status=status)


@pytest.mark.slow
def test_node_metrics_by_route_outcome_and_direction(tmp_path):
    provider = NodeProcess(tmp_path / "provider", "Provider").start()
    consumer = NodeProcess(tmp_path / "consumer", "Consumer").start()
    try:
        (provider.directory / "data").mkdir(exist_ok=True)
        (provider.directory / "data" / "d.csv").write_bytes(CSV)
        provider.publish(data_address={"type": "file", "path": "d.csv"})
        consumer.catalog(provider)
        neg = consumer.wait_state(consumer.negotiate(provider)["id"])
        assert neg["state"] == "FINALIZED"
        started = consumer.api("POST", "/transfers", {"agreementId": neg["agreement"]["@id"]}, expect=201)
        consumer.api("GET", f"/transfers/{started['id']}?waitFor=STARTED&timeout=20", expect=200)
        data = httpx.get(consumer.url + f"/api/v1/transfers/{started['id']}/data", headers=consumer.headers(),
                         timeout=30)
        assert data.status_code == 200 and data.content == CSV
        # a raw id in a path, an unknown path and a bad token: none of the raw values may become a label
        secret_pid = "urn:leak:" + secrets.token_hex(8)
        unknown = "/nowhere-" + secrets.token_hex(8)
        assert httpx.get(provider.url + f"/dsp/2025-1/negotiations/{secret_pid}",
                         headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(provider.url + unknown).status_code == 404

        resp = httpx.get(provider.url + "/api/v1/metrics", headers=provider.headers(), timeout=30)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = resp.text
        assert secret_pid not in text and unknown not in text and "nope" not in text
        found = samples(text)
        assert request_count(found, "/dsp/2025-1/catalog/request", "200") >= 1
        assert request_count(found, "/dsp/2025-1/negotiations/{pid}", "401", method="GET") == 1
        assert request_count(found, "unmatched", "404", method="GET") == 1
        assert request_count(found, "/data/{tid}", "200", method="GET") == 1
        assert value(found, "hks_token_checks_total", outcome="accepted") >= 3  # catalog, request, verification...
        assert value(found, "hks_token_checks_total", outcome="refused") == 1
        assert value(found, "hks_policy_decisions_total", outcome="permit") >= 3
        assert value(found, "hks_dataplane_bytes_total", direction="served") == len(CSV)
        assert value(found, "hks_data_accesses_total", permitted="true") == 1
        assert value(found, "hks_negotiations", role="provider", state="FINALIZED") == 1
        assert value(found, "hks_outbox_dead_letters") == 0
        assert ("hks_outbox_lag_seconds", frozenset({("lane", "protocol")})) in found
        assert httpx.get(provider.url + "/api/v1/metrics").status_code == 401
    finally:
        consumer.stop()
        provider.stop()


@pytest.mark.slow
def test_station_metrics_count_token_checks_and_need_the_admin_token(tmp_path):
    station = StationProcess(tmp_path / "station").start()
    try:
        assert httpx.get(station.url + "/registry/search?q=x",
                         headers={"Authorization": "Bearer not-a-token"}).status_code == 401
        assert httpx.get(station.url + "/metrics").status_code == 401
        resp = httpx.get(station.url + "/metrics", headers={"Authorization": f"Bearer {station.admin_token}"})
        assert resp.status_code == 200
        found = samples(resp.text)
        assert value(found, "hks_token_checks_total", outcome="refused") == 1
        assert request_count(found, "/registry/search", "401", method="GET") == 1
        assert value(found, "hks_station_participants", status="active") == 0
        assert "not-a-token" not in resp.text
    finally:
        station.stop()


@pytest.mark.slow
def test_clearing_house_metrics_append_latency_and_tree_size(tmp_path):
    token = secrets.token_hex(16)
    secret = secrets.token_hex(16)
    house = ClearingHouseProcess(tmp_path / "ch", shared_secret=secret,
                                 env={"CONNECTOR_CH_CLEARINGHOUSE_METRICS_TOKEN": token})
    alice, bob = Participant("urn:alice", secret), Participant("urn:bob", secret)
    house.trust(alice)
    house.start()
    try:
        for _ in range(3):
            resp = httpx.post(house.url + "/entries", json={"jws": alice.sign(alice.entry(bob))},
                              headers=alice.headers(), timeout=30)
            assert resp.status_code == 201, resp.text
        assert httpx.get(house.url + "/metrics").status_code == 401
        assert httpx.get(house.url + "/metrics", headers={"Authorization": "Bearer " + "x" * 32}).status_code == 401
        resp = httpx.get(house.url + "/metrics", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200
        found = samples(resp.text)
        assert value(found, "hks_clearinghouse_append_duration_seconds_count") == 3
        assert value(found, "hks_clearinghouse_tree_size") == 3
        assert value(found, "hks_clearinghouse_entries_appended_total") == 3
        assert value(found, "hks_token_checks_total", outcome="accepted") == 3
        assert request_count(found, "/entries", "201") == 3
    finally:
        house.stop()


@pytest.mark.slow
def test_clearing_house_metrics_are_off_without_a_token(tmp_path):
    house = ClearingHouseProcess(tmp_path / "ch", shared_secret=secrets.token_hex(16)).start()
    try:
        assert httpx.get(house.url + "/metrics").status_code == 404
    finally:
        house.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_database_gauges_read_on_each_backend(backend, tmp_path):
    """The scrape-time queries (outbox lag per lane, dead letters by type) on SQLite and PostgreSQL."""
    import time
    import types

    import sqlalchemy as sa

    from connector.node.metrics import NodeMetrics, node_families
    from connector.store.db import Database
    from connector.store.tables import outbox

    async with database_url(backend, tmp_path) as url:
        db = Database(url)
        await db.migrate()
        now = time.time()
        row = {"process_id": "p", "url": "u", "body": {}, "next_attempt_at": now}
        await db.transaction(lambda c: c.execute(sa.insert(outbox), [
            {**row, "message_id": "m1", "kind": "ClearingHouseEntry:x", "recipient": None, "status": "pending",
             "created_at": now - 5},
            {**row, "message_id": "m2", "kind": "ContractRequestMessage", "recipient": "r", "status": "pending",
             "created_at": now - 60},
            {**row, "message_id": "m3", "kind": "ContractAgreementMessage:x", "recipient": "r", "status": "dead",
             "created_at": now}]))
        node = types.SimpleNamespace(db=db, clearinghouse=None, negotiations=types.SimpleNamespace(notifier=[]),
                                     transfers=types.SimpleNamespace(notifier=[]))
        found = samples(NodeMetrics().render(await node_families(node)).body.decode())
        assert 60 <= value(found, "hks_outbox_lag_seconds", lane="protocol") < 600
        assert 5 <= value(found, "hks_outbox_lag_seconds", lane="clearinghouse") < 60
        assert value(found, "hks_outbox_dead_letters", kind="ContractAgreementMessage") == 1
        await db.dispose()
