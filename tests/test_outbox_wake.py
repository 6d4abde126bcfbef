"""When the dispatcher claims (the claim query is a transaction of its own): after a flush only
when the flush released a row or left room, and after a transition that queued a message behind
a pending one of its process (its predecessor's flush may have looked for the next row before
this commit). Real databases; no sends."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import sqlalchemy as sa

from connector.node.durable import Outgoing, write_outbox
from connector.node.outbox import Dispatcher
from connector.node.transfers import TransferService
from connector.store.tables import outbox
from support.owners import QuietOwner

OWNER = "0" * 32


def queue(db, pid: str):  # noqa: ANN001, ANN201
    out = [Outgoing("test", "http://peer/x", {"n": 1})]
    return db.transaction(lambda conn: write_outbox(conn, pid, out, time.time(), OWNER, 60.0) or out[0])


async def test_a_message_queued_behind_a_pending_one_waits_and_asks_for_a_claim(node_db):
    first, second = await queue(node_db, "proc-1"), await queue(node_db, "proc-1")
    assert first.entry is not None and not first.waiting  # the head: leased, handed over at commit
    assert second.entry is None and second.waiting
    handed: list[list] = []
    owner = TransferService.__new__(TransferService)  # only _committed's wiring is used
    owner.notifier, owner.on_commit = SimpleNamespace(notify=lambda *args: None), handed.append
    owner._after_commit = lambda row: None
    owner._committed("proc-1", [second])
    assert handed == [[]]  # no entry, but a call: the dispatcher claims
    dispatcher = Dispatcher(node_db, QuietOwner(), None, None)
    dispatcher._wake.clear()
    dispatcher.submit([])
    assert dispatcher._wake.is_set()


async def test_a_flush_of_sent_rows_asks_for_no_claim_and_a_retry_does(node_db):
    dispatcher = Dispatcher(node_db, QuietOwner(), None, None)
    dispatcher.owner = OWNER
    loop = asyncio.create_task(dispatcher._flush_loop())
    try:
        for pid, outcome, claim in (("proc-a", "sent", False), ("proc-b", "retry", True)):
            row = (await queue(node_db, pid)).entry
            dispatcher._held[row["id"]] = row
            dispatcher._wake.clear()
            dispatcher._complete(row, outcome, "the peer could not be reached" if outcome == "retry" else None)
            for _ in range(200):
                await asyncio.sleep(0.01)
                if row["id"] not in dispatcher._held:
                    break
            assert row["id"] not in dispatcher._held
            assert dispatcher._wake.is_set() is claim, outcome
        status = await node_db.read(lambda conn: dict(conn.execute(sa.select(outbox.c.process_id, outbox.c.status)).all()))
        assert status == {"proc-a": "sent", "proc-b": "pending"}
    finally:
        loop.cancel()
