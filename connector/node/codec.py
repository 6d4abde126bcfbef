"""Bytes <-> neutral messages for one DSP version: the fast path for the canonical
context, pyld (offline) for anything else, bounded and off the event loop."""
from __future__ import annotations

from typing import Any

import orjson

from ..protocol import wire
from ..protocol.bounds import JsonLdLimitExceeded, JsonLdLimits, check_jsonld_size, time_limit_exceeded
from ..protocol.errors import MalformedMessage, ProtocolError, echo
from ..protocol.jsonld import detect_version, is_canonical
from .jsonld_pool import CanonicalizeError, JsonLdPool, OverLimitError, PoolError, UnknownContextError, loads

Json = dict[str, Any]
VERSIONS = ("2025-1", "2024-1")
#: request key under which a DSP body's decoding (or its error) is kept, so the identity
#: middleware and the handler decode a body once
DECODED = "connector.dsp.decoded"


class JsonLdBusy(ProtocolError):
    status = 503
    code = "JsonLdBusy"


class Codec:
    def __init__(self, limits: JsonLdLimits | None = None, *, workers: int = 1) -> None:
        self.limits = limits or JsonLdLimits()
        self.pool = JsonLdPool(self.limits, workers)

    @staticmethod
    def parse(raw: bytes) -> Json:
        try:
            doc = loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedMessage(f"the body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise MalformedMessage("the body must be a JSON object")
        if "@context" not in doc:
            raise MalformedMessage("required field '@context' is missing")
        return doc

    async def decode(self, raw: bytes, version: str) -> Json:
        doc = self.parse(raw)
        if is_canonical(doc, version):  # the fast path
            return wire.from_wire(doc, version)
        found = detect_version(doc)
        if found is not None and found != version:
            raise MalformedMessage(f"a DSP {found} message was sent to the DSP {version} endpoint")
        check_jsonld_size(len(raw), self.limits)
        del doc  # the worker parses its own copy and checks depth and node count before PyLD
        try:
            doc = await self.pool.canonicalize(raw, version)
        except OverLimitError as exc:
            raise JsonLdLimitExceeded(str(exc)) from None
        except UnknownContextError as exc:
            raise MalformedMessage(f"unknown @context {echo(exc.url)}: this node never fetches contexts",
                                   code="UnknownContext") from None
        except CanonicalizeError as exc:
            raise MalformedMessage(f"JSON-LD processing failed: {echo(str(exc))}") from None
        except PoolError as exc:
            if exc.kind == "timeout":
                raise time_limit_exceeded(self.limits) from None
            raise JsonLdBusy("JSON-LD processing is unavailable at the moment: nothing was done, retry later") from None
        if not isinstance(doc, dict):  # pragma: no cover - compaction gives an object
            raise MalformedMessage("the body must be a JSON object")
        return wire.from_wire(doc, version)

    async def decode_once(self, request: Any, raw: bytes, version: str) -> Json:
        """`decode`, remembered on the request (a mapping): a second call for the same body
        gives the same answer (or raises the same error) without decoding again."""
        hit = request.get(DECODED)
        if hit is not None and hit[0] is raw and hit[1] == version:
            if isinstance(hit[2], ProtocolError):
                raise hit[2]
            return hit[2]
        try:
            neutral = await self.decode(raw, version)
        except ProtocolError as exc:
            request[DECODED] = (raw, version, exc)
            raise
        request[DECODED] = (raw, version, neutral)
        return neutral

    @staticmethod
    def encode(neutral: Json, version: str) -> bytes:
        return orjson.dumps(wire.to_wire(neutral, version))

    async def close(self) -> None:
        await self.pool.close()
