"""The DSP catalog in pages (Link headers rel="next"/"previous", both versions), decided per
requester's claims with the access-decision cache, which an offer's change reaches at once; and a
consumer (management API) walking a whole remote catalog or reading one page at a time."""
from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from connector.identity import DevSharedSecret
from connector.node.access_cache import PER_OFFER, PER_REQUEST, STATIC, classify
from connector.node.catalog_pages import decode_token, encode_token
from connector.node.usage import PolicyCache
from connector.protocol.errors import MalformedMessage
from conftest import BACKENDS, database_url
from support.nodes import SHARED_SECRET, NodeProcess

OPEN = {"permission": [{"action": "use"}]}
HK_ONLY = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "hks:recipientJurisdiction", "operator": "isAnyOf", "rightOperand": ["HK"]}]}]}
BEFORE_2000 = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2000-01-01T00:00:00Z"}]}]}
ONLY_DS_004 = {"permission": [{"action": "use", "target": "ds-004"}]}
DATASETS = 30


def policy_for(i: int) -> str:
    return "hk-only" if i % 3 == 1 else "open"


def token(node: NodeProcess, participant: str, jurisdiction: str) -> str:
    return "Bearer " + DevSharedSecret(participant, SHARED_SECRET).token_for(
        participant, {"jurisdiction": jurisdiction}, audience=node.participant_id)


def read_page(client: httpx.Client, url: str, auth: str, version: str) -> tuple[list[str], dict]:
    body = {"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": "CatalogRequestMessage"} \
        if version == "2025-1" else {"@context": "https://w3id.org/dspace/2024/1/context.json",
                                     "@type": "dspace:CatalogRequestMessage"}
    resp = client.post(url, json=body, headers={"Authorization": auth})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    datasets = doc.get("dataset", doc.get("dcat:dataset", []))
    links = {rel: str(link["url"]) for rel, link in resp.links.items()}
    return [d["@id"] for d in datasets], links


def walk(client: httpx.Client, url: str, auth: str, version: str) -> tuple[list[list[str]], list[dict]]:
    pages, links_seen = [], []
    while url:
        ids, links = read_page(client, url, auth, version)
        pages.append(ids)
        links_seen.append(links)
        url = links.get("next")
    return pages, links_seen


@pytest.mark.slow
def test_a_catalog_is_paged_per_requester_and_an_offer_change_shows_at_once(tmp_path):
    provider = NodeProcess(tmp_path / "provider", "Provider").start()
    consumer = NodeProcess(tmp_path / "consumer", "Consumer").start()
    try:
        with httpx.Client(base_url=provider.url + "/api/v1", headers=provider.headers(), timeout=30) as api:
            for pid, body in (("open", OPEN), ("hk-only", HK_ONLY), ("before-2000", BEFORE_2000),
                              ("only-ds-004", ONLY_DS_004)):
                assert api.post("/policies", json={"id": pid, "policy": body}).status_code == 201
            for i in range(DATASETS):
                assert api.post("/assets", json={"id": f"ds-{i:03d}"}).status_code == 201
                assert api.post("/offers", json={"id": f"offer-{i:03d}", "assetIds": [f"ds-{i:03d}"],
                                                 "accessPolicyId": policy_for(i),
                                                 "contractPolicyId": "open"}).status_code == 201
            # a second offer on ds-004 and ds-005 under a target-specific policy, one on ds-006 that nobody sees
            assert api.post("/offers", json={"id": "extra-4", "assetIds": ["ds-004", "ds-005"],
                                             "accessPolicyId": "only-ds-004",
                                             "contractPolicyId": "open"}).status_code == 201
            assert api.post("/offers", json={"id": "dated", "assetIds": ["ds-006"], "accessPolicyId": "before-2000",
                                             "contractPolicyId": "open"}).status_code == 201
        # management listings with cursors: the same rows as the whole listing, page by page
        with httpx.Client(base_url=provider.url, headers=provider.headers(), timeout=30) as api:
            for what in ("offers", "assets", "policies"):
                whole = api.get(f"/api/v1/{what}").json()
                paged, url = [], f"/api/v1/{what}?limit=8"
                while url:
                    resp = api.get(url)
                    assert resp.status_code == 200 and len(resp.json()) <= 8
                    paged += resp.json()
                    url = resp.links.get("next", {}).get("url")
                    url = str(url) if url else None
                assert paged == whole and len(whole) == {"offers": 32, "assets": 30, "policies": 4}[what]
            resp = api.get("/api/v1/offers?limit=8&cursor=" + "A" * 300)
            assert resp.status_code == 400 and "cursor" in resp.json()["error"] and "A" * 201 not in resp.text
        hk, sg = token(provider, "urn:hk", "HK"), token(provider, "urn:sg", "SG")
        everything = [f"ds-{i:03d}" for i in range(DATASETS)]
        # without HK: the open offers, and ds-004 by its target-specific second offer
        no_hk_only = sorted([d for i, d in enumerate(everything) if policy_for(i) != "hk-only"] + ["ds-004"])
        with httpx.Client(timeout=30) as client:
            for version in ("2025-1", "2024-1"):
                first = f"{provider.url}/dsp/{version}/catalog/request?pageSize=7"
                pages, links = walk(client, first, hk, version)
                assert [len(p) for p in pages] == [7, 7, 7, 7, 2] and sum(pages, []) == everything
                assert "previous" not in links[0] and "next" not in links[-1]
                back, _ = read_page(client, links[1]["previous"], hk, version)
                assert back == pages[0]
                # another requester, right after: the decisions cached for HK are not SG's
                pages, _ = walk(client, first, sg, version)
                assert sum(pages, []) == no_hk_only and all(len(p) <= 7 for p in pages)
                # the target-specific offer shows on ds-004 only, the dated one nowhere
                full, _ = read_page(client, f"{provider.url}/dsp/{version}/catalog/request", sg, version)
                assert full == no_hk_only
                resp = client.post(f"{provider.url}/dsp/{version}/catalog/request", headers={"Authorization": hk},
                                   json={"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                                         "@type": "CatalogRequestMessage"} if version == "2025-1" else
                                   {"@context": "https://w3id.org/dspace/2024/1/context.json",
                                    "@type": "dspace:CatalogRequestMessage"})
                datasets = {d["@id"]: d for d in resp.json().get("dataset", resp.json().get("dcat:dataset", []))}
                offers_of = {k: [o["@id"] for o in (v.get("hasPolicy") or v.get("odrl:hasPolicy"))]
                             for k, v in datasets.items()}
                assert offers_of["ds-004"] == ["offer-004", "extra-4::ds-004"]
                assert offers_of["ds-005"] == ["offer-005"] and offers_of["ds-006"] == ["offer-006"]
            # an offer's change is seen by the next request (SG saw ds-000 a moment ago)
            provider.api("PUT", "/offers/offer-000", {"id": "offer-000", "assetIds": ["ds-000"], "accessPolicyId": "hk-only",
                                                      "contractPolicyId": "open"}, expect=200)
            full, _ = read_page(client, f"{provider.url}/dsp/2025-1/catalog/request", sg, "2025-1")
            assert full == no_hk_only[1:]
            full, _ = read_page(client, f"{provider.url}/dsp/2025-1/catalog/request", hk, "2025-1")
            assert full == everything
            # a token we did not issue, a page size out of range: 400 naming our rule
            for query, code in (("continuationToken=" + "A" * 300, "InvalidContinuationToken"),
                                ("continuationToken=" + encode_token("n", "ds-001", 5000), "InvalidContinuationToken"),
                                ("pageSize=0", "InvalidPageSize"), ("pageSize=abc", "InvalidPageSize")):
                resp = client.post(f"{provider.url}/dsp/2025-1/catalog/request?{query}",
                                   headers={"Authorization": hk},
                                   json={"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                                         "@type": "CatalogRequestMessage"})
                assert resp.status_code == 400 and resp.json()["code"] == code, resp.text
                assert "A" * 201 not in resp.text
        # the consumer's management API: the whole catalog by walking its pages, or page by page
        whole = consumer.api("POST", "/catalog/request", {"counterPartyAddress": provider.url,
                                                          "counterPartyId": provider.participant_id,
                                                          "pageSize": 7, "all": True}, expect=200)
        assert whole["pages"] == 3 and whole["next"] is None  # dev mode: no jurisdiction claim, 20 datasets
        assert [d["@id"] for d in whole["catalog"]["dataset"]] == no_hk_only[1:]
        seen, query = [], {"counterPartyAddress": provider.url, "counterPartyId": provider.participant_id,
                           "pageSize": 7}
        while True:
            page = consumer.api("POST", "/catalog/request", query, expect=200)
            seen += [d["@id"] for d in page["catalog"].get("dataset", [])]
            if page["next"] is None:
                break
            query = {**query, "continuation": page["next"]}
        assert seen == no_hk_only[1:]
        elsewhere = consumer.api("POST", "/catalog/request", {**query, "continuation": "http://example.org/x"},
                                 expect=400)
        assert "not the provider's catalog endpoint" in elsewhere["error"]
        # the CLI lists the whole catalog through the running consumer, page by page
        out = subprocess.run([sys.executable, "-m", "connector", "catalog", str(consumer.directory),
                              "--address", provider.url, "--id", provider.participant_id, "--page-size", "6",
                              "--json"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert [json.loads(line)["@id"] for line in out.stdout.splitlines()] == no_hk_only[1:]
    finally:
        consumer.stop()
        provider.stop()


def test_what_a_decision_depends_on_is_read_from_the_compiled_policy():
    cache = PolicyCache()
    assert classify(cache.compile(OPEN)) == STATIC
    assert classify(cache.compile(HK_ONLY)) == STATIC
    assert classify(cache.compile(BEFORE_2000)) == PER_REQUEST
    assert classify(cache.compile(ONLY_DS_004)) == PER_OFFER
    categories = {"permission": [{"action": "use", "constraint": [
        {"leftOperand": "hks:dataCategory", "operator": "isPartOf", "rightOperand": ["hks:HealthData"]}]}]}
    assert classify(cache.compile(categories)) == PER_OFFER


def test_continuation_tokens_are_checked():
    assert decode_token(encode_token("p", "ds-1", 10)) == ("p", "ds-1", 10)
    for bad in ("", "!!!", encode_token("x", "ds", 1), encode_token("n", "", 1), encode_token("n", "ds", 0),
                "A" * 2000):
        with pytest.raises(MalformedMessage):
            decode_token(bad)


async def test_the_fast_2025_rendering_is_byte_for_byte_the_codecs(tmp_path):
    """The 2025-1 catalog is written from parts normalised once per page: the same bytes as the
    generic encoder's over the whole catalog, whatever the stored policies look like."""
    from connector.identity import Caller
    from connector.node.catalog import CatalogService
    import sqlalchemy as sa

    from connector.certs.certificate import CATALOG_PROPERTY
    from connector.compute import FORMAT as COMPUTE
    from connector.node.catalog_pages import encode_2025
    from connector.node.codec import Codec
    from connector.store.tables import dataset_certificates
    from connector.store.db import Database

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await db.migrate()
    catalog = CatalogService(db, participant_id="urn:me", title="Me")
    shapes = [OPEN, HK_ONLY, {"permission": {"action": "odrl:use", "constraint": {
        "leftOperand": "odrl:count", "operator": "odrl:lteq", "rightOperand": 10}}},
        {"@type": "Offer", "prohibition": [{"action": "distribute"}], "permission": [{"action": "use", "duty": {
            "action": "hks:pseudonymise", "constraint": [{"leftOperand": "hks:field", "operator": "eq",
                                                          "rightOperand": "name"}]}}]}]
    for k, body in enumerate(shapes):
        await catalog.create_policy(f"p{k}", body)
    for i in range(12):
        await catalog.create_asset({"id": f"a:{i:02d}"})
    for i in range(12):
        await catalog.create_offer({"id": f"o{i}", "assetIds": [f"a:{i:02d}", f"a:{(i + 5) % 12:02d}"],
                                    "accessPolicyId": "p0", "contractPolicyId": f"p{i % len(shapes)}"})
    # a dataset offered for computation too, and one with its registration certificate
    await catalog.create_asset({"id": "a:csv", "contentType": "text/csv",
                                "dataAddress": {"type": "file", "path": "/data/x.csv"}})
    await catalog.create_offer({"id": "o-csv", "assetIds": ["a:csv"], "accessPolicyId": "p0", "contractPolicyId": "p3"})
    await db.transaction(lambda conn: conn.execute(sa.insert(dataset_certificates).values(
        asset_id="a:03", request_id="r1", sha256="0" * 64, status="issued", updated_at=0.0,
        bundle={"certificate": "x\u00e9\"<", "chain": [1, 2.5, None]})))
    caller = Caller("urn:peer", {"jurisdiction": "HK"})
    slow, _ = await catalog.catalog_page("http://me/dsp/2025-1", caller, size=5)
    fast, _ = await catalog.catalog_page("http://me/dsp/2025-1", caller, size=5, wire="2025-1")
    assert len(slow["dataset"]) == 5
    assert encode_2025(fast) == Codec.encode(slow, "2025-1")
    # the response body is spliced from bytes made once per contract policy: the same bytes again,
    # on every page, forwards and backwards, with EDC's first-N limit, and for an empty catalog
    seen, bodies, tokens = [], [], [None]
    while tokens[-1] is not False:
        token = tokens[-1]
        rendered = await catalog.pages.response("http://me/dsp/2025-1", caller, dsp_version="2025-1", size=4,
                                                token=token)
        _, page = await catalog.catalog_page("http://me/dsp/2025-1", caller, size=4, token=token, wire="2025-1")
        assert rendered.body == encode_2025(catalog.pages.envelope("http://me/dsp/2025-1", page.datasets))
        seen += [d["@id"] for d in page.datasets]
        bodies.append(rendered.body)
        tokens.append(page.next or False)
    assert seen == [f"a:{i:02d}" for i in range(12)] + ["a:csv"]
    assert COMPUTE.encode() in bodies[-1] and CATALOG_PROPERTY.encode() in bodies[0]
    back = await catalog.pages.response("http://me/dsp/2025-1", caller, dsp_version="2025-1",
                                        token=encode_token("p", "a:csv", 4))
    _, page = await catalog.catalog_page("http://me/dsp/2025-1", caller, token=encode_token("p", "a:csv", 4),
                                         wire="2025-1")
    assert [d["@id"] for d in page.datasets] == ["a:08", "a:09", "a:10", "a:11"]
    assert back.body == encode_2025(catalog.pages.envelope("http://me/dsp/2025-1", page.datasets))
    limited = await catalog.pages.response("http://me/dsp/2025-1", caller, dsp_version="2025-1", size=5, limit=2)
    assert limited.links is None and limited.body == encode_2025(catalog.pages.envelope(
        "http://me/dsp/2025-1", fast["dataset"][:2]))
    past_the_end = await catalog.pages.response("http://me/dsp/2025-1", caller, dsp_version="2025-1",
                                                token=encode_token("n", "a:zzz", 4))
    assert past_the_end.body == encode_2025(catalog.pages.envelope("http://me/dsp/2025-1", []))
    assert b'"dataset"' not in past_the_end.body
    await db.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_walk_in_either_direction_is_the_whole_visible_catalog_on_each_backend(backend, tmp_path):
    """The keyset walk (forwards along next, backwards along previous) on SQLite and PostgreSQL:
    every visible dataset once, in id order, whatever the page size; a dataset whose only offer
    its requester may not see is skipped, also at a page boundary."""
    from connector.identity import Caller
    from connector.node.catalog import CatalogService
    from connector.store.db import Database

    async with database_url(backend, tmp_path) as url:
        db = Database(url)
        await db.migrate()
        catalog = CatalogService(db, participant_id="urn:me", title="Me")
        await catalog.create_policy("open", OPEN)
        await catalog.create_policy("hk-only", HK_ONLY)
        for i in range(23):
            await catalog.create_asset({"id": f"d{i:02d}"})
            await catalog.create_offer({"id": f"o{i:02d}", "assetIds": [f"d{i:02d}"],
                                        "accessPolicyId": "hk-only" if i % 4 == 1 else "open",
                                        "contractPolicyId": "open"})
        sg = Caller("urn:sg", {"jurisdiction": "SG"})
        expected = [f"d{i:02d}" for i in range(23) if i % 4 != 1]
        for size in (1, 4, 17, 1000):
            seen, token, last = [], None, None
            while True:
                doc, page = await catalog.catalog_page("http://me/dsp/2025-1", sg, size=size, token=token)
                seen += [d["@id"] for d in doc.get("dataset", [])]
                last = page
                if page.next is None:
                    break
                token = page.next
            assert seen == expected, size
            back, token = [], last.previous
            while token is not None:
                doc, page = await catalog.catalog_page("http://me/dsp/2025-1", sg, token=token)
                back = [d["@id"] for d in doc.get("dataset", [])] + back
                token = page.previous
            assert back + [d for d in seen if d not in back] == expected, size
        await db.dispose()
