"""Finding 2 of issue 10: an offer's access policy only hid it from the catalog. A participant
the access policy does not admit (M) could look the dataset up by id, request the offer by its
guessable id, get an agreement and pull the data. Now the access policy is decided, with the
requester's verified claims, wherever the offer is used: catalog, dataset lookup, negotiation
request (new and counter-request), before the agreement, transfer start and every access.

Real processes: a provider, the participant its access policies admit (N1) and a hostile
participant M, each a node in dev mode (the requester's identity comes from its token)."""
from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import sqlalchemy as sa

from connector.identity import DevSharedSecret
from connector.protocol import wire
from support.fakepeer import FAKE, FakePeer, send
from support.access import held_token
from support.nodes import SHARED_SECRET, NodeProcess

VERSIONS = ["2025-1", "2024-1"]
CSV = "patient,visit\nA,2025-01-02\nB,2025-01-03\n"
RULE = "is not one of the permitted"  # the engine's words for the organisation constraint that refuses M


def admitting(*participants: str) -> dict:
    return {"permission": [{"action": "use", "constraint": [
        {"leftOperand": "hks:organisation", "operator": "isAnyOf", "rightOperand": [{"@id": p} for p in participants]}]}]}


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    base = tmp_path_factory.mktemp("access-bypass")
    provider = NodeProcess(base / "provider", "Provider")
    n1 = NodeProcess(base / "n1", "Admitted")
    m = NodeProcess(base / "m", "Hostile")
    (provider.directory / "data").mkdir(exist_ok=True)
    (provider.directory / "data" / "x.csv").write_text(CSV)
    nodes = [provider, n1, m]
    try:
        for node in nodes:
            node.start()
        provider.api("POST", "/policies", {"id": "open", "policy": {"permission": [{"action": "use"}]}}, expect=201)
        provider.api("POST", "/policies", {"id": "only-n1", "policy": admitting(n1.participant_id)}, expect=201)
        provider.api("POST", "/policies", {"id": "n1-and-m", "policy": admitting(n1.participant_id, m.participant_id)},
                     expect=201)
        provider.api("POST", "/policies", {"id": "n1-and-fake", "policy": admitting(n1.participant_id, FAKE)},
                     expect=201)
        yield provider, n1, m
    finally:
        for node in nodes:
            node.stop()


def publish(provider: NodeProcess, name: str, access: str) -> tuple[str, str]:
    """Dataset `name` offered as offer-<name> under access policy `access` (contract: open)."""
    provider.api("POST", "/assets", {"id": name, "title": name, "contentType": "text/csv",
                                     "dataAddress": {"type": "file", "path": "x.csv"}}, expect=201)
    offer_id = f"offer-{name}"
    provider.api("POST", "/offers", {"id": offer_id, "assetIds": [name], "accessPolicyId": access,
                                     "contractPolicyId": "open"}, expect=201)
    return name, offer_id


def restrict(provider: NodeProcess, name: str, access: str) -> None:
    """The provider's operator changes the offer's access policy."""
    offer_id = f"offer-{name}"
    provider.api("PUT", f"/offers/{offer_id}", {"id": offer_id, "assetIds": [name], "accessPolicyId": access,
                                                "contractPolicyId": "open"}, expect=200)


def token(node_or_id, to) -> str:
    """A dev-mode token naming the caller, for the node `to` only."""
    participant = node_or_id if isinstance(node_or_id, str) else node_or_id.participant_id
    return "Bearer " + DevSharedSecret(participant, SHARED_SECRET).token_for(participant, audience=to.participant_id)


def dsp_error(resp: httpx.Response, version: str) -> dict:
    return wire.from_wire(resp.json(), version)


def refusals(provider: NodeProcess, consumer: NodeProcess, stage: str) -> list[dict]:
    return [r for r in provider.api("GET", "/access-log?limit=1000")
            if r["consumerId"] == consumer.participant_id and r["stage"] == stage and not r["permitted"]]


def agreements_of(node: NodeProcess, asset: str) -> list[dict]:
    return [a for a in node.api("GET", "/agreements") if a["assetId"] == asset]


@pytest.mark.parametrize("version", VERSIONS)
def test_hidden_offer_is_neither_listed_nor_found_by_id(space, version):
    provider, n1, m = space
    dataset, offer_id = publish(provider, f"x-catalog-{version}", "only-n1")

    def listed(node):
        catalog = node.api("POST", "/catalog/request", {"counterPartyAddress": provider.url, "dspVersion": version},
                           expect=200)["catalog"]
        return {d["@id"] for d in catalog.get("dataset", [])}

    assert dataset in listed(n1)
    assert dataset not in listed(m)  # (a) the catalog hides it
    base = f"{provider.url}/dsp/{version}/catalog/datasets"
    assert httpx.get(f"{base}/{dataset}", headers={"Authorization": token(n1, provider)}).status_code == 200
    hidden = httpx.get(f"{base}/{dataset}", headers={"Authorization": token(m, provider)})
    unknown = httpx.get(f"{base}/no-such-dataset", headers={"Authorization": token(m, provider)})
    assert hidden.status_code == unknown.status_code == 404  # (b) as if it did not exist
    assert hidden.text.replace(dataset, "ID") == unknown.text.replace("no-such-dataset", "ID")


@pytest.mark.parametrize("version", VERSIONS)
def test_requesting_a_hidden_offer_by_its_id_is_refused(space, version):
    provider, n1, m = space
    dataset, offer_id = publish(provider, f"x-request-{version}", "only-n1")
    offer = {"@id": offer_id, "@type": "Offer", "target": dataset, "permission": [{"action": "use"}]}
    # (c) straight at the provider with M's token: a DSP error naming the rule, nothing created
    resp = httpx.post(f"{provider.url}/dsp/{version}/negotiations/request", headers={"Authorization": token(m, provider)},
                      content=json.dumps(wire.to_wire({
                          "@type": "ContractRequestMessage", "consumerPid": f"urn:uuid:{uuid.uuid4()}",
                          "callbackAddress": f"{m.url}/dsp/{version}", "offer": offer}, version)),
                      timeout=20)
    assert resp.status_code == 403, resp.text
    error = dsp_error(resp, version)
    assert error["code"] == "AccessDenied"
    reason = " ".join(error["reason"]) if isinstance(error["reason"], list) else error["reason"]
    assert "access policy" in reason and RULE in reason and "127.0.0.1" not in reason
    # M learns that its own organisation is not admitted, never whom the policy admits
    assert n1.participant_id not in reason and "(not disclosed)" in reason and m.participant_id in reason
    # (c) through M's own node, which sends the request with the offer id it guessed
    neg = m.api("POST", "/negotiations", {"counterPartyAddress": provider.url, "datasetId": dataset, "offer": offer,
                                          "counterPartyId": provider.participant_id,
                                          "dspVersion": version}, expect=201)
    ended = m.wait_state(neg["id"], "TERMINATED,FINALIZED")
    assert ended["state"] == "TERMINATED" and ended["agreement"] is None
    assert "403" in (ended["error"] or "") and RULE in ended["error"]
    assert n1.participant_id not in ended["error"]
    assert agreements_of(m, dataset) == [] and agreements_of(provider, dataset) == []
    assert not [n for n in provider.api("GET", "/negotiations?limit=1000")
                if n["counterPartyId"] == m.participant_id and n["datasetId"] == dataset]
    logged = [r for r in refusals(provider, m, "negotiation") if r["offerId"] == offer_id]
    assert len(logged) == 2 and all(RULE in " ".join(r["reasons"]) for r in logged)
    assert all(n1.participant_id in " ".join(r["reasons"]) for r in logged)  # our own log keeps the whole rule
    # the participant it admits still gets it
    assert n1.wait_state(n1.negotiate(provider, dataset, offer_id, version)["id"])["state"] == "FINALIZED"


@pytest.mark.parametrize("version", VERSIONS)
def test_agreement_withheld_when_access_is_revoked_during_the_negotiation(space, version):
    provider, n1, m = space
    dataset, offer_id = publish(provider, f"x-gate-{version}", "n1-and-m")
    wider = {"@id": offer_id, "@type": "Offer", "target": dataset,
             "permission": [{"action": "use"}, {"action": "distribute"}]}
    neg = m.api("POST", "/negotiations", {"counterPartyAddress": provider.url, "datasetId": dataset, "offer": wider,
                                          "counterPartyId": provider.participant_id,
                                          "dspVersion": version}, expect=201)
    assert m.wait_state(neg["id"], "OFFERED")["state"] == "OFFERED"  # the provider counter-offered its own terms
    restrict(provider, dataset, "only-n1")
    m.api("POST", f"/negotiations/{neg['id']}/accept", expect=200)
    ended = m.wait_state(neg["id"], "TERMINATED,FINALIZED")
    assert ended["state"] == "TERMINATED" and ended["termination"]["code"] == "AccessDenied", ended
    assert RULE in " ".join(ended["termination"]["reason"])
    assert n1.participant_id not in " ".join(ended["termination"]["reason"])
    assert agreements_of(m, dataset) == [] and agreements_of(provider, dataset) == []
    assert [r for r in refusals(provider, m, "negotiation") if r["offerId"] == offer_id]


@pytest.mark.parametrize("version", VERSIONS)
async def test_counter_request_after_access_is_revoked_is_refused(space, version):
    provider, n1, m = space
    dataset, offer_id = await asyncio.to_thread(publish, provider, f"x-counter-{version}", "n1-and-fake")
    fake = FakePeer(version)  # a participant speaking DSP itself: a counter-request is its to send
    runner = await fake.start()
    try:
        base = f"{provider.url}/dsp/{version}"
        cpid = f"urn:uuid:{uuid.uuid4()}"
        wider = {"@id": offer_id, "@type": "Offer", "target": dataset,
                 "permission": [{"action": "use"}, {"action": "distribute"}]}
        async with httpx.AsyncClient(timeout=20) as client:
            ack = await send(client, f"{base}/negotiations/request", {
                "@type": "ContractRequestMessage", "consumerPid": cpid, "callbackAddress": f"{fake.url}/cb",
                "offer": wider}, version, expect=201)
            ppid = ack["providerPid"]
            counter_offer = (await fake.next(f"/cb/negotiations/{cpid}/offers"))["offer"]
            await asyncio.to_thread(restrict, provider, dataset, "only-n1")
            await send(client, f"{base}/negotiations/{ppid}/request", {
                "@type": "ContractRequestMessage", "providerPid": ppid, "consumerPid": cpid,
                "offer": counter_offer}, version)
            termination = await fake.next(f"/cb/negotiations/{cpid}/termination")
        assert termination["code"] == "AccessDenied" and RULE in " ".join(termination["reason"])
        told = json.dumps(termination)
        assert n1.participant_id not in told and "(not disclosed)" in told
        row = await asyncio.to_thread(provider.api, "GET", f"/negotiations/{ppid}")
        assert row["state"] == "TERMINATED" and row["agreement"] is None
        assert await asyncio.to_thread(agreements_of, provider, dataset) == []
    finally:
        await runner.cleanup()


def _started_pull(consumer: NodeProcess, agreement_id: str) -> dict:
    started = consumer.api("POST", "/transfers", {"agreementId": agreement_id, "format": "HttpData-PULL"}, expect=201)
    return consumer.api("GET", f"/transfers/{started['id']}?waitFor=STARTED&timeout=10", expect=200)


@pytest.mark.parametrize("version", VERSIONS)
def test_transfer_and_pull_after_access_is_revoked_are_refused(space, version):
    provider, n1, m = space
    dataset, offer_id = publish(provider, f"x-use-{version}", "n1-and-m")
    neg = m.wait_state(m.negotiate(provider, dataset, offer_id, version)["id"])
    assert neg["state"] == "FINALIZED"  # made while M was admitted
    agreement_id = neg["agreement"]["@id"]
    pull = _started_pull(m, agreement_id)
    assert pull["state"] == "STARTED"
    pull_token = held_token(m, pull["id"])
    assert httpx.get(pull["endpoint"], headers={"Authorization": f"Bearer {pull_token}"}).text == CSV

    restrict(provider, dataset, "only-n1")  # (d) the access policy now excludes M
    refused = httpx.get(pull["endpoint"], headers={"Authorization": f"Bearer {pull_token}"})
    assert refused.status_code == 403, refused.text  # a valid token, refused by the access policy
    assert "access policy" in refused.json()["reasons"][0] and RULE in refused.json()["reasons"][0]
    assert n1.participant_id not in refused.text
    again = m.api("POST", "/transfers", {"agreementId": agreement_id, "format": "HttpData-PULL"}, expect=201)
    ended = m.api("GET", f"/transfers/{again['id']}?waitFor=TERMINATED&timeout=10", expect=200)
    assert ended["state"] == "TERMINATED" and "403" in (ended["error"] or "") and RULE in ended["error"], ended
    assert n1.participant_id not in ended["error"]
    # every refusal is in the provider's access log, with the rule
    at_access = [r for r in refusals(provider, m, "access") if r["agreementId"] == agreement_id]
    at_start = [r for r in refusals(provider, m, "transfer-start") if r["agreementId"] == agreement_id]
    assert len(at_access) == 1 and RULE in at_access[0]["reasons"][0] and at_access[0]["offerId"] == offer_id
    assert n1.participant_id in at_access[0]["reasons"][0]  # told to nobody but our operator
    assert len(at_start) == 1 and RULE in " ".join(at_start[0]["reasons"])


def test_pull_under_an_agreement_whose_offer_was_withdrawn_is_refused(space):
    provider, n1, m = space
    dataset, offer_id = publish(provider, "x-withdrawn", "n1-and-m")
    neg = m.wait_state(m.negotiate(provider, dataset, offer_id)["id"])
    pull = _started_pull(m, neg["agreement"]["@id"])
    pull_token = held_token(m, pull["id"])
    assert httpx.delete(f"{provider.url}/api/v1/offers/{offer_id}", headers=provider.headers()).status_code == 204
    refused = httpx.get(pull["endpoint"], headers={"Authorization": f"Bearer {pull_token}"})
    assert refused.status_code == 403 and "no longer offered" in refused.json()["reasons"][0]  # fail closed


def test_push_after_access_is_revoked_is_refused(space):
    """The push is the provider's own access: decided when it runs. Here it runs after a restart
    (the provider dies right after committing the start), by which time the operator has
    narrowed the access policy."""
    provider, n1, m = space
    dataset, offer_id = publish(provider, "x-push", "n1-and-m")
    agreement_id = m.wait_state(m.negotiate(provider, dataset, offer_id)["id"])["agreement"]["@id"]
    provider.stop()
    provider.start(extra_env={"CONNECTOR_FAILPOINTS": "committed:TransferStartMessage"})
    try:
        push = m.api("POST", "/transfers", {"agreementId": agreement_id, "format": "HttpData-PUSH"}, expect=201)
        assert provider.wait_exit() != 0  # killed itself after committing STARTED, before pushing
        engine = sa.create_engine(provider.settings.database_url.replace("+aiosqlite", ""))
        with engine.begin() as conn:  # the operator's change while it is down (PUT /offers/{id} when up)
            conn.execute(sa.text("UPDATE offers SET access_policy_id = 'only-n1' WHERE id = :o"), {"o": offer_id})
        engine.dispose()
    finally:
        provider.start()
    for _ in range(3):  # the consumer's request is retried with backoff while the provider was down
        ended = m.api("GET", f"/transfers/{push['id']}?waitFor=TERMINATED&timeout=10", expect=200)
        if ended["state"] == "TERMINATED":
            break
    assert ended["state"] == "TERMINATED", ended
    assert RULE in " ".join(ended["termination"]["reason"]), ended
    at_access = [r for r in refusals(provider, m, "access") if r["agreementId"] == agreement_id]
    assert len(at_access) == 1 and RULE in at_access[0]["reasons"][0]
    assert httpx.get(f"{m.url}/api/v1/transfers/{push['id']}/data", headers=m.headers()).status_code == 404
