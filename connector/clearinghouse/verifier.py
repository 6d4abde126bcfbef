"""ES256 verification of entry signatures, in the event loop or in a worker process.

Every appended entry costs one P-256 signature verification (about 70 us here), and
``cryptography`` holds the GIL while it runs.  With ``workers = 1`` the verifications
that arrive during one turn of the event loop go to a worker process as one message
over a socket pair (no executor thread in the clearing house), so they run on another
core.  If the worker dies, the entries waiting for it fail closed (503, nothing
appended) and a new worker is started.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import struct
from collections import deque
from multiprocessing.connection import Connection

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .entry import EntryError, SignedEntry, b64url_decode, verify_entry_signature
from ..errors import TransparencyLogError

log = logging.getLogger("connector.clearinghouse.verifier")
_ECDSA = ec.ECDSA(hashes.SHA256())
_ITEM = struct.Struct(">HI")  # DER length, signing-input length; then DER, signing input, 64-byte signature


class VerifierUnavailable(TransparencyLogError):
    """The worker process failed; the entry was not checked (and is not appended)."""


def _worker(conn: Connection) -> None:  # pragma: no cover - runs in the worker process
    keys: dict[bytes, ec.EllipticCurvePublicKey] = {}
    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            return
        out = bytearray()
        pos = 0
        while pos < len(msg):
            der_len, si_len = _ITEM.unpack_from(msg, pos)
            pos += _ITEM.size
            der = msg[pos:pos + der_len]
            pos += der_len
            signing_input = msg[pos:pos + si_len]
            pos += si_len
            raw = msg[pos:pos + 64]
            pos += 64
            key = keys.get(der)
            if key is None:
                key = serialization.load_der_public_key(der)
                if len(keys) < 100_000:
                    keys[der] = key
            try:
                key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                           signing_input, _ECDSA)
                out.append(1)
            except InvalidSignature:
                out.append(0)
        conn.send_bytes(bytes(out))


class SignatureVerifier:
    _target = staticmethod(_worker)  # what the worker process runs (tests replace it)

    def __init__(self, workers: int = 0) -> None:
        self.workers = min(workers, 1)
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._pending: list[tuple[bytes, asyncio.Future]] = []
        self._in_flight: deque[list[asyncio.Future]] = deque()
        self._scheduled = False
        self._der: dict[int, tuple[ec.EllipticCurvePublicKey, bytes]] = {}
        self._answered = False  # has the current worker ever answered?

    def start(self) -> None:
        if self.workers:
            self._spawn()

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe(duplex=True)
        self._process = ctx.Process(target=self._target, args=(theirs,), daemon=True, name="ch-verifier")
        self._process.start()
        theirs.close()
        self._conn = ours
        self._answered = False
        asyncio.get_running_loop().add_reader(ours.fileno(), self._on_answer)

    async def close(self) -> None:
        if self._conn is not None:
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(2)
            if self._process.is_alive():
                self._process.kill()
            self._process = None
        self._fail_all()

    async def verify(self, signed: SignedEntry, key: object) -> None:
        """Raise :class:`EntryError` (``BadSignature``) unless ``key`` signed the entry."""
        if self._conn is None or not isinstance(key, ec.EllipticCurvePublicKey) \
                or not isinstance(key.curve, ec.SECP256R1):
            verify_entry_signature(signed, key)  # inline, and the error for a wrong kind of key
            return
        raw = signed.raw_signature or b64url_decode(signed.signature, "the JWS signature")
        if len(raw) != 64:
            raise EntryError(f"an ES256 signature is 64 bytes, this one is {len(raw)}", "BadSignature")
        der = self._der_of(key)
        signing_input = signed.signing_input
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((_ITEM.pack(len(der), len(signing_input)) + der + signing_input + raw, fut))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        if not await fut:
            raise EntryError(f"the entry's signature does not verify with the key registered for {signed.sender}",
                             "BadSignature")

    def _der_of(self, key: ec.EllipticCurvePublicKey) -> bytes:
        cached = self._der.get(id(key))
        if cached is None or cached[0] is not key:
            der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            if len(self._der) > 10_000:
                self._der.clear()
            cached = self._der[id(key)] = (key, der)
        return cached[1]

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        if self._conn is None:
            self._fail([fut for _, fut in batch])
            return
        self._in_flight.append([fut for _, fut in batch])
        try:
            self._conn.send_bytes(b"".join(item for item, _ in batch))
        except OSError:
            self._broken()

    def _on_answer(self) -> None:
        try:
            answer = self._conn.recv_bytes() if self._conn is not None else b""
        except (EOFError, OSError):
            self._broken()
            return
        self._answered = True
        futures = self._in_flight.popleft() if self._in_flight else []
        if len(answer) != len(futures):
            self._fail(futures)
            self._broken()
            return
        for fut, ok in zip(futures, answer):
            if not fut.done():
                fut.set_result(bool(ok))

    def _fail(self, futures: list[asyncio.Future]) -> None:
        for fut in futures:
            if not fut.done():
                fut.set_exception(VerifierUnavailable("signature verification is unavailable"))

    def _fail_all(self) -> None:
        while self._in_flight:
            self._fail(self._in_flight.popleft())
        self._fail([fut for _, fut in self._pending])
        self._pending = []

    def _broken(self) -> None:
        if self._conn is not None:
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
            self._conn.close()
            self._conn = None
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        self._process = None
        self._fail_all()
        if self._answered:
            log.error("the signature verification worker stopped; starting another")
            self._spawn()
        else:  # it died before doing any work (e.g. a __main__ without a main guard): never loop on spawning
            log.error("the signature verification worker could not start; checking signatures in the event loop")
            self.workers = 0
