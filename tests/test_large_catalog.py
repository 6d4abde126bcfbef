"""A catalog far larger than one socket read reaches the consumer whole: peers' answers are read
to EOF (at 300 offers, 112 KB, a consumer's catalog request used to fail with 502)."""
from __future__ import annotations

import httpx
import pytest

from support.nodes import NodeProcess

pytestmark = pytest.mark.slow
OFFERS = 1500


def test_a_large_catalog_reaches_the_consumer(tmp_path):
    provider = NodeProcess(tmp_path / "provider", "Provider").start()
    consumer = NodeProcess(tmp_path / "consumer", "Consumer").start()
    try:
        provider.api("POST", "/policies", {"id": "open", "policy": {"permission": [{"action": "use"}]}}, expect=201)
        with httpx.Client(base_url=provider.url + "/api/v1", headers=provider.headers(), timeout=30) as api:
            for i in range(OFFERS):
                assert api.post("/assets", json={"id": f"dataset-{i:05d}", "title": f"Dataset {i}"}).status_code == 201
                assert api.post("/offers", json={"id": f"offer-{i:05d}", "assetIds": [f"dataset-{i:05d}"],
                                                 "accessPolicyId": "open", "contractPolicyId": "open"}).status_code == 201
        for version in ("2025-1", "2024-1"):
            catalog = consumer.catalog(provider, version)["catalog"]
            datasets = catalog.get("dataset", catalog.get("dcat:dataset", []))
            assert len(datasets) == OFFERS, version
    finally:
        consumer.stop()
        provider.stop()
