"""The node audits the receipts it keeps (issue 11, finding 7): the clearing house's SQLite file
is edited under a running log (an entry changed; one deleted; two swapped) and the node's audit
names the first bad entry each time, in its answer, at GET /api/v1/clearinghouse, in
/api/v1/metrics and in its log; an untampered log passes. The scheduled audit finds an edit
on its own. Real processes: a clearing house and two nodes."""
import json
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from connector.clearinghouse.testing import ClearingHouseProcess
from support.nodes import SHARED_SECRET, NodeProcess

pytestmark = pytest.mark.slow
COLS = "seq, leaf_hash, process_id, event, submitter, entry, protected, signature, received_at"


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    base = tmp_path_factory.mktemp("audit")
    ch = ClearingHouseProcess(base / "ch", shared_secret=SHARED_SECRET)
    ch.start()
    env = {"CONNECTOR_CLEARINGHOUSE_URL": ch.url, "CONNECTOR_CLEARINGHOUSE_VERIFIER_KEY": ch.verifier_key,
           "CONNECTOR_CLEARINGHOUSE_AUDIENCE": ch.audience}
    # the provider audits on a schedule, 2 receipts a run; the consumer on demand only
    provider = NodeProcess(base / "provider", "Provider", env={**env, "CONNECTOR_CLEARINGHOUSE_AUDIT_INTERVAL": "1",
                                                               "CONNECTOR_CLEARINGHOUSE_AUDIT_BATCH": "2"})
    consumer = NodeProcess(base / "consumer", "Consumer", env={**env, "CONNECTOR_CLEARINGHOUSE_AUDIT_INTERVAL": "0"})
    for node in (provider, consumer):
        subprocess.run([sys.executable, "-m", "connector", "clearinghouse", "trust", str(ch.directory),
                        "--node", str(node.directory)], check=True, capture_output=True)
    provider.start()
    consumer.start()
    provider.publish()
    db = None
    try:
        negotiations = []
        for _ in range(3):
            neg = consumer.wait_state(consumer.negotiate(provider)["id"])
            assert neg["state"] == "FINALIZED"
            negotiations.append(neg)
        for node in (provider, consumer):
            wait_logged(node)
        db = sqlite3.connect(ch.sqlite_path, timeout=30, isolation_level=None)
        yield ch, provider, consumer, db
    finally:
        if db is not None:
            db.close()
        for process in (consumer, provider, ch):
            process.stop()


def wait_logged(node, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (status := node.api("GET", "/clearinghouse"))["pending"] or not status["receipts"]:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


def kept_indices(node) -> list[int]:
    """Leaf indices of the entries this node logged (its receipts), from the clearing house's own table."""
    db = sqlite3.connect(f"file:{node.directory / 'node.db'}?mode=ro", uri=True)
    try:
        return sorted({i for (i,) in db.execute("SELECT leaf_index FROM ch_receipts")})
    finally:
        db.close()


def audit(node) -> dict:
    resp = httpx.post(node.url + "/api/v1/clearinghouse/audit", headers=node.headers(), timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def metrics(node) -> str:
    return httpx.get(node.url + "/api/v1/metrics", headers=node.headers(), timeout=30).text


def assert_names(node, outcome: dict, index: int) -> None:
    assert outcome["ok"] is False and outcome["firstBadEntry"]["leafIndex"] == index, outcome
    status = node.api("GET", "/clearinghouse")
    assert not status["consistent"] and f"first bad entry #{index} " in status["alarm"], status
    assert status["audit"]["firstBadEntry"]["leafIndex"] == index
    text = metrics(node)
    assert f"hks_clearinghouse_audit_first_bad_entry {index}" in text and "hks_clearinghouse_consistent 0" in text
    assert "hks_clearinghouse_audit_ok 0" in text
    assert f"first bad entry #{index} " in node.log_path.read_text()


def assert_passes(node) -> dict:
    outcome = audit(node)
    assert outcome["ok"] and outcome["complete"] and outcome["firstBadEntry"] is None, outcome
    assert outcome["checked"] == len(kept_indices(node))
    return outcome


def test_the_nodes_audit_names_the_first_edited_deleted_or_swapped_entry(logged):
    ch, provider, consumer, db = logged
    mine = kept_indices(consumer)
    assert len(mine) >= 6, mine
    # untampered: passes, and says so in the metrics
    assert_passes(consumer)
    assert consumer.api("GET", "/clearinghouse")["consistent"]
    assert "hks_clearinghouse_audit_ok 1" in metrics(consumer)

    # an entry changed
    k = mine[2]
    (original,) = db.execute("SELECT entry FROM ch_entries WHERE seq = ?", (k,)).fetchone()
    changed = json.loads(original)
    changed["sha256"] = "0" * 64
    db.execute("UPDATE ch_entries SET entry = ? WHERE seq = ?",
               (json.dumps(changed, separators=(",", ":"), sort_keys=True), k))
    outcome = audit(consumer)
    assert_names(consumer, outcome, k)
    assert "not the entry this node logged" in outcome["firstBadEntry"]["reason"]
    assert outcome["firstBadEntry"]["processId"].startswith("urn:uuid:")
    db.execute("UPDATE ch_entries SET entry = ? WHERE seq = ?", (original, k))
    assert_passes(consumer)

    # an entry deleted
    k = mine[1]
    row = db.execute(f"SELECT {COLS} FROM ch_entries WHERE seq = ?", (k,)).fetchone()
    db.execute("DELETE FROM ch_entries WHERE seq = ?", (k,))
    outcome = audit(consumer)
    assert_names(consumer, outcome, k)
    assert "missing" in outcome["firstBadEntry"]["reason"]
    db.execute(f"INSERT INTO ch_entries ({COLS}) VALUES ({', '.join('?' * 9)})", row)
    assert_passes(consumer)

    # two entries swapped
    i, j = mine[3], mine[-1]
    cols = "leaf_hash, process_id, event, submitter, entry, protected, signature, received_at"
    row_i = db.execute(f"SELECT {cols} FROM ch_entries WHERE seq = ?", (i,)).fetchone()
    row_j = db.execute(f"SELECT {cols} FROM ch_entries WHERE seq = ?", (j,)).fetchone()
    sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    db.execute("BEGIN")
    db.execute("UPDATE ch_entries SET leaf_hash = ? WHERE seq = ?", (b"\0" * 32, i))
    db.execute(f"UPDATE ch_entries SET {sets} WHERE seq = ?", (*row_i, j))
    db.execute(f"UPDATE ch_entries SET {sets} WHERE seq = ?", (*row_j, i))
    db.execute("COMMIT")
    outcome = audit(consumer)
    assert_names(consumer, outcome, i)
    db.execute("BEGIN")
    db.execute("UPDATE ch_entries SET leaf_hash = ? WHERE seq = ?", (b"\0" * 32, i))
    db.execute(f"UPDATE ch_entries SET {sets} WHERE seq = ?", (*row_j, j))
    db.execute(f"UPDATE ch_entries SET {sets} WHERE seq = ?", (*row_i, i))
    db.execute("COMMIT")
    assert_passes(consumer)
    # the alarm stays raised (an operator looks into it) even though the log now verifies again
    assert not consumer.api("GET", "/clearinghouse")["consistent"]


def test_the_scheduled_audit_finds_an_edited_entry_on_its_own(logged):
    ch, provider, consumer, db = logged
    mine = kept_indices(provider)
    # the schedule has been running (2 receipts a run, going on where it stopped), all clean so far
    deadline = time.monotonic() + 30
    while not ((status := provider.api("GET", "/clearinghouse"))["audit"] or {}).get("ok"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["consistent"] and status["audit"]["scope"] == "batch" and status["audit"]["checked"] <= 2
    k = mine[-2]
    (original,) = db.execute("SELECT entry FROM ch_entries WHERE seq = ?", (k,)).fetchone()
    changed = json.loads(original)
    changed["sha256"] = "f" * 64
    db.execute("UPDATE ch_entries SET entry = ? WHERE seq = ?",
               (json.dumps(changed, separators=(",", ":"), sort_keys=True), k))
    deadline = time.monotonic() + 60
    while (status := provider.api("GET", "/clearinghouse"))["consistent"]:
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    assert f"first bad entry #{k} " in status["alarm"], status
    assert "CLEARING HOUSE ALARM" in provider.log_path.read_text()
    assert f"hks_clearinghouse_audit_first_bad_entry {k}" in metrics(provider)


def test_an_audit_that_cannot_reach_the_log_verifies_nothing_and_says_so(logged):
    ch, provider, consumer, db = logged
    ch.stop()  # the last test of the module: the clearing house stays down
    before = consumer.api("GET", "/clearinghouse")
    resp = httpx.post(consumer.url + "/api/v1/clearinghouse/audit", headers=consumer.headers(), timeout=60)
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["audit"]["ok"] is False and body["audit"]["complete"] is False and body["audit"]["checked"] == 0
    assert "nothing was verified" in body["error"] and "127.0.0.1" not in resp.text
    after = consumer.api("GET", "/clearinghouse")
    assert after["alarm"] == before["alarm"]  # unreachable is not tampering: no new alarm
    assert "hks_clearinghouse_audit_ok 0" in metrics(consumer)
