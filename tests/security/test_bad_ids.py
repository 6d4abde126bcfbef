"""Attack: ids a database cannot store or a parser does not expect — a NUL character, a
300-character `consumerPid`, an `@id` that is not a string — sent in DSP messages, in paths and to
the management API, to get a 500 (on PostgreSQL only, before this fix) or a row no peer can name.
Refused: every id is a string of at most 255 characters without control characters, checked in
the protocol core (DSP) and the management API alike, answered with 400 naming the field and the
rule, the same on SQLite and PostgreSQL. Real processes, real HTTP."""
from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from connector.identity import DevSharedSecret
from tests.conftest import BACKENDS, database_url
from tests.support.nodes import SHARED_SECRET, NodeProcess

CTX = ["https://w3id.org/dspace/2025/1/context.jsonld"]
CALLER = "urn:hks:participant:id-attacker"
LONG = "urn:x:" + "a" * 294  # 300 characters
NUL = "urn:x:\u0000nul"


@pytest.fixture(params=BACKENDS)
async def node(request, tmp_path: Path):
    async with database_url(request.param, tmp_path) as url:
        n = NodeProcess(tmp_path / "node", "IdNode", database_url=url).start()
        try:
            n.publish("ids-dataset", "ids-offer")
            yield n
        finally:
            n.stop()


def dsp(node: NodeProcess, method: str, path: str, body: dict | None = None) -> httpx.Response:
    token = "Bearer " + DevSharedSecret(CALLER, SHARED_SECRET).token_for(CALLER, audience=node.participant_id)
    return httpx.request(method, f"{node.url}/dsp/2025-1{path}", content=orjson.dumps(body) if body else None,
                         headers={"Authorization": token, "Content-Type": "application/json"}, timeout=60)


def request_message(consumer_pid: object, offer_id: object = "ids-offer") -> dict:
    return {"@context": CTX, "@type": "ContractRequestMessage", "consumerPid": consumer_pid,
            "callbackAddress": "http://127.0.0.1:9/cb",
            "offer": {"@id": offer_id, "@type": "Offer", "target": "ids-dataset"}}


def assert_refused(resp: httpx.Response, field: str, rule: str) -> None:
    assert resp.status_code == 400, f"{resp.status_code} {resp.text[:300]}"
    text = resp.text
    assert field in text and rule in text, text[:400]
    assert len(resp.content) < 2048


BAD_IDS = [(NUL, "control character U+0000"), (LONG, "300 characters long"), ({"@value": 3}, "must be a string")]


@pytest.mark.parametrize("bad,rule", BAD_IDS, ids=["nul", "long", "not-a-string"])
def test_bad_consumer_pid_or_offer_id_in_a_contract_request_is_refused(node: NodeProcess, bad: object,
                                                                      rule: str) -> None:
    assert_refused(dsp(node, "POST", "/negotiations/request", request_message(bad)), "consumerPid", rule)
    assert_refused(dsp(node, "POST", "/negotiations/request", request_message("urn:ok", bad)), "@id", rule)
    assert node.api("GET", "/negotiations") == []


@pytest.mark.parametrize("bad,rule", BAD_IDS[:2], ids=["nul", "long"])
def test_bad_ids_in_process_messages_and_transfer_requests_are_refused(node: NodeProcess, bad: str,
                                                                       rule: str) -> None:
    msg = {"@context": CTX, "@type": "ContractAgreementVerificationMessage", "providerPid": bad, "consumerPid": "urn:c"}
    assert_refused(dsp(node, "POST", "/negotiations/urn:p/agreement/verification", msg), "providerPid", rule)
    msg = {"@context": CTX, "@type": "TransferRequestMessage", "consumerPid": "urn:c", "agreementId": bad,
           "format": "HttpData-PULL", "callbackAddress": "http://127.0.0.1:9/cb"}
    assert_refused(dsp(node, "POST", "/transfers/request", msg), "agreementId", rule)
    msg = {"@context": CTX, "@type": "TransferTerminationMessage", "providerPid": "urn:p", "consumerPid": bad}
    assert_refused(dsp(node, "POST", "/transfers/urn:p/termination", msg), "consumerPid", rule)


def test_bad_ids_in_dsp_paths_are_refused(node: NodeProcess) -> None:
    for path in ("/negotiations/urn:%00x", "/transfers/urn:%00x", "/negotiations/" + LONG, "/transfers/" + LONG):
        assert_refused(dsp(node, "GET", path), "pid", "characters")
    assert_refused(dsp(node, "GET", "/catalog/datasets/x%00y"), "'id'", "control character U+0000")
    msg = {"@context": CTX, "@type": "ContractAgreementVerificationMessage", "providerPid": "urn:p", "consumerPid": "urn:c"}
    assert_refused(dsp(node, "POST", "/negotiations/urn:%00x/agreement/verification", msg), "pid", "U+0000")


def test_bad_ids_in_the_management_api_are_refused(node: NodeProcess) -> None:
    def post(path: str, body: dict) -> httpx.Response:
        return httpx.post(node.url + "/api/v1" + path, json=body, headers=node.headers(), timeout=30)

    assert_refused(post("/assets", {"id": NUL, "title": "t"}), "id", "control characters")
    assert_refused(post("/assets", {"id": LONG, "title": "t"}), "id", "too long")
    assert_refused(post("/assets", {"id": 3, "title": "t"}), "id", "not of type 'string'")
    assert_refused(post("/policies", {"id": NUL, "policy": {"permission": [{"action": "use"}]}}), "id",
                   "control characters")
    assert_refused(post("/offers", {"id": "o2", "assetIds": ["ids-dataset", NUL], "accessPolicyId": "policy-ids-dataset",
                                    "contractPolicyId": "policy-ids-dataset"}), "assetIds/1", "control characters")
    assert_refused(post("/transfers", {"agreementId": NUL}), "agreementId", "control characters")
    assert_refused(post("/negotiations", {"counterPartyAddress": "http://127.0.0.1:9", "counterPartyId": "urn:x",
                                          "datasetId": "d", "offerId": LONG}), "offerId", "too long")
    assert_refused(post("/negotiations", {"counterPartyAddress": "http://127.0.0.1:9", "datasetId": "d",
                                          "offer": {"@id": {"@value": 3}}}), "offer/@id", "not of type 'string'")
    for path in ("/negotiations/a%00b", "/assets/a%00b", "/transfers/a%00b", "/agreements/a%00b", "/policies/a%00b",
                 "/negotiations/" + LONG):
        resp = httpx.get(node.url + "/api/v1" + path, headers=node.headers(), timeout=30)
        assert_refused(resp, "the id in the path", "characters")
    assert [a["id"] for a in node.api("GET", "/assets")] == ["ids-dataset"]
    assert [p["id"] for p in node.api("GET", "/policies")] == ["policy-ids-dataset"]
