"""Verification of what a clearing house hands out: receipts, listed entries, consistency.

Pure: no I/O, no clock, no logging.  Used by the node's client
(:mod:`connector.clearinghouse.client`) and by ``connector audit verify``; both
trust nothing but the log's verifier key (and the participants' public keys,
to check who signed an entry).

Wire encodings: hashes are standard base64 of 32 bytes (like the checkpoint's
root line); a receipt is::

    {"leafIndex": 41, "leafHash": "<b64>", "treeSize": 64,
     "checkpoint": "<C2SP signed note>", "inclusionProof": ["<b64>", ...],
     "receivedAt": "2026-11-22T10:00:00.123Z"}
"""
from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..ledger.checkpoint import Checkpoint, CheckpointError, VerifierKey, parse_verifier_key, verify_checkpoint
from ..ledger.merkle import HASH_SIZE, MAX_TREE_SIZE, verify_consistency, verify_inclusion
from .entry import EntryError, SignedEntry, parse_signed_entry, verify_entry_signature
from ..errors import TransparencyLogError

__all__ = [
    "LogVerificationError", "Receipt", "EntryVerdict", "AuditState", "encode_hash", "decode_hash",
    "decode_proof", "open_checkpoint", "verify_receipt", "check_consistency", "verify_item",
    "senders_of", "first_divergence", "MAX_PROOF_LENGTH",
]

MAX_PROOF_LENGTH = 2 * 64 + 1  # no RFC 9162 proof for a uint64 tree is longer


class LogVerificationError(TransparencyLogError, ValueError):
    """The log handed out something that does not verify.  ``index`` names the first bad entry if known."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def encode_hash(h: bytes) -> str:
    return base64.b64encode(h).decode("ascii")


def decode_hash(value: object, what: str = "hash") -> bytes:
    if not isinstance(value, str) or len(value) != 44:
        raise LogVerificationError(f"{what} must be a base64 SHA-256 hash")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise LogVerificationError(f"{what} is not valid base64") from None
    if len(raw) != HASH_SIZE or encode_hash(raw) != value:
        raise LogVerificationError(f"{what} must be a canonical base64 SHA-256 hash")
    return raw


def decode_proof(value: object, what: str = "proof") -> list[bytes]:
    if not isinstance(value, list) or len(value) > MAX_PROOF_LENGTH:
        raise LogVerificationError(f"{what} must be a list of at most {MAX_PROOF_LENGTH} hashes")
    return [decode_hash(h, f"{what} hash {i}") for i, h in enumerate(value)]


def _uint(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_TREE_SIZE:
        raise LogVerificationError(f"{what} must be an integer in [0, 2**64)")
    return value


def _key(verifier_key: str | VerifierKey) -> VerifierKey:
    if isinstance(verifier_key, VerifierKey):
        return verifier_key
    try:
        return parse_verifier_key(verifier_key)
    except CheckpointError as exc:
        raise LogVerificationError(f"bad verifier key: {exc}") from None


def open_checkpoint(note: object, verifier_key: str | VerifierKey, *, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint with the log's key.  The origin must equal ``origin`` (default: the key name)."""
    key = _key(verifier_key)
    if not isinstance(note, (str, bytes)):
        raise LogVerificationError("checkpoint must be a signed note (text)")
    try:
        return verify_checkpoint(note, key, origin=origin or key.name)
    except CheckpointError as exc:
        raise LogVerificationError(f"checkpoint does not verify: {exc}") from None


@dataclass(frozen=True)
class Receipt:
    leaf_index: int
    leaf_hash: bytes
    tree_size: int
    checkpoint: str
    inclusion_proof: tuple[bytes, ...]
    received_at: str | None = None
    replayed: bool = False  # the entry was already in the log; the receipt was rebuilt from a fresh proof

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "leafIndex": self.leaf_index, "leafHash": encode_hash(self.leaf_hash), "treeSize": self.tree_size,
            "checkpoint": self.checkpoint, "inclusionProof": [encode_hash(h) for h in self.inclusion_proof],
        }
        if self.received_at is not None:
            out["receivedAt"] = self.received_at
        return out

    @classmethod
    def from_json(cls, obj: object) -> "Receipt":
        if not isinstance(obj, dict):
            raise LogVerificationError("a receipt must be a JSON object")
        index = _uint(obj.get("leafIndex"), "receipt leafIndex")
        size = _uint(obj.get("treeSize"), "receipt treeSize")
        note = obj.get("checkpoint")
        if not isinstance(note, str):
            raise LogVerificationError("receipt checkpoint must be a signed note")
        received = obj.get("receivedAt")
        if received is not None and not isinstance(received, str):
            raise LogVerificationError("receipt receivedAt must be a string")
        return cls(leaf_index=index, leaf_hash=decode_hash(obj.get("leafHash"), "receipt leafHash"), tree_size=size,
                   checkpoint=note, inclusion_proof=tuple(decode_proof(obj.get("inclusionProof"), "inclusion proof")),
                   received_at=received)


def verify_receipt(receipt: Receipt, verifier_key: str | VerifierKey, *, origin: str | None = None,
                   leaf_hash: bytes | None = None) -> Checkpoint:
    """Check a receipt: the checkpoint is signed by the log, is for ``tree_size``, and the
    inclusion proof puts ``leaf_hash`` (default: the receipt's own) at ``leaf_index``."""
    cp = open_checkpoint(receipt.checkpoint, verifier_key, origin=origin)
    if cp.size != receipt.tree_size:
        raise LogVerificationError(f"receipt says tree size {receipt.tree_size} but its checkpoint is for {cp.size}")
    if leaf_hash is not None and not hmac.compare_digest(leaf_hash, receipt.leaf_hash):
        raise LogVerificationError("receipt is for a different entry (leaf hash differs)", receipt.leaf_index)
    if not verify_inclusion(leaf_hash or receipt.leaf_hash, receipt.leaf_index, cp.size,
                            list(receipt.inclusion_proof), cp.root_hash):
        raise LogVerificationError(
            f"entry {receipt.leaf_index}: inclusion proof does not verify against the checkpoint of size {cp.size}",
            receipt.leaf_index)
    return cp


def check_consistency(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """The log that signed ``new`` is an append-only extension of the one that signed ``old``."""
    if new.size < old.size:
        raise LogVerificationError(
            f"the log shrank from {old.size} to {new.size} entries: entry {new.size} onwards is gone", new.size)
    if old.size == 0:
        return  # everything extends the empty log
    if old.size == new.size:
        if not hmac.compare_digest(old.root_hash, new.root_hash):
            raise LogVerificationError(
                f"two different roots signed for tree size {old.size}: the log was rewritten")
        return
    if not verify_consistency(old.size, new.size, old.root_hash, new.root_hash, list(proof)):
        raise LogVerificationError(
            f"the log of size {new.size} is not an append-only extension of the checkpoint of size {old.size}: "
            f"some of the first {old.size} entries were changed, removed or reordered")


@dataclass(frozen=True)
class EntryVerdict:
    index: int | None
    ok: bool
    reason: str = ""
    entry: Mapping[str, Any] | None = None
    leaf_hash: bytes | None = None
    submitter: str | None = None
    received_at: str | None = None

    def line(self) -> str:
        where = f"#{self.index}" if self.index is not None else "#?"
        if self.entry is not None:
            e = self.entry
            what = f"{e['event']} process={e['processId']} sender={e['sender']} at {e['timestamp']}"
        else:
            what = "(unreadable entry)"
        return f"{'OK  ' if self.ok else 'FAIL'} {where} {what}" + ("" if self.ok else f": {self.reason}")


def senders_of(items: Iterable[Mapping[str, Any]]) -> set[str]:
    """The senders named by the parseable entries of a listing (whose keys the shell must resolve)."""
    out = set()
    for item in items:
        try:
            out.add(parse_signed_entry(item.get("jws")).sender)
        except (EntryError, AttributeError):
            continue
    return out


def verify_item(item: object, *, tree_size: int, root: bytes, keys: Mapping[str, object] | None,
                process_id: str | None = None, check_proof: bool = True) -> EntryVerdict:
    """Verify one listed entry: shape, canonical payload, schema, process, submitter, signature and inclusion.

    ``keys`` maps a sender's participant id to its public key, or to a string
    saying why there is none (unknown, revoked, unreachable); ``None`` skips the
    signature (for a second pass over entries whose signatures were already checked)."""
    if not isinstance(item, dict):
        return EntryVerdict(None, False, "listing item is not a JSON object")
    index = item.get("leafIndex")
    if type(index) is not int or not 0 <= index < tree_size:
        return EntryVerdict(None, False, f"leaf index {index!r} is not in the tree of size {tree_size}")
    submitter = item.get("submitter")
    received = item.get("receivedAt")
    try:
        signed: SignedEntry = parse_signed_entry(item.get("jws"))
    except EntryError as exc:
        return EntryVerdict(index, False, f"entry is not a valid signed entry: {exc}")
    base = dict(index=index, entry=signed.entry, leaf_hash=signed.leaf_hash,
                submitter=submitter if isinstance(submitter, str) else None,
                received_at=received if isinstance(received, str) else None)
    if process_id is not None and signed.process_id != process_id:
        return EntryVerdict(ok=False, reason=f"entry belongs to process {signed.process_id}, not {process_id}", **base)
    if submitter != signed.sender:
        return EntryVerdict(ok=False, reason=f"submitted by {submitter!r} but the entry's sender is {signed.sender}",
                            **base)
    problems = []
    if keys is not None:
        key = keys.get(signed.sender)
        if key is None or isinstance(key, str):
            problems.append(f"cannot check the signature: {key or 'no key for ' + signed.sender}")
        else:
            try:
                verify_entry_signature(signed, key)
            except EntryError as exc:
                problems.append(str(exc))
    if check_proof:
        try:
            proof = decode_proof(item.get("inclusionProof"), "inclusion proof")
        except LogVerificationError as exc:
            problems.append(str(exc))
        else:
            if not verify_inclusion(signed.leaf_hash, index, tree_size, proof, root):
                problems.append(f"not in the signed tree at index {index} "
                                "(the entry, its position or the tree was altered)")
    if problems:
        return EntryVerdict(ok=False, reason="; ".join(problems), **base)
    return EntryVerdict(ok=True, **base)


def first_divergence(remembered: Mapping[int, bytes], current: Mapping[int, bytes],
                     size: int) -> tuple[int, str] | None:
    """Compare leaf hashes remembered from an earlier audit with the current ones (for the same indices).

    Returns the first index that differs, with a reason, or None."""
    for index in sorted(remembered):
        if index >= size:
            return index, f"entry {index} was in the log before but the log now has only {size} entries"
        now = current.get(index)
        if now is None:
            return index, f"entry {index} was in the log before and is missing now"
        if not hmac.compare_digest(now, remembered[index]):
            return index, f"entry {index} differs from the one at that position before"
    return None


@dataclass
class AuditState:
    """What an auditor keeps between runs: the last verified checkpoint and the leaf hashes it verified.

    With it, a rewrite of the log (even one re-signed with the log's key) is pinned
    to the first entry that changed, not only detected."""

    checkpoint: str
    origin: str
    scope: str  # "all" or "process"
    process_id: str | None = None
    leaves: dict[int, bytes] = field(default_factory=dict)

    TYPE = "hks-clearinghouse-audit-state"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.TYPE, "v": 1, "origin": self.origin, "checkpoint": self.checkpoint,
                               "scope": self.scope}
        if self.process_id is not None:
            out["processId"] = self.process_id
        if self.scope == "all" and sorted(self.leaves) == list(range(len(self.leaves))):
            out["leafHashes"] = base64.b64encode(b"".join(self.leaves[i] for i in range(len(self.leaves)))).decode()
        else:
            out["leaves"] = {str(i): encode_hash(h) for i, h in sorted(self.leaves.items())}
        return out

    @classmethod
    def from_json(cls, obj: object) -> "AuditState":
        if not isinstance(obj, dict) or obj.get("type") != cls.TYPE or obj.get("v") != 1:
            raise LogVerificationError(f"not an audit state file (type {cls.TYPE}, v 1)")
        scope = obj.get("scope")
        if scope not in ("all", "process"):
            raise LogVerificationError("audit state: scope must be 'all' or 'process'")
        note, origin = obj.get("checkpoint"), obj.get("origin")
        if not isinstance(note, str) or not isinstance(origin, str):
            raise LogVerificationError("audit state: checkpoint and origin must be strings")
        pid = obj.get("processId")
        if pid is not None and not isinstance(pid, str):
            raise LogVerificationError("audit state: processId must be a string")
        leaves: dict[int, bytes] = {}
        if "leafHashes" in obj:
            blob = obj["leafHashes"]
            try:
                raw = base64.b64decode(blob, validate=True) if isinstance(blob, str) else None
            except (binascii.Error, ValueError):
                raw = None
            if raw is None or len(raw) % HASH_SIZE:
                raise LogVerificationError("audit state: leafHashes must be base64 of concatenated 32-byte hashes")
            leaves = {i: raw[i * HASH_SIZE:(i + 1) * HASH_SIZE] for i in range(len(raw) // HASH_SIZE)}
        else:
            table = obj.get("leaves", {})
            if not isinstance(table, dict):
                raise LogVerificationError("audit state: leaves must be an object")
            for k, v in table.items():
                if not k.isdigit() or (len(k) > 1 and k[0] == "0"):
                    raise LogVerificationError(f"audit state: leaf index {k!r} is not a decimal")
                leaves[int(k)] = decode_hash(v, f"audit state leaf {k}")
        return cls(checkpoint=note, origin=origin, scope=scope, process_id=pid, leaves=leaves)
