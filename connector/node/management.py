"""The management API: plain JSON for the people and programs running a node.
Every route but /api/v1/openapi.json needs the node's API key (X-Api-Key)."""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import aiohttp
import fastjsonschema
import jsonschema
import orjson
import sqlalchemy as sa
from aiohttp import web

from ..errors import ApiError
from ..protocol.errors import ECHO_LIMIT, ProtocolError, clip, echo
from ..protocol.ids import MAX_ID_LENGTH, RULE, id_problem
from ..protocol.negotiation import Event, State
from ..protocol.policies import typed_literals
from ..protocol.transfer import TransferEvent, TransferState
from ..store.tables import (access_log, agreements, assets, idempotency_keys, negotiations, offers, outbox, policies,
                            transfer_bytes, transfers)
from .catalog_walk import read_catalog, same_endpoint
from .listing import MAX_LIMIT, CursorError, decode_cursor, next_link, query_page
from .metrics import node_families
from .peers import PeerError
from .usage import check_policy


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def json_response(data: Any, *, status: int = 200, **kwargs: Any) -> web.Response:
    """aiohttp's json_response with orjson: the standard encoder was 3% of a node's CPU."""
    return web.json_response(data, status=status, dumps=_dumps, **kwargs)

Json = dict[str, Any]
# the id rule (connector/protocol/ids.py), plus no whitespace, '/', '?' or '#' for the ids we create
# (they are path segments of this API)
ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": r"^[^\s/?#\x00-\x1f\x7f-\x9f]+$"}
#: an id someone else made (a provider's offer, an agreement): the id rule only
PEER_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": r"^[^\x00-\x1f\x7f-\x9f]+$"}
PARTICIPANT_ID = {"type": "string", "minLength": 1, "maxLength": 512, "pattern": r"^[^\x00-\x1f\x7f-\x9f]+$"}
PATTERN_RULES = {ID["pattern"]: "must not contain whitespace, control characters, '/', '?' or '#'",
                 PEER_ID["pattern"]: "must not contain control characters"}
URL = {"type": "string", "pattern": r"^https?://", "maxLength": 2048}

SCHEMAS: dict[str, Json] = {
    "AssetInput": {
        "type": "object", "required": ["id"], "additionalProperties": False,
        "properties": {
            "id": ID, "title": {"type": "string", "maxLength": 1000}, "description": {"type": "string", "maxLength": 10000},
            "contentType": {"type": "string", "maxLength": 255}, "properties": {"type": "object"},
            "dataAddress": {"type": "object"},
        },
    },
    "AssetChange": {
        "type": "object", "additionalProperties": False,
        "description": "the fields to change (the others stay); a dataAddress is checked as at creation",
        "properties": {
            "title": {"type": "string", "maxLength": 1000}, "description": {"type": "string", "maxLength": 10000},
            "contentType": {"type": "string", "minLength": 1, "maxLength": 255}, "dataAddress": {"type": "object"},
        },
    },
    "PolicyInput": {
        "type": "object", "required": ["id", "policy"], "additionalProperties": False,
        "properties": {"id": ID, "policy": {
            "type": "object", "description": "ODRL policy (DSP 2025-1 compact terms: permission, prohibition, obligation)",
            "properties": {"permission": {"type": "array"}, "prohibition": {"type": "array"}, "obligation": {"type": "array"}},
        }},
    },
    "OfferInput": {
        "type": "object", "required": ["id", "assetIds", "accessPolicyId", "contractPolicyId"], "additionalProperties": False,
        "properties": {
            "id": ID, "assetIds": {"type": "array", "items": ID, "minItems": 1, "maxItems": 1000, "uniqueItems": True},
            "accessPolicyId": ID, "contractPolicyId": ID,
        },
    },
    "CatalogQuery": {
        "type": "object", "required": ["counterPartyAddress"], "additionalProperties": False,
        "properties": {"counterPartyAddress": URL, "dspVersion": {"enum": ["2025-1", "2024-1"]},
                       "counterPartyId": {**PARTICIPANT_ID,
                                          "description": "the provider's participant id (required in station mode)"},
                       "pageSize": {"type": "integer", "minimum": 1, "maximum": 1000,
                                    "description": "ask the provider for pages of this many datasets"},
                       "continuation": {"type": "string", "minLength": 1, "maxLength": 2048,
                                        "description": "a next or previous link from an earlier answer: that page"},
                       "all": {"type": "boolean", "description": "follow every next link and merge the pages "
                               "(default: true, false when continuation or pageSize is given)"}},
    },
    "NegotiationInput": {
        "type": "object", "required": ["counterPartyAddress", "datasetId"], "additionalProperties": False,
        "properties": {
            "counterPartyAddress": {**URL, "description": "the provider's root URL (where /.well-known/dspace-version is)"},
            "counterPartyId": {**PARTICIPANT_ID,
                               "description": "the provider's participant id (required in station mode)"},
            "datasetId": ID, "offerId": PEER_ID,
            "offer": {"type": "object", "required": ["@id"], "properties": {"@id": PEER_ID}, "description": "the offer as listed in the provider's catalog"},
            "dspVersion": {"enum": ["2025-1", "2024-1"]},
        },
    },
    "TransferInput": {
        "type": "object", "required": ["agreementId"], "additionalProperties": False,
        "properties": {
            "agreementId": PEER_ID,
            "format": {"enum": ["HttpData-PULL", "HttpData-PUSH", "HKS-Compute"]},
            "purpose": {"type": "string", "maxLength": 512,
                        "description": "push only: the purpose declared for the access (pull: ?purpose= on /data)"},
        },
    },
    "ComputationInput": {
        "type": "object", "required": ["query"], "additionalProperties": False,
        "properties": {
            "query": {"oneOf": [{"type": "string", "maxLength": 4000}, {"type": "object"}],
                      "description": "SQL subset text or the JSON query (connector/compute/README.md)"},
            "format": {"enum": ["json", "csv"]}, "purpose": {"type": "string", "maxLength": 512},
        },
    },
    "TerminateInput": {
        "type": "object", "additionalProperties": False, "properties": {"reason": {"type": "string", "maxLength": 1000}},
    },
    "RoundTripsInput": {
        "type": "object", "required": ["url"], "additionalProperties": False,
        "properties": {"url": URL, "count": {"type": "integer", "minimum": 1, "maximum": 100}},
    },
}
VALIDATORS = {name: jsonschema.Draft202012Validator(schema) for name, schema in SCHEMAS.items()}
# The same schemas compiled to Python code: the accepting path. jsonschema checked a negotiation's
# request body in 0.37 ms, 6% of the consumer's CPU per negotiation (bench/negotiation.py, profiled);
# fastjsonschema in 0.02 ms. A body it refuses goes on to jsonschema, which decides and explains, so
# fastjsonschema can only make a difference by accepting what jsonschema refuses: tests/test_management_schemas.py
# checks the two agree on each schema's valid and invalid bodies.
ACCEPTORS = {name: fastjsonschema.compile(schema) for name, schema in SCHEMAS.items()}


def dead_letter_view(row: Json) -> Json:
    return {"id": row["id"], "messageId": row["message_id"], "processId": row["process_id"], "kind": row["kind"],
            "recipient": row["recipient"], "url": row["url"], "status": row["status"], "attempts": row["attempts"],
            "cause": row["last_error"], "createdAt": row["created_at"], "deadAt": row["dead_at"]}


def negotiation_view(row: Json) -> Json:
    return {
        "id": row["id"], "role": row["role"], "state": row["state"], "dspVersion": row["dsp_version"],
        "counterPartyId": row["counterparty_id"], "counterPartyAddress": row["counterparty_address"],
        "consumerPid": row["consumer_pid"], "providerPid": row["provider_pid"], "datasetId": row["dataset_id"],
        "offerId": row["offer_id"], "offer": row["offer"], "agreement": row["agreement"],
        "termination": row["termination"], "error": row["error"],
        "createdAt": row["created_at"], "updatedAt": row["updated_at"],
    }


class ManagementApi:
    PREFIX = "/api/v1"

    def __init__(self, node: Any) -> None:
        self.node = node
        self._key = node.settings.management_api_key.encode()

    def routes(self) -> list[web.RouteDef]:
        p = self.PREFIX
        table = [
            ("GET", "/openapi.json", self.openapi, False),
            ("POST", "/assets", self.create_asset, True), ("GET", "/assets", self.list_assets, True),
            ("GET", "/assets/{id}", self.get_asset, True), ("PATCH", "/assets/{id}", self.update_asset, True),
            ("POST", "/policies", self.create_policy, True), ("GET", "/policies", self.list_policies, True),
            ("GET", "/policies/{id}", self.get_policy, True),
            ("POST", "/offers", self.create_offer, True), ("GET", "/offers", self.list_offers, True),
            ("PUT", "/offers/{id}", self.update_offer, True), ("DELETE", "/offers/{id}", self.delete_offer, True),
            ("POST", "/catalog/request", self.catalog_request, True),
            ("POST", "/negotiations", self.start_negotiation, True), ("GET", "/negotiations", self.list_negotiations, True),
            ("GET", "/negotiations/{id}", self.get_negotiation, True),
            ("POST", "/negotiations/{id}/terminate", self.terminate, True),
            ("POST", "/negotiations/{id}/accept", self.accept, True),
            ("GET", "/agreements", self.list_agreements, True), ("GET", "/agreements/{id}", self.get_agreement, True),
            ("POST", "/agreements/{id}/computations", self.node.compute.computations, True),
            ("GET", "/agreements/{id}/computations", self.node.compute.list_computations, True),
            ("POST", "/transfers", self.start_transfer, True), ("GET", "/transfers", self.list_transfers, True),
            ("GET", "/transfers/{id}", self.get_transfer, True),
            ("POST", "/transfers/{id}/suspend", self._transfer_action(TransferEvent.SUSPEND), True),
            ("POST", "/transfers/{id}/resume", self._transfer_action(TransferEvent.START), True),
            ("POST", "/transfers/{id}/complete", self._transfer_action(TransferEvent.COMPLETE), True),
            ("POST", "/transfers/{id}/terminate", self._transfer_action(TransferEvent.TERMINATE), True),
            ("GET", "/transfers/{id}/data", self.transfer_data, True),
            ("GET", "/access-log", self.list_access_log, True),
            ("GET", "/clearinghouse", self.clearinghouse_status, True),
            ("POST", "/clearinghouse/audit", self.clearinghouse_audit, True),
            ("GET", "/metrics", self.metrics, True),
            ("GET", "/dead-letters", self.list_dead_letters, True),
            ("POST", "/dead-letters/{id}/retry", self.retry_dead_letter, True),
            ("GET", "/negotiations/{id}/receipts", self.receipts, True),
            ("GET", "/transfers/{id}/receipts", self.receipts, True),
            ("POST", "/diagnostics/peer-roundtrips", self.peer_roundtrips, True),
        ]
        return [web.route(method, p + path, self._wrap(handler, auth)) for method, path, handler, auth in table]

    def _wrap(self, handler, auth: bool):  # noqa: ANN001, ANN202
        """The API key and the path ids checked before `handler`; its errors are answered by the
        node's error middleware (connector/serving.py)."""
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if auth:
                given = request.headers.get("X-Api-Key", "")
                if not given and request.headers.get("Authorization", "").startswith("Bearer "):
                    given = request.headers["Authorization"][7:]  # e.g. a Prometheus scrape
                if not given or not hmac.compare_digest(given.encode(), self._key):
                    raise ApiError(401, "missing or wrong X-Api-Key")
            for name, value in request.match_info.items():
                problem = id_problem(value)
                if problem is not None:
                    raise ApiError(400, f"the {name} in the path {problem} ({RULE})")
            return await handler(request)
        return wrapped

    async def body(self, request: web.Request, schema: str) -> Json:
        raw = await request.read()
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}") from None
        try:
            ACCEPTORS[schema](doc)
            return doc
        except fastjsonschema.JsonSchemaException:
            pass
        validator = VALIDATORS[schema]
        if validator.is_valid(doc):
            return doc
        error = next(iter(sorted(validator.iter_errors(doc), key=lambda e: e.path)), None)
        if error is not None:
            where = "/".join(str(x) for x in error.absolute_path) or "body"
            if error.validator == "pattern" and error.validator_value in PATTERN_RULES:
                raise ApiError(400, f"{clip(where, ECHO_LIMIT)}: {PATTERN_RULES[error.validator_value]}")
            if error.validator == "maxLength" and isinstance(error.instance, str):
                raise ApiError(400, f"{clip(where, ECHO_LIMIT)}: is too long ({len(error.instance)} characters; "
                                    f"at most {error.validator_value} are allowed)")
            # jsonschema's message repeats the offending value: at most ECHO_LIMIT characters of it
            raise ApiError(400, f"{clip(where, ECHO_LIMIT)}: {clip(error.message, ECHO_LIMIT)}")
        return doc

    # -------------------------------------------------------------- catalog
    async def _checked_address(self, doc: Json) -> None:
        """An asset's data address as create and update take it: under the data root or on an allowed
        public upstream (the data plane checks again at every access)."""
        if doc.get("dataAddress"):
            try:
                doc["dataAddress"] = self.node.dataplane.check_data_address(doc["dataAddress"])
                if doc["dataAddress"]["type"] == "http":
                    await self.node.dataplane.check_upstream_address(doc["dataAddress"]["url"])
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None

    async def create_asset(self, request: web.Request) -> web.Response:
        doc = await self.body(request, "AssetInput")
        await self._checked_address(doc)
        try:
            row = await self.node.catalog.create_asset(doc)
        except sa.exc.IntegrityError:
            raise ApiError(409, f"asset {echo(doc['id'])} already exists") from None
        return json_response(_asset_view(row), status=201)

    async def update_asset(self, request: web.Request) -> web.Response:
        doc = await self.body(request, "AssetChange")
        if not doc:
            raise ApiError(400, "body: give at least one of title, description, contentType, dataAddress")
        if "dataAddress" in doc and not doc["dataAddress"]:
            raise ApiError(400, "dataAddress: give a file or http address (an asset's data cannot be removed)")
        await self._checked_address(doc)
        row = await self.node.catalog.update_asset(request.match_info["id"], doc)
        if row is None:
            raise ApiError(404, f"no asset {echo(request.match_info['id'])}")
        return json_response(_asset_view(row))

    async def list_assets(self, request: web.Request) -> web.Response:
        words = request.query.get("q", "").strip().lower()
        if len(words) > 200:
            raise ApiError(400, "q: at most 200 characters")
        # ?q=: the assets whose id or title contains it (letters' case ignored), paged like the rest
        where = sa.or_(sa.func.lower(assets.c.id).contains(words, autoescape=True),
                       sa.func.lower(assets.c.title).contains(words, autoescape=True)) if words else None
        rows, headers = await self._listing(request, assets, where)
        return json_response([_asset_view(r) for r in rows], headers=headers)

    async def get_asset(self, request: web.Request) -> web.Response:
        row = await self.node.catalog.get_row(assets, request.match_info["id"])
        if row is None:
            raise ApiError(404, f"no asset {echo(request.match_info['id'])}")
        return json_response(_asset_view(row))

    async def create_policy(self, request: web.Request) -> web.Response:
        doc = await self.body(request, "PolicyInput")
        # a JSON number as a rightOperand is kept as the typed literal it means (see typed_literals)
        policy = typed_literals(doc["policy"])
        if not any(policy.get(k) for k in ("permission", "prohibition", "obligation")):
            raise ApiError(400, "policy: needs at least one permission, prohibition or obligation")
        problems = check_policy(policy)
        if problems:
            shown = "; ".join(f"{clip(path, ECHO_LIMIT)}: {clip(msg, ECHO_LIMIT)}" for path, msg in problems[:3])
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise ApiError(400, f"policy is not valid ODRL: {shown}{more}")
        try:
            row = await self.node.catalog.create_policy(doc["id"], policy)
        except sa.exc.IntegrityError:
            raise ApiError(409, f"policy {echo(doc['id'])} already exists") from None
        return json_response({"id": row["id"], "policy": row["body"]}, status=201)

    async def list_policies(self, request: web.Request) -> web.Response:
        rows, headers = await self._listing(request, policies)
        return json_response([{"id": r["id"], "policy": r["body"]} for r in rows], headers=headers)

    async def get_policy(self, request: web.Request) -> web.Response:
        row = await self.node.catalog.get_row(policies, request.match_info["id"])
        if row is None:
            raise ApiError(404, f"no policy {echo(request.match_info['id'])}")
        return json_response({"id": row["id"], "policy": row["body"]})

    async def create_offer(self, request: web.Request) -> web.Response:
        doc = await self.body(request, "OfferInput")
        weaker = await self.node.compliance.onward_refusal(doc)  # the policy follows the data (connector/compliance)
        if weaker:
            raise ApiError(409, weaker)
        try:
            row = await self.node.catalog.create_offer(doc)
        except LookupError as exc:
            raise ApiError(400, str(exc).strip("'\"")) from None
        except sa.exc.IntegrityError:
            raise ApiError(409, f"offer {echo(doc['id'])} already exists") from None
        return json_response(_offer_view(row), status=201)

    async def update_offer(self, request: web.Request) -> web.Response:
        doc = await self.body(request, "OfferInput")
        if doc["id"] != request.match_info["id"]:
            raise ApiError(400, "id: must be the offer's id in the path")
        weaker = await self.node.compliance.onward_refusal(doc)  # the policy follows the data (connector/compliance)
        if weaker:
            raise ApiError(409, weaker)
        try:
            row = await self.node.catalog.update_offer(doc)
        except LookupError as exc:
            raise ApiError(400, str(exc).strip("'\"")) from None
        if row is None:
            raise ApiError(404, f"no offer {doc['id']!r}")
        return json_response(_offer_view(row))

    async def delete_offer(self, request: web.Request) -> web.Response:
        if not await self.node.catalog.delete_offer(request.match_info["id"]):
            raise ApiError(404, f"no offer {request.match_info['id']!r}")
        return web.Response(status=204)

    async def list_offers(self, request: web.Request) -> web.Response:
        rows, headers = await self._listing(request, offers)
        return json_response([_offer_view(r) for r in rows], headers=headers)

    def _page_params(self, request: web.Request) -> tuple[int | None, str | None]:
        limit = _int_param(request, "limit", 0, 1, MAX_LIMIT) if "limit" in request.query else None
        cursor = self._cursor_param(request)
        if cursor is not None and limit is None:
            raise ApiError(400, "cursor: give limit too (the page size the cursor continues)")
        return limit, cursor

    @staticmethod
    def _cursor_param(request: web.Request) -> str | None:
        cursor = request.query.get("cursor")
        if cursor is not None:
            try:
                decode_cursor(cursor)
            except CursorError as exc:
                raise ApiError(400, str(exc)) from None
        return cursor

    async def _listing(self, request: web.Request, table: sa.Table,
                       where: Any = None) -> tuple[list[Json], dict[str, str]]:
        """A catalog table's rows: every one, or a page of `?limit=` after `?cursor=` (Link: next)."""
        limit, cursor = self._page_params(request)
        rows = await self.node.catalog.list_rows(table, limit=limit, cursor=cursor, where=where)
        return next_link(request, rows, limit)

    def _counterparty(self, doc: Json) -> str | None:
        """The peer's participant id from the request: our token is issued for it alone, so in
        station mode it must be known before the first message (dev mode: optional)."""
        pid = doc.get("counterPartyId")
        if pid is None and self.node.settings.identity_mode == "station":
            raise ApiError(400, "counterPartyId is required in station mode: the participant id of the peer at "
                                "counterPartyAddress (our token is issued for that participant only)")
        return pid

    async def catalog_request(self, request: web.Request) -> web.Response:
        doc = await self.body(request, "CatalogQuery")
        recipient = self._counterparty(doc)
        version, base = await self.node.peers.resolve(doc["counterPartyAddress"], doc.get("dspVersion"))
        if recipient is not None:
            await self._provider_address(base, recipient)  # before our token for it goes there
        if "continuation" in doc:
            try:
                same_endpoint(doc["continuation"], f"{base}/catalog/request")
            except PeerError as exc:
                raise ApiError(400, f"continuation: {exc}") from None
        walk = doc.get("all", "continuation" not in doc and "pageSize" not in doc)
        found = await read_catalog(self.node.peers, base, version, recipient or doc["counterPartyAddress"].rstrip("/"),
                                   page_size=doc.get("pageSize"), continuation=doc.get("continuation"), walk=walk)
        return json_response({"dspVersion": version, "dspBase": base, **found})

    # --------------------------------------------------------- negotiations
    async def _idempotent(self, request: web.Request, scope: str, create, view) -> web.Response:  # noqa: ANN001
        """POST with an optional Idempotency-Key header: the first request with a key creates the
        process and records the key in the same transaction; a retry with the same key and body gets
        the first answer (201, the process as it was created) and creates nothing; the same key with
        another body is refused (422). `create(on_insert)` makes the process."""
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return json_response(view(await create(None)), status=201)
        problem = id_problem(key)
        if problem is not None:
            raise ApiError(400, f"the Idempotency-Key header {problem} ({RULE})")
        digest = hashlib.sha256(await request.read()).hexdigest()
        query = sa.select(idempotency_keys).where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)

        async def earlier() -> web.Response | None:
            found = await self.node.db.read(lambda conn: conn.execute(query).mappings().first())
            if found is None:
                return None
            if found["request_sha256"] != digest:
                raise ApiError(422, "this Idempotency-Key was used for a different request body: "
                                    "use a new key for a new request")
            return json_response(found["response"], status=201, headers={"Idempotent-Replayed": "true"})

        replay = await earlier()
        if replay is not None:
            return replay

        def on_insert(conn: Any, row: Json) -> None:
            conn.execute(idempotency_keys.insert().values(scope=scope, key=key, request_sha256=digest,
                                                          process_id=row["id"], response=view(row),
                                                          created_at=time.time()))
        try:
            row = await create(on_insert)
        except sa.exc.IntegrityError:  # a concurrent request with the same key won: its answer, nothing new
            replay = await earlier()
            if replay is None:
                raise
            return replay
        return json_response(view(row), status=201)

    async def start_negotiation(self, request: web.Request) -> web.Response:
        return await self._idempotent(request, "negotiations",
                                      lambda on_insert: self._start_negotiation(request, on_insert), negotiation_view)

    async def _start_negotiation(self, request: web.Request, on_insert: Any) -> Json:
        doc = await self.body(request, "NegotiationInput")
        recipient = self._counterparty(doc)
        version, base = await self.node.peers.resolve(doc["counterPartyAddress"], doc.get("dspVersion"))
        if recipient is not None:
            await self._provider_address(base, recipient)  # before our token for it goes there
        offer = doc.get("offer")
        if offer is None:
            offer_id = doc.get("offerId")
            if not offer_id:
                raise ApiError(400, "give either 'offer' (from the catalog) or 'offerId'")
            dataset = await self.node.peers.request("GET", f"{base}/catalog/datasets/{doc['datasetId']}", version,
                                                    recipient=recipient or doc["counterPartyAddress"].rstrip("/"))
            offer = next((o for o in dataset.get("hasPolicy", []) if isinstance(o, dict) and o.get("@id") == offer_id), None)
            if offer is None:
                raise ApiError(404, f"dataset {echo(doc['datasetId'])} of that provider has no offer {echo(offer_id)}")
        assigner = offer.get("assigner")
        if isinstance(assigner, dict):
            assigner = assigner.get("@id")
        if recipient is not None and assigner is not None and assigner != recipient:
            raise ApiError(400, f"the offer's assigner {echo(assigner)} is not counterPartyId {echo(recipient)}")
        provider_id = recipient or assigner
        if not isinstance(provider_id, str) or not provider_id:
            raise ApiError(400, "counterPartyId is needed: the offer does not name its assigner")
        if recipient is None:
            await self._provider_address(base, provider_id)
        return await self.node.negotiations.start(version=version, provider_base=base, provider_id=provider_id,
                                                  dataset_id=doc["datasetId"], offer=offer, on_insert=on_insert)

    async def _provider_address(self, base: str, provider_id: str) -> None:
        """The DSP base comes from the provider's own document: in station mode it must be an
        address registered for the provider (our token goes there), and never a private one."""
        try:
            await self.node.destinations.check(base, sender=provider_id, what="the provider's DSP address")
        except ProtocolError as exc:
            raise ApiError(exc.status, exc.reason) from None

    async def list_negotiations(self, request: web.Request) -> web.Response:
        limit = _int_param(request, "limit", 100, 1, 1000)
        offset = _int_param(request, "offset", 0, 0, 10**9)
        state = request.query.get("state")
        if state is not None and state not in State.__members__:
            raise ApiError(400, f"state must be one of {', '.join(State.__members__)}")
        cursor = self._cursor_param(request)
        rows, headers = next_link(request, await self.node.negotiations.list(
            limit=limit + 1, offset=offset, state=state, cursor=cursor), limit)
        return json_response([negotiation_view(r) for r in rows], headers=headers)

    async def get_negotiation(self, request: web.Request) -> web.Response:
        pid = request.match_info["id"]
        wait_for = request.query.get("waitFor")
        if wait_for:
            states = set(wait_for.split(","))
            bad = states - set(State.__members__)
            if bad:
                raise ApiError(400, f"waitFor: unknown state {echo(sorted(bad)[0])}")
            timeout = float(_int_param(request, "timeout", 10, 0, 60))
            row = await self.node.negotiations.wait_for(pid, states, timeout)
        else:
            row = await self.node.negotiations.get(pid)
        if row is None:
            raise ApiError(404, f"no negotiation {echo(pid)}")
        return json_response(negotiation_view(row))

    async def terminate(self, request: web.Request) -> web.Response:
        doc = await self.body(request, "TerminateInput") if request.can_read_body else {}
        row = await self._act(request.match_info["id"], Event.TERMINATE, doc.get("reason") or "terminated by the user")
        return json_response(negotiation_view(row))

    async def accept(self, request: web.Request) -> web.Response:
        row = await self._act(request.match_info["id"], Event.ACCEPT, None)
        return json_response(negotiation_view(row))

    async def _act(self, pid: str, event: Event, reason: str | None) -> Json:
        try:
            return await self.node.negotiations.act(pid, event, reason)
        except ProtocolError as exc:
            status = 404 if exc.status == 404 else 409
            raise ApiError(status, exc.reason) from None

    async def list_agreements(self, request: web.Request) -> web.Response:
        limit, cursor = self._page_params(request)
        newest = request.query.get("order") == "newest"  # ?order=newest: the newest first (the console)
        query = query_page(_AGREEMENTS, agreements.c.created_at, agreements.c.id, limit=limit, cursor=cursor,
                           newest_first=newest)
        rows, headers = next_link(request, await self.node.db.read(
            lambda conn: [dict(r) for r in conn.execute(query).mappings()]), limit)
        return json_response([_agreement_view(r) for r in rows], headers=headers)

    async def get_agreement(self, request: web.Request) -> web.Response:
        query = _AGREEMENTS.where(agreements.c.id == request.match_info["id"])
        row = await self.node.db.read(lambda conn: conn.execute(query).mappings().first())
        if row is None:
            raise ApiError(404, f"no agreement {echo(request.match_info['id'])}")
        return json_response(_agreement_view(row))

    # ------------------------------------------------------------ transfers
    async def start_transfer(self, request: web.Request) -> web.Response:
        return await self._idempotent(request, "transfers",
                                      lambda on_insert: self._start_transfer(request, on_insert), transfer_view)

    async def _start_transfer(self, request: web.Request, on_insert: Any) -> Json:
        doc = await self.body(request, "TransferInput")
        fmt = doc.get("format", "HttpData-PULL")
        dataplane = self.node.dataplane
        push = (lambda pid: dataplane.push_address(pid, doc.get("purpose"))) if fmt == "HttpData-PUSH" else None
        try:
            return await self.node.transfers.start(agreement_id=doc["agreementId"], fmt=fmt, push_address=push,
                                                   on_insert=on_insert)
        except ProtocolError as exc:
            raise ApiError(404 if exc.status == 404 else 409, exc.reason) from None

    async def list_transfers(self, request: web.Request) -> web.Response:
        limit = _int_param(request, "limit", 100, 1, 1000)
        rows, headers = next_link(request, await self.node.transfers.list(
            limit=limit + 1, offset=_int_param(request, "offset", 0, 0, 10**9), cursor=self._cursor_param(request)),
            limit)
        return json_response([transfer_view(r) for r in rows], headers=headers)

    async def get_transfer(self, request: web.Request) -> web.Response:
        pid = request.match_info["id"]
        wait_for = request.query.get("waitFor")
        if wait_for:
            states = set(wait_for.split(","))
            bad = states - {s.value for s in TransferState}
            if bad:
                raise ApiError(400, f"waitFor: unknown state {echo(sorted(bad)[0])}")
            row = await self.node.transfers.wait_for(pid, states, float(_int_param(request, "timeout", 10, 0, 60)))
        else:
            row = await self.node.transfers.get(pid)
        if row is None:
            raise ApiError(404, f"no transfer {echo(pid)}")
        return json_response({**transfer_view(row), **await self.transfer_progress(pid)})

    async def transfer_progress(self, pid: str) -> Json:
        """The bytes this node's data plane has moved for a transfer so far, and when they were last
        counted (a running stream adds its count about once a second)."""
        query = sa.select(transfer_bytes.c.bytes, transfer_bytes.c.updated_at).where(transfer_bytes.c.transfer_id == pid)
        found = await self.node.db.read(lambda conn: conn.execute(query).first())
        return {"bytesMoved": found[0] if found else 0, "bytesCountedAt": found[1] if found else None}

    def _transfer_action(self, event: TransferEvent):  # noqa: ANN202
        async def act(request: web.Request) -> web.Response:
            doc = await self.body(request, "TerminateInput") if request.can_read_body else {}
            try:
                row = await self.node.transfers.act(request.match_info["id"], event, doc.get("reason"))
            except ProtocolError as exc:
                raise ApiError(404 if exc.status == 404 else 409, exc.reason) from None
            return json_response(transfer_view(row))
        return act

    async def transfer_data(self, request: web.Request) -> web.StreamResponse:
        row = await self.node.transfers.get(request.match_info["id"])
        if row is None or row["role"] != "consumer":
            raise ApiError(404, f"no transfer {echo(request.match_info['id'])} received by this participant")
        purpose = request.query.get("purpose")
        if purpose is not None and len(purpose) > 512:
            raise ApiError(400, "purpose is too long")
        return await self.node.dataplane.consumer_data(request, row)

    async def list_access_log(self, request: web.Request) -> web.Response:
        limit = _int_param(request, "limit", 100, 1, 1000)
        query = sa.select(access_log).order_by(access_log.c.id.desc()).limit(limit)
        agreement = request.query.get("agreementId")
        if agreement:
            query = query.where(access_log.c.agreement_id == agreement)
        rows = await self.node.db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])
        return json_response([{"id": r["id"], "stage": r["stage"], "transferId": r["transfer_id"],
                                   "agreementId": r["agreement_id"], "offerId": r["offer_id"],
                                   "consumerId": r["consumer_id"], "at": r["at"], "permitted": r["permitted"],
                                   "purpose": r["purpose"], "reasons": r["reasons"], "duties": r["duties"],
                                   "reasonMessages": r["reason_msgs"]}
                                  for r in rows])

    # ------------------------------------------------------- dead letters
    async def list_dead_letters(self, request: web.Request) -> web.Response:
        """Messages given up at their delivery deadline, newest first, each with its true cause."""
        limit = _int_param(request, "limit", 100, 1, 1000)
        query = sa.select(outbox).where(outbox.c.status == "dead").order_by(outbox.c.id.desc()).limit(limit)
        rows = await self.node.db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])
        return json_response([dead_letter_view(r) for r in rows])

    async def retry_dead_letter(self, request: web.Request) -> web.Response:
        """Queue a dead letter again as it was, with a new deadline. Its process stays as it is: a
        negotiation terminated for it stays terminated (the peer may refuse the message)."""
        raw = request.match_info["id"]
        if not raw.isdigit() or len(raw) > 18:
            raise ApiError(404, f"no dead letter {echo(raw)}")
        dispatcher = self.node.dispatcher
        now = time.time()

        def retry(conn):  # noqa: ANN001, ANN202
            row = conn.execute(sa.select(outbox).where(outbox.c.id == int(raw), outbox.c.status == "dead")
                               ).mappings().first()
            if row is None:
                return None
            seconds = dispatcher.deadline_seconds(row["kind"]) if dispatcher is not None else None
            conn.execute(sa.update(outbox).where(outbox.c.id == row["id"], outbox.c.status == "dead").values(
                status="pending", attempts=0, next_attempt_at=now, lease_owner=None, lease_until=None, dead_at=None,
                deadline_at=None if seconds is None else now + seconds))
            return {**dict(row), "status": "pending", "attempts": 0, "dead_at": None}
        row = await self.node.db.transaction(retry)
        if row is None:
            raise ApiError(404, f"no dead letter {echo(raw)}")
        if dispatcher is not None:
            dispatcher.wake()
        return json_response(dead_letter_view(row))

    # ------------------------------------------------------ clearing house
    async def clearinghouse_status(self, request: web.Request) -> web.Response:
        ch = self.node.clearinghouse
        if ch is None:
            return json_response({"configured": False})
        return json_response({"configured": True, **await ch.status()})

    async def clearinghouse_audit(self, request: web.Request) -> web.Response:
        """Audit every kept receipt now: 200 with the outcome (`ok` false and `firstBadEntry` when the
        log fails it: the alarm is raised too); 503 when the audit could not be completed."""
        ch = self.node.clearinghouse
        if ch is None:
            raise ApiError(404, "no clearing house is configured ([clearinghouse] url)")
        outcome = await ch.audit()
        if not outcome["complete"] and outcome["firstBadEntry"] is None:
            return json_response({"error": outcome["error"], "status": 503, "audit": outcome}, status=503)
        return json_response(outcome)

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text format: requests by route and status, token checks, policy decisions,
        data-plane bytes, process counts by state, the outbox (lag, dead letters), data accesses,
        and the clearing house's consistency (0 after an alarm: a rewritten or forked log)."""
        return self.node.metrics.render(await node_families(self.node))

    async def receipts(self, request: web.Request) -> web.Response:
        ch = self.node.clearinghouse
        if ch is None:
            raise ApiError(404, "no clearing house is configured ([clearinghouse] url)")
        return json_response(await ch.receipts(request.match_info["id"]))

    async def peer_roundtrips(self, request: web.Request) -> web.Response:
        """Bare HTTP round trips to a peer URL: a latency check, and the baseline of bench/negotiation.py."""
        doc = await self.body(request, "RoundTripsInput")
        count = doc.get("count", 4)
        started = time.perf_counter()
        for _ in range(count):
            try:
                async with self.node.session.get(doc["url"], timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    await resp.read()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise PeerError(f"the URL could not be reached ({type(exc).__name__})",
                                detail=f"{doc['url']}: {exc}") from None
        return json_response({"count": count, "seconds": time.perf_counter() - started})

    async def openapi(self, request: web.Request) -> web.Response:
        from ..compliance.service import openapi_paths  # the compliance routes (connector/compliance)

        doc = openapi_document()
        doc["paths"].update(openapi_paths())
        return json_response(doc)


def transfer_view(row: Json) -> Json:
    address = row["data_address"] or {}
    return {
        "id": row["id"], "role": row["role"], "state": row["state"], "dspVersion": row["dsp_version"],
        "agreementId": row["agreement_id"], "format": row["format"], "counterPartyId": row["counterparty_id"],
        "consumerPid": row["consumer_pid"], "providerPid": row["provider_pid"],
        "endpoint": address.get("endpoint"),  # never the token
        "termination": row["termination"], "error": row["error"],
        "createdAt": row["created_at"], "updatedAt": row["updated_at"],
    }


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value


def _asset_view(row: Json) -> Json:
    return {"id": row["id"], "title": row["title"], "description": row["description"],
            "contentType": row["content_type"], "properties": row["properties"], "dataAddress": row["data_address"]}


def _offer_view(row: Json) -> Json:
    return {"id": row["id"], "assetIds": row["asset_ids"], "accessPolicyId": row["access_policy_id"],
            "contractPolicyId": row["contract_policy_id"]}


#: an agreement with the state of the negotiation that made it (FINALIZED: in force)
_AGREEMENTS = sa.select(agreements, negotiations.c.state.label("negotiation_state")).select_from(
    agreements.outerjoin(negotiations, negotiations.c.id == agreements.c.negotiation_id))


def _agreement_view(row: Any) -> Json:
    return {"id": row["id"], "negotiationId": row["negotiation_id"], "role": row["role"], "providerId": row["provider_id"],
            "consumerId": row["consumer_id"], "assetId": row["asset_id"], "offerId": row["offer_id"], "policy": row["policy"],
            "createdAt": row["created_at"], "state": row["negotiation_state"]}


def openapi_document() -> Json:
    def op(summary: str, body: str | None = None, params: tuple[str, ...] = ()) -> Json:
        out: Json = {"summary": summary, "security": [{"apiKey": []}], "responses": {
            "200": {"description": "OK"}, "400": {"description": "invalid input, the error names the field"},
            "401": {"description": "missing or wrong X-Api-Key"}}}
        if body:
            out["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
        if params:
            out["parameters"] = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in params]
        return out

    def idempotent(operation: Json) -> Json:
        operation["parameters"] = [{"name": "Idempotency-Key", "in": "header", "required": False,
                                    "schema": PEER_ID, "description": "a retry with the same key and body gets the "
                                    "first answer and creates nothing; another body with the key is refused (422)"}]
        operation["responses"]["422"] = {"description": "the Idempotency-Key was used for another body"}
        return operation

    return {
        "openapi": "3.1.0",
        "info": {"title": "Hong Kong station connector: management API", "version": "1"},
        "components": {"schemas": SCHEMAS, "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}}},
        "paths": {
            "/api/v1/assets": {"post": op("create an asset", "AssetInput"), "get": op("list assets (?limit=N: a page, Link rel=next with its cursor; ?q=words: "
                                                                                       "those whose id or title contains them, case ignored)")},
            "/api/v1/assets/{id}": {"get": op("get an asset", params=("id",)),
                                    "patch": op("change an asset's title, description, content type or data address "
                                                "(checked as at creation); the catalog shows the change at its next "
                                                "page, and every later access reads the new address",
                                                "AssetChange", ("id",))},
            "/api/v1/policies": {"post": op("store an ODRL policy", "PolicyInput"), "get": op("list policies (?limit=N: a page, Link rel=next with its cursor)")},
            "/api/v1/policies/{id}": {"get": op("get a policy", params=("id",))},
            "/api/v1/offers": {"post": op("offer assets under an access and a contract policy", "OfferInput"), "get": op("list offers (?limit=N: a page, Link rel=next with its cursor)")},
            "/api/v1/offers/{id}": {
                "put": op("change an offer's assets or policies; its access policy as it is now decides every "
                          "later negotiation, transfer start and access, also under agreements already made",
                          "OfferInput", ("id",)),
                "delete": op("withdraw an offer; agreements made under it are refused from then on", params=("id",))},
            "/api/v1/catalog/request": {"post": op("request a peer's catalog", "CatalogQuery")},
            "/api/v1/negotiations": {"post": idempotent(op("start negotiating an offer with a provider",
                                                            "NegotiationInput")),
                                     "get": op("list negotiations, the newest first (?state=&limit=&offset= or &cursor=; Link: next)")},
            "/api/v1/negotiations/{id}": {"get": op("get a negotiation (?waitFor=FINALIZED&timeout=10 waits)", params=("id",))},
            "/api/v1/negotiations/{id}/terminate": {"post": op("terminate a negotiation", "TerminateInput", ("id",))},
            "/api/v1/negotiations/{id}/accept": {"post": op("accept the provider's counter-offer", params=("id",))},
            "/api/v1/agreements": {"get": op("list agreements (?limit=N: a page, Link rel=next with its cursor; ?order=newest: newest first)")},
            "/api/v1/agreements/{id}": {"get": op("get an agreement", params=("id",))},
            "/api/v1/agreements/{id}/computations": {
                "post": op("compute on a computation-only agreement (consumer): the result table", "ComputationInput",
                           ("id",)),
                "get": op("the computations recorded under an agreement (provider: digests, rows, refusals)",
                          params=("id",))},
            "/api/v1/transfers": {"post": idempotent(op("start a transfer under an agreement", "TransferInput")),
                                  "get": op("list transfers, the newest first (?limit=&offset= or &cursor=; Link: next)")},
            "/api/v1/transfers/{id}": {"get": op("get a transfer (?waitFor=STARTED&timeout=10 waits), with bytesMoved: "
                                                 "the bytes this node's data plane has moved for it so far",
                                                 params=("id",))},
            "/api/v1/transfers/{id}/suspend": {"post": op("suspend a transfer", "TerminateInput", ("id",))},
            "/api/v1/transfers/{id}/resume": {"post": op("resume a suspended transfer", params=("id",))},
            "/api/v1/transfers/{id}/complete": {"post": op("complete a transfer", params=("id",))},
            "/api/v1/transfers/{id}/terminate": {"post": op("terminate a transfer", "TerminateInput", ("id",))},
            "/api/v1/transfers/{id}/data": {"get": op("the data of a transfer (?purpose= declares the purpose)",
                                                      params=("id",))},
            "/api/v1/access-log": {"get": op("every data access with its decision (?agreementId=&limit=)")},
            "/api/v1/dead-letters": {"get": op("messages given up at their delivery deadline, with the cause (?limit=)")},
            "/api/v1/dead-letters/{id}/retry": {"post": op("queue a dead letter again, with a new deadline",
                                                           params=("id",))},
            "/api/v1/metrics": {"get": op("Prometheus metrics (the key may also come as Authorization: Bearer)")},
            "/api/v1/clearinghouse": {"get": op("the clearing house: receipts kept, entries pending, newest checkpoint, "
                                                "and whether the log has stayed consistent")},
            "/api/v1/clearinghouse/audit": {"post": op("audit every kept receipt now: the log must still serve each "
                                                       "entry at its index in a tree that extends the newest checkpoint "
                                                       "seen; names the first bad entry and raises the alarm")},
            "/api/v1/negotiations/{id}/receipts": {"get": op("verified receipts of a negotiation's log entries",
                                                             params=("id",))},
            "/api/v1/transfers/{id}/receipts": {"get": op("verified receipts of a transfer's log entries",
                                                          params=("id",))},
            "/api/v1/diagnostics/peer-roundtrips": {"post": op("bare HTTP GET round trips to a peer URL (e.g. its /health)", "RoundTripsInput")},
        },
    }
