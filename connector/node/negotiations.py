"""Durable contract negotiation: every transition is one transaction that updates
the negotiation row (optimistic version check, row lock on PostgreSQL) and puts
what must be sent into the outbox. Inbound messages are idempotent."""
from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..store.db import Database
from ..store.prepared import Prepared

from .. import failpoints
from ..protocol import wire
from ..protocol.jsonld import CONTEXT_2024_1
from ..protocol.errors import InvalidTransition, MalformedMessage, ProtocolError, Refused, UnknownProcess, echo
from ..protocol.messages import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiation,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    Message,
    event_of,
)
from ..protocol.negotiation import TERMINAL, Event, Role, State, next_state
from ..identity import Caller
from ..protocol.policies import agreement_from_offer, message_offer, same_terms
from ..store.tables import agreements, assets, negotiations, outbox
from .automation import Action, DefaultStrategy, View
from .catalog import CatalogService
from .usage import (ACCESS_DENIED, AccessDenied, access_denied_text, access_refusal, decide, denial_reasons,
                    record_decision)

Json = dict[str, Any]
PROVIDER_PID_PLACEHOLDER = "__PROVIDER_PID__"


# Statements built and compiled once: building them per call (values(**row)) cost most
# of a transition, and on SQLite they skip SQLAlchemy's execution path (store/prepared.py).
_SELECT_NEGOTIATION = Prepared(sa.select(negotiations).where(negotiations.c.id == sa.bindparam("b_pid")))
_SELECT_NEGOTIATION_LOCKED = Prepared(_SELECT_NEGOTIATION.statement.with_for_update())
_SELECT_BY_CONSUMER_PID = Prepared(sa.select(negotiations).where(
    negotiations.c.role == sa.bindparam("b_role"),
    negotiations.c.counterparty_id == sa.bindparam("b_peer"),
    negotiations.c.consumer_pid == sa.bindparam("b_cpid"),
))
_INSERT_NEGOTIATION = Prepared(negotiations.insert())
_UPDATE_NEGOTIATION = Prepared(negotiations.update().where(
    negotiations.c.id == sa.bindparam("b_id"), negotiations.c.version == sa.bindparam("b_old_version")))
_ASSET_PROPERTIES = Prepared(sa.select(assets.c.properties).where(assets.c.id == sa.bindparam("b_asset")))
_SELECT_AGREEMENT = Prepared(sa.select(agreements.c.id).where(agreements.c.id == sa.bindparam("b_aid")))
_INSERT_AGREEMENT = Prepared(agreements.insert())
_INSERT_OUTBOX = Prepared(outbox.insert().returning(outbox.c.id))
_PENDING_OF_PROCESS = Prepared(sa.select(outbox.c.id).where(
    outbox.c.process_id == sa.bindparam("b_pid"), outbox.c.status == "pending").limit(1))
_SET_PROVIDER_PID = Prepared(negotiations.update().where(
    negotiations.c.id == sa.bindparam("b_id"), negotiations.c.provider_pid.is_(None)))


class Conflict(Exception):
    """The row changed under us; the whole transition is retried."""


def now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_AGREED_OR_LATER = (State.AGREED, State.VERIFIED, State.FINALIZED)


def message_digest(path_pid: str | None, body: bytes) -> str:
    return hashlib.sha256((path_pid or "").encode() + b"\x00" + body).hexdigest()


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


class NegotiationService:
    def __init__(self, db: Database, *, participant_id: str, dsp_base: Callable[[str], str],
                 catalog: CatalogService, strategy: Any = None, clock: Callable[[], float] = time.time,
                 on_commit: Callable[[list[Json]], None] = lambda entries: None) -> None:
        self.db = db
        self.participant_id = participant_id
        self.dsp_base = dsp_base
        self.catalog = catalog
        self.strategy = strategy or DefaultStrategy()
        self.clock = clock
        self.on_commit = on_commit
        self.notifier = Notifier()
        self.outbox_owner: str | None = None  # set by the node to its dispatcher's lease owner
        self.lease_seconds = 30.0
        # audit(conn, row, message as sent (dict) or received (bytes), ts) -> clearing-house entries queued
        self.audit: Callable[..., list[Outgoing]] | None = None
        # on_agreement(conn, agreement row, negotiation row, ts, peer's verified claims or None), in the
        # transaction that records the agreement (e.g. the cross-border compliance record)
        self.on_agreement: list[Callable[..., None]] = []
        self.is_postgres = db.is_postgres

    # ----------------------------------------------------------------- inbound
    async def receive_initial_request(self, version: str, msg: ContractRequestMessage, caller: Caller,
                                      digest: str, raw: bytes = b"") -> tuple[int, Json]:
        if msg.provider_pid:
            raise MalformedMessage("an initial ContractRequestMessage must not carry providerPid")
        if not msg.callback_address:
            raise MalformedMessage("ContractRequestMessage: required field 'callbackAddress' is missing")
        for _ in range(5):
            try:
                status, body, pid, outgoing, row = await self.db.transaction(
                    self._initial_request_tx, version, msg, caller, digest, self.clock(), raw)
            except sa.exc.IntegrityError:
                continue  # a concurrent duplicate won the insert: answer from its row
            except AccessDenied as exc:  # no negotiation is created; the refusal is in the access log
                await self.db.transaction(lambda conn: record_decision(
                    conn, stage="negotiation", consumer_id=caller.participant_id, reasons=exc.reasons,
                    now=self.clock(), offer_id=exc.offer_id))
                raise
            if outgoing is not None:
                self._committed(pid, outgoing, row)
            return status, body
        raise Refused("could not record the request, try again")

    def _initial_request_tx(self, conn: Connection, version: str, msg: ContractRequestMessage, who: Caller,
                            digest: str, ts: float, raw: bytes = b"") -> tuple[int, Json, str, list | None, Json | None]:
        caller = who.participant_id
        existing = _SELECT_BY_CONSUMER_PID.execute(conn, {
            "b_role": Role.PROVIDER.value, "b_peer": caller, "b_cpid": msg.consumer_pid}).mappings().first()
        if existing is not None:
            # DSP: providers are idempotent on consumerPid; a replay gets the same answer.
            if existing["last_in_digest"] == digest and existing["last_in_response"]:
                resp = existing["last_in_response"]
                return resp["status"], resp["body"], existing["id"], None, None
            ack = ContractNegotiation(existing["id"], msg.consumer_pid, State(existing["state"]))
            return 201, ack.to_neutral(), existing["id"], None, None
        offer_id = msg.offer["@id"]
        found = self.catalog.find_offer(conn, offer_id)
        if found is None:
            raise Refused(f"offer {echo(offer_id)} is not offered by this provider", code="UnknownOffer")
        dataset_id, policy = found.dataset_id, found.policy
        target = msg.offer.get("target")
        if target is not None and target != dataset_id:
            raise Refused(f"offer {echo(offer_id)} is for dataset {echo(dataset_id)}, not {echo(target)}", code="TargetMismatch")
        props = _ASSET_PROPERTIES.execute(conn, {"b_asset": dataset_id}).scalar()
        denied = access_refusal(self.catalog.policies, found.access_policy, caller=who, target=dataset_id, now=ts,
                                asset_properties=props, offer_id=offer_id)
        if denied is not None:  # the offer's access policy does not admit this requester: nothing is created
            raise AccessDenied(denied, offer_id=offer_id)
        pid = f"urn:uuid:{uuid.uuid4()}"
        own_offer = message_offer(offer_id, policy, dataset_id, self.participant_id)
        row = {
            "id": pid, "role": Role.PROVIDER.value, "state": next_state(None, Role.CONSUMER, Event.REQUEST).value,
            "version": 1, "dsp_version": version, "counterparty_id": caller,
            "counterparty_address": msg.callback_address.rstrip("/"),
            "consumer_pid": msg.consumer_pid, "provider_pid": pid, "dataset_id": dataset_id,
            "offer_id": offer_id, "offer": own_offer, "agreement": None,
            "last_in_digest": None, "last_in_response": None, "termination": None, "error": None,
            "created_at": ts, "updated_at": ts,
        }
        view_extra = {"proposal": msg.offer, "counter_requests": 0}
        refusal = self._refusal(row, policy, who, ts, props)
        if refusal is not None:  # the contract policy does not permit this requester: say why, and end
            actions = [refusal]
        else:
            # No _gate here: this transaction just found the offer and decided both its policies.
            actions = self.strategy.after_received(self._view(row, **view_extra), Event.REQUEST)
        outgoing = self._apply_actions(row, actions, ts)
        ack = ContractNegotiation(pid, msg.consumer_pid, State.REQUESTED).to_neutral()
        row["last_in_digest"] = digest
        row["last_in_response"] = {"status": 201, "body": ack}
        _INSERT_NEGOTIATION.execute(conn, row)
        logged = self._audit_received(conn, row, raw, ts)
        self._write_side_effects(conn, row, outgoing, ts, offer_id=found.offer_id, who=who)
        return 201, ack, pid, logged + outgoing, row

    async def receive(self, version: str, path_pid: str, path_role: Role | None, msg: Message, caller: Caller,
                      digest: str, raw: bytes = b"") -> tuple[int, Json]:
        """A message for an existing process. `path_role` is the role the path is for (None: either)."""
        for _ in range(5):
            try:
                status, body, outgoing, row = await self.db.transaction(
                    self._receive_tx, version, path_pid, path_role, msg, caller, digest, self.clock(), raw)
            except Conflict:
                continue
            if outgoing is not None:
                self._committed(path_pid, outgoing, row)
            return status, body
        raise Refused("the negotiation is busy, try again")

    def _receive_tx(self, conn: Connection, version: str, path_pid: str, path_role: Role | None, msg: Message,
                    who: Caller, digest: str, ts: float, raw: bytes = b"") -> tuple[int, Json, list | None, Json | None]:
        caller = who.participant_id
        row = self._load(conn, path_pid, lock=True)
        if row is None or row["counterparty_id"] != caller:
            # Unknown, or not this caller's: do not reveal that it exists.
            raise UnknownProcess(f"no contract negotiation {echo(path_pid)}")
        if row["last_in_digest"] == digest and row["last_in_response"]:
            resp = row["last_in_response"]
            return resp["status"], resp["body"], None, None
        own_role = Role(row["role"])
        peer_role = Role.CONSUMER if own_role is Role.PROVIDER else Role.PROVIDER
        if path_role is not None and path_role is not own_role:
            raise InvalidTransition(f"{msg.TYPE} is not accepted by the {own_role.value} of this process")
        if row["dsp_version"] != version:
            raise MalformedMessage(f"this process speaks DSP {row['dsp_version']}, not {version}")
        self._check_pids(row, msg, own_role)
        state = State(row["state"])
        if isinstance(msg, ContractAgreementMessage) and row["agreement"] and state in _AGREED_OR_LATER \
                and row["agreement"] == msg.agreement:
            # The same agreement delivered again (Eclipse EDC can send it twice, with a new message
            # id): acknowledged, nothing changes. A different agreement still meets the state machine.
            return 200, ContractNegotiation(row["provider_pid"] or "urn:unknown", row["consumer_pid"] or "urn:unknown",
                                            state).to_neutral(), None, None
        event = event_of(msg)
        new_state = next_state(state, peer_role, event)
        original, row = row, dict(row)
        old_version = row["version"]
        extra: dict[str, Any] = {"proposal": None, "counter_requests": 0}
        if own_role is Role.CONSUMER and not row["provider_pid"]:
            row["provider_pid"] = getattr(msg, "provider_pid", None)
        if isinstance(msg, ContractOfferMessage):
            extra["proposal"] = row["offer"]  # what we asked for, to compare with the counter-offer
            row["offer"] = msg.offer
            row["offer_id"] = msg.offer["@id"]
        elif isinstance(msg, ContractRequestMessage):
            extra = {"proposal": msg.offer, "counter_requests": 1}
        elif isinstance(msg, ContractAgreementMessage):
            row["agreement"] = msg.agreement
        elif isinstance(msg, ContractNegotiationTerminationMessage):
            row["termination"] = {"by": peer_role.value, "code": msg.code, "reason": msg.reason, "at": now_iso(ts)}
        row["state"] = new_state.value
        outgoing: list[Outgoing] = []
        offer_id = None
        if new_state not in TERMINAL:
            actions = self.strategy.after_received(self._view(row, **extra), event)
            # A counter-request names the offer again: its access policy is decided again.
            actions, offer_id = self._gate(conn, row, actions, who, ts,
                                           requested=isinstance(msg, ContractRequestMessage))
            outgoing = self._apply_actions(row, actions, ts)
        ack = ContractNegotiation(row["provider_pid"] or "urn:unknown", row["consumer_pid"] or "urn:unknown",
                                  new_state).to_neutral()
        row["last_in_digest"] = digest
        row["last_in_response"] = {"status": 200, "body": ack}
        row["version"] = old_version + 1
        row["updated_at"] = ts
        self._update(conn, row, old_version, original)
        if isinstance(msg, ContractAgreementMessage) and row["state"] != State.TERMINATED.value:
            self._record_agreement(conn, row, ts, who=who)  # an agreement we have just rejected is no agreement
        logged = self._audit_received(conn, row, raw, ts)
        self._write_side_effects(conn, row, outgoing, ts, offer_id=offer_id, who=who)
        return 200, ack, logged + outgoing, row

    def _check_pids(self, row: Json, msg: Message, own_role: Role) -> None:
        own_field = "provider_pid" if own_role is Role.PROVIDER else "consumer_pid"
        peer_field = "consumer_pid" if own_role is Role.PROVIDER else "provider_pid"
        own_value = getattr(msg, own_field, None)
        if own_value is not None and own_value != row["id"]:
            raise MalformedMessage(f"{own_field.replace('_p', 'P')} {echo(own_value)} does not match the process in the path")
        peer_value = getattr(msg, peer_field, None)
        if peer_value is not None and row[peer_field] and peer_value != row[peer_field]:
            raise MalformedMessage(f"{peer_field.replace('_p', 'P')} {echo(peer_value)} does not belong to this process")

    async def receive_initial_offer(self, version: str, msg: Message, caller: str, digest: str,
                                    raw: bytes = b"") -> tuple[int, Json]:
        """Consumer: a provider-initiated negotiation. It waits in OFFERED for the user."""
        assert isinstance(msg, ContractOfferMessage)
        if msg.consumer_pid:
            raise MalformedMessage("an initial ContractOfferMessage must not carry consumerPid")
        if not msg.callback_address:
            raise MalformedMessage("ContractOfferMessage: required field 'callbackAddress' is missing")
        target = msg.offer.get("target")
        if not isinstance(target, str):
            raise MalformedMessage("ContractOfferMessage: the offer must name its target dataset")
        ts = self.clock()
        pid = f"urn:uuid:{uuid.uuid4()}"
        status, ack, logged = await self.db.transaction(self._initial_offer_tx, version, msg, caller, digest, ts, pid,
                                                        raw)
        self._committed(pid, logged)
        return status, ack

    def _initial_offer_tx(self, conn: Connection, version: str, msg: ContractOfferMessage, caller: str, digest: str,
                          ts: float, pid: str, raw: bytes = b"") -> tuple[int, Json, list[Outgoing]]:
        existing = (conn.execute(sa.select(negotiations).where(
            negotiations.c.role == Role.CONSUMER.value, negotiations.c.counterparty_id == caller,
            negotiations.c.provider_pid == msg.provider_pid))).mappings().first()
        if existing is not None:
            ack = ContractNegotiation(msg.provider_pid, existing["id"], State(existing["state"]))
            return 201, ack.to_neutral(), []
        state = next_state(None, Role.PROVIDER, Event.OFFER)
        ack = ContractNegotiation(msg.provider_pid, pid, state).to_neutral()
        row = dict(
            id=pid, role=Role.CONSUMER.value, state=state.value, version=1, dsp_version=version,
            counterparty_id=caller, counterparty_address=msg.callback_address.rstrip("/"), consumer_pid=pid,
            provider_pid=msg.provider_pid, dataset_id=msg.offer["target"], offer_id=msg.offer["@id"], offer=msg.offer,
            agreement=None, last_in_digest=digest, last_in_response={"status": 201, "body": ack},
            termination=None, error=None, created_at=ts, updated_at=ts)
        conn.execute(sa.insert(negotiations).values(**row))
        # the offer that starts the process is logged at the clearing house like every other message
        return 201, ack, self._audit_received(conn, row, raw, ts)

    # ------------------------------------------------------------- management
    async def start(self, *, version: str, provider_base: str, provider_id: str, dataset_id: str,
                    offer: Json, on_insert: Callable[[Connection, Json], None] | None = None) -> Json:
        """Consumer: create a negotiation and queue the initial ContractRequestMessage.
        `on_insert(conn, row)` runs in the same transaction (e.g. to record an idempotency key)."""
        ts = self.clock()
        pid = f"urn:uuid:{uuid.uuid4()}"
        offer = dict(offer)
        offer.setdefault("target", dataset_id)
        offer["@type"] = "Offer"
        row = {
            "id": pid, "role": Role.CONSUMER.value, "state": next_state(None, Role.CONSUMER, Event.REQUEST).value,
            "version": 1, "dsp_version": version, "counterparty_id": provider_id, "counterparty_address": provider_base.rstrip("/"),
            "consumer_pid": pid, "provider_pid": None, "dataset_id": dataset_id, "offer_id": offer.get("@id"),
            "offer": offer, "agreement": None, "last_in_digest": None, "last_in_response": None,
            "termination": None, "error": None, "created_at": ts, "updated_at": ts,
        }
        outgoing = [self._outgoing(row, Role.CONSUMER, Event.REQUEST, None, ts)]
        outgoing += self._apply_actions(row, self.strategy.after_started(self._view(row)), ts)
        def insert(conn: Connection) -> None:
            _INSERT_NEGOTIATION.execute(conn, row)
            self._write_side_effects(conn, row, outgoing, ts)
            if on_insert is not None:
                on_insert(conn, row)

        await self.db.transaction(insert)
        self._committed(pid, outgoing, row)
        return row

    async def act(self, pid: str, event: Event, reason: str | None = None) -> Json:
        """A user's decision through the management API (terminate, accept a counter-offer)."""
        for _ in range(5):
            try:
                row, outgoing = await self.db.transaction(self._act_tx, pid, event, reason, self.clock())
            except Conflict:
                continue
            self._committed(pid, outgoing, row)
            return row
        raise Refused("the negotiation is busy, try again")

    def _act_tx(self, conn: Connection, pid: str, event: Event, reason: str | None, ts: float) -> Json:
        row = self._load(conn, pid, lock=True)
        if row is None:
            raise UnknownProcess(f"no contract negotiation {echo(pid)}")
        row = dict(row)
        old_version = row["version"]
        outgoing = self._apply_actions(row, [Action(event, reason)], ts)
        row["version"] = old_version + 1
        row["updated_at"] = ts
        self._update(conn, row, old_version)
        self._write_side_effects(conn, row, outgoing, ts)
        return row, outgoing

    async def get(self, pid: str) -> Json | None:
        def load(conn: Connection) -> Json | None:
            row = self._load(conn, pid)
            return dict(row) if row is not None else None
        return await self.db.read(load)

    async def list(self, limit: int = 100, offset: int = 0, state: str | None = None) -> list[Json]:
        query = sa.select(negotiations).order_by(negotiations.c.created_at.desc()).limit(limit).offset(offset)
        if state:
            query = query.where(negotiations.c.state == state)
        return await self.db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])

    async def wait_for(self, pid: str, states: set[str], timeout: float) -> Json | None:
        """The negotiation once it is in one of `states` (or terminal), or as it is at the timeout."""
        return await wait_for_state(self.notifier, self.get, pid, states | {s.value for s in TERMINAL}, timeout)

    # ---------------------------------------------------- outbox ack handling
    def on_sent(self, conn: Connection, entry: Json, response: Json | None) -> None:
        """Called by the dispatcher in the transaction that marks an outbox row sent."""
        if entry["kind"] != "ContractRequestMessage:initial" or not isinstance(response, dict):
            return
        version = "2024-1" if response.get("@context") == CONTEXT_2024_1 or "dspace:providerPid" in response else "2025-1"
        try:
            response = wire.from_wire(response, version)
        except Exception:  # noqa: BLE001 - an unreadable ACK leaves the pid to the next message
            return
        provider_pid = response.get("providerPid")
        if isinstance(provider_pid, dict):
            provider_pid = provider_pid.get("@id")
        if isinstance(provider_pid, str) and provider_pid:
            _SET_PROVIDER_PID.execute(conn, {"b_id": entry["process_id"], "provider_pid": provider_pid})

    def on_refused(self, conn: Connection, entry: Json, error: str) -> None:
        """The peer refused a message for good: the two sides disagree, so our side ends."""
        ts = self.clock()
        conn.execute(
            sa.update(negotiations)
            .where(negotiations.c.id == entry["process_id"], negotiations.c.state.notin_([s.value for s in TERMINAL]))
            .values(state=State.TERMINATED.value, error=error[:2000], updated_at=ts,
                    version=negotiations.c.version + 1,
                    termination={"by": "peer-refused", "code": "MessageRefused", "reason": [error[:500]], "at": now_iso(ts)})
        )

    def on_dead(self, conn: Connection, entry: Json, cause: str) -> tuple[Json, list[Outgoing]] | None:
        """A message missed its delivery deadline (a dead letter), in the dispatcher's transaction:
        what was queued after it is cancelled, our side is terminated with the reason, and the
        termination is queued towards the peer (itself durable) so both sides end alike. Not when
        the process has already ended, when the dead message was itself a termination, or when
        the peer's process id was never learnt (nothing can address it)."""
        original = self._load(conn, entry["process_id"], lock=True)
        ending = dead_letter_ending(conn, original, entry, cause, {s.value for s in TERMINAL},
                                    "ContractNegotiationTerminationMessage")
        if ending is None:
            return None
        reason, tell_peer = ending
        ts = self.clock()
        row = dict(original)
        if tell_peer:
            outgoing = self._apply_actions(row, [Action(Event.TERMINATE, reason, code=DEADLINE_CODE)], ts)
        else:
            outgoing = []
            row["state"] = State.TERMINATED.value
            row["termination"] = {"by": row["role"], "code": DEADLINE_CODE, "reason": [reason], "at": now_iso(ts)}
        row["error"] = reason
        row["version"] = original["version"] + 1
        row["updated_at"] = ts
        self._update(conn, row, original["version"], original)
        self._write_side_effects(conn, row, outgoing, ts)
        return row, outgoing

    # ----------------------------------------------------------- usage control
    def _refusal(self, row: Json, policy: Json, who: Caller, ts: float, props: Json | None) -> Action | None:
        """A termination naming every rule that refuses `who` under `policy`, or None when it is permitted.
        Evaluated on the provider's own stored policy and the caller's verified claims."""
        try:
            decision = decide(self.catalog.policies, policy, caller=who, target=row["dataset_id"], now=ts,
                              asset_properties=props, at_negotiation=True)
        except Exception as exc:  # noqa: BLE001 - a decision that cannot be made refuses (fail closed)
            return Action(Event.TERMINATE, f"the contract policy could not be evaluated: {type(exc).__name__}",
                          code="PolicyDenied")
        if decision.permitted:
            return None
        reasons = denial_reasons(decision)
        return Action(Event.TERMINATE, "Refused by the contract policy: " + " ".join(reasons), code="PolicyDenied",
                      details={"effect": str(decision.effect.value if hasattr(decision.effect, "value") else decision.effect),
                               "reasons": reasons})

    def _gate(self, conn: Connection, row: Json, actions: list[Action], who: Caller, ts: float,
              requested: bool = False) -> tuple[list[Action], str | None]:
        """On a counter-request (`requested`) and before a provider sends an agreement: the offer
        must still be offered, its access policy must still admit the requester (the claims or
        the policy may have changed), and before an agreement its terms must be the same and its
        contract policy must still permit the requester. Returns the actions to take and the
        offer's own id (offers.id), which the agreement keeps."""
        agreeing = any(a.event is Event.AGREE for a in actions)
        if row["role"] != Role.PROVIDER.value or not (agreeing or requested):
            return actions, None
        found = self.catalog.find_offer(conn, row["offer_id"]) if row["offer_id"] else None
        if found is None:
            return [Action(Event.TERMINATE, f"offer {echo(row['offer_id'])} is no longer offered", code="OfferWithdrawn")], None
        props = _ASSET_PROPERTIES.execute(conn, {"b_asset": found.dataset_id}).scalar()
        denied = access_refusal(self.catalog.policies, found.access_policy, caller=who, target=found.dataset_id,
                                now=ts, asset_properties=props, offer_id=row["offer_id"])
        if denied is not None:
            record_decision(conn, stage="negotiation", consumer_id=who.participant_id, reasons=denied, now=ts,
                            offer_id=row["offer_id"])
            return [Action(Event.TERMINATE, access_denied_text(denied), code=ACCESS_DENIED,
                           details={"effect": "deny", "reasons": denied})], None
        if not agreeing:
            return actions, found.offer_id
        if found.dataset_id != row["dataset_id"] or not same_terms(found.policy, row["offer"]):
            return [Action(Event.TERMINATE, "the offer changed since it was requested; request it again",
                           code="OfferChanged")], None
        refusal = self._refusal(row, found.policy, who, ts, props)
        return ([refusal], None) if refusal is not None else (actions, found.offer_id)

    # ---------------------------------------------------------------- helpers
    def _view(self, row: Json, proposal: Json | None = None, counter_requests: int = 0) -> View:
        role = Role(row["role"])
        return View(
            role=role, state=State(row["state"]), dataset_id=row["dataset_id"], offer=row["offer"],
            requested_offer=proposal if proposal is not None else row["offer"],
            agreement=row["agreement"], own_participant_id=self.participant_id, counter_requests=counter_requests,
        )

    def _apply_actions(self, row: Json, actions: list[Action], ts: float) -> list[Outgoing]:
        """Run our own decisions through the same transition table and build the messages."""
        role = Role(row["role"])
        out: list[Outgoing] = []
        for action in actions:
            state = State(row["state"])
            new_state = next_state(state, role, action.event)
            if action.event is Event.AGREE:
                row["agreement"] = agreement_from_offer(
                    f"urn:uuid:{uuid.uuid4()}", row["offer"], assigner=self.participant_id,
                    assignee=row["counterparty_id"], timestamp=now_iso(ts),
                )
            if action.event is Event.TERMINATE:
                row["termination"] = {"by": role.value, "code": action.code or "Terminated",
                                      "reason": [action.reason] if action.reason else [], "at": now_iso(ts)}
                if action.details is not None:
                    row["termination"]["decision"] = action.details
            out.append(self._outgoing(row, role, action.event, action.reason, ts, action.code))
            row["state"] = new_state.value
        return out

    def _outgoing(self, row: Json, role: Role, event: Event, reason: str | None, ts: float,
                  code: str | None = None) -> Outgoing:
        version = row["dsp_version"]
        own_base = self.dsp_base(version)
        peer = row["counterparty_address"]
        cpid = row["consumer_pid"]
        ppid = row["provider_pid"] or PROVIDER_PID_PLACEHOLDER
        msg: Message
        if role is Role.CONSUMER:
            if event is Event.REQUEST:
                if row["provider_pid"] is None and row["state"] == State.REQUESTED.value and row["version"] == 1:
                    msg = ContractRequestMessage(consumer_pid=cpid, offer=row["offer"], callback_address=own_base)
                    return self._wrap("ContractRequestMessage:initial", f"{peer}/negotiations/request", msg, version, own_base)
                msg = ContractRequestMessage(consumer_pid=cpid, offer=row["offer"], provider_pid=ppid)
                path = f"/negotiations/{ppid}/request"
            elif event is Event.ACCEPT:
                msg = ContractNegotiationEventMessage(provider_pid=ppid, consumer_pid=cpid, event_type="ACCEPTED")
                path = f"/negotiations/{ppid}/events"
            elif event is Event.VERIFY:
                msg = ContractAgreementVerificationMessage(provider_pid=ppid, consumer_pid=cpid)
                path = f"/negotiations/{ppid}/agreement/verification"
            elif event is Event.TERMINATE:
                msg = ContractNegotiationTerminationMessage(provider_pid=ppid, consumer_pid=cpid, code=code or "Terminated",
                                                            reason=[reason] if reason else [])
                path = f"/negotiations/{ppid}/termination"
            else:
                raise InvalidTransition(f"a consumer does not send {event.value}")
        else:
            if event is Event.OFFER:
                msg = ContractOfferMessage(provider_pid=row["id"], offer=row["offer"], consumer_pid=cpid)
                path = f"/negotiations/{cpid}/offers"
            elif event is Event.AGREE:
                msg = ContractAgreementMessage(provider_pid=row["id"], consumer_pid=cpid, agreement=row["agreement"],
                                               callback_address=own_base if version == "2024-1" else None)
                path = f"/negotiations/{cpid}/agreement"
            elif event is Event.FINALIZE:
                msg = ContractNegotiationEventMessage(provider_pid=row["id"], consumer_pid=cpid, event_type="FINALIZED")
                path = f"/negotiations/{cpid}/events"
            elif event is Event.TERMINATE:
                msg = ContractNegotiationTerminationMessage(provider_pid=row["id"], consumer_pid=cpid, code=code or "Terminated",
                                                            reason=[reason] if reason else [])
                path = f"/negotiations/{cpid}/termination"
            else:
                raise InvalidTransition(f"a provider does not send {event.value}")
        return self._wrap(msg.TYPE, peer + path, msg, version, own_base)

    @staticmethod
    def _wrap(kind: str, url: str, msg: Message, version: str, own_base: str) -> Outgoing:
        neutral = msg.to_neutral()
        if version == "2024-1" and msg.TYPE in ("ContractRequestMessage", "ContractOfferMessage", "ContractAgreementMessage"):
            neutral["callbackAddress"] = own_base  # the 2024-1 schemas require it on these
        return Outgoing(kind, url, wire.to_wire(neutral, version))

    def _load(self, conn: Connection, pid: str, lock: bool = False):  # noqa: ANN202
        query = _SELECT_NEGOTIATION_LOCKED if lock and self.is_postgres else _SELECT_NEGOTIATION
        return query.execute(conn, {"b_pid": pid}).mappings().first()

    def _update(self, conn: Connection, row: Json, old_version: int, original: Any = None) -> None:
        """Write the changed columns (all when `original` is not given), if the version is still `old_version`."""
        values = {k: v for k, v in row.items()
                  if k in negotiations.c and k != "id" and (original is None or original[k] != v)}
        result = _UPDATE_NEGOTIATION.execute(conn, {**values, "b_id": row["id"], "b_old_version": old_version})
        if result.rowcount != 1:
            raise Conflict(row["id"])

    def _record_agreement(self, conn: Connection, row: Json, ts: float, offer_id: str | None = None,
                          who: Caller | None = None) -> None:
        agreement = row["agreement"]
        if not agreement:
            return
        role = Role(row["role"])
        provider_id = self.participant_id if role is Role.PROVIDER else row["counterparty_id"]
        consumer_id = row["counterparty_id"] if role is Role.PROVIDER else self.participant_id
        exists = _SELECT_AGREEMENT.execute(conn, {"b_aid": agreement["@id"]}).first()
        if exists is None:
            values = dict(
                id=agreement["@id"], negotiation_id=row["id"], role=role.value, provider_id=provider_id,
                consumer_id=consumer_id, asset_id=agreement.get("target") or row["dataset_id"] or "",
                policy=agreement, created_at=ts, offer_id=offer_id if role is Role.PROVIDER else row["offer_id"],
            )
            _INSERT_AGREEMENT.execute(conn, values)
            for hook in self.on_agreement:
                hook(conn, values, row, ts, who.claims if who is not None else None)

    def _write_side_effects(self, conn: Connection, row: Json, outgoing: list[Outgoing], ts: float,
                            offer_id: str | None = None, who: Caller | None = None) -> None:
        if row["role"] == Role.PROVIDER.value and row.get("agreement") and any(o.kind == "ContractAgreementMessage" for o in outgoing):
            self._record_agreement(conn, row, ts, offer_id, who=who)
        write_outbox(conn, row["id"], outgoing, ts, self.outbox_owner, self.lease_seconds,
                     recipient=row["counterparty_id"])
        if self.audit is not None:  # every message sent is logged at the clearing house
            for o in list(outgoing):
                outgoing += self.audit(conn, row, o.body, ts)

    def _audit_received(self, conn: Connection, row: Json, raw: bytes, ts: float) -> list[Outgoing]:
        return self.audit(conn, row, raw, ts) if self.audit is not None and raw else []

    def _committed(self, pid: str, outgoing: list[Outgoing] = (), row: Json | None = None) -> None:  # type: ignore[assignment]
        for o in outgoing:
            failpoints.hit(f"committed:{o.kind}")
        self.notifier.notify(pid, row)
        entries = [o.entry for o in outgoing if o.entry is not None]
        if entries:
            self.on_commit(entries)


def response_json(body: bytes) -> Json | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


__all__ = ["NegotiationService", "ProtocolError", "message_digest", "PROVIDER_PID_PLACEHOLDER", "response_json"]
