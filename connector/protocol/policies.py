"""Pure helpers on ODRL policies in neutral form: canonical comparison and the
provider's offer/agreement copies."""
from __future__ import annotations

import copy
import hashlib
from typing import Any

import orjson

Json = dict[str, Any]

# Identity and placement of a policy, not its terms.
_ENVELOPE = ("@id", "@type", "@context", "target", "assigner", "assignee", "timestamp", "uid")


def _strip_empty(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _strip_empty(v)
            if v in ([], {}, None):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        items = [_strip_empty(v) for v in value]
        items = [v for v in items if v not in ([], {}, None)]
        return items
    if isinstance(value, str) and value.startswith("odrl:"):
        return value[5:]
    if isinstance(value, str) and value.startswith("http://www.w3.org/ns/odrl/2/"):
        return value[len("http://www.w3.org/ns/odrl/2/"):]
    return value


_RIGHT_OPERANDS = ("rightOperand", "odrl:rightOperand")


def _literal(value: Any) -> Any:
    """A JSON number or boolean as the typed literal it means (the DSP schemas allow a
    rightOperand to be a string, an object or an array only)."""
    if isinstance(value, bool):
        return {"@value": "true" if value else "false", "@type": "xsd:boolean"}
    if isinstance(value, int):
        return {"@value": str(value), "@type": "xsd:integer"}
    if isinstance(value, float):
        return {"@value": repr(value), "@type": "xsd:decimal"}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    return value


def typed_literals(value: Any) -> Any:
    """`value` (a policy or part of one) with every JSON number or boolean rightOperand written
    as a typed literal ({"@value": "10", "@type": "xsd:integer"}): what a consumer's DSP 2025-1
    schema validation accepts, and what the policy engine reads the same way."""
    if isinstance(value, dict):
        return {k: _literal(v) if k in _RIGHT_OPERANDS else typed_literals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed_literals(v) for v in value]
    return value


def rules_of(policy: Json) -> Json:
    """The terms of a policy without its envelope, empty lists removed, rule lists sorted."""
    body = {k: v for k, v in policy.items() if k not in _ENVELOPE}
    body = _strip_empty(typed_literals(body))
    for key in ("permission", "prohibition", "obligation"):
        if key in body:
            body[key] = sorted(body[key], key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
    return body


def canonical_rules(policy: Json) -> bytes:
    return orjson.dumps(rules_of(policy), option=orjson.OPT_SORT_KEYS)


def same_terms(a: Json, b: Json) -> bool:
    """True when two policies say the same thing (ignoring ids, target and parties)."""
    return canonical_rules(a) == canonical_rules(b)


def fingerprint(policy: Json) -> str:
    return hashlib.sha256(canonical_rules(policy)).hexdigest()


def catalog_offer(offer_id: str, policy: Json, assigner: str) -> Json:
    """An offer as listed in a catalog dataset: no target (DSP: implied by the dataset)."""
    body = {k: copy.deepcopy(v) for k, v in policy.items() if k not in _ENVELOPE}
    body = _strip_empty(typed_literals(body))
    if not any(k in body for k in ("permission", "prohibition")):
        body["permission"] = []  # the schemas want one of them; an empty policy permits nothing
    return {"@id": offer_id, "@type": "Offer", "assigner": assigner, **body}


def message_offer(offer_id: str, policy: Json, target: str, assigner: str) -> Json:
    """An offer inside a ContractRequest/ContractOffer message: with target."""
    out = catalog_offer(offer_id, policy, assigner)
    out["target"] = target
    return out


def agreement_from_offer(agreement_id: str, provider_offer: Json, *, assigner: str, assignee: str,
                         timestamp: str) -> Json:
    """The agreement carries the provider's own copy of the offered terms, never the consumer's."""
    body = {k: copy.deepcopy(v) for k, v in provider_offer.items() if k not in _ENVELOPE}
    return {
        "@id": agreement_id,
        "@type": "Agreement",
        "target": provider_offer["target"],
        "assigner": assigner,
        "assignee": assignee,
        "timestamp": timestamp,
        **body,
    }
