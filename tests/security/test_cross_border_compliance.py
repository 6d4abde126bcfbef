"""Issue 14: attacks on the cross-border compliance machinery, with real processes (a clearing
house, a provider in Guangzhou, a consumer in Hong Kong whose organisation name is hostile).

- A consumer sends its own TransferRequestMessage for a cross-border agreement before the provider
  recorded its PIPIA: refused (DSP 400 CrossBorderPrecondition), no transfer is created.
- A peer's organisation name carries a spreadsheet formula and markup: the CSV export does not let a
  spreadsheet run it and the printable filing pack escapes it.
- An operator (or a stolen API key) tries to prune refusals younger than four years: 409, nothing
  deleted."""
from __future__ import annotations

import csv
import io
import json
import time

import httpx
import pytest

from connector.identity import DevSharedSecret
from support.compliance import agree, gba_parties
from support.nodes import SHARED_SECRET

pytestmark = pytest.mark.slow
HOSTILE = '=HYPERLINK("http://x.example","<script>alert(1)</script>")'


@pytest.fixture(scope="module")
def parties(tmp_path_factory):
    with gba_parties(tmp_path_factory.mktemp("compliance-attacks"), consumer_name=HOSTILE) as p:
        yield p


def test_a_forged_transfer_request_before_the_pipia_is_refused(parties):
    _, provider, consumer = parties
    aid = agree(consumer, provider, "visits")
    token = "Bearer " + DevSharedSecret(consumer.participant_id, SHARED_SECRET).token_for(
        consumer.participant_id, audience=provider.participant_id)
    body = json.dumps({
        "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": "TransferRequestMessage",
        "consumerPid": "urn:uuid:forged-early-transfer", "agreementId": aid, "format": "HttpData-PULL",
        "callbackAddress": consumer.url + "/dsp/2025-1"}).encode()
    resp = httpx.post(f"{provider.url}/dsp/2025-1/transfers/request", content=body,
                      headers={"Authorization": token, "Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 400 and resp.json()["code"] == "CrossBorderPrecondition", resp.text
    assert "PIPIA" in json.dumps(resp.json())
    assert not [t for t in provider.api("GET", "/transfers") if t["agreementId"] == aid]  # nothing was created


def test_a_formula_in_a_peers_organisation_name_is_not_run_by_the_csv_export(parties):
    _, provider, consumer = parties
    aid = agree(consumer, provider, "visits")
    resp = httpx.get(f"{provider.url}/api/v1/compliance/records?format=csv", headers=provider.headers(), timeout=30)
    assert resp.status_code == 200, resp.text
    row = next(r for r in csv.DictReader(io.StringIO(resp.text)) if r["agreementId"] == aid)
    assert row["consumerOrganisation"] == "'" + HOSTILE  # a text cell, not a formula


def test_markup_in_a_peers_organisation_name_is_escaped_in_the_printable_filing(parties):
    _, provider, consumer = parties
    aid = agree(consumer, provider, "visits")
    for lang in ("en", "zh-Hant", "zh-Hans"):
        page = httpx.get(f"{provider.url}/api/v1/compliance/records/{aid}/filing", params={"format": "html", "lang": lang},
                         headers=provider.headers(), timeout=30)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html"), page.text
        assert "<script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_pruning_refusals_younger_than_four_years_is_refused(parties):
    _, provider, consumer = parties
    aid = agree(consumer, provider, "visits")
    started = consumer.api("POST", "/transfers", {"agreementId": aid}, expect=201)
    consumer.api("GET", f"/transfers/{started['id']}?waitFor=TERMINATED&timeout=20")  # refused: no PIPIA yet
    before = provider.api("GET", "/access-log?limit=1000", expect=200)
    assert any(not e["permitted"] for e in before)
    for when in (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400)), "2026-01-01"):
        resp = httpx.post(f"{provider.url}/api/v1/access-log/prune", json={"before": when}, headers=provider.headers())
        assert resp.status_code == 409 and "PDPO s.27" in resp.json()["error"], resp.text
    assert provider.api("GET", "/access-log?limit=1000") == before
