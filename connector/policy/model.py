"""Public data types: the request, the evaluation context and the decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Mapping

from . import taxonomy
from .values import Duration, as_datetime, as_duration, fmt_datetime, parse_integer
from .vocab import ODRL, canonical_action, compact, expand_curie, resolve_bare_action

# ---------------------------------------------------------------------------
# request and context
# ---------------------------------------------------------------------------


def _action_iri(a: str) -> str:
    if ":" not in a:
        return resolve_bare_action(a) or ODRL + a
    return canonical_action(expand_curie(a))


_ACTION_MEMO: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Request:
    """What is being asked: ``assignee`` wants to perform ``action`` on ``target``.

    ``action`` may be a bare ODRL name ("use", "read", "distribute"), a compact
    IRI ("odrl:read") or a full IRI. ``target`` is the asset (dataset) id,
    ``assignee`` the requesting participant's verified id.
    """

    action: str = "use"
    target: str | None = None
    assignee: str | None = None

    def __post_init__(self):
        a = _ACTION_MEMO.get(self.action)
        if a is None:
            a = _action_iri(self.action)
            if len(_ACTION_MEMO) < 4096:
                _ACTION_MEMO[self.action] = a
        object.__setattr__(self, "action", a)
        if self.target is not None:
            object.__setattr__(self, "target", expand_curie(self.target))
        if self.assignee is not None:
            object.__setattr__(self, "assignee", expand_curie(self.assignee))


_DUTY_STATE_WORDS = {
    "fulfilled": "fulfilled", "performed": "fulfilled", "done": "fulfilled",
    "violated": "violated", "unperformed": "violated", "failed": "violated",
    "not-set": "not-set", "notset": "not-set", "nonset": "not-set", "unknown": "not-set", "pending": "not-set",
}
_EVENT_STATES = {"upcoming", "ongoing", "ended"}


def _norm_duty_state(v: str) -> str:
    w = str(v).rsplit("#", 1)[-1].rsplit("/", 1)[-1].rsplit(":", 1)[-1].strip().lower().replace("_", "-")
    return _DUTY_STATE_WORDS.get(w, _DUTY_STATE_WORDS.get(w.replace("-", ""), "not-set"))


_NORM_MEMO: dict[tuple, Any] = {}


def _remember(key, value):
    if len(_NORM_MEMO) > 8192:
        _NORM_MEMO.clear()
    _NORM_MEMO[key] = value
    return value


_CONTAINERS = (list, tuple, set, frozenset, dict)


def _set(values, domain: str = "iri", name: str = "value") -> frozenset[str] | None:
    if values is None:
        return None
    key = None
    if isinstance(values, str):
        key = ("set", domain, values)
        values = (values,)
    elif isinstance(values, dict) or not isinstance(values, (list, tuple, set, frozenset)):
        raise ValueError(f"{name} takes a set of values, got {type(values).__name__}")
    elif isinstance(values, frozenset):
        key = (domain, values)
    if key is not None:
        hit = _NORM_MEMO.get(key)
        if hit is not None:
            return hit
    out = set()
    for v in values:
        if isinstance(v, _CONTAINERS):
            raise ValueError(f"{name} takes a set of single values; one of them is a {type(v).__name__} "
                             f"(a list where one value is expected is an error, never read as text)")
        try:
            out.add(taxonomy.normalise(domain, v))
        except ValueError:
            out.add(str(v))
    res = frozenset(out)
    return _remember(key, res) if key is not None else res


def _one(value, domain: str, name: str = "value"):
    if value is None:
        return None
    if isinstance(value, _CONTAINERS):
        n = len(value)
        raise ValueError(f"{name} takes one value, got a {type(value).__name__}"
                         + (f" of {n}" if not isinstance(value, dict) else "")
                         + " (a list where one value is expected is an error, never read as text)")
    key = (domain, value)
    try:
        hit = _NORM_MEMO.get(key)
    except TypeError:  # unhashable: normalise without memo
        key, hit = None, None
    if hit is not None:
        return hit
    try:
        res = taxonomy.normalise(domain, value)
    except (ValueError, TypeError):
        res = str(value)
    return _remember(key, res) if key is not None else res


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """The state of the world a decision is made in. The node fills it from the
    requester's verified claims and its own counters; nothing here is read
    from a clock or a file. Values are normalised at construction (compact
    IRIs expanded, jurisdictions reduced to codes, naive datetimes read as UTC).

    A field left ``None`` is *unknown*: every constraint that needs it fails
    closed, with that as the reason.
    """

    #: time of the request (aware datetime; naive = UTC)
    now: datetime | None = None
    #: declared purpose(s) of the access: one ("hks:MedicalResearch", a DPV purpose IRI) or a
    #: set of them, normalised to a frozenset (an empty set is no declaration: unknown)
    purpose: "str | frozenset[str] | None" = None
    #: jurisdiction the receiving organisation is established in (verified claim): "HK", "CN-GD-GZ", "SG" ...
    recipient_jurisdiction: str | None = None
    #: where the data will be processed (odrl:spatial), same codes
    processing_location: str | None = None
    #: verified id of the requesting organisation (participant id)
    organisation: str | None = None
    #: verified id of the requesting connector
    connector: str | None = None
    #: station memberships certified for the requester, e.g. {"hks:StationMember"}
    membership: frozenset[str] | None = None
    #: roles certified for the requester
    roles: frozenset[str] | None = None
    #: IDS security profile from the requester's token
    security_profile: str | None = None
    #: completed uses of the asset under this agreement *before* this request (0 at negotiation)
    use_count: int | None = None
    #: when the agreement was concluded (at negotiation: the time of the request)
    agreement_time: datetime | None = None
    #: DPV personal-data categories of the requested asset (pd: IRIs)
    data_categories: frozenset[str] | None = None
    #: retention period the requester declared (xsd:duration text, timedelta or Duration)
    retention_period: Duration | None = None
    #: event IRI -> "upcoming" | "ongoing" | "ended"
    events: Mapping[str, str] | None = None
    #: consent references on record (for obtainConsent duties)
    consents: frozenset[str] | None = None
    #: duty uid (or path such as "permission[0].duty[1]") -> "fulfilled" | "violated" | "not-set"
    duty_states: Mapping[str, str] | None = None
    #: collections (odrl:partOf) the requested asset belongs to
    asset_collections: frozenset[str] = frozenset()
    #: values for any other left operand, keyed by IRI, compact IRI or bare name
    operands: Mapping[str, Any] | None = None
    #: Context fields whose constraints are not decided now but at each use, e.g.
    #: {"purpose"} when a contract is negotiated: such a constraint counts as met
    #: and is reported with the code "constraint-deferred" (the data plane checks it)
    deferred: frozenset[str] = frozenset()

    def __post_init__(self):
        s = object.__setattr__
        s(self, "deferred", frozenset(self.deferred))
        if self.now is not None:
            s(self, "now", as_datetime(self.now))
        if self.agreement_time is not None:
            s(self, "agreement_time", as_datetime(self.agreement_time))
        s(self, "purpose", _set(self.purpose, "purpose", "purpose") or None)
        s(self, "recipient_jurisdiction", _one(self.recipient_jurisdiction, "jurisdiction", "recipient_jurisdiction"))
        s(self, "processing_location", _one(self.processing_location, "jurisdiction", "processing_location"))
        s(self, "organisation", _one(self.organisation, "iri", "organisation"))
        s(self, "connector", _one(self.connector, "iri", "connector"))
        s(self, "security_profile", _one(self.security_profile, "profile", "security_profile"))
        s(self, "membership", _set(self.membership, name="membership"))
        s(self, "roles", _set(self.roles, name="roles"))
        s(self, "data_categories", _set(self.data_categories, "category", "data_categories"))
        s(self, "consents", _set(self.consents, name="consents"))
        s(self, "asset_collections", _set(self.asset_collections, name="asset_collections") or frozenset())
        if self.use_count is not None:
            s(self, "use_count", parse_integer(self.use_count))
        if self.retention_period is not None:
            s(self, "retention_period", as_duration(self.retention_period))
        if self.events is not None:
            ev = {}
            for k, v in self.events.items():
                v = str(v).lower()
                ev[expand_curie(k)] = v if v in _EVENT_STATES else "unknown"
            s(self, "events", ev)
        if self.duty_states:
            s(self, "duty_states", {expand_curie(k): _norm_duty_state(v) for k, v in self.duty_states.items()})
        else:
            s(self, "duty_states", None)
        if self.operands:
            ops = {}
            for k, v in self.operands.items():
                ops[k] = v
                ops[expand_curie(k)] = v
            s(self, "operands", ops)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Context":
        """Build from JSON-friendly values (ISO strings for times and durations)."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown context field(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        return cls(**dict(d))


# ---------------------------------------------------------------------------
# decision
# ---------------------------------------------------------------------------


class Effect(str, Enum):
    PERMIT = "permit"
    DENY = "deny"
    NOT_APPLICABLE = "not-applicable"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Reason:
    """Why: which rule and constraint, the operands, and a sentence."""

    #: the rule: its uid if it has one, else its path ("permission[0]")
    rule: str
    #: where in the policy: "permission[0].constraint[1]", "prohibition[0]", ...
    path: str
    #: machine-readable: permitted, prohibited, constraint-not-satisfied,
    #: operand-missing, duty-not-fulfilled, duty-violated, duty-blocked,
    #: refinement-not-satisfied, target-mismatch, party-mismatch, no-rule,
    #: conflict-void
    code: str
    #: a sentence for a data-protection officer
    message: str
    left_operand: str | None = None
    operator: str | None = None
    expected: str | None = None
    actual: str | None = None
    #: the sentence as a message id and parameters (explain.Msg), for a shell to translate;
    #: ``message`` is its English text
    text: Any = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__ if k != "text" and getattr(self, k) is not None}

    def sentence(self) -> Any:
        """The sentence to translate: ``text`` when the engine gave one, else the English message."""
        return self.text if self.text is not None else self.message


@dataclass(frozen=True, slots=True)
class Duty:
    """Something that must be done for (or because of) the decision.

    ``timing``: "before-release" (the provider's connector does it before the
    data leaves; if it cannot, the access is blocked), "obligation" (the
    consumer must do it; ``deadline`` if any), "precondition" (must already
    have happened; listed only when the policy's duty reading defers it).
    """

    kind: str
    action: str
    rule: str
    timing: str
    params: tuple[tuple[str, Any], ...] = ()
    deadline: datetime | None = None

    def param(self, name: str, default=None):
        for k, v in self.params:
            if k == name:
                return v
        return default

    def describe(self) -> str:
        from .explain import describe_duty

        return describe_duty(self)

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "action": compact(self.action), "rule": self.rule, "timing": self.timing,
             "params": {k: _jsonable(v) for k, v in self.params}, "description": self.describe()}
        if self.deadline is not None:
            d["deadline"] = fmt_datetime(self.deadline)
        return d


def _jsonable(v):
    if isinstance(v, (list, tuple, frozenset, set)):
        return [_jsonable(x) for x in v]
    if isinstance(v, datetime):
        return fmt_datetime(v)
    if isinstance(v, str) and "://" in v:
        return compact(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


class Decision:
    """permit / deny / not-applicable, why, and what must be done.

    ``duties`` are to be performed when the decision is permit; a node treats
    not-applicable like deny. ``consequences`` lists duties a violation has
    triggered (ODRL consequence/remedy), for the record.
    """

    __slots__ = ("effect", "reasons", "duties", "consequences", "policy_uid")

    def __init__(self, effect: Effect, reasons: tuple[Reason, ...], duties: tuple[Duty, ...] = (),
                 consequences: tuple[Duty, ...] = (), policy_uid: str | None = None):
        self.effect = effect
        self.reasons = reasons
        self.duties = duties
        self.consequences = consequences
        self.policy_uid = policy_uid

    @property
    def permitted(self) -> bool:
        return self.effect is Effect.PERMIT

    def __bool__(self) -> bool:  # pragma: no cover - convenience
        return self.effect is Effect.PERMIT

    def __repr__(self) -> str:
        return f"Decision({self.effect.value}, reasons={len(self.reasons)}, duties={len(self.duties)})"

    def explain(self) -> str:
        from .explain import explain_decision

        return explain_decision(self)

    def to_dict(self) -> dict:
        return {
            "decision": self.effect.value,
            "policy": self.policy_uid,
            "reasons": [r.to_dict() for r in self.reasons],
            "duties": [d.to_dict() for d in self.duties],
            "consequences": [d.to_dict() for d in self.consequences],
        }


# ---------------------------------------------------------------------------
# reports (full evaluation, every rule)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConstraintReport:
    path: str
    state: str  # satisfied | not-satisfied | unknown
    reason: Reason | None = None
    children: tuple["ConstraintReport", ...] = ()
    #: the constraint's own @id, if it has one
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class DutyReport:
    path: str
    uid: str | None
    kind: str
    #: inactive (its constraints do not hold) | to-perform | fulfilled | not-set | violated | blocked
    state: str
    reason: Reason | None = None
    duty: Duty | None = None


@dataclass(frozen=True, slots=True)
class RuleReport:
    path: str
    uid: str | None
    kind: str  # permission | prohibition | obligation
    action_matched: bool
    target_matched: bool | None  # None: rule names no target (any)
    party_matched: bool | None  # None: rule names no assignee (any)
    constraints: tuple[ConstraintReport, ...]
    constraint_state: str  # satisfied | not-satisfied | unknown
    refinement_state: str
    duties: tuple[DutyReport, ...]
    #: premise matched, constraints satisfied and conditions (duties) not failed
    active: bool
    #: for permissions: active and refinements satisfied (the rule grants)
    granted: bool
    reasons: tuple[Reason, ...]

    @property
    def applies(self) -> bool:
        return self.action_matched and self.target_matched is not False and self.party_matched is not False


@dataclass(frozen=True, slots=True)
class PolicyReport:
    decision: Decision
    rules: tuple[RuleReport, ...]
    conflict: str | None = None

    def rule(self, key: str) -> RuleReport:
        for r in self.rules:
            if r.uid == key or r.path == key:
                return r
        raise KeyError(key)



