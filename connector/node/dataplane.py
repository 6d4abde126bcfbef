"""The data plane: the agreement's policy is decided again on every access, the use
is counted atomically, duties are performed before a byte leaves, and the data
streams with bounded memory (HTTP pull, HTTP push, file and HTTP upstream sources)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import urlparse

import aiohttp
import orjson
import sqlalchemy as sa
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Connection

from ..bodies import BodyTooLarge, read_limited
from ..identity import Caller
from ..identity.keys import load_private_key
from ..policy import Context, Request
from ..protocol.errors import echo
from ..protocol.messages import endpoint_property
from ..protocol.negotiation import Role
from ..protocol.transfer import TransferEvent, TransferState
from ..store.tables import access_log, agreements, assets, received_data, transfers, usage_counters
from .transform import Modification, TransformError, kind_of, modification_from_duties, transformer
from .destinations import DestinationRefused, forbidden, parse_destination
from .transfers import AGREEMENT_WITH_ACCESS, PULL, PUSH
from .usage import ACCESS_DENIED, DECIDED_AT_USE, PolicyCache, access_denied_text, access_refusal, claims_context

log = logging.getLogger("connector.dataplane")
Json = dict[str, Any]
CHUNK = 256 * 1024  # measured here: large blocking reads beat per-chunk thread hops
HTTP_ENDPOINT_TYPE = "https://w3id.org/idsa/v4.1/HTTP"
# Duties the provider's connector performs itself before release; any other
# before-release duty cannot be performed, so the access is refused (fail closed).
PERFORMED_HERE = frozenset({"drop-fields", "pseudonymise-fields", "inform", "notify", "attribute", "attribution"})

#: how often a stream in flight reads its transfer's state again (seconds)
REVOCATION_CHECK = 0.25
_STATE = sa.select(transfers.c.state).where(transfers.c.id == sa.bindparam("b_tid"))
_USES_LOCKED = sa.select(usage_counters.c.uses).where(usage_counters.c.agreement_id == sa.bindparam("b_aid"))
_AGREEMENT = AGREEMENT_WITH_ACCESS.where(agreements.c.id == sa.bindparam("b_aid"))
_BY_ID = sa.select(transfers).where(transfers.c.id == sa.bindparam("b_tid"), transfers.c.role == Role.PROVIDER.value)
_BY_TOKEN = sa.select(transfers).where(transfers.c.token_hash == sa.bindparam("b_hash"),
                                       transfers.c.role == Role.PROVIDER.value)
# The tokens this node checks, a provider's pull token and a consumer's push token, are 32 bytes
# of HMAC under the node key, base64url. node.db never holds one: it keeps a placeholder with the
# nonce the token is derived from (in the outbox and, for a push, the consumer's transfer row) and,
# for a pull, the token's SHA-256 to look it up by. The dispatcher derives the token on the wire.
PULL_TOKEN_PLACEHOLDER = "__HKS_PULL_TOKEN__"
PUSH_TOKEN_PLACEHOLDER = "__HKS_PUSH_TOKEN__"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_PLACEHOLDER_RE = re.compile(rb"__HKS_(PULL|PUSH)_TOKEN__([A-Za-z0-9_-]{22})")


NO_DATA_ADDRESS = "the asset has no data address: there is nothing this node could deliver"


def _has_source(asset: Json) -> bool:
    return (asset.get("data_address") or {}).get("type") in ("file", "http")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessRefused(Exception):
    def __init__(self, status: int, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.status = status
        self.reasons = reasons
        self.pending: list = []  # log entries queued in the outbox with the refusal


@dataclass
class Grant:
    transfer: Json
    asset: Json
    modification: Modification
    duties: list = field(default_factory=list)
    access_id: int | None = None
    log_jws: str | None = None  # a logging duty: this entry must be accepted before any byte leaves
    pending: list = field(default_factory=list)  # log entries queued in the outbox


def derive_key(key_path: Path, purpose: str) -> bytes:
    """A secret for one purpose, derived from the node's private key (no extra key file)."""
    private = load_private_key(key_path).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(private)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DataPlane:
    def __init__(self, node: Any) -> None:
        self.node = node
        settings = node.settings
        self.data_root = Path(settings.dataplane_data_root).resolve()
        self.upstream_hosts = {h.lower() for h in settings.dataplane_upstream_hosts}
        self.token_ttl = settings.dataplane_token_ttl
        key_path = settings.directory / "keys" / "node.key"
        self._token_key = derive_key(key_path, "hks-dataplane-token")
        self._pseudonym_key = derive_key(key_path, "hks-pseudonymise")
        self.received_dir = settings.directory / "received"
        self.policies: PolicyCache = node.catalog.policies
        self._tasks: set[asyncio.Task] = set()
        # Streams in flight (pull and push), by transfer: set when this process commits a state other
        # than STARTED. Bounded by the streams in flight; what decides is the transfer's state in the
        # database, read again during a stream at most every REVOCATION_CHECK seconds, so a suspension
        # committed by another replica stops the stream too.
        self._streams: dict[str, asyncio.Event] = {}

    # ------------------------------------------------------------- sources
    def check_data_address(self, address: Json) -> Json:
        """Validate an asset's data address when the asset is created. Raises ValueError."""
        kind = address.get("type")
        if kind == "file":
            path = address.get("path")
            if not isinstance(path, str) or not path:
                raise ValueError("dataAddress: a file source needs a 'path' relative to the data root")
            self._file_path(path)
            return {"type": "file", "path": path}
        if kind == "http":
            url = address.get("url")
            if not isinstance(url, str):
                raise ValueError("dataAddress: an http source needs a 'url'")
            self._check_upstream(url)
            return {"type": "http", "url": url}
        raise ValueError("dataAddress: 'type' must be 'file' or 'http'")

    def _file_path(self, relative: str) -> Path:
        candidate = (self.data_root / relative).resolve()
        if candidate != self.data_root and self.data_root not in candidate.parents:
            raise ValueError(f"dataAddress: path {echo(relative)} is outside the data root")
        return candidate

    def _check_upstream(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("dataAddress: the url must be http(s)")
        if parsed.hostname.lower() not in self.upstream_hosts:
            raise ValueError(f"dataAddress: host {echo(parsed.hostname)} is not on the allowed upstream list "
                             "([dataplane] upstream_hosts)")
        try:
            parse_destination(url)
        except DestinationRefused as exc:
            raise ValueError(f"dataAddress: the url is refused: {exc.reason}") from None

    async def check_upstream_address(self, url: str) -> None:
        """An HTTP upstream must also resolve to public addresses unless [dsp] allowed_destinations
        names it (checked when the asset is created; the HTTP client checks again at every connect)."""
        try:
            await self.node.destinations.check_resolved(parse_destination(url), "the asset's url")
        except DestinationRefused as exc:
            raise ValueError(f"dataAddress: {exc.reason}") from None

    # -------------------------------------------------------------- tokens
    def _derived_token(self, kind: str, transfer_id: str, nonce: str) -> str:
        """A pull (`kind` PULL) or push (PUSH) token of one transfer: derived from the node's key,
        so that the database needs to keep only the nonce and every retry sends the same token."""
        message = f"{kind}\x00{transfer_id}\x00{nonce}".encode()
        return _b64(hmac.new(self._token_key, message, hashlib.sha256).digest())

    @staticmethod
    def token_hash(authorization: str | None) -> str:
        """SHA-256 of the bearer token in `authorization`, the key it is looked up by."""
        if not authorization:
            raise AccessRefused(401, ["the Authorization header is missing"])
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not _TOKEN_RE.fullmatch(token):
            raise AccessRefused(401, ["the access token is malformed"])
        return token_digest(token)

    def start_address(self, row: Json) -> Json:
        """The pull DataAddress the provider gives in its TransferStartMessage. A new token for
        every start (a resumed transfer gets a new one); the row keeps only its hash and expiry."""
        nonce = _b64(os.urandom(16))
        row["token_hash"] = token_digest(self._derived_token("PULL", row["id"], nonce))
        row["token_expires_at"] = time.time() + self.token_ttl
        endpoint = f"{self.node.settings.node.public_url.rstrip('/')}/data/{row['id']}"
        return {"@type": "DataAddress", "endpointType": HTTP_ENDPOINT_TYPE, "endpoint": endpoint,
                "endpointProperties": [  # "endpoint" again: EDC (0.15) reads only endpointType and these
                    {"@type": "EndpointProperty", "name": "endpoint", "value": endpoint},
                    {"@type": "EndpointProperty", "name": "authorization", "value": PULL_TOKEN_PLACEHOLDER + nonce},
                    {"@type": "EndpointProperty", "name": "authType", "value": "bearer"}]}

    def reveal_tokens(self, entry: Json, payload: bytes) -> bytes:
        """The dispatcher's last step before a transfer message goes on the wire: a placeholder
        becomes the token, which is never written to the database."""
        if b"__HKS_" not in payload:
            return payload
        return _PLACEHOLDER_RE.sub(lambda m: self._derived_token(
            m.group(1).decode(), entry["process_id"], m.group(2).decode()).encode(), payload)

    # ------------------------------------------------------------ decisions
    def _context(self, agreement: Json, asset: Json, claims: Json, *, now: float, uses: int,
                 purpose: str | None, deferred: frozenset[str]) -> Context:
        return claims_context(Caller(agreement["consumer_id"], claims), now=now, asset_properties=asset["properties"],
                              deferred=deferred, use_count=uses, agreement_time=agreement["created_at"],
                              purpose=purpose)

    def _access_refusal(self, agreement: Json, asset: Json, claims: Json, now: float) -> list[str] | None:
        """The agreement's offer's current access policy, decided for the consumer's verified
        claims. Fail closed: an agreement without a recorded offer, an offer withdrawn or no
        longer covering the asset, or a deleted access policy refuses."""
        body = agreement.get("access_policy")
        if agreement.get("offer_id") is None or asset["id"] not in (agreement.get("offer_asset_ids") or []):
            body = None
        return access_refusal(self.policies, body, caller=Caller(agreement["consumer_id"], claims), target=asset["id"],
                              now=now, asset_properties=asset["properties"], offer_id=agreement.get("offer_id"))

    def transfer_refusal(self, conn: Connection, agreement: Json, claims: Json,
                         now: float) -> tuple[str, list[str]] | None:
        """Before a transfer starts: does the offer's access policy still admit the consumer, and
        may it still use the data at all? (Purpose and other declarations are decided at each
        access.) None, or (code, reasons)."""
        asset = conn.execute(sa.select(assets).where(assets.c.id == agreement["asset_id"])).mappings().first()
        if asset is None:
            return "PolicyDenied", [f"the agreement's asset {echo(agreement['asset_id'])} no longer exists"]
        if not _has_source(dict(asset)):
            return "AssetUnavailable", [NO_DATA_ADDRESS]
        denied = self._access_refusal(agreement, dict(asset), claims, now)
        if denied is not None:
            return ACCESS_DENIED, denied
        uses = conn.execute(_USES_LOCKED, {"b_aid": agreement["id"]}).scalar() or 0
        try:
            decision = self.policies.compile(agreement["policy"]).evaluate(
                Request(action="use", target=asset["id"], assignee=agreement["consumer_id"]),
                self._context(dict(agreement), dict(asset), claims, now=now, uses=uses, purpose=None,
                              deferred=DECIDED_AT_USE))
        except Exception as exc:  # noqa: BLE001 - a decision that cannot be made refuses (fail closed)
            log.exception("the policy of agreement %s could not be evaluated", agreement["id"])
            return "PolicyDenied", [f"the agreement's policy could not be evaluated ({type(exc).__name__}): "
                                    "refused (fail closed)"]
        if decision.permitted:
            return None
        return "PolicyDenied", [r.message for r in decision.reasons if r.code != "constraint-deferred"] or ["not permitted"]

    def _decide_access(self, conn: Connection, transfer_id: str, purpose: str | None,
                       now: float, token_hash: str | None = None) -> "Grant | AccessRefused":
        """One transaction: decide, count the use, and record the access (permitted or not).
        A pull presents a token, looked up by its hash (`token_hash`); a push is our own."""
        if token_hash is None:
            row = conn.execute(_BY_ID, {"b_tid": transfer_id}).mappings().first()
            if row is None:
                raise AccessRefused(404, ["no such transfer"])
        else:
            row = conn.execute(_BY_TOKEN, {"b_hash": token_hash}).mappings().first()
            if row is None:
                raise AccessRefused(401, ["the access token does not verify"])
            if row["id"] != transfer_id:
                raise AccessRefused(401, ["the access token is for another transfer"])
        if row["state"] != TransferState.STARTED.value:
            # Suspension and termination revoke the token at once.
            raise AccessRefused(401, [f"the access token was revoked: the transfer is {row['state']}"])
        if token_hash is not None and (row["token_expires_at"] or 0) < now:
            raise AccessRefused(401, ["the access token has expired"])
        agreement = conn.execute(_AGREEMENT, {"b_aid": row["agreement_id"]}).mappings().first()
        asset = conn.execute(sa.select(assets).where(assets.c.id == agreement["asset_id"])).mappings().first() \
            if agreement else None
        if agreement is None or asset is None:
            raise AccessRefused(403, ["the agreement or its asset no longer exists"])
        agreement, asset = dict(agreement), dict(asset)
        if self.node.db.is_postgres:  # the counter row must exist to be locked
            conn.execute(sa.text("INSERT INTO usage_counters (agreement_id, uses, updated_at) VALUES (:a, 0, :t) "
                                 "ON CONFLICT (agreement_id) DO NOTHING"), {"a": agreement["id"], "t": now})
            uses = conn.execute(_USES_LOCKED.with_for_update(), {"b_aid": agreement["id"]}).scalar() or 0
        else:  # SQLite: transactions run one at a time on the one connection
            uses = conn.execute(_USES_LOCKED, {"b_aid": agreement["id"]}).scalar()
            if uses is None:
                conn.execute(usage_counters.insert(), {"agreement_id": agreement["id"], "uses": 0, "updated_at": now})
                uses = 0
        denied = self._access_refusal(agreement, asset, row["claims"] or {}, now)
        if denied is not None:  # the offer's access policy no longer admits the consumer
            decision, permitted, reasons, duties = None, False, [access_denied_text(denied)], []
        else:
            try:
                decision = self.policies.compile(agreement["policy"]).evaluate(
                    Request(action="use", target=asset["id"], assignee=agreement["consumer_id"]),
                    self._context(agreement, asset, row["claims"] or {}, now=now, uses=uses,
                                  purpose=purpose, deferred=frozenset()))
            except Exception as exc:  # noqa: BLE001 - fail closed, and say so
                log.exception("the policy of agreement %s could not be evaluated", agreement["id"])
                raise AccessRefused(403, [f"the agreement's policy could not be evaluated ({type(exc).__name__}): "
                                          "access refused (fail closed)"]) from None
            reasons = [r.message for r in decision.reasons]
            duties = [d.to_dict() for d in decision.duties]
            permitted = decision.permitted
            if permitted:
                blocking = self._unperformable(decision.duties, asset)
                if blocking:
                    permitted, reasons = False, blocking
        record = {"transfer_id": transfer_id, "agreement_id": agreement["id"], "consumer_id": agreement["consumer_id"],
                  "at": now, "permitted": permitted, "purpose": purpose, "reasons": reasons, "duties": duties,
                  "stage": "access", "offer_id": agreement["offer_id"]}
        access_id = conn.execute(access_log.insert().returning(access_log.c.id), record).scalar_one()
        ch = self.node.clearinghouse
        must_log = permitted and any(d.kind == "log" and d.timing == "before-release" for d in decision.duties)
        log_jws, pending = None, []
        if ch is not None:
            provider, consumer = self.node.participant_id, agreement["consumer_id"]
            digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).digest()
            if must_log:  # the data waits for the log's receipt (after this transaction)
                log_jws = ch.sign(process_id=transfer_id, event="data.accessed", provider=provider,
                                  consumer=consumer, digest=digest, ts=now)
            else:  # logged through the outbox: delayed by an outage, never lost
                pending = ch.record(conn, {"id": transfer_id, "role": "provider", "counterparty_id": consumer},
                                    {"@type": "DataAccess"}, now, owner=self.node.dispatcher.owner,
                                    lease_seconds=self.node.dispatcher.lease_seconds, event="data.accessed",
                                    digest=digest)
        if permitted and not _has_source(asset):
            permitted, reasons = False, [NO_DATA_ADDRESS]
        if not permitted:  # returned, not raised: the refusal's log entry must be committed
            refusal = AccessRefused(403, reasons or ["no permission of the agreement covers this access"])
            refusal.pending = pending
            return refusal
        conn.execute(sa.update(usage_counters).where(usage_counters.c.agreement_id == agreement["id"])
                     .values(uses=usage_counters.c.uses + 1, updated_at=now))
        return Grant(dict(row), asset, modification_from_duties(decision.duties, self._pseudonym_key),
                     list(decision.duties), access_id=access_id, log_jws=log_jws, pending=pending)

    async def _settle(self, grant: "Grant | AccessRefused") -> Grant:
        """After the decision's transaction: hand queued log entries to the dispatcher, and
        for a logging duty wait until the clearing house has accepted the entry."""
        pending = [o.entry for o in getattr(grant, "pending", []) if o.entry is not None]
        if pending and self.node.dispatcher is not None:
            self.node.dispatcher.submit(pending)
        if isinstance(grant, AccessRefused):
            raise grant
        if grant.log_jws is not None:
            try:
                await self.node.clearinghouse.submit_now(grant.log_jws)
            except Exception as exc:  # noqa: BLE001 - unavailable, refused or unverifiable: no receipt, no data
                # The consumer reads this reason: it says what failed, not where (our log has the detail).
                log.warning("transfer %s: the clearing house did not accept the access entry: %s %s",
                            grant.transfer["id"], type(exc).__name__, exc)
                reason = ("The policy requires every access to be logged to the clearing house, and it did not "
                          "accept the entry: access refused (fail closed).")
                await self.node.db.transaction(self._undo_access, grant, reason)
                raise AccessRefused(403, [reason]) from None
        return grant

    def _undo_access(self, conn: Connection, grant: Grant, reason: str) -> None:
        conn.execute(sa.update(usage_counters).where(usage_counters.c.agreement_id == grant.transfer["agreement_id"])
                     .values(uses=usage_counters.c.uses - 1))
        conn.execute(sa.update(access_log).where(access_log.c.id == grant.access_id)
                     .values(permitted=False, reasons=[reason]))

    def _unperformable(self, duties: list, asset: Json) -> list[str]:
        problems = []
        for duty in duties:
            if duty.timing != "before-release":
                continue
            if duty.kind == "log":
                if self.node.clearinghouse is None:  # the duty cannot be performed: the data does not leave
                    problems.append("The policy requires every access to be logged to the clearing house, and this "
                                    "node has no clearing house configured: access refused (fail closed).")
            elif duty.kind in ("drop-fields", "pseudonymise-fields"):
                if kind_of(asset["content_type"], str(asset["data_address"].get("path", ""))) is None:
                    problems.append(f"The policy requires fields to be removed or pseudonymised, which this node "
                                    f"cannot do for data of type {asset['content_type']}: access refused.")
            elif duty.kind not in PERFORMED_HERE:
                problems.append(f"The policy requires '{duty.action}' before release, which this node cannot "
                                "perform: access refused (fail closed).")
        return problems

    # ----------------------------------------------------- provider: pull
    async def serve(self, request: web.Request) -> web.StreamResponse:
        transfer_id = request.match_info["tid"]
        purpose = request.headers.get("X-Usage-Purpose") or None
        try:
            token_hash = self.token_hash(request.headers.get("Authorization"))
            if purpose is not None and len(purpose) > 512:
                raise AccessRefused(400, ["X-Usage-Purpose is too long"])
            grant = await self._settle(
                await self.node.db.transaction(self._decide_access, transfer_id, purpose, time.time(), token_hash))
        except AccessRefused as exc:
            # the node's own log says why (never the token: only the transfer id from the path)
            log.warning("transfer %s: access refused (%s): %s", echo(transfer_id, 100), exc.status,
                        "; ".join(exc.reasons)[:500])
            return web.json_response({"error": "access refused", "status": exc.status, "reasons": exc.reasons},
                                     status=exc.status)
        return await self._stream(request, grant)

    async def _stream(self, request: web.Request, grant: Grant) -> web.StreamResponse:
        asset = grant.asset
        address = asset["data_address"]
        content_type = asset["content_type"]
        kind = kind_of(content_type, str(address.get("path", "")))
        modify = grant.modification.active and kind is not None
        try:
            status, headers = 200, {"Content-Type": content_type}
            if address.get("type") == "file":
                path = self._file_path(address["path"])  # checked again at access
                if not path.is_file():
                    raise AccessRefused(404, ["the asset's file is missing"])
                start, end = 0, None
                if not modify and request.headers.get("Range"):  # a range of transformed data is ill-defined
                    size = path.stat().st_size
                    start, end = _parse_range(request.headers["Range"], size)
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
                    headers["Content-Length"] = str(end - start)
                chunks = _file_chunks(path, start, end)
            elif address.get("type") == "http":
                self._check_upstream(address["url"])  # checked again at access
                chunks = self._upstream_chunks(address["url"], await self._open_upstream(address["url"]))
            else:  # refused at transfer start since; an older transfer still ends here, never in a 500
                raise AccessRefused(409, [NO_DATA_ADDRESS])
        except RangeNotSatisfiable as exc:
            await self._give_back(grant, [str(exc)])
            log.warning("transfer %s: access refused (416): %s", grant.transfer["id"], exc)
            return web.json_response({"error": str(exc)}, status=416)
        except (AccessRefused, ValueError) as exc:
            status = exc.status if isinstance(exc, AccessRefused) else 403
            reasons = exc.reasons if isinstance(exc, AccessRefused) else [str(exc)]
            # nothing was delivered: the use is given back and the access is not recorded as permitted
            await self._give_back(grant, reasons)
            log.warning("transfer %s: the delivery failed before any byte was sent (%s): %s",
                        grant.transfer["id"], status, "; ".join(reasons))
            return web.json_response({"error": "access refused", "reasons": reasons}, status=status)
        response = web.StreamResponse(status=status, headers=headers)
        if "Content-Length" not in headers:
            response.enable_chunked_encoding()
        await response.prepare(request)
        tx = transformer(kind, grant.modification) if modify else None
        transfer_id = grant.transfer["id"]
        # A failure after this point aborts the connection: the consumer sees an error,
        # never a truncated success. So does a suspension or termination mid-stream.
        sent = 0
        try:
            async for chunk in self._guarded(transfer_id, chunks):
                out = tx.feed(chunk) if tx else chunk
                await response.write(out)
                sent += len(out)
            if tx:
                await response.write(tx.finish())
            await response.write_eof()
        except (TransferStopped, TransformError, UpstreamError, aiohttp.ClientError, asyncio.TimeoutError,
                OSError) as exc:
            log.warning("transfer %s: the data stream was cut after %d bytes: %s", transfer_id, sent, exc)
            if sent == 0:
                await self._give_back(grant, [f"the delivery failed before any byte was sent: {type(exc).__name__}"])
            abort(request)
        self.node.metrics.data_bytes("served", sent)
        return response

    async def _give_back(self, grant: Grant, reasons: list[str]) -> None:
        """A delivery that failed before its first byte consumed nothing: the use counted in the
        access's transaction is returned and the access is recorded as not permitted, with why."""
        try:
            await self.node.db.transaction(self._undo_access, grant, "; ".join(reasons)[:1000])
        except Exception:  # noqa: BLE001 - the failure of the delivery is what the caller reports
            log.exception("transfer %s: the use of a failed delivery could not be given back", grant.transfer["id"])

    def on_state(self, row: Json) -> None:
        """Any state but STARTED, committed here, stops this process's streams of it at once."""
        stopped = self._streams.get(row["id"])
        if stopped is not None and row["state"] != TransferState.STARTED.value:
            stopped.set()

    async def _guarded(self, transfer_id: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`chunks`, stopped (TransferStopped) as soon as the transfer is no longer STARTED: told by
        on_state in this process, or read from the database (another replica's suspension)."""
        stopped = self._streams.setdefault(transfer_id, asyncio.Event())
        next_check = time.monotonic() + REVOCATION_CHECK
        try:
            async for chunk in chunks:
                if not stopped.is_set() and time.monotonic() >= next_check:
                    state = await self.node.db.read(lambda conn: conn.execute(_STATE, {"b_tid": transfer_id}).scalar())
                    if state != TransferState.STARTED.value:
                        stopped.set()
                    next_check = time.monotonic() + REVOCATION_CHECK
                if stopped.is_set():
                    raise TransferStopped(f"transfer {transfer_id} was stopped while its data streamed")
                yield chunk
        finally:
            if self._streams.get(transfer_id) is stopped:
                del self._streams[transfer_id]

    async def _open_upstream(self, url: str) -> aiohttp.ClientResponse:
        """Connect and read the upstream's status before our own response starts."""
        silence = self.node.settings.dataplane_upstream_timeout
        timeout = aiohttp.ClientTimeout(total=None, connect=min(10, silence), sock_read=silence)
        # The consumer learns that the source failed, never how: our network is not its business.
        unavailable = AccessRefused(502, ["the asset's data source is unavailable"])
        try:
            resp = await self.node.session.get(url, timeout=timeout, allow_redirects=False)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("the upstream of an asset could not be read%s: %s %s",
                        " (refused: not a public address)" if forbidden(exc) else "", type(exc).__name__, exc)
            raise unavailable from None
        if resp.status >= 300:
            resp.release()
            log.warning("the upstream %s answered %s%s", url, resp.status,
                        " (redirects are not followed)" if 300 <= resp.status < 400 else "")
            raise unavailable
        return resp

    async def _upstream_chunks(self, url: str, resp: aiohttp.ClientResponse | None = None) -> AsyncIterator[bytes]:
        resp = resp or await self._open_upstream(url)
        try:
            async for chunk in resp.content.iter_chunked(CHUNK):
                yield chunk
        finally:
            resp.release()

    # ----------------------------------------------------- provider: push
    def on_started(self, row: Json) -> None:
        if row["role"] == Role.PROVIDER.value and row["format"] == PUSH:
            task = asyncio.get_running_loop().create_task(self._push(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def resume_pushes(self) -> None:
        """After a restart: pushes that were started and not finished go again (the consumer overwrites)."""
        query = sa.select(transfers).where(transfers.c.role == Role.PROVIDER.value, transfers.c.format == PUSH,
                                           transfers.c.state == TransferState.STARTED.value)
        for row in await self.node.db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()]):
            self.on_started(row)

    async def _push(self, row: Json) -> None:
        address = row["data_address"] or {}
        purpose = endpoint_property(address, "purpose")
        try:
            grant = await self._settle(
                await self.node.db.transaction(self._decide_access, row["id"], purpose, time.time()))
        except AccessRefused as exc:
            await self.node.transfers.act(row["id"], TransferEvent.TERMINATE, " ".join(exc.reasons))
            return
        headers = {"Content-Type": grant.asset["content_type"]}
        auth = endpoint_property(address, "authorization")
        if auth:
            auth_type = (endpoint_property(address, "authType") or "bearer").lower()
            headers["Authorization"] = f"Bearer {auth}" if auth_type == "bearer" else auth
        sent = [0]
        try:
            body = self._guarded(row["id"], self._push_body(grant, sent))
            async with self.node.session.put(address["endpoint"], data=body, headers=headers, allow_redirects=False,
                                             timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as resp:
                if resp.status >= 300:
                    raise UpstreamError(f"the consumer's endpoint answered {resp.status}")
            self.node.metrics.data_bytes("pushed", sent[0])
            if await self._stopped(row["id"]):  # suspended or terminated as the last bytes went
                raise TransferStopped(f"transfer {row['id']} was stopped while its data was pushed")
            await self.node.transfers.act(row["id"], TransferEvent.COMPLETE)
        except Exception as exc:  # noqa: BLE001 - recorded on the transfer, which ends
            if sent[0] == 0:
                await self._give_back(grant, [f"the push failed before any byte was sent: {type(exc).__name__}"])
            if isinstance(exc, TransferStopped) or isinstance(exc.__cause__, TransferStopped) \
                    or await self._stopped(row["id"]):
                # suspended (a resume pushes again) or terminated: the state says so already
                log.warning("push of transfer %s stopped after %d bytes: the transfer is no longer STARTED",
                            row["id"], sent[0])
                return
            # The detail (a host, a port, a status) stays in our log: the termination goes to the peer.
            log.warning("push of transfer %s failed: %s %s", row["id"], type(exc).__name__, exc)
            await self.node.transfers.act(row["id"], TransferEvent.TERMINATE,
                                          "the push failed: the data could not be delivered to the push endpoint")

    async def _push_body(self, grant: Grant, sent: list[int]) -> AsyncIterator[bytes]:
        """The pushed data; `sent[0]` counts the bytes handed to the HTTP client."""
        address = grant.asset["data_address"]
        kind = kind_of(grant.asset["content_type"], str(address.get("path", "")))
        tx = transformer(kind, grant.modification) if grant.modification.active and kind else None
        chunks = _file_chunks(self._file_path(address["path"])) if address.get("type") == "file" \
            else self._upstream_chunks(address["url"])
        async for chunk in chunks:
            out = tx.feed(chunk) if tx else chunk
            sent[0] += len(out)
            yield out
        if tx:
            yield tx.finish()

    async def _stopped(self, transfer_id: str) -> bool:
        state = await self.node.db.read(lambda conn: conn.execute(_STATE, {"b_tid": transfer_id}).scalar())
        return state != TransferState.STARTED.value

    # ----------------------------------------------------------- consumer
    def push_address(self, transfer_id: str, purpose: str | None) -> Json:
        """Where the provider should push to: this node's receiver, with a one-transfer token
        (kept as a placeholder: see PUSH_TOKEN_PLACEHOLDER)."""
        token = PUSH_TOKEN_PLACEHOLDER + _b64(os.urandom(16))
        props = [{"@type": "EndpointProperty", "name": "authorization", "value": token},
                 {"@type": "EndpointProperty", "name": "authType", "value": "bearer"}]
        if purpose:
            props.append({"@type": "EndpointProperty", "name": "purpose", "value": purpose})
        return {"@type": "DataAddress", "endpointType": HTTP_ENDPOINT_TYPE,
                "endpoint": f"{self.node.settings.node.public_url.rstrip('/')}/push/{transfer_id}",
                "endpointProperties": props}

    async def receive_push(self, request: web.Request) -> web.Response:
        transfer_id = request.match_info["tid"]
        row = await self.node.transfers.get(transfer_id)
        expected = endpoint_property((row or {}).get("data_address"), "authorization") if row else None
        if expected and expected.startswith(PUSH_TOKEN_PLACEHOLDER):
            expected = self._derived_token("PUSH", transfer_id, expected[len(PUSH_TOKEN_PLACEHOLDER):])
        given = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if row is None or row["role"] != Role.CONSUMER.value or not expected \
                or not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("push to transfer %s refused (401): unknown transfer or wrong token",
                        echo(transfer_id, 100))
            return web.json_response({"error": "unknown transfer or wrong token"}, status=401)
        if row["state"] not in (TransferState.REQUESTED.value, TransferState.STARTED.value):
            log.warning("push to transfer %s refused (409): the transfer is %s", transfer_id, row["state"])
            return web.json_response({"error": f"the transfer is {row['state']}"}, status=409)
        # The retention duty first: no byte is written before its delete deadline is known and recorded,
        # so neither an exception here nor a crash while writing leaves data with no deadline.
        try:
            delete_by = await self._delete_deadline(row["agreement_id"])
        except Exception as exc:  # noqa: BLE001 - fail closed: nothing is kept
            log.exception("transfer %s: the agreement's retention duty could not be evaluated", transfer_id)
            return web.json_response({"error": "the agreement's retention duty could not be evaluated "
                                      f"({type(exc).__name__}): nothing was stored"}, status=503)
        self.received_dir.mkdir(mode=0o700, exist_ok=True)
        target = self.received_dir / hashlib.sha256(transfer_id.encode()).hexdigest()
        part = target.with_suffix(".part")

        def record(conn: Connection, size: int | None) -> None:
            conn.execute(sa.delete(received_data).where(received_data.c.transfer_id == transfer_id))
            conn.execute(received_data.insert(), {
                "transfer_id": transfer_id, "agreement_id": row["agreement_id"], "path": str(target),
                "bytes": size or 0, "content_type": request.headers.get("Content-Type"), "received_at": time.time(),
                "delete_by": delete_by, "deleted_at": None})

        await self.node.db.transaction(record, None)  # the deadline is on record before the first byte
        size = 0
        try:
            with open(part, "wb") as fh:
                async for chunk in request.content.iter_chunked(CHUNK):
                    fh.write(chunk)
                    size += len(chunk)
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        await self.node.db.transaction(record, size)
        self.node.metrics.data_bytes("received", size)
        return web.json_response({"received": size}, status=201)

    async def _delete_deadline(self, agreement_id: str) -> float | None:
        """The consumer's own reading of its agreement: the earliest delete duty's deadline."""
        agreement = await self.node.db.read(lambda conn: conn.execute(
            sa.select(agreements).where(agreements.c.id == agreement_id)).mappings().first())
        if agreement is None:
            return None
        policy = self.policies.compile(agreement["policy"])
        at = datetime.fromtimestamp(agreement["created_at"], timezone.utc)
        decision = policy.evaluate(Request(action="use", target=agreement["asset_id"],
                                           assignee=agreement["consumer_id"]),
                                   Context(now=datetime.now(timezone.utc), agreement_time=at, use_count=0,
                                           deferred=frozenset(Context.__dataclass_fields__) - {"now", "agreement_time"}))
        deadlines = [d.deadline.timestamp() for d in decision.duties if d.kind == "delete" and d.deadline]
        return min(deadlines) if deadlines else None

    async def delete_overdue(self) -> int:
        """Carry out delete duties that are due; returns how many datasets were removed."""
        now = time.time()
        due = await self.node.db.read(lambda conn: [dict(r) for r in conn.execute(
            sa.select(received_data).where(received_data.c.deleted_at.is_(None), received_data.c.delete_by <= now)
        ).mappings()])
        for item in due:
            try:
                Path(item["path"]).unlink(missing_ok=True)
                Path(item["path"]).with_suffix(".part").unlink(missing_ok=True)  # a write cut by a crash
            except OSError as exc:
                log.error("could not delete %s for transfer %s: %s", item["path"], item["transfer_id"], exc)
                continue
            await self.node.db.transaction(lambda conn, tid=item["transfer_id"]: conn.execute(
                sa.update(received_data).where(received_data.c.transfer_id == tid).values(deleted_at=time.time())))
            log.info("deleted the data of transfer %s as its agreement requires", item["transfer_id"])
        return len(due)

    async def delete_loop(self, every: float = 1.0) -> None:
        while True:
            try:
                await self.delete_overdue()
            except Exception:  # noqa: BLE001 - try again next round
                log.exception("delete duty round failed")
            await asyncio.sleep(every)

    async def consumer_data(self, request: web.Request, row: Json) -> web.StreamResponse:
        """Management: the data of a transfer, pulled through now or as it was pushed."""
        if row["format"] == PUSH:
            stored = await self.node.db.read(lambda conn: conn.execute(
                sa.select(received_data).where(received_data.c.transfer_id == row["id"])).mappings().first())
            if stored is None:
                return web.json_response({"error": "nothing has been received for this transfer"}, status=404)
            if stored["deleted_at"] is not None:
                return web.json_response({"error": "the data was deleted as the agreement requires",
                                          "deletedAt": stored["deleted_at"]}, status=410)
            return web.FileResponse(stored["path"], headers={"Content-Type": stored["content_type"] or
                                                             "application/octet-stream"})
        if row["state"] != TransferState.STARTED.value:
            return web.json_response({"error": f"the transfer is {row['state']}, not STARTED"}, status=409)
        address = row["data_address"] or {}
        # Eclipse EDC gives the endpoint only as an endpointProperty (named .../edc/v0.0.1/ns/endpoint)
        endpoint = address.get("endpoint") or endpoint_property(address, "endpoint")
        token = endpoint_property(address, "authorization")
        if not endpoint or not token:
            return web.json_response({"error": "the provider gave no endpoint for this transfer"}, status=409)
        # The token verbatim, as EDC's data plane expects it (it cannot decode "Bearer ..."); ours takes both.
        headers = {"Authorization": token}
        purpose = request.query.get("purpose")
        if purpose:
            headers["X-Usage-Purpose"] = purpose
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
        try:
            resp = await self.node.session.get(endpoint, headers=headers, timeout=timeout, allow_redirects=False)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:  # our operator may see the detail
            why = "refused: not a public address ([dsp] allowed_destinations)" if forbidden(exc) \
                else f"{type(exc).__name__} {exc}"[:300]
            return web.json_response({"error": f"the provider's data endpoint could not be reached: {why}"},
                                     status=502)
        async with resp:
            if resp.status != 200:
                try:
                    body = await read_limited(resp, 64 * 1024)
                except BodyTooLarge:
                    body = b'{"error": "the provider refused the access (its answer was too long to relay)"}'
                return web.Response(body=body, status=resp.status, content_type="application/json")
            response = web.StreamResponse(headers={"Content-Type": resp.headers.get("Content-Type",
                                                                                    "application/octet-stream")})
            response.enable_chunked_encoding()
            await response.prepare(request)
            try:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    await response.write(chunk)
                await response.write_eof()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                detail = f"the provider's data broke off: {type(exc).__name__} {exc}"[:2000]
                await self.node.db.transaction(lambda conn: conn.execute(sa.update(transfers).where(
                    transfers.c.id == row["id"]).values(error=detail)))
                abort(request)  # the caller must not mistake a truncated stream for the data
            return response


class UpstreamError(Exception):
    pass


class TransferStopped(Exception):
    pass


def abort(request: web.Request) -> None:
    """Cut the connection of a response already under way, so the client sees an error."""
    if request.transport is not None:
        request.transport.abort()


class RangeNotSatisfiable(ValueError):
    pass


def _parse_range(header: str, size: int) -> tuple[int, int]:
    """One byte range (RFC 9110): (start, end exclusive)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        raise RangeNotSatisfiable("only a single byte range is supported")
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            length = int(last)
            start, end = max(0, size - length), size
        else:
            start = int(first)
            end = min(size, int(last) + 1) if last else size
    except ValueError:
        raise RangeNotSatisfiable(f"malformed Range {echo(header)}") from None
    if start >= size or start >= end:
        raise RangeNotSatisfiable(f"range {echo(header)} is outside the {size} bytes")
    return start, end


async def _file_chunks(path: Path, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
    # Blocking 256 KiB reads on the loop: measured faster than a thread hop per chunk.
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            chunk = fh.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
            await asyncio.sleep(0)


__all__ = ["AccessRefused", "DataPlane", "PULL", "PUSH", "TransformError", "TransferStopped", "UpstreamError"]
