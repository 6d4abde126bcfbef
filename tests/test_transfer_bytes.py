"""A transfer's byte count (connector/node/dataplane/common.py ByteMeter, table transfer_bytes):
the bytes of a stream reach the database at most once per flush period and at its end, never per
chunk; two streams of one transfer (or two replicas) add up; on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from connector.node.dataplane.common import BYTES_FLUSH_SECONDS, ByteMeter
from connector.store.tables import transfer_bytes
from support.house import ManualClock


@pytest.fixture
def db(node_db):  # noqa: ANN001, ANN201
    return node_db


async def test_bytes_are_written_at_a_bounded_rate_and_add_up(db):
    def stored() -> tuple[int, float] | None:
        query = sa.select(transfer_bytes.c.bytes, transfer_bytes.c.updated_at).where(transfer_bytes.c.transfer_id == "t1")
        return db.read(lambda conn: conn.execute(query).first())

    clock = ManualClock()
    first, second = ByteMeter(db, clock, "t1"), ByteMeter(db, clock, "t1")
    for _ in range(1000):  # a thousand chunks within one period: nothing written yet
        await first.add(100)
    assert await stored() is None
    clock.advance(BYTES_FLUSH_SECONDS)
    await first.add(100)  # the period is over: this chunk writes the count so far
    assert (await stored())[0] == 100_100
    await second.add(7)  # another stream of the same transfer (another replica, say)
    await second.close()
    await first.add(5)
    assert (await stored())[0] == 100_107
    await first.close()  # the end of a stream writes what is left
    count, at = await stored()
    assert count == 100_112 and first.total == 100_105 and abs(at - clock.now()) < 5
    await first.close()  # nothing left: nothing added
    assert (await stored())[0] == 100_112
