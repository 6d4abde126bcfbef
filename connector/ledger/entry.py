"""Canonical bytes of clearing-house log entries (RFC 8785 JSON Canonicalization Scheme).

An entry is a JSON object (DESIGN.md "Clearing house": process id, event,
parties, timestamp, SHA-256 of the protocol message, signed by the sender).
Its leaf in the Merkle tree is ``leaf_hash(canonical_entry(entry))``.

JCS limits: keys must be strings; integers must lie within +/-(2**53 - 1)
(encode larger numbers, hashes and timestamps as strings); NaN and infinities
are not representable.  Violations raise ``ValueError``.
"""

from __future__ import annotations

import json

import rfc8785

from .merkle import leaf_hash

__all__ = ["canonical_entry", "entry_leaf_hash", "decode_entry"]


def canonical_entry(obj: dict) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of the JSON object ``obj``."""
    if not isinstance(obj, dict):
        raise TypeError(f"a log entry must be a JSON object (dict), not {type(obj).__name__}")
    return rfc8785.dumps(obj)  # CanonicalizationError is a ValueError


def entry_leaf_hash(obj: dict) -> bytes:
    """SHA-256(0x00 || canonical_entry(obj))."""
    return leaf_hash(canonical_entry(obj))


def decode_entry(data: bytes) -> dict:
    """Parse entry bytes, accepting them only if they are already canonical.

    Lets an auditor check that stored entry bytes are exactly what was
    hashed into the tree (no whitespace, ordering or number-format slack,
    no duplicate keys).
    """
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("entry data must be bytes")
    try:
        obj = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"entry is not UTF-8 JSON: {e}") from None
    except RecursionError:
        raise ValueError("entry is nested too deeply") from None
    if not isinstance(obj, dict):
        raise ValueError("entry is not a JSON object")
    if canonical_entry(obj) != bytes(data):
        raise ValueError("entry bytes are not in RFC 8785 canonical form")
    return obj
