"""The access decision: the agreement's policy decided again on every access, the use counted
atomically in the same transaction, the access recorded (permitted or not) and logged at the
clearing house, and a use given back when nothing was delivered."""
from __future__ import annotations

import hashlib

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...identity import Caller
from ...policy import Context, Request
from ...policy.explain import M_, msg_to_json
from ...protocol.errors import echo
from ...protocol.negotiation import Role
from ...protocol.transfer import TransferState
from ...compliance.record import consent_facts
from ...store.tables import access_log, agreements, assets, compliance_records, transfers, usage_counters
from ..transform import kind_of, modification_from_duties
from ..transfers import AGREEMENT_WITH_ACCESS
from ..usage import (ACCESS_DENIED, DECIDED_AT_USE, EngineSentence, access_denied_messages, access_denied_peer_text,
                     access_denied_text, access_refusal, claims_context, joined, message_of, ours, reason_messages)

from .common import (AGREEMENT_GONE, NO_DATA_ADDRESS, TOKEN_DOES_NOT_VERIFY, TOKEN_EXPIRED, TOKEN_OF_ANOTHER,
                     AccessRefused, Grant, Json, _has_source, log, token_revoked)

# Duties the provider's connector performs itself before release; any other
# before-release duty cannot be performed, so the access is refused (fail closed).
PERFORMED_HERE = frozenset({"drop-fields", "pseudonymise-fields", "inform", "notify", "attribute", "attribution"})
_USES_LOCKED = sa.select(usage_counters.c.uses).where(usage_counters.c.agreement_id == sa.bindparam("b_aid"))
_AGREEMENT = AGREEMENT_WITH_ACCESS.where(agreements.c.id == sa.bindparam("b_aid"))
_BY_ID = sa.select(transfers).where(transfers.c.id == sa.bindparam("b_tid"), transfers.c.role == Role.PROVIDER.value)
_RECORD = sa.select(compliance_records.c.record).where(compliance_records.c.agreement_id == sa.bindparam("b_aid"))
_BY_TOKEN = sa.select(transfers).where(transfers.c.token_hash == sa.bindparam("b_hash"),
                                       transfers.c.role == Role.PROVIDER.value)


def consent_on_record(conn: Connection, agreement_id: str, policy) -> dict:  # noqa: ANN001 - a compiled policy
    """The consent facts of an agreement's compliance record, read in the decision's own transaction
    (so every replica decides on what the database holds, and a withdrawal counts at the next access)."""
    record = conn.execute(_RECORD, {"b_aid": agreement_id}).scalar()
    consents, states = consent_facts(policy, record if isinstance(record, dict) else None)
    return {"consents": consents, "duty_states": states}


class Access:
    def _context(self, agreement: Json, asset: Json, claims: Json, *, now: float, uses: int,
                 purpose: str | None, deferred: frozenset[str], consent: dict | None = None) -> Context:
        return claims_context(Caller(agreement["consumer_id"], claims), now=now, asset_properties=asset["properties"],
                              deferred=deferred, use_count=uses, agreement_time=agreement["created_at"],
                              purpose=purpose, **(consent or {}))

    def _access_refusal(self, agreement: Json, asset: Json, claims: Json, now: float) -> list[str] | None:
        """The agreement's offer's current access policy, decided for the consumer's verified
        claims. Fail closed: an agreement without a recorded offer, an offer withdrawn or no
        longer covering the asset, or a deleted access policy refuses."""
        body = agreement.get("access_policy")
        if agreement.get("offer_id") is None or asset["id"] not in (agreement.get("offer_asset_ids") or []):
            body = None
        return access_refusal(self.policies, body, caller=Caller(agreement["consumer_id"], claims), target=asset["id"],
                              now=now, asset_properties=asset["properties"], offer_id=agreement.get("offer_id"))

    def transfer_refusal(self, conn: Connection, agreement: Json, claims: Json,
                         now: float) -> tuple[str, list[str]] | None:
        """Before a transfer starts: does the offer's access policy still admit the consumer, and
        may it still use the data at all? (Purpose and other declarations are decided at each
        access.) None, or (code, reasons)."""
        asset = conn.execute(sa.select(assets).where(assets.c.id == agreement["asset_id"])).mappings().first()
        if asset is None:
            return "PolicyDenied", [ours(M_("the agreement's asset %(asset)s no longer exists"),
                                         asset=echo(agreement["asset_id"]))]
        if not _has_source(dict(asset)):
            return "AssetUnavailable", [NO_DATA_ADDRESS]
        denied = self._access_refusal(agreement, dict(asset), claims, now)
        if denied is not None:
            return ACCESS_DENIED, denied
        uses = conn.execute(_USES_LOCKED, {"b_aid": agreement["id"]}).scalar() or 0
        try:
            decision = self.policies.compile(agreement["policy"]).evaluate(
                Request(action="use", target=asset["id"], assignee=agreement["consumer_id"]),
                self._context(dict(agreement), dict(asset), claims, now=now, uses=uses, purpose=None,
                              deferred=DECIDED_AT_USE))
        except Exception as exc:  # noqa: BLE001 - a decision that cannot be made refuses (fail closed)
            log.exception("the policy of agreement %s could not be evaluated", agreement["id"])
            return "PolicyDenied", [ours(M_("the agreement's policy could not be evaluated (%(error)s): "
                                            "refused (fail closed)"), error=type(exc).__name__)]
        if decision.permitted:
            return None
        return "PolicyDenied", [EngineSentence(r) for r in decision.reasons
                                if r.code != "constraint-deferred"] or [ours(M_("not permitted"))]

    def _decide_access(self, conn: Connection, transfer_id: str, purpose: str | None,
                       now: float, token_hash: str | None = None) -> "Grant | AccessRefused":
        """One transaction: decide, count the use, and record the access (permitted or not).
        A pull presents a token, looked up by its hash (`token_hash`); a push is our own."""
        if token_hash is None:
            row = conn.execute(_BY_ID, {"b_tid": transfer_id}).mappings().first()
            if row is None:
                raise AccessRefused(404, [ours(M_("no such transfer"))])
        else:
            row = conn.execute(_BY_TOKEN, {"b_hash": token_hash}).mappings().first()
            if row is None:
                raise AccessRefused(401, [TOKEN_DOES_NOT_VERIFY])
            if row["id"] != transfer_id:
                raise AccessRefused(401, [TOKEN_OF_ANOTHER])
        if row["state"] != TransferState.STARTED.value:
            # Suspension and termination revoke the token at once.
            raise AccessRefused(401, [token_revoked(row["state"])])
        if token_hash is not None and (row["token_expires_at"] or 0) < now:
            raise AccessRefused(401, [TOKEN_EXPIRED])
        agreement = conn.execute(_AGREEMENT, {"b_aid": row["agreement_id"]}).mappings().first()
        asset = conn.execute(sa.select(assets).where(assets.c.id == agreement["asset_id"])).mappings().first() \
            if agreement else None
        if agreement is None or asset is None:
            raise AccessRefused(403, [AGREEMENT_GONE])
        agreement, asset = dict(agreement), dict(asset)
        if self.node.db.is_postgres:  # the counter row must exist to be locked
            conn.execute(sa.text("INSERT INTO usage_counters (agreement_id, uses, updated_at) VALUES (:a, 0, :t) "
                                 "ON CONFLICT (agreement_id) DO NOTHING"), {"a": agreement["id"], "t": now})
            uses = conn.execute(_USES_LOCKED.with_for_update(), {"b_aid": agreement["id"]}).scalar() or 0
        else:  # SQLite: transactions run one at a time on the one connection
            uses = conn.execute(_USES_LOCKED, {"b_aid": agreement["id"]}).scalar()
            if uses is None:
                conn.execute(usage_counters.insert(), {"agreement_id": agreement["id"], "uses": 0, "updated_at": now})
                uses = 0
        told: list[str] | None = None
        denied = self._access_refusal(agreement, asset, row["claims"] or {}, now)
        reason_msgs = None  # the engine's sentences as message ids, for the console's languages
        if denied is not None:  # the offer's access policy no longer admits the consumer
            decision, permitted, reasons, duties = None, False, [access_denied_text(denied)], []
            told = [access_denied_peer_text(denied)]  # the consumer is not told the policy's values
            reason_msgs = access_denied_messages(denied)
        else:
            try:
                policy = self.policies.compile(agreement["policy"])
                decision = policy.evaluate(
                    Request(action="use", target=asset["id"], assignee=agreement["consumer_id"]),
                    self._context(agreement, asset, row["claims"] or {}, now=now, uses=uses,
                                  purpose=purpose, deferred=frozenset(),
                                  consent=consent_on_record(conn, agreement["id"], policy)))
            except Exception as exc:  # noqa: BLE001 - fail closed, and say so
                log.exception("the policy of agreement %s could not be evaluated", agreement["id"])
                raise AccessRefused(403, [ours(M_("the agreement's policy could not be evaluated (%(error)s): access "
                                                  "refused (fail closed)"), error=type(exc).__name__)]) from None
            reasons = [r.message for r in decision.reasons]
            reason_msgs = [msg_to_json(r.sentence()) for r in decision.reasons]
            duties = [d.to_dict() for d in decision.duties]
            permitted = decision.permitted
            if permitted:
                blocking = self._unperformable(decision.duties, asset)
                if blocking:
                    permitted, reasons, reason_msgs = False, blocking, reason_messages(blocking)
        if permitted and not _has_source(asset):  # before the record: the log says what the consumer got
            permitted, reasons, reason_msgs = False, [NO_DATA_ADDRESS], reason_messages([NO_DATA_ADDRESS])
        record = {"transfer_id": transfer_id, "agreement_id": agreement["id"], "consumer_id": agreement["consumer_id"],
                  "at": now, "permitted": permitted, "purpose": purpose, "reasons": reasons, "duties": duties,
                  "stage": "access", "offer_id": agreement["offer_id"]}
        # the sentences' ids are stored beside the record, not in it: the clearing house digests the record
        access_id = conn.execute(access_log.insert().returning(access_log.c.id),
                                 {**record, "reason_msgs": reason_msgs}).scalar_one()
        ch = self.node.clearinghouse
        must_log = permitted and any(d.kind == "log" and d.timing == "before-release" for d in decision.duties)
        log_jws, pending = None, []
        if ch is not None:
            provider, consumer = self.node.participant_id, agreement["consumer_id"]
            digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).digest()
            if must_log:  # the data waits for the log's receipt (after this transaction)
                log_jws = ch.sign(process_id=transfer_id, event="data.accessed", provider=provider,
                                  consumer=consumer, digest=digest, ts=now)
            else:  # logged through the outbox: delayed by an outage, never lost
                pending = ch.record(conn, {"id": transfer_id, "role": "provider", "counterparty_id": consumer},
                                    {"@type": "DataAccess"}, now, owner=self.node.dispatcher.owner,
                                    lease_seconds=self.node.dispatcher.lease_seconds, event="data.accessed",
                                    digest=digest)
        if not permitted:  # returned, not raised: the refusal's log entry must be committed
            refusal = AccessRefused(403, told or reasons or [ours(M_("no permission of the agreement covers this "
                                                                     "access"))])
            refusal.pending = pending
            return refusal
        conn.execute(sa.update(usage_counters).where(usage_counters.c.agreement_id == agreement["id"])
                     .values(uses=usage_counters.c.uses + 1, updated_at=now))
        return Grant(dict(row), asset, modification_from_duties(decision.duties, self._pseudonym_key),
                     list(decision.duties), access_id=access_id, log_jws=log_jws, pending=pending)

    async def _settle(self, grant: "Grant | AccessRefused") -> Grant:
        """After the decision's transaction: hand queued log entries to the dispatcher, and
        for a logging duty wait until the clearing house has accepted the entry."""
        queued = getattr(grant, "pending", [])
        pending = [o.entry for o in queued if o.entry is not None]
        if (pending or any(o.waiting for o in queued)) and self.node.dispatcher is not None:
            self.node.dispatcher.submit(pending)  # none leased: a claim for those queued behind others
        if isinstance(grant, AccessRefused):
            raise grant
        if grant.log_jws is not None:
            try:
                await self.node.clearinghouse.submit_now(grant.log_jws)
            except Exception as exc:  # noqa: BLE001 - unavailable, refused or unverifiable: no receipt, no data
                # The consumer reads this reason: it says what failed, not where (our log has the detail).
                log.warning("transfer %s: the clearing house did not accept the access entry: %s %s",
                            grant.transfer["id"], type(exc).__name__, exc)
                reason = ours(M_("The policy requires every access to be logged to the clearing house, and it did "
                                 "not accept the entry: access refused (fail closed)."))
                await self.node.db.transaction(self._undo_access, grant, reason)
                raise AccessRefused(403, [reason]) from None
        return grant

    def _undo_access(self, conn: Connection, grant: Grant, reason: str) -> None:
        conn.execute(sa.update(usage_counters).where(usage_counters.c.agreement_id == grant.transfer["agreement_id"])
                     .values(uses=usage_counters.c.uses - 1))
        msg = message_of(reason)  # our own sentence's message id, for the console's languages
        conn.execute(sa.update(access_log).where(access_log.c.id == grant.access_id)
                     .values(permitted=False, reasons=[reason], reason_msgs=[msg] if msg is not None else None))

    async def _give_back(self, grant: Grant, reasons: list[str]) -> None:
        """A delivery that failed before its first byte consumed nothing: the use counted in the
        access's transaction is returned and the access is recorded as not permitted, with why."""
        try:
            reason = joined("; ", reasons)
            await self.node.db.transaction(self._undo_access, grant, reason if len(reason) <= 1000 else reason[:1000])
        except Exception:  # noqa: BLE001 - the failure of the delivery is what the caller reports
            log.exception("transfer %s: the use of a failed delivery could not be given back", grant.transfer["id"])

    def _unperformable(self, duties: list, asset: Json) -> list[str]:
        problems = []
        for duty in duties:
            if duty.timing != "before-release":
                continue
            if duty.kind == "log":
                if self.node.clearinghouse is None:  # the duty cannot be performed: the data does not leave
                    problems.append(ours(M_("The policy requires every access to be logged to the clearing house, "
                                            "and this node has no clearing house configured: access refused "
                                            "(fail closed).")))
            elif duty.kind in ("drop-fields", "pseudonymise-fields"):
                if kind_of(asset["content_type"], str(asset["data_address"].get("path", ""))) is None:
                    problems.append(ours(M_("The policy requires fields to be removed or pseudonymised, which this "
                                            "node cannot do for data of type %(type)s: access refused."),
                                         type=asset["content_type"]))
            elif duty.kind not in PERFORMED_HERE:
                problems.append(ours(M_("The policy requires '%(action)s' before release, which this node cannot "
                                        "perform: access refused (fail closed)."), action=duty.action))
        return problems
