"""C2SP signed-note checkpoints and canonical entries (connector.ledger.checkpoint / entry)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.ledger import checkpoint as c
from connector.ledger import entry as e
from connector.ledger import merkle as m

# --- known-answer vectors ---------------------------------------------------

# golang.org/x/mod/sumdb/note (note.go doc example and note_test.go):
# Ed25519 is deterministic, so signing must reproduce the published note.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

# transparency-dev/formats log/note_test.go: a real sum.golang.org checkpoint.
SUMDB_VERIFIER = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_CHECKPOINT = (
    "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n"
    "\u2014 sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n"
)

# transparency-dev/formats log/note_test.go key pairs (key id derivation KAT).
FORMATS_KEYS = [
    ("Log+2271c621+AemuH5ooBpEPcr+W8onrjA1NfuzBVHdezakU81Ekarvs", "PRIVATE+KEY+Log+2271c621+AdEIq9FLRQni54Wg68T96VJO+iayOaulswav2DUMKgvQ"),
    ("Known+451c786d+AXAQ0T7lbwuY4ABJ9/MYY9bWV3hmSyOGVt2x42NkmdUH", "PRIVATE+KEY+Known+451c786d+AQPRoE2+Z+Ed1HaHBA9F/FfracvcZ2rDU39kCecMEoci"),
    ("KnownAgain+4893b26c+AQ+LR7BFF/F/dkpIBjBpSvT0crkteizuUkavAoGeaYMj", "PRIVATE+KEY+KnownAgain+4893b26c+ARhZda/l25zjGZswYLDZsLNRzNpmv5wYTN9IoTr1OJ2+"),
    ("Unknown+fdbb2e08+AWgRIYZ+8x1Vl+1Q+sR8zciNHiYI1SdlBjNw+RV0rots", "PRIVATE+KEY+Unknown+fdbb2e08+Aav2knTC6orbhXX8pMWuNiWgO+Wwk2DB+h1eU2Q1W1nU"),
]

# The example of c2sp.org/tlog-checkpoint (its public key is not published).
C2SP_EXAMPLE = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)


def test_go_note_vector_signs_byte_for_byte():
    name, sk = c.parse_signer_key(GO_SIGNER)
    assert name == "PeterNeumann"
    assert c.verifier_key_string(name, sk.public_key()) == GO_VERIFIER
    assert c.key_id(name, sk.public_key()) == 0xC74F20A3
    assert c.signer_key_string(name, sk) == GO_SIGNER
    assert c.sign_note(GO_TEXT, sk, name) == GO_NOTE
    note = c.open_note(GO_NOTE, GO_VERIFIER)
    assert note.text == GO_TEXT
    assert note.encode() == GO_NOTE
    with pytest.raises(c.UnverifiedNoteError):
        c.open_note(GO_NOTE.replace("cryptography", "cryptographY"), GO_VERIFIER)


@pytest.mark.parametrize("vkey,skey", FORMATS_KEYS)
def test_key_strings_match_go(vkey, skey):
    name, sk = c.parse_signer_key(skey)
    assert c.verifier_key_string(name, sk.public_key()) == vkey
    parsed = c.parse_verifier_key(vkey)
    assert parsed.name == name and str(parsed) == vkey


def test_sumdb_checkpoint_vector():
    cp = c.verify_checkpoint(SUMDB_CHECKPOINT, SUMDB_VERIFIER)
    assert cp.origin == "go.sum database tree"
    assert cp.size == 6476701
    assert cp.root_hash == base64.b64decode("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=")
    assert cp.body + "\n" + cp.signatures[0].line() == SUMDB_CHECKPOINT
    assert c.verify_checkpoint(SUMDB_CHECKPOINT.encode(), SUMDB_VERIFIER, origin="go.sum database tree") == cp
    with pytest.raises(c.UnverifiedNoteError):
        c.verify_checkpoint(SUMDB_CHECKPOINT, SUMDB_VERIFIER, origin="Go rocks but I might have the wrong ID")
    with pytest.raises(c.UnverifiedNoteError):
        c.verify_checkpoint(SUMDB_CHECKPOINT.replace("6476701", "6476702"), SUMDB_VERIFIER)
    with pytest.raises(c.UnverifiedNoteError):
        c.verify_checkpoint(SUMDB_CHECKPOINT, GO_VERIFIER)


def test_c2sp_example_parses():
    cp = c.parse_checkpoint(C2SP_EXAMPLE)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    assert len(cp.root_hash) == 32
    (sig,) = cp.signatures
    assert sig.name == "example.com/behind-the-sofa" and len(sig.signature) == 64
    other = Ed25519PrivateKey.generate()
    with pytest.raises(c.UnverifiedNoteError, match="no signature"):
        c.verify_checkpoint(C2SP_EXAMPLE, c.verifier_key_string("example.com/behind-the-sofa", other.public_key()))


# --- round trips --------------------------------------------------------------

ORIGIN = "clearing.hk-station.example/log"


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test log key").digest())


@pytest.fixture(scope="module")
def vkey(key):
    return c.verifier_key_string(ORIGIN, key.public_key())


def test_sign_parse_verify(key, vkey):
    store = m.MemoryLeafStore()
    store.extend(m.leaf_hash(b"%d" % i) for i in range(1000))
    text = c.sign_checkpoint(ORIGIN, 1000, store.root(), key, ORIGIN)
    lines = text.split("\n")
    assert lines[:4] == [ORIGIN, "1000", base64.b64encode(store.root()).decode(), ""]
    assert lines[4].startswith("\u2014 " + ORIGIN + " ") and lines[5] == ""
    blob = base64.b64decode(lines[4].split(" ")[-1])
    assert blob[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + c.parse_verifier_key(vkey).public_bytes).digest()[:4]
    cp = c.verify_checkpoint(text, vkey, origin=ORIGIN)
    assert cp == c.parse_checkpoint(text)
    assert (cp.origin, cp.size, cp.root_hash, cp.extensions) == (ORIGIN, 1000, store.root(), ())
    # a checkpoint and an inclusion proof together
    proof = store.inclusion_proof(123, cp.size)
    assert m.verify_inclusion(m.leaf_hash(b"123"), 123, cp.size, proof, cp.root_hash)


def test_empty_tree_and_extensions(key, vkey):
    text = c.sign_checkpoint(ORIGIN, 0, m.EMPTY_ROOT, key, ORIGIN, extensions=["ts 1767225600", "x"])
    cp = c.verify_checkpoint(text, vkey)
    assert cp.size == 0 and cp.root_hash == m.EMPTY_ROOT and cp.extensions == ("ts 1767225600", "x")


@settings(max_examples=50, deadline=None)
@given(
    origin=st.text(st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)), min_size=1, max_size=30),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
)
def test_round_trip_property(key, origin, size, root):
    vk = c.verifier_key_string("log", key.public_key())
    text = c.sign_checkpoint(origin, size, root, key, "log")
    cp = c.verify_checkpoint(text, vk)
    assert (cp.origin, cp.size, cp.root_hash) == (origin, size, root)


def test_cosigned_note_unknown_signatures_ignored(key, vkey):
    text = c.sign_checkpoint(ORIGIN, 5, b"\x11" * 32, key, ORIGIN)
    witness = Ed25519PrivateKey.generate()
    wsig = c.parse_note(c.sign_note(c.parse_checkpoint(text).body, witness, "witness.example")).signatures[0]
    cosigned = text + wsig.line()
    cp = c.verify_checkpoint(cosigned, vkey)
    assert [s.name for s in cp.signatures] == [ORIGIN, "witness.example"]
    assert c.verify_checkpoint(cosigned, c.verifier_key_string("witness.example", witness.public_key())).size == 5
    # a second, bad signature by the known key rejects the note
    sig = cp.signatures[0]
    bad = c.NoteSignature(sig.name, sig.key_id, bytes(64))
    with pytest.raises(c.UnverifiedNoteError, match="invalid signature"):
        c.verify_checkpoint(cosigned + bad.line(), vkey)


# --- tamper detection -------------------------------------------------------


def test_tampering_detected(key, vkey):
    root = hashlib.sha256(b"root").digest()
    text = c.sign_checkpoint(ORIGIN, 42, root, key, ORIGIN)
    body, sigline = text.split("\n\n")
    tampered = [
        text.replace("\n42\n", "\n43\n"),
        text.replace(ORIGIN + "\n", ORIGIN + "x\n", 1),
        text.replace(base64.b64encode(root).decode(), base64.b64encode(hashlib.sha256(b"other").digest()).decode()),
        body + "\nextra\n\n" + sigline,
    ]
    for t in tampered:
        with pytest.raises(c.UnverifiedNoteError):
            c.verify_checkpoint(t, vkey)
    # flip one bit of the signature (key id kept)
    blob = bytearray(base64.b64decode(sigline.split(" ")[-1]))
    blob[10] ^= 1
    forged = body + "\n\n\u2014 " + ORIGIN + " " + base64.b64encode(bytes(blob)).decode() + "\n"
    with pytest.raises(c.UnverifiedNoteError, match="invalid signature"):
        c.verify_checkpoint(forged, vkey)
    # wrong key with the same name; same key under another name
    other = Ed25519PrivateKey.generate()
    with pytest.raises(c.UnverifiedNoteError):
        c.verify_checkpoint(text, c.verifier_key_string(ORIGIN, other.public_key()))
    with pytest.raises(c.UnverifiedNoteError):
        c.verify_checkpoint(text, c.verifier_key_string("other.example/log", key.public_key()))
    # key id of the verifier key string must match its name and key
    name, hexid, b64 = vkey.split("+", 2)
    with pytest.raises(c.MalformedNoteError, match="key id"):
        c.verify_checkpoint(text, f"{name}+{int(hexid, 16) ^ 1:08x}+{b64}")


# --- strict parsing ---------------------------------------------------------

GOOD_ROOT = base64.b64encode(b"\x07" * 32).decode()
SIG = "\u2014 log " + base64.b64encode(b"\x01\x02\x03\x04" + b"s" * 64).decode() + "\n"


def _note(body: str, sigs: str = SIG) -> str:
    return body + "\n" + sigs


MALFORMED = [
    ("no-blank-line", f"o\n1\n{GOOD_ROOT}\n" + SIG, "blank line"),
    ("no-signatures", f"o\n1\n{GOOD_ROOT}\n\n", "no signature"),
    ("no-final-newline", _note(f"o\n1\n{GOOD_ROOT}\n", SIG[:-1]), "newline"),
    ("hyphen-not-em-dash", _note(f"o\n1\n{GOOD_ROOT}\n", "- " + SIG[2:]), "em dash"),
    ("sig-without-space", _note(f"o\n1\n{GOOD_ROOT}\n", "\u2014 log\n"), "no signature after"),
    ("sig-bad-base64", _note(f"o\n1\n{GOOD_ROOT}\n", "\u2014 log AAAA$AAA\n"), "invalid base64"),
    ("sig-too-short", _note(f"o\n1\n{GOOD_ROOT}\n", "\u2014 log AAAAAA==\n"), "too short"),
    ("sig-name-plus", _note(f"o\n1\n{GOOD_ROOT}\n", SIG.replace("log", "l+g")), "'+'"),
    ("control-char", _note(f"o\t\n1\n{GOOD_ROOT}\n"), "control character"),
    ("crlf", _note(f"o\r\n1\r\n{GOOD_ROOT}\r\n"), "control character"),
    ("two-lines", _note("o\n1\n"), "origin, size and root"),
    ("empty-origin", _note(f"\n1\n{GOOD_ROOT}\n"), "line 1 is empty"),
    ("size-leading-zero", _note(f"o\n01\n{GOOD_ROOT}\n"), "leading zeros"),
    ("size-negative", _note(f"o\n-1\n{GOOD_ROOT}\n"), "tree size"),
    ("size-plus", _note(f"o\n+1\n{GOOD_ROOT}\n"), "tree size"),
    ("size-unicode-digit", _note(f"o\n\u0661\n{GOOD_ROOT}\n"), "tree size"),
    ("size-too-big", _note(f"o\n{2**64}\n{GOOD_ROOT}\n"), "2**64"),
    ("root-short", _note(f"o\n1\n{base64.b64encode(b'x' * 31).decode()}\n"), "31 bytes"),
    ("root-unpadded", _note(f"o\n1\n{GOOD_ROOT.rstrip('=')}\n"), "base64"),
    ("root-noncanonical", _note(f"o\n1\n{GOOD_ROOT[:-2]}x=\n"), "non-canonical"),
    ("root-space", _note(f"o\n1\n {GOOD_ROOT}\n"), "base64"),
]


@pytest.mark.parametrize("text,msg", [(t, msg) for _, t, msg in MALFORMED], ids=[i for i, _, _ in MALFORMED])
def test_malformed_rejected(text, msg):
    with pytest.raises(c.MalformedNoteError, match=re.escape(msg)) as ei:
        c.parse_checkpoint(text)
    assert isinstance(ei.value, ValueError)


def test_malformed_extras():
    with pytest.raises(c.MalformedNoteError, match="UTF-8"):
        c.parse_checkpoint(b"o\n1\n\xff\n\n" + SIG.encode())
    with pytest.raises(c.MalformedNoteError, match="more than"):
        c.parse_checkpoint(_note(f"o\n1\n{GOOD_ROOT}\n", SIG * (c.MAX_SIGNATURES + 1)))
    # an empty line inside the body makes the last blank line the separator
    with pytest.raises(c.MalformedNoteError):
        c.parse_checkpoint(_note(f"o\n1\n{GOOD_ROOT}\n\next\n"))
    assert c.parse_checkpoint(_note(f"o\n1\n{GOOD_ROOT}\next\n")).extensions == ("ext",)
    assert len(c.parse_checkpoint(_note(f"o\n1\n{GOOD_ROOT}\n", SIG * 16)).signatures) == 16


def test_sign_input_checks(key):
    for args in [
        ("", 1, b"\0" * 32),
        ("a\nb", 1, b"\0" * 32),
        ("o", -1, b"\0" * 32),
        ("o", 2**64, b"\0" * 32),
        ("o", True, b"\0" * 32),
        ("o", 1, b"\0" * 31),
    ]:
        with pytest.raises(ValueError):
            c.sign_checkpoint(*args, key, "log")
    for name in ("", "a b", "a+b", "a\u00a0b"):
        with pytest.raises(ValueError):
            c.sign_checkpoint("o", 1, b"\0" * 32, key, name)
    with pytest.raises(ValueError):
        c.sign_checkpoint("o", 1, b"\0" * 32, key, "log", extensions=[""])
    with pytest.raises(ValueError):
        c.sign_note("no newline", key, "log")


@pytest.mark.parametrize(
    "vk",
    [
        "",
        "name",
        "name+c74f20a3",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys(vk):
    with pytest.raises(c.MalformedNoteError):
        c.parse_verifier_key(vk)


# --- canonical entries ------------------------------------------------------


def test_canonical_entry():
    entry = {
        "pid": "proc-1",
        "event": "contract.agreed",
        "parties": ["did:web:b.example", "did:web:a.example"],
        "ts": "2026-01-01T00:00:00Z",
        "msg_sha256": "ab" * 32,
        "n": 1.0,
        "é": "\u00e9\u20ac",
    }
    data = e.canonical_entry(entry)
    assert data == (
        '{"event":"contract.agreed","msg_sha256":"' + "ab" * 32 + '","n":1,'
        '"parties":["did:web:b.example","did:web:a.example"],"pid":"proc-1",'
        '"ts":"2026-01-01T00:00:00Z","\u00e9":"\u00e9\u20ac"}'
    ).encode("utf-8")
    assert e.canonical_entry(dict(reversed(list(entry.items())))) == data
    assert e.entry_leaf_hash(entry) == hashlib.sha256(b"\x00" + data).digest() == m.leaf_hash(data)
    assert e.decode_entry(data) == {**entry, "n": 1.0}


def test_rfc8785_sorting_by_utf16():
    # RFC 8785 section 3.2.3: keys sort by UTF-16 code units.
    data = e.canonical_entry({"\U0001f600": 1, "\ufb33": 2, "a": 3})
    assert data == '{"a":3,"\U0001f600":1,"\ufb33":2}'.encode("utf-8")


def test_canonical_entry_rejects():
    for bad in ({"a": float("nan")}, {"a": 2**53}, {1: "x"}, {"a": b"bytes"}):
        with pytest.raises(ValueError):
            e.canonical_entry(bad)
    for bad in ([], "x", None):
        with pytest.raises(TypeError):
            e.canonical_entry(bad)
    for data in (b'{"b":1, "a":2}', b'{"b":1,"a":2}', b'{"a":1,"a":1}', b'{"a":1.0}', b"[]", b"\xff", b"{"):
        with pytest.raises(ValueError):
            e.decode_entry(data)
