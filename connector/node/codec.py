"""Bytes <-> neutral messages for one DSP version: the fast path for the canonical
context, pyld (offline) for anything else."""
from __future__ import annotations

from typing import Any

import orjson

from .. import vocab
from ..protocol import wire
from ..protocol.errors import MalformedMessage
from ..protocol.jsonld import JsonLdProcessor, UnknownContext

Json = dict[str, Any]
VERSIONS = ("2025-1", "2024-1")


class Codec:
    def __init__(self) -> None:
        self.jsonld = JsonLdProcessor(vocab.load_contexts())

    def decode(self, raw: bytes, version: str) -> Json:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedMessage(f"the body is not valid JSON: {exc}") from None
        return self.decode_doc(doc, version)

    def decode_doc(self, doc: Any, version: str) -> Json:
        if not isinstance(doc, dict):
            raise MalformedMessage("the body must be a JSON object")
        if "@context" not in doc:
            raise MalformedMessage("required field '@context' is missing")
        if not self.jsonld.is_canonical(doc, version):
            try:
                found = self.jsonld.detect_version(doc)
                if found is not None and found != version:
                    raise MalformedMessage(f"a DSP {found} message was sent to the DSP {version} endpoint")
                doc = self.jsonld.canonicalize(doc, version)
            except UnknownContext as exc:
                raise MalformedMessage(
                    f"unknown @context {getattr(exc, 'url', exc)!s}: this node never fetches contexts",
                    code="UnknownContext",
                ) from None
            except MalformedMessage:
                raise
            except Exception as exc:  # pyld raises its own error types
                raise MalformedMessage(f"JSON-LD processing failed: {str(exc)[:300]}") from None
        return wire.from_wire(doc, version)

    @staticmethod
    def encode(neutral: Json, version: str) -> bytes:
        return orjson.dumps(wire.to_wire(neutral, version))
