"""The outbox dispatcher: sends what transitions committed, in order per process,
with retries and backoff, under a lease so that several node processes sharing one
PostgreSQL database never send the same message twice."""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import aiohttp
import orjson
import sqlalchemy as sa
import stamina
from sqlalchemy.engine import Connection

from ..protocol.errors import echo
from ..bodies import BodyTooLarge, read_limited
from ..store.db import Database
from ..store.prepared import Prepared

from ..store.tables import negotiations, outbox, transfers
from .destinations import forbidden
from .negotiations import PROVIDER_PID_PLACEHOLDER, NegotiationService, response_json

log = logging.getLogger("connector.outbox")
Json = dict[str, Any]


# Built once: rebuilding statements per call dominated the hot path (see store/db.py).
_MARK_SENT = Prepared(outbox.update().where(
    outbox.c.id == sa.bindparam("b_id"), outbox.c.lease_owner == sa.bindparam("b_owner"), outbox.c.status == "pending",
).values(status="sent", lease_owner=None, lease_until=None, last_error=None))


def _peer_reason(body: bytes) -> str:
    """The code and reason a peer gave for refusing, from its DSP error body (at most 200 characters each)."""
    doc = response_json(body) or {}
    code = doc.get("code") or doc.get("dspace:code")
    reason = doc.get("reason") or doc.get("dspace:reason")
    if isinstance(reason, list):
        reason = " ".join(str(r) for r in reason)
    return (f"{str(code)[:200]}: " if code else "") + (str(reason)[:200] if reason else "no reason given")


class TransientSendError(Exception):
    """Worth retrying: the peer was unreachable, timed out or answered 5xx/408/409/425/429."""


class PermanentSendError(Exception):
    """The peer refused the message (4xx): sending it again will not help."""


class Dispatcher:
    def __init__(self, db: Database, service: NegotiationService, session: aiohttp.ClientSession,
                 authorization: Any, *, lease_seconds: float = 30.0, max_attempts: int = 6,
                 max_in_flight: int = 64, request_timeout: float = 10.0,
                 on_unauthorized: Any = None) -> None:
        self.db = db
        self.service = service
        self.transfers: Any = None  # the transfer service, for Transfer* messages (set by the node)
        self.clearinghouse: Any = None  # the clearing-house log, for its entries (set by the node)
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
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.max_in_flight = max_in_flight
        self.timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._wake = asyncio.Event()
        self._in_flight: set[int] = set()
        self._busy: set[str] = set()  # processes with a message on the wire
        self._queued: dict[str, list[Json]] = {}  # their next messages, in order
        self._provider_pids: dict[str, str] = {}  # learnt from initial ACKs not yet flushed
        self._done: list[tuple[Json, str, Any]] = []
        self._done_event = asyncio.Event()
        self._stopping = False
        self.is_postgres = db.is_postgres

    def wake(self) -> None:
        self._wake.set()

    def submit(self, entries: list[Json]) -> None:
        """Rows a transition just committed, already leased to this dispatcher."""
        for entry in entries:
            pid = entry["process_id"]
            if pid in self._busy:
                self._queued.setdefault(pid, []).append(entry)
            else:
                self._start(entry)

    def _start(self, entry: Json) -> None:
        self._busy.add(entry["process_id"])
        self._in_flight.add(entry["id"])
        asyncio.create_task(self._send(entry))

    def _advance(self, pid: str) -> None:
        """The previous message of `pid` was delivered: send its next one at once."""
        queue = self._queued.get(pid)
        if queue:
            entry = queue.pop(0)
            if not queue:
                del self._queued[pid]
            self._in_flight.add(entry["id"])
            asyncio.create_task(self._send(entry))
        else:
            self._busy.discard(pid)

    async def release_stale_leases(self) -> None:
        """SQLite is one process: at start every lease belongs to a process that died."""
        if not self.is_postgres:
            await self.db.transaction(lambda conn: conn.execute(
                sa.update(outbox).where(outbox.c.status == "pending").values(lease_owner=None, lease_until=None)))

    async def run(self) -> None:
        await self.release_stale_leases()
        flusher = asyncio.create_task(self._flush_loop())
        try:
            while not self._stopping:
                claimed = []
                room = self.max_in_flight - len(self._in_flight)
                if room > 0:
                    try:
                        claimed = await self._claim(room)
                    except Exception:  # database hiccup: try again shortly
                        log.exception("outbox claim failed")
                        await asyncio.sleep(0.5)
                for entry in claimed:
                    if entry["process_id"] in self._busy:  # cannot happen with the ordering rule; be safe
                        self._queued.setdefault(entry["process_id"], []).insert(0, entry)
                    else:
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

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _claim(self, limit: int) -> list[Json]:
        now = time.time()
        earlier = outbox.alias("earlier")
        due = (
            sa.select(outbox.c.id)
            .where(
                outbox.c.status == "pending",
                outbox.c.next_attempt_at <= now,
                sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now),
                ~sa.exists().where(
                    earlier.c.process_id == outbox.c.process_id,
                    earlier.c.status == "pending",
                    earlier.c.id < outbox.c.id,
                ),
            )
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if self.is_postgres:
            due = due.with_for_update(skip_locked=True, of=outbox)
        if self._in_flight:
            due = due.where(outbox.c.id.notin_(list(self._in_flight)))
        claim = (
            sa.update(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(lease_owner=self.owner, lease_until=now + self.lease_seconds)
            .returning(*outbox.c)
        )
        rows = await self.db.transaction(lambda conn: [dict(r) for r in conn.execute(claim).mappings()])
        return sorted(rows, key=lambda r: r["id"])

    async def _send(self, entry: Json) -> None:
        try:
            url, body = entry["url"], entry["body"]
            if PROVIDER_PID_PLACEHOLDER in url:
                url, body = await self._fill_provider_pid(entry)
            deliver = getattr(self._owner_of(entry), "deliver", None)
            if deliver is not None:  # e.g. clearing-house entries: their client verifies the receipt
                response = await deliver(entry)
                self._complete(entry, "sent", response)
                self._advance(entry["process_id"])
                return
            payload = orjson.dumps(body)
            if entry["kind"].startswith("Transfer") and self.transfers is not None:
                payload = self.transfers.reveal(entry, payload)  # tokens exist only on the wire
            recipient = entry.get("recipient") or await self._recipient_of(entry)
            response = await self._post_with_retries(url, payload, entry["message_id"], recipient)
            if entry["kind"].endswith("RequestMessage:initial") and isinstance(response, dict):
                learnt = response.get("providerPid") or response.get("dspace:providerPid")
                if isinstance(learnt, str):
                    self._provider_pids[entry["process_id"]] = learnt
            self._complete(entry, "sent", response)
            self._advance(entry["process_id"])
        except PermanentSendError as exc:
            self._complete(entry, "failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - any other failure is retried later
            self._complete(entry, "retry", f"{type(exc).__name__}: {exc}")

    async def _fill_provider_pid(self, entry: Json) -> tuple[str, Json]:
        provider_pid = self._provider_pids.get(entry["process_id"])
        if provider_pid is None:
            owner = self._owner_of(entry)
            if owner is self.service:
                query = sa.select(negotiations.c.provider_pid).where(negotiations.c.id == entry["process_id"])
                provider_pid = await self.db.read(lambda conn: conn.execute(query).scalar())
            else:
                provider_pid = await self.db.read(lambda conn: owner.provider_pid_of(conn, entry["process_id"]))
        if not provider_pid:
            raise TransientSendError("the provider's process id is not known yet")
        text = orjson.dumps(entry["body"]).decode().replace(PROVIDER_PID_PLACEHOLDER, provider_pid)
        return entry["url"].replace(PROVIDER_PID_PLACEHOLDER, provider_pid), orjson.loads(text)

    async def _recipient_of(self, entry: Json) -> str:
        """The peer of a row queued before rows named their recipient: the process's counterparty."""
        table = transfers if entry["kind"].startswith("Transfer") else negotiations
        query = sa.select(table.c.counterparty_id).where(table.c.id == entry["process_id"])
        found = await self.db.read(lambda conn: conn.execute(query).scalar())
        if not found:
            raise PermanentSendError("the message's recipient is not known")
        return found

    async def _post_with_retries(self, url: str, payload: bytes, message_id: str, recipient: str) -> Json | None:
        # The first attempt goes straight out: stamina's machinery cost ~15% of the event
        # loop when set up for every message, and almost every message succeeds at once.
        if self.send_delay:
            await asyncio.sleep(self.send_delay)
        try:
            return await self._post(url, payload, message_id, recipient)
        except TransientSendError:
            pass
        async for attempt in stamina.retry_context(on=TransientSendError, attempts=2, wait_initial=0.05,
                                                   wait_max=1.0, timeout=15.0):
            with attempt:
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
                    raise PermanentSendError(f"the peer answered {resp.status} with over 1 MiB") from None
                if 200 <= resp.status < 300:
                    return response_json(body)
                # The texts below end up in process rows (termination reasons): they name what
                # happened, never where (no host, port or connection error); our log has the detail.
                # 409: Eclipse EDC answers it while its own state machine has not yet recorded the message
                # it just sent us (e.g. our agreement verification arriving before EDC's AGREED): later it passes.
                if resp.status in (408, 409, 425, 429) or resp.status >= 500 or resp.status in self.retry_races:
                    log.info("outbox: %s answered %s", url, resp.status)
                    raise TransientSendError(f"the peer answered {resp.status}")
                if resp.status == 401 and self.on_unauthorized is not None:
                    self.on_unauthorized()
                    raise TransientSendError("the peer refused our token (401); retrying with a new one")
                log.warning("outbox: %s refused a message with %s", url, resp.status)
                raise PermanentSendError(f"the peer refused the message ({resp.status}) with {_peer_reason(body)}")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.info("outbox: %s could not be reached: %s %s", url, type(exc).__name__, exc)
            if forbidden(exc):
                raise PermanentSendError("the peer's address is refused (rule: no private destinations unless "
                                         "[dsp] allowed_destinations names them)") from exc
            raise TransientSendError("the peer could not be reached") from exc

    def _owner_of(self, entry: Json) -> Any:
        """The service whose process the message belongs to."""
        if entry["kind"].startswith("Transfer") and self.transfers is not None:
            return self.transfers
        if entry["kind"].startswith("ClearingHouseEntry") and self.clearinghouse is not None:
            return self.clearinghouse
        return self.service

    def _complete(self, entry: Json, outcome: str, detail: Any) -> None:
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
            try:
                await self._flush(batch)
            except Exception:
                log.exception("outbox flush failed; leases will expire and the rows be re-sent")
            finally:
                for entry, outcome, _ in batch:
                    self._in_flight.discard(entry["id"])
                    if outcome != "sent":
                        # Its followers go back to the claim query, which keeps the order.
                        self._queued.pop(entry["process_id"], None)
                        self._busy.discard(entry["process_id"])
                    if entry["kind"].endswith("RequestMessage:initial"):
                        self._provider_pids.pop(entry["process_id"], None)
                if any(outcome != "sent" for _, outcome, _ in batch):
                    self._wake.set()  # released rows are the claim query's again

    async def _flush(self, batch: list[tuple[Json, str, Any]]) -> None:
        ended = await self.db.transaction(self._flush_tx, batch, time.time())
        if self.clearinghouse is not None:
            await self.clearinghouse.after_flush()
        for pid in ended:  # refused for good: the negotiation was terminated
            self.service.notifier.notify(pid)
            if self.transfers is not None:
                self.transfers.notifier.notify(pid)

    def _flush_tx(self, conn: Connection, batch: list[tuple[Json, str, Any]], now: float) -> list[str]:
        ended = []
        for entry, outcome, detail in batch:
            attempts = entry["attempts"] + 1
            if outcome == "sent":
                result = _MARK_SENT.execute(conn, {"b_id": entry["id"], "b_owner": self.owner, "sent_at": now,
                                                   "attempts": attempts})
                if result.rowcount == 1:
                    self._owner_of(entry).on_sent(conn, entry, detail)
                continue
            mine = sa.and_(outbox.c.id == entry["id"], outbox.c.lease_owner == self.owner, outbox.c.status == "pending")
            # A clearing-house entry has no deadline: an unreachable log delays it, never drops it (the
            # clearing house accepts it late within its [clearinghouse] max_entry_age_seconds window).
            gives_up = attempts >= self.max_attempts and not entry["kind"].startswith("ClearingHouseEntry")
            if outcome == "failed" or gives_up:
                result = conn.execute(sa.update(outbox).where(mine).values(
                    status="failed", attempts=attempts, lease_owner=None, lease_until=None, last_error=str(detail)[:2000]))
                if result.rowcount == 1:
                    log.warning("outbox message %s to %s failed for good: %s", entry["message_id"], entry["url"], detail)
                    self._owner_of(entry).on_refused(conn, entry, str(detail))
                    ended.append(entry["process_id"])
            else:
                delay = min(300.0, 0.5 * 2 ** attempts)
                conn.execute(sa.update(outbox).where(mine).values(
                    attempts=attempts, next_attempt_at=now + delay, lease_owner=None, lease_until=None,
                    last_error=str(detail)[:2000]))
        return ended
