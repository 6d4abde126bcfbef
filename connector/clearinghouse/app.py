"""The clearing-house process: HTTP API, group-committing sequencer, storage.

HTTP API (JSON unless noted; errors are ``{"error": "...", "code": "...", "status": N}``):

=========================================  ===========================  ==========================================
``POST /entries``  ``{"jws": "<compact>"}``  caller's token; caller = sender  201 receipt; 400 401 403 409 413 415 503
``GET /checkpoint[?size=N]``                 public                       200 signed note (text/plain); 404
``GET /log``                                 public                       origin, verifier key, size
``GET /proofs/inclusion?index=I[&size=N]``   any valid token              200 proof (+ checkpoint); 400 401
``GET /proofs/consistency?from=M[&to=N]``    any valid token              200 proof (+ checkpoint); 400 401
``GET /processes/{pid}/entries``             the two parties, auditors    200 entries + proofs; 401 403 404
``GET /entries?start=&limit=&size=&proofs=`` auditors                     200 entries (+ proofs); 401 403
``GET /entries/{index}[?size=N]``            its parties, auditors        200 entry + proof; 401 403 404
``GET /health``                              public                       200
=========================================  ===========================  ==========================================
"""
from __future__ import annotations

import asyncio
import fcntl
import hmac
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson
import sqlalchemy as sa
from aiohttp import web

from ..errors import ApiError
from ..serving import ErrorAnswers, error_middleware, listen, run_process, serve_forever
from .. import failpoints
from ..identity import Caller, DevSharedSecret, Identity
from ..protocol.errors import ProtocolError, echo
from ..store.db import Database
from . import store
from .config import ClearingHouseSettings, ConfigError
from .db import open_database
from .metrics import ClearingHouseMetrics
from .. import telemetry
from .entry import EntryError, parse_signed_entry
from .keys import LocalParticipantKeys, ParticipantKeyError, ParticipantKeys, StationParticipantKeys
from .store import Appended, BatchResult, Duplicate, LogSigner, PendingEntry, ProofRangeError, StoreError, WrongParties
from .verifier import SignatureVerifier, VerifierUnavailable
from .verify import encode_hash

log = logging.getLogger("connector.clearinghouse")
CH_KEY: web.AppKey["ClearingHouse"] = web.AppKey("clearinghouse", object)  # type: ignore[arg-type]
MAX_PAGE = 1000
MAX_PROOF_PAGE = 200


class _CachedDevIdentity(DevSharedSecret):
    """Dev-mode tokens never expire and verify the same way every time: remember the verified ones
    (bounded), saving an HMAC and a JSON parse on every append."""

    def __init__(self, participant_id: str, secret: str, *, audience: str) -> None:
        super().__init__(participant_id, secret, audience=audience)
        self._verified: dict[str, Caller] = {}

    async def verify(self, authorization: str | None) -> Caller:
        caller = self._verified.get(authorization) if authorization else None
        if caller is None:
            caller = self.verify_now(authorization)
            if len(self._verified) >= 10_000:
                self._verified.clear()
            self._verified[authorization] = caller  # type: ignore[index]
        return caller


def _identity_dev(settings: ClearingHouseSettings) -> Identity:
    return _CachedDevIdentity("urn:hks:clearinghouse", settings.identity_shared_secret,
                              audience=settings.identity_audience)


def _identity_station(settings: ClearingHouseSettings) -> Identity:
    from ..identity.binding import StationCallers
    if not settings.station_url:
        raise ConfigError("setting [identity] mode = \"station\" needs [participants] station_url")
    replay = None
    if settings.database_url.startswith("postgresql"):  # replicas share the jtis they have seen
        from ..identity.db_replay import DatabaseReplayStore
        from .tables import seen_tokens
        replay = DatabaseReplayStore(settings.database_url, table=seen_tokens)
    return StationCallers(settings.station_url, settings.directory / "identity.db",  # type: ignore[return-value]
                          audience=settings.identity_audience, max_lifetime=settings.identity_max_token_lifetime,
                          replay=replay)


#: How callers prove who they are, by ``[identity] mode``: a dev-mode shared secret, or the
#: station authority's tokens (DATs).  Another Identity can be registered here or passed in.
IDENTITY_FACTORIES: dict[str, Callable[[ClearingHouseSettings], Identity]] = {
    "dev-shared-secret": _identity_dev, "station": _identity_station}


def make_identity(settings: ClearingHouseSettings) -> Identity:
    factory = IDENTITY_FACTORIES.get(settings.identity_mode)
    if factory is None:
        raise ConfigError(f"setting [identity] mode {settings.identity_mode!r} is not available in this build "
                          "(the station authority's token verification is not registered yet)")
    return factory(settings)


def make_participant_keys(settings: ClearingHouseSettings) -> ParticipantKeys:
    if settings.participant_keys is not None:
        try:
            return LocalParticipantKeys(settings.participant_keys)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"setting [participants] keys: {exc}") from None
    ca = settings.station_ca.read_bytes() if settings.station_ca else None
    return StationParticipantKeys(settings.station_url, ttl=settings.key_cache_seconds, ca_pem=ca)


def _set_iso(batch: BatchResult) -> str:
    batch.received_iso = iso(batch.received_at)
    return batch.received_iso


def _second_iso(second: int) -> str:
    return datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def iso(ts: float) -> str:
    when = datetime.fromtimestamp(ts, timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class Sequencer:
    """Group commit: entries that arrive while a batch is being written form the next batch.

    No artificial wait: a batch starts as soon as the previous one has committed, so the
    added latency is at most one batch's write, and ``max_batch`` bounds that.  Beyond
    ``max_pending`` queued entries new ones are refused (503) rather than queued without bound."""

    def __init__(self, db: Database, signer: LogSigner, *, max_batch: int, max_pending: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.db, self.signer, self.clock = db, signer, clock
        self.max_batch, self.max_pending = max_batch, max_pending
        self._queue: list[tuple[PendingEntry, asyncio.Future]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.batches = 0
        self.appended = 0
        self.observe: Callable[[float], None] | None = None  # each entry's append latency, seconds

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sequencer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, fut in self._queue:
            if not fut.done():
                fut.set_exception(ApiError(503, code="ShuttingDown", message="the clearing house is shutting down; nothing was appended"))
        self._queue.clear()

    async def submit(self, item: PendingEntry) -> tuple[Any, BatchResult]:
        if len(self._queue) >= self.max_pending:
            raise ApiError(503, code="Busy", message="the clearing house is at capacity; nothing was appended, retry later")
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        self._wake.set()
        start = time.perf_counter()
        outcome = await fut
        if self.observe is not None:
            self.observe(time.perf_counter() - start)
        return outcome

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[:self.max_batch]
                del self._queue[:self.max_batch]
                try:
                    result = await self.db.transaction(store.append_batch, [it for it, _ in batch], self.signer,
                                                       self.clock())
                except asyncio.CancelledError:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(ApiError(503, code="ShuttingDown", message="the clearing house is shutting down"))
                    raise
                except Exception as exc:  # noqa: BLE001 - the batch was rolled back; tell every caller
                    log.error("append of a batch of %d failed and was rolled back: %s: %s", len(batch),
                              type(exc).__name__, exc)
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(ApiError(503, "the log could not be written; nothing was appended",
                                                       "LogUnavailable"))
                    continue
                failpoints.hit("clearinghouse:committed")
                self.batches += 1
                for (_, fut), outcome in zip(batch, result.outcomes):
                    if isinstance(outcome, Appended):
                        self.appended += 1
                    if not fut.done():
                        fut.set_result((outcome, result))


class ClearingHouse:
    def __init__(self, settings: ClearingHouseSettings, *, identity: Identity | None = None,
                 keys: ParticipantKeys | None = None, db: Database | None = None) -> None:
        self.settings = settings
        self.signer = LogSigner(settings.signer_key)
        self.identity = identity or make_identity(settings)
        self.keys = keys or make_participant_keys(settings)
        self.db = db or open_database(settings.database_url)
        self.sequencer = Sequencer(self.db, self.signer, max_batch=settings.max_batch,
                                   max_pending=settings.max_pending)
        self.auditors = frozenset(settings.auditors)
        self.verifier = SignatureVerifier(settings.verify_workers)
        self._limit = (0, "")
        self._earliest = (0, "")
        self.metrics = ClearingHouseMetrics(self)

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> store.TreeHead:
        await self.db.migrate(store.MIGRATIONS)
        tree = await self.db.transaction(store.prepare, self.signer, time.time())
        self.verifier.start()
        self.sequencer.start()
        open_identity = getattr(self.identity, "open", None)
        if open_identity is not None:  # e.g. the station's revocation feed starts now
            await open_identity()
        return tree

    async def stop(self) -> None:
        await self.sequencer.stop()
        await self.verifier.close()
        close_identity = getattr(self.identity, "close", None)
        if close_identity is not None:
            await close_identity()
        close = getattr(self.keys, "close", None)
        if close is not None:
            await close()
        await self.db.dispose()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_entry_bytes + 1024,
                              middlewares=[telemetry.middleware(), self.metrics.middleware(), error_middleware(ErrorAnswers(
                                  self.settings.max_entry_bytes + 1024, over_limit_note="; nothing was appended",
                                  unavailable=(sa.exc.OperationalError, sa.exc.InterfaceError, OSError),
                                  unavailable_message="the log's database is unavailable",
                                  unavailable_code="LogUnavailable"), log)])
        app[CH_KEY] = self
        app.add_routes([
            web.post("/entries", self.post_entry),
            web.get("/entries", self.get_entries),
            web.get("/entries/{index}", self.get_entry),
            web.get("/checkpoint", self.get_checkpoint),
            web.get("/log", self.get_log),
            web.get("/proofs/inclusion", self.get_inclusion),
            web.get("/proofs/consistency", self.get_consistency),
            web.get("/processes/{pid}/entries", self.get_process_entries),
            web.get("/health", self.health),
            web.get("/metrics", self.get_metrics),
        ])
        if self.settings.diagnostics:
            app.add_routes([web.post("/diagnostics/discard", self.discard)])

        async def lifecycle(_app: web.Application):  # noqa: ANN202
            await self.start()
            yield
            await self.stop()

        app.cleanup_ctx.append(lifecycle)
        from ..console.clearinghouse import mount as mount_console  # the operator console at /console/
        mount_console(app, self)
        return app

    # -- helpers -----------------------------------------------------------

    async def _caller(self, request: web.Request) -> Caller:
        try:
            return await self.metrics.checked(self.identity.verify(request.headers.get("Authorization")))
        except ProtocolError as exc:  # Unauthenticated (401), or e.g. the token service unreachable (503)
            raise ApiError(exc.status, code=exc.code, message=exc.reason) from None

    def _latest_acceptable(self, skew: int) -> str:
        """``YYYY-MM-DDTHH:MM:SS`` of now + skew; entry timestamps (validated, UTC) compare as strings."""
        second = int(time.time()) + skew
        if second != self._limit[0]:
            self._limit = (second, _second_iso(second))
        return self._limit[1]

    def _earliest_acceptable(self, age: int) -> str:
        """``YYYY-MM-DDTHH:MM:SS`` of now - age (compared as strings, like the latest)."""
        second = int(time.time()) - age
        if second != self._earliest[0]:
            self._earliest = (second, _second_iso(second))
        return self._earliest[1]

    def is_auditor(self, caller: Caller) -> bool:
        if caller.participant_id in self.auditors:
            return True
        claim = self.settings.auditor_claim
        if claim is not None:
            value = caller.claims.get(claim[0])
            return value == claim[1] or (isinstance(value, list) and claim[1] in value)
        return False

    # -- handlers ----------------------------------------------------------

    async def discard(self, request: web.Request) -> web.Response:
        """Read the body and answer, doing nothing else: the benchmark's bare-aiohttp baseline."""
        body = await request.read()
        return _json({"bytes": len(body)}, 201)

    async def get_metrics(self, request: web.Request) -> web.Response:
        """Prometheus metrics, for the bearer of [clearinghouse] metrics_token (404 when none is set)."""
        expected = self.settings.metrics_token
        if not expected:
            raise ApiError(404, code="NotEnabled", message="metrics are not enabled here ([clearinghouse] metrics_token)")
        given = request.headers.get("Authorization", "")
        given = given[7:].strip() if given[:7].lower() == "bearer " else ""
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, code="Unauthenticated", message="missing or wrong metrics token (Authorization: Bearer <token>)")
        return self.metrics.render(await self.metrics.families())

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok", "origin": self.signer.origin, "appended": self.sequencer.appended,
                      "batches": self.sequencer.batches, "queued": len(self.sequencer._queue)})

    async def get_log(self, request: web.Request) -> web.Response:
        tree = await self.db.read(store.head)
        return _json({"origin": self.signer.origin, "verifierKey": self.signer.verifier_key, "size": tree.size,
                      "maxEntryBytes": self.settings.max_entry_bytes})

    async def get_checkpoint(self, request: web.Request) -> web.Response:
        size = _int_param(request, "size", None)
        if size is None:
            note = (await self.db.read(store.head)).checkpoint
        else:
            note = await self.db.read(store.checkpoint_at, size)
            if note is None:
                raise ApiError(404, code="NoSuchCheckpoint", message=f"the log signed no checkpoint at size {size}")
        return web.Response(text=note, content_type="text/plain", charset="utf-8")

    async def post_entry(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        if request.content_type != "application/json":
            raise ApiError(415, code="UnsupportedMediaType", message='send the entry as application/json {"jws": "<compact JWS>"}')
        body = await request.read()
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ApiError(400, code="MalformedRequest", message="the request body is not JSON") from None
        if not isinstance(obj, dict) or "jws" not in obj:
            if isinstance(obj, dict) and "processId" in obj:
                raise ApiError(400, code="Unsigned", message="the entry is not signed: send {\"jws\": \"<compact JWS>\"} "
                                                "signed by the sending node")
            raise ApiError(400, code="MalformedRequest", message='the request body must be {"jws": "<compact JWS>"}')
        if set(obj) != {"jws"}:
            extra = sorted(set(obj) - {"jws"})[0]
            raise ApiError(400, code="MalformedRequest", message=f"unknown member {echo(extra)} in the request body")
        try:
            signed = parse_signed_entry(obj["jws"], max_bytes=self.settings.max_entry_bytes)
        except EntryError as exc:
            raise ApiError(413 if exc.code == "TooLarge" else 400, code=exc.code, message=f"{exc}; nothing was appended") from None
        entry = signed.entry
        who = caller.participant_id
        if who not in signed.parties:
            provider, consumer = (echo(entry[k], quote=False) for k in ("provider", "consumer"))
            raise ApiError(403, code="NotAParty", message=f"the caller {echo(who, quote=False)} is not a party named in the entry "
                                             f"(provider {provider}, consumer {consumer})")
        if who != signed.sender:
            raise ApiError(403, code="NotTheSender", message=f"the entry's sender is {echo(signed.sender, quote=False)} but the "
                                                f"caller is {echo(who, quote=False)}: "
                                                "each party logs the events it sends")
        skew = self.settings.max_clock_skew_seconds
        if entry["timestamp"][:19] > self._latest_acceptable(skew):
            raise ApiError(400, code="FutureTimestamp", message=f"the entry's timestamp {entry['timestamp']} is more than "
                                                   f"{skew} s in the future")
        age = self.settings.max_entry_age_seconds
        if entry["timestamp"][:19] < self._earliest_acceptable(age):
            raise ApiError(400, code="StaleTimestamp", message=f"the entry's timestamp {entry['timestamp']} is more than {age} s "
                                                  "before the clearing house's clock (rule: [clearinghouse] "
                                                  "max_entry_age_seconds); nothing was appended")
        try:
            key = await self.keys.key_for(signed.sender)
        except ParticipantKeyError as exc:
            raise ApiError(exc.status, code=exc.code, message=f"{exc}; nothing was appended") from None
        try:
            await self.verifier.verify(signed, key)
        except EntryError as exc:
            raise ApiError(400, code=exc.code, message=f"{exc}; nothing was appended") from None
        except VerifierUnavailable as exc:
            raise ApiError(503, code="VerifierUnavailable", message=f"{exc}; nothing was appended, retry later") from None
        outcome, batch = await self.sequencer.submit(PendingEntry(
            leaf_hash=signed.leaf_hash, canonical=signed.canonical.decode(), protected=signed.protected,
            signature=signed.signature, process_id=signed.process_id, event=entry["event"],
            provider=entry["provider"], consumer=entry["consumer"], submitter=who))
        if isinstance(outcome, Duplicate):
            raise ApiError(409, code="Replayed", message=f"this entry is already in the log at index {outcome.index}; "
                                            "nothing was appended", leafIndex=outcome.index)
        if isinstance(outcome, WrongParties):
            raise ApiError(409, f"process {outcome.process_id} belongs to provider {outcome.provider} and consumer "
                                f"{outcome.consumer}; nothing was appended", "ProcessPartiesMismatch")
        assert isinstance(outcome, Appended)
        return _json({
            "leafIndex": outcome.index, "leafHash": encode_hash(signed.leaf_hash), "treeSize": batch.size,
            "checkpoint": batch.checkpoint, "inclusionProof": batch.proof_b64(outcome.index),
            "receivedAt": batch.received_iso or _set_iso(batch),
        }, 201)

    async def get_inclusion(self, request: web.Request) -> web.Response:
        await self._caller(request)
        index = _int_param(request, "index", ...)
        size = _int_param(request, "size", None)
        try:
            size, proof, note = await self.db.read(_inclusion_with_checkpoint, index, size)
        except ProofRangeError as exc:
            raise ApiError(400, code="OutOfRange", message=str(exc)) from None
        return _json({"leafIndex": index, "treeSize": size, "inclusionProof": [encode_hash(h) for h in proof],
                      "checkpoint": note})

    async def get_consistency(self, request: web.Request) -> web.Response:
        await self._caller(request)
        old = _int_param(request, "from", ...)
        new = _int_param(request, "to", None)
        try:
            new, proof, note = await self.db.read(_consistency_with_checkpoint, old, new)
        except ProofRangeError as exc:
            raise ApiError(400, code="OutOfRange", message=str(exc)) from None
        return _json({"from": old, "to": new, "consistencyProof": [encode_hash(h) for h in proof],
                      "checkpoint": note})

    async def get_process_entries(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        pid = request.match_info["pid"]
        if len(pid) > 256:
            raise ApiError(400, code="MalformedRequest", message="process ids are at most 256 characters")
        after = _int_param(request, "after", -1, low=-1)
        limit = _int_param(request, "limit", 100, low=1, high=MAX_PROOF_PAGE)
        size = _int_param(request, "size", None)
        parties = await self.db.read(store.process_parties, pid)
        auditor = self.is_auditor(caller)
        if not auditor and (parties is None or caller.participant_id not in parties):
            raise ApiError(403, code="NotAParty", message=f"{echo(caller.participant_id, quote=False)} is not a party to process "
                                             f"{echo(pid, quote=False)} "
                                             "(only its provider, its consumer and auditors may read it)")
        if parties is None:
            raise ApiError(404, code="UnknownProcess", message=f"the log has no entries for process {echo(pid, quote=False)}")
        try:
            tree, items = await self.db.read(store.list_process_entries, pid, after, limit, size)
        except ProofRangeError as exc:
            raise ApiError(400, code="OutOfRange", message=str(exc)) from None
        return _json({"processId": pid, "provider": parties[0], "consumer": parties[1], "treeSize": tree.size,
                      "checkpoint": tree.checkpoint, "entries": [_item(i) for i in items],
                      "next": items[-1]["leafIndex"] if len(items) == limit else None})

    async def get_entry(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        raw = request.match_info["index"]
        if not raw.isdigit() or len(raw) > 19:
            raise ApiError(400, code="MalformedRequest", message="the entry index must be a non-negative integer")
        index = int(raw)
        size = _int_param(request, "size", None)
        try:
            tree, item, process_id = await self.db.read(store.entry_at, index, size)
        except ProofRangeError as exc:
            raise ApiError(400, code="OutOfRange", message=str(exc)) from None
        if item is not None and not self.is_auditor(caller):
            parties = await self.db.read(store.process_parties, process_id)
            if parties is None or caller.participant_id not in parties:
                raise ApiError(403, code="NotAParty", message=f"{echo(caller.participant_id, quote=False)} may not read entry {index} "
                                                 "(only the parties of its process and auditors may)")
        if item is None:
            raise ApiError(404, code="NoSuchEntry", message=f"the log has no entry {index} in its tree of size {tree.size}")
        return _json({**_item(item), "treeSize": tree.size, "checkpoint": tree.checkpoint})

    async def get_entries(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        if not self.is_auditor(caller):
            raise ApiError(403, code="NotAnAuditor", message=f"{echo(caller.participant_id, quote=False)} is not an auditor of "
                                                "this clearing house; "
                                                "parties read their processes at /processes/{pid}/entries")
        proofs = _bool_param(request, "proofs")
        start = _int_param(request, "start", 0)
        limit = _int_param(request, "limit", MAX_PROOF_PAGE if proofs else MAX_PAGE, low=1,
                           high=MAX_PROOF_PAGE if proofs else MAX_PAGE)
        size = _int_param(request, "size", None)
        try:
            tree, items = await self.db.read(store.list_entries, start, limit, size, proofs)
        except ProofRangeError as exc:
            raise ApiError(400, code="OutOfRange", message=str(exc)) from None
        nxt = items[-1]["leafIndex"] + 1 if items and len(items) == limit else None
        return _json({"treeSize": tree.size, "checkpoint": tree.checkpoint, "entries": [_item(i) for i in items],
                      "next": nxt})


def _inclusion_with_checkpoint(conn, index: int, size: int | None):  # noqa: ANN001, ANN202
    size, proof = store.inclusion(conn, index, size)
    return size, proof, store.checkpoint_at(conn, size)


def _consistency_with_checkpoint(conn, old: int, new: int | None):  # noqa: ANN001, ANN202
    new, proof = store.consistency(conn, old, new)
    return new, proof, store.checkpoint_at(conn, new)


def _item(item: dict) -> dict:
    out = dict(item)
    out["receivedAt"] = iso(item["receivedAt"])
    if "inclusionProof" in out:
        out["inclusionProof"] = [encode_hash(h) for h in item["inclusionProof"]]
    return out


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _int_param(request: web.Request, name: str, default: Any, *, low: int = 0, high: int = (1 << 63) - 1) -> Any:
    raw = request.query.get(name)
    if raw is None:
        if default is ...:
            raise ApiError(400, code="MalformedRequest", message=f"query parameter {echo(name)} is required")
        return default
    if not (raw.isdigit() or (raw.startswith("-") and raw[1:].isdigit())) or len(raw) > 20:
        raise ApiError(400, code="MalformedRequest", message=f"query parameter {echo(name)} must be an integer")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(400, code="MalformedRequest", message=f"query parameter {echo(name)} must be between {low} and {high}")
    return value


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ApiError(400, code="MalformedRequest", message=f"query parameter {echo(name)} must be true or false")
    return raw in ("true", "1")


def lock_sqlite(url: str) -> Any:
    """One clearing-house process per SQLite file (PostgreSQL takes several): hold a lock file."""
    path = Path(url.split(":///", 1)[1])
    fh = open(f"{path}.lock", "a+")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise ConfigError(f"another clearing-house process is using {path}") from None
    return fh


async def serve(settings: ClearingHouseSettings, *, ready_line: bool = True,
                ready: Callable[[str], Awaitable[None]] | None = None) -> None:
    """Run until cancelled; prints ``listening on URL`` once the port is bound and the log is ready."""
    lock = lock_sqlite(settings.database_url) if settings.database_url.startswith("sqlite") else None
    ch = ClearingHouse(settings)
    try:
        runner, url = await listen(ch.make_app(), settings.listen_host, settings.listen_port)
        if settings.identity_mode == "dev-shared-secret":
            log.warning("identity mode is dev-shared-secret: for development and tests only")
        log.info("log %s, verifier key %s", ch.signer.origin, ch.signer.verifier_key)
        if ready_line:
            print(f"listening on {url}", flush=True)
        if ready is not None:
            await ready(url)
        await serve_forever(runner)
    finally:
        if lock is not None:
            lock.close()


def run(settings: ClearingHouseSettings) -> int:
    return run_process(serve(settings), startup_errors=(ConfigError, StoreError),
                       telemetry=("connector-clearinghouse", settings.telemetry))
