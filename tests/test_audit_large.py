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
