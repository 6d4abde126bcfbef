"""The database: SQLite (embedded default, WAL, one writer thread) or PostgreSQL
(asyncpg), one set of SQLAlchemy Core statements for both.

A transaction is a plain function `fn(conn, *args)` over a synchronous SQLAlchemy
Connection. On SQLite it runs whole on the single writer thread, so a transition
costs one thread hop instead of one per statement (measured: the per-statement
hops of aiosqlite were the negotiation bottleneck). On PostgreSQL it runs through
`AsyncConnection.run_sync`, and concurrent transactions use the pool."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 0x48_4B_53  # "HKS": serialises migrations of processes sharing one PostgreSQL
T = TypeVar("T")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = is_sqlite(url)
        self.is_postgres = not self.is_sqlite
        if self.is_sqlite:
            self.sync_engine = sa.create_engine(url.replace("+aiosqlite", ""), pool_size=1, max_overflow=0,
                                                json_serializer=_json_dumps, json_deserializer=orjson.loads)
            sa.event.listen(self.sync_engine, "connect", _sqlite_pragmas)
            # pysqlite's own transaction handling breaks SAVEPOINT: let SQLAlchemy emit BEGIN.
            sa.event.listen(self.sync_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
            self._pending: list[tuple[Callable, tuple, asyncio.Future]] = []
            self._writing = False
            self.max_batch = 64
            self.async_engine = None
        else:
            self.async_engine = create_async_engine(url, pool_size=pool_size, max_overflow=4, pool_pre_ping=True,
                                                    json_serializer=_json_dumps, json_deserializer=orjson.loads)
            self.sync_engine = None

    @property
    def dialect_name(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    async def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(conn, *args) in one transaction: committed if it returns, rolled back if it raises.

        On SQLite, transactions submitted while the writer is busy are grouped into one
        commit (group commit), each in its own SAVEPOINT so that one that raises is rolled
        back alone; every caller gets its result only after the shared commit."""
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
        return await self.transaction(fn, *args)

    async def _write_batches(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                try:
                    outcomes = await loop.run_in_executor(self._writer, self._sqlite_batch, batch)
                except BaseException as exc:  # the commit itself failed: nothing in the batch happened
                    outcomes = [(False, exc)] * len(batch)
                for (_, _, future), (ok, value) in zip(batch, outcomes):
                    if not future.done():
                        future.set_result(value) if ok else future.set_exception(value)
        finally:
            self._writing = False

    def _sqlite_batch(self, batch: list) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        with self.sync_engine.begin() as conn:
            if len(batch) == 1:
                fn, args, _ = batch[0]
                try:
                    outcomes.append((True, fn(conn, *args)))
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    conn.rollback()
                    return [(False, exc)]
                return outcomes
            for fn, args, _ in batch:
                savepoint = conn.begin_nested()
                try:
                    result = fn(conn, *args)
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    savepoint.rollback()
                    outcomes.append((False, exc))
                else:
                    savepoint.commit()
                    outcomes.append((True, result))
        return outcomes

    async def migrate(self, migrations: Path = MIGRATIONS) -> None:
        """Upgrade to head with the Alembic scripts in ``migrations`` (default: the node's).

        Another service (the clearing house) passes its own directory; its env.py keeps
        its own version table, so both can share one PostgreSQL database."""
        await self.transaction(_upgrade, migrations)

    async def dispose(self) -> None:
        if self.is_sqlite:
            await asyncio.get_running_loop().run_in_executor(self._writer, self.sync_engine.dispose)
            self._writer.shutdown(wait=False)
        else:
            await self.async_engine.dispose()


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
    dbapi_conn.isolation_level = None  # see the "begin" listener
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _upgrade(connection: Connection, migrations: Path = MIGRATIONS) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
