"""Cross-border compliance (issue 14) between real processes: a clearing house, a provider in
Guangzhou and a consumer in Hong Kong. An agreement under the GBA template gets a record on both
sides whose SHA-256 is logged at the clearing house; the first transfer waits for the provider's
PIPIA (and consent evidence where the policy asks for it); widening purposes or categories is
refused; bad input changes nothing; the records export as JSON and CSV (API and CLI)."""
import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
from datetime import date, timedelta

import httpx
import pytest

from support.compliance import OPEN, agree, gba_parties

pytestmark = pytest.mark.slow
CONSENT = {"profile": "https://w3id.org/hks/ns/cross-border", "permission": [{"action": "use", "duty": [
    {"action": "obtainConsent", "hks:consentReference": {"@id": "urn:consent:separate-pipl-39"}}]}]}


@pytest.fixture(scope="module")
def parties(tmp_path_factory):
    with gba_parties(tmp_path_factory.mktemp("compliance"), offers={"visits-consent": CONSENT, "visits-open": OPEN}) as p:
        yield p


def record(node, agreement_id, expect=200):
    resp = httpx.get(f"{node.url}/api/v1/compliance/records/{agreement_id}", headers=node.headers(), timeout=30)
    assert resp.status_code == expect, resp.text
    return resp.json()


def post(node, path, body):
    return httpx.post(f"{node.url}/api/v1/compliance/records/{path}", json=body, headers=node.headers(), timeout=30)


def start(consumer, agreement_id, until="STARTED,TERMINATED"):
    started = consumer.api("POST", "/transfers", {"agreementId": agreement_id}, expect=201)
    return consumer.api("GET", f"/transfers/{started['id']}?waitFor={until}&timeout=20", expect=200)


def logged_entries(ch, process_id, minimum, timeout=30.0):
    """The clearing house's own entries for `process_id` (read from its database)."""
    deadline = time.monotonic() + timeout
    while True:
        db = sqlite3.connect(f"file:{ch.sqlite_path}?mode=ro", uri=True)
        try:
            found = [json.loads(e) for (e,) in db.execute(
                "SELECT entry FROM ch_entries WHERE process_id = ? AND event = 'compliance.recorded'", (process_id,))]
        finally:
            db.close()
        if len(found) >= minimum or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_an_agreement_under_the_gba_template_gets_a_record_on_both_sides_logged_at_the_clearing_house(parties):
    ch, provider, consumer = parties
    aid = agree(consumer, provider, "visits")
    theirs, ours = record(provider, aid), record(consumer, aid)
    for view, role in ((theirs, "provider"), (ours, "consumer")):
        r = view["record"]
        assert view["role"] == r["role"] == role and r["agreementId"] == aid
        assert r["provider"]["jurisdiction"] == "CN-GD-GZ" and r["consumer"]["jurisdiction"] == "HK"
        assert r["provider"]["organisation"] == "Pearl River Medical Centre"
        assert r["consumer"]["participantId"] == consumer.participant_id
        assert r["purposes"] == ["hks:MedicalResearch"] and "pd:MedicalHealth" in r["categories"]
        assert r["retention"] == "P1Y" and r["pipia"] is None and r["legalBasis"] == "dpv:Contract"
        assert view["preconditionsMet"] is (False if role == "provider" else None) and len(view["sha256"]) == 64
    # the SHA-256 of each side's record is what each side logged at the clearing house
    entries = logged_entries(ch, aid, 2)
    assert {e["sha256"] for e in entries} >= {theirs["sha256"], ours["sha256"]}, entries
    # JSON and CSV exports
    listed = provider.api("GET", "/compliance/records", expect=200)
    assert aid in {v["agreementId"] for v in listed}
    resp = httpx.get(f"{provider.url}/api/v1/compliance/records?format=csv", headers=provider.headers())
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    row = next(r for r in rows if r["agreementId"] == aid)
    assert row["providerJurisdiction"] == "CN-GD-GZ" and row["consumerJurisdiction"] == "HK"
    assert row["sha256"] == theirs["sha256"]
    # an agreement under a policy that is not cross-border has none
    plain = agree(consumer, provider, "visits-open")
    assert "no cross-border record" in record(provider, plain, expect=404)["error"]


def test_the_first_transfer_waits_for_the_pipia_and_bad_input_changes_nothing(parties):
    ch, provider, consumer = parties
    aid = agree(consumer, provider, "visits")
    refused = start(consumer, aid, "TERMINATED")
    reason = " ".join(refused["termination"]["reason"])
    assert "CrossBorderPrecondition" in reason and "PIPIA" in reason, refused
    before = record(provider, aid)
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    for body, status, needle in (
            ({"reference": "PIPIA-1", "date": tomorrow}, 400, "is in the future"),
            ({"reference": "PIPIA-1", "date": "2025-02-30"}, 400, "not a calendar date"),
            ({"reference": "", "date": "2025-01-01"}, 400, "reference must be"),
            ({"reference": "x\u0007y", "date": "2025-01-01"}, 400, "reference must be"),
            ({"reference": "PIPIA-1", "date": "2025-01-01", "extra": 1}, 400, "the body must be"),
            ([1, 2], 400, "the body must be")):
        resp = post(provider, f"{aid}/pipia", body)
        assert resp.status_code == status and needle in resp.json()["error"], (body, resp.text)
    assert record(provider, aid)["version"] == before["version"]  # no state change
    # the consumer does not record the provider's PIPIA
    resp = post(consumer, f"{aid}/pipia", {"reference": "PIPIA-1", "date": "2025-01-01"})
    assert resp.status_code == 409 and "recorded by the provider" in resp.json()["error"]
    # recorded: a new version, logged, and the transfer starts
    resp = post(provider, f"{aid}/pipia", {"reference": "PIPIA-PRMC-2025-017", "date": date.today().isoformat()})
    assert resp.status_code == 200, resp.text
    after = resp.json()
    assert after["version"] == before["version"] + 1 and after["preconditionsMet"] is True
    assert after["record"]["pipia"] == {"reference": "PIPIA-PRMC-2025-017", "date": date.today().isoformat()}
    assert [v["change"] for v in record(provider, aid)["versions"]] == ["created", "pipia"]
    assert after["sha256"] in {e["sha256"] for e in logged_entries(ch, aid, 3)}
    row = start(consumer, aid)
    assert row["state"] == "STARTED", row
    ok = httpx.get(f"{consumer.url}/api/v1/transfers/{row['id']}/data", params={"purpose": "hks:MedicalResearch"},
                   headers=consumer.headers(), timeout=30)
    assert ok.status_code == 200 and "name" not in ok.text.splitlines()[0]
    # several purposes at once: medical research together with marketing is not medical research only
    mixed = httpx.get(f"{consumer.url}/api/v1/transfers/{row['id']}/data",
                      params={"purpose": "hks:MedicalResearch dpv:Marketing"}, headers=consumer.headers(), timeout=30)
    assert mixed.status_code == 403 and "Marketing" in " ".join(mixed.json()["reasons"]), mixed.text


def test_widening_purposes_or_categories_is_refused_and_needs_a_new_negotiation(parties):
    _, provider, consumer = parties
    aid = agree(consumer, provider, "visits")
    version = record(provider, aid)["version"]
    wider = httpx.patch(f"{provider.url}/api/v1/compliance/records/{aid}", json={"purposes": ["hks:MedicalResearch",
                        "dpv:Marketing"]}, headers=provider.headers())
    assert wider.status_code == 409 and "negotiate a new agreement" in wider.json()["error"], wider.text
    wider = httpx.patch(f"{provider.url}/api/v1/compliance/records/{aid}", json={"categories": ["pd:EmailAddress"]},
                        headers=provider.headers())
    assert wider.status_code == 409 and "supplemental or new contract" in wider.json()["error"]
    unknown = httpx.patch(f"{provider.url}/api/v1/compliance/records/{aid}", json={"categories": ["pd:Nmae"]},
                          headers=provider.headers())
    assert unknown.status_code == 400 and "not a DPV 2.2 term" in unknown.json()["error"], unknown.text
    assert record(provider, aid)["version"] == version  # nothing changed
    narrower = httpx.patch(f"{provider.url}/api/v1/compliance/records/{aid}", json={"categories": ["pd:Age"]},
                           headers=provider.headers())
    assert narrower.status_code == 200 and narrower.json()["record"]["categories"] == ["pd:Age"]
    # the asset gains a category the (narrowed) agreement does not cover: its transfer is refused
    assert post(provider, f"{aid}/pipia", {"reference": "P-2", "date": "2025-01-01"}).status_code == 200
    refused = start(consumer, aid, "TERMINATED")
    reason = " ".join(refused["termination"]["reason"])
    assert "categories widened, a new negotiation is needed" in reason, refused


def test_consent_evidence_is_required_where_the_policy_asks_for_it(parties):
    _, provider, consumer = parties
    aid = agree(consumer, provider, "visits-consent")
    view = record(provider, aid)
    assert view["record"]["consentRequired"] is True and view["record"]["legalBasis"] == "dpv:Consent"
    assert post(provider, f"{aid}/pipia", {"reference": "P-3", "date": "2025-01-01"}).status_code == 200
    refused = start(consumer, aid, "TERMINATED")
    assert "consent evidence" in " ".join(refused["termination"]["reason"]), refused
    assert post(provider, f"{aid}/consent", {"reference": ""}).status_code == 400
    resp = post(provider, f"{aid}/consent", {"reference": "CONSENT-LOG-2025-11"})
    assert resp.status_code == 200 and resp.json()["preconditionsMet"] is True
    assert start(consumer, aid)["state"] == "STARTED"


def test_the_cli_exports_the_records(parties):
    _, provider, consumer = parties
    agree(consumer, provider, "visits")
    out = subprocess.run([sys.executable, "-m", "connector", "compliance", "records", str(provider.directory),
                          "--format", "csv"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("agreementId,role,version,sha256")
    out = subprocess.run([sys.executable, "-m", "connector", "compliance", "records", str(consumer.directory)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and all(v["role"] == "consumer" for v in json.loads(out.stdout))


def test_the_records_api_needs_the_api_key_and_is_documented(parties):
    _, provider, _ = parties
    spec = httpx.get(f"{provider.url}/api/v1/openapi.json").json()
    assert {"/api/v1/compliance/records", "/api/v1/compliance/records/{id}/filing", "/api/v1/access-log/prune"} <= set(spec["paths"])
    assert httpx.get(f"{provider.url}/api/v1/compliance/records").status_code == 401
    assert httpx.post(f"{provider.url}/api/v1/compliance/records/x/pipia", json={}).status_code == 401


def test_the_filing_pack_names_each_partys_authority_and_deadline_and_filing_closes_it(parties):
    from connector.compliance import filing as fil

    _, provider, consumer = parties
    aid = agree(consumer, provider, "visits")
    resp = httpx.get(f"{provider.url}/api/v1/compliance/records/{aid}/filing", headers=provider.headers())
    assert resp.status_code == 200, resp.text
    pack = resp.json()
    mine, theirs = pack["filings"]
    assert mine["authority"]["zh-Hans"] == "广东省互联网信息办公室" and theirs["authority"]["en"].startswith("Digital Policy")
    assert mine["deadline"] == fil.add_working_days(date.fromisoformat(pack["contract"]["effectiveOn"]), 10, "CN").isoformat()
    assert pack["categories"] and pack["purposes"] == ["hks:MedicalResearch"]
    assert pack["recipients"][0]["participantId"] == consumer.participant_id
    for lang, needle in (("en", "Cyberspace Administration of Guangdong"), ("zh-Hant", "廣東省互聯網信息辦公室")):
        page = httpx.get(f"{provider.url}/api/v1/compliance/records/{aid}/filing",
                         params={"format": "html", "lang": lang}, headers=provider.headers())
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html") and needle in page.text
    # the contract took effect long ago: overdue in the API, /metrics and the log
    today = date.today()
    future = post(provider, f"{aid}/effective", {"date": (today + timedelta(days=3)).isoformat()})
    assert future.status_code == 400 and "in the future" in future.json()["error"]
    assert post(provider, f"{aid}/effective", {"date": (today - timedelta(days=40)).isoformat()}).status_code == 200
    listed = {f["agreementId"]: f for f in provider.api("GET", "/compliance/filings", expect=200)}
    assert listed[aid]["status"] == "overdue"
    metrics = httpx.get(f"{provider.url}/api/v1/metrics", headers=provider.headers()).text
    assert 'hks_compliance_filings{status="overdue"} 1.0' in metrics, metrics
    deadline = time.monotonic() + 10
    while f"FILING OVERDUE: agreement {aid}" not in provider.log_path.read_text():
        assert time.monotonic() < deadline, "the overdue filing is not in the log"
        time.sleep(0.2)
    # bad input changes nothing; then "filed on DATE, reference R" closes it
    for body, status, needle in (({"filedOn": (today + timedelta(days=1)).isoformat(), "reference": "R"}, 400, "future"),
                                 ({"filedOn": (today - timedelta(days=60)).isoformat(), "reference": "R"}, 400,
                                  "before the contract took effect"),
                                 ({"filedOn": today.isoformat()}, 400, "the body must be")):
        resp = post(provider, f"{aid}/filing", body)
        assert resp.status_code == status and needle in resp.json()["error"], resp.text
    closed = post(provider, f"{aid}/filing", {"filedOn": today.isoformat(), "reference": "GD-CAC-2026-0815"})
    assert closed.status_code == 200 and closed.json()["filing"]["status"] == "filed", closed.text
    assert post(provider, f"{aid}/filing", {"filedOn": today.isoformat(), "reference": "again"}).status_code == 409
    metrics = httpx.get(f"{provider.url}/api/v1/metrics", headers=provider.headers()).text
    assert 'hks_compliance_filings{status="overdue"} 0.0' in metrics
    # the Hong Kong party's own filing is still open, with its own authority
    assert {f["agreementId"]: f for f in consumer.api("GET", "/compliance/filings")}[aid]["authority"]["en"].startswith(
        "Digital Policy Office")


def test_a_filing_due_within_three_working_days_shows_as_due(parties):
    from connector.compliance import filing as fil

    _, provider, consumer = parties
    aid = agree(consumer, provider, "visits")
    today, effective = date.today(), date.today()
    while fil.status(fil.add_working_days(effective, 10, "CN"), today, False, "CN") != "due":
        effective -= timedelta(days=1)
    assert post(provider, f"{aid}/effective", {"date": effective.isoformat()}).status_code == 200
    assert {f["agreementId"]: f for f in provider.api("GET", "/compliance/filings")}[aid]["status"] == "due"
    assert 'hks_compliance_filings{status="due"} 1.0' in httpx.get(f"{provider.url}/api/v1/metrics",
                                                                  headers=provider.headers()).text
    assert f"FILING DUE: agreement {aid}" in provider.log_path.read_text()


def test_a_filing_for_an_agreement_that_is_not_cross_border_is_refused(parties):
    _, provider, consumer = parties
    plain = agree(consumer, provider, "visits-open")
    resp = httpx.get(f"{provider.url}/api/v1/compliance/records/{plain}/filing", headers=provider.headers())
    assert resp.status_code == 404 and "is not cross-border" in resp.json()["error"]
    resp = httpx.get(f"{provider.url}/api/v1/compliance/records/urn:uuid:nothing/filing", headers=provider.headers())
    assert resp.status_code == 404 and "no agreement" in resp.json()["error"]
    out = subprocess.run([sys.executable, "-m", "connector", "compliance", "filing", plain, "--dir",
                          str(provider.directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "is not cross-border" in out.stderr


def test_the_cli_prints_the_filing_pack_and_records_the_filing(parties, tmp_path):
    _, provider, consumer = parties
    aid = agree(consumer, provider, "visits")
    page = tmp_path / "filing.html"
    out = subprocess.run([sys.executable, "-m", "connector", "compliance", "filing", aid, "--dir", str(consumer.directory),
                          "--format", "html", "--lang", "zh-Hant", "--out", str(page)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "香港特別行政區政府數字政策辦公室" in page.read_text(encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "connector", "compliance", "filing", aid, "--dir", str(consumer.directory),
                          "--filed-on", date.today().isoformat(), "--reference", "DPO-2026-77"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "reference DPO-2026-77" in out.stdout, out.stderr
    pack = json.loads(subprocess.run([sys.executable, "-m", "connector", "compliance", "filing", aid, "--dir",
                                      str(consumer.directory)], capture_output=True, text=True, timeout=60).stdout)
    assert pack["filings"][1]["status"] == "filed" and pack["filings"][1]["reference"] == "DPO-2026-77"


def test_refusals_are_kept_four_years_and_newer_ones_cannot_be_pruned(parties):
    _, provider, consumer = parties
    aid = agree(consumer, provider, "visits")
    start(consumer, aid, "TERMINATED")  # refused at transfer start: a refusal in the access log
    now = time.time()
    db = sqlite3.connect(provider.directory / "node.db", timeout=30)
    try:  # one refusal from five years ago
        db.execute("INSERT INTO access_log (consumer_id, at, permitted, reasons, duties, stage) "
                   "VALUES ('urn:old', ?, 0, '[\"old\"]', '[]', 'access')", (now - 5 * 366 * 86400,))
        db.commit()
    finally:
        db.close()
    before = provider.api("GET", "/access-log?limit=1000", expect=200)

    def prune(when):
        return httpx.post(f"{provider.url}/api/v1/access-log/prune", json={"before": when}, headers=provider.headers())

    for when in (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3 * 366 * 86400))):
        resp = prune(when)
        assert resp.status_code == 409 and "kept at least 1461 days" in resp.json()["error"], resp.text
    for bad in ("yesterday", 12):
        assert prune(bad).status_code == 400
    assert httpx.post(f"{provider.url}/api/v1/access-log/prune", json={"before": "2020-01-01"}).status_code == 401
    assert provider.api("GET", "/access-log?limit=1000") == before  # nothing pruned
    resp = prune(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 4.5 * 366 * 86400)))
    assert resp.status_code == 200 and resp.json()["deleted"] == 1, resp.text
    assert len(provider.api("GET", "/access-log?limit=1000")) == len(before) - 1


def test_a_refusal_retention_under_four_years_is_a_configuration_error(parties):
    from connector import config as config_mod

    _, provider, _ = parties
    with pytest.raises(config_mod.ConfigError, match=r"\[compliance\] refusal_retention_days must be between 1461"):
        config_mod.load(provider.directory, environ={"CONNECTOR_COMPLIANCE_REFUSAL_RETENTION_DAYS": "365"})
    longer = config_mod.load(provider.directory, environ={"CONNECTOR_COMPLIANCE_REFUSAL_RETENTION_DAYS": "2000"})
    assert longer.compliance_refusal_retention_days == 2000


@pytest.mark.postgres
async def test_records_preconditions_and_filings_on_postgresql(tmp_path, pg_url):
    """The same rules with the provider's database on PostgreSQL (the record is made in a savepoint of
    the agreement's transaction)."""
    with gba_parties(tmp_path, provider_database_url=pg_url) as (ch, provider, consumer):
        aid = agree(consumer, provider, "visits")
        assert record(provider, aid)["record"]["consumer"]["jurisdiction"] == "HK"
        assert "PIPIA" in " ".join(start(consumer, aid, "TERMINATED")["termination"]["reason"])
        assert post(provider, f"{aid}/pipia", {"reference": "PIPIA-PG", "date": "2025-01-01"}).status_code == 200
        assert start(consumer, aid)["state"] == "STARTED"
        assert post(provider, f"{aid}/filing", {"filedOn": date.today().isoformat(), "reference": "GD-1"}).status_code == 200
        assert {f["agreementId"]: f for f in provider.api("GET", "/compliance/filings")}[aid]["status"] == "filed"
        assert len(logged_entries(ch, aid, 3)) >= 3
