"""Several station processes on one PostgreSQL database.

Each process keeps its participants, the set of registered participants and the revocation feed in
memory (the token endpoint reads them on every request; the registry search reads the database's
index, see :mod:`connector.station.registry_index`). On PostgreSQL other processes change them too, so:

* every change (enrolment, revocation, registration) runs under one advisory transaction lock
  (:func:`lock`) and writes a row to ``station_changes`` in the same transaction. The lock makes
  the sequence numbers of ``station_changes`` and ``station_revocations`` commit in order: a
  reader that sees number N sees every number below it, so neither the caches nor the public
  revocation feed (``GET /revocations?since=``) can skip one;
* before a request, a process reads the changes after the last one it applied
  (:meth:`Changes.sync`, one indexed query when nothing changed) and reloads the rows they name.

Replay state needs no cache: used client assertions and seen DATs are primary keys in the shared
tables, so a jti used at one process is refused at every other.

A process's own writes update its caches at once and are then synced like any other change
(a sync that read the rows just before the write cannot leave them stale).

On SQLite (one process per database, the default) nothing here runs but the change rows:
the process's own writes are all there is.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .store import changes, participants, registry, revocations
from ..errors import StationError

MIGRATIONS = Path(__file__).parent / "migrations"
#: serialises the station's writes across processes ("HKST"); the node's migration lock is 0x484B53
CHANGE_LOCK_ID = 0x48_4B_53_54
MAX_CHANGES_PER_SYNC = 5000


class StaleState(StationError):
    """Another process changed the station since this one last synchronised: sync and retry."""


def lock(conn: Connection) -> None:
    """Take the station's write lock for this transaction (PostgreSQL; SQLite has one writer)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": CHANGE_LOCK_ID})


def record(conn: Connection, participant_id: str, now: float) -> None:
    """Note a change to a participant's record or registry entry (call under :func:`lock`)."""
    conn.execute(sa.insert(changes).values(participant_id=participant_id, changed_at=now))


def newest(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(changes.c.seq), 0))).scalar_one()


def check_fresh(conn: Connection, seen: int) -> None:
    """Under :func:`lock`: refuse to decide on caches older than the database."""
    if conn.dialect.name == "postgresql" and newest(conn) > seen:
        raise StaleState()


@dataclass
class Update:
    seq: int
    count: int
    participants: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    registered: dict[str, bool] = field(default_factory=dict)  # has a self-description
    revocations: list[tuple[int, str]] = field(default_factory=list)


#: the one statement of a sync when nothing changed, built once (it runs before every request)
CHANGES_AFTER = (sa.select(changes.c.seq, changes.c.participant_id).where(changes.c.seq > sa.bindparam("seen"))
                 .order_by(changes.c.seq).limit(MAX_CHANGES_PER_SYNC))


def read_update(conn: Connection, seen: int, feed_seq: int) -> Update | None:
    rows = conn.execute(CHANGES_AFTER, {"seen": seen}).all()
    if not rows:
        return None
    pids = sorted({r.participant_id for r in rows})
    update = Update(seq=rows[-1].seq, count=len(rows), participants=dict.fromkeys(pids), registered=dict.fromkeys(pids, False))
    for row in conn.execute(sa.select(participants).where(participants.c.id.in_(pids))).mappings():
        update.participants[row["id"]] = dict(row)
    for (pid,) in conn.execute(sa.select(registry.c.participant_id).where(registry.c.participant_id.in_(pids))):
        update.registered[pid] = True
    update.revocations = [(r.seq, r.participant_id) for r in conn.execute(
        sa.select(revocations.c.seq, revocations.c.participant_id).where(revocations.c.seq > feed_seq)
        .order_by(revocations.c.seq))]
    return update


class Changes:
    """Keeps one station process's caches in step with the shared database (PostgreSQL only)."""

    def __init__(self, station: Any) -> None:
        self.station = station
        self.enabled = station.db.is_postgres
        self.seen = 0
        self._lock = asyncio.Lock()
        self._begun = 0  # syncs begun so far

    async def sync(self) -> None:
        """Apply every change committed before this call. Callers that wait while one sync runs are
        served together by the next one (which begins after they all arrived)."""
        if not self.enabled:
            return
        ticket = self._begun
        async with self._lock:
            if self._begun > ticket:  # a sync began after this call and has finished
                return
            self._begun += 1
            while True:
                feed = self.station.revocation_feed
                # (no transaction: one indexed query when nothing changed, on every request; its statements
                # see what was committed before each, as in a read-committed transaction)
                update = await self.station.db.read_committed(read_update, self.seen, feed[-1][0] if feed else 0)
                if update is None:
                    return
                self.apply(update)
                if update.count < MAX_CHANGES_PER_SYNC:
                    return

    def apply(self, update: Update) -> None:
        st = self.station
        for pid, row in update.participants.items():
            if row is None:
                st.participants.pop(pid, None)
            elif pid in st.participants:
                st.participants[pid].update(row)  # handlers may hold the dict
            else:
                st.participants[pid] = row
        for pid, registered in update.registered.items():
            if registered:
                st.registered.add(pid)
            else:
                st.registered.discard(pid)
        # Only syncs (one at a time) add to the feed on PostgreSQL, each with every number after the last
        # one it had, and numbers commit in order: the feed never shows a number before a smaller one.
        feed = st.revocation_feed
        for seq, pid in update.revocations:
            if not feed or seq > feed[-1][0]:
                feed.append((seq, pid))
        self.seen = max(self.seen, update.seq)
