"""After a flush commits, the processes it ended are told so even when another owner's
after-flush hook fails (before: the exception skipped the notifications, and the flush loop
logged the committed flush as failed). Real SQLite file; no sends, only the flush."""
import time

import sqlalchemy as sa

from connector.node.outbox import Dispatcher
from connector.store.db import Database
from connector.store.tables import outbox
from support.owners import QuietOwner

OWNER = "0" * 32


class Recorder(QuietOwner):
    def __init__(self) -> None:
        self.ended_pids: list[str] = []

    def ended(self, pid: str) -> None:
        self.ended_pids.append(pid)


class FailingHook(Recorder):
    name = "failing"
    kinds = frozenset({"other"})

    async def after_flush(self) -> None:
        raise RuntimeError("the clearing house could not be asked")


async def test_a_failing_after_flush_hook_does_not_swallow_the_ended_notifications(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'node.db'}")
    await db.migrate()
    now = time.time()

    def insert(conn):  # noqa: ANN001, ANN202
        conn.execute(outbox.insert(), {
            "message_id": "msg-1", "process_id": "proc-1", "kind": "test", "url": "http://peer/x",
            "recipient": "urn:hks:participant:peer", "body": {}, "status": "pending", "attempts": 0,
            "next_attempt_at": now, "created_at": now, "lease_owner": OWNER, "lease_until": now + 600, "lease_gen": 1})
        return dict(conn.execute(sa.select(outbox)).mappings().one())

    row = await db.transaction(insert)
    recorder = Recorder()
    dispatcher = Dispatcher(db, recorder, None, None)
    dispatcher.owner = OWNER
    dispatcher.register(FailingHook())
    dispatcher.register(recorder)
    try:
        await dispatcher._flush([(row, "failed", "the peer refused it for good")])
        assert recorder.ended_pids == ["proc-1"]
        status = await db.read(lambda conn: conn.execute(sa.select(outbox.c.status)).scalar())
        assert status == "failed"
    finally:
        await db.dispose()
