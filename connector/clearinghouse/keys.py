"""Where the clearing house (and an auditor) gets the public key that must have signed an entry.

``ParticipantKeys.key_for(participant_id)`` returns the participant's P-256 public key
or raises :class:`ParticipantKeyError` (``status`` 403 for unknown or revoked, 503 when
the source cannot be reached: fail closed, never accept an entry unchecked).

* :class:`LocalParticipantKeys`: a JSON file ``{"<participant id>": "<PEM>"}`` or a directory
  of ``<participant id>.pem`` files (the id percent-encoded if it must be); each PEM is a
  public key, a certificate, or (for convenience in development) a node's private key, of
  which only the public half is kept.  Re-read when a participant is not found (at most
  once a second), so nodes can be added while the clearing house runs.
* :class:`StationParticipantKeys`: ``GET {station}/participants/{id}`` of the station
  authority, JSON with the participant's certificate PEM and ``status``; cached for
  ``ttl`` seconds; a revoked participant is refused; with ``ca`` the certificate must
  be issued by the station CA and currently valid.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..bodies import BodyTooLarge, read_limited
from ..errors import TransparencyLogError

log = logging.getLogger("connector.clearinghouse.keys")
MAX_KEY_FILE_BYTES = 64 * 1024
MAX_STATION_RESPONSE_BYTES = 64 * 1024


class ParticipantKeyError(TransparencyLogError):
    status = 403
    code = "UnknownParticipant"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class UnknownParticipant(ParticipantKeyError):
    code = "UnknownParticipant"


class RevokedParticipant(ParticipantKeyError):
    code = "RevokedParticipant"


class KeySourceUnavailable(ParticipantKeyError):
    status = 503
    code = "KeySourceUnavailable"


class ParticipantKeys(Protocol):
    async def key_for(self, participant_id: str) -> ec.EllipticCurvePublicKey: ...


def public_key_from_pem(data: bytes, what: str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from a PEM public key, certificate or private key."""
    key = None
    if b"CERTIFICATE" in data:
        try:
            key = x509.load_pem_x509_certificate(data).public_key()
        except ValueError:
            raise ValueError(f"{what}: not a valid PEM certificate") from None
    elif b"PRIVATE KEY" in data:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError):
            raise ValueError(f"{what}: not a readable unencrypted PEM private key") from None
    else:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise ValueError(f"{what}: not a PEM public key or certificate") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{what}: not a P-256 key (entries are signed with ES256)")
    return key


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class StaticParticipantKeys:
    """A fixed map (tests, and the auditor's ``--keys`` after loading)."""

    def __init__(self, keys: dict[str, ec.EllipticCurvePublicKey]) -> None:
        self.keys = dict(keys)

    async def key_for(self, participant_id: str) -> ec.EllipticCurvePublicKey:
        try:
            return self.keys[participant_id]
        except KeyError:
            raise UnknownParticipant(f"no public key is registered for participant {participant_id}") from None


def load_key_map(path: Path) -> dict[str, ec.EllipticCurvePublicKey]:
    """Read a JSON map or a directory of PEM files (see the module docstring). Raises ValueError."""
    path = Path(path)
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    if path.is_dir():
        for file in sorted(path.glob("*.pem")):
            if file.stat().st_size > MAX_KEY_FILE_BYTES:
                raise ValueError(f"{file}: larger than {MAX_KEY_FILE_BYTES} bytes")
            keys[unquote(file.stem)] = public_key_from_pem(file.read_bytes(), str(file))
        return keys
    if not path.is_file():
        raise ValueError(f"participant keys {path}: no such file or directory")
    if path.stat().st_size > 16 * 1024 * 1024:
        raise ValueError(f"participant keys {path}: larger than 16 MiB")
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"participant keys {path}: not JSON ({exc})") from None
    if not isinstance(table, dict):
        raise ValueError(f"participant keys {path}: must be a JSON object of participant id -> PEM")
    for pid, pem in table.items():
        if not isinstance(pem, str) or len(pem) > MAX_KEY_FILE_BYTES:
            raise ValueError(f"participant keys {path}: the value for {pid!r} must be a PEM string")
        keys[pid] = public_key_from_pem(pem.encode(), f"participant keys {path}: {pid!r}")
    return keys


class LocalParticipantKeys:
    """Public keys from a JSON file or a directory of PEM files.

    Re-read when the file or directory changes (checked at most once a second, so a key
    added or replaced with ``connector clearinghouse trust`` is picked up while running) and
    when a participant is not found (also at most once a second)."""

    RESCAN_SECONDS = 1.0

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp = self._mtime()
        self._keys = load_key_map(self.path)  # a bad file fails at start-up, with its name
        self._checked = time.monotonic()

    def _mtime(self) -> int:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return -1

    def _reload(self) -> None:
        self._stamp = self._mtime()
        try:
            self._keys = load_key_map(self.path)
        except (OSError, ValueError) as exc:  # keep the last good map; say why
            log.error("participant keys not reloaded: %s", exc)

    async def key_for(self, participant_id: str) -> ec.EllipticCurvePublicKey:
        now = time.monotonic()
        due = now - self._checked >= self.RESCAN_SECONDS
        if due:
            self._checked = now
            if self._mtime() != self._stamp:
                self._reload()
        key = self._keys.get(participant_id)
        if key is None and due:
            self._reload()
            key = self._keys.get(participant_id)
        if key is None:
            raise UnknownParticipant(f"no public key is registered for participant {participant_id}")
        return key


class StationParticipantKeys:
    """Certificates from the station authority's registry, cached; revoked participants refused."""

    def __init__(self, station_url: str, *, ttl: float = 300.0, ca_pem: bytes | None = None,
                 timeout: float = 5.0, session: aiohttp.ClientSession | None = None) -> None:
        self.station_url = station_url.rstrip("/")
        self.ttl = ttl
        self.timeout = timeout
        self._ca = x509.load_pem_x509_certificate(ca_pem) if ca_pem else None
        self._session = session
        self._own_session = session is None
        self._cache: dict[str, tuple[float, ec.EllipticCurvePublicKey | ParticipantKeyError]] = {}
        self._inflight: dict[str, asyncio.Future] = {}

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    async def key_for(self, participant_id: str) -> ec.EllipticCurvePublicKey:
        cached = self._cache.get(participant_id)
        if cached is not None and cached[0] > time.monotonic():
            value = cached[1]
        else:
            pending = self._inflight.get(participant_id)
            if pending is None:
                pending = asyncio.ensure_future(self._fetch(participant_id))
                self._inflight[participant_id] = pending
                pending.add_done_callback(lambda _f: self._inflight.pop(participant_id, None))
            value = await asyncio.shield(pending)
        if isinstance(value, ParticipantKeyError):
            raise value
        return value

    async def _fetch(self, participant_id: str):  # noqa: ANN202
        try:
            value = await self._lookup(participant_id)
        except KeySourceUnavailable as exc:
            return exc  # not cached: the next request asks again
        except ParticipantKeyError as exc:
            value = exc
        self._cache[participant_id] = (time.monotonic() + self.ttl, value)
        return value

    async def _lookup(self, participant_id: str) -> ec.EllipticCurvePublicKey:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{self.station_url}/participants/{quote(participant_id, safe='')}"
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                body = await read_limited(resp, MAX_STATION_RESPONSE_BYTES)
                status = resp.status
        except BodyTooLarge:
            raise KeySourceUnavailable(f"the station registry's answer for {participant_id} is over "
                                       f"{MAX_STATION_RESPONSE_BYTES} bytes") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise KeySourceUnavailable(f"the station registry at {self.station_url} cannot be reached: "
                                       f"{type(exc).__name__}") from None
        if status == 404:
            raise UnknownParticipant(f"participant {participant_id} is not registered at the station")
        if status != 200:
            raise KeySourceUnavailable(f"the station registry answered {status} for participant {participant_id}")
        try:
            info = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeySourceUnavailable("the station registry's answer is not JSON") from None
        if not isinstance(info, dict):
            raise KeySourceUnavailable("the station registry's answer is not a JSON object")
        named = info.get("participantId", info.get("participant_id", participant_id))
        if named != participant_id:
            raise KeySourceUnavailable(f"the station registry answered for {named!r}, not {participant_id}")
        status_text = str(info.get("status", "")).lower()
        if status_text == "revoked":
            raise RevokedParticipant(f"participant {participant_id} is revoked at the station")
        if status_text != "active":
            raise UnknownParticipant(f"participant {participant_id} is not active at the station "
                                     f"(status {info.get('status')!r})")
        pem = next((info[k] for k in ("certificate", "certificatePem", "certificate_pem") if k in info), None)
        if not isinstance(pem, str):
            raise KeySourceUnavailable(f"the station registry gave no certificate for {participant_id}")
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            raise KeySourceUnavailable(f"the station registry's certificate for {participant_id} is not PEM") from None
        if self._ca is not None:
            try:
                cert.verify_directly_issued_by(self._ca)
            except (InvalidSignature, ValueError, TypeError):
                raise UnknownParticipant(f"the certificate of {participant_id} is not issued by the station CA") from None
            now = datetime.now(timezone.utc)
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                raise UnknownParticipant(f"the certificate of {participant_id} is not valid now")
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise UnknownParticipant(f"the certificate of {participant_id} does not hold a P-256 key")
        return key
