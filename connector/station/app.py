"""The station authority process: identity (CA + enrolment), the DAPS-compatible token
service, public participant records and the registry of self-descriptions.

Routes (JSON unless said otherwise):

* ``GET /.well-known/oauth-authorization-server`` — RFC 8414 metadata; ``GET /jwks.json``.
* ``POST /token`` — client_credentials + RFC 7523 client assertion -> a DAT.
* ``GET /ca.crt`` — the station CA certificate (PEM).
* ``GET /participants/{id}`` — public: certificate, status, organisation, jurisdiction.
* ``/admin/participants`` (``Authorization: Bearer <admin token>``): enrol (POST with name,
  jurisdiction, CSR), list, get, ``POST /admin/participants/{id}/revoke``.
* ``POST /registry/self-descriptions`` (DAT; Turtle or N-Triples; ``Hks-Signature``),
  ``GET /registry/self-descriptions/{id}``, ``GET /registry/search`` (DAT or admin token).
"""
from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import hashlib
import hmac
import logging
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import orjson
import sqlalchemy as sa
from aiohttp import web
from cryptography import x509

from ..errors import ApiError
from ..serving import ErrorAnswers, error_middleware, listen, run_process, serve_forever
from ..identity import Caller
from ..identity.dat import DAT_SCOPE, GENERIC_AUDIENCE, DatVerifier, LEEWAY, TrustUnavailable, metadata_url
from ..identity.jose import ASYMMETRIC_ALGORITHMS, signing_jwk, verify_detached
from ..identity.keys import load_any_private_key, load_private_key, private_database_file
from ..identity.pki import (CertificateError, cert_pem, cert_sha256, is_participant_id, load_certificate, load_csr,
                            participant_id as participant_id_of, public_key_sha256, sign_csr)
from ..identity.sd import (IndexError_, JURISDICTION_RE, SECURITY_PROFILES, connector_iri, index_graph, validate)
from ..protocol.errors import ECHO_LIMIT, ProtocolError, clip, echo
from ..metrics import ServiceMetrics
from .. import telemetry
from ..store.db import Database
from .metrics import station_families
from . import registry as reg
from . import registry_index
from . import shared
from .config import CA_CERT_FILE, StationSettings, read_admin_token
from ..certs.station import CertificateRegistry
from ..certs.station_log import LogSender, load_identity
from .store import participants, registry, revocations, seen_tokens, used_assertions
from .tokens import OAuthError, assertion_subject, check_form, dat_claims, sign_dat, verify_assertion

log = logging.getLogger("connector.station")
Json = dict[str, Any]
REGISTRY_MEDIA = {"text/turtle": "turtle", "application/n-triples": "nt"}
MAX_TRIPLES = 50_000
DEFAULT_MEMBERSHIP = ["hks:StationMember"]
ENROL_FIELDS = {"name", "jurisdiction", "csr", "connectorUrl", "securityProfile", "membership", "allowDuplicateName"}
#: control characters (C0, DEL, C1, line and paragraph separators): never in a station text field
#: (a newline in a name would forge a line in the station's log)
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: answered from files alone: no need to read the other processes' changes first
STATIC_PATHS = frozenset({"/.well-known/oauth-authorization-server", "/jwks.json", "/.well-known/jwks.json", "/ca.crt"})
ENROL_ATTEMPTS = 5


def _plain_text(field: str, value: str) -> None:
    if CONTROL_RE.search(value):
        raise ApiError(400, f"{field}: control characters (such as a newline) are not allowed")


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def check_csr_names(csr: x509.CertificateSigningRequest, connector_url: str | None) -> None:
    """The station's rule for subject alternative names: no wildcards, and only the host of the
    participant's connectorUrl (for a loopback host: the loopback names)."""
    try:
        names = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return
    host = (urlparse(connector_url).hostname or "").lower() if connector_url else ""
    allowed = LOOPBACK_NAMES if host in LOOPBACK_NAMES else frozenset({host} if host else ())
    for name in names:
        if isinstance(name, x509.DNSName):
            value = name.value.lower()
            if "*" in value:
                raise ApiError(400, f"csr: wildcard names are not allowed in subject alternative names "
                                    f"({value[:100]!r})", "SanRefused")
        elif isinstance(name, x509.IPAddress):
            value = str(name.value)
        else:
            continue  # not copied into the certificate (sign_csr keeps DNS and IP names only)
        if value not in allowed:
            raise ApiError(400, f"csr: subject alternative name {value[:100]!r} is not the host of the participant's "
                                "connectorUrl (the only host name the station certifies)", "SanRefused")


def iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def participant_view(row: Json) -> Json:
    """The public record (GET /participants/{id}): what the clearing house and peers need."""
    return {
        "participantId": row["id"],
        "organisation": row["name"],
        "jurisdiction": row["jurisdiction"],
        "status": row["status"],
        "securityProfile": row["security_profile"],
        "membership": list(row["membership"]),
        "connectorUrl": row["connector_url"],
        "certificate": row["certificate_pem"],
        "certificateSha256": row["certificate_sha256"],
        "enrolledAt": iso(row["enrolled_at"]),
        "revokedAt": iso(row["revoked_at"]),
    }


class LocalTrust:
    """The station verifying DATs presented to it: its own keys and records, no network."""

    def __init__(self, station: "Station") -> None:
        self.station = station

    async def issuer(self) -> str:
        return self.station.settings.issuer

    async def key(self, kid: str):  # noqa: ANN201
        return self.station.public_keys.get(kid)

    async def algorithms(self) -> frozenset[str]:
        return frozenset(alg for _, alg in self.station.public_keys.values())

    async def status(self, participant_id: str, *, fresh: bool) -> tuple[str, float]:
        row = self.station.participants.get(participant_id)
        return (row["status"] if row else "unknown"), time.time()


class DbReplayStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def remember(self, jti: str, token_hash: str, subject: str, expires: float) -> bool:
        def tx(conn: sa.Connection) -> str:
            existing = conn.execute(sa.select(seen_tokens.c.token_sha256).where(seen_tokens.c.jti == jti)).scalar()
            if existing is None:
                conn.execute(sa.insert(seen_tokens).values(jti=jti, token_sha256=token_hash, subject=subject,
                                                           expires_at=expires + LEEWAY))
                return token_hash
            return existing
        try:
            bound = await self.db.transaction(tx)
        except sa.exc.IntegrityError:  # a concurrent first use: read who won
            bound = await self.db.read(lambda conn: conn.execute(
                sa.select(seen_tokens.c.token_sha256).where(seen_tokens.c.jti == jti)).scalar())
        return bound == token_hash


class Station:
    def __init__(self, settings: StationSettings) -> None:
        self.settings = settings
        d = settings.directory
        self.db = Database(settings.database_url)
        self.ca_key = load_private_key(d / "keys" / "ca.key")
        self.ca_cert = load_certificate((d / CA_CERT_FILE).read_bytes())
        self.ca_pem = cert_pem(self.ca_cert)
        signing = []
        for path in sorted((d / "keys").glob("token-*.key")):
            key = load_any_private_key(path)
            signing.append((signing_jwk(key), key))
        self.jwks = {"keys": [jwk for jwk, _ in signing]}
        self.public_keys = {jwk["kid"]: (key.public_key(), jwk["alg"]) for jwk, key in signing}
        self.active_kid, self.active_key = signing[-1][0]["kid"], signing[-1][1]
        self._admin = read_admin_token(d).encode()
        self.participants: dict[str, Json] = {}
        self.registered: set[str] = set()  # participants with a self-description (the index is in the database)
        self.decisions = registry_index.Decisions()
        # registry calls: tokens for this station only, checked against its own records on every call
        self.verifier = DatVerifier(LocalTrust(self), DbReplayStore(self.db), audience=settings.issuer,
                                    status_ttl=0.0, max_lifetime=settings.token_lifetime)
        self.revocation_feed: list[tuple[int, str]] = []  # (seq, participant id), in order
        self._enrol_lock = asyncio.Lock()
        self.changes = shared.Changes(self)  # other processes' changes (PostgreSQL)
        self._tasks: list[asyncio.Task] = []
        self.metrics = ServiceMetrics("station")
        # the station's own clearing-house identity: it logs the certificates it signs
        self.log_identity = load_identity(d, settings.name, self.ca_key, self.ca_cert)
        self.log_sender = LogSender(self)

    # ---------------------------------------------------------- lifecycle
    async def start(self) -> None:
        url = self.settings.database_url
        if url.startswith("sqlite+aiosqlite:///"):
            private_database_file(Path(url.split(":///", 1)[1]))  # 0600: participants, used assertions
        await self.db.migrate(shared.MIGRATIONS)
        self.changes.seen, rows, entries, feed = await self.db.read(lambda conn: (
            shared.newest(conn),  # first: a change committed during the load is applied again at the next sync
            [dict(r) for r in conn.execute(sa.select(participants)).mappings()],
            [r.participant_id for r in conn.execute(sa.select(registry.c.participant_id))],
            [(r.seq, r.participant_id) for r in conn.execute(sa.select(revocations).order_by(revocations.c.seq))]))
        self.revocation_feed = feed
        self.participants = {r["id"]: r for r in rows}
        self.registered = set(entries)
        self._tasks.append(asyncio.create_task(self._prune(), name="station-prune"))
        self._tasks.append(asyncio.create_task(self.log_sender.run(), name="station-certificate-log"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.log_sender.close()
        await self.db.dispose()

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(600)
            now = time.time()
            try:
                await self.db.transaction(lambda conn: (
                    conn.execute(sa.delete(used_assertions).where(used_assertions.c.expires_at < now)),
                    conn.execute(sa.delete(seen_tokens).where(seen_tokens.c.expires_at < now))))
            except Exception:  # noqa: BLE001 - retried at the next round
                log.exception("pruning expired jtis failed")

    # ------------------------------------------------------------ routes
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.registry_max_bytes,
                              middlewares=[telemetry.middleware(), self.metrics.middleware(),
                                           error_middleware(ErrorAnswers(self.settings.registry_max_bytes,
                                                                         bearer_challenge=True), log),
                                           self._sync])
        iss = urlparse(self.settings.issuer)
        routes = [
            web.get("/.well-known/oauth-authorization-server", self.metadata),
            web.get("/jwks.json", self.jwks_handler),
            web.get("/.well-known/jwks.json", self.jwks_handler),
            web.post("/token", self.token),
            web.get("/ca.crt", self.ca),
            web.get("/participants/{pid}", self.public_participant),
            web.get("/revocations", self.revocations),
            web.post("/admin/participants", self.enrol),
            web.get("/admin/participants", self.list_participants),
            web.get("/admin/participants/{pid}", self.get_participant),
            web.post("/admin/participants/{pid}/revoke", self.revoke),
            web.post("/registry/self-descriptions", self.register),
            web.get("/registry/self-descriptions/{pid}", self.get_self_description),
            web.get("/registry/search", self.search),
            web.get("/health", self.health),
            web.get("/metrics", self.metrics_handler),
            *CertificateRegistry(self).routes(),  # dataset registration certificates (connector/certs)
        ]
        if iss.path not in ("", "/"):
            routes.append(web.get(urlparse(metadata_url(self.settings.issuer)).path, self.metadata))
        app.add_routes(routes)

        async def lifecycle(_app: web.Application):  # noqa: ANN202
            await self.start()
            yield
            await self.stop()

        app.cleanup_ctx.append(lifecycle)
        from ..console.station import mount as mount_console  # the operator console at /console/
        mount_console(app, self)
        return app

    @web.middleware
    async def _sync(self, request: web.Request, handler):  # noqa: ANN001, ANN202
        """Several processes on one PostgreSQL: apply the others' changes before answering."""
        if request.path not in STATIC_PATHS:
            await self.changes.sync()
        return await handler(request)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "issuer": self.settings.issuer,
                                  "participants": len(self.participants), "registered": len(self.registered)})

    async def metrics_handler(self, request: web.Request) -> web.Response:
        """Prometheus metrics (admin token): requests, token checks, participants, registry."""
        self._admin_auth(request)
        return self.metrics.render(station_families(self))

    # --------------------------------------------------------- discovery
    async def metadata(self, request: web.Request) -> web.Response:
        iss = self.settings.issuer
        return web.json_response({
            "issuer": iss,
            "token_endpoint": f"{iss}/token",
            "jwks_uri": f"{iss}/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": sorted(ASYMMETRIC_ALGORITHMS),
            "scopes_supported": [DAT_SCOPE],
            "hks_dat_signing_alg_values_supported": sorted({alg for _, alg in self.public_keys.values()}),
            "hks_participants_endpoint": f"{iss}/participants",
            "hks_registry_endpoint": f"{iss}/registry",
            "hks_ca_certificate": f"{iss}/ca.crt",
        })

    async def jwks_handler(self, request: web.Request) -> web.Response:
        return web.json_response(self.jwks, headers={"Cache-Control": "max-age=300"})

    async def ca(self, request: web.Request) -> web.Response:
        return web.Response(text=self.ca_pem, content_type="application/x-pem-file")

    # ------------------------------------------------------------ tokens
    async def token(self, request: web.Request) -> web.Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        sub = None
        try:
            if request.content_type != "application/x-www-form-urlencoded":
                raise OAuthError("invalid_request", "the token request must be application/x-www-form-urlencoded")
            raw = await _read_limited(request, 16 * 1024)
            try:
                pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=20)
            except (UnicodeDecodeError, ValueError):
                raise OAuthError("invalid_request", "the token request body is not a readable form") from None
            form: dict[str, str] = {}
            for name, value in pairs:
                if name in form:
                    raise OAuthError("invalid_request", f"parameter {echo(name)} is repeated")
                form[name] = value
            assertion = check_form(form)
            audience = self._requested_audience(form)
            sub = assertion_subject(assertion)
            record = self.participants.get(sub)
            if record is None:
                raise OAuthError("invalid_client", f"unknown participant {echo(sub, quote=False)}", 401)
            if record["status"] != "active":
                raise OAuthError("invalid_client", f"participant {echo(sub, quote=False)} is {record['status']}", 401)
            now = time.time()
            key = load_certificate(record["certificate_pem"]).public_key()
            iss = self.settings.issuer
            verified = verify_assertion(assertion, participant_id=sub, key=key,  # type: ignore[arg-type]
                                        audiences=frozenset({f"{iss}/token", iss, iss + "/"}), now=now,
                                        max_lifetime=self.settings.max_assertion_lifetime)
            if not await self._use_assertion(verified.participant_id, verified.jti, verified.expires):
                raise OAuthError("invalid_client", "replayed client assertion: its jti was already used", 401)
            claims = dat_claims(record, issuer=iss, audience=audience, now=now,
                                lifetime=self.settings.token_lifetime, transport_certs=[record["certificate_sha256"]])
            token = sign_dat(claims, self.active_key, self.active_kid)
            return web.json_response({"access_token": token, "token_type": "bearer",
                                      "expires_in": self.settings.token_lifetime, "scope": DAT_SCOPE}, headers=headers)
        except OAuthError as exc:
            log.warning("token request refused (%s): %s", sub or "unidentified client", exc.description)
            return web.json_response({"error": exc.error, "error_description": clip(exc.description)}, status=exc.status,
                                     headers=headers)

    def _requested_audience(self, form: dict[str, str]) -> str:
        """The one recipient the DAT is for (``audience``, or RFC 8707 ``resource``): an active
        participant, this station (registry calls) or a configured service; else invalid_target."""
        given = {form[name] for name in ("audience", "resource") if name in form}
        if not given:
            raise OAuthError("invalid_target", "name the token's recipient: audience (or resource) is required, "
                                               "the participant id, service or station the token is for")
        if len(given) > 1:
            raise OAuthError("invalid_target", "audience and resource name different recipients: a token has one")
        audience = given.pop()
        if audience == self.settings.issuer or audience in self.settings.service_audiences:
            return audience
        if audience == GENERIC_AUDIENCE and self.settings.allow_generic_audience:
            return audience
        record = self.participants.get(audience)
        if record is not None and record["status"] == "active":
            return audience
        raise OAuthError("invalid_target", f"no token for {audience[:200]!r}: the recipient must be an active "
                                           "participant, this station or a service the station names")

    async def _use_assertion(self, participant_id: str, jti: str, expires: float) -> bool:
        key = hashlib.sha256(f"{participant_id}\0{jti}".encode()).hexdigest()
        try:
            await self.db.transaction(lambda conn: conn.execute(
                sa.insert(used_assertions).values(key=key, expires_at=expires + LEEWAY)))
        except sa.exc.IntegrityError:
            return False
        return True

    # ------------------------------------------------------------- admin
    def _admin_auth(self, request: web.Request) -> None:
        given = request.headers.get("Authorization", "")
        if given[:7].lower() == "bearer ":
            given = given[7:].strip()
        if not given or not hmac.compare_digest(given.encode(), self._admin):
            raise ApiError(401, "missing or wrong admin token (Authorization: Bearer <admin token>)", "Unauthenticated")

    async def enrol(self, request: web.Request) -> web.Response:
        self._admin_auth(request)
        doc = await _json_body(request, 64 * 1024)
        unknown = sorted(set(doc) - ENROL_FIELDS)
        if unknown:
            raise ApiError(400, f"unknown field {echo(unknown[0])} (known: {', '.join(sorted(ENROL_FIELDS))})")
        name = doc.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ApiError(400, "name: the organisation name is required (1-200 characters)")
        _plain_text("name", name)
        allow_duplicate = doc.get("allowDuplicateName", False)
        if not isinstance(allow_duplicate, bool):
            raise ApiError(400, "allowDuplicateName must be true or false")
        jurisdiction = doc.get("jurisdiction")
        if not isinstance(jurisdiction, str) or not JURISDICTION_RE.fullmatch(jurisdiction):
            raise ApiError(400, "jurisdiction: an ISO 3166 code or a station code such as HK, MO or CN-GD-SZ is required")
        profile = doc.get("securityProfile", "idsc:BASE_SECURITY_PROFILE")
        if profile not in SECURITY_PROFILES:
            raise ApiError(400, f"securityProfile must be one of {', '.join(SECURITY_PROFILES)}")
        membership = doc.get("membership", DEFAULT_MEMBERSHIP)
        if (not isinstance(membership, list) or not membership or len(membership) > 20
                or not all(isinstance(m, str) and 0 < len(m) <= 200 for m in membership)):
            raise ApiError(400, "membership must be a non-empty list of up to 20 strings, e.g. [\"hks:StationMember\"]")
        for m in membership:
            _plain_text("membership", m)
        connector_url = doc.get("connectorUrl")
        if connector_url is not None:
            parsed = urlparse(connector_url) if isinstance(connector_url, str) else None
            if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc or len(connector_url) > 2000:
                raise ApiError(400, "connectorUrl must be the node's public http(s) URL")
            _plain_text("connectorUrl", connector_url)
            if any(c.isspace() for c in connector_url):
                raise ApiError(400, "connectorUrl: white space is not allowed")
            connector_url = connector_iri(connector_url)
        csr_text = doc.get("csr")
        if not isinstance(csr_text, str):
            raise ApiError(400, "csr: a PEM certificate signing request is required")
        try:
            csr = load_csr(csr_text)
        except CertificateError as exc:
            raise ApiError(400, f"csr: {exc}") from None
        key_hash = public_key_sha256(csr.public_key())  # type: ignore[arg-type]
        async with self._enrol_lock:
            for _ in range(ENROL_ATTEMPTS):
                row = await self._enrol_once(csr, key_hash, name, jurisdiction, profile, membership, connector_url,
                                             allow_duplicate)
                if row is not None:
                    break
                await self.changes.sync()  # another process enrolled or revoked meanwhile: decide again
            else:
                raise ApiError(503, "the station's records changed during every attempt; try again", "Busy")
            await self.changes.sync()
        log.info("enrolled participant %s (%s, %s)", row["id"], row["name"], jurisdiction)
        return web.json_response({**participant_view(row), "caCertificate": self.ca_pem}, status=201)

    async def _enrol_once(self, csr: x509.CertificateSigningRequest, key_hash: str, name: str, jurisdiction: str,
                          profile: str, membership: list[str], connector_url: str | None,
                          allow_duplicate: bool) -> Json | None:
        """Check and enrol against this process's records; None if they were stale (PostgreSQL)."""
        existing = next((p for p in self.participants.values() if p["public_key_sha256"] == key_hash), None)
        if existing is not None:
            raise ApiError(409, f"this key is already enrolled as participant {existing['id']}", "Conflict")
        check_csr_names(csr, connector_url)
        same_name = next((p for p in self.participants.values() if _name_key(p["name"]) == _name_key(name)), None)
        if same_name is not None and not allow_duplicate:
            raise ApiError(409, f"an organisation named {same_name['name'][:200]!r} is already enrolled as "
                                f"{same_name['id']}; set allowDuplicateName to enrol another", "DuplicateName")
        now = time.time()
        cert = sign_csr(csr, self.ca_key, self.ca_cert, organisation=name.strip(),
                        now=dt.datetime.fromtimestamp(now, dt.timezone.utc), serial=x509.random_serial_number(),
                        days=self.settings.certificate_days)
        row = {
            "id": participant_id_of(cert), "name": name.strip(), "jurisdiction": jurisdiction, "status": "active",
            "security_profile": profile, "membership": membership, "connector_url": connector_url,
            "certificate_pem": cert_pem(cert), "certificate_sha256": cert_sha256(cert),
            "public_key_sha256": key_hash, "enrolled_at": now, "revoked_at": None, "revocation_reason": None,
        }
        if row["id"] in self.participants:
            raise ApiError(409, f"participant {row['id']} is already enrolled", "Conflict")

        def insert(conn: sa.Connection) -> bool:
            shared.lock(conn)
            try:
                shared.check_fresh(conn, self.changes.seen)
            except shared.StaleState:
                return False
            conn.execute(sa.insert(participants).values(**row))
            shared.record(conn, row["id"], now)
            return True

        if not await self.db.transaction(insert):
            return None
        self.participants[row["id"]] = row
        return row

    async def list_participants(self, request: web.Request) -> web.Response:
        self._admin_auth(request)
        status = request.query.get("status")
        if status not in (None, "active", "revoked"):
            raise ApiError(400, "status must be active or revoked")
        rows = sorted(self.participants.values(), key=lambda r: r["enrolled_at"])
        return web.json_response([participant_view(r) for r in rows if status is None or r["status"] == status])

    def _find(self, request: web.Request) -> Json:
        pid = request.match_info["pid"]
        row = self.participants.get(pid) if is_participant_id(pid) else None
        if row is None:
            raise ApiError(404, f"no participant {echo(pid[:200])}", "NotFound")
        return row

    async def get_participant(self, request: web.Request) -> web.Response:
        self._admin_auth(request)
        return web.json_response(participant_view(self._find(request)))

    async def public_participant(self, request: web.Request) -> web.Response:
        if request.match_info["pid"] == self.log_identity.participant_id:  # the station, as the log's submitter
            row = self.log_identity.record()
        else:
            row = self._find(request)
        return web.json_response(participant_view(row), headers={"Cache-Control": "no-cache"})

    async def revoke(self, request: web.Request) -> web.Response:
        self._admin_auth(request)
        row = self._find(request)
        doc = await _json_body(request, 16 * 1024, allow_empty=True)
        reason = doc.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
            raise ApiError(400, "reason must be a string of at most 1000 characters")
        if reason is not None:
            _plain_text("reason", reason)
        if set(doc) - {"reason"}:
            raise ApiError(400, f"unknown field {sorted(set(doc) - {'reason'})[0]!r} (known: reason)")
        if row["status"] == "revoked":
            return web.json_response(participant_view(row))
        now = time.time()

        def tx(conn: sa.Connection) -> int | None:
            shared.lock(conn)
            if conn.execute(sa.select(participants.c.status).where(participants.c.id == row["id"])).scalar() == "revoked":
                return None  # another station process revoked it first
            conn.execute(sa.update(participants).where(participants.c.id == row["id"])
                         .values(status="revoked", revoked_at=now, revocation_reason=reason))
            seq = conn.execute(sa.insert(revocations).values(participant_id=row["id"], revoked_at=now)
                               .returning(revocations.c.seq)).scalar_one()
            conn.execute(sa.delete(registry).where(registry.c.participant_id == row["id"]))
            registry_index.delete_entry(conn, row["id"])
            shared.record(conn, row["id"], now)
            return seq

        seq = await self.db.transaction(tx)
        if seq is None:
            await self.changes.sync()
            return web.json_response(participant_view(self._find(request)))
        if not self.changes.enabled:  # with other processes the feed grows only in order, from the database
            self.revocation_feed.append((seq, row["id"]))
        row.update(status="revoked", revoked_at=now, revocation_reason=reason)
        self.registered.discard(row["id"])  # (its index rows went in the same transaction)
        await self.changes.sync()
        log.warning("revoked participant %s (%s)", row["id"], row["name"])
        return web.json_response(participant_view(row))

    async def revocations(self, request: web.Request) -> web.Response:
        """Public and cheap: the participants revoked after sequence number ``since``, and the
        newest sequence number. Receivers poll it every second or two."""
        raw = request.query.get("since", "0")
        if not raw.isdigit() or len(raw) > 18:
            raise ApiError(400, "since must be a sequence number (a non-negative integer)")
        since = int(raw)
        feed = self.revocation_feed
        newer = feed[bisect.bisect_right(feed, (since, "\U0010ffff")):][:1000]
        sequence = newer[-1][0] if newer else (feed[-1][0] if feed else 0)
        return web.json_response({"sequence": sequence, "revoked": [{"participantId": p, "seq": s} for s, p in newer]},
                                 headers={"Cache-Control": "no-cache"})

    # ---------------------------------------------------------- registry
    async def _caller(self, request: web.Request, *, admin_ok: bool = False) -> Caller:
        header = request.headers.get("Authorization")
        if admin_ok and header:
            given = header[7:].strip() if header[:7].lower() == "bearer " else header.strip()
            if hmac.compare_digest(given.encode(), self._admin):
                return Caller("station-admin", {})
        try:
            return await self.metrics.checked(self.verifier.verify(header))
        except ProtocolError as exc:
            raise ApiError(exc.status, exc.reason, exc.code) from None
        except TrustUnavailable as exc:  # pragma: no cover - local trust does not fail
            raise ApiError(503, str(exc), "VerificationUnavailable") from None

    async def register(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        record = self.participants.get(caller.participant_id)
        if record is None or record["status"] != "active":
            raise ApiError(401, f"participant {echo(caller.participant_id, quote=False)} is not active", "Unauthenticated")
        fmt = REGISTRY_MEDIA.get(request.content_type)
        if fmt is None:
            raise ApiError(415, f"register the self-description as {' or '.join(REGISTRY_MEDIA)}, "
                                f"not {echo(request.content_type)}", "UnsupportedMediaType")
        signature = request.headers.get("Hks-Signature", "")
        if not signature or len(signature) > 4096:
            raise ApiError(400, "bad signature: the Hks-Signature header (a detached JWS) is missing", "BadSignature")
        body = await _read_limited(request, self.settings.registry_max_bytes)
        cert = load_certificate(record["certificate_pem"])
        try:
            header = verify_detached(signature, body, cert.public_key())  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - jwt errors and malformed input alike
            raise ApiError(400, f"bad signature: the self-description's signature does not verify with the "
                                f"participant's enrolled key ({type(exc).__name__})", "BadSignature") from None
        if header.get("kid") != caller.participant_id:
            raise ApiError(400, "bad signature: the signature's kid is not the participant id", "BadSignature")
        graph, report = await asyncio.to_thread(_parse_and_validate, body, fmt)
        if graph is None:
            raise ApiError(400, f"the self-description is not valid {request.content_type}: {report}", "MalformedDocument")
        if not report.conforms:
            raise ApiError(400, "the self-description does not conform to the station's shapes", "ShapesViolated",
                           report=_report_view(report))
        try:
            index = index_graph(graph)
            reg.check_against_record(index, record, caller, self.settings.issuer)
        except (IndexError_, reg.RegistrationRefused) as exc:
            raise ApiError(400, str(exc), "Refused") from None
        etag = hashlib.sha256(body).hexdigest()[:32]
        row = {"participant_id": caller.participant_id, "media_type": request.content_type,
               "document": body.decode("utf-8"), "signature": signature, "etag": etag,
               "index": index.to_dict(), "registered_at": time.time()}
        index_rows = await asyncio.to_thread(registry_index.rows_for, row["index"], self.decisions)

        def upsert(conn: sa.Connection) -> bool | None:
            shared.lock(conn)
            status = conn.execute(sa.select(participants.c.status)
                                  .where(participants.c.id == row["participant_id"])).scalar()
            if status != "active":
                return None  # revoked by another station process since this one synchronised
            shared.record(conn, row["participant_id"], row["registered_at"])
            existed = conn.execute(sa.delete(registry).where(registry.c.participant_id == row["participant_id"])).rowcount
            conn.execute(sa.insert(registry).values(**row))
            registry_index.delete_entry(conn, row["participant_id"])
            registry_index.write_entry(conn, index_rows)
            return bool(existed)

        existed = await self.db.transaction(upsert)
        if existed is None:
            raise ApiError(401, f"participant {echo(caller.participant_id, quote=False)} is not active", "Unauthenticated")
        self.registered.add(caller.participant_id)
        await self.changes.sync()
        log.info("registered the self-description of %s (%d triples, %d offers)", caller.participant_id,
                 len(graph), len(index.offers))
        return web.json_response({"participantId": caller.participant_id, "etag": etag, "triples": len(graph),
                                  "offers": len(index.offers)}, status=200 if existed else 201)

    async def get_self_description(self, request: web.Request) -> web.Response:
        await self._caller(request, admin_ok=True)
        pid = request.match_info["pid"]
        row = await self.db.read(lambda conn: conn.execute(
            sa.select(registry).where(registry.c.participant_id == pid)).mappings().first())
        if row is None:
            raise ApiError(404, f"no self-description registered for {echo(pid[:200])}", "NotFound")
        return web.Response(text=row["document"], content_type=row["media_type"],
                            headers={"Hks-Signature": row["signature"], "ETag": f'"{row["etag"]}"'})

    async def search(self, request: web.Request) -> web.Response:
        caller = await self._caller(request, admin_ok=True)
        try:
            query = reg.parse_query(dict(request.query))
        except reg.QueryError as exc:
            raise ApiError(400, str(exc)) from None
        # (no transaction on PostgreSQL: a search is read-only, and each of its statements saw only what
        # was committed before it in a read-committed transaction too)
        results = await self.db.read_committed(registry_index.search_json, query, caller, self.decisions,
                                               dt.datetime.now(dt.timezone.utc))
        return web.Response(body=registry_index.answer(results), content_type="application/json")


def _parse_and_validate(body: bytes, fmt: str):  # noqa: ANN202
    from rdflib import Graph

    try:
        graph = Graph().parse(data=body.decode("utf-8"), format=fmt)
    except Exception as exc:  # noqa: BLE001 - any parser error is the document's
        return None, f"{type(exc).__name__}: {echo(str(exc))}"
    if len(graph) > MAX_TRIPLES:
        return None, f"over {MAX_TRIPLES} triples"
    return graph, validate(graph)


MAX_REPORTED_RESULTS = 20


def _report_view(report: Any) -> Json:
    """The SHACL report for the error body: the first results, each value cut to ECHO_LIMIT
    characters (focus nodes and messages come from the submitted document)."""
    results = [{k: clip(str(v), ECHO_LIMIT) for k, v in r.items()} for r in report.results[:MAX_REPORTED_RESULTS]]
    return {"conforms": report.conforms, "results": results, "resultCount": len(report.results)}


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the body is {request.content_length} bytes; the limit is {limit}", "PayloadTooLarge")
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"the body is over the limit of {limit} bytes", "PayloadTooLarge")
    return bytes(data)


async def _json_body(request: web.Request, limit: int, *, allow_empty: bool = False) -> Json:
    raw = await _read_limited(request, limit)
    if not raw.strip() and allow_empty:
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "the body must be a JSON object")
    return doc


async def serve(settings: StationSettings, *, ready_line: bool = True) -> None:
    station = Station(settings)
    runner, url = await listen(station.make_app(), settings.listen_host, settings.listen_port)
    if ready_line:
        print(f"listening on {url}", flush=True)
    await serve_forever(runner)


def run(settings: StationSettings) -> None:
    run_process(serve(settings), telemetry=("connector-station", settings.telemetry))

