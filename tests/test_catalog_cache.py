"""Rendered catalog pages are kept per catalog version and decision class (node/catalog_pages.py).
What must hold: a change to an offer, its policy or the requester's claims is seen by the very
next request on every replica (the version row is raised by trigger in the writer's transaction,
whoever writes); nothing kept for one requester reaches another whose claims the access policies
decide differently; every dataset shown is one the requester's access policies admit."""
from __future__ import annotations

import httpx
import orjson
import pytest
import sqlalchemy as sa

from connector.identity import Caller
from connector.node.catalog import CatalogService
from connector.store.db import Database
from connector.store.tables import catalog_version, offer_assets, offers
from conftest import BACKENDS, database_url
from support.nodes import NodeProcess
from test_catalog_pages import HK_ONLY, ONLY_DS_004, OPEN, read_page, token

SG_ONLY = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "hks:recipientJurisdiction", "operator": "isAnyOf", "rightOperand": ["SG"]}]}]}
BEFORE_2000 = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2000-01-01T00:00:00Z"}]}]}
BASE = "http://me/dsp/2025-1"


async def _catalog(db: Database) -> CatalogService:
    """ds-00..ds-11 under open, HK-only, SG-only, a time-bound policy nobody meets now and a
    target-specific one (decided per dataset): every kind of decision the cache keeps or not."""
    catalog = CatalogService(db, participant_id="urn:me", title="Me")
    for pid, body in (("open", OPEN), ("hk-only", HK_ONLY), ("sg-only", SG_ONLY), ("before-2000", BEFORE_2000),
                      ("only-ds-004", ONLY_DS_004)):
        await catalog.create_policy(pid, body)
    kinds = ["open", "hk-only", "sg-only", "before-2000"]
    for i in range(12):
        await catalog.create_asset({"id": f"ds-{i:03d}"})
        await catalog.create_offer({"id": f"o-{i:03d}", "assetIds": [f"ds-{i:03d}"], "accessPolicyId": kinds[i % 4],
                                    "contractPolicyId": "open"})
    await catalog.create_offer({"id": "extra", "assetIds": ["ds-003", "ds-004", "ds-007"],
                                "accessPolicyId": "only-ds-004", "contractPolicyId": "open"})
    return catalog


def _seen(body: bytes) -> dict[str, list[str]]:
    return {d["@id"]: [o["@id"] for o in d["hasPolicy"]] for d in orjson.loads(body).get("dataset", [])}


async def _walk(catalog: CatalogService, caller: Caller, size: int) -> dict[str, list[str]]:
    seen, token = {}, None
    while True:
        rendered = await catalog.pages.response(BASE, caller, dsp_version="2025-1", size=size, token=token)
        seen.update(_seen(rendered.body))
        if not rendered.links or 'rel="next"' not in rendered.links:
            return seen
        token = rendered.links.split("continuationToken=")[-1].split(">")[0]  # the last link is rel="next"


@pytest.fixture(params=BACKENDS)
async def catalog(request, tmp_path):
    async with database_url(request.param, tmp_path) as url:
        db = Database(url)
        await db.migrate()
        yield await _catalog(db)
        await db.dispose()


async def test_kept_pages_never_reach_a_requester_whose_claims_are_decided_otherwise(catalog):
    hk, sg = Caller("urn:hk", {"jurisdiction": "HK"}), Caller("urn:sg", {"jurisdiction": "SG"})
    nobody = Caller("urn:nobody", {})
    hk_too = Caller("urn:other-hk", {"jurisdiction": "HK"})  # another participant, the same decisions
    open_ids = {f"ds-{i:03d}" for i in range(0, 12, 4)}
    expected = [
        (hk, open_ids | {f"ds-{i:03d}" for i in range(1, 12, 4)} | {"ds-004"}),
        (sg, open_ids | {f"ds-{i:03d}" for i in range(2, 12, 4)} | {"ds-004"}),
        (nobody, open_ids | {"ds-004"}),
        (hk_too, open_ids | {f"ds-{i:03d}" for i in range(1, 12, 4)} | {"ds-004"}),
    ]
    for _ in range(2):  # the second round is served from the kept pages
        for caller, ids in expected:
            for size in (3, 1000):
                seen = await _walk(catalog, caller, size)
                assert set(seen) == ids, (caller, size)
                # the target-specific offer shows on ds-004 only, the time-bound ones nowhere
                assert seen["ds-004"] == ["o-004", "extra::ds-004"]
                assert all(o != "extra::ds-003" and o != "extra::ds-007" for v in seen.values() for o in v)
    assert catalog.pages.rendered._pages, "pages were kept"
    # the EDC first-N filter is part of the key
    limited = await catalog.pages.response(BASE, hk, dsp_version="2025-1", limit=2)
    assert list(_seen(limited.body)) == ["ds-000", "ds-001"] and limited.links is None
    full = await catalog.pages.response(BASE, hk, dsp_version="2025-1")
    assert len(_seen(full.body)) == len(expected[0][1])


async def test_any_write_to_the_catalog_tables_raises_the_version_and_the_next_page_shows_it(catalog):
    """Also a write that bypasses the service (raw SQL, another process): the trigger raises it."""
    db = catalog.db
    hk = Caller("urn:hk", {"jurisdiction": "HK"})
    version = lambda: db.read(lambda conn: conn.execute(sa.select(catalog_version.c.version)).scalar_one())  # noqa: E731
    before = await version()
    first = _seen((await catalog.pages.response(BASE, hk, dsp_version="2025-1")).body)
    assert "ds-002" not in first
    # raw writes, one transaction: ds-002's SG-only offer now under the open policy
    await db.transaction(lambda conn: (
        conn.execute(sa.update(offers).where(offers.c.id == "o-002").values(access_policy_id="open")),
        conn.execute(sa.update(offer_assets).where(offer_assets.c.offer_id == "o-002")
                     .values(access_policy_id="open"))))
    after = await version()
    assert after > before
    if db.is_postgres:
        assert after == before + 1  # once per transaction
    assert "ds-002" in _seen((await catalog.pages.response(BASE, hk, dsp_version="2025-1")).body)
    # through the service: withdrawn, then the asset's certificate-free data address changes nothing else
    await catalog.delete_offer("o-000")
    assert "ds-000" not in _seen((await catalog.pages.response(BASE, hk, dsp_version="2025-1")).body)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_change_through_one_replica_is_seen_by_the_next_request_at_the_other(tmp_path, pg_url):
    """Two processes of one node on one PostgreSQL: pages kept at one replica give way at once to
    an offer's change, a withdrawal, a new offer and a requester's changed claims made elsewhere."""
    first = NodeProcess(tmp_path / "provider-1", "Provider", database_url=pg_url)
    second = first.replica(tmp_path / "provider-2")
    nodes = [first.start(), second.start()]
    try:
        for pid, body in (("open", OPEN), ("hk-only", HK_ONLY)):
            first.api("POST", "/policies", {"id": pid, "policy": body}, expect=201)
        for i in range(10):
            first.api("POST", "/assets", {"id": f"ds-{i:03d}"}, expect=201)
            first.api("POST", "/offers", {"id": f"o-{i:03d}", "assetIds": [f"ds-{i:03d}"],
                                          "accessPolicyId": "hk-only" if i % 2 else "open",
                                          "contractPolicyId": "open"}, expect=201)
        hk, sg = token(first, "urn:hk", "HK"), token(first, "urn:sg", "SG")
        everything = [f"ds-{i:03d}" for i in range(10)]
        evens = everything[::2]

        def page(node: NodeProcess, auth: str, version: str = "2025-1", query: str = "") -> list[str]:
            return read_page(client, f"{node.url}/dsp/{version}/catalog/request{query}", auth, version)[0]

        with httpx.Client(timeout=30) as client:
            for _ in range(2):  # kept at both replicas
                for node in nodes:
                    assert page(node, hk) == everything and page(node, sg) == evens
                    assert page(node, sg, "2024-1") == evens
                    assert page(node, hk, query="?pageSize=4") == everything[:4]
            # an offer's access policy changed at the second replica: the first's next page shows it
            second.api("PUT", "/offers/o-000", {"id": "o-000", "assetIds": ["ds-000"], "accessPolicyId": "hk-only",
                                                "contractPolicyId": "open"}, expect=200)
            assert page(first, sg) == evens[1:] and page(first, sg, "2024-1") == evens[1:]
            assert page(first, hk) == everything
            # withdrawn at the first: gone from the second's kept first page of four
            assert client.delete(f"{first.url}/api/v1/offers/o-001", headers=first.headers()).status_code == 204
            assert page(second, hk, query="?pageSize=4") == ["ds-000", "ds-002", "ds-003", "ds-004"]
            # a new offer at the second, on a new policy that admits SG only: the first shows it to SG
            second.api("POST", "/policies", {"id": "sg-only", "policy": SG_ONLY}, expect=201)
            second.api("POST", "/assets", {"id": "ds-001b"}, expect=201)
            second.api("POST", "/offers", {"id": "o-001b", "assetIds": ["ds-001b"], "accessPolicyId": "sg-only",
                                           "contractPolicyId": "open"}, expect=201)
            assert page(first, sg) == ["ds-001b"] + evens[1:]
            assert "ds-001b" not in page(first, hk)
            # one participant whose jurisdiction changed (a new token): its next page is decided anew
            moved = token(first, "urn:hk", "SG")
            assert page(first, moved) == ["ds-001b"] + evens[1:] and page(second, moved) == ["ds-001b"] + evens[1:]
            assert page(first, hk) == [d for d in everything if d != "ds-001"]
    finally:
        for node in nodes:
            node.stop()
