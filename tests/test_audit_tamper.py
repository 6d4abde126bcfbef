"""Tampering with a running clearing house's database is detected, naming the first bad entry,
by `connector audit verify` (a separate process, trusting only the log's public key) and by the
node's check of its kept receipts (connector.clearinghouse.client).

Cases: change an entry, delete one, reorder two, truncate the log (re-signed by the operator,
who holds the log key) and re-grow it."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.clearinghouse.client import ClearingHouseClient
from connector.clearinghouse.store import node_id
from connector.clearinghouse.testing import ClearingHouseProcess, Participant
from connector.clearinghouse.verify import LogVerificationError
from connector.ledger.checkpoint import parse_signer_key, sign_checkpoint
from connector.ledger.merkle import CompactTree

pytestmark = pytest.mark.slow
SECRET = "tamper-test-secret-" + secrets.token_hex(8)
AUDITOR = "urn:hks:participant:auditor"
N = 20


class Log:
    """A clearing house with N entries sent by `a` (to `b`) in three processes, the receipts `a`
    kept, and an auditor's saved checkpoint and state from a clean audit."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ch = ClearingHouseProcess(tmp / "ch", shared_secret=SECRET, auditors=[AUDITOR])
        self.a = Participant("urn:hks:participant:pearl", SECRET)
        self.b = Participant("urn:hks:participant:harbour", SECRET)
        self.auditor = Participant(AUDITOR, SECRET)
        for p in (self.a, self.b):
            self.ch.trust(p)
        self.ch.start()
        self.pids = [f"urn:uuid:{secrets.token_hex(16)}" for _ in range(3)]
        self.receipts = asyncio.run(self.submit(self.a, self.b, range(N)))
        assert [r.leaf_index for r in self.receipts] == list(range(N))
        self.checkpoint_file = tmp / "checkpoint.txt"
        self.checkpoint_file.write_text(self.receipts[-1].checkpoint)
        self.state_file = tmp / "audit-state.json"
        code, out = self.audit("--all", "--save", str(self.state_file))
        assert code == 0, out
        self.process_states = [tmp / f"process-{i}.json" for i in range(3)]  # what party `a` keeps per process
        for pid, path in zip(self.pids, self.process_states):
            code, out = self.audit("--process", pid, "--save", str(path), token=self.a.token)
            assert code == 0, out
        self.db = sqlite3.connect(self.ch.sqlite_path, timeout=30, isolation_level=None)

    async def submit(self, sender, other, numbers):
        async with ClearingHouseClient(self.ch.url, self.ch.verifier_key, authorization=sender.token) as client:
            return [await client.submit(sender.sign(sender.entry(other, process_id=self.pids[i % 3],
                                                                 event="data.accessed")))
                    for i in numbers]

    def audit(self, *args: str, token: str | None = None) -> tuple[int, str]:
        env = {**os.environ, "CONNECTOR_AUDIT_TOKEN": token or self.auditor.token}
        done = subprocess.run([sys.executable, "-m", "connector", "audit", "verify", "--clearinghouse", self.ch.url,
                               "--key", str(self.ch.directory / "log.pub"),
                               "--keys", str(self.ch.directory / "participants"), "--quiet", *args],
                              env=env, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout + done.stderr

    def node_check(self, remembered: str | None = None) -> LogVerificationError | None:
        async def check():
            async with ClearingHouseClient(self.ch.url, self.ch.verifier_key, authorization=self.a.token) as client:
                await client.check_receipts(self.receipts, remembered)
        try:
            asyncio.run(check())
        except LogVerificationError as exc:
            return exc
        return None

    def close(self) -> None:
        self.db.close()
        self.ch.stop()


@pytest.fixture
def log(tmp_path):
    log = Log(tmp_path)
    yield log
    log.close()


def verdict(out: str) -> str:
    return [line for line in out.splitlines() if line.startswith("verdict:")][-1]


def assert_names(log: Log, index: int, out: str, code: int) -> None:
    assert code == 1, out
    assert f"first bad entry #{index}:" in verdict(out), out


def test_untampered_log_passes_every_check(log):
    code, out = log.audit("--all", "--since", str(log.state_file))
    assert code == 0 and "verdict: OK: 20 entries" in out, out
    code, out = log.audit("--process", log.pids[1], "--since", str(log.checkpoint_file), token=log.a.token)
    assert code == 0 and "verdict: OK" in out, out
    assert log.node_check(log.receipts[-1].checkpoint) is None


def test_changed_entry_is_detected(log):
    k = 7
    (entry,) = log.db.execute("SELECT entry FROM ch_entries WHERE seq = ?", (k,)).fetchone()
    changed = json.loads(entry)
    changed["event"] = "data.accessed" if changed["event"] != "data.accessed" else "transfer.completed"
    changed["sha256"] = "0" * 64
    log.db.execute("UPDATE ch_entries SET entry = ? WHERE seq = ?",
                   (json.dumps(changed, separators=(",", ":"), sort_keys=True), k))
    code, out = log.audit("--all")
    assert_names(log, k, out, code)
    code, out = log.audit("--process", log.pids[k % 3], token=log.a.token)
    assert_names(log, k, out, code)
    assert "does not verify" in out and "not in the signed tree at index 7" in out
    problem = log.node_check()
    assert problem is not None and problem.index == k and "not the entry this node logged" in str(problem)


def test_deleted_entry_is_detected(log):
    k = 11
    log.db.execute("DELETE FROM ch_entries WHERE seq = ?", (k,))
    code, out = log.audit("--all")
    assert_names(log, k, out, code)
    assert "entry 11 is missing from the log" in out
    code, out = log.audit("--process", log.pids[k % 3], "--since", str(log.process_states[k % 3]), token=log.a.token)
    assert_names(log, k, out, code)
    assert "entry 11 was in the log before and is missing now" in out
    problem = log.node_check()
    assert problem is not None and problem.index == k and "missing" in str(problem)


def test_deleted_entry_with_the_rest_renumbered_is_detected(log):
    k = 4
    log.db.execute("DELETE FROM ch_entries WHERE seq = ?", (k,))
    for seq in range(k + 1, N):
        log.db.execute("UPDATE ch_entries SET seq = ? WHERE seq = ?", (seq - 1, seq))
    code, out = log.audit("--all")
    assert_names(log, k, out, code)
    problem = log.node_check()
    assert problem is not None and problem.index == k


def test_reordered_entries_are_detected(log):
    i, j = 5, 13
    cols = "leaf_hash, process_id, event, submitter, entry, protected, signature, received_at"
    row_i = log.db.execute(f"SELECT {cols} FROM ch_entries WHERE seq = ?", (i,)).fetchone()
    row_j = log.db.execute(f"SELECT {cols} FROM ch_entries WHERE seq = ?", (j,)).fetchone()
    sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    log.db.execute("BEGIN")
    log.db.execute("UPDATE ch_entries SET leaf_hash = ? WHERE seq = ?", (b"\0" * 32, i))
    log.db.execute(f"UPDATE ch_entries SET {sets} WHERE seq = ?", (*row_i, j))
    log.db.execute(f"UPDATE ch_entries SET {sets} WHERE seq = ?", (*row_j, i))
    log.db.execute("COMMIT")
    code, out = log.audit("--all")
    assert_names(log, i, out, code)
    assert "not in the signed tree at index 5" in out
    problem = log.node_check()
    assert problem is not None and problem.index == i


def rewrite_to(log: Log, k: int) -> None:
    """The operator truncates the log to k entries and re-signs a consistent tree (it holds the key)."""
    log.ch.stop()
    db = log.db
    db.execute("BEGIN")
    db.execute("DELETE FROM ch_entries WHERE seq >= ?", (k,))
    db.execute("DELETE FROM ch_processes WHERE first_seq >= ?", (k,))
    db.execute("DELETE FROM ch_checkpoints WHERE size > ?", (k,))
    db.execute("DELETE FROM ch_nodes")
    tree = CompactTree()
    for (leaf,) in db.execute("SELECT leaf_hash FROM ch_entries ORDER BY seq").fetchall():
        index, completed = tree.append_with_nodes(bytes(leaf))
        db.execute("INSERT INTO ch_nodes (id, hash) VALUES (?, ?)", (2 * index, bytes(leaf)))
        for start, level, h in completed:
            db.execute("INSERT INTO ch_nodes (id, hash) VALUES (?, ?)", (node_id(start, level), h))
    name, key = parse_signer_key((log.ch.directory / "keys" / "log.key").read_text().strip())
    note = sign_checkpoint(name, k, tree.root(), key, name)
    db.execute("UPDATE ch_tree_state SET size = ?, frontier = ?, root = ?, checkpoint = ? WHERE id = 1",
               (k, json.dumps(tree.to_state()), tree.root(), note))
    db.execute("INSERT OR REPLACE INTO ch_checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
               (k, tree.root(), note, time.time()))
    db.execute("COMMIT")
    log.ch.start()  # the rewritten log is internally consistent: the process accepts it


def test_truncated_and_regrown_log_is_detected(log):
    k = 9
    rewrite_to(log, k)
    # truncated: every entry it still shows verifies against its (re-signed) checkpoint ...
    code, out = log.audit("--all")
    assert code == 0, out
    # ... but not against the checkpoint the auditor kept
    code, out = log.audit("--all", "--since", str(log.checkpoint_file))
    assert_names(log, k, out, code)
    assert "the log shrank from 20 to 9 entries" in out
    # re-grown past the old size with other entries
    asyncio.run(log.submit(log.a, log.b, range(100, 100 + 15)))
    code, out = log.audit("--all", "--since", str(log.checkpoint_file))
    assert code == 1 and "not an append-only extension of the checkpoint of size 20" in verdict(out), out
    code, out = log.audit("--all", "--since", str(log.state_file))
    assert_names(log, k, out, code)
    assert "entry 9 differs from the one at that position before" in out
    code, out = log.audit("--process", log.pids[k % 3], "--since", str(log.process_states[k % 3]), token=log.a.token)
    assert_names(log, k, out, code)
    problem = log.node_check(log.receipts[-1].checkpoint)
    assert problem is not None and problem.index == k, problem
