"""The database: SQLite (embedded default, WAL, one connection on the event loop) or
PostgreSQL (asyncpg), one set of SQLAlchemy Core statements for both.

A transaction is a plain function `fn(conn, *args)` over a synchronous SQLAlchemy
Connection. On SQLite it runs on the event loop itself, on the node's one connection,
grouped with the others submitted in the same loop turn into one commit. Measured on
the negotiation bench: a writer thread (one hop per transition) cost 25% of the
throughput against running inline, because the work is CPU-bound under one GIL and
the hop itself (future, wake-up of the loop) was a tenth of the process's time; and
SQLAlchemy's own begin/savepoint/commit calls cost more than the SQL. So transaction
control is plain SQL on the driver connection. On PostgreSQL a transaction runs
through `AsyncConnection.run_sync`, and concurrent transactions use the pool."""
from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ..telemetry import bind_context

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 0x48_4B_53  # "HKS": serialises migrations of processes sharing one PostgreSQL
T = TypeVar("T")
log = logging.getLogger("connector.store")
# The loop's connection checkpoints only past this many WAL pages (about 40 MB): a safety
# net, since the checkpointer thread normally keeps the WAL far below it.
SAFETY_AUTOCHECKPOINT_PAGES = 10_000


#: a pooled PostgreSQL connection idle longer than this is pinged when it is checked out
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(pool: Any) -> None:
    """Instead of SQLAlchemy's pre-ping on every checkout (on asyncpg three round trips: BEGIN, a
    query, ROLLBACK, beside a transition's seven or so), only a connection that sat idle in the pool
    is pinged: one given back a moment ago is alive, and under load that is every connection. A
    dead one is replaced before use; a connection that dies while in use fails that one
    transaction, as it would with the pre-ping."""
    @sa.event.listens_for(pool, "checkin")
    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(pool, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since > PING_AFTER_IDLE_SECONDS:
            try:
                dbapi_connection.ping()
            except Exception as exc:  # noqa: BLE001 - any failure: the pool connects afresh
                raise sa.exc.DisconnectionError(f"a pooled connection did not answer: {type(exc).__name__}") from exc


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, sqlite_writer_thread: bool = False) -> None:
        """`sqlite_writer_thread`: run SQLite transactions on a thread of their own, not on
        the loop. Right when every commit waits for fsync (synchronous=FULL, the clearing
        house): the loop keeps serving while the disk works. Measured there: 12% more
        appends/s than on the loop. Without fsync per commit the loop is faster (above)."""
        self.url = url
        self.is_sqlite = is_sqlite(url)
        self.is_postgres = not self.is_sqlite
        if self.is_sqlite:
            self.sync_engine = sa.create_engine(url.replace("+aiosqlite", ""), pool_size=1, max_overflow=0,
                                                json_serializer=_json_dumps, json_deserializer=orjson.loads)
            private_sqlite_files(self.sync_engine.url.database)
            sa.event.listen(self.sync_engine, "connect", _sqlite_pragmas)
            self._conn: Connection | None = None
            self._checkpointer: Checkpointer | None = None
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer") if sqlite_writer_thread else None
            self._pending: list[tuple[Callable, tuple, asyncio.Future]] = []
            self._writing = False
            self.max_batch = 64
            self.async_engine = None
        else:
            self.async_engine = create_async_engine(url, pool_size=pool_size, max_overflow=4,
                                                    json_serializer=_json_dumps, json_deserializer=orjson.loads)
            _ping_when_idle(self.async_engine.sync_engine.pool)
            self.sync_engine = None
        self._reads: Any = None  # read_committed's pool (PostgreSQL), made at first use

    @property
    def dialect_name(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    async def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(conn, *args) in one transaction: committed if it returns, rolled back if it raises.

        On SQLite, transactions submitted while the writer is busy are grouped into one
        commit (group commit), each in its own SAVEPOINT so that one that raises is rolled
        back alone; every caller gets its result only after the shared commit."""
        fn = bind_context(fn)  # runs in its caller's trace context, whoever commits it (tracing on only)
        if not self.is_sqlite:
            async with self.async_engine.begin() as conn:
                return await conn.run_sync(fn, *args)
        future = asyncio.get_running_loop().create_future()
        self._pending.append((fn, args, future))
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._write_batches())
        return await future

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(conn, *args), which only reads. On PostgreSQL: `read_committed` (no BEGIN and COMMIT
        round trips, and not on the transactions' pool); each statement sees what was committed
        before it began, as in the READ COMMITTED transaction it replaces, and a write is refused."""
        if self.is_sqlite:
            return await self.transaction(fn, *args)
        return await self.read_committed(fn, *args)

    async def read_committed(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(conn, *args) with no transaction around it on PostgreSQL: each statement sees what
        was committed before it began (as in a read-committed transaction) and costs no BEGIN and
        COMMIT round trips (two of a cached catalog page's three). On SQLite: `read`."""
        if self.is_sqlite:
            return await self.transaction(fn, *args)
        fn = bind_context(fn)
        if self._reads is None:
            # Its own small pool, in autocommit and without the pre-ping, which on asyncpg is three round
            # trips per checkout (BEGIN, a query, ROLLBACK): a connection found dead is run once more.
            self._reads = create_async_engine(self.url, pool_size=8, max_overflow=4, isolation_level="AUTOCOMMIT",
                                              json_serializer=_json_dumps, json_deserializer=orjson.loads,
                                              # a write here would commit statement by statement: refused
                                              connect_args={"server_settings": {"default_transaction_read_only": "on"}})
        for attempt in (1, 2):
            try:
                async with self._reads.connect() as conn:
                    return await conn.run_sync(fn, *args)
            except sa.exc.DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write_batches(self) -> None:
        try:
            await asyncio.sleep(0)  # callers of this same loop turn join the batch
            while self._pending:
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                try:
                    if self._writer is None:
                        outcomes = self._sqlite_batch(batch)
                    else:
                        outcomes = await asyncio.get_running_loop().run_in_executor(
                            self._writer, self._sqlite_batch, batch)
                except BaseException as exc:  # the commit itself failed: nothing in the batch happened
                    outcomes = [(False, exc)] * len(batch)
                for (_, _, future), (ok, value) in zip(batch, outcomes):
                    if not future.done():
                        future.set_result(value) if ok else future.set_exception(value)
                if self._pending:
                    await asyncio.sleep(0)  # let the loop breathe between full batches
        finally:
            self._writing = False

    def _connection(self) -> Connection:
        """The one SQLite connection. SQLAlchemy sees it inside one endless transaction
        (so it never autobegins); the real transactions are the BEGIN/COMMIT below."""
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.sync_engine.connect()
            self._conn.begin()
            path = self.sync_engine.url.database
            if self._checkpointer is None and path and path != ":memory:" and not path.startswith("file:"):
                self._checkpointer = Checkpointer(path)
                self._checkpointer.start()
        return self._conn

    def _reset_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass

    def _sqlite_batch(self, batch: list) -> list[tuple[bool, Any]]:
        conn = self._connection()
        raw = conn.connection.driver_connection
        outcomes: list[tuple[bool, Any]] = []
        try:
            raw.execute("BEGIN")
            if len(batch) == 1:
                fn, args, _ = batch[0]
                try:
                    outcomes.append((True, fn(conn, *args)))
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    raw.execute("ROLLBACK")
                    return [(False, exc)]
            else:
                for fn, args, _ in batch:
                    raw.execute("SAVEPOINT tx")
                    try:
                        result = fn(conn, *args)
                    except Exception as exc:  # noqa: BLE001 - handed to the caller
                        raw.execute("ROLLBACK TO tx")
                        raw.execute("RELEASE tx")
                        outcomes.append((False, exc))
                    else:
                        raw.execute("RELEASE tx")
                        outcomes.append((True, result))
            raw.execute("COMMIT")
        except BaseException:
            # The commit or the transaction control failed: roll back what is left and
            # start the next batch on a fresh connection.
            try:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
            except Exception:  # noqa: BLE001
                pass
            self._reset_connection()
            raise
        return outcomes

    def _truncate_wal(self) -> None:
        """On a clean stop: copy the whole WAL into the database and empty it, so that a stopped
        node leaves no WAL of up to SAFETY_AUTOCHECKPOINT_PAGES (about 40 MB) behind."""
        try:
            raw = self._conn.connection.driver_connection
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            busy, _, _ = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                log.warning("the WAL could not be truncated at stop (another connection is reading)")
        except sqlite3.Error as exc:  # the stop goes on; the WAL is replayed at the next start
            log.warning("the WAL could not be truncated at stop: %s", exc)

    async def migrate(self, migrations: Path = MIGRATIONS) -> None:
        """Upgrade to head with the Alembic scripts in ``migrations`` (default: the node's).

        Another service (the clearing house) passes its own directory; its env.py keeps
        its own version table, so both can share one PostgreSQL database."""
        await self.transaction(_upgrade, migrations)

    async def dispose(self) -> None:
        if self.is_sqlite:
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
            def close() -> None:
                if self._conn is not None and not self._conn.closed:
                    self._truncate_wal()
                    self._conn.close()
                self._conn = None
                self.sync_engine.dispose()
            if self._writer is None:
                close()
            else:  # the connection belongs to the writer thread
                await asyncio.get_running_loop().run_in_executor(self._writer, close)
                self._writer.shutdown(wait=False)
        else:
            await self.async_engine.dispose()
            if self._reads is not None:
                await self._reads.dispose()


SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_sqlite_files(path: str | None) -> None:
    """Make the database file (and its -wal, -shm, -journal) readable by its owner only.

    SQLite creates a database 0644 and gives its companion files the database's own mode, so
    the database is created here first, 0600, before SQLite opens it; one created earlier
    with a wider mode is narrowed. Not for in-memory or URI databases."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for name in (path, *(path + suffix for suffix in SQLITE_COMPANIONS)):
        try:
            mode = os.stat(name).st_mode
        except FileNotFoundError:
            continue
        if stat.S_IMODE(mode) & 0o077:
            os.chmod(name, stat.S_IMODE(mode) & 0o700 | 0o600)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
    dbapi_conn.isolation_level = None  # no implicit BEGIN: Database._sqlite_batch emits its own
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA wal_autocheckpoint={SAFETY_AUTOCHECKPOINT_PAGES}")
    cur.close()


class Checkpointer(threading.Thread):
    """Copies the WAL back into the database file from its own connection and thread.

    A checkpoint inside a commit on the event loop (SQLite's default, every 1,000 pages)
    cost 13% of the negotiation throughput. Here it runs in C with the GIL released, and
    a PASSIVE checkpoint never blocks the loop's writes. Under a steady stream of commits
    it never quite catches up, so the WAL only restarts at the loop's own checkpoint
    (SAFETY_AUTOCHECKPOINT_PAGES), which then has little left to copy: measured over
    30,000 commits, the longest stall was 20 ms against 48 ms without this thread."""

    def __init__(self, path: str, interval: float = 0.25) -> None:
        super().__init__(name="sqlite-checkpointer", daemon=True)
        self.path = path
        self.interval = interval
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        except sqlite3.Error as exc:
            log.warning("the WAL checkpointer could not open %s (%s); the writer's own checkpoints remain",
                        self.path, exc)
            return
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            while not self._stopping.wait(self.interval):
                self.checkpoint(conn)
            self.checkpoint(conn)
        finally:
            conn.close()

    @staticmethod
    def checkpoint(conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # e.g. busy: the next round tries again
            log.debug("WAL checkpoint skipped: %s", exc)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)


def _upgrade(connection: Connection, migrations: Path = MIGRATIONS) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
