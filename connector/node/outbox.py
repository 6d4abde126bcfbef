"""The outbox dispatcher: sends what transitions committed, strictly in order per process,
retrying with capped exponential backoff and jitter until a message is delivered or the
deadline of its kind passes (then it is a dead letter and its process ends on both sides).

Order, by construction: a row is sent only while it is the head of its process's queue (no
earlier row of the process pending). A transition leases a new row to this dispatcher only
when it is the head; the next row is leased in the transaction that marks its predecessor
sent, and the claim query picks heads only, so first sends, retries, restarts and other
replicas all keep the order.

Exactly once across replicas, as far as the peer can tell: a lease is renewed while its send
is in flight, and every claim increments the row's lease generation (the fencing token). A
dispatcher marks, renews or sends a row only while (owner, generation) are still its own;
one that lost its lease (could not renew it in time) cancels the send. Fencing cannot unsend
bytes already on the wire, so an attempt starts only while the lease has longer to run than the
attempt can last (`request_span`): a lease is at least two request timeouts long, and renewed,
fenced, before an attempt when less is left. Replicas compare leases on their own clocks: keep
them in NTP sync (a skew shortens the guarantee by as much).

Owners: what a message's outcome means for its process is decided by the owner of its kind, a
`durable.DurableOwner` registered with the dispatcher (`register`): the negotiation service,
the transfer service and the clearing-house log."""
from __future__ import annotations

import asyncio
import logging
import random
import uuid
from typing import Any, Callable
from urllib.parse import quote

import aiohttp
import orjson
import sqlalchemy as sa
import stamina
from sqlalchemy.engine import Connection

from ..clock import SYSTEM_CLOCK
from ..protocol.errors import echo
from ..bodies import BodyTooLarge, read_limited
from ..store.db import Database
from ..store.prepared import Prepared
from ..store.retry import run_again_on_deadlock

from ..store.tables import outbox
from ..telemetry import continued
from .destinations import forbidden
from .durable import (ADDRESS_REFUSED, NO_PROVIDER_PID, NO_REASON_GIVEN, NO_RECIPIENT, PEER_ANSWERED,
                      PEER_ANSWERED_TOO_MUCH, PEER_REFUSED, PEER_UNREACHABLE, PROVIDER_PID_PLACEHOLDER, TOKEN_REFUSED,
                      DurableOwner, response_json)
from ..errors import NodeError

log = logging.getLogger("connector.outbox")
Json = dict[str, Any]


# Built once: rebuilding statements per call dominated the hot path (see store/db.py).
_MINE = sa.and_(outbox.c.id == sa.bindparam("b_id"), outbox.c.lease_owner == sa.bindparam("b_owner"),
                outbox.c.lease_gen == sa.bindparam("b_gen"), outbox.c.status == "pending")
_MARK_SENT = Prepared(outbox.update().where(_MINE).values(status="sent", lease_owner=None, lease_until=None,
                                                          last_error=None))
_RENEW = Prepared(outbox.update().where(_MINE).values(lease_until=sa.bindparam("b_until")))
# the next message of a process, leased in the transaction that marks its predecessor sent
_HEAD_OF = Prepared(sa.select(outbox.c.id, outbox.c.next_attempt_at, outbox.c.lease_until).where(
    outbox.c.process_id == sa.bindparam("b_pid"), outbox.c.status == "pending").order_by(outbox.c.id).limit(1))
_LEASE_FREE = sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < sa.bindparam("b_now"))
_TAKE = outbox.update().where(outbox.c.id == sa.bindparam("b_id"), outbox.c.status == "pending", _LEASE_FREE).values(
    lease_owner=sa.bindparam("b_owner"), lease_until=sa.bindparam("b_until"), lease_gen=outbox.c.lease_gen + 1,
).returning(*outbox.c)
CLEARING_HOUSE_KIND = "ClearingHouseEntry"


def _claim_statement(postgres: bool) -> Prepared:
    """Lease the due heads of their processes (the oldest pending message of each), skipping the
    rows this dispatcher already holds. Built once per backend: building it per claim cost 5% of a
    node's CPU per negotiation (bench/negotiation.py, profiled). On SQLite the held ids come as one
    JSON array (json_each), so the statement has no expanding IN list and runs as a prepared plan."""
    earlier = outbox.alias("earlier")
    if postgres:
        not_held = outbox.c.id.notin_(sa.bindparam("b_held", expanding=True))
    else:
        not_held = outbox.c.id.notin_(sa.select(sa.column("value")).select_from(
            sa.func.json_each(sa.bindparam("b_held"))).scalar_subquery())
    due = (
        sa.select(outbox.c.id)
        .where(
            outbox.c.status == "pending",
            outbox.c.next_attempt_at <= sa.bindparam("b_now"),
            _LEASE_FREE,
            ~sa.exists().where(
                earlier.c.process_id == outbox.c.process_id,
                earlier.c.status == "pending",
                earlier.c.id < outbox.c.id,
            ),
            not_held,
        )
        .order_by(outbox.c.id)
        .limit(sa.bindparam("b_limit"))
    )
    if postgres:
        due = due.with_for_update(skip_locked=True, of=outbox)
    return Prepared(
        sa.update(outbox)
        .where(outbox.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=sa.bindparam("b_owner"), lease_until=sa.bindparam("b_until"),
                lease_gen=outbox.c.lease_gen + 1)
        .returning(*outbox.c)
    )


_CLAIM_SQLITE = _claim_statement(postgres=False)
_CLAIM_POSTGRES = _claim_statement(postgres=True)


def _peer_reason(body: bytes) -> str:
    """The code and reason a peer gave for refusing, from its DSP error body (at most 200 characters each)."""
    doc = response_json(body) or {}
    code = doc.get("code") or doc.get("dspace:code")
    reason = doc.get("reason") or doc.get("dspace:reason")
    if isinstance(reason, list):
        reason = " ".join(str(r) for r in reason)
    return (f"{str(code)[:200]}: " if code else "") + (str(reason)[:200] if reason else NO_REASON_GIVEN)


class TransientSendError(NodeError):
    """Worth retrying: the peer was unreachable, timed out or answered 5xx/408/409/425/429."""


class PermanentSendError(NodeError):
    """The peer refused the message (4xx): sending it again will not help."""


class LeaseLost(NodeError):
    """Another dispatcher may hold the row now: this one must neither send nor mark it."""


def fill_provider_pid(url: str, body: Any, provider_pid: str) -> tuple[str, Any]:
    """The message with the provider's process id in place of the placeholder: by field (every
    string value that is exactly the placeholder), never by text, so a peer-chosen id cannot add
    keys to the JSON; in the URL as one percent-encoded path segment, so it cannot add path
    segments or a query."""
    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return provider_pid if value == PROVIDER_PID_PLACEHOLDER else value
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value
    return url.replace(PROVIDER_PID_PLACEHOLDER, quote(provider_pid, safe=":@!$&'()*+,;=-._~")), fill(body)


def backoff(attempts: int, initial: float, cap: float) -> float:
    """Capped exponential backoff with jitter: a random delay between half the initial step and
    min(cap, initial * 2^attempts), so that many messages refused at once do not return at once."""
    high = min(cap, initial * 2 ** min(attempts, 40))
    return random.uniform(min(initial / 2, high), high)


LEASE_MARGIN = 2.0  # seconds: what a lease must have left beyond a request's timeout


class Dispatcher:
    def __init__(self, db: Database, service: DurableOwner | None, session: aiohttp.ClientSession,
                 authorization: Any, *, lease_seconds: float = 30.0, message_deadline: float | None = 86400.0,
                 clearinghouse_deadline: float | None = None, retry_initial: float = 0.5, retry_max: float = 300.0,
                 max_in_flight: int = 64, request_timeout: float = 10.0,
                 on_unauthorized: Any = None, clock: Callable[[], float] = SYSTEM_CLOCK) -> None:
        self.db = db
        # The owners of the messages, by name, and by the kinds they own. `service` (the negotiation
        # service) is registered first and also owns any kind no owner declares.
        self.owners: dict[str, DurableOwner] = {}
        self._by_kind: dict[str, DurableOwner] = {}
        self.service = service
        if service is not None:
            self.register(service)
        self.session = session
        self.authorization = authorization  # async callable(recipient id) -> header value for that recipient
        # Called when a peer answers 401; when set, our token can be renewed, so a 401 is
        # retried with a fresh one instead of ending the message (e.g. clock skew).
        self.on_unauthorized = on_unauthorized
        # TCK profile only. The TCK moves its own state machine only after it has read our reply, and
        # its callback server answers 404 until its next step has registered a handler (one-shot
        # handlers, reference TCK.md §1.2): a scripted message sent at once after our reply meets a
        # 404, a 409 (retried for every peer, below), or is accepted and then breaks the TCK's own
        # late transition ("TERMINATED is a final state"). The profile waits `send_delay` seconds
        # before each message and retries a 404; EDC meets the same by its state machines' polling.
        self.send_delay = 0.0
        self.retry_races: frozenset[int] = frozenset()
        self.owner = uuid.uuid4().hex
        # A lease must outlive every request sent under it: once the bytes are on the wire, losing
        # the lease cannot unsend them, and another replica would send the same message again. So a
        # row is put on the wire only while its lease has a request's timeout (plus a margin for a
        # stalled event loop) still to run, and a lease is never shorter than two such spans, so the
        # renewal before an attempt is rare.
        self.request_span = request_timeout + LEASE_MARGIN
        self.lease_seconds = max(lease_seconds, 2 * self.request_span)
        self.message_deadline = message_deadline  # seconds; None: never given up
        self.clearinghouse_deadline = clearinghouse_deadline
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.max_in_flight = max_in_flight
        self.clock = clock  # the node's Clock (or any callable giving the time now): deadlines, leases, backoff
        self.timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._wake = asyncio.Event()
        self._held: dict[int, Json] = {}  # rows leased to this dispatcher and being sent, by id
        self._tasks: dict[int, asyncio.Task] = {}
        self._done: list[tuple[Json, str, Any]] = []
        self._done_event = asyncio.Event()
        self._stopping = False
        self.is_postgres = db.is_postgres

    def register(self, owner: DurableOwner) -> None:
        """Make `owner` the owner of the message kinds it declares (a later owner of a kind replaces the former)."""
        self.owners[owner.name] = owner
        for kind in owner.kinds:
            self._by_kind[kind] = owner

    @property
    def transfers(self) -> DurableOwner | None:
        return self.owners.get("transfer")

    @transfers.setter
    def transfers(self, owner: DurableOwner) -> None:
        self.register(owner)

    @property
    def clearinghouse(self) -> DurableOwner | None:
        return self.owners.get("clearinghouse")

    @clearinghouse.setter
    def clearinghouse(self, owner: DurableOwner) -> None:
        self.register(owner)

    def wake(self) -> None:
        self._wake.set()

    def deadline_seconds(self, kind: str) -> float | None:
        """How long a message of `kind` is retried before it becomes a dead letter (None: forever)."""
        return self.clearinghouse_deadline if kind.startswith(CLEARING_HOUSE_KIND) else self.message_deadline

    def deadline_of(self, entry: Json) -> float | None:
        if entry.get("deadline_at") is not None:
            return entry["deadline_at"]
        seconds = self.deadline_seconds(entry["kind"])
        return None if seconds is None else entry["created_at"] + seconds

    def submit(self, entries: list[Json]) -> None:
        """Rows a transition just committed, each the head of its process and leased to this
        dispatcher; none: it queued rows behind others, which a claim may find now."""
        for entry in entries:
            self._start(entry)
        if not entries:
            self.wake()

    def _start(self, entry: Json) -> None:
        if entry["id"] in self._held:  # cannot happen: a row is leased to one holder at a time
            return
        self._held[entry["id"]] = entry
        self._tasks[entry["id"]] = asyncio.create_task(self._send(entry))

    async def release_stale_leases(self) -> None:
        """SQLite is one process: at start every lease belongs to a process that died."""
        if not self.is_postgres:
            await self.db.transaction(lambda conn: conn.execute(
                sa.update(outbox).where(outbox.c.status == "pending").values(lease_owner=None, lease_until=None)))

    async def run(self) -> None:
        await self.release_stale_leases()
        flusher = asyncio.create_task(self._flush_loop())
        renewer = asyncio.create_task(self._renew_loop())
        try:
            while not self._stopping:
                claimed = []
                room = self.max_in_flight - len(self._held)
                if room > 0:
                    try:
                        claimed = await self._claim(room)
                    except Exception:  # database hiccup: try again shortly
                        log.exception("outbox claim failed")
                        await asyncio.sleep(0.5)
                for entry in claimed:
                    self._start(entry)
                if claimed and len(claimed) == room:
                    continue
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass
        finally:
            flusher.cancel()
            renewer.cancel()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _claim(self, limit: int) -> list[Json]:
        """Due heads of their processes whose lease is free; each claim increments the fencing token."""
        now = self.clock()
        params = {"b_now": now, "b_limit": limit, "b_owner": self.owner, "b_until": now + self.lease_seconds,
                  "b_held": orjson.dumps(list(self._held)).decode() if not self.is_postgres else list(self._held)}
        claim = _CLAIM_POSTGRES if self.is_postgres else _CLAIM_SQLITE
        rows = await self.db.transaction(lambda conn: [dict(r) for r in claim.execute(conn, params).mappings()])
        return sorted(rows, key=lambda r: r["id"])

    # ------------------------------------------------------------ leases
    async def _guard(self, entry: Json) -> None:
        """Before each attempt on the wire: the lease must still be ours for longer than the attempt
        can last (renewed here, fenced, when it has less left), else the attempt is not made."""
        if entry["id"] not in self._held:
            raise LeaseLost(entry["message_id"])
        if entry["lease_until"] - self.clock() >= self.request_span:
            return
        try:
            lost = await self.db.transaction(self._renew_tx, [entry], self.clock() + self.lease_seconds)
        except Exception:  # noqa: BLE001 - cannot prove the lease is ours: do not send
            lost = [entry]
        if lost or entry["lease_until"] - self.clock() < self.request_span:
            raise LeaseLost(entry["message_id"])

    async def _renew_loop(self) -> None:
        """Renew the lease of every row on the wire; cancel the send of a row whose lease is lost."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            held = [e for e in self._held.values() if e.get("lease_gen") is not None]
            if not held:
                continue
            until = self.clock() + self.lease_seconds
            try:
                lost = await self.db.transaction(self._renew_tx, held, until)
            except Exception:  # noqa: BLE001 - the database is away: the leases run out below
                log.warning("outbox: could not renew the leases of %d messages", len(held))
                lost = [e for e in held if e["lease_until"] <= self.clock()]
            for entry in lost:
                if entry.get("completed"):  # marked by a flush that committed while the renewal ran
                    continue
                log.warning("outbox: lost the lease of message %s; another dispatcher may send it",
                            entry["message_id"])
                self._drop(entry)

    def _renew_tx(self, conn: Connection, held: list[Json], until: float) -> list[Json]:
        lost = []
        for entry in held:
            if entry["id"] not in self._held:
                continue
            result = _RENEW.execute(conn, {"b_id": entry["id"], "b_owner": self.owner, "b_gen": entry["lease_gen"],
                                           "b_until": until})
            if result.rowcount == 1:
                entry["lease_until"] = until
            else:
                lost.append(entry)
        return lost

    def _drop(self, entry: Json) -> None:
        """Forget a row whose lease is no longer ours: no send, no mark."""
        self._held.pop(entry["id"], None)
        task = self._tasks.pop(entry["id"], None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # ------------------------------------------------------------ sending
    async def _send(self, entry: Json) -> None:
        # in the trace of the transition that queued it (whichever replica sends it, however late)
        with continued(entry.get("traceparent"), f"outbox {str(entry['kind']).split(':', 1)[0]}", entry["process_id"]):
            await self._send_now(entry)

    async def _send_now(self, entry: Json) -> None:
        try:
            await self._guard(entry)
            url, body = entry["url"], entry["body"]
            if PROVIDER_PID_PLACEHOLDER in url:
                url, body = await self._fill_provider_pid(entry)
            owner = self._owner_of(entry)
            if owner.delivers_itself:  # e.g. clearing-house entries: their client verifies the receipt
                response = await owner.deliver(entry)
                self._complete(entry, "sent", response)
                return
            payload = owner.wire_payload(entry, orjson.dumps(body))
            recipient = entry.get("recipient") or await self._recipient_of(entry)
            response = await self._post_with_retries(url, payload, entry["message_id"], recipient, entry)
            self._complete(entry, "sent", response)
        except LeaseLost:
            self._drop(entry)
        except asyncio.CancelledError:
            self._held.pop(entry["id"], None)
            raise
        except PermanentSendError as exc:
            self._complete(entry, "failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - any other failure is retried later
            self._complete(entry, "retry", f"{type(exc).__name__}: {exc}")
        finally:
            self._tasks.pop(entry["id"], None)

    async def _fill_provider_pid(self, entry: Json) -> tuple[str, Json]:
        owner = self._owner_of(entry)
        provider_pid = await self.db.read(lambda conn: owner.provider_pid_of(conn, entry["process_id"]))
        if not provider_pid:
            raise TransientSendError(NO_PROVIDER_PID)
        return fill_provider_pid(entry["url"], entry["body"], provider_pid)

    async def _recipient_of(self, entry: Json) -> str:
        """The peer of a row queued before rows named their recipient: the process's counterparty."""
        owner = self._owner_of(entry)
        found = await self.db.read(lambda conn: owner.recipient_of(conn, entry["process_id"]))
        if not found:
            raise PermanentSendError(NO_RECIPIENT)
        return found

    async def _post_with_retries(self, url: str, payload: bytes, message_id: str, recipient: str,
                                 entry: Json | None = None) -> Json | None:
        # The first attempt goes straight out: stamina's machinery cost ~15% of the event
        # loop when set up for every message, and almost every message succeeds at once.
        if self.send_delay:
            await asyncio.sleep(self.send_delay)
        if entry is not None:
            await self._guard(entry)
        try:
            return await self._post(url, payload, message_id, recipient)
        except TransientSendError:
            pass
        async for attempt in stamina.retry_context(on=TransientSendError, attempts=2, wait_initial=0.05,
                                                   wait_max=1.0, timeout=15.0):
            with attempt:
                if entry is not None:
                    await self._guard(entry)
                return await self._post(url, payload, message_id, recipient)
        return None  # pragma: no cover

    async def _post(self, url: str, payload: bytes, message_id: str, recipient: str) -> Json | None:
        headers = {
            "Content-Type": "application/json",
            "Authorization": await self.authorization(recipient),
            "Idempotency-Key": message_id,
            "X-Connector-Dispatcher": self.owner,  # which node process sent it (several may share a database)
        }
        try:
            async with self.session.post(url, data=payload, headers=headers, timeout=self.timeout,
                                         allow_redirects=False) as resp:
                try:
                    body = await read_limited(resp, 1024 * 1024)
                except BodyTooLarge:
                    log.warning("outbox: %s answered %s with over 1 MiB", url, resp.status)
                    raise PermanentSendError(PEER_ANSWERED_TOO_MUCH % {"status": resp.status}) from None
                if 200 <= resp.status < 300:
                    return response_json(body)
                # The texts below end up in process rows (termination reasons): they name what
                # happened, never where (no host, port or connection error); our log has the detail.
                # 409: Eclipse EDC answers it while its own state machine has not yet recorded the message
                # it just sent us (e.g. our agreement verification arriving before EDC's AGREED): later it passes.
                if resp.status in (408, 409, 425, 429) or resp.status >= 500 or resp.status in self.retry_races:
                    log.info("outbox: %s answered %s", url, resp.status)
                    raise TransientSendError(PEER_ANSWERED % {"status": resp.status})
                if resp.status == 401 and self.on_unauthorized is not None:
                    self.on_unauthorized()
                    raise TransientSendError(TOKEN_REFUSED)
                log.warning("outbox: %s refused a message with %s", url, resp.status)
                raise PermanentSendError(PEER_REFUSED % {"status": resp.status, "reason": _peer_reason(body)})
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.info("outbox: %s could not be reached: %s %s", url, type(exc).__name__, exc)
            if forbidden(exc):
                raise PermanentSendError(ADDRESS_REFUSED) from exc
            raise TransientSendError(PEER_UNREACHABLE) from exc

    def _owner_of(self, entry: Json) -> DurableOwner:
        """The registered owner of the message's kind (the part before any ':')."""
        owner = self._by_kind.get(entry["kind"].split(":", 1)[0])
        return owner if owner is not None else self.service  # type: ignore[return-value]

    def _complete(self, entry: Json, outcome: str, detail: Any) -> None:
        entry["completed"] = True  # its outcome is the flush's now: a renewal that misses it lost nothing
        self._done.append((entry, outcome, detail))
        self._done_event.set()

    async def _flush_loop(self) -> None:
        """Group commit: every completion that arrived while the last flush ran is
        written in one transaction."""
        while True:
            await self._done_event.wait()
            self._done_event.clear()
            batch, self._done = self._done, []
            if not batch:
                continue
            # A claim after the flush only when it can find something: a row released for a retry,
            # or room for rows a full dispatcher left. A sent row's successor is leased by the
            # flush itself; a claim after every flush was a third of the outbox's transactions.
            claim_after = len(self._held) >= self.max_in_flight or any(o != "sent" for _, o, _ in batch)
            try:
                await self._flush(batch)
            except Exception:
                claim_after = True
                log.exception("outbox flush failed; leases will expire and the rows be re-sent")
            finally:
                for entry, _, _ in batch:
                    self._held.pop(entry["id"], None)
                if claim_after:
                    self._wake.set()  # released rows are the claim query's again

    async def _flush(self, batch: list[tuple[Json, str, Any]]) -> None:
        # a deadlock between replicas' flushes rolls all the marks back: run it again, or the rows are re-sent
        ended, following, dead = await run_again_on_deadlock(
            lambda: self.db.transaction(self._flush_tx, batch, self.clock()))
        for entry, _, _ in batch:
            self._held.pop(entry["id"], None)
        for entry in following:  # each the new head of its process, leased to us with its predecessor's mark
            self._start(entry)
        for owner, pid in ended:  # refused for good: the process was terminated
            owner.ended(pid)
        for owner, pid, row, outgoing in dead:  # terminated by a dead letter: as after any transition
            owner.committed(pid, outgoing, row)
        for owner in list(self.owners.values()):
            try:
                await owner.after_flush()
            except Exception:  # noqa: BLE001 - the flush committed: its marks stand, only this hook failed
                log.exception("outbox: %s's after-flush hook failed", type(owner).__name__)

    def _flush_tx(self, conn: Connection, batch: list[tuple[Json, str, Any]], now: float):  # noqa: ANN202
        ended: list[tuple[DurableOwner, str]] = []
        following: list[Json] = []
        dead: list[tuple[DurableOwner, str, Json, list]] = []
        for entry, outcome, detail in batch:
            attempts = entry["attempts"] + 1
            fence = {"b_id": entry["id"], "b_owner": self.owner, "b_gen": entry.get("lease_gen", 0)}
            if outcome == "sent":
                result = _MARK_SENT.execute(conn, {**fence, "sent_at": now, "attempts": attempts})
                if result.rowcount == 1:
                    self._owner_of(entry).on_sent(conn, entry, detail)
                    nxt = self._lease_next(conn, entry["process_id"], now)
                    if nxt is not None:
                        following.append(nxt)
                else:
                    log.warning("outbox: message %s was delivered after its lease was taken over", entry["message_id"])
                continue
            mine = _MINE
            deadline = self.deadline_of(entry)
            if outcome == "failed":
                result = conn.execute(sa.update(outbox).where(mine).values(
                    status="failed", attempts=attempts, lease_owner=None, lease_until=None,
                    last_error=str(detail)[:2000]), fence)
                if result.rowcount == 1:
                    log.warning("outbox message %s to %s failed for good: %s", entry["message_id"], entry["url"], detail)
                    owner = self._owner_of(entry)
                    owner.on_refused(conn, entry, str(detail))
                    ended.append((owner, entry["process_id"]))
            elif deadline is not None and now >= deadline:
                result = conn.execute(sa.update(outbox).where(mine).values(
                    status="dead", attempts=attempts, lease_owner=None, lease_until=None, dead_at=now,
                    last_error=str(detail)[:2000]), fence)
                if result.rowcount == 1:
                    log.error("outbox: DEAD LETTER: message %s (%s) of process %s to %s was not delivered in %d "
                              "attempts before its deadline; the last cause: %s", entry["message_id"], entry["kind"],
                              entry["process_id"], entry.get("recipient") or "the clearing house", attempts, detail)
                    owner = self._owner_of(entry)
                    ending = owner.on_dead(conn, entry, str(detail)[:500])
                    if ending is not None:
                        dead.append((owner, entry["process_id"], *ending))
            else:
                delay = backoff(attempts, self.retry_initial, self.retry_max)
                if deadline is not None:
                    delay = min(delay, max(0.0, deadline - now))  # one last attempt at the deadline
                conn.execute(sa.update(outbox).where(mine).values(
                    attempts=attempts, next_attempt_at=now + delay, lease_owner=None, lease_until=None,
                    last_error=str(detail)[:2000]), fence)
        return ended, following, dead

    def _lease_next(self, conn: Connection, process_id: str, now: float) -> Json | None:
        """The queue advances in the transaction that marks its head sent: the next row, if due and free."""
        head = _HEAD_OF.execute(conn, {"b_pid": process_id}).first()
        if head is None:
            return None
        head_id, due_at, lease_until = head
        if due_at > now or (lease_until is not None and lease_until >= now):
            return None
        row = conn.execute(_TAKE, {"b_id": head_id, "b_now": now, "b_owner": self.owner,
                                   "b_until": now + self.lease_seconds}).mappings().first()
        return dict(row) if row is not None else None
