"""A body whose JSON-LD processing would take more memory than `[dsp] jsonld_memory_mib` is refused
by the worker (400 naming the limit), and the worker goes on serving: memory is bounded like time,
depth and node count. Real worker processes (the node's pool)."""
from __future__ import annotations

import orjson
import pytest

from connector.node.codec import Codec
from connector.protocol.bounds import JsonLdLimitExceeded, JsonLdLimits

DSP25 = "https://w3id.org/dspace/2025/1/context.jsonld"


def slow_path_body(values: int, text: str = "value number {} with some text to expand") -> bytes:
    """A CatalogRequestMessage with an inline context (so: expanded in a worker) and a large list."""
    return orjson.dumps({"@context": [DSP25, {"ex": "https://example.org/vocab#"}], "@type": "CatalogRequestMessage",
                         "ex:list": [text.format(i) for i in range(values)]})


async def test_a_body_over_the_memory_limit_is_refused_and_the_worker_serves_on():
    codec = Codec(JsonLdLimits(max_nodes=200_000, max_bytes=5 * 1024 * 1024, timeout=60, memory_mib=8))
    try:
        with pytest.raises(JsonLdLimitExceeded, match="jsonld_memory_mib"):
            await codec.decode(slow_path_body(100_000), "2025-1")
        small = await codec.decode(slow_path_body(3), "2025-1")  # the same worker, afterwards
        assert small["@type"] == "CatalogRequestMessage"
        assert codec.pool.replaced == 0
    finally:
        await codec.close()


async def test_the_default_limit_admits_a_body_at_the_node_count_limit():
    codec = Codec(JsonLdLimits())
    try:
        body = slow_path_body(49_000, "v{}")
        assert len(body) < JsonLdLimits().max_bytes
        doc = await codec.decode(body, "2025-1")
        assert doc["@type"] == "CatalogRequestMessage"
    finally:
        await codec.close()
