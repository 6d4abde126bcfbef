"""A short seeded soak (bench/soak.py) as CI runs it: a clearing house, a consumer and a provider
as real processes (SQLite files), negotiations and pull transfers at concurrency 8 while a seeded
schedule SIGKILLs the nodes and restarts them on the same files, and the clearing house is down
longer than the nodes' longest retry step. After quiescence nothing is lost, nothing was applied
twice at the peer (every DSP message counted by its Idempotency-Key at the proxy in front of
each node), nothing is stuck or given up, and every event is in the clearing house's log."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


def run_soak(*args: str, timeout: float = 240) -> dict:
    done = subprocess.run([sys.executable, str(SOAK), *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_seeded_soak_with_kills_and_a_clearing_house_outage_loses_nothing_and_sends_nothing_twice():
    result = run_soak("--quick", "--seed", "7", "-n", "24", "-c", "8", "--kills", "3", "--ch-down", "8",
                      "--retry-max", "3")
    summary = {k: result[k] for k in ("disagreements", "duplicates_at_peer", "missing_log_entries", "dead_letters",
                                      "failed_messages", "quiescent", "kills", "finalized_both_sides")}
    details = {k: result[k] for k in ("disagreement_detail", "missing_detail", "duplicate_examples", "outbox",
                                      "outcomes", "receipt_audit")}
    assert result["kills"] == 3, result
    assert result["quiescent"], details
    assert (result["disagreements"], result["duplicates_at_peer"], result["missing_log_entries"],
            result["dead_letters"], result["failed_messages"]) == (0, 0, 0, 0, 0), (summary, details)
    assert result["finalized_both_sides"] == 24, (summary, details)
    assert all(a["ok"] for a in result["receipt_audit"].values()), details
    assert result["pulled"] == result["transfers"] > 0, result
