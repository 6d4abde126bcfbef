"""The DAT replay store of a node (or a clearing house) whose replicas share one PostgreSQL database.

Same contract as :class:`connector.identity.dat.SqliteReplayStore` (bind each jti to the first token
carrying it, until that token expires plus leeway; refuse any other token with that jti), but the
bindings live in the service's database (the node: table ``dat_seen_tokens``, migration 0012; the clearing
house: ``ch_seen_tokens``, migration ch0002), so a jti bound at one
replica is refused for another token at every replica. Bindings already known are answered from memory;
only a jti this process has not seen costs a round trip (``INSERT ... ON CONFLICT DO NOTHING`` then
``SELECT``: whichever replica committed first wins)."""
from __future__ import annotations

import time
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..store.db import Database
from ..store.tables import dat_seen_tokens
from .dat import LEEWAY

MEMORY_LIMIT = 100_000
PRUNE_EVERY = 256


class DatabaseReplayStore:
    def __init__(self, url: str, *, table: sa.Table = dat_seen_tokens, clock: Callable[[], float] = time.time) -> None:
        if not url.startswith("postgresql"):
            raise ValueError("the shared replay store is for PostgreSQL; on SQLite the node keeps identity.db")
        self.url = url
        self.table = table
        self.clock = clock
        self.db: Database | None = None
        self._mem: dict[str, tuple[str, float]] = {}
        self._writes = 0

    async def open(self) -> None:
        self.db = Database(self.url, pool_size=2)

    async def remember(self, jti: str, token_hash: str, subject: str, expires: float) -> bool:
        bound = self._mem.get(jti)
        if bound is not None:
            return bound[0] == token_hash
        if self.db is None:
            await self.open()
        expires_at = expires + LEEWAY
        self._writes += 1
        prune = self._writes % PRUNE_EVERY == 0
        now = self.clock()

        table = self.table

        def tx(conn: sa.Connection) -> str:
            conn.execute(pg_insert(table).values(jti=jti, token_sha256=token_hash, subject=subject[:200],
                                                 expires_at=expires_at).on_conflict_do_nothing())
            if prune:
                conn.execute(sa.delete(table).where(table.c.expires_at < now))
            return conn.execute(sa.select(table.c.token_sha256).where(table.c.jti == jti)).scalar_one()

        bound_hash = await self.db.transaction(tx)  # type: ignore[union-attr]
        self._mem[jti] = (bound_hash, expires_at)
        if len(self._mem) > MEMORY_LIMIT:
            self._mem = {k: v for k, v in self._mem.items() if v[1] >= now}
        return bound_hash == token_hash

    async def close(self) -> None:
        if self.db is not None:
            db, self.db = self.db, None
            await db.dispose()
