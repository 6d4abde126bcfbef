"""The clearing house's database handle: the node's :class:`connector.store.db.Database`
(SQLite: WAL, group commit; PostgreSQL: asyncpg), with the clearing house's own durability
setting on SQLite, and its transactions on a writer thread.

Measured alternative, rejected: running the SQLite transactions on the event-loop thread
itself, as the node does, was 12-15% slower here: every group commit fsyncs, and on a
writer thread that wait (and SQLite's C work) runs outside the GIL, in parallel with the
request handlers."""
from __future__ import annotations

import sqlalchemy as sa

from ..store.db import Database


def open_database(url: str) -> Database:
    db = Database(url, sqlite_writer_thread=True)
    if db.is_sqlite:
        # Receipts promise that an entry is in the log: fsync every group commit (WAL + FULL), so even a
        # power loss cannot take back a signed checkpoint.  Runs after Database's own pragmas.
        sa.event.listen(db.sync_engine, "connect", _full_sync)
    return db


def _full_sync(dbapi_conn, _record) -> None:  # noqa: ANN001
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()
