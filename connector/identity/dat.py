"""Dynamic Attribute Tokens (DATs) from the station authority: fetching our own, verifying peers'.

Outbound (`DatClient`): an OAuth2 ``client_credentials`` request with an RFC 7523 client
assertion signed by the node's enrolled key (``keys/node.key``), scope
``idsc:IDS_CONNECTOR_ATTRIBUTES_ALL`` and ``audience`` = the recipient's id: every DAT names
its one recipient (see README.md in this folder for the design and its threat model). One DAT
per recipient is cached and sent on every call to it until shortly before it expires; a
background task refreshes them ahead of time, and a call that finds its token about to expire
refreshes it itself.

Inbound (`DatVerifier`), in this order, each failure a 401 naming the reason:

1. ``Authorization: Bearer <DAT>`` or a bare token (peers differ); at most 8 KiB.
2. The header's ``alg`` must be one the station publishes in its JWKS (pinned: ``none``
   and every HMAC algorithm are refused whatever the token says); ``kid`` must name a
   published key whose own ``alg`` is that algorithm. An unknown ``kid`` refetches the
   JWKS once (single flight, at most once a second), so a station key rotation is picked up.
3. Signature, then the claims (pure `check_dat_claims`): ``iss`` = the station's issuer
   from its RFC 8414 metadata, ``aud`` is exactly our own id (a participant id, the clearing
   house's audience, the station's issuer; never ``idsc:IDS_CONNECTORS_ALL``),
   ``exp``/``nbf``/``iat`` with 30 s leeway, a lifetime (``exp - iat`` and ``exp - now``) of at
   most `max_lifetime` plus leeway, ``sub`` in ``SKI:keyid:AKI`` form, ``jti``,
   ``@type: ids:DatPayload``.
4. The participant's status at the station (``GET /participants/{id}``): fetched afresh
   for every token not seen before. Tokens already in use are checked against the station's
   revocation feed (``GET /revocations?since=SEQ``, read every second in the background), so
   a revocation is refused within `REVOCATION_WINDOW` (5 s); while the feed cannot be read,
   the status is fetched afresh instead (station unreachable: 503).
5. Under mTLS, the SHA-256 of the peer's certificate must be in ``transportCertsSha256``.
6. ``jti`` replay (see below).

Anything that cannot be completed (station unreachable, JWKS unreadable, replay store
failing) denies: a 503 DSP error (`VerificationUnavailable`), so that a peer's outbox
retries instead of giving the message up.

**What ``jti`` replay protection means here.** A DAT is a bearer token that its holder
legitimately presents on every call for its whole lifetime, so a receiver cannot refuse a
``jti`` it has seen before. The protection is split:

* At the station's token endpoint the *client assertion* is single use: its ``jti`` is
  recorded (persisted in the station database until the assertion expires) and a second
  token request with the same assertion is refused. A captured assertion cannot mint DATs.
* At a receiver a DAT's ``jti`` identifies exactly one token: the first time a ``jti`` is
  accepted it is bound to the SHA-256 of the whole token (and its subject) in a persisted
  store (``identity.db`` in the node directory; kept until the token expires, reloaded at
  start, so a restart does not reopen the window). A different token carrying a ``jti``
  already bound is refused as a replayed ``jti``: a re-issued or re-assembled token
  (for example the same ``jti`` with another subject or validity) is never accepted,
  even with a valid signature.
* Repeats of the identical token are its holder's normal use; they are served from a
  cache of verified tokens (by token, until expiry) which still re-checks expiry, the
  participant's status (after `status_ttl`) and, under mTLS, the transport certificate
  on every request. Theft of a DAT in transit is what mTLS with ``transportCertsSha256``
  binding prevents.
"""
from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import quote, urlparse

import aiohttp
import jwt
import orjson

from ..bodies import BodyTooLarge, read_limited
from ..protocol.errors import ProtocolError, Unauthenticated
from . import Caller
from .jose import ASYMMETRIC_ALGORITHMS, PrivateKey, PublicKey, alg_for_key, key_from_jwk
from .keys import private_database_file
from .pki import is_participant_id
from ..errors import IdentityError

log = logging.getLogger("connector.identity")

DAT_SCOPE = "idsc:IDS_CONNECTOR_ATTRIBUTES_ALL"
#: the IDS "any connector" audience: never accepted by our receivers (a token for everyone can be
#: replayed at everyone); the station issues it only when [tokens] allow_generic_audience is set
GENERIC_AUDIENCE = "idsc:IDS_CONNECTORS_ALL"
#: the longest token lifetime a receiver accepts by default (the station's default lifetime)
DEFAULT_MAX_LIFETIME = 3600
#: a revocation at the station is refused by every receiver within this many seconds
REVOCATION_WINDOW = 5.0
#: how often receivers read the station's revocation feed
REVOCATION_POLL = 1.0
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DAT_TYPE = "ids:DatPayload"
LEEWAY = 30
MAX_TOKEN_BYTES = 8192
MAX_DOC_BYTES = 256 * 1024
#: station claims copied into Caller.claims (the policy engine reads them)
STATION_CLAIMS = ("organisation", "jurisdiction", "membership", "membershipStatus", "roles")

#: SHA-256 (hex) of the client certificate of the request being handled, set by the node's
#: middleware under mTLS; None when the connection has none.
PEER_CERT_SHA256: contextvars.ContextVar[str | None] = contextvars.ContextVar("peer_cert_sha256", default=None)


class VerificationUnavailable(ProtocolError):
    """A check could not be completed (station unreachable, ...): denied, but worth retrying."""

    status = 503
    code = "VerificationUnavailable"


class TokenUnavailable(ProtocolError):
    """This node could not obtain its own DAT from the station."""

    status = 503
    code = "TokenUnavailable"


class TrustUnavailable(IdentityError):
    """The station's metadata, keys or participant status could not be read."""




# ------------------------------------------------------------------ pure parts
def strip_bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("no token: the Authorization header is missing (a Dynamic Attribute Token is required)")
    token = authorization.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    elif token.lower() == "bearer":
        token = ""
    if not token:
        raise Unauthenticated("no token: the Authorization header is empty")
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthenticated(f"malformed token: over {MAX_TOKEN_BYTES} bytes")
    return token


def _number(payload: Mapping[str, Any], name: str) -> float:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unauthenticated(f"malformed token: the '{name}' claim is missing or not a number")
    return float(value)


def check_dat_claims(payload: Mapping[str, Any], *, issuer: str, audience: str, now: float,
                     leeway: float = LEEWAY, max_lifetime: float = DEFAULT_MAX_LIFETIME) -> dict[str, Any]:
    """Check a DAT's claims (its signature already verified). Returns the normalised claims
    for `Caller.claims`; raises Unauthenticated naming the first problem."""
    iss = payload.get("iss")
    if iss != issuer:
        raise Unauthenticated(f"wrong issuer: the token was issued by {str(iss)[:200]!r}, not by the station {issuer!r}")
    aud = payload.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if auds != [audience]:  # exactly one recipient, and it is us: a token for others (or for all) is refused
        raise Unauthenticated(f"wrong audience: the token is for {str(aud)[:200]!r}, not {audience!r}")
    exp, nbf, iat = _number(payload, "exp"), _number(payload, "nbf"), _number(payload, "iat")
    if exp - iat > max_lifetime + leeway or exp - now > max_lifetime + leeway:
        raise Unauthenticated(f"token lifetime too long: it is valid for {int(exp - min(iat, now))} s; "
                              f"at most {int(max_lifetime)} s is accepted")
    if now > exp + leeway:
        raise Unauthenticated(f"expired token: it expired {int(now - exp)} s ago")
    if now + leeway < nbf:
        raise Unauthenticated(f"token not yet valid: valid in {int(nbf - now)} s")
    if now + leeway < iat:
        raise Unauthenticated(f"token not yet valid: issued {int(iat - now)} s in the future")
    sub = payload.get("sub")
    if not is_participant_id(sub):
        raise Unauthenticated("malformed token: 'sub' is not a participant id (SKI:keyid:AKI)")
    jti = payload.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 200:
        raise Unauthenticated("malformed token: the 'jti' claim is missing")
    if payload.get("@type") != DAT_TYPE:
        raise Unauthenticated(f"malformed token: '@type' is not {DAT_TYPE}")
    certs = payload.get("transportCertsSha256", [])
    certs = [certs] if isinstance(certs, str) else certs
    if not isinstance(certs, list) or not all(isinstance(c, str) for c in certs):
        raise Unauthenticated("malformed token: 'transportCertsSha256' is not a list of hashes")
    claims: dict[str, Any] = {k: payload[k] for k in STATION_CLAIMS if k in payload}
    claims["securityProfile"] = payload.get("securityProfile")
    claims["referringConnector"] = payload.get("referringConnector")
    claims["transportCertsSha256"] = [c.lower() for c in certs]
    claims["exp"] = exp
    claims["jti"] = jti
    claims["iss"] = iss
    return claims


def client_assertion(participant_id: str, key: PrivateKey, audience: str, *, now: float,
                     lifetime: int = 60) -> str:
    """RFC 7523 client assertion: iss = sub = participant id, single-use jti."""
    claims = {"iss": participant_id, "sub": participant_id, "aud": audience, "iat": int(now), "nbf": int(now),
              "exp": int(now) + lifetime, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, key, algorithm=alg_for_key(key), headers={"typ": "JWT"})  # type: ignore[arg-type]


def token_request_form(assertion: str, audience: str) -> dict[str, str]:
    """The token request for a DAT whose only audience is `audience` (the recipient's id)."""
    return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion, "scope": DAT_SCOPE, "audience": audience}


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def metadata_url(station_url: str) -> str:
    """RFC 8414 §3: /.well-known/oauth-authorization-server, with the issuer's path appended."""
    parsed = urlparse(station_url.rstrip("/"))
    return f"{parsed.scheme}://{parsed.netloc}/.well-known/oauth-authorization-server{parsed.path}"


# ------------------------------------------------------------- trust sources
class Trust(Protocol):
    """Where a verifier gets the station's issuer, keys and participant status."""

    async def issuer(self) -> str: ...

    async def key(self, kid: str) -> tuple[PublicKey, str] | None: ...

    async def algorithms(self) -> frozenset[str]: ...

    async def status(self, participant_id: str, *, fresh: bool) -> tuple[str, float]: ...


class StationTrust:
    """The station over HTTP: metadata and JWKS cached for `ttl`, participant status for
    `status_ttl`. Failures raise TrustUnavailable (the verifier denies)."""

    def __init__(self, station_url: str, *, ttl: float = 300.0, status_ttl: float = 60.0,
                 clock: Callable[[], float] = time.time, ssl: Any = None) -> None:
        self.station_url = station_url.rstrip("/")
        self.ttl = ttl
        self.status_ttl = status_ttl
        self.clock = clock
        self.ssl = ssl
        self.session: aiohttp.ClientSession | None = None
        self._metadata: tuple[float, dict] | None = None
        self._keys: dict[str, tuple[PublicKey, str]] = {}
        self._keys_at = 0.0
        self._keys_lock = asyncio.Lock()
        self._status: dict[str, tuple[str, float]] = {}
        self._status_flights: dict[str, asyncio.Future] = {}
        # the revocation feed (GET /revocations?since=SEQ): revoked ids, the last sequence read,
        # and when the feed was last read successfully (0: never)
        self.revoked: set[str] = set()
        self._feed_seq = 0
        self._feed_ok_at = 0.0

    def feed_fresh(self, now: float) -> bool:
        """The revocation feed was read recently enough that a revocation not in it is younger
        than the revocation window."""
        return now - self._feed_ok_at < REVOCATION_WINDOW - 2 * REVOCATION_POLL

    async def read_revocations(self) -> None:
        """One read of the station's revocation feed. Raises TrustUnavailable."""
        doc = await self._get(f"{self.station_url}/revocations?since={self._feed_seq}")
        if not isinstance(doc, dict) or not isinstance(doc.get("sequence"), int) \
                or not isinstance(doc.get("revoked"), list):
            raise TrustUnavailable("the station's revocation feed is unreadable")
        if doc["sequence"] < self._feed_seq:  # the station's feed restarted: read it whole next time
            self._feed_seq = 0
            return
        now = self.clock()
        for item in doc["revoked"]:
            pid = item.get("participantId") if isinstance(item, dict) else None
            if isinstance(pid, str) and len(pid) <= 300:
                self.revoked.add(pid)
                self._status[pid] = ("revoked", now)
        self._feed_seq = doc["sequence"]
        self._feed_ok_at = now

    async def run_revocation_feed(self, interval: float = REVOCATION_POLL) -> None:
        """Background: read the revocation feed every `interval` seconds. While it cannot be
        read, verifiers fall back to fetching participants' status afresh (feed_fresh)."""
        warned = False
        while True:
            try:
                await self.read_revocations()
                if warned:
                    log.info("the station's revocation feed is readable again")
                warned = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - TrustUnavailable and the unexpected alike: retried
                if not warned and self.clock() - self._feed_ok_at > REVOCATION_WINDOW:
                    log.warning("the station's revocation feed cannot be read (%s); tokens in use have their "
                                "participant's status fetched afresh until it can", exc)
                    warned = True
            await asyncio.sleep(interval)

    async def start(self) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl) if self.ssl else None,
                                                 timeout=aiohttp.ClientTimeout(total=10))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def _get(self, url: str) -> Any:
        await self.start()
        assert self.session is not None
        try:
            async with self.session.get(url, allow_redirects=False) as resp:
                body = await read_limited(resp, MAX_DOC_BYTES)
                if resp.status == 404:
                    return None
                if resp.status != 200:
                    raise TrustUnavailable(f"{url} answered {resp.status}")
                return orjson.loads(body)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, orjson.JSONDecodeError, BodyTooLarge) as exc:
            raise TrustUnavailable(f"cannot read {url}: {type(exc).__name__}") from None

    async def metadata(self) -> dict:
        now = self.clock()
        if self._metadata and self._metadata[0] > now:
            return self._metadata[1]
        doc = await self._get(metadata_url(self.station_url))
        if not isinstance(doc, dict):
            raise TrustUnavailable("the station's metadata is missing")
        for name in ("issuer", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(name), str):
                raise TrustUnavailable(f"the station's metadata has no {name}")
        if doc["issuer"].rstrip("/") != self.station_url:
            # RFC 8414 §3.3: the issuer must be the URL the metadata was fetched for.
            raise TrustUnavailable(f"the station's metadata names issuer {doc['issuer']!r}, not {self.station_url!r}")
        self._metadata = (now + self.ttl, doc)
        return doc

    async def issuer(self) -> str:
        return (await self.metadata())["issuer"]

    async def token_endpoint(self) -> str:
        return (await self.metadata())["token_endpoint"]

    async def _refresh_keys(self) -> None:
        doc = await self._get((await self.metadata())["jwks_uri"])
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list):
            raise TrustUnavailable("the station's JWKS has no keys")
        found: dict[str, tuple[PublicKey, str]] = {}
        for jwk in keys:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            alg = jwk.get("alg")
            if alg not in ASYMMETRIC_ALGORITHMS or jwk.get("use", "sig") != "sig":
                continue  # never HMAC, never "none", never an encryption key
            try:
                key = key_from_jwk(jwk)
            except Exception:  # noqa: BLE001 - an unreadable key is skipped, not trusted
                continue
            if alg_for_key(key) != alg:
                continue
            found[jwk["kid"]] = (key, alg)
        if not found:
            raise TrustUnavailable("the station's JWKS has no usable signing key")
        self._keys = found
        self._keys_at = self.clock()

    async def _keys_fresh(self, *, unknown_kid: bool = False) -> dict[str, tuple[PublicKey, str]]:
        now = self.clock()
        if self._keys and now - self._keys_at < self.ttl and not unknown_kid:
            return self._keys
        async with self._keys_lock:  # single flight
            now = self.clock()
            stale = not self._keys or now - self._keys_at >= self.ttl
            if stale or (unknown_kid and now - self._keys_at >= 1.0):
                await self._refresh_keys()
        return self._keys

    async def key(self, kid: str) -> tuple[PublicKey, str] | None:
        keys = await self._keys_fresh()
        if kid in keys:
            return keys[kid]
        keys = await self._keys_fresh(unknown_kid=True)  # the station may have rotated its key
        return keys.get(kid)

    async def algorithms(self) -> frozenset[str]:
        return frozenset(alg for _, alg in (await self._keys_fresh()).values())

    async def status(self, participant_id: str, *, fresh: bool) -> tuple[str, float]:
        """(status, when it was read): "active", "revoked" or "unknown"."""
        now = self.clock()
        hit = self._status.get(participant_id)
        if hit and not fresh and now - hit[1] < self.status_ttl:
            return hit
        flight = self._status_flights.get(participant_id)
        if flight is None:
            flight = asyncio.get_running_loop().create_future()
            self._status_flights[participant_id] = flight
            try:
                doc = await self._get(f"{self.station_url}/participants/{quote(participant_id, safe='')}")
                status = "unknown" if doc is None else str(doc.get("status", "unknown"))
                result = (status, self.clock())
                self._status[participant_id] = result
                if len(self._status) > 10000:
                    self._status.pop(next(iter(self._status)))
                flight.set_result(result)
            except BaseException as exc:
                flight.set_exception(exc)
                flight.exception()  # retrieved: no "never retrieved" warning when nobody else waits
                raise
            finally:
                del self._status_flights[participant_id]
            return result
        return await asyncio.shield(flight)

    #: seconds a participant's registered addresses are cached (short: a re-registration shows soon)
    addresses_ttl: float = 30.0

    async def addresses(self, participant_id: str) -> frozenset[str]:
        """The addresses the station has registered for `participant_id` (its ``connectorUrl``),
        cached for `addresses_ttl`. Empty for an unknown or revoked participant or one that
        registered none; raises TrustUnavailable when the station cannot be read."""
        cache: dict[str, tuple[float, frozenset[str]]] = self.__dict__.setdefault("_addresses", {})
        now = self.clock()
        hit = cache.get(participant_id)
        if hit is not None and now - hit[0] < self.addresses_ttl:
            return hit[1]
        doc = await self._get(f"{self.station_url}/participants/{quote(participant_id, safe='')}")
        found: frozenset[str] = frozenset()
        if isinstance(doc, dict) and doc.get("status") == "active":
            url = doc.get("connectorUrl")
            found = frozenset([url]) if isinstance(url, str) and url else frozenset()
        if len(cache) >= 10000:
            cache.pop(next(iter(cache)))
        cache[participant_id] = (now, found)
        return found


# ------------------------------------------------------------- replay store
class ReplayStore(Protocol):
    async def remember(self, jti: str, token_hash: str, subject: str, expires: float) -> bool:
        """Bind jti to this token; False if it is already bound to another token."""
        ...


class MemoryReplayStore:
    """For tests and benchmarks only: not persisted."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, float]] = {}

    async def remember(self, jti: str, token_hash: str, subject: str, expires: float) -> bool:
        bound = self.seen.setdefault(jti, (token_hash, expires))
        return bound[0] == token_hash


class SqliteReplayStore:
    """jti -> token hash, persisted in a small SQLite file (the node's ``identity.db``) until
    the token expires (+ leeway). Loaded into memory at start; only tokens never seen before
    touch the file. Several processes may share the file: the database decides who was first."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._mem: dict[str, tuple[str, float]] = {}
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._writes = 0

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            private_database_file(self.path)  # 0600: it names who called this node, and when
            conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS seen_tokens (jti TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL,"
                         " subject TEXT NOT NULL, expires REAL NOT NULL)")
            conn.execute("CREATE INDEX IF NOT EXISTS seen_tokens_expires ON seen_tokens (expires)")
            self._conn = conn
        return self._conn

    def _load(self) -> None:
        conn = self._open()
        now = self.clock()
        conn.execute("DELETE FROM seen_tokens WHERE expires < ?", (now,))
        self._mem = {jti: (h, exp) for jti, h, exp in conn.execute("SELECT jti, token_sha256, expires FROM seen_tokens")}

    async def open(self) -> None:
        await asyncio.to_thread(self._load)

    def _insert(self, jti: str, token_hash: str, subject: str, expires: float) -> str:
        conn = self._open()
        conn.execute("INSERT OR IGNORE INTO seen_tokens (jti, token_sha256, subject, expires) VALUES (?, ?, ?, ?)",
                     (jti, token_hash, subject, expires))
        row = conn.execute("SELECT token_sha256 FROM seen_tokens WHERE jti = ?", (jti,)).fetchone()
        self._writes += 1
        if self._writes % 256 == 0:
            conn.execute("DELETE FROM seen_tokens WHERE expires < ?", (self.clock(),))
        return row[0]

    async def remember(self, jti: str, token_hash: str, subject: str, expires: float) -> bool:
        bound = self._mem.get(jti)
        if bound is not None:
            return bound[0] == token_hash
        async with self._lock:
            bound_hash = await asyncio.to_thread(self._insert, jti, token_hash, subject, expires + LEEWAY)
        self._mem[jti] = (bound_hash, expires + LEEWAY)
        if len(self._mem) > 100_000:
            now = self.clock()
            self._mem = {k: v for k, v in self._mem.items() if v[1] >= now}
        return bound_hash == token_hash

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)


# ------------------------------------------------------------------ verifier
@dataclass
class _Verified:
    caller: Caller
    exp: float
    certs: frozenset[str]
    status_at: float


class DatVerifier:
    """Verifies DATs (see the module docstring for the checks and their order)."""

    #: while the revocation feed is stale, a cached token's participant status is fetched afresh
    #: when the last check is older than this (so a revocation still takes effect within the window)
    STALE_FEED_STATUS_TTL = REVOCATION_WINDOW - 2 * REVOCATION_POLL

    def __init__(self, trust: Trust, replay: ReplayStore, *, audience: str,
                 leeway: float = LEEWAY, status_ttl: float = 60.0, require_transport_cert: bool = False,
                 clock: Callable[[], float] = time.time, cache_size: int = 10000,
                 max_lifetime: float = DEFAULT_MAX_LIFETIME) -> None:
        if not audience or audience == GENERIC_AUDIENCE:
            raise ValueError("a verifier accepts tokens for its own id only, not for everyone")
        self.trust = trust
        self.replay = replay
        self.audience = audience
        self.max_lifetime = max_lifetime
        self.leeway = leeway
        self.status_ttl = status_ttl
        self.require_transport_cert = require_transport_cert
        self.clock = clock
        self.cache_size = cache_size
        self._cache: dict[str, _Verified] = {}

    async def verify(self, authorization: str | None, *, peer_cert_sha256: str | None = None) -> Caller:
        token = strip_bearer(authorization)
        now = self.clock()
        try:
            hit = self._cache.get(token)
            if hit is None:
                return await self._verify_new(token, now, peer_cert_sha256)
            if now > hit.exp + self.leeway:
                self._cache.pop(token, None)
                raise Unauthenticated(f"expired token: it expired {int(now - hit.exp)} s ago")
            feed_fresh = getattr(self.trust, "feed_fresh", None)
            if feed_fresh is None or feed_fresh(now):
                if feed_fresh is not None and hit.caller.participant_id in self.trust.revoked:  # type: ignore[attr-defined]
                    self._cache.pop(token, None)
                    raise Unauthenticated(f"revoked participant: the station has revoked {hit.caller.participant_id}")
                if now - hit.status_at >= self.status_ttl:
                    hit.status_at = await self._check_status(hit.caller.participant_id, fresh=False)
            elif now - hit.status_at >= self.STALE_FEED_STATUS_TTL:  # the feed is stale: ask the station
                hit.status_at = await self._check_status(hit.caller.participant_id, fresh=True)
            self._check_transport(hit.certs, peer_cert_sha256)
            return hit.caller
        except TrustUnavailable as exc:
            raise VerificationUnavailable(f"the token could not be verified: {exc}") from None

    async def _verify_new(self, token: str, now: float, peer_cert_sha256: str | None) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"malformed token: {exc}") from None
        alg = header.get("alg")
        allowed = await self.trust.algorithms()
        if alg not in allowed:
            raise Unauthenticated(f"algorithm {str(alg)[:20]!r} is not allowed: the station signs with "
                                  f"{', '.join(sorted(allowed))}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("malformed token: the header names no key (kid)")
        found = await self.trust.key(kid)
        if found is None:
            raise Unauthenticated(f"unknown kid: the station publishes no key {kid[:80]!r}")
        key, key_alg = found
        if key_alg != alg:
            raise Unauthenticated(f"algorithm {alg!r} does not match the station key {kid!r} ({key_alg})")
        try:
            payload = jwt.decode(token, key, algorithms=[key_alg], options={  # type: ignore[arg-type]
                "verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False})
        except jwt.InvalidSignatureError:
            raise Unauthenticated(f"bad signature: the token does not verify with the station key {kid!r}") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"malformed token: {exc}") from None
        claims = check_dat_claims(payload, issuer=await self.trust.issuer(), audience=self.audience,
                                  now=now, leeway=self.leeway, max_lifetime=self.max_lifetime)
        sub = payload["sub"]
        status_at = await self._check_status(sub, fresh=True)
        certs = frozenset(claims["transportCertsSha256"])
        self._check_transport(certs, peer_cert_sha256)
        try:
            fresh_jti = await self.replay.remember(claims["jti"], token_sha256(token), sub, claims["exp"])
        except Exception as exc:  # noqa: BLE001 - the check cannot be completed: deny
            log.exception("the replay store failed")
            raise VerificationUnavailable(f"the replay check could not be completed ({type(exc).__name__})") from None
        if not fresh_jti:
            raise Unauthenticated("replayed jti: a different token with this jti was already presented")
        caller = Caller(participant_id=sub, claims=claims)
        if len(self._cache) >= self.cache_size:
            self._cache = {t: v for t, v in self._cache.items() if v.exp + self.leeway >= now}
            while len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
        self._cache[token] = _Verified(caller, claims["exp"], certs, status_at)
        return caller

    async def _check_status(self, participant_id: str, *, fresh: bool) -> float:
        status, at = await self.trust.status(participant_id, fresh=fresh)
        if status == "revoked":
            raise Unauthenticated(f"revoked participant: the station has revoked {participant_id}")
        if status != "active":
            raise Unauthenticated(f"unknown participant: the station does not know {participant_id} as active")
        return at

    def _check_transport(self, certs: frozenset[str], peer_cert_sha256: str | None) -> None:
        if not self.require_transport_cert:
            return
        if peer_cert_sha256 is None:
            raise Unauthenticated("mTLS: the connection presented no client certificate")
        if peer_cert_sha256 not in certs:
            raise Unauthenticated("mTLS: the client certificate's SHA-256 is not in the token's transportCertsSha256")


# -------------------------------------------------------------------- client
@dataclass
class _Held:
    """One cached DAT for one audience."""

    token: str
    exp: float
    refresh_at: float
    used_at: float


class DatClient:
    """Fetches, caches and refreshes this node's DATs: one per audience (the recipient's id),
    at most `max_audiences` of them (the least recently used is dropped), each fetched by a
    single request however many callers want it at once, and refreshed ahead of expiry."""

    def __init__(self, trust: StationTrust, participant_id: str, key: PrivateKey, *,
                 clock: Callable[[], float] = time.time, max_audiences: int = 1024) -> None:
        self.trust = trust
        self.participant_id = participant_id
        self.key = key
        self.clock = clock
        self.max_audiences = max_audiences
        self._held: dict[str, _Held] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: the claims of the newest DAT (as the station issued them; read, not verified)
        self.claims: dict[str, Any] = {}
        #: called with the claims after every new DAT
        self.on_token: list[Callable[[dict[str, Any]], None]] = []

    async def token(self, audience: str) -> str:
        """A DAT whose only audience is `audience`."""
        if not audience or len(audience) > 2000:
            raise TokenUnavailable("no recipient: a token is only issued for one named recipient")
        now = self.clock()
        held = self._held.get(audience)
        if held is not None and now < held.refresh_at:
            held.used_at = now
            return held.token
        lock = self._locks.get(audience)
        if lock is None:
            lock = self._locks[audience] = asyncio.Lock()
        async with lock:  # single flight per audience
            now = self.clock()
            held = self._held.get(audience)
            if held is None or now >= held.refresh_at:
                try:
                    held = await self._fetch(audience)
                except TokenUnavailable:
                    if held is not None and now < held.exp - 5:
                        log.warning("DAT refresh failed; the current token is valid for %d s more", held.exp - now)
                        return held.token
                    raise
            held.used_at = now
            return held.token

    def invalidate(self) -> None:
        """Fetch new tokens on next use (a peer refused ours: clock skew, a rotated key)."""
        for held in self._held.values():
            held.refresh_at = 0.0

    async def _fetch(self, audience: str) -> _Held:
        try:
            endpoint = await self.trust.token_endpoint()
        except TrustUnavailable as exc:
            raise TokenUnavailable(f"the station is unavailable: {exc}") from None
        await self.trust.start()
        assert self.trust.session is not None
        assertion = client_assertion(self.participant_id, self.key, endpoint, now=self.clock())
        try:
            async with self.trust.session.post(endpoint, data=token_request_form(assertion, audience),
                                               allow_redirects=False) as resp:
                body = await read_limited(resp, MAX_DOC_BYTES)
                status = resp.status
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, BodyTooLarge) as exc:
            raise TokenUnavailable(f"cannot reach the station's token endpoint: {type(exc).__name__}") from None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = {}
        if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str):
            why = doc.get("error_description") or doc.get("error") if isinstance(doc, dict) else None
            raise TokenUnavailable(f"the station refused a token ({status}): {str(why or 'no reason given')[:300]}")
        token = doc["access_token"]
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            exp, iat = float(unverified["exp"]), float(unverified.get("iat", self.clock()))
        except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
            raise TokenUnavailable("the station answered with an unreadable token") from None
        lifetime = max(exp - iat, 1.0)
        margin = min(300.0, max(10.0, lifetime / 4))
        now = self.clock()
        held = _Held(token, exp, exp - margin, now)
        if audience not in self._held and len(self._held) >= self.max_audiences:
            oldest = min(self._held, key=lambda a: self._held[a].used_at)
            del self._held[oldest]
            self._locks.pop(oldest, None)
        self._held[audience] = held
        self.claims = unverified
        log.info("obtained a DAT for %s valid for %d s", audience[:200], exp - now)
        for callback in self.on_token:
            try:
                callback(unverified)
            except Exception:  # noqa: BLE001 - a listener's failure is not the token's
                log.exception("a DAT listener failed")
        return held

    async def run_refresher(self) -> None:
        """Background: obtain the station-audience DAT at start (its claims describe us), then
        refresh ahead of expiry every token used within its lifetime; retry with backoff
        when the station is away. Tokens nobody used for a lifetime are dropped, not renewed."""
        delay = 1.0
        first = True
        while True:
            try:
                if first:
                    await self.token(await self.trust.issuer())
                    first = False
                now = self.clock()
                for audience, held in list(self._held.items()):
                    if now >= held.refresh_at:
                        if now - held.used_at > held.exp - held.refresh_at + 3600:
                            self._held.pop(audience, None)
                            self._locks.pop(audience, None)
                        else:
                            await self.token(audience)
                delay = 1.0
                due = min((h.refresh_at for h in self._held.values()), default=now + 60)
                await asyncio.sleep(min(max(due - self.clock(), 1.0), 60.0))
            except (TokenUnavailable, TrustUnavailable) as exc:
                log.warning("could not obtain a DAT: %s (retrying in %.0f s)", getattr(exc, "reason", exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


# ------------------------------------------------------------------ identity
class StationIdentity:
    """The `Identity` of a node enrolled at the station: DATs out, DATs checked in."""

    mode = "station"

    def __init__(self, client: DatClient, verifier: DatVerifier) -> None:
        self.client = client
        self.verifier = verifier
        self.participant_id = client.participant_id

    async def outbound_authorization(self, recipient: str) -> str:
        """The Authorization value for a call to `recipient`: a participant id, the station's
        issuer (registry) or a service audience (the clearing house). Never a URL."""
        return f"Bearer {await self.client.token(recipient)}"

    def invalidate(self) -> None:
        """A peer refused our token (clock skew, a rotated key): fetch new ones next time."""
        self.client.invalidate()

    async def verify(self, authorization: str | None) -> Caller:
        try:
            return await self.verifier.verify(authorization, peer_cert_sha256=PEER_CERT_SHA256.get())
        except ProtocolError as exc:
            log.warning("refused a request's token: %s", exc.reason)
            raise

    async def addresses_of(self, participant_id: str) -> frozenset[str]:
        """Where `participant_id` may be sent anything: the addresses the station has registered
        for it (empty: nowhere). Raises TrustUnavailable when the station cannot be read."""
        return await self.client.trust.addresses(participant_id)
