"""Dynamic Attribute Tokens against real processes: a station and two enrolled nodes on
loopback. Every bad token is a 401 with a DSP error body naming the reason, is logged, and
changes nothing on the receiving node; a good one is accepted in both DSP versions.

What "replayed jti" means here (connector/identity/dat.py): a DAT is reused by its holder for
its lifetime, so a receiver binds each jti to the first token carrying it (persisted) and
refuses any *other* token with that jti; the station refuses a replayed client assertion."""
import base64
import hashlib
import hmac
import json
import time
import uuid

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connector.identity import jose
from connector.identity.dat import client_assertion, token_request_form
from connector.identity.keys import load_any_private_key, load_private_key
from connector.identity.pki import make_csr
from support.nodes import NodeProcess, StationProcess, free_port

pytestmark = pytest.mark.slow
CTX25 = ["https://w3id.org/dspace/2025/1/context.jsonld"]
CTX24 = "https://w3id.org/dspace/2024/1/context.json"


# The consumer's port is known in advance: a request's callbackAddress must be the consumer's own
# (registered) address, or the provider refuses it (destinations must belong to the sender).
CONSUMER_PORT = free_port()


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("tokens")
    station = StationProcess(base / "station").start()
    provider = NodeProcess(base / "provider", "Pearl River Medical Centre", station=station,
                           jurisdiction="CN-GD-GZ").start()
    consumer = NodeProcess(base / "consumer", "Harbour University Research Lab", station=station,
                           jurisdiction="HK", port=CONSUMER_PORT).start()
    station.recipient = provider.participant_id  # the tests' tokens are for the provider
    provider.publish("dataset-1", "offer-1")
    try:
        yield station, provider, consumer
    finally:
        for process in (consumer, provider, station):
            process.stop()


def station_key(station):
    key = load_any_private_key(sorted((station.directory / "keys").glob("token-*.key"))[-1])
    return key, jose.signing_jwk(key)["kid"]


def mint(station, sub, *, key=None, kid=None, header=None, **over):
    """A DAT as the station would sign it, with `over` changing claims (None drops one)."""
    skey, skid = station_key(station)
    now = int(time.time())
    claims = {"@context": "https://w3id.org/idsa/contexts/context.jsonld", "@type": "ids:DatPayload",
              "iss": station.url, "sub": sub, "aud": [station.recipient], "iat": now, "nbf": now,
              "exp": now + 600, "jti": str(uuid.uuid4()), "scope": "idsc:IDS_CONNECTOR_ATTRIBUTES_ALL",
              "securityProfile": "idsc:BASE_SECURITY_PROFILE", "transportCertsSha256": [],
              "organisation": "Harbour University Research Lab", "jurisdiction": "HK",
              "membership": ["hks:StationMember"], "membershipStatus": "active"}
    claims.update(over)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key or skey, algorithm="ES256", headers={"kid": kid or skid, **(header or {})})


def real_token(station, node_dir, participant_id, audience=None):
    """A DAT from the station's token endpoint, asked for with the node's enrolled key."""
    key = load_private_key(node_dir / "keys" / "node.key")
    assertion = client_assertion(participant_id, key, station.url + "/token", now=time.time())
    resp = httpx.post(station.url + "/token", data=token_request_form(assertion, audience or station.recipient),
                      timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def request_body(consumer_pid=None, assignee=None, version="2025-1"):
    offer = {"@id": "offer-1", "@type": "Offer", "target": "dataset-1", "permission": [{"action": "use"}]}
    if assignee:
        offer["assignee"] = assignee
    body = {"@context": CTX25, "@type": "ContractRequestMessage",
            "consumerPid": consumer_pid or f"urn:uuid:{uuid.uuid4()}", "offer": offer,
            "callbackAddress": f"http://127.0.0.1:{CONSUMER_PORT}/dsp/{version}"}
    if version == "2024-1":
        body = {"@context": CTX24, "@type": "dspace:ContractRequestMessage",
                "dspace:consumerPid": body["consumerPid"], "dspace:callbackAddress": body["callbackAddress"],
                "dspace:offer": {"@id": "offer-1", "@type": "odrl:Offer", "odrl:target": {"@id": "dataset-1"},
                                 "odrl:permission": [{"odrl:action": {"@id": "odrl:use"}}],
                                 **({"odrl:assignee": {"@id": assignee}} if assignee else {})}}
    return body


def send(node, auth, body=None, version="2025-1", path="/negotiations/request", **kw):
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    return httpx.post(f"{node.url}/dsp/{version}{path}", content=orjson.dumps(body or request_body(version=version)),
                      headers=headers, timeout=20, verify=node.ssl(), **kw)


def negotiation_count(node):
    return len(node.api("GET", "/negotiations?limit=1000", expect=200))


def assert_refused(node, resp, needle, version="2025-1"):
    assert resp.status_code == 401, resp.text
    body = resp.json()
    kind = body.get("@type") or body.get("type")
    assert kind in ("ContractNegotiationError", "dspace:ContractNegotiationError"), body
    reason = json.dumps(body.get("reason") or body.get("dspace:reason"))
    assert needle in reason, (needle, reason)
    assert needle in node.log_path.read_text(), "the refusal is logged"


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_a_real_dat_is_accepted_in_both_versions_and_as_a_bare_token(net):
    station, provider, consumer = net
    token = real_token(station, consumer.directory, consumer.participant_id)
    before = negotiation_count(provider)
    assert send(provider, f"Bearer {token}").status_code == 201
    assert send(provider, token, version="2024-1").status_code == 201  # bare token: peers differ
    assert negotiation_count(provider) == before + 2


def bad_tokens(station, consumer):
    sub = consumer.participant_id
    skey, skid = station_key(station)
    now = int(time.time())
    payload = {"iss": station.url, "sub": sub, "aud": [station.recipient], "iat": now, "nbf": now,
               "exp": now + 600, "jti": str(uuid.uuid4()), "@type": "ids:DatPayload"}
    public_pem = skey.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    hs_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': skid})}.{b64(payload)}"
    hs256 = hs_input + "." + base64.urlsafe_b64encode(
        hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    other = ec.generate_private_key(ec.SECP256R1())
    return {
        "no token": (None, "no token"),
        "malformed token": ("Bearer not-a-token", "malformed token"),
        "alg none": (f"Bearer {b64({'alg': 'none', 'kid': skid})}.{b64(payload)}.", "algorithm 'none' is not allowed"),
        "HS256 with the public key as secret": (f"Bearer {hs256}", "algorithm 'HS256' is not allowed"),
        "wrong issuer": (f"Bearer {mint(station, sub, iss='http://127.0.0.1:1')}", "wrong issuer"),
        "wrong audience": (f"Bearer {mint(station, sub, aud=['urn:hks:someone-else'])}", "wrong audience"),
        "expired": (f"Bearer {mint(station, sub, iat=now - 700, nbf=now - 700, exp=now - 100)}", "expired token"),
        "not yet valid": (f"Bearer {mint(station, sub, nbf=now + 300, exp=now + 900)}", "not yet valid"),
        "unknown kid": (f"Bearer {mint(station, sub, key=other, kid='no-such-station-key')}", "unknown kid"),
        "signature of another key": (f"Bearer {mint(station, sub, key=other)}", "bad signature"),
    }


@pytest.mark.parametrize("case", ["no token", "malformed token", "alg none", "HS256 with the public key as secret",
                                  "wrong issuer", "wrong audience", "expired", "not yet valid", "unknown kid",
                                  "signature of another key"])
def test_bad_tokens_are_refused_with_the_reason_and_change_nothing(net, case):
    station, provider, consumer = net
    auth, needle = bad_tokens(station, consumer)[case]
    before = negotiation_count(provider)
    for version in ("2025-1", "2024-1"):
        assert_refused(provider, send(provider, auth, version=version), needle)
    # the catalog too: no token check is skipped anywhere on the DSP surface
    resp = httpx.post(f"{provider.url}/dsp/2025-1/catalog/request", headers={"Authorization": auth} if auth else {},
                      content=orjson.dumps({"@context": CTX25, "@type": "CatalogRequestMessage"}), timeout=10)
    assert resp.status_code == 401 and needle in resp.text
    assert negotiation_count(provider) == before


def test_leeway_of_30_seconds(net):
    station, provider, consumer = net
    now = int(time.time())
    late = mint(station, consumer.participant_id, iat=now - 620, nbf=now - 620, exp=now - 10)
    early = mint(station, consumer.participant_id, nbf=now + 10)
    for token in (late, early):
        assert send(provider, f"Bearer {token}").status_code == 201


def test_replayed_jti_is_refused_across_a_restart(net):
    station, provider, consumer = net
    jti = f"urn:uuid:{uuid.uuid4()}"
    first = mint(station, consumer.participant_id, jti=jti)
    assert send(provider, f"Bearer {first}").status_code == 201
    assert send(provider, f"Bearer {first}").status_code == 201  # its holder reuses it: normal
    replay = mint(station, consumer.participant_id, jti=jti, exp=int(time.time()) + 900)  # same jti, another token
    before = negotiation_count(provider)
    assert_refused(provider, send(provider, f"Bearer {replay}"), "replayed jti")
    provider.stop()
    provider.start()
    assert_refused(provider, send(provider, f"Bearer {replay}"), "replayed jti")  # persisted
    assert send(provider, f"Bearer {first}").status_code == 201
    assert negotiation_count(provider) == before + 1


def test_the_station_refuses_a_replayed_client_assertion(net):
    station, provider, consumer = net
    key = load_private_key(consumer.directory / "keys" / "node.key")
    assertion = client_assertion(consumer.participant_id, key, station.url + "/token", now=time.time())
    assert httpx.post(station.url + "/token", data=token_request_form(assertion, station.recipient), timeout=10).status_code == 200
    station.stop()
    station.start()
    again = httpx.post(station.url + "/token", data=token_request_form(assertion, station.recipient), timeout=10)
    assert again.status_code == 401 and again.json()["error"] == "invalid_client"
    assert "replayed client assertion" in again.json()["error_description"]


def enrol_raw(station, name, jurisdiction="HK", connector_url=None):
    key = ec.generate_private_key(ec.SECP256R1())
    record = station.admin("POST", "/admin/participants", {
        "name": name, "jurisdiction": jurisdiction, "csr": make_csr(key, name).decode(),
        **({"connectorUrl": connector_url} if connector_url else {})}, expect=201)
    return key, record["participantId"]


def test_a_revoked_participant_is_refused_from_its_next_token_on(net):
    station, provider, consumer = net
    own_url = f"http://127.0.0.1:{free_port()}"  # its registered address, where its callbacks must be
    key, pid = enrol_raw(station, "Lion Rock Mobility Data Co.", connector_url=own_url)
    body = {**request_body(), "callbackAddress": f"{own_url}/dsp/2025-1"}

    def token():
        assertion = client_assertion(pid, key, station.url + "/token", now=time.time())
        return httpx.post(station.url + "/token", data=token_request_form(assertion, station.recipient), timeout=10)

    held = token().json()["access_token"]
    unseen = token().json()["access_token"]
    assert send(provider, f"Bearer {held}", body=body).status_code == 201
    station.admin("POST", f"/admin/participants/{pid}/revoke", {"reason": "membership ended"}, expect=200)
    before = negotiation_count(provider)
    assert_refused(provider, send(provider, f"Bearer {unseen}", body=body), "revoked participant")
    refused = token()
    assert refused.status_code == 401 and "revoked" in refused.json()["error_description"]
    assert negotiation_count(provider) == before


@pytest.mark.parametrize("version", ["2025-1", "2024-1"])
def test_a_token_of_x_on_a_message_claiming_to_come_from_y(net, version):
    station, provider, consumer = net
    token = real_token(station, consumer.directory, consumer.participant_id)
    before = negotiation_count(provider)
    claimed = provider.participant_id  # anyone but the token's subject
    resp = send(provider, f"Bearer {token}", body=request_body(assignee=claimed, version=version), version=version)
    assert_refused(provider, resp, "is not the party the message claims to come from")
    assert negotiation_count(provider) == before
    ok = send(provider, f"Bearer {token}", body=request_body(assignee=consumer.participant_id, version=version),
              version=version)
    assert ok.status_code == 201


def test_two_enrolled_participants_negotiate_with_real_tokens(net):
    station, provider, consumer = net
    for version in ("2025-1", "2024-1"):
        started = consumer.negotiate(provider, version=version)
        neg = consumer.wait_state(started["id"])
        assert neg["state"] == "FINALIZED", neg
        assert neg["agreement"]["assigner"] == provider.participant_id
        assert neg["agreement"]["assignee"] == consumer.participant_id
    assert "dev-shared-secret" not in (provider.directory / "connector.toml").read_text()
    health = httpx.get(provider.url + "/health", timeout=10).json()
    assert health["identityMode"] == "station"


def test_an_unknown_kid_refetches_the_jwks_after_a_key_rotation(net, tmp_path):
    """Last in the module: it rotates the station's signing key."""
    import subprocess
    import sys

    station, provider, consumer = net
    assert send(provider, f"Bearer {mint(station, consumer.participant_id)}").status_code == 201  # JWKS cached
    station.stop()
    out = subprocess.run([sys.executable, "-m", "connector", "station", "rotate-key", str(station.directory)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    station.start()
    jwks = httpx.get(station.url + "/jwks.json", timeout=10).json()
    assert len(jwks["keys"]) == 2
    new = real_token(station, consumer.directory, consumer.participant_id)
    assert jwt.get_unverified_header(new)["kid"] == station_key(station)[1]
    assert send(provider, f"Bearer {new}").status_code == 201  # unknown kid -> JWKS refetched
    old = mint(station, consumer.participant_id, key=load_any_private_key(
        sorted((station.directory / "keys").glob("token-*.key"))[0]),
        kid=jose.signing_jwk(load_any_private_key(sorted((station.directory / "keys").glob("token-*.key"))[0]))["kid"])
    assert send(provider, f"Bearer {old}").status_code == 201  # the old key stays published
