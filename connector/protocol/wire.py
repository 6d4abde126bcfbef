"""Translate between DSP wire forms and the connector's neutral message form.

The *neutral form* is the compact DSP 2025-1 form (bare terms such as ``providerPid``,
``permission`` and ``Offer``) without ``@context``. Set-valued terms are always lists.
The rest of the connector works only with the neutral form.

* ``from_wire(doc, "2025-1")`` drops ``@context``, turns set-valued terms into lists and
  reads enumerations leniently.
* ``from_wire(doc, "2024-1")`` does the same and also strips the ``dspace:``, ``odrl:``,
  ``dct:`` and ``dcat:`` prefixes from keys that are DSP terms, and from enumerated values:
  ``dspace:ContractRequestMessage`` becomes ``ContractRequestMessage``, ``dspace:REQUESTED``
  becomes ``REQUESTED``, ``odrl:use`` becomes ``use``, ``odrl:dateTime`` becomes ``dateTime``.
  It also unwraps ``{"@id": x}`` where the 2024-1 context leaves IRIs wrapped.
* ``to_wire(neutral, version)`` does the reverse. For 2024-1 it writes each term the way
  the 2024-1 schemas and examples spell it.

This module is pure and fast. It walks plain dicts and lists and never calls a JSON-LD
processor. Keys it does not know pass through untouched, and so do their values.
Examples are extension properties written as full IRIs, keys with a foreign prefix such
as ``foaf:homepage``, and DCAT metadata that 2025-1 has no bare term for, such as
``dct:title``. The 2025-1 context declares the ``dct``, ``dcat`` and ``odrl`` prefixes, so
such keys keep their meaning in the neutral form.

Deliberate choices (see also the tests in ``tests/test_wire.py``):

* ``catalog`` (nested catalogs) is written as ``dcat:catalog``, the IRI that 2025-1 and EDC
  use. ``from_wire`` also accepts ``dspace:catalog``, which the 2024-1 context declares but
  no 2024-1 schema uses.
* ``format`` is written as ``{"@id": x}`` inside a Distribution (as in the 2024-1
  ``dataset.json`` example and EDC) and as a plain string in TransferRequestMessage (the
  schema says ``string``).
* ``odrl:duty`` inside a 2024-1 Permission is a single object (the 2024-1 schema says
  object). A one-element list is unwrapped on output. Input accepts a single object or a list.
* Action and operator values lose ``odrl:`` only when 2025-1 defines the bare term (``use``,
  ``eq``, ``lteq``, …), so ``odrl:read`` stays ``odrl:read``. That is what a JSON-LD
  compaction with the 2025-1 context produces. Left operands always lose ``odrl:``, because
  the 2025-1 spec writes them bare (``dateTime``, ``spatial``).
* Fields that only one version requires are **not** invented, for example 2024-1's
  ``dspace:callbackAddress`` on ContractAgreementMessage or ``odrl:assigner`` on offers.
  The caller must fill them in before calling ``to_wire``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CONTEXT_2025_1",
    "CONTEXT_2024_1",
    "VERSIONS",
    "from_wire",
    "to_wire",
    "normalize_lists",
    "KEY_TO_2024",
    "KEY_FROM_2024",
    "TYPE_PREFIX",
    "SET_VALUED",
]

CONTEXT_2025_1 = "https://w3id.org/dspace/2025/1/context.jsonld"
CONTEXT_2024_1 = "https://w3id.org/dspace/2024/1/context.json"
VERSIONS = ("2025-1", "2024-1")

NS_DSPACE_2025 = "https://w3id.org/dspace/2025/1/"
NS_DSPACE_2024 = "https://w3id.org/dspace/2024/1/"
NS_ODRL = "http://www.w3.org/ns/odrl/2/"

# --------------------------------------------------------------------------------------
# Tables. They were derived from the 2025-1 context (the prefix of each term's IRI) and
# checked against the property names in the 2024-1 schemas, the 2024-1 context and the
# 2024-1 examples. tests/test_wire.py derives them again and compares.
# --------------------------------------------------------------------------------------

#: neutral (2025-1) property term -> 2024-1 key. ``dataset``, ``name`` and ``value`` depend
#: on the enclosing node. See ``_key_to_2024``.
KEY_TO_2024: dict[str, str] = {
    # dspace:
    "providerPid": "dspace:providerPid",
    "consumerPid": "dspace:consumerPid",
    "callbackAddress": "dspace:callbackAddress",
    "offer": "dspace:offer",
    "agreement": "dspace:agreement",
    "timestamp": "dspace:timestamp",
    "eventType": "dspace:eventType",
    "state": "dspace:state",
    "code": "dspace:code",
    "reason": "dspace:reason",
    "filter": "dspace:filter",
    "dataAddress": "dspace:dataAddress",
    "agreementId": "dspace:agreementId",
    "endpointType": "dspace:endpointType",
    "endpoint": "dspace:endpoint",
    "endpointProperties": "dspace:endpointProperties",
    "name": "dspace:name",
    "value": "dspace:value",
    "participantId": "dspace:participantId",
    # dct:
    "format": "dct:format",
    # dcat:
    "dataset": "dcat:dataset",  # dspace:dataset inside DatasetRequestMessage
    "catalog": "dcat:catalog",
    "service": "dcat:service",
    "distribution": "dcat:distribution",
    "accessService": "dcat:accessService",
    "endpointURL": "dcat:endpointURL",
    "endpointDescription": "dcat:endpointDescription",
    "servesDataset": "dcat:servesDataset",
    # odrl:
    "hasPolicy": "odrl:hasPolicy",
    "permission": "odrl:permission",
    "prohibition": "odrl:prohibition",
    "obligation": "odrl:obligation",
    "duty": "odrl:duty",
    "constraint": "odrl:constraint",
    "action": "odrl:action",
    "target": "odrl:target",
    "assigner": "odrl:assigner",
    "assignee": "odrl:assignee",
    "leftOperand": "odrl:leftOperand",
    "operator": "odrl:operator",
    "rightOperand": "odrl:rightOperand",
    "profile": "odrl:profile",
    "and": "odrl:and",
    "or": "odrl:or",
    "xone": "odrl:xone",
    "andSequence": "odrl:andSequence",
}

#: 2024-1 key -> neutral term (the inverse, plus the accepted alternative spellings)
KEY_FROM_2024: dict[str, str] = {v: k for k, v in KEY_TO_2024.items()}
KEY_FROM_2024.update({"dspace:dataset": "dataset", "dspace:catalog": "catalog"})

NEUTRAL_KEYS = frozenset(KEY_TO_2024)

#: neutral type term -> 2024-1 prefix
TYPE_PREFIX: dict[str, str] = {
    **{
        t: "dspace"
        for t in (
            "CatalogRequestMessage",
            "DatasetRequestMessage",
            "CatalogError",
            "ContractRequestMessage",
            "ContractOfferMessage",
            "ContractAgreementMessage",
            "ContractAgreementVerificationMessage",
            "ContractNegotiationEventMessage",
            "ContractNegotiationTerminationMessage",
            "ContractNegotiation",
            "ContractNegotiationError",
            "TransferRequestMessage",
            "TransferStartMessage",
            "TransferCompletionMessage",
            "TransferSuspensionMessage",
            "TransferTerminationMessage",
            "TransferProcess",
            "TransferError",
            "DataAddress",
            "EndpointProperty",
            "VersionsError",
            "CatalogService",
        )
    },
    **{t: "dcat" for t in ("Catalog", "Dataset", "Distribution", "DataService")},
    **{
        t: "odrl"
        for t in (
            "Policy",
            "Rule",
            "Agreement",
            "Assertion",
            "Offer",
            "Set",
            "Asset",
            "Action",
            "Permission",
            "Prohibition",
            "Duty",
            "Constraint",
            "Operator",
            "RightOperand",
            "LeftOperand",
        )
    },
}
_PREFIXED_TYPES = {f"{p}:{t}": t for t, p in TYPE_PREFIX.items()}

NEGOTIATION_STATES = frozenset(
    {"REQUESTED", "OFFERED", "ACCEPTED", "AGREED", "VERIFIED", "FINALIZED", "TERMINATED"}
)
TRANSFER_STATES = frozenset({"REQUESTED", "STARTED", "TERMINATED", "COMPLETED", "SUSPENDED"})
STATES = NEGOTIATION_STATES | TRANSFER_STATES
EVENT_TYPES = frozenset({"ACCEPTED", "FINALIZED"})

#: ODRL values that the 2025-1 ODRL profile defines as bare terms
ODRL_PROFILE_ACTIONS = frozenset({"use"})
ODRL_PROFILE_OPERATORS = frozenset(
    {"eq", "gt", "gteq", "lt", "lteq", "neq", "isA", "hasPart", "isPartOf", "isAllOf", "isAnyOf", "isNoneOf"}
)
#: ODRL 2.2 values that the 2024-1 schema enums list as ``odrl:*`` (contract-schema.json).
#: ``cc:*`` actions keep their prefix.
ODRL_ACTIONS = frozenset(
    {
        "delete", "execute", "anonymize", "extract", "read", "index", "compensate", "sell",
        "derive", "ensureExclusivity", "annotate", "translate", "include", "textToSpeech",
        "inform", "grantUse", "archive", "modify", "aggregate", "attribute", "nextPolicy",
        "digitize", "install", "concurrentUse", "distribute", "synchronize", "move",
        "obtainConsent", "print", "give", "uninstall", "reviewPolicy", "watermark", "play",
        "reproduce", "transform", "display", "stream", "acceptTracking", "present", "use",
        "transfer",
    }
)  # fmt: skip
ODRL_OPERATORS = ODRL_PROFILE_OPERATORS | {"term-lteq"}
ODRL_LEFT_OPERANDS = frozenset(
    {
        "absolutePosition", "absoluteSize", "absoluteSpatialPosition", "absoluteTemporalPosition",
        "count", "dateTime", "delayPeriod", "deliveryChannel", "device", "elapsedTime", "event",
        "fileFormat", "industry", "language", "media", "meteredTime", "payAmount", "percentage",
        "product", "purpose", "recipient", "relativePosition", "relativeSize",
        "relativeSpatialPosition", "relativeTemporalPosition", "resolution", "spatial",
        "spatialCoordinates", "system", "systemDevice", "timeInterval", "unitOfCount", "version",
        "virtualLocation",
    }
)  # fmt: skip

#: terms whose neutral value is always a list
SET_VALUED = frozenset(
    {
        "permission", "prohibition", "obligation", "duty", "constraint",
        "and", "or", "xone", "andSequence",
        "dataset", "catalog", "distribution", "hasPolicy", "service", "servesDataset",
        "endpointProperties", "reason", "filter",
    }
)  # fmt: skip

#: terms whose neutral value is an IRI string: a lone ``{"@id": x}`` is unwrapped to ``x``
ID_VALUED = frozenset(
    {
        "providerPid", "consumerPid", "agreementId", "offer", "agreement", "target",
        "assigner", "assignee", "participantId", "profile", "format",
        "endpointType", "callbackAddress", "endpointURL", "endpointDescription",
    }
)  # fmt: skip

#: set-valued terms whose items are nodes: a plain string item is a reference, written
#: as ``{"@id": x}`` for 2024-1 (the 2024-1 context does not coerce them to IRIs)
NODE_SETS = frozenset({"dataset", "catalog", "distribution", "service", "hasPolicy", "servesDataset"})

#: values copied as they are (free-form content)
OPAQUE = frozenset({"reason", "filter", "rightOperand", "code", "timestamp", "name", "value", "endpoint"})

_ENUM_KEYS = frozenset({"state", "eventType", "action", "operator", "leftOperand"})


def _check_version(version: str) -> bool:
    """Return True for 2024-1."""
    if version == "2024-1":
        return True
    if version == "2025-1":
        return False
    raise ValueError(f"unsupported DSP version {version!r} (expected one of {VERSIONS})")


def _is_id_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("@id"), str)


def _last_segment(value: str) -> str:
    for sep in ("/", "#", ":"):
        if sep in value:
            value = value.rsplit(sep, 1)[1]
    return value


# ------------------------------------------------------------------ reading (from_wire)


def _read_type(value: Any) -> Any:
    if isinstance(value, str):
        return _PREFIXED_TYPES.get(value, value)
    if isinstance(value, list):
        return [_PREFIXED_TYPES.get(v, v) if isinstance(v, str) else v for v in value]
    return value


def _odrl_local(value: str) -> str | None:
    if value.startswith("odrl:"):
        return value[5:]
    if value.startswith(NS_ODRL):
        return value[len(NS_ODRL) :]
    return None


def _read_enum(key: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_read_enum(key, v) for v in value]
    if _is_id_ref(value):
        value = value["@id"]
    if not isinstance(value, str):
        return value
    if key in ("state", "eventType"):
        allowed = STATES if key == "state" else EVENT_TYPES
        if value in allowed:
            return value
        last = _last_segment(value)
        return last if last in allowed else value
    local = _odrl_local(value)
    if local is None:
        return value
    if key == "leftOperand":
        return local
    if key == "action":
        return local if local in ODRL_PROFILE_ACTIONS else "odrl:" + local
    if key == "operator":
        return local if local in ODRL_PROFILE_OPERATORS else "odrl:" + local
    return value


def _read_node(node: dict, v24: bool, top: bool = False) -> dict:
    if "@value" in node:
        return node
    out: dict = {}
    for key, value in node.items():
        if key.startswith("@"):
            if key == "@context" and top:
                continue
            out[key] = _read_type(value) if key == "@type" else value
            continue
        if v24:
            term = KEY_FROM_2024.get(key)
            if term is None:
                if key not in NEUTRAL_KEYS:  # unknown key: untouched
                    out[key] = value
                    continue
                term = key  # lenient: a bare 2025-style term in a 2024-1 message
        else:
            if key not in NEUTRAL_KEYS:
                out[key] = value
                continue
            term = key
        if term == "dataset" and _is_id_ref(value):
            # DatasetRequestMessage: the dataset id (2024-1 coerces dspace:dataset to @id)
            types = _types_of(node)
            if key == "dspace:dataset" or {"DatasetRequestMessage", "dspace:DatasetRequestMessage"} & set(types):
                value = value["@id"]
        out[term] = _read_value(term, value, v24)
    return out


def _read_value(term: str, value: Any, v24: bool) -> Any:
    if term in OPAQUE:
        result = value
    elif term in _ENUM_KEYS:
        result = _read_enum(term, value)
    elif term == "accessService":
        result = _read_access_service(value, v24)
    else:
        if term in ID_VALUED:
            if _is_id_ref(value):
                value = value["@id"]
            elif isinstance(value, list):
                value = [v["@id"] if _is_id_ref(v) else v for v in value]
        if term == "profile" and v24 and isinstance(value, list) and len(value) == 1:
            value = value[0]  # 2024-1 writes [{"@id": x}], 2025-1 examples write "x"
        if isinstance(value, dict):
            result = _read_node(value, v24)
        elif isinstance(value, list):
            result = [_read_node(v, v24) if isinstance(v, dict) else v for v in value]
        else:
            result = value
    if term in SET_VALUED and not isinstance(result, list):
        if not (term == "dataset" and isinstance(result, str)):  # DatasetRequestMessage id
            result = [result]
    return result


def _read_access_service(value: Any, v24: bool) -> Any:
    def one(v: Any) -> Any:
        if _is_id_ref(v):
            return v["@id"]
        if isinstance(v, dict):
            return _read_node(v, v24)
        return v

    if isinstance(value, list):
        items = [one(v) for v in value]
        return items[0] if len(items) == 1 else items
    return one(value)


def from_wire(doc: dict, version: str) -> dict:
    """Return the neutral form of a compact DSP message in the wire form of ``version``."""
    v24 = _check_version(version)
    if not isinstance(doc, dict):
        raise TypeError(f"a DSP message must be a JSON object, not {type(doc).__name__}")
    return _read_node(doc, v24, top=True)


# ------------------------------------------------------------------ writing (to_wire)


def _types_of(node: dict) -> tuple:
    t = node.get("@type")
    if isinstance(t, str):
        return (t,)
    if isinstance(t, list):
        return tuple(t)
    return ()


def _write_type(value: Any) -> Any:
    def one(v: Any) -> Any:
        if isinstance(v, str) and v in TYPE_PREFIX:
            return f"{TYPE_PREFIX[v]}:{v}"
        return v

    if isinstance(value, list):
        return [one(v) for v in value]
    return one(value)


def _write_enum(key: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_write_enum(key, v) for v in value]
    if not isinstance(value, str):
        return value
    if key == "state":
        return "dspace:" + value if value in STATES else value
    if key == "eventType":
        return "dspace:" + value if value in EVENT_TYPES else value
    vocab = {"action": ODRL_ACTIONS, "operator": ODRL_OPERATORS, "leftOperand": ODRL_LEFT_OPERANDS}[key]
    return "odrl:" + value if value in vocab else value


def _key_to_2024(key: str, types: tuple, role: str | None, value: Any) -> str | None:
    if key == "dataset":
        if "DatasetRequestMessage" in types or isinstance(value, str):
            return "dspace:dataset"
        return "dcat:dataset"
    if key in ("name", "value"):
        if "EndpointProperty" in types or role == "endpointProperties":
            return KEY_TO_2024[key]
        return None
    return KEY_TO_2024.get(key)


def _write_node(node: dict, role: str | None = None) -> dict:
    if "@value" in node:
        return node
    types = _types_of(node)
    out: dict = {}
    for key, value in node.items():
        if key.startswith("@"):
            out[key] = _write_type(value) if key == "@type" else value
            continue
        wkey = _key_to_2024(key, types, role, value)
        if wkey is None:
            out[key] = value
            continue
        out[wkey] = _write_value(key, value, types, role)
    return out


def _write_value(key: str, value: Any, types: tuple, role: str | None) -> Any:
    if key in OPAQUE:
        return value
    if key in _ENUM_KEYS:
        return _write_enum(key, value)
    if key == "format":
        in_distribution = "Distribution" in types or role == "distribution"
        if in_distribution and isinstance(value, str):
            return {"@id": value}
        return value
    if key == "accessService":
        items = value if isinstance(value, list) else [value]
        return [{"@id": v} if isinstance(v, str) else _write_any(v, key) for v in items]
    if key in ("offer", "agreement") and isinstance(value, str):
        return {"@id": value}
    if key == "profile":
        items = value if isinstance(value, list) else [value]
        return [{"@id": v} if isinstance(v, str) else v for v in items]
    if key == "duty" and isinstance(value, list) and len(value) == 1:
        return _write_any(value[0], key)
    if key in NODE_SETS and isinstance(value, list):
        return [{"@id": v} if isinstance(v, str) else _write_any(v, key) for v in value]
    return _write_any(value, key)


def _write_any(value: Any, role: str) -> Any:
    if isinstance(value, dict):
        return _write_node(value, role)
    if isinstance(value, list):
        return [_write_node(v, role) if isinstance(v, dict) else v for v in value]
    return value


def to_wire(neutral: dict, version: str) -> dict:
    """Return the wire form of a neutral message for ``version``, with the canonical ``@context``.

    2025-1 gets ``"@context": [CONTEXT_2025_1]``; 2024-1 gets ``"@context": CONTEXT_2024_1``.
    """
    v24 = _check_version(version)
    if not isinstance(neutral, dict):
        raise TypeError(f"a DSP message must be a JSON object, not {type(neutral).__name__}")
    if v24:
        body = _write_node({k: v for k, v in neutral.items() if k != "@context"})
        return {"@context": CONTEXT_2024_1, **body}
    body = _read_node(neutral, False, top=True)  # make sure set-valued terms are lists
    return {"@context": [CONTEXT_2025_1], **body}


# ------------------------------------------------------------------ list normalisation


def normalize_lists(doc: Any) -> Any:
    """Turn set-valued terms of a compact 2025-1 document into lists. Nothing else changes.

    PyLD compaction collapses one-element arrays of terms that the context does not declare
    ``@container: @set`` (for example ``and``/``or``, or ``hasPolicy`` outside a Dataset).
    The 2025-1 schemas require arrays. Returns new containers wherever something changed.
    """
    if isinstance(doc, list):
        return [normalize_lists(v) for v in doc]
    if not isinstance(doc, dict) or "@value" in doc:
        return doc
    out = {}
    for key, value in doc.items():
        if key.startswith("@"):
            out[key] = value
            continue
        if key in SET_VALUED and not isinstance(value, list):
            if not (key == "dataset" and isinstance(value, str)):
                value = [value]
        if key in OPAQUE:
            out[key] = value
        else:
            out[key] = normalize_lists(value) if isinstance(value, (dict, list)) else value
    return out
