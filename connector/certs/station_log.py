"""The station logs the certificates it signs at the clearing house itself (issue 14 item 6).

The station's clearing-house identity reuses the participant machinery, no new mechanism:

* an entry-signing P-256 key (``keys/entry.key``) with a certificate from the station's own CA
  (``entry.crt``), so its id is an ordinary ``SKI:keyid:AKI`` participant id;
* ``GET /participants/{that id}`` answers an active record with that certificate, where the
  clearing house (``StationParticipantKeys``, ``StationTrust``) looks a submitter up;
* the station mints its own DAT for the clearing house's audience with its token-signing key
  (what its token endpoint would issue to that record).

Durability: approving a certificate writes its signed log entry to ``station_log_outbox`` in
the same transaction. `LogSender` sends due rows with capped exponential backoff and never gives
up: a row refused by the clearing house (or failing `DEAD_AFTER` times) is marked ``dead``, shown in
the log, ``/metrics`` and ``GET /admin/certificates/log``, and still retried at the cap. Several
station processes on one database take a row under a lease (a fenced conditional update; on
PostgreSQL the candidates are read ``FOR UPDATE SKIP LOCKED``), so an entry is sent by one of them.

The clearing house's settings (``[clearinghouse] url``, ``audience``, ``verifier_key``) are read when
a row is due: while they are unset the station re-reads its configuration file, so a station started
before its clearing house existed picks them up once the operator writes them, without a restart.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ..clearinghouse.client import ClearingHouseClient, ClearingHouseUnavailable, EntryRefused
from ..clearinghouse.entry import make_entry, sign_entry
from ..clearinghouse.verify import LogVerificationError
from ..identity.keys import load_private_key, private_pem, write_public_file, write_secret_file
from ..identity.pki import cert_pem, cert_sha256, load_certificate, make_csr, participant_id, sign_csr
from ..station.store import metadata
from ..station.tokens import dat_claims, sign_dat
from .certificate import LOG_EVENT, process_id

log = logging.getLogger("connector.station.certificates.log")
Json = dict[str, Any]

ENTRY_KEY_FILE = "keys/entry.key"
ENTRY_CERT_FILE = "entry.crt"
#: capped exponential backoff between attempts, seconds
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 300.0
#: consecutive failures after which a row shows as a dead letter (it is still retried)
DEAD_AFTER = 8
REQUEST_TIMEOUT = 10.0
#: a row is leased for longer than one attempt can take, so no other process starts it meanwhile
LEASE_SECONDS = 2 * (REQUEST_TIMEOUT + 2.0)
STATES = ("pending", "sent", "dead")

log_outbox = sa.Table(
    "station_log_outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("serial", sa.Integer, nullable=False, unique=True),  # the certificate's
    sa.Column("jws", sa.Text, nullable=False),  # the signed entry (re-signed only if refused as stale)
    sa.Column("state", sa.String(16), nullable=False, index=True),  # pending | sent | dead
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Column("last_error", sa.String(500)),
    sa.Column("receipt", sa.JSON),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float),
)


@dataclass(frozen=True)
class StationLogIdentity:
    participant_id: str
    key: ec.EllipticCurvePrivateKey
    certificate_pem: str
    certificate_sha256: str
    name: str

    def record(self) -> Json:
        """The participant record the station serves for itself (as `participant_view` reads it)."""
        return {"id": self.participant_id, "name": self.name, "jurisdiction": "HK", "status": "active",
                "security_profile": "idsc:BASE_SECURITY_PROFILE", "membership": ["hks:StationAuthority"],
                "connector_url": None, "certificate_pem": self.certificate_pem,
                "certificate_sha256": self.certificate_sha256, "enrolled_at": None, "revoked_at": None}


def load_identity(directory: Path, name: str, ca_key: ec.EllipticCurvePrivateKey,
                  ca_cert: x509.Certificate) -> StationLogIdentity:
    """The station's entry-signing key and certificate, made on first start (a station made before
    them gets them then; replicas share the directory's files, so one id)."""
    key_path, cert_path = directory / ENTRY_KEY_FILE, directory / ENTRY_CERT_FILE
    if not key_path.is_file():
        key = ec.generate_private_key(ec.SECP256R1())
        write_secret_file(key_path, private_pem(key))
    key = load_private_key(key_path)
    if not cert_path.is_file():
        csr = x509.load_pem_x509_csr(make_csr(key, name))
        cert = sign_csr(csr, ca_key, ca_cert, organisation=f"{name} (clearing-house log)",
                        now=dt.datetime.now(dt.timezone.utc), serial=x509.random_serial_number(), days=3650)
        write_public_file(cert_path, cert_pem(cert).encode())
    cert = load_certificate(cert_path.read_bytes())
    return StationLogIdentity(participant_id(cert), key, cert_pem(cert), cert_sha256(cert), f"{name} (clearing-house log)")


def signed_entry(identity: StationLogIdentity, certificate: str, owner: str, now: float) -> str:
    """The entry for a certificate: sent by the station, its parties the owner and the station."""
    entry = make_entry(process_id=process_id(certificate), event=LOG_EVENT, provider=owner,
                       consumer=identity.participant_id, sender=identity.participant_id,
                       timestamp=dt.datetime.fromtimestamp(now, dt.timezone.utc),
                       sha256=hashlib.sha256(certificate.encode("ascii")).digest())
    return sign_entry(entry, identity.key)


def enqueue(conn: sa.Connection, serial: int, jws: str, now: float) -> None:
    """In the approving transaction: the entry is logged eventually, or the approval did not happen."""
    conn.execute(sa.insert(log_outbox).values(serial=serial, jws=jws, state="pending", attempts=0,
                                              next_attempt_at=now, created_at=now))


def backoff(attempts: int) -> float:
    return min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** max(0, attempts - 1))


def view(row: Json) -> Json:
    return {"id": row["id"], "serial": row["serial"], "state": row["state"], "attempts": row["attempts"],
            "nextAttemptAt": row["next_attempt_at"], "lastError": row["last_error"], "sentAt": row["sent_at"],
            "leafIndex": (row["receipt"] or {}).get("leafIndex")}


class LogSender:
    """Sends the station's outbox to the clearing house (one task per station process)."""

    def __init__(self, station: Any) -> None:
        self.station = station
        self.owner = secrets.token_hex(8)  # this process, in the lease
        self.wake = asyncio.Event()
        self._client: ClearingHouseClient | None = None
        self._said_unconfigured = False
        self._settings_mtime: float | None = None
        #: rows by state as of the last round (the station's /metrics reads it)
        self.counts: dict[str, int] = {st: 0 for st in STATES}

    # -- the clearing house, read lazily ------------------------------------------------
    def _clearinghouse(self) -> ClearingHouseClient | None:
        s = self.station.settings
        self._reread_settings(s)
        if not (s.clearinghouse_url and s.clearinghouse_verifier_key):
            return None
        if self._client is None or self._client.url != s.clearinghouse_url.rstrip("/"):
            self._client = ClearingHouseClient(s.clearinghouse_url, s.clearinghouse_verifier_key,
                                               authorization=self._authorization, timeout=REQUEST_TIMEOUT,
                                               audience=s.clearinghouse_audience or None)
        return self._client

    def _reread_settings(self, s: Any) -> None:
        """The clearing-house settings as station.toml says now: an operator may set or change them
        on a running station (the demo sets them after the station starts)."""
        from ..station import config as station_config
        try:
            mtime = (Path(s.directory) / station_config.CONFIG_FILE).stat().st_mtime
        except OSError:
            return
        if self._settings_mtime is None and s.clearinghouse_url and s.clearinghouse_verifier_key:
            self._settings_mtime = mtime  # what this process was started with (or was given in-process)
            return
        if mtime == self._settings_mtime:
            return
        try:
            fresh = station_config.load(s.directory)
        except Exception as exc:  # noqa: BLE001 - keep the running settings; say why
            log.error("station settings not re-read: %s", exc)
            return
        self._settings_mtime = mtime
        s.clearinghouse_url, s.clearinghouse_audience = fresh.clearinghouse_url, fresh.clearinghouse_audience
        s.clearinghouse_verifier_key = fresh.clearinghouse_verifier_key

    async def _authorization(self, audience: str) -> str:
        """A DAT for the clearing house, minted by the station for its own log identity."""
        st = self.station
        ident = st.log_identity
        claims = dat_claims(ident.record(), issuer=st.settings.issuer, audience=audience, now=time.time(),
                            lifetime=300, transport_certs=[ident.certificate_sha256])
        return "Bearer " + sign_dat(claims, st.active_key, st.active_kid)

    # -- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            self.wake.clear()  # before the round: an approval during it wakes the next one
            try:
                delay = await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the database may be away: try again shortly
                log.exception("sending certificate log entries failed")
                delay = 5.0
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def send_due(self) -> float:
        """Send every due row this process can lease; the seconds until the next is due."""
        client = self._clearinghouse()
        if client is None:
            self.counts = await self.station.db.read(counts)
            waiting = self.counts["pending"] + self.counts["dead"]
            if waiting and not self._said_unconfigured:  # only once something actually waits
                log.warning("%d certificate(s) wait to be logged: no clearing house is configured "
                            "([clearinghouse] url and verifier_key in station.toml)", waiting)
                self._said_unconfigured = True
            return 5.0
        self._said_unconfigured = False
        while True:
            rows = await self.station.db.transaction(self._lease, time.time())
            if not rows:
                break
            for row in rows:
                await self._send(client, row)
        nxt, self.counts = await self.station.db.read(lambda conn: (conn.execute(
            sa.select(sa.func.min(log_outbox.c.next_attempt_at)).where(log_outbox.c.state != "sent")).scalar(),
            counts(conn)))
        return 30.0 if nxt is None else min(30.0, max(0.2, nxt - time.time()))

    def _lease(self, conn: sa.Connection, now: float) -> list[Json]:
        free = sa.or_(log_outbox.c.lease_until.is_(None), log_outbox.c.lease_until < now)
        query = (sa.select(log_outbox).where(log_outbox.c.state != "sent", log_outbox.c.next_attempt_at <= now, free)
                 .order_by(log_outbox.c.id).limit(20))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        taken = []
        for row in conn.execute(query).mappings():
            got = conn.execute(sa.update(log_outbox).where(log_outbox.c.id == row["id"], free)
                               .values(lease_owner=self.owner, lease_until=now + LEASE_SECONDS))
            if got.rowcount == 1:  # SQLite has no row locks: the condition decides who took it
                taken.append(dict(row))
        return taken

    def _fenced(self, row_id: int) -> Any:
        return sa.update(log_outbox).where(log_outbox.c.id == row_id, log_outbox.c.lease_owner == self.owner)

    async def _send(self, client: ClearingHouseClient, row: Json) -> None:
        jws = row["jws"]
        try:
            try:
                receipt = await client.submit(jws)
            except EntryRefused as exc:
                if exc.code != "StaleTimestamp":
                    raise
                jws = await self._resigned(row)  # waited past the log's entry age: the same entry, signed now
                receipt = await client.submit(jws)
        except (EntryRefused, ClearingHouseUnavailable, LogVerificationError) as exc:
            await self._failed(row, jws, exc)
            return
        now = time.time()
        done = await self.station.db.transaction(lambda conn: conn.execute(self._fenced(row["id"]).values(
            state="sent", jws=jws, receipt=receipt.to_json(), sent_at=now, lease_owner=None, lease_until=None,
            last_error=None, attempts=row["attempts"] + 1)).rowcount)
        if done:
            log.info("certificate %d logged at the clearing house at index %d", row["serial"], receipt.leaf_index)
        else:
            log.warning("certificate %d was logged, but this process's lease had passed", row["serial"])

    async def _resigned(self, row: Json) -> str:
        from .station import registrations
        token, owner = (await self.station.db.read(lambda conn: conn.execute(
            sa.select(registrations.c.certificate, registrations.c.participant_id)
            .where(registrations.c.serial == row["serial"])).one()))
        return signed_entry(self.station.log_identity, token, owner, time.time())

    async def _failed(self, row: Json, jws: str, exc: Exception) -> None:
        attempts = row["attempts"] + 1
        # A 401 is the clearing house not (yet) trusting our token, e.g. during a key rotation:
        # retried as an outage, not shown as a dead letter at once.
        refused = isinstance(exc, LogVerificationError) or (isinstance(exc, EntryRefused) and exc.status != 401)
        dead = refused or attempts >= DEAD_AFTER
        state = "dead" if dead else "pending"
        reason = str(exc)[:500]
        now = time.time()
        await self.station.db.transaction(lambda conn: conn.execute(self._fenced(row["id"]).values(
            state=state, jws=jws, attempts=attempts, next_attempt_at=now + backoff(attempts), last_error=reason,
            lease_owner=None, lease_until=None)))
        if dead:
            log.error("certificate %d: log entry is a dead letter after %d attempts (retried every %.0f s): %s",
                      row["serial"], attempts, backoff(attempts), reason)
        else:
            log.warning("certificate %d: log entry not sent (attempt %d, next in %.0f s): %s", row["serial"],
                        attempts, backoff(attempts), reason)


def counts(conn: sa.Connection) -> dict[str, int]:
    found = dict(conn.execute(sa.select(log_outbox.c.state, sa.func.count()).group_by(log_outbox.c.state)).all())
    return {s: int(found.get(s, 0)) for s in STATES}
