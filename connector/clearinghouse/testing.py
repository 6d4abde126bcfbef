"""Helpers to run a real clearing-house process and real signing participants (tests, bench, demo).

``ClearingHouseProcess`` runs ``python -m connector clearinghouse run DIR`` on loopback and
waits for its ``listening on URL`` line; ``Participant`` is a participant id with a P-256
key and a dev-mode token, able to sign entries.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from ..identity import DevSharedSecret
from . import config as config_mod
from .entry import make_entry, sign_entry
from .keys import public_pem


#: the audience of test clearing houses (ClearingHouseProcess) and of Participant's tokens
TEST_AUDIENCE = "urn:hks:clearinghouse:test"


class Participant:
    def __init__(self, participant_id: str, shared_secret: str, key: ec.EllipticCurvePrivateKey | None = None,
                 *, audience: str = TEST_AUDIENCE) -> None:
        self.participant_id = participant_id
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.token = "Bearer " + DevSharedSecret(participant_id, shared_secret).token_for(participant_id,
                                                                                          audience=audience)

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.token}

    def entry(self, counterparty: "Participant | str", *, process_id: str | None = None,
              event: str = "negotiation.agreed", provider: bool = True, message: bytes | None = None,
              timestamp: datetime | str | None = None) -> dict:
        other = counterparty if isinstance(counterparty, str) else counterparty.participant_id
        return make_entry(
            process_id=process_id or f"urn:uuid:{secrets.token_hex(16)}", event=event,
            provider=self.participant_id if provider else other, consumer=other if provider else self.participant_id,
            sender=self.participant_id, timestamp=timestamp or datetime.now(timezone.utc),
            sha256=hashlib.sha256(message or secrets.token_bytes(32)).digest())

    def sign(self, entry: dict) -> str:
        return sign_entry(entry, self.key)


class ClearingHouseProcess:
    def __init__(self, directory: Path, *, shared_secret: str, database_url: str | None = None,
                 auditors: Iterable[str] = (), port: int = 0, station_url: str | None = None,
                 env: dict[str, str] | None = None, init: bool = True, audience: str = TEST_AUDIENCE,
                 identity: str = "dev-shared-secret") -> None:
        self.directory = Path(directory)
        self.shared_secret = shared_secret
        self.audience = audience
        if init:
            config_mod.init_directory(self.directory, port=port, shared_secret=shared_secret,
                                      database_url=database_url, auditors=list(auditors), station_url=station_url,
                                      audience=audience, identity=identity)
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.log_path = self.directory / "clearinghouse.log"

    @property
    def settings(self) -> config_mod.ClearingHouseSettings:
        return config_mod.load(self.directory, environ={})

    @property
    def verifier_key(self) -> str:
        return (self.directory / config_mod.PUBLIC_KEY_FILE).read_text(encoding="utf-8").strip()

    @property
    def sqlite_path(self) -> Path:
        url = self.settings.database_url
        assert url.startswith("sqlite"), "not an SQLite clearing house"
        return Path(url.split(":///", 1)[1])

    def trust(self, participant: Participant | str, key: ec.EllipticCurvePublicKey | None = None) -> None:
        pid = participant if isinstance(participant, str) else participant.participant_id
        if key is None:
            assert isinstance(participant, Participant)
            key = participant.key.public_key()
        path = self.directory / config_mod.PARTICIPANTS_DIR / f"{quote(pid, safe=':@')}.pem"
        path.write_bytes(public_pem(key))

    def start(self, extra_env: dict[str, str] | None = None, timeout: float = 30.0) -> "ClearingHouseProcess":
        env = {k: v for k, v in os.environ.items() if k != "CONNECTOR_FAILPOINTS"}
        env.update(self.env)
        env.update(extra_env or {})
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it
        self.proc = subprocess.Popen([sys.executable, "-m", "connector", "clearinghouse", "run", str(self.directory)],
                                     stdout=subprocess.PIPE, stderr=log, env=env)
        log.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.proc.kill()
            self.proc.wait(10)
            raise RuntimeError(f"clearing house did not start: {line!r}; log: {self.log_path.read_text()[-3000:]}")
        self.url = line.split("listening on", 1)[1].strip()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("clearing house did not answer /health")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def size(self) -> int:
        return httpx.get(self.url + "/log", timeout=10).json()["size"]


def fill_log(directory: Path, participants: list[Participant], count: int, *, batch: int = 10_000) -> float:
    """Append ``count`` really signed entries (senders taking turns, four per process) to the stopped
    clearing house in ``directory``, through the service's own append transaction and in big batches:
    a large log in seconds rather than hours of HTTP appends.  Returns the seconds taken."""
    import asyncio

    from .db import open_database
    from .entry import parse_signed_entry
    from . import store

    async def fill() -> float:
        settings = config_mod.load(directory, environ={})
        signer = store.LogSigner(settings.signer_key)
        db = open_database(settings.database_url)
        started = time.perf_counter()
        try:
            await db.migrate(store.MIGRATIONS)
            await db.transaction(store.prepare, signer, time.time())
            for start in range(0, count, batch):
                pending = []
                for i in range(start, min(count, start + batch)):
                    sender = participants[i % len(participants)]
                    other = participants[(i + 1) % len(participants)]
                    signed = parse_signed_entry(sender.sign(sender.entry(
                        other, process_id=f"urn:uuid:filled-{i // 4:08d}-{i % len(participants)}",
                        event="data.accessed")))
                    entry = signed.entry
                    pending.append(store.PendingEntry(
                        leaf_hash=signed.leaf_hash, canonical=signed.canonical.decode(), protected=signed.protected,
                        signature=signed.signature, process_id=signed.process_id, event=entry["event"],
                        provider=entry["provider"], consumer=entry["consumer"], submitter=sender.participant_id))
                await db.transaction(store.append_batch, pending, signer, time.time())
        finally:
            await db.dispose()
        return time.perf_counter() - started

    return asyncio.run(fill())
