"""The DSP HTTP binding, one route table per protocol version under /dsp/<version>."""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..identity import Caller
from ..protocol.errors import MalformedMessage, PayloadTooLarge, ProtocolError, UnknownProcess, echo
from ..protocol.messages import (
    CatalogRequestMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    Message,
    TransferRequestMessage,
    TransferStartMessage,
    error_object,
    parse_message,
    parse_transfer_message,
    check_id,
)
from ..protocol.negotiation import Role
from .catalog_pages import page_size
from .codec import VERSIONS, Codec
from .negotiations import message_digest
from .transfers import PUSH, transfer_format

log = logging.getLogger("connector.dsp")
Json = dict[str, Any]

# path suffix -> (message types accepted there, role of the process that receives it; None = either)
PROCESS_PATHS: dict[str, tuple[tuple[str, ...], Role | None]] = {
    "request": (("ContractRequestMessage",), Role.PROVIDER),
    "events": (("ContractNegotiationEventMessage",), None),
    "agreement/verification": (("ContractAgreementVerificationMessage",), Role.PROVIDER),
    "termination": (("ContractNegotiationTerminationMessage",), None),
    "offers": (("ContractOfferMessage",), Role.CONSUMER),
    "agreement": (("ContractAgreementMessage",), Role.CONSUMER),
}


# path suffix -> the transfer message accepted there (same paths for both roles)
TRANSFER_PATHS: dict[str, str] = {
    "start": "TransferStartMessage",
    "completion": "TransferCompletionMessage",
    "suspension": "TransferSuspensionMessage",
    "termination": "TransferTerminationMessage",
}


def chosen_destinations(msg: Message) -> list[tuple[str, Any]]:
    """The URLs in a peer's message that this node would send requests to (pure): the
    callbackAddress that starts a process, the push endpoint of a push TransferRequest, the
    data endpoint of a TransferStartMessage. Each is checked before the message is applied."""
    found: list[tuple[str, Any]] = []
    if isinstance(msg, ContractRequestMessage) and msg.provider_pid is None and msg.callback_address:
        found.append(("callbackAddress", msg.callback_address))
    elif isinstance(msg, ContractOfferMessage) and msg.consumer_pid is None and msg.callback_address:
        found.append(("callbackAddress", msg.callback_address))
    elif isinstance(msg, TransferRequestMessage):
        found.append(("callbackAddress", msg.callback_address))
        if transfer_format(msg.format) == PUSH and isinstance(msg.data_address, dict) \
                and msg.data_address.get("endpoint") is not None:
            found.append(("the push endpoint (dataAddress endpoint)", msg.data_address["endpoint"]))
    elif isinstance(msg, TransferStartMessage) and isinstance(msg.data_address, dict) \
            and msg.data_address.get("endpoint") is not None:
        found.append(("the data endpoint (dataAddress endpoint)", msg.data_address["endpoint"]))
    return found


def version_document(public_root: str) -> Json:
    return {
        "protocolVersions": [
            {"version": "2025-1", "path": "/dsp/2025-1", "binding": "HTTPS"},
            {"version": "2024-1", "path": "/dsp/2024-1", "binding": "HTTPS"},
        ]
    }


_EDC_NS = "https://w3id.org/edc/v0.0.1/ns/"


def edc_page_limit(filters: Any) -> int | None:
    """The one catalog filter this node honours: Eclipse EDC sends every CatalogRequestMessage with
    `filter: [QuerySpec{offset 0, limit N, filterExpression []}]`, i.e. "the first N datasets".
    Returns N; anything else (a filter expression, an offset, a sort field) is refused."""
    entries = filters if isinstance(filters, list) else [filters]
    limit: int | None = None
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("@type") != _EDC_NS + "QuerySpec" or \
                entry.get(_EDC_NS + "filterExpression") not in (None, []) or \
                entry.get(_EDC_NS + "offset", 0) != 0 or entry.get(_EDC_NS + "sortField") is not None:
            raise MalformedMessage("catalog filters are not supported by this node (only EDC's first-page "
                                   "QuerySpec with no filter expression)", code="FilterNotSupported")
        value = entry.get(_EDC_NS + "limit")
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise MalformedMessage("the QuerySpec limit must be a non-negative integer", code="FilterNotSupported")
            limit = value if limit is None else min(limit, value)
    return limit


class DspApi:
    def __init__(self, node: Any) -> None:
        self.node = node
        self.codec: Codec = node.codec

    def routes(self) -> list[web.RouteDef]:
        out = [web.get("/.well-known/dspace-version", self.well_known)]
        for v in VERSIONS:
            base = f"/dsp/{v}"
            out += [
                web.post(f"{base}/catalog/request", self._bind(self.catalog_request, v)),
                web.get(f"{base}/catalog/datasets/{{id}}", self._bind(self.dataset, v)),
                web.post(f"{base}/negotiations/request", self._bind(self.initial_request, v)),
                web.post(f"{base}/negotiations/offers", self._bind(self.initial_offer, v)),
                web.get(f"{base}/negotiations/{{pid}}", self._bind(self.get_negotiation, v)),
                web.post(f"{base}/negotiations/{{pid}}/agreement/verification", self._bind(self.process_message, v, "agreement/verification")),
            ]
            for suffix in ("request", "events", "termination", "offers", "agreement"):
                out.append(web.post(f"{base}/negotiations/{{pid}}/{suffix}", self._bind(self.process_message, v, suffix)))
            out += [
                web.post(f"{base}/transfers/request", self._bind(self.transfer_request, v)),
                web.get(f"{base}/transfers/{{pid}}", self._bind(self.get_transfer, v)),
            ]
            for suffix in TRANSFER_PATHS:
                out.append(web.post(f"{base}/transfers/{{pid}}/{suffix}", self._bind(self.transfer_message, v, suffix)))
        return out

    @staticmethod
    def _bind(handler, *args):  # noqa: ANN001, ANN205
        async def bound(request: web.Request) -> web.StreamResponse:
            return await handler(request, *args)
        return bound

    # ------------------------------------------------------------------ util
    def respond(self, neutral: Json, version: str, status: int = 200) -> web.Response:
        return web.Response(body=self.codec.encode(neutral, version), status=status, content_type="application/json")

    def error(self, exc: ProtocolError, version: str, error_type: str, **pids: str | None) -> web.Response:
        body = error_object(error_type, exc.code, exc.reason, **pids)
        return self.respond(body, version, exc.status)

    async def read_body(self, request: web.Request) -> bytes:
        limit = self.node.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"the body is {request.content_length} bytes; the limit is {limit}")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes") from None

    async def verified(self, request: web.Request):  # noqa: ANN201
        return await self.node.metrics.checked(self.node.identity.verify(request.headers.get("Authorization")))

    async def caller(self, request: web.Request) -> str:
        return (await self.verified(request)).participant_id

    # -------------------------------------------------------------- handlers
    async def well_known(self, request: web.Request) -> web.Response:
        # Unversioned and unauthenticated (DSP 2025-1).
        return web.json_response(version_document(self.node.settings.node.public_url))

    async def catalog_request(self, request: web.Request, version: str) -> web.Response:
        try:
            caller = await self.verified(request)
            raw = await self.read_body(request)
            msg = parse_message(await self.codec.decode_once(request, raw, version), expected=("CatalogRequestMessage",))
            assert isinstance(msg, CatalogRequestMessage)
            limit = edc_page_limit(msg.filter) if msg.filter else None
            base = self.node.settings.dsp_base(version)
            rendered = await self.node.catalog.pages.response(
                base, caller, dsp_version=version, size=page_size(request.query.get("pageSize")),
                token=request.query.get("continuationToken"), limit=limit)
            response = web.Response(body=rendered.body, content_type="application/json")
            if rendered.links:
                response.headers["Link"] = rendered.links
            return response
        except ProtocolError as exc:
            return self.error(exc, version, "CatalogError")

    async def dataset(self, request: web.Request, version: str) -> web.Response:
        try:
            caller = await self.verified(request)
            dataset_id = check_id(request.match_info["id"], "id", "the path")
            dataset = await self.node.catalog.dataset(self.node.settings.dsp_base(version), dataset_id, caller)
            if dataset is None:
                raise UnknownProcess(f"no dataset {echo(dataset_id)} in this catalog", code="UnknownDataset")
            return self.respond(dataset, version)
        except ProtocolError as exc:
            return self.error(exc, version, "CatalogError")

    async def _inbound(self, request: web.Request, version: str, error_type: str, parse: Callable[[Json], Message],
                       handle: Callable[[Message, Caller, bytes], Awaitable[tuple[int, Json]]]) -> web.Response:
        """Every inbound protocol message: authenticate, size-limit, decode, parse, apply, answer;
        an error is a DSP error object naming the problem, with the pids the body carried."""
        pids: dict[str, str | None] = {}
        try:
            caller = await self.verified(request)
            if "pid" in request.match_info:
                check_id(request.match_info["pid"], "pid", "the path")
            raw = await self.read_body(request)
            neutral = await self.codec.decode_once(request, raw, version)
            pids = {"provider_pid": _pid(neutral, "providerPid"), "consumer_pid": _pid(neutral, "consumerPid")}
            msg = parse(neutral)
            for what, url in chosen_destinations(msg):  # before anything is recorded or sent
                if self.node.settings.tck_enabled and isinstance(msg, TransferStartMessage):
                    # TCK profile only: the TCK's TransferStartMessages name http://example.com, which no
                    # offline resolver knows; the HTTP client's connect-time guard still judges a fetch.
                    continue
                await self.node.destinations.check(url, sender=caller.participant_id, what=what)
            status, body = await handle(msg, caller, raw)
            return self.respond(body, version, status)
        except ProtocolError as exc:
            return self.error(exc, version, error_type, **pids)

    async def _get_process(self, request: web.Request, version: str, service: Any, body_type: str,
                           error_type: str, what: str) -> web.Response:
        pid = request.match_info["pid"]
        try:
            caller = await self.caller(request)
            check_id(pid, "pid", "the path")
            row = await service.get(pid)
            if row is None or row["counterparty_id"] != caller:
                raise UnknownProcess(f"no {what} {echo(pid)}")  # nor someone else's: reveal nothing
            return self.respond({"@type": body_type, "providerPid": row["provider_pid"] or "urn:unknown",
                                 "consumerPid": row["consumer_pid"] or "urn:unknown", "state": row["state"]}, version)
        except ProtocolError as exc:
            return self.error(exc, version, error_type, provider_pid=pid)

    # negotiations
    async def initial_request(self, request: web.Request, version: str) -> web.Response:
        return await self._inbound(
            request, version, "ContractNegotiationError",
            lambda doc: parse_message(doc, expected=("ContractRequestMessage",)),
            lambda msg, caller, raw: self.node.negotiations.receive_initial_request(
                version, msg, caller, message_digest(None, raw), raw))

    async def initial_offer(self, request: web.Request, version: str) -> web.Response:
        return await self._inbound(
            request, version, "ContractNegotiationError",
            lambda doc: parse_message(doc, expected=("ContractOfferMessage",)),
            lambda msg, caller, raw: self.node.negotiations.receive_initial_offer(
                version, msg, caller.participant_id, message_digest(None, raw), raw))

    async def get_negotiation(self, request: web.Request, version: str) -> web.Response:
        return await self._get_process(request, version, self.node.negotiations, "ContractNegotiation",
                                       "ContractNegotiationError", "contract negotiation")

    async def process_message(self, request: web.Request, version: str, suffix: str) -> web.Response:
        pid = request.match_info["pid"]
        expected, path_role = PROCESS_PATHS[suffix]
        return await self._inbound(
            request, version, "ContractNegotiationError",
            lambda doc: parse_message(doc, expected=expected),
            lambda msg, caller, raw: self.node.negotiations.receive(
                version, pid, path_role, msg, caller, message_digest(pid, raw), raw))

    # transfers
    async def transfer_request(self, request: web.Request, version: str) -> web.Response:
        return await self._inbound(
            request, version, "TransferError",
            lambda doc: parse_transfer_message(doc, expected=("TransferRequestMessage",)),
            lambda msg, caller, raw: self.node.transfers.receive_request(
                version, msg, caller, message_digest(None, raw), raw))

    async def get_transfer(self, request: web.Request, version: str) -> web.Response:
        return await self._get_process(request, version, self.node.transfers, "TransferProcess", "TransferError",
                                       "transfer process")

    async def transfer_message(self, request: web.Request, version: str, suffix: str) -> web.Response:
        pid = request.match_info["pid"]
        return await self._inbound(
            request, version, "TransferError",
            lambda doc: parse_transfer_message(doc, expected=(TRANSFER_PATHS[suffix],)),
            lambda msg, caller, raw: self.node.transfers.receive(version, pid, msg, caller, message_digest(pid, raw),
                                                                 raw))


def _pid(neutral: Json, key: str) -> str | None:
    value = neutral.get(key)
    if isinstance(value, dict):
        value = value.get("@id")
    return value if isinstance(value, str) else None
