"""The node's side of the clearing house: every DSP message it sends or receives and
every data access becomes an entry signed with the node's key. Entries go out
through the outbox, in a lane of their own per process ("ch:<pid>"), so an
unreachable clearing house delays the log, loses nothing, and never holds up a
negotiation. Each receipt is verified (the checkpoint's signature, the inclusion
proof) before it is kept, and every newer checkpoint must be consistent with the
newest one seen: a rewritten or forked log raises the alarm (log line, management API)."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..clearinghouse.client import ClearingHouseClient, ClearingHouseError, LogVerificationError
from ..clearinghouse.entry import make_entry, sign_entry
from ..clearinghouse.verify import Receipt, encode_hash, open_checkpoint, verify_receipt
from ..identity.keys import load_private_key
from ..ledger.entry import entry_leaf_hash
from ..store.tables import ch_receipts, ch_state
from .negotiations import Outgoing, write_outbox

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


def event_of(message: Json) -> str | None:
    mtype = str(message.get("@type") or "").rsplit(":", 1)[-1]
    if mtype == "ContractNegotiationEventMessage":
        mtype = str(message.get("eventType") or message.get("dspace:eventType") or "").rsplit(":", 1)[-1]
    return EVENTS.get(mtype)


class ClearingHouseLog:
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

    async def start(self, session: Any) -> None:
        self.client = ClearingHouseClient(self.url, self.verifier_key, session=session,
                                          authorization=self.node.identity.outbound_authorization,
                                          audience=self.node.settings.clearinghouse_audience or self.url)
        state = await self.node.db.read(lambda conn: {r.key: r.value for r in conn.execute(sa.select(ch_state))})
        self.checkpoint = (state.get("checkpoint") or {}).get("note")
        self.alarm = (state.get("alarm") or {}).get("message")
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
            event = event_of(message if isinstance(message, dict) else orjson.loads(message))
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
        """On the event loop, after the flush committed: check the newest checkpoint received."""
        if self._seen:
            newest, self._seen = self._seen[-1], []
            await self.observe(newest)

    def on_refused(self, conn: Connection, entry: Json, error: str) -> None:
        log.error("the clearing house refused a log entry for %s: %s", entry["process_id"], error)

    def on_dead(self, conn: Connection, entry: Json, cause: str) -> None:
        """Only with [outbox] clearinghouse_deadline_seconds set (by default an entry is never given
        up): the entry stays in the outbox as a dead letter, which an operator can retry."""
        return None

    def provider_pid_of(self, conn: Connection, pid: str) -> str | None:  # pragma: no cover - never a placeholder
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

    async def status(self) -> Json:
        def counts(conn: Connection) -> tuple[int, int]:
            kept = conn.execute(sa.select(sa.func.count()).select_from(ch_receipts)).scalar() or 0
            pending = conn.execute(sa.text(
                "SELECT count(*) FROM outbox WHERE status = 'pending' AND kind LIKE 'ClearingHouseEntry:%'")).scalar()
            return kept, pending or 0
        kept, pending = await self.node.db.read(counts)
        size = open_checkpoint(self.checkpoint, self.verifier_key).size if self.checkpoint else 0
        return {"url": self.url, "receipts": kept, "pending": pending, "checkpointSize": size,
                "checkpoint": self.checkpoint, "consistent": self.alarm is None, "alarm": self.alarm}

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


def _payload(jws: str) -> bytes:
    import base64
    part = jws.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _put_state(conn: Connection, key: str, value: Json) -> None:
    conn.execute(sa.delete(ch_state).where(ch_state.c.key == key))
    conn.execute(ch_state.insert(), {"key": key, "value": value, "updated_at": time.time()})
