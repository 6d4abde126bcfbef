"""Replicas on one PostgreSQL database: when the database aborts a dispatcher's flush (the
transaction that marks delivered messages sent) to break a deadlock, the flush runs again, so
the marks are kept and nothing already delivered is sent a second time. Found by the soak
(bench/soak.py --postgres --replicas 2: 'outbox flush failed ... deadlock detected', then 9
messages delivered twice at the peer). The deadlock is made on purpose, on a real database: a
second session holds the second row and then waits for the first, which the flush holds."""
import asyncio
import time

import asyncpg
import pytest
import sqlalchemy as sa

from connector.node.outbox import Dispatcher
from connector.store.db import Database
from connector.store.tables import outbox
from support.owners import QuietOwner as Owner

pytestmark = pytest.mark.postgres
OWNER = "0" * 32


async def test_a_flush_aborted_by_a_deadlock_keeps_its_sent_marks(pg_url):
    db = Database(pg_url)
    await db.migrate()
    now = time.time()

    def insert(conn):  # noqa: ANN001, ANN202
        for i in (1, 2):
            conn.execute(outbox.insert(), {
                "message_id": f"msg-{i}", "process_id": f"proc-{i}", "kind": "test", "url": "http://peer/x",
                "recipient": "urn:hks:participant:peer", "body": {}, "status": "pending", "attempts": 0,
                "next_attempt_at": now, "created_at": now, "lease_owner": OWNER, "lease_until": now + 600,
                "lease_gen": 1})
        return [dict(r) for r in conn.execute(sa.select(outbox).order_by(outbox.c.id)).mappings()]

    rows = await db.transaction(insert)
    dispatcher = Dispatcher(db, Owner(), None, None)  # no sends here: only the flush
    dispatcher.owner = OWNER
    first, second = rows
    dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    other = await asyncpg.connect(dsn)
    try:
        await other.execute("SET deadlock_timeout = '20s'")  # the flush, not this session, finds the deadlock
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT id FROM outbox WHERE id = $1 FOR UPDATE", second["id"])
        flush = asyncio.create_task(dispatcher._flush([(first, "sent", None), (second, "sent", None)]))
        deadline = time.monotonic() + 30
        while not await other.fetchval(  # the flush has marked the first row and waits for the second
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"):
            assert time.monotonic() < deadline, "the flush never waited for the second row"
            await asyncio.sleep(0.05)
        await other.execute("UPDATE outbox SET attempts = attempts WHERE id = $1", first["id"])  # the cycle
        await tx.commit()
        await asyncio.wait_for(flush, 60)  # before: DBAPIError 'deadlock detected', the marks rolled back
    finally:
        await other.close()
    statuses = await db.read(lambda conn: [r.status for r in conn.execute(sa.select(outbox.c.status))])
    await db.dispose()
    assert statuses == ["sent", "sent"]
