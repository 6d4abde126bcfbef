"""C2SP signed notes and transparency-log checkpoints (Ed25519).

Formats: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint.

A checkpoint is a signed note whose text is::

    <origin>\\n
    <tree size, ASCII decimal, no leading zeros>\\n
    <base64 RFC 6962 root hash>\\n
    [<extension line>\\n ...]

followed by a blank line and one or more signature lines
``— <key name> <base64(key id (4 bytes, big-endian) || signature)>``.

For Ed25519 (signature type 0x01) the key id is
``SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]`` and the
verifier key string is ``<name>+<8 hex digits key id>+<base64(0x01 || public key)>``
(the format of golang.org/x/mod/sumdb/note).  Signer key strings use the same
package's ``PRIVATE+KEY+<name>+<key id>+<base64(0x01 || 32-byte seed)>``.

Pure code: no I/O, no clock, no logging.  Parsing is strict: malformed input
raises :class:`MalformedNoteError` (a ``ValueError``) naming the problem;
verification failures raise :class:`UnverifiedNoteError` (also a ``ValueError``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from ..errors import LedgerError

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "CheckpointError",
    "MalformedNoteError",
    "UnverifiedNoteError",
    "NoteSignature",
    "Note",
    "VerifierKey",
    "Checkpoint",
    "key_id",
    "verifier_key_string",
    "signer_key_string",
    "parse_verifier_key",
    "parse_signer_key",
    "sign_note",
    "parse_note",
    "open_note",
    "checkpoint_body",
    "parse_checkpoint_body",
    "sign_checkpoint",
    "parse_checkpoint",
    "verify_checkpoint",
]

ALG_ED25519 = 0x01
#: Upper bound on signature lines accepted in one note (the spec requires at least 16).
MAX_SIGNATURES = 100
_SIG_PREFIX = "\u2014 "  # em dash, space
_HASH_SIZE = 32
_MAX_UINT64 = (1 << 64) - 1
_SIZE_RE = re.compile(r"(?:0|[1-9][0-9]*)", re.ASCII)
_HEX8_RE = re.compile(r"[0-9a-f]{8}", re.ASCII)


class CheckpointError(LedgerError, ValueError):
    """Base class for note and checkpoint errors."""


class MalformedNoteError(CheckpointError):
    """The text is not a well-formed signed note / checkpoint / key string."""


class UnverifiedNoteError(CheckpointError):
    """No valid signature by the expected key (or a signature by it failed)."""


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int  # uint32
    signature: bytes  # without the 4-byte key id

    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True)
class Note:
    text: str  # includes its final newline, excludes the blank separator line
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: int
    public_key: Ed25519PublicKey = field(compare=False)
    public_bytes: bytes = b""

    def __str__(self) -> str:
        return verifier_key_string(self.name, self.public_bytes)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()
    signatures: tuple[NoteSignature, ...] = ()

    @property
    def body(self) -> str:
        """The signed note text of this checkpoint."""
        return checkpoint_body(self.origin, self.size, self.root_hash, self.extensions)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _b64decode_strict(s: str, what: str) -> bytes:
    if not s:
        raise MalformedNoteError(f"{what}: empty base64")
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedNoteError(f"{what}: invalid base64") from None
    if base64.b64encode(raw).decode("ascii") != s:
        raise MalformedNoteError(f"{what}: non-canonical base64")
    return raw


def _check_name(name: object, what: str = "key name") -> str:
    if not isinstance(name, str) or not name:
        raise MalformedNoteError(f"{what} must be a non-empty string")
    if "+" in name or any(ch.isspace() for ch in name):
        raise MalformedNoteError(f"{what} {name!r} must not contain spaces or '+'")
    _check_text_chars(name, what)
    return name


def _check_text_chars(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedNoteError(f"{what} is not valid UTF-8") from None
    for ch in text:
        if ch < " " and ch != "\n":
            raise MalformedNoteError(f"{what} contains control character U+{ord(ch):04X}")


def _public_bytes(public_key: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(public_key, (bytes, bytearray)) and len(public_key) == 32:
        return bytes(public_key)
    raise TypeError("public key must be an Ed25519PublicKey or 32 raw bytes")


def key_id(name: str, public_key: Ed25519PublicKey | bytes) -> int:
    """uint32 key id = SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian."""
    _check_name(name)
    pub = _public_bytes(public_key)
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + pub).digest()
    return int.from_bytes(digest[:4], "big")


def verifier_key_string(name: str, public_key: Ed25519PublicKey | bytes) -> str:
    """``<name>+<hex key id>+<base64(0x01 || public key)>``."""
    pub = _public_bytes(public_key)
    kid = key_id(name, pub)
    return f"{name}+{kid:08x}+{base64.b64encode(bytes([ALG_ED25519]) + pub).decode('ascii')}"


def signer_key_string(name: str, private_key: Ed25519PrivateKey) -> str:
    """``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`` (sumdb/note format)."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise TypeError("private key must be an Ed25519PrivateKey")
    seed = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    kid = key_id(name, private_key.public_key())
    return f"PRIVATE+KEY+{name}+{kid:08x}+{base64.b64encode(bytes([ALG_ED25519]) + seed).decode('ascii')}"


def _split_key(s: str, what: str) -> tuple[str, int, bytes]:
    # The name has no '+', the key id has none, the base64 may contain some.
    parts = s.split("+", 2)
    if len(parts) != 3:
        raise MalformedNoteError(f"{what}: expected <name>+<key id>+<base64 key>")
    name, hex_id, b64 = parts
    _check_name(name)
    if not _HEX8_RE.fullmatch(hex_id.lower()):
        raise MalformedNoteError(f"{what}: key id must be 8 hex digits")
    raw = _b64decode_strict(b64, what)
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise MalformedNoteError(f"{what}: only Ed25519 keys (type 0x01, 32 bytes) are supported")
    return name, int(hex_id, 16), raw[1:]


def parse_verifier_key(s: str) -> VerifierKey:
    if not isinstance(s, str):
        raise MalformedNoteError("verifier key must be a string")
    name, kid, pub = _split_key(s, "verifier key")
    if key_id(name, pub) != kid:
        raise MalformedNoteError("verifier key: key id does not match name and public key")
    try:
        pk = Ed25519PublicKey.from_public_bytes(pub)
    except ValueError:
        raise MalformedNoteError("verifier key: invalid Ed25519 public key") from None
    return VerifierKey(name=name, key_id=kid, public_key=pk, public_bytes=pub)


def parse_signer_key(s: str) -> tuple[str, Ed25519PrivateKey]:
    """Parse ``PRIVATE+KEY+...``; return (key name, private key)."""
    if not isinstance(s, str) or not s.startswith("PRIVATE+KEY+"):
        raise MalformedNoteError("signer key must start with PRIVATE+KEY+")
    name, kid, seed = _split_key(s[len("PRIVATE+KEY+") :], "signer key")
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    if key_id(name, sk.public_key()) != kid:
        raise MalformedNoteError("signer key: key id does not match name and key")
    return name, sk


def _as_verifier(verifier_key: str | VerifierKey) -> VerifierKey:
    if isinstance(verifier_key, VerifierKey):
        return verifier_key
    return parse_verifier_key(verifier_key)


# ---------------------------------------------------------------------------
# signed notes
# ---------------------------------------------------------------------------


def sign_note(text: str, private_key: Ed25519PrivateKey, key_name: str) -> str:
    """Sign ``text`` (non-empty, ending in a newline) as a one-signature note."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise MalformedNoteError("note text must be a non-empty string ending in a newline")
    _check_text_chars(text, "note text")
    _check_name(key_name)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise TypeError("private key must be an Ed25519PrivateKey")
    sig = private_key.sign(text.encode("utf-8"))
    ns = NoteSignature(key_name, key_id(key_name, private_key.public_key()), sig)
    return Note(text, (ns,)).encode()


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into text and signatures (no verification)."""
    if isinstance(note, (bytes, bytearray)):
        try:
            note = bytes(note).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNoteError("note is not valid UTF-8") from None
    if not isinstance(note, str):
        raise MalformedNoteError("note must be str or bytes")
    _check_text_chars(note, "note")
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line before its signatures")
    text, sigs = note[: split + 1], note[split + 2 :]
    if not sigs:
        raise MalformedNoteError("note has no signature lines")
    if not sigs.endswith("\n"):
        raise MalformedNoteError("note does not end with a newline")
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note has more than {MAX_SIGNATURES} signatures")
    out = []
    for n, line in enumerate(lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNoteError(f"signature line {n} does not start with an em dash and a space")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep:
            raise MalformedNoteError(f"signature line {n} has no signature after the key name")
        try:
            _check_name(name)
        except MalformedNoteError as e:
            raise MalformedNoteError(f"signature line {n}: {e}") from None
        blob = _b64decode_strict(b64, f"signature line {n}")
        if len(blob) < 5:
            raise MalformedNoteError(f"signature line {n}: signature too short")
        out.append(NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:]))
    return Note(text, tuple(out))


def _verify_parsed(note: Note, key: VerifierKey) -> None:
    mine = [s for s in note.signatures if s.name == key.name and s.key_id == key.key_id]
    if not mine:
        raise UnverifiedNoteError(f"note has no signature by key {key.name}+{key.key_id:08x}")
    msg = note.text.encode("utf-8")
    for s in mine:
        try:
            key.public_key.verify(s.signature, msg)
        except InvalidSignature:
            raise UnverifiedNoteError(f"invalid signature by key {key.name}+{key.key_id:08x}") from None


def open_note(note: str | bytes, verifier_key: str | VerifierKey) -> Note:
    """Parse and verify: the note must carry a valid signature by ``verifier_key``.

    Signatures by other keys are ignored (C2SP signed-note); if any
    signature matching the key's name and id fails, the whole note is
    rejected.
    """
    key = _as_verifier(verifier_key)
    parsed = parse_note(note)
    _verify_parsed(parsed, key)
    return parsed


# ---------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------


def checkpoint_body(origin: str, size: int, root: bytes, extensions: tuple[str, ...] | list[str] = ()) -> str:
    """The note text of a checkpoint (validated)."""
    if not isinstance(origin, str) or not origin:
        raise MalformedNoteError("checkpoint origin must be a non-empty string")
    if "\n" in origin:
        raise MalformedNoteError("checkpoint origin must be a single line")
    _check_text_chars(origin, "checkpoint origin")
    if type(size) is not int or not 0 <= size <= _MAX_UINT64:
        raise MalformedNoteError("checkpoint size must be an int in [0, 2**64)")
    if not isinstance(root, (bytes, bytearray)) or len(root) != _HASH_SIZE:
        raise MalformedNoteError("checkpoint root hash must be 32 bytes")
    lines = [origin, str(size), base64.b64encode(bytes(root)).decode("ascii")]
    for i, ext in enumerate(extensions):
        if not isinstance(ext, str) or not ext or "\n" in ext:
            raise MalformedNoteError(f"checkpoint extension line {i + 1} must be a non-empty single line")
        _check_text_chars(ext, f"checkpoint extension line {i + 1}")
        lines.append(ext)
    return "\n".join(lines) + "\n"


def parse_checkpoint_body(text: str) -> tuple[str, int, bytes, tuple[str, ...]]:
    """Parse checkpoint note text into (origin, size, root hash, extension lines)."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise MalformedNoteError("checkpoint text must end with a newline")
    _check_text_chars(text, "checkpoint text")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedNoteError("checkpoint needs origin, size and root hash lines")
    for i, line in enumerate(lines, 1):
        if not line:
            raise MalformedNoteError(f"checkpoint line {i} is empty")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not _SIZE_RE.fullmatch(size_s):
        raise MalformedNoteError(f"checkpoint tree size {size_s!r} is not a decimal without leading zeros")
    size = int(size_s)
    if size > _MAX_UINT64:
        raise MalformedNoteError("checkpoint tree size exceeds 2**64 - 1")
    root = _b64decode_strict(root_s, "checkpoint root hash")
    if len(root) != _HASH_SIZE:
        raise MalformedNoteError(f"checkpoint root hash is {len(root)} bytes, want {_HASH_SIZE}")
    return origin, size, root, tuple(lines[3:])


def _checkpoint_from_note(note: Note) -> Checkpoint:
    origin, size, root, ext = parse_checkpoint_body(note.text)
    return Checkpoint(origin=origin, size=size, root_hash=root, extensions=ext, signatures=note.signatures)


def sign_checkpoint(
    origin: str,
    size: int,
    root: bytes,
    private_key: Ed25519PrivateKey,
    key_name: str,
    *,
    extensions: tuple[str, ...] | list[str] = (),
) -> str:
    """Return the signed checkpoint note.  The key name SHOULD equal the origin."""
    return sign_note(checkpoint_body(origin, size, root, extensions), private_key, key_name)


def parse_checkpoint(text: str | bytes) -> Checkpoint:
    """Strictly parse a signed checkpoint note (signatures are not verified)."""
    return _checkpoint_from_note(parse_note(text))


def verify_checkpoint(
    text: str | bytes, verifier_key: str | VerifierKey, *, origin: str | None = None
) -> Checkpoint:
    """Parse a checkpoint and verify its signature by ``verifier_key``.

    Raises :class:`MalformedNoteError` for malformed input and
    :class:`UnverifiedNoteError` when the key did not sign it (or its
    signature is invalid) or, if ``origin`` is given, the origin differs.
    """
    key = _as_verifier(verifier_key)
    note = parse_note(text)
    cp = _checkpoint_from_note(note)
    _verify_parsed(note, key)
    if origin is not None and cp.origin != origin:
        raise UnverifiedNoteError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    return cp
