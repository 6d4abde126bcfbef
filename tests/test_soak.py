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
    assert result["dsp_deliveries_at_proxy"] >= 4 * 24, result  # the proxy saw every negotiation's 4 messages


def _soak_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("soak_bench", SOAK)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("soak_bench", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_proxy_count_names_a_message_delivered_twice_by_live_dispatchers_a_duplicate():
    """The soak's duplicate rule (pure): a message accepted twice is a duplicate unless the dispatcher
    that delivered it first was killed before it could mark it sent (it never sends again)."""
    soak = _soak_module()

    def proxy(*deliveries):
        p = soak.Proxy("test", [], port=0)
        for key, dispatcher, at in deliveries:
            p.deliveries.append(soak.Delivery(key, "ContractAgreementMessage", dispatcher, 200, at, at + 0.1, True))
            p.dispatcher_seen[dispatcher] = max(p.dispatcher_seen.get(dispatcher, 0.0), at)
        return p

    # two live replicas: A delivers, B delivers the same message again, A goes on sending
    live = proxy(("m1", "A", 1.0), ("m1", "B", 5.0), ("m2", "A", 9.0))
    assert soak.count_duplicates([live], kill_times=[3.0])[:2] == (1, 0)
    # the same dispatcher twice: a duplicate whatever was killed
    again = proxy(("m1", "A", 1.0), ("m1", "A", 5.0))
    assert soak.count_duplicates([again], kill_times=[3.0])[:2] == (1, 0)
    # A killed after the peer's answer and before its sent mark: B's re-send is at-least-once, not a duplicate
    crashed = proxy(("m1", "A", 1.0), ("m1", "B", 5.0), ("m2", "B", 9.0))
    assert soak.count_duplicates([crashed], kill_times=[1.5])[:2] == (0, 1)
    # ... but only with a kill between the two deliveries
    assert soak.count_duplicates([crashed], kill_times=[7.0])[:2] == (1, 0)
