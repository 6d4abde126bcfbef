"""Clearing-house log entries: schema, canonical bytes and their compact JWS (ES256).

Pure: no I/O, no clock (the caller passes ``now`` where time matters), no logging.

An entry is a JSON object with exactly these members (all strings except ``v``)::

    {"v": 1,
     "processId": "urn:uuid:...",            # the DSP process the event belongs to
     "event": "negotiation.agreed",          # one of EVENTS
     "provider": "urn:hks:participant:...",  # both parties of the process
     "consumer": "urn:hks:participant:...",
     "sender": "urn:hks:participant:...",    # the party that signs and submits it
     "timestamp": "2026-11-22T10:00:00.123Z",
     "sha256": "<64 lowercase hex>"}         # SHA-256 of the protocol message or data-access record

Identifiers are 1-256 printable ASCII characters without spaces.  Nothing else
may be carried, so the data itself can never reach the log.  The leaf of the
Merkle tree is ``SHA-256(0x00 || JCS(entry))`` (RFC 8785, ``connector.ledger.entry``).

The signed form is an RFC 7515 compact JWS whose payload is exactly the
canonical bytes and whose protected header is ``{"alg":"ES256","typ":"hks-ch-entry+jws"}``
(optionally with a ``kid``), signed with the sender's P-256 key.  Verification
pins the algorithm, refuses any other header member (``crit``, ``jku``, ``b64``
...), refuses a payload that is not already canonical, and refuses malleable
base64url.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from ..ledger.entry import canonical_entry
from ..ledger.merkle import leaf_hash as _leaf_hash
from ..protocol.errors import echo
from ..errors import TransparencyLogError

__all__ = [
    "ENTRY_VERSION", "JWS_TYP", "JWS_ALG", "EVENTS", "FIELDS", "MAX_ID_LENGTH", "MAX_JWS_BYTES",
    "EntryError", "SignedEntry", "make_entry", "validate_entry", "format_timestamp", "parse_timestamp",
    "sign_entry", "parse_signed_entry", "verify_entry_signature", "b64url", "b64url_decode", "canonical_bytes",
]

ENTRY_VERSION = 1
JWS_ALG = "ES256"
JWS_TYP = "hks-ch-entry+jws"
#: The events a node logs: the DSP negotiation and transfer steps, a transfer request the provider
#: refused (no process exists then), and every data-plane access.
EVENTS = frozenset({
    "negotiation.requested", "negotiation.offered", "negotiation.accepted", "negotiation.agreed",
    "negotiation.verified", "negotiation.finalized", "negotiation.terminated",
    "transfer.requested", "transfer.started", "transfer.suspended", "transfer.completed", "transfer.terminated",
    "transfer.refused", "data.accessed", "data.computed",
    # cross-border compliance (connector/compliance/): a version of an agreement's record, by its SHA-256
    "compliance.recorded",
    # a dataset registration certificate (connector/certs/), by the SHA-256 of its JWS, logged by its owner
    "dataset.certified",
})
FIELDS = ("v", "processId", "event", "provider", "consumer", "sender", "timestamp", "sha256")
MAX_ID_LENGTH = 256
#: Upper bound on a compact JWS: a maximal entry is about 1.2 KB, its JWS about 1.8 KB.
MAX_JWS_BYTES = 4096

_ID_RE = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_ID_LENGTH, re.ASCII)
_SHA256_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)
_TS_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z", re.ASCII)
_HEADER_KEYS = {"alg", "typ", "kid"}
_ECDSA = ec.ECDSA(hashes.SHA256())


class EntryError(TransparencyLogError, ValueError):
    """An entry or its JWS is refused.  ``code`` is short and machine-readable:

    ``MalformedEntry`` (schema), ``Unsigned`` (no usable signature), ``MalformedJws``,
    ``BadSignature`` (does not verify with the sender's key), ``TooLarge``."""

    def __init__(self, message: str, code: str = "MalformedEntry") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SignedEntry:
    jws: str
    entry: dict
    canonical: bytes
    leaf_hash: bytes
    protected: str  # the base64url protected header, as sent
    signature: str  # the base64url signature, as sent
    header: Mapping[str, Any]
    raw_signature: bytes = b""  # its 64 bytes, r || s

    @property
    def signing_input(self) -> bytes:
        return self.jws[: self.jws.rfind(".")].encode("ascii")

    @property
    def process_id(self) -> str:
        return self.entry["processId"]

    @property
    def sender(self) -> str:
        return self.entry["sender"]

    @property
    def parties(self) -> tuple[str, str]:
        return self.entry["provider"], self.entry["consumer"]


# ---------------------------------------------------------------------------
# Entries
# ---------------------------------------------------------------------------


def format_timestamp(when: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC; ``when`` must be timezone-aware."""
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise EntryError("timestamp must be a timezone-aware datetime")
    when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_timestamp(text: object) -> datetime:
    """Parse an entry timestamp (RFC 3339, UTC, ``Z``, 0-6 fractional digits)."""
    if not isinstance(text, str) or not (m := _TS_RE.fullmatch(text)):
        raise EntryError("timestamp must be an RFC 3339 UTC time like 2026-11-22T10:00:00.000Z")
    year, month, day, hour, minute, second, frac = m.groups()
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                        int((frac or "0").ljust(6, "0")), tzinfo=timezone.utc)
    except ValueError:
        raise EntryError(f"timestamp {echo(text)} is not a valid date and time") from None


def _check_id(obj: Mapping, name: str) -> None:
    value = obj.get(name)
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise EntryError(f"entry field {echo(name)} must be 1-{MAX_ID_LENGTH} printable ASCII characters without spaces")


def validate_entry(obj: object) -> dict:
    """Check ``obj`` against the entry schema; return it.  Raises :class:`EntryError` naming the field."""
    if not isinstance(obj, dict):
        raise EntryError("an entry must be a JSON object")
    extra = sorted(set(obj) - set(FIELDS))
    if extra:
        raise EntryError(f"entry has unknown field {echo(extra[0])} (allowed: {', '.join(FIELDS)})")
    missing = [f for f in FIELDS if f not in obj]
    if missing:
        raise EntryError(f"entry field {echo(missing[0])} is missing")
    if type(obj["v"]) is not int or obj["v"] != ENTRY_VERSION:
        raise EntryError(f"entry field 'v' must be {ENTRY_VERSION}")
    for name in ("processId", "provider", "consumer", "sender"):
        _check_id(obj, name)
    if not isinstance(obj["event"], str) or obj["event"] not in EVENTS:
        raise EntryError(f"entry field 'event' must be one of {', '.join(sorted(EVENTS))}")
    if obj["sender"] not in (obj["provider"], obj["consumer"]):
        raise EntryError("entry field 'sender' must be the provider or the consumer")
    parse_timestamp(obj["timestamp"])
    if not isinstance(obj["sha256"], str) or not _SHA256_RE.fullmatch(obj["sha256"]):
        raise EntryError("entry field 'sha256' must be 64 lowercase hex digits")
    return obj


def canonical_bytes(entry: Mapping) -> bytes:
    """RFC 8785 bytes of a *validated* entry.

    For the entry schema (ASCII keys; string values of printable ASCII; the integer 1)
    JCS reduces to sorted keys, no whitespace and JSON string escaping of ``"`` and ``\\``
    only, which is exactly what orjson emits with sorted keys; tests check the two agree.
    About 50 times faster than the general canonicaliser on the append path."""
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)


def make_entry(*, process_id: str, event: str, provider: str, consumer: str, sender: str,
               timestamp: str | datetime, sha256: str | bytes) -> dict:
    """Build and validate an entry (``sha256`` as hex or 32 raw bytes)."""
    if isinstance(timestamp, datetime):
        timestamp = format_timestamp(timestamp)
    if isinstance(sha256, (bytes, bytearray)):
        if len(sha256) != 32:
            raise EntryError("entry field 'sha256' must be 32 bytes")
        sha256 = bytes(sha256).hex()
    return validate_entry({"v": ENTRY_VERSION, "processId": process_id, "event": event, "provider": provider,
                           "consumer": consumer, "sender": sender, "timestamp": timestamp, "sha256": sha256})


# ---------------------------------------------------------------------------
# base64url
# ---------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    """Strict unpadded base64url: no padding, no stray characters, canonical trailing bits.

    The decoder skips characters outside the alphabet, so the input is accepted only if
    encoding the result gives it back exactly (measured faster than checking first)."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError, TypeError):
        raise EntryError(f"{what} is not unpadded base64url", "MalformedJws") from None
    if b64url(raw) != text:
        raise EntryError(f"{what} is not unpadded, canonical base64url", "MalformedJws")
    return raw


# ---------------------------------------------------------------------------
# JWS
# ---------------------------------------------------------------------------


def _header_b64(kid: str | None) -> str:
    header: dict[str, str] = {"alg": JWS_ALG, "typ": JWS_TYP}
    if kid is not None:
        if not isinstance(kid, str) or not _ID_RE.fullmatch(kid):
            raise EntryError("kid must be 1-256 printable ASCII characters without spaces")
        header["kid"] = kid
    return b64url(canonical_entry(header))


def sign_entry(entry: Mapping, private_key: ec.EllipticCurvePrivateKey, *, kid: str | None = None) -> str:
    """Compact JWS (ES256) over the canonical bytes of the validated ``entry``."""
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(private_key.curve, ec.SECP256R1):
        raise TypeError("entries are signed with a P-256 (ES256) private key")
    payload = canonical_bytes(validate_entry(dict(entry)))
    signing_input = _header_b64(kid) + "." + b64url(payload)
    r, s = decode_dss_signature(private_key.sign(signing_input.encode("ascii"), _ECDSA))
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def parse_signed_entry(jws: object, *, max_bytes: int = MAX_JWS_BYTES) -> SignedEntry:
    """Parse a compact JWS into a :class:`SignedEntry` (structure, header, canonical payload, schema).

    Does not check the signature: that needs the sender's key (:func:`verify_entry_signature`)."""
    if isinstance(jws, dict):
        raise EntryError("the entry is not signed: send it as a compact JWS signed by the sending node", "Unsigned")
    if not isinstance(jws, str):
        raise EntryError("the signed entry must be a compact JWS string", "MalformedJws")
    if len(jws) > max_bytes:
        raise EntryError(f"the signed entry is {len(jws)} bytes, over the limit of {max_bytes}", "TooLarge")
    parts = jws.split(".")
    if len(parts) != 3:
        raise EntryError("the signed entry is not a compact JWS (three base64url parts separated by dots)",
                         "MalformedJws")
    protected, payload_b64, sig_b64 = parts
    if not sig_b64:
        raise EntryError("the entry is not signed: the JWS has an empty signature", "Unsigned")
    header = _GOOD_HEADERS.get(protected)
    if header is None:
        header = _parse_header(protected)
        if len(_GOOD_HEADERS) < 1024:
            _GOOD_HEADERS[protected] = header
    payload = b64url_decode(payload_b64, "the JWS payload")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise EntryError("the JWS payload is not JSON") from None
    entry = validate_entry(obj)
    canonical = canonical_bytes(entry)
    if canonical != payload:
        raise EntryError("the JWS payload is not the RFC 8785 canonical form of the entry")
    signature = b64url_decode(sig_b64, "the JWS signature")
    if len(signature) != 64:
        raise EntryError(f"an ES256 signature is 64 bytes, this one is {len(signature)}", "BadSignature")
    return SignedEntry(jws=jws, entry=entry, canonical=canonical, leaf_hash=_leaf_hash(canonical),
                       protected=protected, signature=sig_b64, header=header, raw_signature=signature)


#: Protected headers already found valid (nodes send the same few), bounded.
_GOOD_HEADERS: dict[str, Mapping[str, Any]] = {}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise EntryError("the JWS protected header has a duplicate member", "MalformedJws")
    return out


def _parse_header(protected: str) -> Mapping[str, Any]:
    raw = b64url_decode(protected, "the JWS protected header")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise EntryError("the JWS protected header is not JSON", "MalformedJws") from None
    if not isinstance(header, dict):
        raise EntryError("the JWS protected header is not a JSON object", "MalformedJws")
    alg = header.get("alg")
    if alg is None or (isinstance(alg, str) and alg.lower() == "none"):
        raise EntryError("the entry is not signed: the JWS algorithm is 'none'", "Unsigned")
    if alg != JWS_ALG:
        raise EntryError(f"the JWS algorithm must be {JWS_ALG}, not {echo(alg)}", "MalformedJws")
    if header.get("typ") != JWS_TYP:
        raise EntryError(f"the JWS header 'typ' must be {JWS_TYP!r}", "MalformedJws")
    extra = sorted(set(header) - _HEADER_KEYS)
    if extra:
        raise EntryError(f"the JWS header member {echo(extra[0])} is not allowed", "MalformedJws")
    if "kid" in header and (not isinstance(header["kid"], str) or not _ID_RE.fullmatch(header["kid"])):
        raise EntryError("the JWS header 'kid' must be 1-256 printable ASCII characters", "MalformedJws")
    return header


def verify_entry_signature(signed: SignedEntry, public_key: object) -> None:
    """Raise :class:`EntryError` (``BadSignature``) unless ``public_key`` (P-256) signed the JWS."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
        raise EntryError(f"the key registered for {signed.sender} is not a P-256 key", "BadSignature")
    raw = signed.raw_signature or b64url_decode(signed.signature, "the JWS signature")
    if len(raw) != 64:
        raise EntryError(f"an ES256 signature is 64 bytes, this one is {len(raw)}", "BadSignature")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public_key.verify(der, signed.signing_input, _ECDSA)
    except InvalidSignature:
        raise EntryError(f"the entry's signature does not verify with the key registered for {signed.sender}",
                         "BadSignature") from None
