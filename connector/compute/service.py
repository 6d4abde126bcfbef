"""The node's side of computation-only offers.

Provider: an `HKS-Compute` transfer request is decided for the action hks:compute (not use);
its start gives the usual pull endpoint and token. `POST /data/{tid}` with {"query": ...}
under that token: one transaction decides the agreement's policy for this computation
(count and privacy budget read under a lock and reserved), checks the query against the
hks:aggregate terms and records the computation; DuckDB runs it in a worker thread with
memory and time limits; the result's record (query digest, result digest, rows, groups
suppressed, epsilon) is logged by digest at the clearing house before the result leaves
when the policy requires logging. Anything that fails gives the reservation back.

Consumer: `POST /api/v1/agreements/{id}/computations` opens (or reuses) an HKS-Compute
transfer and relays the query and the result (JSON or CSV).
"""
from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import rfc8785
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Connection

from ..bodies import BodyTooLarge, read_limited
from ..identity import Caller
from ..policy import Request
from ..policy.compute_terms import ComputeTerms, terms_of
from ..protocol.errors import echo
from ..protocol.messages import endpoint_property
from ..protocol.negotiation import Role
from ..protocol.transfer import TransferState
from ..store.tables import agreements, assets, compute_budgets, computations, transfers
from ..node.dataplane import AccessRefused, DataPlane
from ..node.dataplane.access import consent_on_record
from ..node.transfers import AGREEMENT_WITH_ACCESS
from ..node.dataplane.common import (AGREEMENT_GONE, PURPOSE_TOO_LONG, TOKEN_DOES_NOT_VERIFY, TOKEN_EXPIRED,
                                     TOKEN_OF_ANOTHER, token_revoked)
from ..node.usage import (ACCESS_DENIED, DECIDED_AT_USE, EngineSentence, access_denied_peer_text, access_denied_text,
                          claims_context, ours)
from ..policy.explain import M_
from . import ACTION, FORMAT
from .engine import Limits, Result, run
from .query import Query, QueryRefused, parse, check
from .sql import kind_of
from ..errors import ComputeError

log = logging.getLogger("connector.compute")
Json = dict[str, Any]
MAX_QUERY_BODY = 64 * 1024
MAX_RESULT_BODY = 8 * 1024 * 1024
_BY_TOKEN = sa.select(transfers).where(transfers.c.token_hash == sa.bindparam("b_hash"),
                                       transfers.c.role == Role.PROVIDER.value)
_AGREEMENT = AGREEMENT_WITH_ACCESS.where(agreements.c.id == sa.bindparam("b_aid"))
_BUDGET = sa.select(compute_budgets).where(compute_budgets.c.agreement_id == sa.bindparam("b_aid"))
NOT_A_QUERY = ours(M_('the body must be JSON: {"query": <SQL text or query object>}'))
NOT_COMPUTABLE = ours(M_("computations run over a CSV, Parquet or NDJSON file under the data root; this asset is "
                         "none of these"))


def _digest(obj: Any) -> str:
    return hashlib.sha256(rfc8785.dumps(obj)).hexdigest()


@dataclass
class Reservation:
    transfer: Json
    agreement: Json
    kind: str
    path: str
    terms: ComputeTerms
    epsilon: float | None
    computation_id: int
    must_log: bool
    query_digest: str


class Refusal(ComputeError):
    def __init__(self, status: int, rule: str, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.status, self.rule, self.reasons = status, rule, reasons
        self.pending: list = []

    def response(self) -> web.Response:
        return web.json_response({"error": "computation refused", "rule": self.rule, "reasons": self.reasons},
                                 status=self.status)


class ComputeService:
    def __init__(self, node: Any) -> None:
        self.node = node
        s = node.settings
        self.limits = Limits(memory=f"{s.compute_memory_mb}MB", seconds=s.compute_time_ms / 1000.0, threads=1)
        self._slots = asyncio.Semaphore(s.compute_concurrency)

    @property
    def dataplane(self) -> DataPlane:
        return self.node.dataplane

    # ------------------------------------------------------- decisions
    def _source(self, asset: Json) -> tuple[str, str] | None:
        address = asset.get("data_address") or {}
        if address.get("type") != "file":
            return None
        kind = kind_of(str(address.get("path", "")), asset.get("content_type"))
        if kind is None:
            return None
        try:
            return kind, str(self.dataplane._file_path(address["path"]))
        except ValueError:
            return None

    def _decide(self, agreement: Json, asset: Json, claims: Json, *, now: float, count: int,
                purpose: str | None, deferred: frozenset[str], conn: Connection | None = None):  # noqa: ANN202
        policy = self.dataplane.policies.compile(agreement["policy"])
        consent = consent_on_record(conn, agreement["id"], policy) if conn is not None else {}
        context = claims_context(Caller(agreement["consumer_id"], claims), now=now,
                                 asset_properties=asset["properties"], deferred=deferred, use_count=count,
                                 agreement_time=agreement["created_at"], purpose=purpose, **consent)
        return policy.evaluate(
            Request(action=ACTION, target=asset["id"], assignee=agreement["consumer_id"]), context)

    def _terms(self, decision: Any) -> tuple[ComputeTerms | None, list[str]]:
        """The aggregate terms, and the before-release duties this node cannot perform on a computation."""
        problems = []
        try:
            terms = terms_of(decision.duties)
        except ValueError as exc:  # the compiler's technical words, as a parameter shown as they are
            return None, [ours(M_("the agreement's computation terms are invalid (%(problem)s): refused (fail "
                                  "closed)"), problem=str(exc)[:500])]
        if terms is None:
            problems.append(ours(M_("the agreement's policy has no hks:aggregate duty stating what may be computed: "
                                    "refused (fail closed)")))
        for duty in decision.duties:
            if duty.timing != "before-release" or duty.kind in ("aggregate-only", "notify", "inform"):
                continue
            if duty.kind == "log":
                if self.node.clearinghouse is None:
                    problems.append(ours(M_("The policy requires every computation to be logged to the clearing "
                                            "house, and this node has no clearing house configured: refused (fail "
                                            "closed).")))
            else:
                problems.append(ours(M_("The policy requires '%(action)s' before release, which this node cannot "
                                        "perform on a computation: refused (fail closed)."), action=duty.action))
        return terms, problems

    def transfer_refusal(self, conn: Connection, agreement: Json, claims: Json,
                         now: float) -> tuple[str, list[str]] | None:
        """An HKS-Compute transfer request: may the consumer compute on this asset at all?"""
        asset = conn.execute(sa.select(assets).where(assets.c.id == agreement["asset_id"])).mappings().first()
        if asset is None:
            return "PolicyDenied", [ours(M_("the agreement's asset %(asset)s no longer exists"),
                                         asset=echo(agreement["asset_id"]))]
        asset = dict(asset)
        if self._source(asset) is None:
            return "AssetUnavailable", [NOT_COMPUTABLE]
        denied = self.dataplane._access_refusal(agreement, asset, claims, now)
        if denied is not None:
            return ACCESS_DENIED, denied
        budget = conn.execute(_BUDGET, {"b_aid": agreement["id"]}).mappings().first()
        try:
            decision = self._decide(agreement, asset, claims, now=now, count=budget["computations"] if budget else 0,
                                    purpose=None, deferred=DECIDED_AT_USE)
        except Exception as exc:  # noqa: BLE001 - fail closed
            log.exception("the policy of agreement %s could not be evaluated", agreement["id"])
            return "PolicyDenied", [ours(M_("the agreement's policy could not be evaluated (%(error)s): refused"),
                                         error=type(exc).__name__)]
        if not decision.permitted:  # the engine's sentences, with their message ids for the console
            return "PolicyDenied", [EngineSentence(r) for r in decision.reasons if r.code != "constraint-deferred"] \
                or [ours(M_("not permitted"))]
        _terms, problems = self._terms(decision)
        return ("PolicyDenied", problems) if problems else None

    def _record(self, conn: Connection, row: Json, agreement_id: str, consumer_id: str, now: float, *,
                permitted: bool, rule: str | None, reasons: list[str], query_digest: str | None) -> int:
        return conn.execute(computations.insert().returning(computations.c.id), {
            "agreement_id": agreement_id, "transfer_id": row["id"], "consumer_id": consumer_id, "at": now,
            "permitted": permitted, "rule": rule, "reasons": reasons, "query_sha256": query_digest}).scalar_one()

    def _log_outbox(self, conn: Connection, row: Json, consumer: str, record: Json, now: float) -> list:
        ch = self.node.clearinghouse
        if ch is None:
            return []
        return ch.record(conn, {"id": row["id"], "role": "provider", "counterparty_id": consumer},
                         {"@type": "Computation"}, now, owner=self.node.dispatcher.owner,
                         lease_seconds=self.node.dispatcher.lease_seconds, event="data.computed",
                         digest=bytes.fromhex(_digest(record)))

    def _reserve(self, conn: Connection, transfer_id: str, token_hash: str, query: "Query | QueryRefused",
                 purpose: str | None, now: float) -> "Reservation | Refusal":
        row = conn.execute(_BY_TOKEN, {"b_hash": token_hash}).mappings().first()
        if row is None:
            raise AccessRefused(401, [TOKEN_DOES_NOT_VERIFY])
        if row["id"] != transfer_id:
            raise AccessRefused(401, [TOKEN_OF_ANOTHER])
        if row["state"] != TransferState.STARTED.value:
            raise AccessRefused(401, [token_revoked(row["state"])])
        if (row["token_expires_at"] or 0) < now:
            raise AccessRefused(401, [TOKEN_EXPIRED])
        if row["format"] != FORMAT:
            raise AccessRefused(409, [ours(M_("this transfer is not a computation (format %(format)s); fetch its data "
                                              "with GET"), format=FORMAT)])
        row = dict(row)
        agreement = conn.execute(_AGREEMENT, {"b_aid": row["agreement_id"]}).mappings().first()
        asset = conn.execute(sa.select(assets).where(assets.c.id == agreement["asset_id"])).mappings().first() \
            if agreement else None
        if agreement is None or asset is None:
            raise AccessRefused(403, [AGREEMENT_GONE])
        agreement, asset = dict(agreement), dict(asset)
        aid, consumer = agreement["id"], agreement["consumer_id"]
        if self.node.db.is_postgres:  # the budget row must exist to be locked
            conn.execute(sa.text("INSERT INTO compute_budgets (agreement_id, computations, epsilon_spent, updated_at) "
                                 "VALUES (:a, 0, 0, :t) ON CONFLICT (agreement_id) DO NOTHING"), {"a": aid, "t": now})
            budget = conn.execute(_BUDGET.with_for_update(), {"b_aid": aid}).mappings().first()
        else:  # SQLite: one transaction at a time on the one connection
            budget = conn.execute(_BUDGET, {"b_aid": aid}).mappings().first()
            if budget is None:
                conn.execute(compute_budgets.insert(), {"agreement_id": aid, "computations": 0, "epsilon_spent": 0.0,
                                                        "updated_at": now})
                budget = {"computations": 0, "epsilon_spent": 0.0}
        qd = query.digest() if isinstance(query, Query) else None

        def refuse(status: int, rule: str, reasons: list[str], told: list[str] | None = None) -> Refusal:
            self._record(conn, row, aid, consumer, now, permitted=False, rule=rule, reasons=reasons, query_digest=qd)
            refusal = Refusal(status, rule, reasons if told is None else told)
            refusal.pending = self._log_outbox(conn, row, consumer, {
                "agreement": aid, "transfer": row["id"], "queryDigest": qd, "refused": rule}, now)
            return refusal

        if isinstance(query, QueryRefused):  # not in the query language: refused, and on record
            return refuse(query.status, query.rule, [query.message])
        source = self._source(asset)
        if source is None:
            return refuse(409, "asset", [ours(M_("the asset is no longer a CSV, Parquet or NDJSON file under the data "
                                                 "root"))])
        denied = self.dataplane._access_refusal(agreement, asset, row["claims"] or {}, now)
        if denied is not None:
            return refuse(403, "access-policy", [access_denied_text(denied)], [access_denied_peer_text(denied)])
        try:
            decision = self._decide(agreement, asset, row["claims"] or {}, now=now, count=budget["computations"],
                                    purpose=purpose, deferred=frozenset(), conn=conn)
        except Exception as exc:  # noqa: BLE001 - fail closed, and say so
            log.exception("the policy of agreement %s could not be evaluated", aid)
            return refuse(403, "policy", [ours(M_("the agreement's policy could not be evaluated (%(error)s): "
                                                  "refused (fail closed)"), error=type(exc).__name__)])
        if not decision.permitted:
            return refuse(403, "policy", [EngineSentence(r) for r in decision.reasons] or [ours(M_("not permitted"))])
        terms, problems = self._terms(decision)
        if problems or terms is None:
            return refuse(403, "policy", problems)
        try:
            check(query, terms)
        except QueryRefused as exc:
            return refuse(exc.status, exc.rule, [exc.message])
        eps = terms.epsilon_per_query
        if eps is not None and budget["epsilon_spent"] + eps > terms.epsilon_total + 1e-9:
            return refuse(403, "hks:epsilonTotal", [ours(M_(
                "the privacy budget is spent: %(spent)s of %(total)s used, this computation needs %(needed)s "
                "(hks:epsilonTotal)"), spent=f"{budget['epsilon_spent']:g}", total=f"{terms.epsilon_total:g}",
                needed=f"{eps:g}")])
        conn.execute(sa.update(compute_budgets).where(compute_budgets.c.agreement_id == aid).values(
            computations=compute_budgets.c.computations + 1,
            epsilon_spent=compute_budgets.c.epsilon_spent + (eps or 0.0), updated_at=now))
        cid = self._record(conn, row, aid, consumer, now, permitted=True, rule=None, reasons=[], query_digest=qd)
        must_log = any(d.kind == "log" and d.timing == "before-release" for d in decision.duties)
        return Reservation(row, agreement, source[0], source[1], terms, eps, cid, must_log, qd)

    def _give_back(self, conn: Connection, res: Reservation, rule: str, reason: str) -> None:
        conn.execute(sa.update(compute_budgets).where(compute_budgets.c.agreement_id == res.agreement["id"]).values(
            computations=compute_budgets.c.computations - 1,
            epsilon_spent=compute_budgets.c.epsilon_spent - (res.epsilon or 0.0)))
        conn.execute(sa.update(computations).where(computations.c.id == res.computation_id).values(
            permitted=False, rule=rule, reasons=[reason[:1000]]))

    def _served(self, conn: Connection, res: Reservation, result: Result, record: Json, now: float,
                logged: bool) -> list:
        conn.execute(sa.update(computations).where(computations.c.id == res.computation_id).values(
            result_sha256=record["resultDigest"], rows=record["rows"], groups_suppressed=record["groupsSuppressed"],
            epsilon=record["epsilonSpent"], record_sha256=_digest(record)))
        if logged:
            return []
        return self._log_outbox(conn, res.transfer, res.agreement["consumer_id"], record, now)

    def _submit(self, pending: list) -> None:
        entries = [o.entry for o in pending if getattr(o, "entry", None) is not None]
        if (entries or any(getattr(o, "waiting", False) for o in pending)) and self.node.dispatcher is not None:
            self.node.dispatcher.submit(entries)  # none leased: a claim for those queued behind others

    # ---------------------------------------------------- provider: POST /data/{tid}
    async def serve(self, request: web.Request) -> web.Response:
        transfer_id = request.match_info["tid"]
        try:
            token_hash = DataPlane.token_hash(request.headers.get("Authorization"))
            purpose = request.headers.get("X-Usage-Purpose") or None
            if purpose is not None and len(purpose) > 512:
                raise AccessRefused(400, [PURPOSE_TOO_LONG])
            try:
                raw = await read_limited(request, MAX_QUERY_BODY)  # type: ignore[arg-type] - same reading API
            except BodyTooLarge:
                raise AccessRefused(413, [ours(M_("a computation request is at most %(n)s bytes"),
                                               n=MAX_QUERY_BODY)]) from None
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise AccessRefused(400, [NOT_A_QUERY]) from None
            if not isinstance(doc, dict) or "query" not in doc:
                raise AccessRefused(400, [NOT_A_QUERY])
            try:
                query: Query | QueryRefused = parse(doc["query"])
            except QueryRefused as exc:  # answered only after the token is checked
                query = exc
            outcome = await self.node.db.transaction(self._reserve, transfer_id, token_hash, query, purpose,
                                                     time.time())
        except AccessRefused as exc:
            log.warning("transfer %s: computation refused (%s): %s", echo(transfer_id, 100), exc.status,
                        "; ".join(exc.reasons)[:500])
            return web.json_response({"error": "computation refused", "reasons": exc.reasons}, status=exc.status)
        self._submit(outcome.pending if isinstance(outcome, Refusal) else [])
        if isinstance(outcome, Refusal):
            log.info("transfer %s: computation refused by %s", transfer_id, outcome.rule)
            return outcome.response()
        return await self._execute(outcome, query)

    async def _execute(self, res: Reservation, query: Query) -> web.Response:
        try:
            async with self._slots:
                result = await asyncio.to_thread(run, query, kind=res.kind, path=res.path,
                                                 min_group=res.terms.min_group_size, max_rows=res.terms.max_rows,
                                                 epsilon=res.epsilon, limits=self.limits)
        except QueryRefused as exc:
            await self.node.db.transaction(self._give_back, res, exc.rule, exc.message)
            log.warning("transfer %s: computation stopped (%s): %s", res.transfer["id"], exc.rule, exc.message)
            return Refusal(exc.status, exc.rule, [exc.message]).response()
        except Exception as exc:  # noqa: BLE001 - nothing leaves; the reservation is given back
            log.exception("transfer %s: the computation failed", res.transfer["id"])
            await self.node.db.transaction(self._give_back, res, "error", type(exc).__name__)
            return Refusal(500, "error", [ours(M_("the computation failed at the provider"))]).response()
        now = time.time()
        record = {"agreement": res.agreement["id"], "transfer": res.transfer["id"], "queryDigest": res.query_digest,
                  "resultDigest": result.digest(), "rows": len(result.rows), "groupsSuppressed": result.suppressed,
                  "epsilonSpent": result.epsilon, "at": round(now, 3)}
        logged = False
        if res.must_log:
            ch = self.node.clearinghouse
            jws = ch.sign(process_id=res.transfer["id"], event="data.computed", provider=self.node.participant_id,
                          consumer=res.agreement["consumer_id"], digest=bytes.fromhex(_digest(record)), ts=now)
            try:
                await ch.submit_now(jws)
                logged = True
            except Exception as exc:  # noqa: BLE001 - no receipt, no result
                log.warning("transfer %s: the clearing house did not accept the computation entry: %s %s",
                            res.transfer["id"], type(exc).__name__, exc)
                reason = ours(M_("The policy requires every computation to be logged to the clearing house, and it "
                                 "did not accept the entry: refused (fail closed)."))
                await self.node.db.transaction(self._give_back, res, "hks:log", reason)
                return Refusal(403, "hks:log", [reason]).response()
        pending = await self.node.db.transaction(self._served, res, result, record, now, logged)
        self._submit(pending)
        return web.json_response({"columns": result.columns, "rows": result.rows, "record": record,
                                  "recordSha256": _digest(record), "logged": logged or bool(pending)})

    # ------------------------------------------------ audit: GET /api/v1/agreements/{id}/computations
    async def list_computations(self, request: web.Request) -> web.Response:
        aid = request.match_info["id"]
        query = sa.select(computations).where(computations.c.agreement_id == aid).order_by(computations.c.id) \
            .limit(1000)
        rows = await self.node.db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])
        return web.json_response([{
            "id": r["id"], "transferId": r["transfer_id"], "consumerId": r["consumer_id"], "at": r["at"],
            "permitted": r["permitted"], "rule": r["rule"], "reasons": r["reasons"], "querySha256": r["query_sha256"],
            "resultSha256": r["result_sha256"], "rows": r["rows"], "groupsSuppressed": r["groups_suppressed"],
            "epsilon": r["epsilon"], "recordSha256": r["record_sha256"]} for r in rows])

    # ------------------------------------------------ consumer: POST /api/v1/agreements/{id}/computations
    async def computations(self, request: web.Request) -> web.StreamResponse:
        aid = request.match_info["id"]
        try:
            raw = await read_limited(request, MAX_QUERY_BODY)  # type: ignore[arg-type] - same reading API
        except BodyTooLarge:
            return _error(413, f"the body is at most {MAX_QUERY_BODY} bytes")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, "the body must be JSON: {\"query\": ..., \"format\": \"json\"|\"csv\", \"purpose\": ...}")
        if not isinstance(doc, dict) or "query" not in doc or set(doc) - {"query", "format", "purpose"}:
            return _error(400, "the body has query (SQL text or query object), and optionally format and purpose")
        fmt = doc.get("format", "json")
        purpose = doc.get("purpose")
        if fmt not in ("json", "csv") or (purpose is not None and (not isinstance(purpose, str) or len(purpose) > 512)):
            return _error(400, "format is json or csv; purpose a string of at most 512 characters")
        agreement = await self.node.db.read(lambda conn: conn.execute(sa.select(agreements.c.id).where(
            agreements.c.id == aid, agreements.c.role == Role.CONSUMER.value)).first())
        if agreement is None:
            return _error(404, f"no agreement {echo(aid)} held by this participant as consumer")
        for fresh in (False, True):
            row = await self._open_transfer(aid, fresh=fresh)
            if isinstance(row, web.Response):
                return row
            sent = await self._send(aid, row, doc["query"], purpose)
            if isinstance(sent, web.Response):
                return sent
            status, body = sent
            if status != 401:  # 401: the token expired or was revoked: once more on a new transfer
                break
        try:
            result = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(502, "the provider's answer is not JSON")
        if status != 200:  # the provider's refusal, relayed in our shape and clipped (a peer's words)
            reasons = result.get("reasons") if isinstance(result, dict) else None
            reasons = [str(r)[:500] for r in reasons[:10]] if isinstance(reasons, list) else []
            rule = result.get("rule") if isinstance(result, dict) else None
            return web.json_response({"error": "the provider refused the computation",
                                      "rule": str(rule)[:64] if rule is not None else None, "reasons": reasons},
                                     status=status if 400 <= status < 600 else 502)
        if not _valid_result(result):
            return _error(502, "the provider's result is not a table with its record")
        result["transferId"] = row["id"]
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(result["columns"])
            writer.writerows(result["rows"])
            return web.Response(text=out.getvalue(), content_type="text/csv",
                                headers={"X-Record-Sha256": result["recordSha256"],
                                         "X-Query-Sha256": result["record"]["queryDigest"]})
        return web.json_response(result)

    async def _send(self, aid: str, row: Json, query: Any, purpose: str | None) -> "tuple[int, bytes] | web.Response":
        address = row["data_address"] or {}
        endpoint = address.get("endpoint") or endpoint_property(address, "endpoint")
        token = endpoint_property(address, "authorization")
        if not endpoint or not token:
            return _error(409, "the provider gave no endpoint for the computation transfer")
        headers = {"Authorization": token, "Content-Type": "application/json"}
        if purpose:
            headers["X-Usage-Purpose"] = purpose
        timeout = aiohttp.ClientTimeout(total=max(30.0, self.limits.seconds * 4), connect=10)
        try:
            async with self.node.session.post(endpoint, data=orjson.dumps({"query": query}), headers=headers,
                                              timeout=timeout, allow_redirects=False) as resp:
                return resp.status, await read_limited(resp, MAX_RESULT_BODY)
        except BodyTooLarge:
            return _error(502, "the provider's result is larger than this node accepts")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("agreement %s: the provider's compute endpoint failed: %s %s", aid, type(exc).__name__, exc)
            return _error(502, f"the provider's compute endpoint could not be reached ({type(exc).__name__})")

    async def _open_transfer(self, aid: str, fresh: bool = False) -> "Json | web.Response":
        """The newest started HKS-Compute transfer of the agreement, or (none, or `fresh`) a new one."""
        query = sa.select(transfers).where(transfers.c.agreement_id == aid, transfers.c.role == Role.CONSUMER.value,
                                           transfers.c.format == FORMAT,
                                           transfers.c.state == TransferState.STARTED.value
                                           ).order_by(transfers.c.created_at.desc()).limit(1)
        row = None if fresh else await self.node.db.read(lambda conn: conn.execute(query).mappings().first())
        if row is not None:
            return dict(row)
        try:
            started = await self.node.transfers.start(agreement_id=aid, fmt=FORMAT)
        except Exception as exc:  # noqa: BLE001 - UnknownProcess / Refused: our own rule, in words
            return _error(409, getattr(exc, "reason", None) or str(exc)[:200])
        row = await self.node.transfers.wait_for(started["id"], {TransferState.STARTED.value}, 20.0)
        if row is None or row["state"] != TransferState.STARTED.value:
            ended = (row or {}).get("termination") or {}
            why = ended.get("reason") if isinstance(ended, dict) else None
            if not isinstance(why, list) or not why:
                why = [str((row or {}).get("error") or "the provider did not start the computation transfer in time")]
            return web.json_response({"error": "the provider refused the computation transfer",
                                      "reasons": [str(r)[:500] for r in why[:10]], "transferId": started["id"]},
                                     status=403)
        return row


def _valid_result(doc: Any) -> bool:
    return (isinstance(doc, dict) and isinstance(doc.get("columns"), list) and isinstance(doc.get("rows"), list)
            and all(isinstance(r, list) for r in doc["rows"]) and isinstance(doc.get("record"), dict)
            and isinstance(doc.get("recordSha256"), str) and isinstance(doc["record"].get("queryDigest"), str))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
