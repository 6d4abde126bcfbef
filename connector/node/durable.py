"""One home for the node's durable processes (negotiations, transfers) and what they share
with the outbox dispatcher and the clearing-house log:

- `Outgoing` and `write_outbox`: what a transition queues, in the transition's own transaction;
- `Notifier` and `wait_for_state`: the management API's long polls on a process;
- dead letters: what ends a process whose message missed its delivery deadline;
- `response_json`: a peer's answer read as a JSON object (or None)."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..protocol.negotiation import Role
from ..store.prepared import Prepared
from ..store.tables import outbox

Json = dict[str, Any]
# Stands for the provider's process id in a consumer's message queued before the id is known;
# the dispatcher fills it in (outbox.fill_provider_pid) once the provider's ACK has told it.
PROVIDER_PID_PLACEHOLDER = "__PROVIDER_PID__"

_INSERT_OUTBOX = Prepared(outbox.insert().returning(outbox.c.id))
_PENDING_OF_PROCESS = Prepared(sa.select(outbox.c.id).where(
    outbox.c.process_id == sa.bindparam("b_pid"), outbox.c.status == "pending").limit(1))


def now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Notifier:
    """Wakes management-API waiters when a negotiation changes in this process.

    While anyone waits on a negotiation, the newest committed row is kept here, so a
    waiter that wakes up reads it from memory; `None` means "changed, read it again".
    Both maps hold only processes someone is waiting on right now: the last waiter of a
    process to leave (`discard`) drops its entry, so memory is bounded by the number of
    concurrent long polls, not by the number of processes ever polled."""

    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Future]] = {}
        self._latest: dict[str, Json | None] = {}

    def __len__(self) -> int:
        """Processes with an entry here (for tests and diagnostics)."""
        return len(self._waiters.keys() | self._latest.keys())

    def waiter(self, pid: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(pid, []).append(fut)
        return fut

    def latest(self, pid: str) -> tuple[bool, Json | None]:
        """(known, row): the newest row notified since the waiters of `pid` registered."""
        if pid in self._latest:
            return True, self._latest[pid]
        return False, None

    def discard(self, pid: str, fut: asyncio.Future) -> None:
        waiting = self._waiters.get(pid)
        if waiting is not None:
            if fut in waiting:
                waiting.remove(fut)
            if not waiting:
                del self._waiters[pid]
        if pid not in self._waiters:
            self._latest.pop(pid, None)

    def notify(self, pid: str, row: Json | None = None) -> None:
        waiting = self._waiters.get(pid)
        if waiting is None:
            return
        current = self._latest.get(pid)
        if row is None or current is None or row["version"] >= current["version"]:
            self._latest[pid] = dict(row) if row is not None else None
        for fut in waiting:
            if not fut.done():
                fut.set_result(None)


async def wait_for_state(notifier: Notifier, get: Callable[[str], Any], pid: str, done: set[str],
                         timeout: float) -> Json | None:
    """The process row once its state is in `done`, or as it is at the timeout (a long poll)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    fut = notifier.waiter(pid)  # registered before the read, so no commit is missed
    try:
        row = await get(pid)
        while row is not None and row["state"] not in done:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(asyncio.shield(fut), remaining)
            except asyncio.TimeoutError:
                break
            # the next waiter before the woken one leaves (so the newest row stays known), and
            # before looking, so the next commit wakes us; the woken one must leave, or every
            # wake-up would leave a future (and the row with it) behind for good
            woken, fut = fut, notifier.waiter(pid)
            notifier.discard(pid, woken)
            known, newest = notifier.latest(pid)
            row = newest if known and newest is not None else await get(pid)
    finally:
        notifier.discard(pid, fut)
    return row


@dataclass
class Outgoing:
    kind: str
    url: str
    body: Json
    entry: Json | None = None  # the outbox row, once written


def write_outbox(conn: Connection, process_id: str, outgoing: list[Outgoing], ts: float, owner: str | None,
                 lease_seconds: float, recipient: str | None = None) -> None:
    """Queue messages in the transition's transaction, in order. Only the head of the process's
    queue (no earlier message of the process still pending) is leased to this process's
    dispatcher and handed to it after the commit, so it needs no claim query; a later one is
    leased by the dispatcher in the transaction that marks its predecessor sent (strict order
    per process, by construction). After a crash the lease expires and any process sends them.
    `recipient` is the peer's participant id: the token sent with the messages is issued for it only."""
    head = owner is not None and _PENDING_OF_PROCESS.execute(conn, {"b_pid": process_id}).first() is None
    for o in outgoing:
        leased = head
        entry = {
            "message_id": uuid.uuid4().hex, "process_id": process_id, "kind": o.kind, "url": o.url,
            "recipient": recipient,
            "body": o.body, "status": "pending", "attempts": 0, "next_attempt_at": ts,
            "lease_owner": owner if leased else None, "lease_until": ts + lease_seconds if leased else None,
            "lease_gen": 1 if leased else 0, "deadline_at": None, "dead_at": None,
            "last_error": None, "created_at": ts, "sent_at": None,
        }
        entry["id"] = _INSERT_OUTBOX.execute(conn, entry).scalar_one()
        o.entry = entry if leased else None
        head = False  # the messages after the first wait for it


DEADLINE_CODE = "DeliveryDeadline"
_CANCEL_FOLLOWERS = Prepared(outbox.update().where(
    outbox.c.process_id == sa.bindparam("b_pid"), outbox.c.status == "pending",
).values(status="cancelled", lease_owner=None, lease_until=None, last_error=sa.bindparam("b_why")))


def deadline_reason(entry: Json, cause: str) -> str:
    """Why a process ends when one of its messages missed its delivery deadline (stored and sent)."""
    kind = str(entry["kind"]).split(":", 1)[0]
    return f"our {kind} could not be delivered before its deadline: {cause}"[:1000]


def dead_letter_ending(conn: Connection, row: Any, entry: Json, cause: str, terminal: set[str],
                       termination_kind: str) -> tuple[str, bool] | None:
    """A message of the process `row` (negotiation or transfer) missed its deadline: None when the
    process has ended already; else what was queued after the message is cancelled (never sent)
    and the result is (the reason to record, whether the termination can be sent to the peer:
    not for a termination that itself died, nor without the peer's process id to address it)."""
    if row is None or row["state"] in terminal:
        return None
    _CANCEL_FOLLOWERS.execute(conn, {"b_pid": row["id"],
                                     "b_why": "cancelled: an earlier message of the process missed its deadline"})
    tell_peer = not str(entry["kind"]).startswith(termination_kind) and bool(
        row["role"] == Role.PROVIDER.value or row["provider_pid"])
    return deadline_reason(entry, cause), tell_peer


def response_json(body: bytes) -> Json | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
