"""Typed DSP catalog and negotiation messages on the neutral form.

The neutral form is the DSP 2025-1 compact JSON without `@context` (bare terms,
lists for set-valued terms). `wire.py` translates 2024-1 to and from it, so the
models below are the same for both protocol versions.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

from .errors import ECHO_LIMIT, MalformedMessage, clip, echo
from .ids import RULE, id_problem
from .negotiation import Event, State

Json = dict[str, Any]


def _req_str(doc: Json, key: str, where: str) -> str:
    value = doc.get(key)
    if value is None:
        raise MalformedMessage(f"{where}: required field '{key}' is missing")
    if isinstance(value, dict) and isinstance(value.get("@id"), str):
        value = value["@id"]
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{where}: field '{key}' must be a non-empty string")
    return value


def check_id(value: object, key: str, where: str) -> str:
    """`value` if it is an id by the one id rule, else MalformedMessage naming the field and the rule."""
    problem = id_problem(value)
    if problem is not None:
        raise MalformedMessage(f"{where}: '{key}' {problem} ({RULE})", code="InvalidId")
    assert isinstance(value, str)
    return value


def _req_id(doc: Json, key: str, where: str) -> str:
    value = doc.get(key)
    if value is None:
        raise MalformedMessage(f"{where}: required field '{key}' is missing")
    if isinstance(value, dict) and "@id" in value:
        value = value["@id"]
    return check_id(value, key, where)


def _opt_id(doc: Json, key: str, where: str) -> str | None:
    return None if doc.get(key) is None else _req_id(doc, key, where)


def _opt_str(doc: Json, key: str, where: str) -> str | None:
    if doc.get(key) is None:
        return None
    return _req_str(doc, key, where)


MAX_REASONS = 20
MAX_REASON_LENGTH = 1000


def _reasons(doc: Json) -> list[str]:
    raw = doc.get("reason")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raw = [raw]
    out = []
    for item in raw[:MAX_REASONS]:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            # 2024-1 language-tagged values and the TCK's {"message": "..."}.
            text = item.get("@value") or item.get("message") or item.get("value")
            out.append(text if isinstance(text, str) else str(item))
        else:
            out.append(str(item))
    # kept in the process row: bounded, and without the NUL character PostgreSQL cannot store
    return [clip(text, MAX_REASON_LENGTH).replace("\x00", "\ufffd") for text in out]


def check_policy(policy: Any, where: str, *, kind: str, need_target: bool) -> Json:
    """Minimal structural check of an ODRL Offer/Agreement in neutral form."""
    if isinstance(policy, str):
        raise MalformedMessage(f"{where}: '{kind.lower()}' must be an object with '@id', not a bare id")
    if not isinstance(policy, dict):
        raise MalformedMessage(f"{where}: '{kind.lower()}' must be an object")
    if policy.get("@id") is None:
        raise MalformedMessage(f"{where}: {kind.lower()} '@id' is missing")
    check_id(policy["@id"], "@id", f"{where} {kind.lower()}")
    ptype = policy.get("@type")
    if ptype is not None and ptype != kind:
        raise MalformedMessage(f"{where}: {kind.lower()} '@type' must be '{kind}', got {echo(ptype)}")
    for rules in ("permission", "prohibition", "obligation"):
        value = policy.get(rules)
        if value is not None and not isinstance(value, list):
            raise MalformedMessage(f"{where}: {kind.lower()} '{rules}' must be a list")
    if need_target:
        _req_id(policy, "target", f"{where} {kind.lower()}")
    elif policy.get("target") is not None:
        _req_id(policy, "target", f"{where} {kind.lower()}")
    return policy


@dataclass(frozen=True)
class Message:
    TYPE: ClassVar[str] = ""
    EVENT: ClassVar[Event | None] = None
    extra_id: str | None = field(default=None, kw_only=True)  # tolerated top-level @id

    def to_neutral(self) -> Json:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class CatalogRequestMessage(Message):
    TYPE: ClassVar[str] = "CatalogRequestMessage"
    filter: list[Any] = field(default_factory=list)

    @classmethod
    def parse(cls, doc: Json) -> "CatalogRequestMessage":
        flt = doc.get("filter") or []
        if not isinstance(flt, list):
            flt = [flt]
        return cls(filter=flt)

    def to_neutral(self) -> Json:
        out: Json = {"@type": self.TYPE}
        if self.filter:
            out["filter"] = self.filter
        return out


#: wire name of each field of an offer-bearing message
_OFFER_WIRE = {"consumer_pid": "consumerPid", "provider_pid": "providerPid", "offer": "offer",
               "callback_address": "callbackAddress"}


@dataclass(frozen=True)
class _OfferBearingMessage(Message):
    """A contract request (the consumer's) or a contract offer (the provider's): the same message
    seen from either side. OWN_PID is the sender's process id, required; the other side's pid is
    optional, and the DSP 2025-1 schema wants exactly one of it (a counter-message) or
    callbackAddress (the initial one)."""

    OWN_PID: ClassVar[str] = ""  # field name of the sender's pid
    OTHER_PID: ClassVar[str] = ""

    @classmethod
    def parse(cls, doc: Json) -> Self:
        w = cls.TYPE
        read = {
            cls.OWN_PID: lambda key: _req_id(doc, key, w),
            cls.OTHER_PID: lambda key: _opt_id(doc, key, w),
            "offer": lambda key: check_policy(doc.get(key), w, kind="Offer", need_target=False),
            "callback_address": lambda key: _opt_str(doc, key, w),
        }
        # in field order, so that of several problems the same one is reported first as before
        return cls(**{f.name: read[f.name](_OFFER_WIRE[f.name]) for f in fields(cls) if f.name in read})

    def to_neutral(self) -> Json:
        own, other = _OFFER_WIRE[self.OWN_PID], _OFFER_WIRE[self.OTHER_PID]
        out: Json = {"@type": self.TYPE, own: getattr(self, self.OWN_PID), "offer": self.offer}
        if getattr(self, self.OTHER_PID):
            out[other] = getattr(self, self.OTHER_PID)
        else:
            out["callbackAddress"] = self.callback_address
        return out


@dataclass(frozen=True)
class ContractRequestMessage(_OfferBearingMessage):
    TYPE: ClassVar[str] = "ContractRequestMessage"
    EVENT: ClassVar[Event] = Event.REQUEST
    OWN_PID: ClassVar[str] = "consumer_pid"
    OTHER_PID: ClassVar[str] = "provider_pid"
    consumer_pid: str
    offer: Json
    callback_address: str | None = None
    provider_pid: str | None = None


@dataclass(frozen=True)
class ContractOfferMessage(_OfferBearingMessage):
    TYPE: ClassVar[str] = "ContractOfferMessage"
    EVENT: ClassVar[Event] = Event.OFFER
    OWN_PID: ClassVar[str] = "provider_pid"
    OTHER_PID: ClassVar[str] = "consumer_pid"
    provider_pid: str
    offer: Json
    consumer_pid: str | None = None
    callback_address: str | None = None


@dataclass(frozen=True)
class ContractAgreementMessage(Message):
    TYPE: ClassVar[str] = "ContractAgreementMessage"
    EVENT: ClassVar[Event] = Event.AGREE
    provider_pid: str
    consumer_pid: str
    agreement: Json
    callback_address: str | None = None  # required by the 2024-1 schema only

    @classmethod
    def parse(cls, doc: Json) -> "ContractAgreementMessage":
        w = cls.TYPE
        agreement = check_policy(doc.get("agreement"), w, kind="Agreement", need_target=True)
        for key in ("assigner", "assignee"):
            _req_str(agreement, key, f"{w} agreement")
        return cls(
            provider_pid=_req_id(doc, "providerPid", w),
            consumer_pid=_req_id(doc, "consumerPid", w),
            agreement=agreement,
            callback_address=_opt_str(doc, "callbackAddress", w),
        )

    def to_neutral(self) -> Json:
        out: Json = {
            "@type": self.TYPE,
            "providerPid": self.provider_pid,
            "consumerPid": self.consumer_pid,
            "agreement": self.agreement,
        }
        if self.callback_address:
            out["callbackAddress"] = self.callback_address
        return out


@dataclass(frozen=True)
class _PidPair(Message):
    provider_pid: str
    consumer_pid: str

    @classmethod
    def _pids(cls, doc: Json) -> dict[str, str]:
        return {
            "provider_pid": _req_id(doc, "providerPid", cls.TYPE),
            "consumer_pid": _req_id(doc, "consumerPid", cls.TYPE),
        }

    def _base(self) -> Json:
        return {"@type": self.TYPE, "providerPid": self.provider_pid, "consumerPid": self.consumer_pid}


@dataclass(frozen=True)
class ContractAgreementVerificationMessage(_PidPair):
    TYPE: ClassVar[str] = "ContractAgreementVerificationMessage"
    EVENT: ClassVar[Event] = Event.VERIFY

    @classmethod
    def parse(cls, doc: Json) -> "ContractAgreementVerificationMessage":
        return cls(**cls._pids(doc))

    def to_neutral(self) -> Json:
        return self._base()


@dataclass(frozen=True)
class ContractNegotiationEventMessage(_PidPair):
    TYPE: ClassVar[str] = "ContractNegotiationEventMessage"
    event_type: str = "ACCEPTED"

    @property
    def event(self) -> Event:  # type: ignore[override]
        return Event.ACCEPT if self.event_type == "ACCEPTED" else Event.FINALIZE

    @classmethod
    def parse(cls, doc: Json) -> "ContractNegotiationEventMessage":
        event_type = _req_str(doc, "eventType", cls.TYPE)
        event_type = event_type.rsplit("/", 1)[-1].rsplit(":", 1)[-1]  # lenient: prefixed or full IRI
        if event_type not in ("ACCEPTED", "FINALIZED"):
            raise MalformedMessage(f"{cls.TYPE}: eventType must be ACCEPTED or FINALIZED, got {echo(event_type)}")
        return cls(event_type=event_type, **cls._pids(doc))

    def to_neutral(self) -> Json:
        return {**self._base(), "eventType": self.event_type}


@dataclass(frozen=True)
class _CodeReason(_PidPair):
    """A message with an optional code and reasons (terminations, suspensions)."""

    code: str | None = None
    reason: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, doc: Json):  # noqa: ANN206
        code = doc.get("code")
        code = clip(str(code), 200).replace("\x00", "\ufffd") if code is not None else None
        return cls(code=code, reason=_reasons(doc), **cls._pids(doc))

    def to_neutral(self) -> Json:
        out = self._base()
        if self.code:
            out["code"] = self.code
        if self.reason:
            out["reason"] = list(self.reason)
        return out


@dataclass(frozen=True)
class ContractNegotiationTerminationMessage(_CodeReason):
    TYPE: ClassVar[str] = "ContractNegotiationTerminationMessage"
    EVENT: ClassVar[Event] = Event.TERMINATE


@dataclass(frozen=True)
class ContractNegotiation(Message):
    """The ACK and GET body."""

    TYPE: ClassVar[str] = "ContractNegotiation"
    provider_pid: str
    consumer_pid: str
    state: State

    @classmethod
    def parse(cls, doc: Json) -> "ContractNegotiation":
        raw = _req_str(doc, "state", cls.TYPE).rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        try:
            state = State(raw)
        except ValueError:
            raise MalformedMessage(f"ContractNegotiation: unknown state {echo(raw)}") from None
        return cls(
            provider_pid=_req_id(doc, "providerPid", cls.TYPE),
            consumer_pid=_req_id(doc, "consumerPid", cls.TYPE),
            state=state,
        )

    def to_neutral(self) -> Json:
        return {
            "@type": self.TYPE,
            "providerPid": self.provider_pid,
            "consumerPid": self.consumer_pid,
            "state": self.state.value,
        }


def _echo_id(value: str | None) -> str | None:
    return None if value is None else clip(value, ECHO_LIMIT)


def error_object(error_type: str, code: str, reason: str, *, provider_pid: str | None = None,
                 consumer_pid: str | None = None) -> Json:
    """A DSP error object in neutral form (CatalogError, ContractNegotiationError, ...)."""
    out: Json = {"@type": error_type, "code": code, "reason": [reason]}
    if error_type != "CatalogError":
        # The schemas require both pids; when one is unknown we say so rather than omit it. They
        # may come from the peer's body or path: at most ECHO_LIMIT characters of each go back.
        out["providerPid"] = _echo_id(provider_pid) or "urn:unknown"
        out["consumerPid"] = _echo_id(consumer_pid) or "urn:unknown"
    return out


NEGOTIATION_MESSAGES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        ContractRequestMessage,
        ContractOfferMessage,
        ContractAgreementMessage,
        ContractAgreementVerificationMessage,
        ContractNegotiationEventMessage,
        ContractNegotiationTerminationMessage,
    )
}


def _message_type(doc: Json, expected: tuple[str, ...]) -> str:
    if not isinstance(doc, dict):
        raise MalformedMessage("the message must be a JSON object")
    mtype = doc.get("@type")
    if isinstance(mtype, list) and len(mtype) == 1:
        mtype = mtype[0]
    if not isinstance(mtype, str):
        raise MalformedMessage("required field '@type' is missing or not a string")
    if mtype not in expected:
        raise MalformedMessage(f"expected {' or '.join(expected)} here, got {echo(mtype)}")
    return mtype


def parse_message(doc: Json, *, expected: tuple[str, ...]) -> Message:
    """Parse a neutral document into the model for its @type, which must be one of `expected`."""
    mtype = _message_type(doc, expected)
    cls = NEGOTIATION_MESSAGES.get(mtype) or {
        "CatalogRequestMessage": CatalogRequestMessage,
        "ContractNegotiation": ContractNegotiation,
    }[mtype]
    msg = cls.parse(doc)  # type: ignore[attr-defined]
    extra = doc.get("@id")
    if isinstance(extra, str):
        object.__setattr__(msg, "extra_id", extra)
    return msg


def event_of(msg: Message) -> Event:
    if isinstance(msg, ContractNegotiationEventMessage):
        return msg.event
    assert msg.EVENT is not None
    return msg.EVENT


# --------------------------------------------------------------------------- transfers
def _data_address(value: Any, where: str) -> Json | None:
    """A DataAddress in neutral form; endpointProperties read leniently (EDC writes full IRIs as names)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedMessage(f"{where}: 'dataAddress' must be an object")
    endpoint_type = _req_str(value, "endpointType", f"{where} dataAddress")
    out: Json = {"@type": "DataAddress", "endpointType": endpoint_type}
    endpoint = value.get("endpoint")
    if endpoint is not None:
        if not isinstance(endpoint, str):
            raise MalformedMessage(f"{where}: dataAddress 'endpoint' must be a string")
        out["endpoint"] = endpoint
    props = value.get("endpointProperties") or []
    if not isinstance(props, list):
        props = [props]
    cleaned = []
    for prop in props:
        if not isinstance(prop, dict) or not isinstance(prop.get("name"), str):
            raise MalformedMessage(f"{where}: each endpointProperty needs a 'name' and a 'value'")
        name = prop["name"].rsplit("/", 1)[-1]
        val = prop.get("value")
        if not isinstance(val, str):
            raise MalformedMessage(f"{where}: endpointProperty {echo(name)} must have a string value")
        cleaned.append({"@type": "EndpointProperty", "name": name, "value": val})
    if cleaned:
        out["endpointProperties"] = cleaned
    return out


def endpoint_property(address: Json | None, name: str) -> str | None:
    for prop in (address or {}).get("endpointProperties", []):
        if prop.get("name") == name:
            return prop.get("value")
    return None


@dataclass(frozen=True)
class TransferRequestMessage(Message):
    TYPE: ClassVar[str] = "TransferRequestMessage"
    consumer_pid: str
    agreement_id: str
    format: str
    callback_address: str
    data_address: Json | None = None  # push: where the provider sends the data

    @classmethod
    def parse(cls, doc: Json) -> "TransferRequestMessage":
        w = cls.TYPE
        fmt = doc.get("format")
        if isinstance(fmt, dict):
            fmt = fmt.get("@id")
        if not isinstance(fmt, str) or not fmt:
            raise MalformedMessage(f"{w}: required field 'format' is missing")
        return cls(
            consumer_pid=_req_id(doc, "consumerPid", w),
            agreement_id=_req_id(doc, "agreementId", w),
            format=fmt,
            callback_address=_req_str(doc, "callbackAddress", w),
            data_address=_data_address(doc.get("dataAddress"), w),
        )

    def to_neutral(self) -> Json:
        out: Json = {"@type": self.TYPE, "consumerPid": self.consumer_pid, "agreementId": self.agreement_id,
                     "format": self.format, "callbackAddress": self.callback_address}
        if self.data_address:
            out["dataAddress"] = self.data_address
        return out


@dataclass(frozen=True)
class TransferStartMessage(_PidPair):
    TYPE: ClassVar[str] = "TransferStartMessage"
    data_address: Json | None = None  # pull: where and how the consumer fetches

    @classmethod
    def parse(cls, doc: Json) -> "TransferStartMessage":
        return cls(data_address=_data_address(doc.get("dataAddress"), cls.TYPE), **cls._pids(doc))

    def to_neutral(self) -> Json:
        out = self._base()
        if self.data_address:
            out["dataAddress"] = self.data_address
        return out


@dataclass(frozen=True)
class TransferSuspensionMessage(_CodeReason):
    TYPE: ClassVar[str] = "TransferSuspensionMessage"


@dataclass(frozen=True)
class TransferTerminationMessage(_CodeReason):
    TYPE: ClassVar[str] = "TransferTerminationMessage"


@dataclass(frozen=True)
class TransferCompletionMessage(_PidPair):
    TYPE: ClassVar[str] = "TransferCompletionMessage"

    @classmethod
    def parse(cls, doc: Json) -> "TransferCompletionMessage":
        return cls(**cls._pids(doc))

    def to_neutral(self) -> Json:
        return self._base()


@dataclass(frozen=True)
class TransferProcess(Message):
    """The ACK and GET body of a transfer."""

    TYPE: ClassVar[str] = "TransferProcess"
    provider_pid: str
    consumer_pid: str
    state: str

    @classmethod
    def parse(cls, doc: Json) -> "TransferProcess":
        raw = _req_str(doc, "state", cls.TYPE).rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        return cls(provider_pid=_req_id(doc, "providerPid", cls.TYPE),
                   consumer_pid=_req_id(doc, "consumerPid", cls.TYPE), state=raw)

    def to_neutral(self) -> Json:
        return {"@type": self.TYPE, "providerPid": self.provider_pid, "consumerPid": self.consumer_pid,
                "state": self.state}


TRANSFER_MESSAGES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (TransferRequestMessage, TransferStartMessage, TransferSuspensionMessage,
                TransferCompletionMessage, TransferTerminationMessage, TransferProcess)
}


def parse_transfer_message(doc: Json, *, expected: tuple[str, ...]) -> Message:
    """Like parse_message, for the transfer protocol."""
    return TRANSFER_MESSAGES[_message_type(doc, expected)].parse(doc)  # type: ignore[attr-defined]
