"""PostgreSQL pool: a connection that sat idle in the pool is pinged when checked out, and a dead
one is replaced before use; one given back a moment ago is used without the ping (which on asyncpg
is three round trips, against a transition's seven or so). Real PostgreSQL; the server ends the
pooled connection's backend, as a restart or an idle timeout would."""
import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

from connector.store import db as db_module
from connector.store.db import Database

pytestmark = pytest.mark.postgres


def backend_pid(conn):  # noqa: ANN001, ANN201
    return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()


async def terminate(url: str, pid: int) -> None:
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_an_idle_connection_that_died_is_replaced_before_use(pg_url, monkeypatch):
    db = Database(pg_url, pool_size=1)
    try:
        first = await db.transaction(backend_pid)
        await terminate(pg_url, first)
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has been idle "long enough"
        second = await db.transaction(backend_pid)  # no error: pinged, found dead, connected afresh
        assert second != first
    finally:
        await db.dispose()


async def test_a_connection_given_back_a_moment_ago_is_not_pinged(pg_url, monkeypatch):
    db = Database(pg_url, pool_size=1)
    pings = []
    try:
        await db.transaction(backend_pid)
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
        original = AsyncAdapt_asyncpg_connection.ping
        monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", lambda self: (pings.append(1), original(self))[1])
        for _ in range(5):
            await db.transaction(backend_pid)
        assert pings == []
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
        await db.transaction(backend_pid)
        assert pings == [1]
    finally:
        await db.dispose()
