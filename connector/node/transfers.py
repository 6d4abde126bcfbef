"""Durable DSP transfer processes, both roles: like negotiations, every transition is
one transaction that updates the row and queues the outbound message; inbound
messages are idempotent. The provider checks the agreement and runs the policy
decision before it starts; the data itself moves through the dataplane package."""
from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any, Callable

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..compute import FORMAT as COMPUTE
from ..identity import Caller
from ..protocol import wire
from ..protocol.errors import InvalidTransition, MalformedMessage, Refused, UnknownProcess, echo
from ..protocol.messages import (
    Message,
    TransferCompletionMessage,
    TransferProcess,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from ..protocol.negotiation import Role
from ..protocol.transfer import TRANSFER_TERMINAL, TransferEvent, TransferState, next_transfer_state
from ..store.db import Database
from ..store.tables import agreements, negotiations, offers, policies, transfers, usage_counters
from .durable import PROVIDER_PID_PLACEHOLDER, DurableProcesses, Notifier, Outgoing, now_iso, own_messages
from .listing import query_page
from .usage import ACCESS_DENIED, AccessDenied, record_decision
from ..errors import NodeError

Json = dict[str, Any]
E, S = TransferEvent, TransferState
PULL, PUSH = "HttpData-PULL", "HttpData-PUSH"

_SELECT_BY_CONSUMER_PID = sa.select(transfers).where(
    transfers.c.role == sa.bindparam("b_role"), transfers.c.counterparty_id == sa.bindparam("b_peer"),
    transfers.c.consumer_pid == sa.bindparam("b_cpid"))
_INSERT_TRANSFER = transfers.insert()
_ACCESS = policies.alias("access_policy")
# An agreement with its offer's current access policy (NULL when the offer or the policy is gone):
# what decides access is read from the database, in the query that reads the agreement.
_WITH_OFFER = agreements.outerjoin(offers, offers.c.id == agreements.c.offer_id).outerjoin(
    _ACCESS, _ACCESS.c.id == offers.c.access_policy_id)
_OFFER_COLUMNS = (offers.c.asset_ids.label("offer_asset_ids"), _ACCESS.c.body.label("access_policy"))
AGREEMENT_WITH_ACCESS = sa.select(agreements, *_OFFER_COLUMNS).select_from(_WITH_OFFER)
_SELECT_AGREEMENT = (
    sa.select(agreements, negotiations.c.state.label("negotiation_state"), negotiations.c.dsp_version,
              negotiations.c.counterparty_address, negotiations.c.counterparty_id, *_OFFER_COLUMNS)
    .select_from(_WITH_OFFER.join(negotiations, negotiations.c.id == agreements.c.negotiation_id))
    .where(agreements.c.id == sa.bindparam("b_aid"), agreements.c.role == sa.bindparam("b_role"))
)
_USES = sa.select(usage_counters.c.uses).where(usage_counters.c.agreement_id == sa.bindparam("b_aid"))

log = logging.getLogger("connector.transfers")


class TransferConflict(NodeError):
    """The row changed under us; the transition is retried."""


#: a suspended transfer's `error`: who suspended it and, after ": ", the reason given (a peer's words
#: when the peer suspended it). The API keeps this English; the console reads it with SUSPENSION.
SUSPENSION = re.compile(r"suspended by the (provider|consumer)(?:: (.*))?", re.DOTALL)


def suspension_text(party: str, reason: str | None, *, peer: bool = False) -> str:
    """The `error` of a transfer `party` suspended (a peer's suspension always names its reasons)."""
    return f"suspended by the {party}" + (f": {reason or ''}" if reason or peer else "")


def transfer_format(fmt: str) -> str | None:
    """HttpData-PULL / HttpData-PUSH, read leniently (EDC and the TCK write variants)."""
    upper = fmt.rsplit("/", 1)[-1].upper()
    if upper.endswith(COMPUTE.upper()):
        return COMPUTE
    if upper.endswith("PULL"):
        return PULL
    if upper.endswith("PUSH"):
        return PUSH
    return None


class TransferService(DurableProcesses):
    name = "transfer"
    kinds = frozenset({"TransferRequestMessage", "TransferStartMessage", "TransferSuspensionMessage",
                       "TransferCompletionMessage", "TransferTerminationMessage"})
    table = transfers
    terminal = frozenset(s.value for s in TRANSFER_TERMINAL)
    termination_kind = "TransferTerminationMessage"
    initial_kind = "TransferRequestMessage:initial"
    conflict = TransferConflict

    def __init__(self, db: Database, *, participant_id: str, dsp_base: Callable[[str], str],
                 access_check: Callable[..., Any], start_address: Callable[[Json], Json],
                 clock: Callable[[], float] = time.time,
                 on_commit: Callable[[list[Json]], None] = lambda entries: None) -> None:
        self.db = db
        self.participant_id = participant_id
        self.dsp_base = dsp_base
        # (conn, agreement row with its offer's access policy, claims, now) -> None or (code, reasons)
        self.access_check = access_check
        self.start_address = start_address  # provider: the pull DataAddress for a transfer row
        # (outbox entry, payload) -> payload as sent: fills in what the database must not hold
        self.reveal: Callable[[Json, bytes], bytes] = lambda entry, payload: payload
        self.clock = clock
        self.on_commit = on_commit
        self.on_started: list[Callable[[Json], None]] = []  # e.g. the push sender
        self.on_state: list[Callable[[Json], None]] = []  # every committed state, e.g. to revoke streams
        self.notifier = Notifier()
        self.is_postgres = db.is_postgres
        self.outbox_owner: str | None = None
        self.lease_seconds = 30.0
        self.audit: Callable[..., list[Outgoing]] | None = None  # see NegotiationService.audit
        self.compute_check: Callable[..., Any] | None = None  # HKS-Compute transfers: connector.compute

    # ---------------------------------------------------------------- provider
    async def receive_request(self, version: str, msg: TransferRequestMessage, who: Caller,
                              digest: str, raw: bytes = b"") -> tuple[int, Json]:
        fmt = transfer_format(msg.format)
        if fmt is None:
            raise Refused(f"format {echo(msg.format)} is not offered; use {PULL}, {PUSH} or {COMPUTE}", code="UnsupportedFormat")
        if fmt == PUSH and not (msg.data_address and msg.data_address.get("endpoint")):
            raise MalformedMessage("a push transfer needs a dataAddress with the consumer's endpoint")
        for _ in range(5):
            try:
                status, body, row, outgoing = await self.db.transaction(
                    self._request_tx, version, msg, fmt, who, digest, self.clock(), raw)
            except sa.exc.IntegrityError:
                continue  # a concurrent duplicate won: answer from its row
            except (Refused, AccessDenied) as exc:
                await self._log_refusal(msg, who, raw, exc)
                raise
            if outgoing is not None:
                self._committed(row["id"], outgoing, row)
            return status, body
        raise Refused("could not record the transfer request, try again")

    async def _log_refusal(self, msg: TransferRequestMessage, who: Caller, raw: bytes,
                           exc: Refused | AccessDenied) -> None:
        """A refused request leaves no process behind, but the refusal is a protocol event:
        it is logged at the clearing house under the consumer's pid (the only id it has,
        and the id of the consumer's own entries for the request). A policy's refusal is
        also in the access log."""
        reasons = getattr(exc, "reasons", None)
        if reasons is not None:
            await self.db.transaction(lambda conn: record_decision(
                conn, stage="transfer-start", consumer_id=who.participant_id, reasons=reasons, now=self.clock(),
                agreement_id=msg.agreement_id, offer_id=getattr(exc, "offer_id", None)))
        if self.audit is None or not raw:
            return
        row = {"id": msg.consumer_pid, "role": Role.PROVIDER.value, "counterparty_id": who.participant_id}
        try:
            outgoing = await self.db.transaction(
                lambda conn, ts: self.audit(conn, row, raw, ts, event="transfer.refused"), self.clock())
        except Exception:  # noqa: BLE001 - e.g. an unloggable pid: the refusal itself still stands
            log.warning("could not log a refused transfer request from %s", who.participant_id, exc_info=True)
            return
        entries = [o.entry for o in outgoing if o.entry is not None]
        if entries:
            self.on_commit(entries)  # to the dispatcher, like a transition's messages

    def _request_tx(self, conn: Connection, version: str, msg: TransferRequestMessage, fmt: str, who: Caller,
                    digest: str, ts: float, raw: bytes = b"") -> tuple[int, Json, Json, list | None]:
        caller = who.participant_id
        existing = conn.execute(_SELECT_BY_CONSUMER_PID, {
            "b_role": Role.PROVIDER.value, "b_peer": caller, "b_cpid": msg.consumer_pid}).mappings().first()
        if existing is not None:  # idempotent on consumerPid
            ack = TransferProcess(existing["id"], msg.consumer_pid, existing["state"]).to_neutral()
            return 201, ack, dict(existing), None
        agreement = conn.execute(_SELECT_AGREEMENT, {"b_aid": msg.agreement_id, "b_role": Role.PROVIDER.value}
                                 ).mappings().first()
        if agreement is None or agreement["consumer_id"] != caller:
            # The same answer for "no such agreement" and "someone else's": reveal nothing.
            raise Refused(f"there is no agreement {echo(msg.agreement_id)} with this consumer", code="UnknownAgreement")
        if agreement["negotiation_state"] != "FINALIZED":
            raise Refused(f"agreement {echo(msg.agreement_id)} is not in force (its negotiation is "
                          f"{agreement['negotiation_state']})", code="AgreementNotInForce")
        check = self.compute_check if fmt == COMPUTE and self.compute_check is not None else self.access_check
        refusal = check(conn, dict(agreement), dict(who.claims), ts)
        if refusal:
            code, reasons = refusal
            if code == ACCESS_DENIED:
                raise AccessDenied(reasons, offer_id=agreement["offer_id"])
            prefix = "Refused by the agreement's policy: " if code == "PolicyDenied" else "Refused: "
            denied = Refused(prefix + " ".join(reasons), code=code)
            denied.reasons = reasons  # type: ignore[attr-defined]
            raise denied
        pid = f"urn:uuid:{uuid.uuid4()}"
        row = {
            "id": pid, "role": Role.PROVIDER.value, "state": next_transfer_state(None, Role.CONSUMER, E.REQUEST).value,
            "version": 1,
            "dsp_version": version, "counterparty_id": caller, "counterparty_address": msg.callback_address.rstrip("/"),
            "consumer_pid": msg.consumer_pid, "provider_pid": pid, "agreement_id": msg.agreement_id, "format": fmt,
            "data_address": msg.data_address if fmt == PUSH else None, "claims": dict(who.claims),
            "last_in_digest": None, "last_in_response": None, "termination": None, "error": None,
            "created_at": ts, "updated_at": ts,
        }
        ack = TransferProcess(pid, msg.consumer_pid, row["state"]).to_neutral()
        row["last_in_digest"], row["last_in_response"] = digest, {"status": 201, "body": ack}
        outgoing = self._apply(row, self.strategy_after_request(row), ts)
        conn.execute(_INSERT_TRANSFER, row)
        logged = self._audit_received(conn, row, raw, ts)
        self._write_outbox(conn, row, outgoing, ts)
        return 201, ack, row, logged + outgoing

    def strategy_after_request(self, row: Json) -> list[tuple[TransferEvent, str | None]]:
        """The provider starts a permitted transfer at once (the TCK profile scripts otherwise)."""
        return [(E.START, None)]

    def strategy_after_received(self, row: Json, event: TransferEvent) -> list[tuple[TransferEvent, str | None]]:
        """What this node sends by itself after a peer's message: nothing by default."""
        return []

    # ------------------------------------------------------------ both roles
    async def receive(self, version: str, path_pid: str, msg: Message, who: Caller, digest: str,
                      raw: bytes = b"") -> tuple[int, Json]:
        status, body, row, outgoing = await self._transition(lambda ts: self.db.transaction(
            self._receive_tx, version, path_pid, msg, who.participant_id, digest, ts, raw))
        if outgoing is not None:
            self._committed(path_pid, outgoing, row)
        return status, body

    def _receive_tx(self, conn: Connection, version: str, path_pid: str, msg: Message, caller: str, digest: str,
                    ts: float, raw: bytes = b"") -> tuple[int, Json, Json | None, list | None]:
        row = self._load(conn, path_pid, lock=True)
        if row is None or row["counterparty_id"] != caller:
            raise UnknownProcess(f"no transfer process {echo(path_pid)}")
        if row["last_in_digest"] == digest and row["last_in_response"]:
            resp = row["last_in_response"]
            return resp["status"], resp["body"], None, None
        if row["dsp_version"] != version:
            raise MalformedMessage(f"this process speaks DSP {row['dsp_version']}, not {version}")
        own = Role(row["role"])
        peer = Role.CONSUMER if own is Role.PROVIDER else Role.PROVIDER
        own_pid = getattr(msg, "provider_pid" if own is Role.PROVIDER else "consumer_pid")
        if own_pid != row["id"]:
            raise MalformedMessage("the message's process ids do not match the process in the path")
        peer_field = "consumer_pid" if own is Role.PROVIDER else "provider_pid"
        if row[peer_field] and getattr(msg, peer_field) != row[peer_field]:
            raise MalformedMessage(f"{peer_field.replace('_p', 'P')} does not belong to this process")
        event = E(msg.TYPE)
        new_state = next_transfer_state(S(row["state"]), peer, event)
        original, row = row, dict(row)
        if own is Role.CONSUMER and not row["provider_pid"]:
            row["provider_pid"] = msg.provider_pid  # type: ignore[attr-defined]
        if isinstance(msg, TransferStartMessage) and own is Role.CONSUMER and msg.data_address:
            row["data_address"] = msg.data_address  # where and how to pull
        if isinstance(msg, (TransferTerminationMessage, TransferSuspensionMessage)):
            key = "termination" if isinstance(msg, TransferTerminationMessage) else "error"
            note = {"by": peer.value, "code": msg.code, "reason": msg.reason, "at": now_iso(ts)}
            row[key] = note if key == "termination" else suspension_text(peer.value, " ".join(msg.reason), peer=True)
        row["state"] = new_state.value
        ack = TransferProcess(row["provider_pid"] or "urn:unknown", row["consumer_pid"] or "urn:unknown",
                              new_state.value).to_neutral()
        outgoing: list[Outgoing] = []
        if new_state not in TRANSFER_TERMINAL:
            outgoing = self._apply(row, self.strategy_after_received(row, event), ts)
        row["last_in_digest"], row["last_in_response"] = digest, {"status": 200, "body": ack}
        row["version"], row["updated_at"] = original["version"] + 1, ts
        self._update(conn, row, original["version"], original)
        logged = self._audit_received(conn, row, raw, ts)
        self._write_outbox(conn, row, outgoing, ts)
        return 200, ack, row, logged + outgoing

    # ------------------------------------------------------------- management
    async def start(self, *, agreement_id: str, fmt: str, push_address: Callable[[str], Json] | None = None,
                    on_insert: Callable[[Connection, Json], None] | None = None) -> Json:
        """Consumer: ask the provider of `agreement_id` for a transfer. For a push,
        `push_address(pid)` gives the DataAddress the provider should push to. `on_insert(conn, row)`
        runs in the same transaction (e.g. to record an idempotency key)."""
        ts = self.clock()
        pid = f"urn:uuid:{uuid.uuid4()}"
        destination = push_address(pid) if push_address is not None else None

        def create(conn: Connection) -> tuple[Json, list[Outgoing]]:
            agreement = conn.execute(_SELECT_AGREEMENT, {"b_aid": agreement_id, "b_role": Role.CONSUMER.value}
                                     ).mappings().first()
            if agreement is None:
                raise UnknownProcess(f"no agreement {echo(agreement_id)} held by this participant")
            if agreement["negotiation_state"] != "FINALIZED":
                raise Refused(f"agreement {echo(agreement_id)} is not finalized")
            row = {
                "id": pid, "role": Role.CONSUMER.value,
                "state": next_transfer_state(None, Role.CONSUMER, E.REQUEST).value, "version": 1,
                "dsp_version": agreement["dsp_version"], "counterparty_id": agreement["counterparty_id"],
                "counterparty_address": agreement["counterparty_address"], "consumer_pid": pid, "provider_pid": None,
                "agreement_id": agreement_id, "format": fmt, "data_address": destination, "claims": None,
                "last_in_digest": None, "last_in_response": None, "termination": None, "error": None,
                "created_at": ts, "updated_at": ts,
            }
            msg = TransferRequestMessage(consumer_pid=pid, agreement_id=agreement_id, format=fmt,
                                         callback_address=self.dsp_base(row["dsp_version"]), data_address=destination)
            outgoing = [Outgoing("TransferRequestMessage:initial", f"{row['counterparty_address']}/transfers/request",
                                 wire.to_wire(msg.to_neutral(), row["dsp_version"]))]
            conn.execute(_INSERT_TRANSFER, row)
            self._write_outbox(conn, row, outgoing, ts)
            if on_insert is not None:
                on_insert(conn, row)
            return row, outgoing

        row, outgoing = await self.db.transaction(create)
        self._committed(pid, outgoing, row)
        return row

    async def act(self, pid: str, event: TransferEvent, reason: str | None = None) -> Json:
        """A user's decision (suspend, resume, complete, terminate), through the same table."""
        row, outgoing = await self._transition(lambda ts: self.db.transaction(self._act_tx, pid, event, reason, ts))
        self._committed(pid, outgoing, row)
        return row

    def _act_tx(self, conn: Connection, pid: str, event: TransferEvent, reason: str | None,
                ts: float) -> tuple[Json, list[Outgoing]]:
        row = self._load(conn, pid, lock=True)
        if row is None:
            raise UnknownProcess(f"no transfer process {echo(pid)}")
        original, row = row, dict(row)
        outgoing = self._apply(row, [(event, reason)], ts)
        row["version"], row["updated_at"] = original["version"] + 1, ts
        self._update(conn, row, original["version"], original)
        self._write_outbox(conn, row, outgoing, ts)
        return row, outgoing

    async def list(self, limit: int = 100, offset: int = 0, cursor: str | None = None) -> list[Json]:
        """The newest first: `limit` rows after `offset`, or after `cursor` (listing.query_page)."""
        query = query_page(sa.select(transfers), transfers.c.created_at, transfers.c.id, limit=None, cursor=cursor,
                           newest_first=True).limit(limit).offset(offset)
        return await self.db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])

    async def uses(self, agreement_id: str) -> int:
        return await self.db.read(lambda conn: conn.execute(_USES, {"b_aid": agreement_id}).scalar() or 0)

    # ------------------------------------------------ the dispatcher's callbacks
    def wire_payload(self, entry: Json, payload: bytes) -> bytes:
        return self.reveal(entry, payload)  # tokens exist only on the wire

    def _terminate(self, row: Json, reason: str, ts: float) -> list[Outgoing]:
        return self._apply(row, [(E.TERMINATE, reason)], ts)

    # ---------------------------------------------------------------- helpers
    def _apply(self, row: Json, actions: list[tuple[TransferEvent, str | None]], ts: float) -> list[Outgoing]:
        role = Role(row["role"])
        out: list[Outgoing] = []
        for event, reason in actions:
            new_state = next_transfer_state(S(row["state"]), role, event)
            words = own_messages(reason)  # our own sentence's message id, beside its English text
            reason = str(reason) if reason else reason
            if event is E.TERMINATE:
                row["termination"] = {"by": role.value, "code": "Terminated", "reason": [reason] if reason else [],
                                      "at": now_iso(ts), **words}
            if event is E.SUSPEND:
                row["error"] = suspension_text(role.value, reason)
            out.append(self._outgoing(row, role, event, reason))
            row["state"] = new_state.value
        return out

    def _outgoing(self, row: Json, role: Role, event: TransferEvent, reason: str | None) -> Outgoing:
        version = row["dsp_version"]
        cpid = row["consumer_pid"]
        ppid = row["provider_pid"] or PROVIDER_PID_PLACEHOLDER
        # The path carries the receiver's pid: the consumer's callback or the provider's base.
        base = f"{row['counterparty_address']}/transfers/{cpid if role is Role.PROVIDER else ppid}"
        msg: Message
        if event is E.START:
            address = self.start_address(row) if role is Role.PROVIDER and row["format"] in (PULL, COMPUTE) else None
            msg = TransferStartMessage(provider_pid=ppid, consumer_pid=cpid, data_address=address)
            path = "start"
        elif event is E.SUSPEND:
            msg = TransferSuspensionMessage(provider_pid=ppid, consumer_pid=cpid, code="Suspended",
                                            reason=[reason] if reason else [])
            path = "suspension"
        elif event is E.COMPLETE:
            msg = TransferCompletionMessage(provider_pid=ppid, consumer_pid=cpid)
            path = "completion"
        elif event is E.TERMINATE:
            msg = TransferTerminationMessage(provider_pid=ppid, consumer_pid=cpid, code="Terminated",
                                             reason=[reason] if reason else [])
            path = "termination"
        else:
            raise InvalidTransition(f"{event.value} is not sent on an existing transfer")
        return Outgoing(msg.TYPE, f"{base}/{path}", wire.to_wire(msg.to_neutral(), version))

    def _as_sent(self, row: Json, outgoing: Outgoing) -> bytes:
        # by the digest of the bytes as they go on the wire, tokens included
        return self.reveal({"process_id": row["id"]}, orjson.dumps(outgoing.body))

    def _after_commit(self, row: Json) -> None:
        for callback in self.on_state:
            callback(row)
        if row["state"] == S.STARTED.value:
            for callback in self.on_started:
                callback(row)
