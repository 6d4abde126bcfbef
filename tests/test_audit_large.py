"""An untampered log larger than one read of the socket verifies: answers are read to EOF, not truncated."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import httpx
import pytest

from connector.clearinghouse.testing import ClearingHouseProcess, Participant

pytestmark = pytest.mark.slow
SECRET = "audit-large-" + secrets.token_hex(8)
AUDITOR = "urn:hks:participant:auditor"


def test_audit_verify_all_reads_a_large_log_whole(tmp_path):
    ch = ClearingHouseProcess(tmp_path / "ch", shared_secret=SECRET, auditors=[AUDITOR])
    a, b = Participant("urn:hks:participant:pearl", SECRET), Participant("urn:hks:participant:harbour", SECRET)
    for p in (a, b):
        ch.trust(p)
    ch.start()
    try:
        with httpx.Client(timeout=30) as client:
            for _ in range(400):  # 240 entries already failed as "answer is not a JSON object"
                r = client.post(ch.url + "/entries", json={"jws": a.sign(a.entry(b))}, headers=a.headers())
                assert r.status_code == 201, r.text
        env = {**os.environ, "CONNECTOR_AUDIT_TOKEN": Participant(AUDITOR, SECRET).token}
        done = subprocess.run([sys.executable, "-m", "connector", "audit", "verify", "--clearinghouse", ch.url,
                               "--key", str(ch.directory / "log.pub"), "--keys", str(ch.directory / "participants"),
                               "--all", "--quiet"], env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "verdict: OK: 400 entries of the whole log" in done.stdout
    finally:
        ch.stop()


def test_audit_verify_all_passes_on_a_5000_entry_log(tmp_path):
    """The done-when asks for 100,000 entries (bench/audit_large.py; too slow for CI): 5,000 here,
    five pages of the listing, every signature checked and the root recomputed."""
    from connector.clearinghouse.testing import fill_log

    ch = ClearingHouseProcess(tmp_path / "ch", shared_secret=SECRET, auditors=[AUDITOR])
    parties = [Participant("urn:hks:participant:pearl", SECRET), Participant("urn:hks:participant:harbour", SECRET)]
    for p in parties:
        ch.trust(p)
    fill_log(ch.directory, parties, 5000)
    ch.start()
    try:
        env = {**os.environ, "CONNECTOR_AUDIT_TOKEN": Participant(AUDITOR, SECRET).token}
        done = subprocess.run([sys.executable, "-m", "connector", "audit", "verify", "--clearinghouse", ch.url,
                               "--key", str(ch.directory / "log.pub"), "--keys", str(ch.directory / "participants"),
                               "--all", "--quiet"], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        assert "verdict: OK: 5000 entries of the whole log" in done.stdout
    finally:
        ch.stop()
