"""Transactions that PostgreSQL aborts to break a deadlock (SQLSTATE 40P01) or a serialization
conflict (40001) are rolled back whole and must be run again: the documented remedy. Found by the
soak (bench/soak.py --postgres --replicas 2): two replicas' outbox flushes deadlocked, the loser's
sent marks were rolled back, and its messages, already delivered, were sent again once their
leases ran out: duplicates at the peer."""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Awaitable, Callable, TypeVar

import sqlalchemy as sa

log = logging.getLogger("connector.store")
T = TypeVar("T")
RETRYABLE = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, sa.exc.DBAPIError) and getattr(exc.orig, "sqlstate", None) in RETRYABLE


async def run_again_on_deadlock(run: Callable[[], Awaitable[T]], *, attempts: int = 5) -> T:
    """`run()` (one whole transaction), run again while the database aborted it for a deadlock or a
    serialization conflict (rolled back: nothing of it was kept), up to `attempts` times."""
    for attempt in range(1, attempts + 1):
        try:
            return await run()
        except sa.exc.DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            log.warning("a transaction was aborted by the database (%s); running it again (attempt %d)",
                        getattr(exc.orig, "sqlstate", "?"), attempt + 1)
            await asyncio.sleep(random.uniform(0.01, 0.05 * attempt))
    raise AssertionError("unreachable")  # pragma: no cover
