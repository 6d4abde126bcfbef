"""Entry signatures checked in a worker process: same verdicts as in the loop, fail closed when the
worker dies, a replacement afterwards, and no spawning loop if a worker cannot start."""
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
