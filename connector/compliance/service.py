"""The node's side of cross-border compliance (I/O: the node's database and its clearing-house log).

Hooks into the node, each a call from one place:
* `on_agreement` — NegotiationService, in the transaction that records an agreement (both roles);
* `gate(inner)` — wraps the provider's transfer-start check: a cross-border agreement's first
  transfer waits for its preconditions (fail closed, with the reason);
* `routes(wrap)` — the management API under /api/v1/compliance.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import time
from datetime import date, datetime, timezone
from typing import Any, Callable

import orjson
import rfc8785
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Connection

from ..store.tables import (access_log, agreements, assets, compliance_record_versions, compliance_records, policies,
                            transfers)
from ..vocab import POLICY_CONTEXT_FILES
from . import filing as fil
from . import provenance
from . import record as rec

log = logging.getLogger("connector.compliance")
# the fields in which one agreement's terms differ from another's made from the same offer
_IDENTITY_FIELDS = frozenset({"@id", "uid", "assigner", "assignee", "timestamp"})
_UUID_URN = re.compile(r"^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
Json = dict[str, Any]
CODE = "CrossBorderPrecondition"


class ComplianceService:
    def __init__(self, node: Any) -> None:
        self.node = node
        settings = node.settings
        self.participant_id = node.participant_id
        self.verified_by = "station" if settings.identity_mode == "station" else settings.identity_mode
        self.own_claims = {"organisation": settings.node.name, "jurisdiction": settings.node.jurisdiction or None}
        self.clock: Callable[[], float] = getattr(node, "clock", None) or time.time  # the node's clock where it has one
        self._profile_by_terms: dict[bytes, bool] = {}  # see _shape_says_not_cross_border

    # ------------------------------------------------------------------ hooks
    def on_agreement(self, conn: Connection, agreement: Json, negotiation: Json, ts: float,
                     peer_claims: Any = None) -> None:
        """An agreement was just recorded (same transaction). A cross-border one gets its record,
        whose SHA-256 goes to the clearing house through the outbox. A record that cannot be made
        does not stop the agreement: its transfers are refused instead (fail closed, `gate`)."""
        if self._shape_says_not_cross_border(agreement["policy"]):
            return
        try:
            policy = self.node.catalog.policies.compile(agreement["policy"])
        except Exception:  # noqa: BLE001 - an agreement whose policy does not compile is refused at use anyway
            log.warning("agreement %s: its policy does not compile; no compliance record", str(agreement.get("id"))[:100])
            return
        if not rec.is_cross_border(policy):
            # Most agreements: no savepoint. Taking one for every agreement cost 9% of the
            # provider's CPU per negotiation (bench/negotiation.py, profiled).
            return
        try:
            with conn.begin_nested():
                self._create(conn, agreement, negotiation, ts, peer_claims, policy)
        except Exception:  # noqa: BLE001 - logged; the agreement's transfers are refused without a record
            log.exception("agreement %s: its cross-border record could not be made", str(agreement.get("id"))[:100])

    def _shape_says_not_cross_border(self, body: Any) -> bool:
        """True when this agreement's terms are known not to be cross-border without compiling them.

        Every agreement's policy is new to the policy cache (its own id and timestamp), and compiling
        each one cost 8% of a node's CPU per negotiation. Whether a policy is cross-border depends
        on its profile, its context and its uid (rec.is_cross_border). When the uid is a plain
        `urn:uuid:` (which no standard context rewrites, and which is never the GBA template) and the
        context is absent or standard, the answer is the profile's, the same for every agreement with
        the same terms apart from the identity fields: kept per terms. Anything else is compiled."""
        if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str) and _UUID_URN.match(body[k]) for k in ("@id", "uid") if k in body):
            return False
        context = body.get("@context")
        names = [context] if isinstance(context, str) else context if isinstance(context, list) else None
        if context is not None and (names is None or not all(isinstance(n, str) and n in POLICY_CONTEXT_FILES
                                                             for n in names)):
            return False
        terms = {k: v for k, v in body.items() if k not in _IDENTITY_FIELDS}
        try:
            key = hashlib.sha256(orjson.dumps(terms, option=orjson.OPT_SORT_KEYS)).digest()
        except TypeError:
            return False
        known = self._profile_by_terms.get(key)
        if known is None:
            try:
                known = rec.CROSS_BORDER_PROFILE in self.node.catalog.policies.compile(body).profile
            except Exception:  # noqa: BLE001 - the caller compiles it again and says why
                return False
            self._profile_by_terms[key] = known
            if len(self._profile_by_terms) > 256:
                self._profile_by_terms.pop(next(iter(self._profile_by_terms)))
        return not known

    def _create(self, conn: Connection, agreement: Json, negotiation: Json, ts: float, peer_claims: Any,
                policy: Any) -> None:
        me = rec.party(self.participant_id, self.own_claims, self.verified_by)
        peer = rec.party(negotiation["counterparty_id"], peer_claims if isinstance(peer_claims, dict) else None,
                         self.verified_by)
        provider, consumer = (me, peer) if agreement["role"] == "provider" else (peer, me)
        record = rec.build_record(agreement_id=agreement["id"], negotiation_id=negotiation["id"],
                                  role=agreement["role"], asset_id=agreement["asset_id"], policy=policy,
                                  agreed_at=ts, provider=provider, consumer=consumer)
        sha = rec.digest(record)
        conn.execute(compliance_records.insert(), {
            "agreement_id": agreement["id"], "role": agreement["role"], "version": 1, "record": record,
            "sha256": sha, "filed_on": None, "filing_reference": None,
            "created_at": ts, "updated_at": ts})
        self._version(conn, record, 1, sha, "created", ts)

    def gate(self, inner: Callable[..., Any]) -> Callable[..., Any]:
        """The provider's transfer-start check, with the cross-border preconditions first."""
        def check(conn: Connection, agreement: Json, claims: Json, now: float) -> Any:
            refusal = self.precondition_refusal(conn, agreement)
            if refusal is not None:
                return refusal
            return inner(conn, agreement, claims, now)
        return check

    def precondition_refusal(self, conn: Connection, agreement: Json) -> tuple[str, list[str]] | None:
        row = conn.execute(sa.select(compliance_records.c.record).where(
            compliance_records.c.agreement_id == agreement["id"])).first()
        if row is None:
            try:
                cross = rec.is_cross_border(self.node.catalog.policies.compile(agreement["policy"]))
            except Exception:  # noqa: BLE001 - cannot tell: fail closed
                cross = True
            if cross:  # a cross-border agreement without its record (made before this version): refused
                return CODE, [f"agreement {str(agreement['id'])[:100]} is cross-border and has no compliance record: "
                              "refused (fail closed)"]
            return None
        record = row[0]
        problems = rec.preconditions(record)
        props = conn.execute(sa.select(assets.c.properties).where(assets.c.id == agreement["asset_id"])).scalar()
        wider = rec.asset_widening(record, (props or {}).get("dataCategories"))
        if wider:
            problems.append(f"categories widened, a new negotiation is needed (a change of the categories of "
                            f"personal information needs a supplemental or new contract): the asset now holds "
                            f"{', '.join(wider)[:200]}, beyond agreement {record['agreementId'][:100]}")
        if problems:
            log.warning("agreement %s: transfer refused, cross-border preconditions: %s",
                        record["agreementId"][:100], "; ".join(problems)[:500])
            return CODE, problems
        return None

    # ------------------------------------------------------------------ changes
    def _version(self, conn: Connection, record: Json, version: int, sha: str, change: str, ts: float) -> None:
        conn.execute(compliance_record_versions.insert(), {
            "agreement_id": record["agreementId"], "version": version, "record": record, "sha256": sha,
            "change": change, "at": ts})
        ch = self.node.clearinghouse
        if ch is None:
            return
        peer = record["consumer" if record["role"] == "provider" else "provider"]["participantId"]
        ch.record(conn, {"id": record["agreementId"], "role": record["role"], "counterparty_id": peer},
                  rfc8785.dumps(record), ts, owner=None, lease_seconds=self.node.settings.outbox_lease_seconds,
                  event="compliance.recorded", digest=bytes.fromhex(sha))

    def _change(self, conn: Connection, agreement_id: str, change: str, fn: Callable[[Json], Json], ts: float) -> Json:
        row = conn.execute(sa.select(compliance_records).where(
            compliance_records.c.agreement_id == agreement_id)).mappings().first()
        if row is None:
            raise rec.RecordError(f"no cross-border record for agreement {agreement_id[:100]}", 404)
        new = fn(dict(row["record"]))
        if new == row["record"]:
            return view(dict(row))
        sha, version = rec.digest(new), row["version"] + 1
        conn.execute(compliance_records.update().where(compliance_records.c.agreement_id == agreement_id).values(
            record=new, sha256=sha, version=version, updated_at=ts))
        self._version(conn, new, version, sha, change, ts)
        log.info("agreement %s: compliance record version %d (%s), sha256 %s", agreement_id[:100], version, change, sha)
        return view({**dict(row), "record": new, "sha256": sha, "version": version, "updated_at": ts})

    # ------------------------------------------------------------------ API
    def routes(self, prefix: str, wrap: Callable[..., Any]) -> list[web.RouteDef]:
        table = [
            ("GET", "/compliance/records", self.list_records),
            ("GET", "/compliance/records/{id}", self.get_record),
            ("POST", "/compliance/records/{id}/pipia", self.record_pipia),
            ("POST", "/compliance/records/{id}/consent", self.record_consent),
            ("DELETE", "/compliance/records/{id}/consent", self.withdraw_consent),
            ("PATCH", "/compliance/records/{id}", self.narrow),
            ("POST", "/compliance/records/{id}/effective", self.record_effective),
            ("GET", "/compliance/records/{id}/filing", self.get_filing),
            ("POST", "/compliance/records/{id}/filing", self.record_filing),
            ("GET", "/compliance/filings", self.list_filings),
            ("POST", "/access-log/prune", self.prune_access_log),
        ]
        return [web.route(m, prefix + path, wrap(self._errors(h), True)) for m, path, h in table]

    @staticmethod
    def _errors(handler: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except (rec.RecordError, fil.FilingError) as exc:
                return web.json_response({"error": str(exc)[:500], "status": exc.status}, status=exc.status)
        return wrapped

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if len(raw) > 64 * 1024:
            raise rec.RecordError("request body over the limit", 413)
        try:
            import orjson
            return orjson.loads(raw)
        except ValueError:
            raise rec.RecordError("the body is not JSON") from None

    async def list_records(self, request: web.Request) -> web.StreamResponse:
        rows = await self.node.db.read(lambda conn: [dict(r) for r in conn.execute(
            sa.select(compliance_records).order_by(compliance_records.c.created_at)).mappings()])
        views = [view(r) for r in rows]
        fmt = request.query.get("format") or ("csv" if "text/csv" in request.headers.get("Accept", "") else "json")
        if fmt == "csv":
            return web.Response(text=to_csv(views), content_type="text/csv", charset="utf-8")
        if fmt != "json":
            raise rec.RecordError("format must be json or csv")
        return web.json_response(views)

    async def get_record(self, request: web.Request) -> web.Response:
        aid = request.match_info["id"]

        def load(conn: Connection) -> Json | None:
            row = conn.execute(sa.select(compliance_records).where(
                compliance_records.c.agreement_id == aid)).mappings().first()
            if row is None:
                return None
            out = view(dict(row))
            out["versions"] = [{"version": v["version"], "sha256": v["sha256"], "change": v["change"],
                                "at": rec.iso_utc(v["at"])} for v in conn.execute(
                sa.select(compliance_record_versions).where(compliance_record_versions.c.agreement_id == aid)
                .order_by(compliance_record_versions.c.version)).mappings()]
            return out
        found = await self.node.db.read(load)
        if found is None:
            raise rec.RecordError(f"no cross-border record for agreement {aid[:100]}", 404)
        return web.json_response(found)

    async def record_pipia(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        now = self.clock()
        today = datetime.fromtimestamp(now, timezone.utc).date()
        return web.json_response(await self.node.db.transaction(
            self._change, request.match_info["id"], "pipia", lambda r: rec.with_pipia(r, body, today), now))

    async def record_consent(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return web.json_response(await self.node.db.transaction(
            self._change, request.match_info["id"], "consent", lambda r: rec.with_consent(r, body), self.clock()))

    async def withdraw_consent(self, request: web.Request) -> web.Response:
        return web.json_response(await self.node.db.transaction(
            self._change, request.match_info["id"], "consent-withdrawn", rec.without_consent, self.clock()))

    async def narrow(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return web.json_response(await self.node.db.transaction(
            self._change, request.match_info["id"], "narrowed", lambda r: rec.narrowed(r, body), self.clock()))


    # ------------------------------------------------------------------ filing
    def today(self) -> date:
        return datetime.fromtimestamp(self.clock(), timezone.utc).date()

    async def _row(self, aid: str) -> Json:
        """The record row of `aid`; a clear 404 for an agreement that is not cross-border."""
        def load(conn: Connection) -> tuple[Json | None, bool]:
            row = conn.execute(sa.select(compliance_records).where(
                compliance_records.c.agreement_id == aid)).mappings().first()
            known = row is not None or conn.execute(
                sa.select(agreements.c.id).where(agreements.c.id == aid)).first() is not None
            return (dict(row) if row is not None else None), known
        row, known = await self.node.db.read(load)
        if row is None:
            raise fil.FilingError(f"agreement {aid[:100]} is not cross-border: there is no GBA Standard Contract to file"
                                  if known else f"no agreement {aid[:100]}", 404)
        return row

    @staticmethod
    def _filed(row: Json) -> Json | None:
        return {"filedOn": row["filed_on"], "reference": row["filing_reference"]} if row.get("filed_on") else None

    def own_filing(self, row: Json, today: date) -> Json:
        return fil.party_filing(row["record"], row["role"], today, self._filed(row))

    async def get_filing(self, request: web.Request) -> web.Response:
        row = await self._row(request.match_info["id"])
        p = fil.pack(row["record"], self.today(), self._filed(row))
        fmt = request.query.get("format", "json")
        if fmt == "html":
            return web.Response(text=fil.render_html(p, request.query.get("lang", "en")), content_type="text/html",
                                charset="utf-8")
        if fmt != "json":
            raise fil.FilingError("format must be json or html")
        return web.json_response(p)

    async def record_filing(self, request: web.Request) -> web.Response:
        """'Filed on DATE, reference R' closes our party's filing."""
        aid = request.match_info["id"]
        body = await self._body(request)
        today, now = self.today(), self.clock()
        if not isinstance(body, dict) or set(body) != {"filedOn", "reference"}:
            raise fil.FilingError('the body must be {"filedOn": "YYYY-MM-DD", "reference": "..."}')
        ref = rec.reference(body["reference"], "reference")
        on = rec.past_date(body["filedOn"], "filedOn", today, "a filing")

        def tx(conn: Connection) -> Json:
            row = conn.execute(sa.select(compliance_records).where(
                compliance_records.c.agreement_id == aid)).mappings().first()
            if row is None:
                raise fil.FilingError(f"agreement {aid[:100]} has no cross-border record", 404)
            row = dict(row)
            own = self.own_filing(row, today)
            if not own["eligible"]:
                raise fil.FilingError(own["note"], 409)
            if row["filed_on"]:
                raise fil.FilingError(f"already recorded as filed on {row['filed_on']}, reference "
                                      f"{row['filing_reference']}", 409)
            if on < own["effectiveOn"]:
                raise fil.FilingError(f"filedOn {on} is before the contract took effect ({own['effectiveOn']})")
            conn.execute(compliance_records.update().where(compliance_records.c.agreement_id == aid).values(
                filed_on=on, filing_reference=ref, updated_at=now))
            row.update(filed_on=on, filing_reference=ref, updated_at=now)
            return row
        row = await self.node.db.transaction(tx)
        log.info("agreement %s: filed on %s with %s, reference %s", aid[:100], on,
                 self.own_filing(row, today)["authority"]["en"], ref)
        return web.json_response(view(row) | {"filing": self.own_filing(row, today)})

    async def record_effective(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        today = self.today()
        out = await self.node.db.transaction(
            self._change, request.match_info["id"], "effective", lambda r: rec.with_effective_date(r, body, today),
            self.clock())
        await self.alert()
        return web.json_response(out)

    async def filings(self) -> list[Json]:
        today = self.today()
        rows = await self.node.db.read(lambda conn: [dict(r) for r in conn.execute(
            sa.select(compliance_records).order_by(compliance_records.c.created_at)).mappings()])
        return [{"agreementId": r["agreement_id"], **self.own_filing(r, today)} for r in rows]

    async def list_filings(self, request: web.Request) -> web.Response:
        return web.json_response(await self.filings())

    async def filing_counts(self) -> dict[str, int]:
        """GBA Standard Contract filings of this party by status (due: within 3 working days;
        overdue: past the 10-working-day deadline), for `/api/v1/metrics`."""
        counts = {"open": 0, "due": 0, "overdue": 0, "filed": 0}
        for f in await self.filings():
            if f["eligible"]:
                counts[f["status"]] += 1
        return counts

    async def alert(self) -> None:
        """Filings due within 3 working days, or overdue, in the log."""
        for f in await self.filings():
            if f.get("status") in ("due", "overdue"):
                log.warning("FILING %s: agreement %s must be filed with %s by %s (%d working days left)",
                            f["status"].upper(), f["agreementId"][:100], f["authority"]["en"], f["deadline"],
                            f["workingDaysLeft"])

    async def alert_loop(self, interval: float = 3600.0) -> None:
        import asyncio
        while True:
            try:
                await self.alert()
            except Exception:  # noqa: BLE001 - the next run tries again
                log.exception("could not check the filings")
            await asyncio.sleep(interval)


    # ------------------------------------------------------------------ provenance
    async def onward_refusal(self, offer: Json) -> str | None:
        """Why an offer (POST/PUT /api/v1/offers) would weaken the policy its data came under, or None.
        An asset declares what it holds or derives from with `properties.derivedFrom`: agreement ids
        (or transfer ids) under which this node received data."""
        asset_ids, policy_id = offer.get("assetIds") or [], offer.get("contractPolicyId")

        def load(conn: Connection) -> tuple[list, Json | None]:
            found = []
            for row in conn.execute(sa.select(assets.c.id, assets.c.properties).where(assets.c.id.in_(asset_ids))):
                derived = (row.properties or {}).get("derivedFrom")
                for source in ([derived] if isinstance(derived, str) else derived if isinstance(derived, list) else []):
                    source = str(source)[:512]
                    via = conn.execute(sa.select(transfers.c.agreement_id).where(transfers.c.id == source)).scalar()
                    agreement = conn.execute(sa.select(agreements.c.id, agreements.c.policy, agreements.c.provider_id)
                                             .where(agreements.c.id == (via or source),
                                                    agreements.c.role == "consumer")).first()
                    found.append((row.id, source, agreement))
            body = conn.execute(sa.select(policies.c.body).where(policies.c.id == policy_id)).scalar()
            return found, body

        sources, body = await self.node.db.read(load)
        if not sources or body is None:
            return None
        offered = self.node.catalog.policies.compile(body)
        for asset_id, source, agreement in sources:
            if agreement is None:
                return (f"asset {asset_id[:100]} declares it derives from {source[:100]}, which names no agreement under "
                        "which this node received data: its provenance cannot be checked, so it is not offered "
                        "(fail closed)")
            try:
                problems = provenance.weaker(self.node.catalog.policies.compile(agreement.policy), offered)
            except Exception:  # noqa: BLE001 - a source policy we cannot read: fail closed
                problems = ["the policy of the agreement it came under cannot be evaluated"]
            if problems:
                log.warning("offer %s refused: asset %s came under agreement %s: %s", str(offer.get("id"))[:100],
                            asset_id[:100], agreement.id[:100], "; ".join(problems)[:300])
                return (f"the policy follows the data: asset {asset_id[:100]} came under agreement {agreement.id[:100]}, "
                        f"and this offer's contract policy is weaker: {'; '.join(problems)[:400]} "
                        f"(the data came from {agreement.provider_id[:100]})")
        return None

    # ------------------------------------------------------------------ retention
    async def prune_access_log(self, request: web.Request) -> web.Response:
        """Delete access-log entries older than `before`, which must itself be older than the refusal
        retention ([compliance] refusal_retention_days, at least 4 years): nothing newer can be pruned."""
        body = await self._body(request)
        if not isinstance(body, dict) or set(body) != {"before"} or not isinstance(body["before"], str):
            raise rec.RecordError('the body must be {"before": "YYYY-MM-DDTHH:MM:SSZ"}')
        try:
            before = datetime.fromisoformat(body["before"].replace("Z", "+00:00"))
        except ValueError:
            raise rec.RecordError(f"before {body['before'][:40]!r} is not an ISO 8601 date or time") from None
        if before.tzinfo is None:
            before = before.replace(tzinfo=timezone.utc)
        now = self.clock()
        days = self.node.settings.compliance_refusal_retention_days
        oldest_kept = now - days * 86400
        if before.timestamp() > oldest_kept:
            raise rec.RecordError(
                f"refusals are kept at least {days} days ([compliance] refusal_retention_days; PDPO s.27: a log of "
                f"refusals is kept at least 4 years), so nothing after {rec.iso_utc(oldest_kept)} can be pruned", 409)
        cut = before.timestamp()
        deleted = await self.node.db.transaction(
            lambda conn: conn.execute(access_log.delete().where(access_log.c.at < cut)).rowcount)
        log.info("access log pruned before %s: %d entries", rec.iso_utc(cut), deleted)
        return web.json_response({"deleted": deleted, "before": rec.iso_utc(cut), "retentionDays": days})


def openapi_paths() -> Json:
    """The compliance routes in the management API's OpenAPI document."""
    def op(summary: str, path_id: bool = True, body: bool = False) -> Json:
        out: Json = {"summary": summary, "security": [{"apiKey": []}], "responses": {
            "200": {"description": "OK"}, "400": {"description": "invalid input, the error says why"},
            "401": {"description": "missing or wrong X-Api-Key"}, "404": {"description": "no such record"},
            "409": {"description": "refused by a rule of the GBA Standard Contract or the PDPO, named in the error"}}}
        if path_id:
            out["parameters"] = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
        if body:
            out["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        return out

    base = "/api/v1/compliance/records/{id}"
    return {
        "/api/v1/compliance/records": {"get": op("cross-border records (?format=csv for CSV)", False)},
        base: {"get": op("a cross-border record with the SHA-256 of each version"),
               "patch": op("narrow the purposes or categories (widening: 409, negotiate a new agreement)", body=True)},
        base + "/pipia": {"post": op("record the PIPIA: {reference, date}", body=True)},
        base + "/consent": {"post": op("record the consent evidence: {reference} (the provider)", body=True),
                            "delete": op("the consent was withdrawn: data access is refused until new evidence is "
                                         "recorded")},
        base + "/effective": {"post": op("record the day the signed contract took effect: {date}", body=True)},
        base + "/filing": {"get": op("the filing pack (?format=json|html&lang=en|zh-Hant|zh-Hans)"),
                           "post": op("record our filing: {filedOn, reference}", body=True)},
        "/api/v1/compliance/filings": {"get": op("this party's filings: open, due, overdue or filed", False)},
        "/api/v1/access-log/prune": {"post": op("delete access-log entries before {before}, which must be older than "
                                                "[compliance] refusal_retention_days", False, True)},
    }


def view(row: Json) -> Json:
    return {"agreementId": row["agreement_id"], "role": row["role"], "version": row["version"],
            "sha256": row["sha256"], "record": row["record"],
            # the preconditions are the provider's to meet (its PIPIA, its consent evidence)
            "preconditionsMet": not rec.preconditions(row["record"]) if row["role"] == "provider" else None,
            "filing": {"filedOn": row.get("filed_on"), "reference": row.get("filing_reference")},
            "updatedAt": rec.iso_utc(row["updated_at"])}


def to_csv(views: list[Json]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(rec.CSV_COLUMNS)
    for v in views:
        w.writerow([_cell(x) for x in rec.csv_row(v)])
    return out.getvalue()


def _cell(value: str) -> str:
    """A value a spreadsheet will not run as a formula (peers' organisation names reach this file)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


__all__ = ["ComplianceService", "CODE", "view", "to_csv"]
