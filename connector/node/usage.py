"""Usage control at the node: the policy engine (pure) fed with the requester's
verified claims and the node's own facts. Used for the catalog (access policy) and
for negotiation (contract policy). Enforcement at each data access comes with the
data plane, through the same engine."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Mapping

import orjson

from ..identity import Caller
from ..policy import CompiledPolicy, Context, Decision, PolicyError, Request, compile_policy

Json = dict[str, Any]

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

    def compile(self, body: Json) -> CompiledPolicy:
        key = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        hit = self._compiled.get(key)
        if hit is not None:
            self._compiled.move_to_end(key)
            return hit
        compiled = compile_policy(_for_engine(body))
        self._compiled[key] = compiled
        if len(self._compiled) > self.size:
            self._compiled.popitem(last=False)
        return compiled


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
        compile_policy(_for_engine(body))
    except PolicyError as exc:
        return list(exc.errors) or [("policy", str(exc))]
    return []


def claims_context(caller: Caller, *, now: float, asset_properties: Mapping[str, Any] | None,
                   deferred: frozenset[str] = frozenset(), use_count: int = 0, agreement_time: float | None = None,
                   purpose: str | None = None) -> Context:
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
        purpose=purpose,
        data_categories=frozenset(categories) if isinstance(categories, list) else None,
        deferred=deferred,
    )


def decide(cache: PolicyCache, body: Json, *, caller: Caller, target: str, now: float,
           asset_properties: Mapping[str, Any] | None, at_negotiation: bool) -> Decision:
    policy = cache.compile(body)
    context = claims_context(caller, now=now, asset_properties=asset_properties,
                             deferred=DECIDED_AT_USE if at_negotiation else frozenset())
    return policy.evaluate(Request(action="use", target=target, assignee=caller.participant_id), context)


def denial_reasons(decision: Decision) -> list[str]:
    """The refusal in sentences a data-protection officer understands."""
    sentences = [r.message for r in decision.reasons if getattr(r, "code", "") != "constraint-deferred"]
    return sentences or ["no permission of the policy covers this request"]
