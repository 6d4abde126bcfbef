"""Nodes log every protocol event and data access at a real clearing-house process: the
receipts they keep verify, a logging duty holds the data until the log has accepted the
entry, an unreachable clearing house delays the log without losing entries or blocking
negotiations, and `connector audit verify` accepts what the nodes logged."""
import subprocess
import sys
import time

import httpx
import pytest

from connector.clearinghouse.testing import TEST_AUDIENCE, ClearingHouseProcess
from support.logged_pair import start_logged_pair
from support.nodes import SHARED_SECRET, NodeProcess, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    base = tmp_path_factory.mktemp("ch")
    port = free_port()  # fixed, so that a restarted clearing house is where the nodes expect it
    ch = ClearingHouseProcess(base / "ch", shared_secret=SHARED_SECRET, port=port)
    env = {"CONNECTOR_CLEARINGHOUSE_URL": f"http://127.0.0.1:{port}",
           "CONNECTOR_CLEARINGHOUSE_VERIFIER_KEY": ch.verifier_key,
           "CONNECTOR_CLEARINGHOUSE_AUDIENCE": ch.audience,
           # peers' messages are given up after 5 s; clearing-house entries never
           "CONNECTOR_OUTBOX_MESSAGE_DEADLINE_SECONDS": "5", "CONNECTOR_OUTBOX_RETRY_MAX_SECONDS": "2"}
    provider = NodeProcess(base / "provider", "Provider", jurisdiction="CN-GD-GZ", env=env)
    consumer = NodeProcess(base / "consumer", "Consumer", jurisdiction="HK", env=env)
    start_logged_pair(ch, provider, consumer)
    try:
        yield ch, provider, consumer
    finally:
        for process in (consumer, provider, ch):
            process.stop()


def wait_logged(node, minimum: int, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = node.api("GET", "/clearinghouse", expect=200)
        if (status["pending"] == 0 and status["receipts"] >= minimum) or time.monotonic() > deadline:
            return status


def negotiate_and_pull(provider, consumer):
    neg = consumer.wait_state(consumer.negotiate(provider, "visits", "offer")["id"])
    assert neg["state"] == "FINALIZED"
    started = consumer.api("POST", "/transfers", {"agreementId": neg["agreement"]["@id"]}, expect=201)
    row = consumer.api("GET", f"/transfers/{started['id']}?waitFor=STARTED&timeout=20", expect=200)
    assert row["state"] == "STARTED"
    return neg, row


def test_events_and_accesses_are_logged_with_verified_receipts(station):
    ch, provider, consumer = station
    neg, transfer = negotiate_and_pull(provider, consumer)
    data = httpx.get(f"{consumer.url}/api/v1/transfers/{transfer['id']}/data", headers=consumer.headers(), timeout=30)
    assert data.status_code == 200 and data.text.startswith("patient_id")  # the log accepted the access first
    provider_status = wait_logged(provider, 6)
    consumer_status = wait_logged(consumer, 6)
    for status in (provider_status, consumer_status):
        assert status["consistent"] and status["pending"] == 0 and status["checkpointSize"] > 0
    metrics = httpx.get(provider.url + "/api/v1/metrics", headers=provider.headers()).text
    assert "hks_clearinghouse_consistent 1" in metrics and 'hks_data_accesses_total{permitted="true"}' in metrics
    assert httpx.get(provider.url + "/api/v1/metrics").status_code == 401
    events = [r["event"] for r in consumer.api("GET", f"/negotiations/{neg['id']}/receipts")]
    assert {"negotiation.requested", "negotiation.agreed", "negotiation.verified", "negotiation.finalized"} <= set(events)
    theirs = [n for n in provider.api("GET", "/negotiations") if n["consumerPid"] == neg["consumerPid"]][0]
    accessed = [r["event"] for r in provider.api("GET", f"/transfers/{transfer['providerPid']}/receipts")]
    assert "data.accessed" in accessed and "transfer.started" in accessed
    # an auditor-free check from outside: a party verifies its process against the log's key alone
    token_file = provider.directory / "audit.token"
    token_file.write_text(_token(provider))
    result = subprocess.run([sys.executable, "-m", "connector", "audit", "verify", "--clearinghouse", ch.url,
                             "--process", theirs["id"], "--key", ch.verifier_key,
                             "--keys", str(ch.directory / "participants"), "--token-file", str(token_file)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_refused_transfer_request_is_logged_by_the_provider(station):
    """No process exists after a refusal, but the refusal is logged, under the consumer's pid;
    a pid too long for the log still gets the refusal itself."""
    import json

    from connector.identity import DevSharedSecret

    _, provider, consumer = station
    token = "Bearer " + DevSharedSecret(consumer.participant_id, SHARED_SECRET).token_for(
        consumer.participant_id, audience=provider.participant_id)
    for consumer_pid, code in (("urn:uuid:refused-transfer-1", "UnknownAgreement"),
                               ("urn:uuid:" + "x" * 300, "InvalidId")):  # over the id rule: refused at parsing
        body = json.dumps({
            "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": "TransferRequestMessage",
            "consumerPid": consumer_pid, "agreementId": "urn:uuid:no-such-agreement", "format": "HttpData-PULL",
            "callbackAddress": consumer.url + "/dsp/2025-1"}).encode()
        resp = httpx.post(f"{provider.url}/dsp/2025-1/transfers/request", content=body,
                          headers={"Authorization": token, "Content-Type": "application/json"})
        assert resp.status_code == 400 and resp.json()["code"] == code, resp.text
    deadline = time.monotonic() + 30
    while not (receipts := provider.api("GET", "/transfers/urn:uuid:refused-transfer-1/receipts")):
        assert time.monotonic() < deadline, "the refusal was not logged"
        time.sleep(0.2)
    assert [r["event"] for r in receipts] == ["transfer.refused"]
    assert receipts[0]["receipt"]["inclusionProof"] is not None  # a receipt the node verified
    assert wait_logged(provider, 1)["pending"] == 0  # the unloggable one left nothing queued


def _entry_attempts(node) -> dict:
    """The most attempts of a pending clearing-house entry in the node's outbox, and how many were given up."""
    import sqlite3
    db = sqlite3.connect(f"file:{node.directory / 'node.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT status, attempts FROM outbox WHERE kind LIKE 'ClearingHouseEntry:%'").fetchall()
    finally:
        db.close()
    return {"pending": max((a for s, a in rows if s == "pending"), default=0),
            "failed": sum(1 for s, _ in rows if s in ("failed", "dead"))}


def _token(node):
    from connector.identity import DevSharedSecret
    return "Bearer " + DevSharedSecret(node.participant_id, SHARED_SECRET).token_for(node.participant_id,
                                                                                     audience=TEST_AUDIENCE)


def test_an_unreachable_clearing_house_delays_the_log_and_holds_logged_data(station):
    ch, provider, consumer = station
    ch.stop()
    try:
        neg, transfer = negotiate_and_pull(provider, consumer)  # negotiations do not wait for the log
        refused = httpx.get(f"{consumer.url}/api/v1/transfers/{transfer['id']}/data", headers=consumer.headers(),
                            timeout=30)
        assert refused.status_code == 403
        assert any("did not accept the entry" in r for r in refused.json()["reasons"]), refused.json()
        assert consumer.api("GET", "/clearinghouse")["pending"] > 0
        # several attempts, and the entries still wait: they have no deadline ([outbox] clearinghouse_deadline_seconds = 0)
        deadline = time.monotonic() + 60
        while (tries := _entry_attempts(consumer))["pending"] < 3:
            assert not tries["failed"], "a clearing-house entry was given up"
            assert time.monotonic() < deadline, tries
            time.sleep(0.5)
    finally:
        ch.start()
    status = wait_logged(consumer, 1, timeout=90)
    assert status["pending"] == 0 and status["consistent"], status
    data = httpx.get(f"{consumer.url}/api/v1/transfers/{transfer['id']}/data", headers=consumer.headers(), timeout=30)
    assert data.status_code == 200


def test_a_rewritten_log_raises_the_nodes_alarm(station):
    """The operator truncates the log and re-signs it (it holds the log key); the nodes'
    next receipts are not consistent with the newest checkpoint they saw."""
    import json
    import sqlite3

    from connector.clearinghouse.store import node_id
    from connector.ledger.checkpoint import parse_signer_key, sign_checkpoint
    from connector.ledger.merkle import CompactTree

    ch, provider, consumer = station
    negotiate_and_pull(provider, consumer)
    before = wait_logged(consumer, 1)
    assert before["consistent"] and before["checkpointSize"] > 4
    keep = 3
    ch.stop()
    db = sqlite3.connect(ch.sqlite_path, isolation_level=None)
    db.execute("BEGIN")
    db.execute("DELETE FROM ch_entries WHERE seq >= ?", (keep,))
    db.execute("DELETE FROM ch_processes WHERE first_seq >= ?", (keep,))
    db.execute("DELETE FROM ch_checkpoints WHERE size > ?", (keep,))
    db.execute("DELETE FROM ch_nodes")
    tree = CompactTree()
    for (leaf,) in db.execute("SELECT leaf_hash FROM ch_entries ORDER BY seq").fetchall():
        index, completed = tree.append_with_nodes(bytes(leaf))
        db.execute("INSERT INTO ch_nodes (id, hash) VALUES (?, ?)", (2 * index, bytes(leaf)))
        for start, level, h in completed:
            db.execute("INSERT INTO ch_nodes (id, hash) VALUES (?, ?)", (node_id(start, level), h))
    name, key = parse_signer_key((ch.directory / "keys" / "log.key").read_text().strip())
    note = sign_checkpoint(name, keep, tree.root(), key, name)
    db.execute("UPDATE ch_tree_state SET size = ?, frontier = ?, root = ?, checkpoint = ? WHERE id = 1",
               (keep, json.dumps(tree.to_state()), tree.root(), note))
    db.execute("INSERT OR REPLACE INTO ch_checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
               (keep, tree.root(), note, time.time()))
    db.execute("COMMIT")
    db.close()
    ch.start()
    negotiate_and_pull(provider, consumer)  # new entries, receipts from the rewritten log
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = consumer.api("GET", "/clearinghouse")
        if not status["consistent"]:
            break
        time.sleep(0.2)
    assert not status["consistent"] and "not append-only" in status["alarm"], status
    assert "CLEARING HOUSE ALARM" in (consumer.directory / "node.log").read_text()
    metrics = httpx.get(consumer.url + "/api/v1/metrics",
                        headers={"Authorization": f"Bearer {consumer.settings.management_api_key}"}).text
    assert "hks_clearinghouse_consistent 0" in metrics
