"""Consent evidence reaches the data plane (issue 14): under a policy with an `obtainConsent` duty, a data
access is decided with the consent evidence the provider has on record, read from the database in the
access's own transaction. Real processes: a clearing house, a provider in Guangzhou on PostgreSQL (two
replicas of it) and a consumer in Hong Kong; pull and push, before and after the evidence is recorded,
after it is withdrawn, and with the evidence on the consumer's side only."""
import asyncio
import shutil
from datetime import date

import httpx
import pytest

from support.compliance import agree, gba_parties
from support.nodes import NodeProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
CROSS_BORDER = "https://w3id.org/hks/ns/cross-border"
CONSENT = {"profile": CROSS_BORDER, "permission": [{"action": "use", "duty": [
    {"action": "obtainConsent", "hks:consentReference": {"@id": "urn:consent:separate-pipl-39"}}]}]}
# an obtainConsent duty naming no consent reference: the evidence on record fulfils it
CONSENT_UNNAMED = {"profile": CROSS_BORDER, "permission": [{"action": "use", "duty": [{"action": "obtainConsent"}]}]}
# not cross-border: no record, so nowhere to record consent evidence (every access refused, fail closed)
CONSENT_PLAIN = {"permission": [{"action": "use", "duty": [
    {"action": "obtainConsent", "hks:consentReference": {"@id": "urn:consent:separate-pipl-39"}}]}]}
NOT_FULFILLED = "obtain consent duty"


@pytest.fixture(scope="module")
def pg_url_module():
    from conftest import fresh_postgres_database

    database, loop = fresh_postgres_database(), asyncio.new_event_loop()
    try:
        yield loop.run_until_complete(database.__aenter__())
        loop.run_until_complete(database.__aexit__(None, None, None))
    finally:
        loop.close()


@pytest.fixture(scope="module")
def parties(tmp_path_factory, pg_url_module):
    base = tmp_path_factory.mktemp("consent")
    with gba_parties(base, offers={"consent": CONSENT, "consent-unnamed": CONSENT_UNNAMED,
                                   "consent-plain": CONSENT_PLAIN},
                     provider_database_url=pg_url_module) as (ch, provider, consumer):
        # a second replica of the provider: the same participant, keys and database, another port
        shutil.copytree(provider.directory, base / "pearl-2", ignore=shutil.ignore_patterns("*.log"))
        port = free_port()
        replica = NodeProcess(base / "pearl-2", "Pearl River Medical Centre", init=False,
                              env={**provider.env, "CONNECTOR_NODE_LISTEN_PORT": str(port)})
        replica.url = f"http://127.0.0.1:{port}"
        replica.start()
        try:
            yield ch, provider, consumer, replica
        finally:
            replica.stop()


def post(node, agreement_id, what, body):
    return httpx.post(f"{node.url}/api/v1/compliance/records/{agreement_id}/{what}", json=body,
                      headers=node.headers(), timeout=30)


def withdraw(node, agreement_id):
    return httpx.delete(f"{node.url}/api/v1/compliance/records/{agreement_id}/consent", headers=node.headers(),
                        timeout=30)


def start(consumer, agreement_id, fmt="HttpData-PULL", until="STARTED,TERMINATED"):
    started = consumer.api("POST", "/transfers", {"agreementId": agreement_id, "format": fmt}, expect=201)
    return consumer.api("GET", f"/transfers/{started['id']}?waitFor={until}&timeout=20", expect=200)


def pull(consumer, transfer_id):
    return httpx.get(f"{consumer.url}/api/v1/transfers/{transfer_id}/data", headers=consumer.headers(), timeout=30)


def pipia(provider, aid):
    assert post(provider, aid, "pipia", {"reference": "PIPIA-C", "date": date.today().isoformat()}).status_code == 200


def reasons(resp) -> str:
    body = resp.json()
    return " ".join(body.get("reasons") or [body.get("error", "")])


@pytest.mark.parametrize("asset", ["consent", "consent-unnamed"])
def test_a_pull_is_permitted_once_consent_evidence_is_recorded_and_refused_once_withdrawn(parties, asset):
    _, provider, consumer, replica = parties
    aid = agree(consumer, provider, asset)
    pipia(provider, aid)
    before = start(consumer, aid, until="TERMINATED")  # no evidence: the transfer does not even start
    assert "consent evidence" in " ".join(before["termination"]["reason"]), before
    # recorded at the other replica: the decision reads the database, not a process's memory
    assert post(replica, aid, "consent", {"reference": "CONSENT-LOG-2026-01"}).status_code == 200
    row = start(consumer, aid)
    assert row["state"] == "STARTED", row
    ok = pull(consumer, row["id"])
    assert ok.status_code == 200 and ok.text == (provider.directory / "data" / "visits.csv").read_text(), ok.text
    # withdrawn (at the replica): the next access under the started transfer is refused with the engine's reason
    resp = withdraw(replica, aid)
    assert resp.status_code == 200 and resp.json()["record"]["consentEvidence"] is None, resp.text
    assert withdraw(replica, aid).status_code == 409  # nothing left to withdraw
    refused = pull(consumer, row["id"])
    assert refused.status_code == 403 and NOT_FULFILLED in reasons(refused), refused.text
    changes = [v["change"] for v in provider.api("GET", f"/compliance/records/{aid}", expect=200)["versions"]]
    assert changes == ["created", "pipia", "consent", "consent-withdrawn"]
    # recorded again: permitted again
    assert post(provider, aid, "consent", {"reference": "CONSENT-LOG-2026-02"}).status_code == 200
    assert pull(consumer, row["id"]).status_code == 200


def test_a_push_goes_once_consent_evidence_is_recorded(parties):
    _, provider, consumer, _ = parties
    aid = agree(consumer, provider, "consent")
    pipia(provider, aid)
    before = start(consumer, aid, fmt="HttpData-PUSH", until="COMPLETED,TERMINATED")
    assert before["state"] == "TERMINATED" and "consent evidence" in " ".join(before["termination"]["reason"])
    assert post(provider, aid, "consent", {"reference": "CONSENT-LOG-2026-03"}).status_code == 200
    row = start(consumer, aid, fmt="HttpData-PUSH", until="COMPLETED,TERMINATED")
    assert row["state"] == "COMPLETED", row
    assert pull(consumer, row["id"]).text == (provider.directory / "data" / "visits.csv").read_text()
    assert withdraw(provider, aid).status_code == 200
    after = start(consumer, aid, fmt="HttpData-PUSH", until="COMPLETED,TERMINATED")
    assert after["state"] == "TERMINATED" and "consent evidence" in " ".join(after["termination"]["reason"])


def test_consent_evidence_on_the_consumers_side_only_is_refused_and_permits_nothing(parties):
    _, provider, consumer, _ = parties
    aid = agree(consumer, provider, "consent")
    pipia(provider, aid)
    mine = post(consumer, aid, "consent", {"reference": "CONSENT-HARBOUR"})
    assert mine.status_code == 409 and "recorded by the provider" in mine.json()["error"], mine.text
    assert consumer.api("GET", f"/compliance/records/{aid}", expect=200)["record"]["consentEvidence"] is None
    assert withdraw(consumer, aid).status_code == 409
    refused = start(consumer, aid, until="TERMINATED")
    assert "consent evidence" in " ".join(refused["termination"]["reason"])


def test_without_a_record_the_engine_refuses_pull_and_push_with_its_reason(parties):
    """A policy that is not cross-border has no record, so no consent evidence: the transfer starts
    (consent is decided at each use) and each access is refused with the engine's reason."""
    _, provider, consumer, _ = parties
    aid = agree(consumer, provider, "consent-plain")
    row = start(consumer, aid)
    assert row["state"] == "STARTED", row
    refused = pull(consumer, row["id"])
    assert refused.status_code == 403 and NOT_FULFILLED in reasons(refused), refused.text
    pushed = start(consumer, aid, fmt="HttpData-PUSH", until="COMPLETED,TERMINATED")
    assert pushed["state"] == "TERMINATED" and NOT_FULFILLED in " ".join(pushed["termination"]["reason"]), pushed
