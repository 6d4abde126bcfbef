"""Long polls (`?waitFor=`) leave nothing behind in the Notifier once they return: memory is bounded
by the polls in flight, not by the processes ever polled (it used to keep ~4.8 KB per negotiation)."""
import asyncio

import httpx
import pytest

from connector.node.negotiations import Notifier, wait_for_state

STATES = ["REQUESTED", "OFFERED", "AGREED", "VERIFIED", "FINALIZED"]


async def _poll_through_every_state(notifier: Notifier, rows: dict, pid: str) -> dict:
    """A long poll for FINALIZED while the process moves through its states, one commit at a time."""
    rows[pid] = {"id": pid, "state": "REQUESTED", "version": 0}

    async def get(p):
        return dict(rows[p])

    poll = asyncio.create_task(wait_for_state(notifier, get, pid, {"FINALIZED", "TERMINATED"}, timeout=30))
    for version, state in enumerate(STATES[1:], 1):
        await asyncio.sleep(0)  # the poll waits
        rows[pid] = {"id": pid, "state": state, "version": version, "padding": "x" * 4000}
        notifier.notify(pid, rows[pid])
    return await poll


async def test_ten_thousand_long_polls_leave_the_notifier_empty():
    notifier, rows = Notifier(), {}
    peak = 0
    for batch in range(100):
        pids = [f"urn:uuid:{batch}-{i}" for i in range(100)]
        results = await asyncio.gather(*(_poll_through_every_state(notifier, rows, pid) for pid in pids))
        assert all(r["state"] == "FINALIZED" for r in results)  # every poll saw the state it waited for
        peak = max(peak, len(notifier))
        assert len(notifier) == 0 and not notifier._waiters and not notifier._latest, len(notifier)
    assert peak == 0


async def test_a_woken_poll_still_reads_the_newest_row_from_memory():
    notifier = Notifier()
    reads = []

    async def get(pid):
        reads.append(pid)
        return {"id": pid, "state": "REQUESTED", "version": 0}

    poll = asyncio.create_task(wait_for_state(notifier, get, "p", {"FINALIZED"}, timeout=30))
    await asyncio.sleep(0)
    notifier.notify("p", {"id": "p", "state": "AGREED", "version": 1})
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(notifier) == 1  # still waiting: its entry is there, with the newest row
    notifier.notify("p", {"id": "p", "state": "FINALIZED", "version": 2})
    row = await poll
    assert row["state"] == "FINALIZED" and reads == ["p"]  # woken twice, read the database once
    assert len(notifier) == 0


async def test_a_poll_that_times_out_or_is_cancelled_leaves_nothing():
    notifier = Notifier()

    async def get(pid):
        return {"id": pid, "state": "REQUESTED", "version": 0}

    row = await wait_for_state(notifier, get, "t", {"FINALIZED"}, timeout=0.01)
    assert row["state"] == "REQUESTED" and len(notifier) == 0
    poll = asyncio.create_task(wait_for_state(notifier, get, "c", {"FINALIZED"}, timeout=30))
    await asyncio.sleep(0)
    notifier.notify("c", {"id": "c", "state": "AGREED", "version": 1})
    await asyncio.sleep(0.05)  # woken, and waiting again
    poll.cancel()
    await asyncio.gather(poll, return_exceptions=True)
    assert len(notifier) == 0


@pytest.mark.slow
def test_long_polled_negotiations_leave_nothing_in_a_real_consumer(tmp_path):
    """Real processes: 40 negotiations and a transfer, each awaited with ?waitFor= long polls; afterwards the
    consumer's notifiers hold nothing (the metric counts what they hold)."""
    from support.nodes import NodeProcess

    provider = NodeProcess(tmp_path / "provider", "Provider").start()
    consumer = NodeProcess(tmp_path / "consumer", "Consumer").start()
    try:
        provider.publish(data_address={"type": "file", "path": "dataset-1.csv"})
        agreement = None
        for _ in range(40):
            neg = consumer.wait_state(consumer.negotiate(provider)["id"])
            assert neg["state"] == "FINALIZED"
            agreement = neg["agreement"]["@id"]
        started = consumer.api("POST", "/transfers", {"agreementId": agreement}, expect=201)
        row = consumer.api("GET", f"/transfers/{started['id']}?waitFor=STARTED&timeout=20", expect=200)
        assert row["state"] == "STARTED"
        text = httpx.get(consumer.url + "/api/v1/metrics", headers=consumer.headers(), timeout=30).text
        assert 'hks_longpoll_tracked_processes{kind="negotiation"} 0' in text, text
        assert 'hks_longpoll_tracked_processes{kind="transfer"} 0' in text, text
    finally:
        consumer.stop()
        provider.stop()
