"""Durable contract negotiation: every transition is one transaction that updates
the negotiation row (optimistic version check, row lock on PostgreSQL) and puts
what must be sent into the outbox. Inbound messages are idempotent."""
from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..store.db import Database
from ..store.prepared import Prepared

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
from ..policy.explain import msg_to_json
from ..protocol.policies import agreement_from_offer, message_offer, same_terms
from ..store.tables import agreements, assets, negotiations
from .automation import Action, DefaultStrategy, View
from .catalog import CatalogService
# The durable machinery lives in durable.py; these names are re-exported here for the modules and
# tests that import them from negotiations (kept for now, to be dropped once they import durable).
from .durable import (DEADLINE_CODE, PROVIDER_PID_PLACEHOLDER, DurableProcesses, Notifier, Outgoing,  # noqa: F401
                      dead_letter_ending, deadline_reason, now_iso, response_json, wait_for_state, write_outbox)
from .listing import query_page
from .usage import (ACCESS_DENIED, AccessDenied, access_denied_messages, access_denied_peer_text, access_refusal,
                    decide, denial_reasons, record_decision)
from ..errors import NodeError

Json = dict[str, Any]


# Statements built and compiled once: building them per call (values(**row)) cost most
# of a transition, and on SQLite they skip SQLAlchemy's execution path (store/prepared.py).
_SELECT_BY_CONSUMER_PID = Prepared(sa.select(negotiations).where(
    negotiations.c.role == sa.bindparam("b_role"),
    negotiations.c.counterparty_id == sa.bindparam("b_peer"),
    negotiations.c.consumer_pid == sa.bindparam("b_cpid"),
))
_INSERT_NEGOTIATION = Prepared(negotiations.insert())
_ASSET_PROPERTIES = Prepared(sa.select(assets.c.properties).where(assets.c.id == sa.bindparam("b_asset")))
_SELECT_AGREEMENT = Prepared(sa.select(agreements.c.id).where(agreements.c.id == sa.bindparam("b_aid")))
_INSERT_AGREEMENT = Prepared(agreements.insert())


class Conflict(NodeError):
    """The row changed under us; the whole transition is retried."""


_AGREED_OR_LATER = (State.AGREED, State.VERIFIED, State.FINALIZED)


def message_digest(path_pid: str | None, body: bytes) -> str:
    return hashlib.sha256((path_pid or "").encode() + b"\x00" + body).hexdigest()


class NegotiationService(DurableProcesses):
    name = "negotiation"
    kinds = frozenset({"ContractRequestMessage", "ContractOfferMessage", "ContractAgreementMessage",
                       "ContractAgreementVerificationMessage", "ContractNegotiationEventMessage",
                       "ContractNegotiationTerminationMessage"})
    table = negotiations
    terminal = frozenset(s.value for s in TERMINAL)
    termination_kind = "ContractNegotiationTerminationMessage"
    initial_kind = "ContractRequestMessage:initial"
    conflict = Conflict

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
        status, body, outgoing, row = await self._transition(lambda ts: self.db.transaction(
            self._receive_tx, version, path_pid, path_role, msg, caller, digest, ts, raw))
        if outgoing is not None:
            self._committed(path_pid, outgoing, row)
        return status, body

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
        row, outgoing = await self._transition(lambda ts: self.db.transaction(self._act_tx, pid, event, reason, ts))
        self._committed(pid, outgoing, row)
        return row

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

    async def list(self, limit: int = 100, offset: int = 0, state: str | None = None,
                   cursor: str | None = None) -> list[Json]:
        """The newest first: `limit` rows after `offset`, or after `cursor` (listing.query_page)."""
        query = query_page(sa.select(negotiations), negotiations.c.created_at, negotiations.c.id, limit=None,
                           cursor=cursor, newest_first=True).limit(limit).offset(offset)
        if state:
            query = query.where(negotiations.c.state == state)
        return await self.db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])

    # ---------------------------------------------------- outbox ack handling
    def _provider_pid_in_ack(self, response: Json) -> Any:
        version = "2024-1" if response.get("@context") == CONTEXT_2024_1 or "dspace:providerPid" in response else "2025-1"
        try:
            response = wire.from_wire(response, version)
        except Exception:  # noqa: BLE001 - an unreadable ACK leaves the pid to the next message
            return None
        return response.get("providerPid")

    def _terminate(self, row: Json, reason: str, ts: float) -> list[Outgoing]:
        return self._apply_actions(row, [Action(Event.TERMINATE, reason, code=DEADLINE_CODE)], ts)

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
        # the engine's sentences as message ids too (kept in our row only): the console shows them translated
        messages = [msg_to_json(r.sentence()) for r in decision.reasons if getattr(r, "code", "") != "constraint-deferred"]
        return Action(Event.TERMINATE, "Refused by the contract policy: " + " ".join(reasons), code="PolicyDenied",
                      details={"effect": str(decision.effect.value if hasattr(decision.effect, "value") else decision.effect),
                               "reasons": reasons, **({"reasonMessages": messages} if messages else {})})

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
            messages = access_denied_messages(denied)  # kept in our row: the console shows them translated
            return [Action(Event.TERMINATE, access_denied_peer_text(denied), code=ACCESS_DENIED,
                           details={"effect": "deny", "reasons": list(denied),
                                    **({"reasonMessages": messages, "policy": "access"} if messages else {})})], None
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
        self._write_outbox(conn, row, outgoing, ts)


__all__ = ["NegotiationService", "ProtocolError", "message_digest", "PROVIDER_PID_PLACEHOLDER", "response_json"]
