"""Two replicas on one PostgreSQL database record the clearing-house state (the newest checkpoint
seen, an alarm) at the same moment: both writes succeed, the later one wins. Found by the soak
(bench/soak.py --postgres --replicas 2): with a delete-then-insert, the second writer failed with a
unique violation on the first one's new row, which broke the outbox flush after its commit (`outbox
flush failed`) and would lose an alarm. Real PostgreSQL, the node's own migrations."""
import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from connector.node.clearinghouse import _put_state
from connector.store.db import Database
from connector.store.tables import ch_state

pytestmark = pytest.mark.postgres


async def test_two_replicas_writing_the_checkpoint_at_once_both_succeed(pg_url):
    db = Database(pg_url)
    await db.migrate()
    await db.dispose()
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: _put_state(c, "checkpoint", {"note": "first"}))
        async with engine.connect() as one, engine.connect() as two:
            await one.begin()
            await one.run_sync(lambda c: _put_state(c, "checkpoint", {"note": "one"}))
            await two.begin()
            second = asyncio.create_task(two.run_sync(lambda c: _put_state(c, "checkpoint", {"note": "two"})))
            await asyncio.sleep(0.5)  # the second replica's write waits on the first one's row
            assert not second.done()
            await one.commit()
            await asyncio.wait_for(second, 30)  # the delete-then-insert raised IntegrityError here
            await two.commit()
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(ch_state.c.value).where(ch_state.c.key == "checkpoint"))).all()
        assert [r.value for r in rows] == [{"note": "two"}]
    finally:
        await engine.dispose()
