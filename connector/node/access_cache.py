"""Catalog access decisions without one policy evaluation per offer per request.

An offer's access policy is decided on the requester's verified claims, the dataset (target and
its data categories) and the time. What a given policy's decision can depend on is read from
its compiled form once:

* ``STATIC``: only the requester's claims (and conditions deferred to each use, which hold at
  negotiation): the decision is cached across requests per (policy content, claim set);
* ``PER_REQUEST``: also the time (a dateTime constraint, a duty deadline): decided once per
  request, for every offer under that policy;
* ``PER_OFFER``: the target (a rule that names targets or asset collections), the dataset's
  data categories, or anything the node cannot classify: decided per (policy, dataset) within
  the request.

Invalidation is by construction: the cache key holds the policy's content hash (a changed policy
is another key) and every claim the context is built from; which policy an offer is under is read
from the database on every request, so a changed or withdrawn offer takes effect at once."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Mapping

import orjson

from ..identity import Caller
from ..policy.compiled import Atom, CDuty, CRule
from .usage import DECIDED_AT_USE, PolicyCache, access_refusal

Json = dict[str, Any]
STATIC, PER_REQUEST, PER_OFFER = "static", "per-request", "per-offer"
#: context fields filled from the requester's verified claims only (usage.claims_context)
CLAIM_FIELDS = frozenset({"recipient_jurisdiction", "organisation", "connector", "membership", "roles",
                          "security_profile"})
#: constant at negotiation: no use yet, and the agreement is made now (elapsed time 0)
CONSTANT_FIELDS = frozenset({"use_count"})
TIME_FIELDS = frozenset({"now", "agreement_time"})
_CLAIM_KEYS = ("jurisdiction", "referringConnector", "membership", "roles", "securityProfile")


def policy_hash(body: Json) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def claims_key(caller: Caller) -> str:
    """Everything of the caller that the evaluation context is built from."""
    claims = caller.claims or {}
    picked = {k: claims.get(k) for k in _CLAIM_KEYS}
    return hashlib.sha256(orjson.dumps([caller.participant_id, picked], option=orjson.OPT_SORT_KEYS,
                                       default=str)).hexdigest()


def _walk(obj: Any, seen: set[int], out: dict[str, bool]) -> None:
    if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        return
    seen.add(id(obj))
    if isinstance(obj, Atom):
        field = obj.lo.field
        if field is None or field not in CLAIM_FIELDS | CONSTANT_FIELDS | DECIDED_AT_USE:
            out["time" if field in TIME_FIELDS else "offer"] = True
        return
    if isinstance(obj, CRule) and (obj.targets is not None or obj.target_colls):
        out["offer"] = True
    if isinstance(obj, CDuty) and (obj.deadline_abs is not None or obj.deadline_dur is not None
                                   or obj.timing == "precondition"):
        out["time"] = True
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif hasattr(obj, "__slots__") or hasattr(obj, "__dict__"):
        names = [n for cls in type(obj).__mro__ for n in getattr(cls, "__slots__", ())]
        children = [getattr(obj, n, None) for n in names] + list(getattr(obj, "__dict__", {}).values())
        children = [c for c in children if not callable(c)]
    else:
        return
    for child in children:
        _walk(child, seen, out)


def reads(compiled: Any) -> frozenset[str]:
    """What a decision under the compiled policy reads besides the requester's claims and what is
    constant or deferred at negotiation: "offer" (a target, an asset collection, the data
    categories or a term not classified) and "time" (a clock constraint, a duty deadline)."""
    found: dict[str, bool] = {}
    _walk(compiled, set(), found)
    return frozenset(found)


def classify(compiled: Any) -> str:
    found = reads(compiled)
    if "offer" in found:
        return PER_OFFER
    return PER_REQUEST if "time" in found else STATIC


class AccessDecisions:
    """The catalog's access decisions (see the module docstring), bounded in memory."""

    def __init__(self, policies: PolicyCache, size: int = 65536) -> None:
        self.policies = policies
        self.size = size
        self._kinds: dict[str, str] = {}
        self._static: OrderedDict[tuple[str, str], bool] = OrderedDict()

    def kind(self, digest: str, body: Json) -> str:
        kind = self._kinds.get(digest)
        if kind is None:
            try:
                kind = classify(self.policies.compile(body))
            except Exception:  # noqa: BLE001 - unclassifiable: decided per offer, where a failure refuses
                kind = PER_OFFER
            if len(self._kinds) >= self.size:
                self._kinds.clear()
            self._kinds[digest] = kind
        return kind

    def request(self, caller: Caller, now: float) -> "RequestDecisions":
        return RequestDecisions(self, caller, now)


class RequestDecisions:
    """Decisions within one catalog request (one `now`, one caller)."""

    def __init__(self, owner: AccessDecisions, caller: Caller, now: float) -> None:
        self.owner, self.caller, self.now = owner, caller, now
        self.claims = claims_key(caller)
        self._memo: dict[tuple, bool] = {}

    def kind(self, digest: str, body: Json) -> str:
        return self.owner.kind(digest, body)

    def admits(self, digest: str, body: Json, target: str, properties: Mapping[str, Any] | None) -> bool:
        """Whether the access policy `body` (content hash `digest`) admits the caller to `target`."""
        kind = self.owner.kind(digest, body)
        if kind == STATIC:
            key = (digest, self.claims)
            static = self.owner._static
            hit = static.get(key)
            if hit is None:
                hit = self._decide(body, target, properties)
                static[key] = hit
                if len(static) > self.owner.size:
                    static.popitem(last=False)
            return hit
        if kind == PER_REQUEST:
            memo_key: tuple = (digest,)
        else:
            categories = (properties or {}).get("dataCategories")
            memo_key = (digest, target, orjson.dumps(categories, option=orjson.OPT_SORT_KEYS, default=str))
        hit = self._memo.get(memo_key)
        if hit is None:
            hit = self._memo[memo_key] = self._decide(body, target, properties)
        return hit

    def _decide(self, body: Json, target: str, properties: Mapping[str, Any] | None) -> bool:
        return access_refusal(self.owner.policies, body, caller=self.caller, target=target, now=self.now,
                              asset_properties=properties) is None
