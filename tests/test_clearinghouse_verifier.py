"""Entry signatures checked in a worker process (same verdicts as in the loop, fail closed when the
worker dies, a replacement afterwards, no spawning loop if a worker cannot start), and participants'
public keys read from a directory or JSON map."""
from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from connector.clearinghouse.entry import EntryError, parse_signed_entry
from connector.clearinghouse.testing import Participant
from connector.clearinghouse.verifier import SignatureVerifier, VerifierUnavailable

A = Participant("urn:hks:participant:a", "s" * 20)
B = Participant("urn:hks:participant:b", "s" * 20)


def signed(by: Participant = A, key=None):
    p = by if key is None else Participant(by.participant_id, "s" * 20, key)
    return parse_signed_entry(p.sign(by.entry(B)))


async def test_worker_gives_the_same_verdicts_as_the_loop():
    for workers in (0, 1):
        verifier = SignatureVerifier(workers)
        verifier.start()
        try:
            good = [signed() for _ in range(50)]
            await asyncio.gather(*(verifier.verify(s, A.key.public_key()) for s in good))  # one batch
            forged = signed(key=ec.generate_private_key(ec.SECP256R1()))
            with pytest.raises(EntryError, match="does not verify") as err:
                await verifier.verify(forged, A.key.public_key())
            assert err.value.code == "BadSignature"
            with pytest.raises(EntryError, match="not a P-256 key"):
                await verifier.verify(good[0], ec.generate_private_key(ec.SECP384R1()).public_key())
            results = await asyncio.gather(*(verifier.verify(s, A.key.public_key()) for s in [good[1], forged, good[2]]),
                                           return_exceptions=True)
            assert results[0] is None and isinstance(results[1], EntryError) and results[2] is None
        finally:
            await verifier.close()


async def test_a_dead_worker_fails_closed_then_is_replaced():
    verifier = SignatureVerifier(1)
    verifier.start()
    try:
        await verifier.verify(signed(), A.key.public_key())
        first = verifier._process
        os.kill(first.pid, signal.SIGKILL)
        outcomes = []
        for _ in range(100):
            try:
                await verifier.verify(signed(), A.key.public_key())
                outcomes.append("ok")
                break
            except VerifierUnavailable:
                outcomes.append("unavailable")
        assert outcomes[-1] == "ok" and set(outcomes) <= {"ok", "unavailable"}
        assert verifier._process is not first and verifier._process.is_alive()
    finally:
        await verifier.close()


async def test_a_worker_that_cannot_start_falls_back_to_the_loop():
    verifier = SignatureVerifier(1)
    verifier._target = sys.exit  # the child exits at once, as with a __main__ that has no main guard
    verifier.start()
    try:
        outcomes = []
        for _ in range(100):
            try:
                await verifier.verify(signed(), A.key.public_key())
                outcomes.append("ok")
                break
            except VerifierUnavailable:
                outcomes.append("unavailable")
        assert outcomes[-1] == "ok" and verifier.workers == 0 and verifier._process is None
        with pytest.raises(EntryError, match="does not verify"):
            await verifier.verify(signed(key=ec.generate_private_key(ec.SECP256R1())), A.key.public_key())
    finally:
        await verifier.close()


async def test_local_keys_follow_the_directory(tmp_path, monkeypatch):
    from connector.clearinghouse import keys as K
    directory = tmp_path / "participants"
    directory.mkdir()
    (directory / "urn:hks:participant:a.pem").write_bytes(K.public_pem(A.key.public_key()))
    clock = [1000.0]
    monkeypatch.setattr(K.time, "monotonic", lambda: clock[0])
    local = K.LocalParticipantKeys(directory)
    assert (await local.key_for(A.participant_id)).public_numbers() == A.key.public_key().public_numbers()
    with pytest.raises(K.UnknownParticipant, match="no public key is registered for participant urn:hks:participant:b"):
        await local.key_for(B.participant_id)
    rotated = ec.generate_private_key(ec.SECP256R1())
    (directory / "urn:hks:participant:b.pem").write_bytes(K.public_pem(B.key.public_key()))
    tmp = directory / "new.tmp"
    tmp.write_bytes(K.public_pem(rotated.public_key()))
    os.replace(tmp, directory / "urn:hks:participant:a.pem")  # a key replaced while running
    clock[0] += 2
    assert (await local.key_for(A.participant_id)).public_numbers() == rotated.public_key().public_numbers()
    assert (await local.key_for(B.participant_id)).public_numbers() == B.key.public_key().public_numbers()
    (directory / "junk.pem").write_text("not a key")
    clock[0] += 2
    assert await local.key_for(B.participant_id)  # a bad file is logged; the last good keys stay
    with pytest.raises(ValueError, match="junk.pem: not a PEM public key"):
        K.LocalParticipantKeys(directory)  # but refused at start-up, naming the file


def test_key_map_from_json_accepts_keys_certificates_and_private_keys(tmp_path):
    import json
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    from connector.clearinghouse import keys as K
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "b")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(B.key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(B.key, hashes.SHA256()))
    table = {
        A.participant_id: K.public_pem(A.key.public_key()).decode(),
        B.participant_id: cert.public_bytes(serialization.Encoding.PEM).decode(),
        "urn:c": ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
    }
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(table))
    loaded = K.load_key_map(path)
    assert set(loaded) == {A.participant_id, B.participant_id, "urn:c"}
    assert loaded[B.participant_id].public_numbers() == B.key.public_key().public_numbers()
    path.write_text(json.dumps({"urn:d": K.public_pem(ec.generate_private_key(ec.SECP384R1()).public_key()).decode()}))
    with pytest.raises(ValueError, match="not a P-256 key"):
        K.load_key_map(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        K.load_key_map(path)
