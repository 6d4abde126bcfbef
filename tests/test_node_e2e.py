"""Two real node processes on loopback negotiate over HTTP; bad input is refused
with the right status and a DSP error body, and changes nothing."""
import httpx
import orjson
import pytest

from connector.identity import DevSharedSecret
from support.nodes import SHARED_SECRET, NodeProcess

pytestmark = pytest.mark.slow
CTX25 = ["https://w3id.org/dspace/2025/1/context.jsonld"]
CTX24 = "https://w3id.org/dspace/2024/1/context.json"
FAKE = "urn:hks:participant:fake-consumer"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    base = tmp_path_factory.mktemp("pair")
    provider = NodeProcess(base / "provider", "Provider").start()
    consumer = NodeProcess(base / "consumer", "Consumer").start()
    provider.publish("dataset-1", "offer-1")
    try:
        yield provider, consumer
    finally:
        provider.stop()
        consumer.stop()


def token(node, participant=FAKE):
    """A dev-mode token naming `participant`, for `node` only."""
    return "Bearer " + DevSharedSecret(participant, SHARED_SECRET).token_for(participant, audience=node.participant_id)


def dsp(node, method, path, body=None, version="2025-1", auth=True, raw=None, headers=None):
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if auth:
        hdrs["Authorization"] = auth if isinstance(auth, str) else token(node)
    content = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
    return httpx.request(method, f"{node.url}/dsp/{version}{path}", content=content, headers=hdrs, timeout=20)


def request_body(consumer_pid="urn:uuid:fake-1", offer_id="offer-1", target="dataset-1", callback="http://127.0.0.1:9/cb"):
    return {"@context": CTX25, "@type": "ContractRequestMessage", "consumerPid": consumer_pid,
            "offer": {"@id": offer_id, "@type": "Offer", "target": target, "permission": [{"action": "use"}]},
            "callbackAddress": callback}


@pytest.mark.parametrize("version", ["2025-1", "2024-1"])
def test_negotiation_reaches_finalized_on_both_sides(pair, version):
    provider, consumer = pair
    started = consumer.negotiate(provider, version=version)
    neg = consumer.wait_state(started["id"])
    assert neg["state"] == "FINALIZED" and neg["dspVersion"] == version
    assert neg["providerPid"]
    provider_side = [n for n in provider.api("GET", "/negotiations") if n["consumerPid"] == neg["consumerPid"]]
    assert len(provider_side) == 1 and provider_side[0]["state"] == "FINALIZED"
    agreement = neg["agreement"]
    assert agreement["target"] == "dataset-1"
    assert agreement["assigner"] == provider.participant_id and agreement["assignee"] == consumer.participant_id
    assert agreement["permission"] == [{"action": "use"}]
    ids = {a["id"] for a in consumer.api("GET", "/agreements")}
    assert agreement["@id"] in ids and agreement["@id"] in {a["id"] for a in provider.api("GET", "/agreements")}


def test_changed_terms_get_a_counter_offer_and_the_agreement_carries_the_providers_copy(pair):
    provider, consumer = pair
    catalog = consumer.api("POST", "/catalog/request", {"counterPartyAddress": provider.url}, expect=200)
    offer = catalog["catalog"]["dataset"][0]["hasPolicy"][0]
    wider = {**offer, "permission": [{"action": "use"}, {"action": "distribute"}]}
    started = consumer.api("POST", "/negotiations", {"counterPartyAddress": provider.url, "datasetId": "dataset-1",
                                                     "offer": wider}, expect=201)
    neg = consumer.wait_state(started["id"], "OFFERED")
    assert neg["state"] == "OFFERED"  # the provider answered with its own offer
    consumer.api("POST", f"/negotiations/{neg['id']}/accept", expect=200)
    neg = consumer.wait_state(neg["id"])
    assert neg["state"] == "FINALIZED"
    assert neg["agreement"]["permission"] == [{"action": "use"}]  # never the consumer's wider terms


def test_termination_by_consumer_reaches_provider(pair):
    provider, consumer = pair
    catalog = consumer.api("POST", "/catalog/request", {"counterPartyAddress": provider.url}, expect=200)
    offer = catalog["catalog"]["dataset"][0]["hasPolicy"][0]
    started = consumer.api("POST", "/negotiations", {"counterPartyAddress": provider.url, "datasetId": "dataset-1",
                                                     "offer": {**offer, "permission": [{"action": "read"}]}}, expect=201)
    neg = consumer.wait_state(started["id"], "OFFERED")
    consumer.api("POST", f"/negotiations/{neg['id']}/terminate", {"reason": "changed my mind"}, expect=200)
    neg = consumer.wait_state(neg["id"], "TERMINATED")
    assert neg["state"] == "TERMINATED"
    for _ in range(50):
        theirs = [n for n in provider.api("GET", "/negotiations") if n["consumerPid"] == neg["consumerPid"]][0]
        if theirs["state"] == "TERMINATED":
            break
        import time; time.sleep(0.1)
    assert theirs["state"] == "TERMINATED"
    assert theirs["termination"]["reason"] == ["changed my mind"] and theirs["termination"]["by"] == "consumer"


def test_well_known_is_unauthenticated(pair):
    provider, _ = pair
    resp = httpx.get(provider.url + "/.well-known/dspace-version")
    assert resp.status_code == 200
    versions = {v["version"]: v for v in resp.json()["protocolVersions"]}
    assert versions["2025-1"]["path"] == "/dsp/2025-1" and versions["2025-1"]["binding"] == "HTTPS"
    assert "2024-1" in versions


def _negotiation_count(node):
    return len(node.api("GET", "/negotiations?limit=1000"))


@pytest.mark.parametrize("case", ["no-token", "bad-token", "malformed-json", "unknown-context", "missing-field",
                                  "not-an-object", "wrong-type", "unknown-offer", "too-large", "2024-to-2025"])
def test_bad_initial_requests_are_refused_without_state_change(pair, case):
    provider, _ = pair
    before = _negotiation_count(provider)
    body = request_body(consumer_pid=f"urn:uuid:bad-{case}")
    kwargs = {}
    expect_status, needle = 400, None
    if case == "no-token":
        kwargs["auth"], expect_status, needle = False, 401, "Authorization header is missing"
    elif case == "bad-token":
        kwargs["auth"] = "Bearer " + DevSharedSecret(FAKE, "another-station-secret!!").token_for(
            FAKE, audience=provider.participant_id)
        expect_status, needle = 401, "does not verify"
    elif case == "malformed-json":
        kwargs["raw"], needle = b'{"@context": [', "not valid JSON"
    elif case == "unknown-context":
        body["@context"] = ["https://evil.example.com/context.jsonld"]
        needle = "unknown @context"
    elif case == "missing-field":
        del body["consumerPid"]
        needle = "'consumerPid' is missing"
    elif case == "not-an-object":
        kwargs["raw"], needle = b"[1, 2]", "JSON object"
    elif case == "wrong-type":
        body["@type"] = "ContractOfferMessage"
        needle = "expected ContractRequestMessage"
    elif case == "unknown-offer":
        body["offer"]["@id"] = "no-such-offer"
        needle = "not offered by this provider"
    elif case == "too-large":
        body["offer"]["padding"] = "x" * (2 * 1024 * 1024)
        expect_status, needle = 413, "limit"
    elif case == "2024-to-2025":
        body = {"@context": CTX24, "@type": "dspace:ContractRequestMessage", "dspace:consumerPid": "urn:uuid:x",
                "dspace:offer": {"@id": "offer-1", "@type": "odrl:Offer"}, "dspace:callbackAddress": "http://x"}
        needle = "2024-1 message was sent to the DSP 2025-1 endpoint"
    resp = dsp(provider, "POST", "/negotiations/request", body, **kwargs)
    assert resp.status_code == expect_status, resp.text
    err = resp.json()
    assert err["@type"] == "ContractNegotiationError" and err["@context"] == CTX25
    assert needle in " ".join(err["reason"]), err
    assert _negotiation_count(provider) == before


def test_duplicate_message_is_idempotent(pair):
    provider, _ = pair
    body = request_body(consumer_pid="urn:uuid:dup-1")
    first = dsp(provider, "POST", "/negotiations/request", body)
    second = dsp(provider, "POST", "/negotiations/request", body)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    pid = first.json()["providerPid"]
    assert len([n for n in provider.api("GET", "/negotiations?limit=1000") if n["consumerPid"] == "urn:uuid:dup-1"]) == 1
    # the same termination twice: applied once, answered twice alike
    term = {"@context": CTX25, "@type": "ContractNegotiationTerminationMessage", "providerPid": pid,
            "consumerPid": "urn:uuid:dup-1", "code": "x", "reason": ["stop"]}
    a = dsp(provider, "POST", f"/negotiations/{pid}/termination", term)
    b = dsp(provider, "POST", f"/negotiations/{pid}/termination", term)
    assert a.status_code == b.status_code == 200 and a.json() == b.json()
    assert provider.api("GET", f"/negotiations/{pid}")["state"] == "TERMINATED"
    # a different message in the terminal state: 400, not 404, and nothing changes
    c = dsp(provider, "POST", f"/negotiations/{pid}/termination", {**term, "reason": ["again"]})
    assert c.status_code == 400 and c.json()["code"] == "InvalidStateTransition"
    assert provider.api("GET", f"/negotiations/{pid}")["termination"]["reason"] == ["stop"]


def test_unknown_process_wrong_state_and_foreign_caller(pair):
    provider, _ = pair
    verify = {"@context": CTX25, "@type": "ContractAgreementVerificationMessage", "providerPid": "urn:uuid:nope",
              "consumerPid": "urn:uuid:c"}
    resp = dsp(provider, "POST", "/negotiations/urn:uuid:nope/agreement/verification", verify)
    assert resp.status_code == 404 and resp.json()["@type"] == "ContractNegotiationError"
    assert dsp(provider, "GET", "/negotiations/urn:uuid:nope").status_code == 404
    created = dsp(provider, "POST", "/negotiations/request", request_body(consumer_pid="urn:uuid:ws-1")).json()
    pid = created["providerPid"]
    # verification while the provider's agreement is outstanding is fine, but an ACCEPTED event is not
    accepted = {"@context": CTX25, "@type": "ContractNegotiationEventMessage", "providerPid": pid,
                "consumerPid": "urn:uuid:ws-1", "eventType": "ACCEPTED"}
    before = provider.api("GET", f"/negotiations/{pid}")
    resp = dsp(provider, "POST", f"/negotiations/{pid}/events", accepted)
    assert resp.status_code == 400 and "not allowed in state" in resp.json()["reason"][0]
    after = provider.api("GET", f"/negotiations/{pid}")
    assert after["state"] == before["state"] and after["updatedAt"] == before["updatedAt"]
    # a participant who is not the counterparty does not see the process
    other = "urn:hks:participant:someone-else"
    other_token = token(provider, other)
    assert dsp(provider, "GET", f"/negotiations/{pid}", auth=other_token).status_code == 404
    assert dsp(provider, "GET", f"/negotiations/{pid}").status_code == 200
    # pids in the body must match the path
    wrong = {**accepted, "eventType": "ACCEPTED", "consumerPid": "urn:uuid:someone-elses"}
    assert dsp(provider, "POST", f"/negotiations/{pid}/events", wrong).status_code == 400


def test_catalog_errors(pair):
    provider, _ = pair
    resp = dsp(provider, "GET", "/catalog/datasets/no-such-dataset")
    assert resp.status_code == 404 and resp.json()["@type"] == "CatalogError"
    resp = dsp(provider, "POST", "/catalog/request", {"@context": CTX25, "@type": "CatalogRequestMessage"}, auth=False)
    assert resp.status_code == 401 and resp.json()["@type"] == "CatalogError"
    resp = dsp(provider, "POST", "/catalog/request", {"@context": CTX25, "@type": "CatalogRequestMessage",
                                                      "filter": [{"x": 1}]})
    assert resp.status_code == 400 and "filters are not supported" in resp.json()["reason"][0]


def test_management_api_needs_the_key_and_valid_input(pair):
    provider, _ = pair
    url = provider.url + "/api/v1/assets"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"X-Api-Key": "wrong-key-wrong-key"}).status_code == 401
    before = provider.api("GET", "/assets")
    for body, needle in [({"title": "no id"}, "'id' is a required property"),
                         ({"id": "a b"}, "id: must not contain whitespace"),
                         ({"id": "x", "unexpected": 1}, "Additional properties")]:
        resp = httpx.post(url, json=body, headers=provider.headers())
        assert resp.status_code == 400 and needle in resp.json()["error"], resp.text
    resp = httpx.post(url, content=b"{nope", headers={**provider.headers(), "Content-Type": "application/json"})
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]
    resp = httpx.post(url, json={"id": "dataset-1"}, headers=provider.headers())
    assert resp.status_code == 409
    resp = httpx.post(provider.url + "/api/v1/offers", headers=provider.headers(),
                      json={"id": "o9", "assetIds": ["missing"], "accessPolicyId": "policy-dataset-1", "contractPolicyId": "policy-dataset-1"})
    assert resp.status_code == 400 and "asset 'missing' does not exist" in resp.json()["error"]
    resp = httpx.post(url, content=b"x" * (2 * 1024 * 1024), headers=provider.headers())
    assert resp.status_code == 413
    assert provider.api("GET", "/assets") == before
    spec = httpx.get(provider.url + "/api/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/api/v1/negotiations" in spec["paths"]


@pytest.mark.postgres
def test_negotiation_on_postgresql(tmp_path, pg_url):
    provider = NodeProcess(tmp_path / "p", "PgProvider", database_url=pg_url).start()
    consumer = NodeProcess(tmp_path / "c", "Consumer").start()
    try:
        provider.publish()
        for version in ("2025-1", "2024-1"):
            neg = consumer.wait_state(consumer.negotiate(provider, version=version)["id"])
            assert neg["state"] == "FINALIZED"
        assert {n["state"] for n in provider.api("GET", "/negotiations")} == {"FINALIZED"}
    finally:
        provider.stop()
        consumer.stop()


def test_negotiations_and_transfers_are_listed_newest_first_by_cursor(pair):
    provider, consumer = pair
    for i in range(3):  # at least a few, whatever ran before
        consumer.wait_state(consumer.negotiate(provider, "dataset-1", "offer-1")["id"])
    with httpx.Client(base_url=provider.url, headers=provider.headers(), timeout=30) as api:
        whole = api.get("/api/v1/negotiations?limit=1000").json()
        assert len(whole) >= 3 and [n["createdAt"] for n in whole] == sorted((n["createdAt"] for n in whole),
                                                                              reverse=True)
        paged, url = [], "/api/v1/negotiations?limit=2&offset=0"
        while url:
            resp = api.get(url)
            assert resp.status_code == 200 and len(resp.json()) <= 2
            paged += resp.json()
            url = resp.links.get("next", {}).get("url")
            assert url is None or "offset" not in str(url)  # the cursor carries on, not the offset
            url = str(url) if url else None
        assert [n["id"] for n in paged] == [n["id"] for n in whole]
        for what in ("negotiations", "transfers"):
            bad = api.get(f"/api/v1/{what}?cursor=" + "A" * 300)
            assert bad.status_code == 400 and "cursor" in bad.json()["error"] and "A" * 201 not in bad.text
