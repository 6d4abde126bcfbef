"""Usage control at the node: the policy engine (pure) fed with the requester's
verified claims and the node's own facts. An offer's access policy is decided wherever
the offer is used (catalog, dataset lookup, negotiation request, before the agreement,
transfer start, every data access); its contract policy at negotiation; the agreement's
policy at transfer start and at every access (the data plane), all through the same engine."""
from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import orjson
from sqlalchemy.engine import Connection

from ..compute import ACTION as COMPUTE_ACTION
from ..identity import Caller
from ..protocol.errors import Forbidden
from ..policy import CompiledPolicy, Context, Decision, PolicyError, Request, compile_policy
from ..policy.explain import M_, Join, Msg, msg_to_json
from ..store.tables import access_log
from ..vocab import policy_contexts

Json = dict[str, Any]
log = logging.getLogger("connector.usage")
ACCESS_DENIED = "AccessDenied"  # the DSP error / termination code of an access-policy refusal

# Constraints on how the data will be used are commitments the consumer makes by
# agreeing; they cannot be decided when the contract is made, only at each use
# (the data plane's check). Everything about the party and the moment is decided now.
DECIDED_AT_USE = frozenset({"purpose", "processing_location", "retention_period", "events", "duty_states", "consents"})


# Terms DSP adds around an offer or agreement that are not ODRL.
DSP_ENVELOPE = frozenset({"timestamp", "callbackAddress"})


class PolicyCache:
    """Compiled policies by content: compile once, evaluate many times."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._compiled: OrderedDict[str, CompiledPolicy] = OrderedDict()
        #: called with each evaluation's outcome (True: permitted), e.g. the node's metrics
        self.observe: Callable[[bool], None] | None = None

    def compile(self, body: Json) -> CompiledPolicy:
        key = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        hit = self._compiled.get(key)
        if hit is not None:
            self._compiled.move_to_end(key)
            return self._observed(hit)
        compiled = compile_policy(_for_engine(body), contexts=policy_contexts())
        self._compiled[key] = compiled
        if len(self._compiled) > self.size:
            self._compiled.popitem(last=False)
        return self._observed(compiled)

    def _observed(self, policy: CompiledPolicy) -> CompiledPolicy:
        return policy if self.observe is None else _Observed(policy, self.observe)  # type: ignore[return-value]


class _Observed:
    """A compiled policy whose evaluations are counted (everything else is the policy's own)."""

    __slots__ = ("_policy", "_observe")

    def __init__(self, policy: CompiledPolicy, observe: Callable[[bool], None]) -> None:
        self._policy, self._observe = policy, observe

    def evaluate(self, request: Request, context: Context) -> Decision:
        decision = self._policy.evaluate(request, context)
        self._observe(decision.permitted)
        return decision

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)


def _for_engine(body: Json) -> Json:
    """A stored policy as the engine reads it: an ODRL Offer (the envelope may be absent)."""
    doc = {k: v for k, v in body.items() if k not in DSP_ENVELOPE}
    doc.setdefault("@type", "Offer")
    if "uid" not in doc and "@id" not in doc:
        doc["uid"] = "urn:hks:policy:unnamed"
    return doc


def check_policy(body: Json) -> list[tuple[str, str]]:
    """[] when the policy compiles; else (path, problem) for every offending part."""
    try:
        compile_policy(_for_engine(body), contexts=policy_contexts())
    except PolicyError as exc:
        return list(exc.errors) or [("policy", str(exc))]
    return []


def claims_context(caller: Caller, *, now: float, asset_properties: Mapping[str, Any] | None,
                   deferred: frozenset[str] = frozenset(), use_count: int = 0, agreement_time: float | None = None,
                   purpose: str | None = None, consents: frozenset[str] | None = None,
                   duty_states: Mapping[str, str] | None = None) -> Context:
    """The evaluation context for `caller`, from its verified claims only (never from the message body).
    At negotiation the use count is 0 and the agreement is made now; at an access the data
    plane passes the counter, the agreement's time and the purpose declared for that access."""
    claims = caller.claims or {}
    membership = claims.get("membership")
    if isinstance(membership, str):
        membership = {membership}
    roles = claims.get("roles")
    if isinstance(roles, str):
        roles = {roles}
    categories = (asset_properties or {}).get("dataCategories")
    at = datetime.fromtimestamp(now, timezone.utc)
    return Context(
        now=at,
        recipient_jurisdiction=claims.get("jurisdiction") or None,
        organisation=caller.participant_id,
        connector=claims.get("referringConnector") or None,
        membership=frozenset(membership) if membership else None,
        roles=frozenset(roles) if roles else None,
        security_profile=claims.get("securityProfile") or None,
        use_count=use_count,
        agreement_time=at if agreement_time is None else datetime.fromtimestamp(agreement_time, timezone.utc),
        purpose=tuple(purpose.split()) if purpose else None,  # several purposes: separated by spaces
        data_categories=frozenset(categories) if isinstance(categories, list) else None,
        deferred=deferred,
        consents=consents,
        duty_states=duty_states,
    )


def decide(cache: PolicyCache, body: Json, *, caller: Caller, target: str, now: float,
           asset_properties: Mapping[str, Any] | None, at_negotiation: bool) -> Decision:
    policy = cache.compile(body)
    context = claims_context(caller, now=now, asset_properties=asset_properties,
                             deferred=DECIDED_AT_USE if at_negotiation else frozenset())
    decision = policy.evaluate(Request(action="use", target=target, assignee=caller.participant_id), context)
    if not decision.permitted:  # a computation-only offer: a party that may compute may see and agree to it
        computing = policy.evaluate(Request(action=COMPUTE_ACTION, target=target, assignee=caller.participant_id),
                                    context)
        if computing.permitted:
            return computing
    return decision


class EngineSentence(str):
    """One of the engine's sentences: its English text (what the API, the peer and the logs get),
    carrying the sentence as message id and parameters (`msg`) for the console's languages."""

    msg: Any

    def __new__(cls, reason: Any) -> "EngineSentence":
        sentence = super().__new__(cls, reason.message)
        sentence.msg = reason.sentence()
        return sentence

    @classmethod
    def of(cls, msg: Msg) -> "EngineSentence":
        """One of this node's own sentences (a message id marked with M_ and its parameters): its
        English text is what it always was; the console renders `msg` in its viewer's language."""
        sentence = str.__new__(cls, msg.render())
        sentence.msg = msg
        return sentence


def ours(message_id: str, **params: Any) -> EngineSentence:
    """Our own sentence `message_id` (English, with %(name)s placeholders) with its parameters."""
    return EngineSentence.of(Msg(message_id, **params))


def joined(sep: str, sentences: list[str]) -> str:
    """`sentences` joined by `sep` as one sentence, keeping the message ids when every one has them."""
    text = sep.join(sentences)
    msgs = [getattr(s, "msg", None) for s in sentences]
    if not sentences or any(m is None for m in msgs):
        return text
    sentence = str.__new__(EngineSentence, text)
    sentence.msg = Join(sep, msgs)
    return sentence


def message_of(text: Any) -> Any:
    """The stored form (msg_to_json) of a sentence that carries its message id, else None."""
    msg = getattr(text, "msg", None)
    return msg_to_json(msg) if msg is not None else None


def denial_reasons(decision: Decision) -> list[str]:
    """The refusal in sentences a data-protection officer understands."""
    sentences = [EngineSentence(r) for r in decision.reasons if getattr(r, "code", "") != "constraint-deferred"]
    return sentences or [ours(M_("no permission of the policy covers this request"))]


class AccessRefusal(list):
    """Why an offer's access policy refused: the engine's full sentences (this list: for our access
    log and operator) and `peer`, what the requester is told. An access policy is the provider's
    secret (it decides who even sees an offer): the requester learns which of its own attributes
    refused, never whom or what the policy admits."""

    def __init__(self, reasons: list[str], peer: list[str] | None = None) -> None:
        super().__init__(reasons)
        self.peer = list(reasons) if peer is None else peer


#: in place of the policy's own values in a sentence told to the requester
WITHHELD = "(not disclosed)"


def _peer_sentence(reason: Any) -> str:
    """A refusal reason without the policy's values: the requester's own value and the attribute."""
    text = getattr(reason, "text", None)
    params = getattr(text, "params", None)
    if isinstance(text, Msg) and params and "expected" in params and set(params) <= {"label", "value", "expected"}:
        return Msg(text.id, **{**params, "expected": WITHHELD}).render()
    if reason.left_operand:
        return f"the request does not satisfy the access policy's condition on {reason.left_operand[:200]}"
    return f"the access policy does not admit this request ({reason.code})"


def reason_messages(reasons: list[str]) -> list[Any] | None:
    """The engine's sentences among `reasons` as stored message ids (access_log.reason_msgs), or
    None unless every reason is one (a reason of our own words stays text)."""
    msgs = [getattr(r, "msg", None) for r in reasons]
    return [msg_to_json(m) for m in msgs] if msgs and all(m is not None for m in msgs) else None


#: the text of an access policy's refusal (its reasons follow); a message id of the console's catalogs
ACCESS_DENIED_TEXT = "Refused by the offer's access policy: %(reasons)s"


def access_denied_messages(reasons: list[str]) -> list[Any] | None:
    """`access_denied_text` as one stored sentence, when its reasons are the engine's."""
    if not reasons or not all(getattr(r, "msg", None) is not None for r in reasons):
        return None
    return [msg_to_json(Msg(ACCESS_DENIED_TEXT, reasons=Join(" ", [r.msg for r in reasons])))]


def access_refusal(cache: PolicyCache, access_body: Json | None, *, caller: Caller, target: str, now: float,
                   asset_properties: Mapping[str, Any] | None, offer_id: str | None = None) -> AccessRefusal | None:
    """None when the offer's access policy admits `caller` (its verified claims) to `target`;
    otherwise the reasons, in the engine's words, and what the requester is told. `access_body`
    None means the offer (or its policy) is gone: refused (fail closed). Decided exactly as the
    catalog decides."""
    if access_body is None:
        if offer_id:
            return AccessRefusal([ours(M_("the offer %(offer)s is no longer offered for %(target)s: refused "
                                          "(fail closed)"), offer=repr(offer_id), target=repr(target))])
        return AccessRefusal([ours(M_("the offer is no longer offered for %(target)s: refused (fail closed)"),
                                   target=repr(target))])
    try:
        decision = decide(cache, access_body, caller=caller, target=target, now=now,
                          asset_properties=asset_properties, at_negotiation=True)
    except Exception:  # noqa: BLE001 - a policy that cannot be evaluated refuses (fail closed)
        log.exception("the access policy of offer %s could not be evaluated", offer_id)
        return AccessRefusal([ours(M_("the offer's access policy could not be evaluated: refused (fail closed)"))])
    if decision.permitted:
        return None
    shown = [r for r in decision.reasons if getattr(r, "code", "") != "constraint-deferred"]
    peer = list(dict.fromkeys(_peer_sentence(r) for r in shown)) or ["no permission of the policy covers this request"]
    return AccessRefusal(denial_reasons(decision), peer)


def access_denied_text(reasons: list[str]) -> str:
    """The refusal as our access log keeps it: the engine's full sentences."""
    return ACCESS_DENIED_TEXT % {"reasons": " ".join(reasons)}


def access_denied_peer_text(reasons: list[str]) -> str:
    """The refusal as the requester is told it (see AccessRefusal)."""
    told = reasons.peer if isinstance(reasons, AccessRefusal) else reasons
    return ACCESS_DENIED_TEXT % {"reasons": " ".join(told)}


class AccessDenied(Forbidden):
    """A DSP error (403, code AccessDenied) telling the requester which of its attributes the
    access policy refused; `reasons` keeps the engine's full sentences for our own record."""

    def __init__(self, reasons: list[str], *, offer_id: str | None = None) -> None:
        super().__init__(access_denied_peer_text(reasons), code=ACCESS_DENIED)
        self.reasons = list(reasons)
        self.offer_id = offer_id


def record_decision(conn: Connection, *, stage: str, consumer_id: str, reasons: list[str], now: float,
                    permitted: bool = False, offer_id: str | None = None, agreement_id: str | None = None,
                    transfer_id: str | None = None) -> None:
    """One row of the access log (GET /api/v1/access-log) for a decision outside the data plane:
    a refusal at negotiation or at transfer start."""
    conn.execute(access_log.insert(), {
        "transfer_id": transfer_id, "agreement_id": agreement_id, "consumer_id": consumer_id[:512], "at": now,
        "permitted": permitted, "purpose": None, "reasons": reasons, "reason_msgs": reason_messages(reasons),
        "duties": [], "stage": stage,
        "offer_id": offer_id[:512] if offer_id else None})
