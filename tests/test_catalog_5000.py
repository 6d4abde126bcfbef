"""A catalog of 5,000 offers (about 2 MB on the wire) reaches a consumer whole through
`POST /api/v1/catalog/request`, in both DSP versions (issue 11, done-when). One asset and offer
are created through the provider's management API; the other 4,999 are copies of those rows
written into the provider's SQLite file while it is stopped (5,000 HTTP calls would take minutes
on a shared machine); the catalog is then served by the restarted provider process."""
from __future__ import annotations

import sqlite3

import pytest

from support.nodes import NodeProcess

pytestmark = pytest.mark.slow
OFFERS = 5000


def copy_offers(db_path, count: int) -> None:
    """Rows 1..count-1 as copies of dataset-00000 / offer-00000 (and their index row), exactly as the API stores them."""
    db = sqlite3.connect(db_path)
    try:
        with db:
            asset = db.execute("SELECT title, description, content_type, properties, data_address, created_at "
                               "FROM assets WHERE id = 'dataset-00000'").fetchone()
            offer = db.execute("SELECT access_policy_id, contract_policy_id, created_at FROM offers "
                               "WHERE id = 'offer-00000'").fetchone()
            db.executemany("INSERT INTO assets (id, title, description, content_type, properties, data_address,"
                           " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(f"dataset-{i:05d}", f"Dataset {i}", *asset[1:]) for i in range(1, count)])
            db.executemany("INSERT INTO offers (id, asset_ids, access_policy_id, contract_policy_id, created_at)"
                           " VALUES (?, ?, ?, ?, ?)",
                           [(f"offer-{i:05d}", f'["dataset-{i:05d}"]', *offer) for i in range(1, count)])
            # the catalog's index of offers by asset and access policy, as the API keeps it
            db.executemany("INSERT INTO offer_assets (asset_id, offer_id, access_policy_id) VALUES (?, ?, ?)",
                           [(f"dataset-{i:05d}", f"offer-{i:05d}", offer[0]) for i in range(1, count)])
    finally:
        db.close()


def test_a_catalog_of_5000_offers_reaches_the_consumer(tmp_path):
    provider = NodeProcess(tmp_path / "provider", "Provider").start()
    consumer = NodeProcess(tmp_path / "consumer", "Consumer").start()
    try:
        provider.api("POST", "/policies", {"id": "open", "policy": {"permission": [{"action": "use"}]}}, expect=201)
        provider.api("POST", "/assets", {"id": "dataset-00000", "title": "Dataset 0"}, expect=201)
        provider.api("POST", "/offers", {"id": "offer-00000", "assetIds": ["dataset-00000"],
                                         "accessPolicyId": "open", "contractPolicyId": "open"}, expect=201)
        provider.stop()
        copy_offers(provider.directory / "node.db", OFFERS)
        provider.start()
        for version in ("2025-1", "2024-1"):
            catalog = consumer.catalog(provider, version)["catalog"]
            datasets = catalog.get("dataset", catalog.get("dcat:dataset", []))
            ids = {d.get("@id") for d in datasets}
            assert len(datasets) == OFFERS and len(ids) == OFFERS, (version, len(datasets), len(ids))
            assert "dataset-04999" in ids and "dataset-00000" in ids, version
    finally:
        consumer.stop()
        provider.stop()
