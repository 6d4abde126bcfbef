"""Clearing-house entries and their verification (pure: connector.clearinghouse.entry / verify)."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.clearinghouse import entry as E
from connector.clearinghouse import verify as V
from connector.ledger import checkpoint as C
from connector.ledger import merkle as M

KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())
A, B = "urn:hks:participant:pearl", "urn:hks:participant:harbour"
T0 = datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=timezone.utc)


def entry(**over) -> dict:
    base = dict(process_id="urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427", event="negotiation.agreed",
                provider=A, consumer=B, sender=A, timestamp=T0, sha256=hashlib.sha256(b"msg").digest())
    base.update(over)
    return E.make_entry(**base)


def b64(obj) -> str:
    return E.b64url(json.dumps(obj, separators=(",", ":")).encode())


def test_entry_shape_and_canonical_bytes():
    e = entry()
    assert e == {"v": 1, "processId": "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427", "event": "negotiation.agreed",
                 "provider": A, "consumer": B, "sender": A, "timestamp": "2026-11-22T10:00:00.123Z",
                 "sha256": hashlib.sha256(b"msg").hexdigest()}
    assert E.canonical_bytes(e) == rfc8785.dumps(e)
    assert E.format_timestamp(T0.astimezone(timezone(timedelta(hours=8)))) == "2026-11-22T10:00:00.123Z"


ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(pid=ids, a=ids, b=ids, event=st.sampled_from(sorted(E.EVENTS)), digest=st.binary(min_size=32, max_size=32),
       when=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(timezone.utc)),
       sender_is_provider=st.booleans())
def test_canonical_fast_path_is_rfc8785(pid, a, b, event, digest, when, sender_is_provider):
    e = E.make_entry(process_id=pid, event=event, provider=a, consumer=b, sender=a if sender_is_provider else b,
                     timestamp=when, sha256=digest)
    assert E.canonical_bytes(e) == rfc8785.dumps(e)
    signed = E.parse_signed_entry(E.sign_entry(e, KEY))
    assert signed.entry == e and signed.leaf_hash == M.leaf_hash(rfc8785.dumps(e))
    E.verify_entry_signature(signed, KEY.public_key())


@pytest.mark.parametrize("change, message", [
    (lambda e: e.pop("sha256"), "'sha256' is missing"),
    (lambda e: e.update(extra="x"), "unknown field 'extra'"),
    (lambda e: e.update(data="the data itself"), "unknown field 'data'"),
    (lambda e: e.update(v=2), "'v' must be 1"),
    (lambda e: e.update(v=True), "'v' must be 1"),
    (lambda e: e.update(event="negotiation.hacked"), "'event' must be one of"),
    (lambda e: e.update(event=["x"]), "'event' must be one of"),
    (lambda e: e.update(sender="urn:someone-else"), "'sender' must be the provider or the consumer"),
    (lambda e: e.update(provider="has space"), "'provider' must be 1-256 printable ASCII"),
    (lambda e: e.update(consumer="x" * 257), "'consumer' must be 1-256"),
    (lambda e: e.update(processId=""), "'processId' must be 1-256"),
    (lambda e: e.update(processId="é"), "'processId' must be 1-256"),
    (lambda e: e.update(timestamp="2026-11-22 10:00:00Z"), "RFC 3339 UTC"),
    (lambda e: e.update(timestamp="2026-02-30T10:00:00Z"), "not a valid date"),
    (lambda e: e.update(timestamp="2026-11-22T10:00:00+08:00"), "RFC 3339 UTC"),
    (lambda e: e.update(sha256="AB" * 32), "64 lowercase hex"),
    (lambda e: e.update(sha256="ab" * 31), "64 lowercase hex"),
])
def test_schema_violations_name_the_field(change, message):
    e = entry()
    change(e)
    with pytest.raises(E.EntryError, match=message):
        E.validate_entry(e)


def parts(jws: str) -> list[str]:
    return jws.split(".")


def test_jws_round_trip_and_header():
    jws = E.sign_entry(entry(), KEY, kid="key-1")
    header = json.loads(base64.urlsafe_b64decode(parts(jws)[0] + "=="))
    assert header == {"alg": "ES256", "kid": "key-1", "typ": E.JWS_TYP}
    signed = E.parse_signed_entry(jws)
    assert signed.sender == A and signed.parties == (A, B)
    assert len(base64.urlsafe_b64decode(parts(jws)[2] + "==")) == 64
    E.verify_entry_signature(signed, KEY.public_key())
    with pytest.raises(E.EntryError, match="does not verify with the key registered for") as err:
        E.verify_entry_signature(signed, OTHER.public_key())
    assert err.value.code == "BadSignature"


def forge(header: dict | None = None, payload: bytes | None = None, key=KEY) -> str:
    """A JWS with the given header/payload, really signed by ``key`` (so only the check under test fails)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    h = b64(header or {"alg": "ES256", "typ": E.JWS_TYP})
    p = E.b64url(payload if payload is not None else E.canonical_bytes(entry()))
    r, s = decode_dss_signature(key.sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256())))
    return f"{h}.{p}.{E.b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@pytest.mark.parametrize("make, code, message", [
    (lambda: entry(), "Unsigned", "not signed"),
    (lambda: forge()[: forge().rfind(".") + 1], "Unsigned", "empty signature"),
    (lambda: b64({"alg": "none", "typ": E.JWS_TYP}) + "." + E.b64url(E.canonical_bytes(entry())) + ".x",
     "Unsigned", "'none'"),
    (lambda: forge({"alg": "HS256", "typ": E.JWS_TYP}), "MalformedJws", "must be ES256"),
    (lambda: forge({"alg": "ES256"}), "MalformedJws", "'typ'"),
    (lambda: forge({"alg": "ES256", "typ": E.JWS_TYP, "crit": ["b64"]}), "MalformedJws", "'crit' is not allowed"),
    (lambda: forge({"alg": "ES256", "typ": E.JWS_TYP, "jku": "http://evil"}), "MalformedJws", "'jku'"),
    (lambda: "a.b", "MalformedJws", "three base64url parts"),
    (lambda: 42, "MalformedJws", "compact JWS string"),
    (lambda: forge() + "=", "MalformedJws", "base64url"),
    (lambda: forge().replace(".", ".+", 1), "MalformedJws", "base64url"),
    (lambda: forge(payload=b'{"v":1}'), "MalformedEntry", "missing"),
    (lambda: forge(payload=json.dumps(entry()).encode()), "MalformedEntry", "not the RFC 8785 canonical form"),
    (lambda: forge(payload=b"not json"), "MalformedEntry", "not JSON"),
    (lambda: "x" * 5000, "TooLarge", "over the limit"),
])
def test_bad_jws_is_refused_with_a_named_problem(make, code, message):
    with pytest.raises(E.EntryError, match=message) as err:
        E.parse_signed_entry(make())
    assert err.value.code == code


def test_duplicate_header_member_is_refused():
    h = E.b64url(b'{"alg":"none","alg":"ES256","typ":"' + E.JWS_TYP.encode() + b'"}')
    jws = forge()
    with pytest.raises(E.EntryError, match="duplicate"):
        E.parse_signed_entry(h + jws[jws.index("."):])


def test_duplicate_payload_key_is_not_canonical():
    payload = E.canonical_bytes(entry())[:-1] + b',"v":1}'
    with pytest.raises(E.EntryError, match="canonical"):
        E.parse_signed_entry(forge(payload=payload))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_single_character_change_breaks_the_jws(data):
    jws = E.sign_entry(entry(), KEY)
    i = data.draw(st.integers(0, len(jws) - 1))
    c = data.draw(st.sampled_from("ABCabc019-_.="))
    if jws[i] == c:
        return
    tampered = jws[:i] + c + jws[i + 1:]
    try:
        signed = E.parse_signed_entry(tampered)
    except E.EntryError:
        return
    with pytest.raises(E.EntryError):
        E.verify_entry_signature(signed, KEY.public_key())


def test_signing_needs_a_p256_key():
    with pytest.raises(TypeError):
        E.sign_entry(entry(), ec.generate_private_key(ec.SECP384R1()))
    signed = E.parse_signed_entry(E.sign_entry(entry(), KEY))
    with pytest.raises(E.EntryError, match="not a P-256 key"):
        E.verify_entry_signature(signed, ec.generate_private_key(ec.SECP384R1()).public_key())


# --- receipts, consistency, audit state ---------------------------------------------

LOG_KEY = Ed25519PrivateKey.generate()
ORIGIN = "test.hks/clearinghouse"
VKEY = C.verifier_key_string(ORIGIN, LOG_KEY.public_key())


def log_of(n: int) -> tuple[M.MemoryLeafStore, list[bytes]]:
    store = M.MemoryLeafStore()
    leaves = [M.leaf_hash(b"entry %d" % i) for i in range(n)]
    store.extend(leaves)
    return store, leaves


def note(store: M.MemoryLeafStore, size: int | None = None, key=LOG_KEY, origin=ORIGIN) -> str:
    size = store.size if size is None else size
    return C.sign_checkpoint(origin, size, store.root(size), key, origin)


def receipt(store, leaves, index, size=None) -> V.Receipt:
    size = store.size if size is None else size
    return V.Receipt(index, leaves[index], size, note(store, size), tuple(store.inclusion_proof(index, size)))


def test_receipt_verifies_and_round_trips():
    store, leaves = log_of(37)
    r = receipt(store, leaves, 21)
    again = V.Receipt.from_json(json.loads(json.dumps(r.to_json())))
    assert again == r
    cp = V.verify_receipt(again, VKEY, leaf_hash=leaves[21])
    assert cp.size == 37 and cp.root_hash == store.root()


@pytest.mark.parametrize("spoil, message", [
    (lambda r, s, l: V.Receipt(r.leaf_index, r.leaf_hash, r.tree_size, note(s, key=Ed25519PrivateKey.generate()),
                               r.inclusion_proof), "no signature by key"),
    (lambda r, s, l: V.Receipt(r.leaf_index, r.leaf_hash, r.tree_size, note(s, origin="other.log"),
                               r.inclusion_proof), "no signature by key"),
    (lambda r, s, l: V.Receipt(r.leaf_index, r.leaf_hash, 36, r.checkpoint, r.inclusion_proof), "checkpoint is for 37"),
    (lambda r, s, l: V.Receipt(r.leaf_index + 1, r.leaf_hash, r.tree_size, r.checkpoint, r.inclusion_proof),
     "inclusion proof does not verify"),
    (lambda r, s, l: V.Receipt(r.leaf_index, l[3], r.tree_size, r.checkpoint, r.inclusion_proof),
     "different entry"),
    (lambda r, s, l: V.Receipt(r.leaf_index, r.leaf_hash, r.tree_size, r.checkpoint, r.inclusion_proof[:-1]),
     "inclusion proof does not verify"),
])
def test_bad_receipts_are_rejected(spoil, message):
    store, leaves = log_of(37)
    r = receipt(store, leaves, 21)
    with pytest.raises(V.LogVerificationError, match=message):
        V.verify_receipt(spoil(r, store, leaves), VKEY, leaf_hash=leaves[21])


def test_receipt_json_is_strict():
    store, leaves = log_of(5)
    good = receipt(store, leaves, 2).to_json()
    for key, value in [("leafIndex", -1), ("leafIndex", "2"), ("treeSize", 2 ** 64), ("leafHash", "AA=="),
                       ("inclusionProof", "x"), ("inclusionProof", ["not base64!"] ), ("checkpoint", None)]:
        with pytest.raises(V.LogVerificationError):
            V.Receipt.from_json({**good, key: value})


def cp(store, size) -> C.Checkpoint:
    return C.parse_checkpoint(note(store, size))


def test_consistency_checks():
    store, _ = log_of(50)
    V.check_consistency(cp(store, 20), cp(store, 50), store.consistency_proof(20, 50))
    V.check_consistency(cp(store, 0), cp(store, 50), [])
    V.check_consistency(cp(store, 50), cp(store, 50), [])
    with pytest.raises(V.LogVerificationError, match="shrank from 50 to 20") as err:
        V.check_consistency(cp(store, 50), cp(store, 20), [])
    assert err.value.index == 20
    forked, _ = log_of(49)
    forked.append(M.leaf_hash(b"rewritten"))
    with pytest.raises(V.LogVerificationError, match="two different roots"):
        V.check_consistency(cp(store, 50), cp(forked, 50), [])
    rewritten = M.MemoryLeafStore()
    rewritten.extend([M.leaf_hash(b"entry %d" % i) if i != 7 else M.leaf_hash(b"x") for i in range(60)])
    with pytest.raises(V.LogVerificationError, match="not an append-only extension"):
        V.check_consistency(cp(store, 20), cp(rewritten, 60), rewritten.consistency_proof(20, 60))


def test_first_divergence_and_audit_state():
    before = {i: M.leaf_hash(b"%d" % i) for i in range(10)}
    assert V.first_divergence(before, dict(before), 10) is None
    assert V.first_divergence(before, {**before, 4: b"\0" * 32}, 10)[0] == 4
    assert V.first_divergence(before, {k: v for k, v in before.items() if k != 6}, 10) == \
        (6, "entry 6 was in the log before and is missing now")
    assert V.first_divergence(before, before, 8)[0] == 8
    for scope, leaves in [("all", before), ("process", {3: before[3], 9: before[9]})]:
        state = V.AuditState(checkpoint="cp\n", origin=ORIGIN, scope=scope, process_id="p" if scope == "process" else None,
                             leaves=leaves)
        again = V.AuditState.from_json(json.loads(json.dumps(state.to_json())))
        assert again == state
    with pytest.raises(V.LogVerificationError, match="not an audit state"):
        V.AuditState.from_json({"type": "other"})


def test_verify_item_reports_each_problem():
    store = M.MemoryLeafStore()
    jws = [E.sign_entry(entry(sha256=bytes([i]) * 32), KEY) for i in range(6)]
    store.extend(E.parse_signed_entry(j).leaf_hash for j in jws)
    root = store.root()
    keys = {A: KEY.public_key()}

    def item(i, **over):
        base = {"leafIndex": i, "jws": jws[i], "submitter": A,
                "inclusionProof": [V.encode_hash(h) for h in store.inclusion_proof(i)]}
        base.update(over)
        return base

    ok = V.verify_item(item(2), tree_size=6, root=root, keys=keys)
    assert ok.ok and ok.index == 2 and ok.line().startswith("OK   #2 negotiation.agreed")
    cases = [
        (item(2, leafIndex=3), "not in the signed tree at index 3"),
        (item(2, jws=jws[3]), "not in the signed tree at index 2"),
        (item(2, submitter=B), "submitted by"),
        (item(2, leafIndex=9), "not in the tree of size 6"),
        (item(2, jws="garbage"), "not a valid signed entry"),
        (item(2, inclusionProof=["x"]), "inclusion proof"),
    ]
    for it, message in cases:
        verdict = V.verify_item(it, tree_size=6, root=root, keys=keys)
        assert not verdict.ok and message in verdict.reason, (message, verdict)
    assert "other-process" in V.verify_item(item(1), tree_size=6, root=root, keys=keys,
                                            process_id="other-process").reason
    assert "no key for" in V.verify_item(item(1), tree_size=6, root=root, keys={}).reason
    assert "revoked" in V.verify_item(item(1), tree_size=6, root=root, keys={A: "participant revoked"}).reason
    assert "does not verify" in V.verify_item(item(1), tree_size=6, root=root, keys={A: OTHER.public_key()}).reason
    assert V.senders_of([item(0), {"jws": "bad"}]) == {A}
