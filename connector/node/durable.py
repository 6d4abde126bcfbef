"""One home for the node's durable processes (negotiations, transfers) and what they share
with the outbox dispatcher and the clearing-house log:

- `Outgoing` and `write_outbox`: what a transition queues, in the transition's own transaction;
- `Notifier` and `wait_for_state`: the management API's long polls on a process;
- dead letters: what ends a process whose message missed its delivery deadline;
- `response_json`: a peer's answer read as a JSON object (or None);
- `DurableOwner`: the typed interface the dispatcher (outbox.py) calls back on the owner of a
  message, registered with it by name; `DurableProcesses`: the half of a durable process service
  that negotiations and transfers share (load, versioned update, queue and audit, commit and wake,
  and the owner's callbacks: refused, dead letter, provider pid, recipient)."""
from __future__ import annotations

import abc
import re
import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import failpoints
from ..protocol.errors import Refused
from ..protocol.negotiation import Role
from ..store.prepared import Prepared
from ..telemetry import current_traceparent
from ..policy.explain import M_, Msg
from ..store.tables import outbox
from .usage import EngineSentence, message_of

Json = dict[str, Any]
T = TypeVar("T")
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
    entry: Json | None = None  # the outbox row, once written, when it was leased to this process
    waiting: bool = False  # written behind a pending message of its process: a claim finds it once that one is sent


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
            "last_error": None, "created_at": ts, "sent_at": None, "traceparent": current_traceparent(),
        }
        entry["id"] = _INSERT_OUTBOX.execute(conn, entry).scalar_one()
        o.entry = entry if leased else None
        o.waiting = not leased
        head = False  # the messages after the first wait for it


DEADLINE_CODE = "DeliveryDeadline"
_CANCEL_FOLLOWERS = Prepared(outbox.update().where(
    outbox.c.process_id == sa.bindparam("b_pid"), outbox.c.status == "pending",
).values(status="cancelled", lease_owner=None, lease_until=None, last_error=sa.bindparam("b_why")))


#: why the outbox could not send a message (outbox.Dispatcher's send errors: the texts it keeps in
#: an outbox row's last_error and a process's ending), as message ids: the console shows them translated
PEER_UNREACHABLE = M_("the peer could not be reached")
PEER_ANSWERED = M_("the peer answered %(status)s")
PEER_ANSWERED_TOO_MUCH = M_("the peer answered %(status)s with over 1 MiB")
TOKEN_REFUSED = M_("the peer refused our token (401); retrying with a new one")
NO_PROVIDER_PID = M_("the provider's process id is not known yet")
NO_RECIPIENT = M_("the message's recipient is not known")
ADDRESS_REFUSED = M_("the peer's address is refused (rule: no private destinations unless [dsp] "
                     "allowed_destinations names them)")
CANCELLED = M_("cancelled: an earlier message of the process missed its deadline")
SEND_FAILURES = (PEER_UNREACHABLE, PEER_ANSWERED, PEER_ANSWERED_TOO_MUCH, TOKEN_REFUSED, NO_PROVIDER_PID,
                 NO_RECIPIENT, ADDRESS_REFUSED, CANCELLED)
#: a peer's refusal of a message: ours up to "with", then the peer's code and reason (its words)
PEER_REFUSED = "the peer refused the message (%(status)s) with %(reason)s"
NO_REASON_GIVEN = "no reason given"


def _pattern(message_id: str) -> re.Pattern[str]:
    """`message_id` as a regular expression that reads its parameters back (a status: three digits)."""
    def group(found: re.Match[str]) -> str:
        name = found.group(1)
        return f"(?P<{name}>" + (r"\d{3}" if name == "status" else ".+") + ")"
    return re.compile(re.sub(r"%\\\((\w+)\\\)s", group, re.escape(message_id)), re.DOTALL)


_SEND_PATTERNS = [(m, _pattern(m)) for m in SEND_FAILURES]
_PEER_REFUSED = _pattern(PEER_REFUSED)
_ERROR_NAMED = re.compile(r"([A-Za-z_]\w{0,80}): (.*)", re.DOTALL)


def _send_sentence(text: str) -> Msg | None:
    """One of the outbox's own send failures as a sentence, or None."""
    for message_id, pattern in _SEND_PATTERNS:
        found = pattern.fullmatch(text)
        if found:
            return Msg(message_id, **found.groupdict())
    return None


def send_failure(text: str) -> tuple[Msg, str, str]:
    """A send failure as the outbox recorded it (an outbox row's last_error, a refused message's
    reason), for the console: (our own part as a sentence, the words that are not ours as they
    are, whose they are: "peer" or "detail" (an error's technical text), "" when none)."""
    said = _send_sentence(text)
    if said is None:  # as retried: "ErrorName: text"
        named = _ERROR_NAMED.fullmatch(text)
        said = _send_sentence(named.group(2)) if named else None
    if said is not None:
        return said, "", ""
    refused = _PEER_REFUSED.fullmatch(text)
    if refused:
        status, reason = refused.group("status"), refused.group("reason")
        if reason == NO_REASON_GIVEN:
            return Msg(M_("the peer refused the message (%(status)s) and gave no reason"), status=status), "", ""
        return Msg(M_("the peer refused the message (%(status)s)"), status=status), reason, "peer"
    return Msg(M_("the message could not be sent")), text, "detail"


def _cause_msg(cause: str) -> Any:
    """A send failure's cause as a sentence: "Error: our sentence" when it is one of ours, else the
    text as it is (a parameter: shown untranslated)."""
    named = _ERROR_NAMED.fullmatch(cause)
    error, detail = named.groups() if named else (None, cause)
    said = _send_sentence(detail)
    if said is None:
        return cause
    return Msg(M_("%(error)s: %(detail)s"), error=error, detail=said) if error else said


def deadline_reason(entry: Json, cause: str) -> str:
    """Why a process ends when one of its messages missed its delivery deadline (stored and sent);
    with its message id (EngineSentence) when it is whole, for the console's languages."""
    kind = str(entry["kind"]).split(":", 1)[0]
    text = f"our {kind} could not be delivered before its deadline: {cause}"
    if len(text) > 1000:
        return text[:1000]
    return EngineSentence.of(Msg(M_("our %(kind)s could not be delivered before its deadline: %(cause)s"),
                                 kind=kind, cause=_cause_msg(cause)))


def dead_letter_ending(conn: Connection, row: Any, entry: Json, cause: str, terminal: set[str],
                       termination_kind: str) -> tuple[str, bool] | None:
    """A message of the process `row` (negotiation or transfer) missed its deadline: None when the
    process has ended already; else what was queued after the message is cancelled (never sent)
    and the result is (the reason to record, whether the termination can be sent to the peer:
    not for a termination that itself died, nor without the peer's process id to address it)."""
    if row is None or row["state"] in terminal:
        return None
    _CANCEL_FOLLOWERS.execute(conn, {"b_pid": row["id"], "b_why": CANCELLED})
    tell_peer = not str(entry["kind"]).startswith(termination_kind) and bool(
        row["role"] == Role.PROVIDER.value or row["provider_pid"])
    return deadline_reason(entry, cause), tell_peer


def own_messages(*reasons: Any) -> Json:
    """{"reasonMessages": [...]} for a termination whose reasons are all our own sentences with their
    message ids (the console renders them in its viewer's language); {} otherwise. The English
    reasons stay as they are: the API, the peer and the logs read those."""
    msgs = [message_of(r) for r in reasons if r]
    return {"reasonMessages": msgs} if msgs and all(m is not None for m in msgs) else {}


def response_json(body: bytes) -> Json | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class DurableOwner(abc.ABC):
    """What the outbox dispatcher calls back on the owner of a queued message.

    An owner is registered with the dispatcher (`Dispatcher.register`) under its `name` and owns
    the message kinds in `kinds`: an outbox row's kind is one of them, optionally followed by
    ':' and a qualifier (e.g. 'ContractRequestMessage:initial'). The `on_*` callbacks run inside
    the dispatcher's transaction that records the outcome (no event loop work there); `ended`,
    `committed` and `after_flush` run on the event loop once that transaction has committed."""

    name: str
    kinds: frozenset[str]
    #: True: the dispatcher calls `deliver(entry)` instead of posting the row's body to its url
    delivers_itself: bool = False

    @abc.abstractmethod
    def on_sent(self, conn: Connection, entry: Json, response: Json | None) -> None:
        """The message was delivered; `response` is the peer's answer (a JSON object or None)."""

    @abc.abstractmethod
    def on_refused(self, conn: Connection, entry: Json, error: str) -> None:
        """The peer refused the message for good (a 4xx): sending it again will not help."""

    @abc.abstractmethod
    def on_dead(self, conn: Connection, entry: Json, cause: str) -> tuple[Json, list[Outgoing]] | None:
        """The message missed its delivery deadline (a dead letter): (the process row as ended, the
        messages queued by ending it), or None when nothing changed."""

    def provider_pid_of(self, conn: Connection, pid: str) -> str | None:
        """The provider's process id, to fill PROVIDER_PID_PLACEHOLDER in a queued message."""
        return None

    def recipient_of(self, conn: Connection, pid: str) -> str | None:
        """The peer of a row queued before rows named their recipient."""
        return None

    def wire_payload(self, entry: Json, payload: bytes) -> bytes:
        """The body as it goes on the wire (e.g. with what the database must not hold filled in)."""
        return payload

    async def deliver(self, entry: Json) -> Json | None:
        """Only for an owner that `delivers_itself`: send the entry, return what on_sent receives.
        Raises outbox.TransientSendError (retried) or outbox.PermanentSendError (refused)."""
        raise NotImplementedError(f"{type(self).__name__} does not deliver its messages itself")

    def ended(self, pid: str) -> None:
        """After the transaction in which on_refused ended the process `pid` committed."""

    def committed(self, pid: str, outgoing: list[Outgoing], row: Json | None) -> None:
        """After the transaction in which on_dead ended the process `pid` committed."""

    async def after_flush(self) -> None:
        """After every transaction that recorded outcomes of messages."""


class DurableProcesses(DurableOwner):
    """The half of a durable process service (negotiations, transfers) that they share: one row
    per process in `table` with an optimistic `version`, ended in one of the `terminal` states.
    A subclass sets the class attributes below and, in its __init__, `db`, `clock`, `on_commit`,
    `notifier`, `is_postgres`, `outbox_owner`, `lease_seconds` and `audit`; it implements
    `_terminate` (and may override `_as_sent`, `_provider_pid_in_ack` and `_after_commit`)."""

    table: sa.Table
    terminal: frozenset[str]
    #: the message kind that ends a process towards the peer, and the kind of the initial request
    termination_kind: str
    initial_kind: str
    conflict: type[Exception]  # raised when the row changed under a transition (it is retried)

    db: Any
    clock: Callable[[], float]
    on_commit: Callable[[list[Json]], None]
    notifier: Notifier
    is_postgres: bool
    outbox_owner: str | None
    lease_seconds: float
    # audit(conn, row, message as sent (dict or bytes) or received (bytes), ts) -> clearing-house entries queued
    audit: Callable[..., list[Outgoing]] | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table = cls.__dict__.get("table")
        if table is None:
            return
        # Built and compiled once per table (store/prepared.py): per call they cost most of a transition.
        cls._select_row = Prepared(sa.select(table).where(table.c.id == sa.bindparam("b_pid")))
        cls._select_row_locked = Prepared(cls._select_row.statement.with_for_update())
        cls._update_row = Prepared(table.update().where(
            table.c.id == sa.bindparam("b_id"), table.c.version == sa.bindparam("b_old_version")))
        cls._set_provider_pid = Prepared(table.update().where(
            table.c.id == sa.bindparam("b_id"), table.c.provider_pid.is_(None)))

    # ------------------------------------------------------------ rows
    def _load(self, conn: Connection, pid: str, lock: bool = False):  # noqa: ANN202
        query = self._select_row_locked if lock and self.is_postgres else self._select_row
        return query.execute(conn, {"b_pid": pid}).mappings().first()

    def _update(self, conn: Connection, row: Json, old_version: int, original: Any = None) -> None:
        """Write the changed columns (all when `original` is not given), if the version is still `old_version`."""
        values = {k: v for k, v in row.items()
                  if k in self.table.c and k != "id" and (original is None or original[k] != v)}
        result = self._update_row.execute(conn, {**values, "b_id": row["id"], "b_old_version": old_version})
        if result.rowcount != 1:
            raise self.conflict(row["id"])

    async def get(self, pid: str) -> Json | None:
        def load(conn: Connection) -> Json | None:
            row = self._load(conn, pid)
            return dict(row) if row is not None else None
        return await self.db.read(load)

    async def wait_for(self, pid: str, states: set[str], timeout: float) -> Json | None:
        """The process once it is in one of `states` (or terminal), or as it is at the timeout."""
        return await wait_for_state(self.notifier, self.get, pid, states | self.terminal, timeout)

    async def _transition(self, run: Callable[[float], Awaitable[T]]) -> T:
        """Run a transition (`run(now)`: one transaction), again with the time read anew while its
        row keeps changing under it (at most 5 times)."""
        for _ in range(5):
            try:
                return await run(self.clock())
            except self.conflict:
                continue
        raise Refused(f"the {self.name} is busy, try again")

    # ------------------------------------------------- queue, audit, commit
    def _write_outbox(self, conn: Connection, row: Json, outgoing: list[Outgoing], ts: float) -> None:
        """Queue `outgoing` towards the process's peer, and (with a clearing house) an entry for each."""
        write_outbox(conn, row["id"], outgoing, ts, self.outbox_owner, self.lease_seconds,
                     recipient=row["counterparty_id"])
        if self.audit is not None:  # every message sent is logged at the clearing house
            for o in list(outgoing):
                outgoing += self.audit(conn, row, self._as_sent(row, o), ts)

    def _as_sent(self, row: Json, outgoing: Outgoing) -> Json | bytes:
        """The message as the clearing-house entry must digest it."""
        return outgoing.body

    def _audit_received(self, conn: Connection, row: Json, raw: bytes, ts: float) -> list[Outgoing]:
        return self.audit(conn, row, raw, ts) if self.audit is not None and raw else []

    def _committed(self, pid: str, outgoing: list[Outgoing] = (), row: Json | None = None) -> None:  # type: ignore[assignment]
        """After a transition's transaction: wake the waiters, hand the leased messages to the dispatcher."""
        for o in outgoing:
            failpoints.hit(f"committed:{o.kind}")
        self.notifier.notify(pid, row)
        entries = [o.entry for o in outgoing if o.entry is not None]
        if entries or any(o.waiting for o in outgoing):
            # Waiting rows too: its predecessor's flush may have looked for the next row before this
            # commit, so the dispatcher claims once more (submit without entries) instead of leaving
            # it to its next poll.
            self.on_commit(entries)
        if row is not None:
            self._after_commit(row)

    def _after_commit(self, row: Json) -> None:
        """Called with every committed row (after the waiters and the dispatcher were told)."""

    # ------------------------------------------------ the dispatcher's callbacks
    def on_sent(self, conn: Connection, entry: Json, response: Json | None) -> None:
        """In the transaction that marks an outbox row sent: the provider's pid from the ACK of our initial request."""
        if entry["kind"] != self.initial_kind or not isinstance(response, dict):
            return
        provider_pid = self._provider_pid_in_ack(response)
        if isinstance(provider_pid, dict):
            provider_pid = provider_pid.get("@id")
        if isinstance(provider_pid, str) and provider_pid:
            self._set_provider_pid.execute(conn, {"b_id": entry["process_id"], "provider_pid": provider_pid})

    def _provider_pid_in_ack(self, response: Json) -> Any:
        return response.get("providerPid") or response.get("dspace:providerPid")

    def on_refused(self, conn: Connection, entry: Json, error: str) -> None:
        """The peer refused a message for good: the two sides disagree, so our side ends."""
        ts = self.clock()
        conn.execute(
            sa.update(self.table)
            .where(self.table.c.id == entry["process_id"], self.table.c.state.notin_(sorted(self.terminal)))
            .values(state="TERMINATED", error=error[:2000], updated_at=ts, version=self.table.c.version + 1,
                    termination={"by": "peer-refused", "code": "MessageRefused", "reason": [error[:500]], "at": now_iso(ts)})
        )

    def on_dead(self, conn: Connection, entry: Json, cause: str) -> tuple[Json, list[Outgoing]] | None:
        """A message missed its delivery deadline (a dead letter), in the dispatcher's transaction:
        what was queued after it is cancelled, our side is terminated with the reason, and the
        termination is queued towards the peer (itself durable) so both sides end alike. Not when
        the process has already ended, when the dead message was itself a termination, or when
        the peer's process id was never learnt (nothing can address it)."""
        original = self._load(conn, entry["process_id"], lock=True)
        ending = dead_letter_ending(conn, original, entry, cause, self.terminal, self.termination_kind)
        if ending is None:
            return None
        reason, tell_peer = ending
        ts = self.clock()
        row = dict(original)
        outgoing = self._terminate(row, reason, ts) if tell_peer else []
        row["state"] = "TERMINATED"
        row["termination"] = {"by": row["role"], "code": DEADLINE_CODE, "reason": [str(reason)], "at": now_iso(ts),
                              **own_messages(reason)}
        row["error"] = str(reason)
        row["version"] = original["version"] + 1
        row["updated_at"] = ts
        self._update(conn, row, original["version"], original)
        self._write_outbox(conn, row, outgoing, ts)
        return row, outgoing

    @abc.abstractmethod
    def _terminate(self, row: Json, reason: str, ts: float) -> list[Outgoing]:
        """Terminate the process `row` (changed in place) and build the termination towards the peer."""

    def provider_pid_of(self, conn: Connection, pid: str) -> str | None:
        return conn.execute(sa.select(self.table.c.provider_pid).where(self.table.c.id == pid)).scalar()

    def recipient_of(self, conn: Connection, pid: str) -> str | None:
        return conn.execute(sa.select(self.table.c.counterparty_id).where(self.table.c.id == pid)).scalar()

    def ended(self, pid: str) -> None:
        self.notifier.notify(pid)

    def committed(self, pid: str, outgoing: list[Outgoing], row: Json | None) -> None:
        self._committed(pid, outgoing, row)
