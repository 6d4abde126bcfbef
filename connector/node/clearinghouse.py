"""The node's side of the clearing house: every DSP message it sends or receives and
every data access becomes an entry signed with the node's key. Entries go out
through the outbox, in a lane of their own per process ("ch:<pid>"), so an
unreachable clearing house delays the log, loses nothing, and never holds up a
negotiation. Each receipt is verified (the checkpoint's signature, the inclusion
proof) before it is kept, and every newer checkpoint must be consistent with the
newest one seen: a rewritten or forked log raises the alarm (log line, management API).

The node also audits the receipts it keeps (`audit`): on a schedule (`[clearinghouse]
audit_interval`, first run jittered; `audit_batch` receipts a run, going on where the last
run stopped) and on demand (`POST /api/v1/clearinghouse/audit`, every receipt), it fetches a
fresh checkpoint, which must extend the newest one seen, and for each kept receipt, in leaf
order, asks the log for that entry with its inclusion proof in the fresh tree. An entry that
was edited, deleted or moved raises the alarm naming the first bad entry."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..clearinghouse.client import ClearingHouseClient, ClearingHouseError, EntryRefused, LogVerificationError
from ..clearinghouse.entry import make_entry, sign_entry
from ..clearinghouse.verify import Receipt, decode_hash, encode_hash, open_checkpoint, verify_receipt
from ..identity.keys import load_private_key
from ..ledger.entry import entry_leaf_hash
from ..store.tables import ch_receipts, ch_state
from .durable import DurableOwner, Outgoing, write_outbox

log = logging.getLogger("connector.clearinghouse")
Json = dict[str, Any]
KIND = "ClearingHouseEntry"

# DSP message type (and event type) -> the clearing-house event it records
EVENTS = {
    "ContractRequestMessage": "negotiation.requested", "ContractOfferMessage": "negotiation.offered",
    "ACCEPTED": "negotiation.accepted", "ContractAgreementMessage": "negotiation.agreed",
    "ContractAgreementVerificationMessage": "negotiation.verified", "FINALIZED": "negotiation.finalized",
    "ContractNegotiationTerminationMessage": "negotiation.terminated",
    "TransferRequestMessage": "transfer.requested", "TransferStartMessage": "transfer.started",
    "TransferSuspensionMessage": "transfer.suspended", "TransferCompletionMessage": "transfer.completed",
    "TransferTerminationMessage": "transfer.terminated",
}


def clearinghouse_event_of(message: Json) -> str | None:
    """The clearing-house event name a DSP message (JSON) is logged under, or None (not logged).

    Not ``protocol.messages.event_of``, which gives the state-machine event of a parsed message."""
    mtype = str(message.get("@type") or "").rsplit(":", 1)[-1]
    if mtype == "ContractNegotiationEventMessage":
        mtype = str(message.get("eventType") or message.get("dspace:eventType") or "").rsplit(":", 1)[-1]
    return EVENTS.get(mtype)


class ClearingHouseLog(DurableOwner):
    name = "clearinghouse"
    kinds = frozenset({KIND})
    delivers_itself = True  # through the client, which verifies the receipt

    def __init__(self, node: Any) -> None:
        settings = node.settings
        self.node = node
        self.url = settings.clearinghouse_url.rstrip("/")
        self.verifier_key = settings.clearinghouse_verifier_key
        self.participant_id = node.participant_id
        self._key = load_private_key(settings.directory / "keys" / "node.key")
        self.client: ClearingHouseClient | None = None
        self.checkpoint: str | None = None  # the newest checkpoint seen (verified, consistent)
        self.alarm: str | None = None
        self._checking = asyncio.Lock()
        self._seen: list[str] = []  # checkpoints from receipts kept, to check for consistency
        self._to_check: str | None = None  # the newest of them, for consistency_loop
        self._check_due = asyncio.Event()
        self._auditing = asyncio.Lock()
        self.last_audit: Json | None = None  # the outcome of the newest audit run (status, metrics)

    async def start(self, session: Any) -> None:
        self.client = ClearingHouseClient(self.url, self.verifier_key, session=session,
                                          authorization=self.node.identity.outbound_authorization,
                                          audience=self.node.settings.clearinghouse_audience or self.url)
        state = await self.node.db.read(lambda conn: {r.key: r.value for r in conn.execute(sa.select(ch_state))})
        self.checkpoint = (state.get("checkpoint") or {}).get("note")
        self.alarm = (state.get("alarm") or {}).get("message")
        self.last_audit = (state.get("audit") or {}).get("last")
        if self.alarm:
            log.error("CLEARING HOUSE ALARM (recorded earlier): %s", self.alarm)

    # ------------------------------------------------------------ entries
    def sign(self, *, process_id: str, event: str, provider: str, consumer: str, digest: bytes, ts: float) -> str:
        entry = make_entry(process_id=process_id, event=event, provider=provider, consumer=consumer,
                           sender=self.participant_id, timestamp=datetime.fromtimestamp(ts, timezone.utc),
                           sha256=digest)
        return sign_entry(entry, self._key)

    def record(self, conn: Connection, row: Json, message: Json | bytes, ts: float, *, owner: str | None,
               lease_seconds: float, event: str | None = None, digest: bytes | None = None) -> list[Outgoing]:
        """Queue the entry for a DSP message (as sent or received) in the transition's own transaction."""
        if event is None:
            event = clearinghouse_event_of(message if isinstance(message, dict) else orjson.loads(message))
            if event is None:
                return []
        if digest is None:
            digest = hashlib.sha256(message if isinstance(message, bytes) else orjson.dumps(message)).digest()
        provider, consumer = parties(row, self.participant_id)
        jws = self.sign(process_id=row["id"], event=event, provider=provider, consumer=consumer, digest=digest, ts=ts)
        out = [Outgoing(f"{KIND}:{event}", f"{self.url}/entries", {"jws": jws})]
        write_outbox(conn, f"ch:{row['id']}", out, ts, owner, lease_seconds)
        return out

    async def submit_now(self, jws: str) -> Receipt:
        """For a logging duty: the data waits until the log has accepted the entry."""
        assert self.client is not None
        receipt = await self.client.submit(jws)
        await self.node.db.transaction(self._keep, receipt, jws, time.time())
        await self.observe(receipt.checkpoint)
        return receipt

    # -------------------------------------------------- outbox delivery
    async def deliver(self, entry: Json) -> Json:
        """The dispatcher's send for an entry: through the client, which verifies the receipt
        (and rebuilds it when the entry was already logged by an earlier, unanswered try)."""
        from .outbox import PermanentSendError, TransientSendError

        assert self.client is not None
        try:
            receipt = await self.client.submit(entry["body"]["jws"])
        except LogVerificationError as exc:
            await self.node.db.transaction(self._raise_alarm, f"a receipt from the clearing house does not verify: {exc}")
            raise PermanentSendError(str(exc)) from None
        except ClearingHouseError as exc:
            status = getattr(exc, "status", None)
            if status is not None and 400 <= status < 500 and status not in (401, 408, 429):
                raise PermanentSendError(str(exc)) from None
            raise TransientSendError(str(exc)) from None
        return receipt.to_json()

    def on_sent(self, conn: Connection, entry: Json, response: Json | None) -> None:
        """In the flush transaction (no event loop here): keep the receipt, already verified."""
        jws = entry["body"]["jws"]
        receipt = Receipt.from_json(response)
        verify_receipt(receipt, self.verifier_key, leaf_hash=entry_leaf_hash(orjson.loads(_payload(jws))))
        self._keep(conn, receipt, jws, time.time())
        self._seen.append(receipt.checkpoint)

    async def after_flush(self) -> None:
        """On the event loop, after the flush committed: hand the newest checkpoint received to
        `consistency_loop`. Not awaited here: checking fetches a proof from the clearing house,
        and a slow one must not hold up the outbox's next flush."""
        if self._seen:
            self._to_check, self._seen = self._seen[-1], []
            self._check_due.set()

    async def consistency_loop(self) -> None:
        """Checks the newest checkpoint handed over, one at a time (newer ones replace a waiting one)."""
        while True:
            await self._check_due.wait()
            self._check_due.clear()
            newest, self._to_check = self._to_check, None
            if newest is None:
                continue
            try:
                await self.observe(newest)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - e.g. the database away: the next receipt's checkpoint is checked
                log.exception("the clearing house's consistency could not be checked now")

    def on_refused(self, conn: Connection, entry: Json, error: str) -> None:
        log.error("the clearing house refused a log entry for %s: %s", entry["process_id"], error)

    def on_dead(self, conn: Connection, entry: Json, cause: str) -> None:
        """Only with [outbox] clearinghouse_deadline_seconds set (by default an entry is never given
        up): the entry stays in the outbox as a dead letter, which an operator can retry."""
        return None

    def _keep(self, conn: Connection, receipt: Receipt, jws: str, ts: float) -> None:
        payload = orjson.loads(_payload(jws))
        conn.execute(ch_receipts.insert(), {
            "process_id": payload["processId"], "event": payload["event"], "leaf_index": receipt.leaf_index,
            "leaf_hash": encode_hash(receipt.leaf_hash), "tree_size": receipt.tree_size,
            "receipt": receipt.to_json(), "created_at": ts})

    # ------------------------------------------------------- consistency
    async def observe(self, newer: str) -> None:
        """Check that `newer` extends the newest checkpoint this node has seen, then remember it."""
        if self.client is None:
            return
        async with self._checking:
            try:
                new_cp = open_checkpoint(newer, self.verifier_key)
                if self.checkpoint is not None:
                    old_cp = open_checkpoint(self.checkpoint, self.verifier_key)
                    if new_cp.size == old_cp.size and new_cp.root_hash == old_cp.root_hash:
                        return
                    if new_cp.size < old_cp.size:
                        # A late receipt, or a log that shrank: the log's head must still extend
                        # the newest checkpoint we saw (the client fetches it and checks).
                        await self.client.check_consistency(old_cp)
                        return
                    await self.client.check_consistency(old_cp, new_cp)
            except LogVerificationError as exc:
                await self.node.db.transaction(self._raise_alarm, f"the clearing house's log is not append-only: {exc}")
                return
            except ClearingHouseError as exc:
                log.warning("could not check the clearing house's consistency now: %s", exc)
                return
            self.checkpoint = newer
            await self.node.db.transaction(lambda conn: _put_state(conn, "checkpoint", {"note": newer}))

    def _raise_alarm(self, conn: Connection, message: str) -> None:
        self.alarm = message
        log.error("CLEARING HOUSE ALARM: %s", message)
        _put_state(conn, "alarm", {"message": message, "at": time.time()})

    # ------------------------------------------------------------ audit
    async def audit_loop(self) -> None:
        """Audit `audit_batch` receipts every `audit_interval` seconds; the first run is jittered
        (somewhere in the first interval), so nodes started together do not audit together."""
        interval = self.node.settings.clearinghouse_audit_interval
        if not interval:
            return
        await asyncio.sleep(random.uniform(0.1, 1.0) * interval)
        while True:
            try:
                await self.audit(limit=self.node.settings.clearinghouse_audit_batch)
            except Exception:  # noqa: BLE001 - the next run tries again; this one is in the log
                log.exception("the scheduled audit of the clearing-house receipts failed")
            await asyncio.sleep(interval * random.uniform(0.9, 1.1))

    async def audit(self, *, limit: int | None = None) -> Json:
        """Re-check kept receipts against a fresh checkpoint (which must extend the newest seen).

        ``limit=None`` (on demand): every receipt, from the lowest leaf index. Otherwise at most
        ``limit`` receipts, after the leaf index where the previous run stopped (from the start
        again once a pass is complete). Raises the alarm, naming the first bad entry, on any
        entry that was edited, deleted or moved; returns the run's outcome (also in `status`).
        A run that cannot be completed (the log unreachable) verifies nothing and says so."""
        if self.client is None:
            raise ClearingHouseError("the clearing-house client is not started")
        async with self._auditing:
            state = await self.node.db.read(
                lambda conn: conn.execute(sa.select(ch_state.c.value).where(ch_state.c.key == "audit")).scalar())
            state = state or {}
            after = -1 if limit is None else int(state.get("after", -1))
            started = time.time()
            outcome: Json = {"at": started, "scope": "all" if limit is None else "batch", "from": after + 1,
                             "checked": 0, "ok": False, "complete": False, "firstBadEntry": None, "error": None}
            try:
                new_cp, note = await self.client.checkpoint()
                if self.checkpoint is not None:
                    await self.client.check_consistency(self.checkpoint, new_cp)
                outcome["treeSize"] = new_cp.size
                page = min(limit or 500, 500)
                while True:
                    rows = await self.node.db.read(_receipts_after, after, page)
                    if not rows:
                        after = -1  # a pass is complete: the next scheduled run starts again
                        break
                    await self._check_page(rows, new_cp)
                    outcome["checked"] += len(rows)
                    after = rows[-1]["leaf_index"]
                    if limit is not None and outcome["checked"] >= limit:
                        break
            except LogVerificationError as exc:
                bad = await self.node.db.read(_receipt_at, exc.index) if exc.index is not None else None
                outcome["firstBadEntry"] = {"leafIndex": exc.index, "reason": str(exc)[:300],
                                            **({"processId": bad["process_id"], "event": bad["event"]} if bad else {})}
                where = f"#{exc.index}" if exc.index is not None else "unknown (the log as a whole)"
                what = f" ({bad['event']} of process {bad['process_id']})" if bad else ""
                await self.node.db.transaction(
                    self._raise_alarm, f"the audit of this node's receipts failed: first bad entry {where}{what}: {exc}")
                after = -1  # the next run starts over, from the lowest index
            except ClearingHouseError as exc:
                log.warning("the audit of the clearing-house receipts could not be completed: %s", exc)
                outcome["error"] = ("the clearing house could not be reached or did not answer; "
                                    "nothing was verified in this run")
            else:
                outcome["ok"] = outcome["complete"] = True
                if self.checkpoint is None or open_checkpoint(self.checkpoint, self.verifier_key).size < new_cp.size:
                    self.checkpoint = note
                    await self.node.db.transaction(lambda conn: _put_state(conn, "checkpoint", {"note": note}))
                log.info("audit of %d clearing-house receipts against the tree of size %d: OK",
                         outcome["checked"], new_cp.size)
            outcome["seconds"] = round(time.time() - started, 3)
            self.last_audit = outcome
            await self.node.db.transaction(lambda conn: _put_state(conn, "audit", {"after": after, "last": outcome}))
            return outcome

    async def _check_page(self, rows: list[Json], new_cp: Any) -> None:
        """Check a page of receipts (a few at a time); raise for the lowest bad leaf index."""
        assert self.client is not None
        client = self.client
        gate = asyncio.Semaphore(8)

        async def one(row: Json) -> LogVerificationError | None:
            receipt = Receipt(leaf_index=row["leaf_index"], leaf_hash=decode_hash(row["leaf_hash"], "kept leaf hash"),
                              tree_size=0, checkpoint="", inclusion_proof=())  # only index and leaf are asked
            async with gate:
                try:
                    await client.check_kept(receipt, new_cp)
                except LogVerificationError as exc:
                    return exc
                except EntryRefused as exc:
                    if exc.status in (401, 429):
                        raise
                    return LogVerificationError(f"entry {receipt.leaf_index}: the log refuses to serve it to this "
                                                f"node, which logged it ({exc.status} {exc.code})", receipt.leaf_index)
            return None

        results = await asyncio.gather(*(one(r) for r in rows), return_exceptions=True)
        for result in results:  # the log unreachable, our token refused ...: the run is incomplete
            if isinstance(result, BaseException):
                raise result
        problems = [p for p in results if p is not None]
        if problems:
            raise min(problems, key=lambda p: p.index if p.index is not None else -1)

    async def status(self) -> Json:
        def counts(conn: Connection) -> tuple[int, int]:
            kept = conn.execute(sa.select(sa.func.count()).select_from(ch_receipts)).scalar() or 0
            pending = conn.execute(sa.text(
                "SELECT count(*) FROM outbox WHERE status = 'pending' AND kind LIKE 'ClearingHouseEntry:%'")).scalar()
            return kept, pending or 0
        kept, pending = await self.node.db.read(counts)
        size = open_checkpoint(self.checkpoint, self.verifier_key).size if self.checkpoint else 0
        return {"url": self.url, "receipts": kept, "pending": pending, "checkpointSize": size,
                "checkpoint": self.checkpoint, "consistent": self.alarm is None, "alarm": self.alarm,
                "audit": self.last_audit}

    async def receipts(self, process_id: str) -> list[Json]:
        query = sa.select(ch_receipts).where(ch_receipts.c.process_id == process_id).order_by(ch_receipts.c.id)
        return await self.node.db.read(lambda conn: [
            {"event": r["event"], "leafIndex": r["leaf_index"], "treeSize": r["tree_size"], "receipt": r["receipt"]}
            for r in conn.execute(query).mappings()])


def parties(row: Json, me: str) -> tuple[str, str]:
    """(provider, consumer) of a negotiation or transfer row, seen from this node."""
    if row["role"] == "provider":
        return me, row["counterparty_id"]
    return row["counterparty_id"], me


def _receipts_after(conn: Connection, after: int, limit: int) -> list[Json]:
    """Kept (leaf index, leaf hash) pairs above `after`, lowest index first (a replayed entry's
    receipts share one pair; two hashes at one index would both be checked, and one fails)."""
    query = (sa.select(ch_receipts.c.leaf_index, ch_receipts.c.leaf_hash).distinct()
             .where(ch_receipts.c.leaf_index > after)
             .order_by(ch_receipts.c.leaf_index, ch_receipts.c.leaf_hash).limit(limit))
    return [dict(r) for r in conn.execute(query).mappings()]


def _receipt_at(conn: Connection, index: int) -> Json | None:
    row = conn.execute(sa.select(ch_receipts.c.process_id, ch_receipts.c.event)
                       .where(ch_receipts.c.leaf_index == index).limit(1)).mappings().first()
    return dict(row) if row is not None else None


def _payload(jws: str) -> bytes:
    import base64
    part = jws.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _put_state(conn: Connection, key: str, value: Json) -> None:
    """One upsert: replicas sharing a PostgreSQL database write the same key at once, and a delete
    then insert let the second writer fail on the first one's new row (the flush's checkpoint, an alarm)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(ch_state).values(key=key, value=value, updated_at=time.time())
    conn.execute(stmt.on_conflict_do_update(index_elements=[ch_state.c.key],
                                            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at}))
