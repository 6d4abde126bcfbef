"""The identity core without processes: X.509 and participant ids, the pure DAT claim checks,
the verifier's order of checks against an in-memory trust source, the persisted replay store,
and the token service's assertion checks. (The same cases against real station and node
processes: tests/test_station_tokens.py.)"""
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connector.identity import jose
from connector.identity.dat import (DatVerifier, MemoryReplayStore, SqliteReplayStore, check_dat_claims,
                                    client_assertion, strip_bearer)
from connector.identity.pki import (CertificateError, cert_sha256, check_issued, is_participant_id, load_csr,
                                    make_ca, make_csr, participant_id, sign_csr)
from connector.protocol.errors import Unauthenticated
from connector.station.tokens import OAuthError, check_form, dat_claims, verify_assertion

NOW = 1_800_000_000.0
ISS = "http://station.example"
AUD = "CC:" * 19 + "CC:keyid:" + "BB:" * 19 + "BB"  # the receiver's own participant id


def ca_and_participant():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_ca(ca_key, "Test Station", now=dt.datetime.now(dt.timezone.utc), serial=1)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = load_csr(make_csr(key, "Harbour Lab", ["127.0.0.1", "localhost"]).decode())
    cert = sign_csr(csr, ca_key, ca, organisation="Harbour University Research Lab",
                    now=dt.datetime.now(dt.timezone.utc), serial=2)
    return ca, key, cert


def test_participant_id_is_ski_keyid_aki_and_certificate_checks():
    ca, key, cert = ca_and_participant()
    pid = participant_id(cert)
    assert is_participant_id(pid)
    ski, _, aki = pid.partition(":keyid:")
    assert len(ski.split(":")) == 20 and ski == ski.upper()
    assert aki == participant_id(ca).split(":keyid:")[0]  # AKI = the CA's SKI
    check_issued(cert, ca, key)
    with pytest.raises(CertificateError, match="does not certify this node's key"):
        check_issued(cert, ca, ec.generate_private_key(ec.SECP256R1()))
    other_ca, _, _ = ca_and_participant()
    with pytest.raises(CertificateError, match="not issued by the station CA"):
        check_issued(cert, other_ca)
    assert len(cert_sha256(cert)) == 64 and cert_sha256(cert) == cert_sha256(cert).lower()


@pytest.mark.parametrize("mutate,needle", [
    (lambda pem: "not a csr", "not a PEM certificate signing request"),
    (lambda pem: pem * 60, "over"),
])
def test_bad_csrs_are_named(mutate, needle):
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertificateError, match=needle):
        load_csr(mutate(make_csr(key, "Org").decode()))


def test_csr_with_another_curve_is_refused():
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(CertificateError, match="P-256"):
        load_csr(make_csr(key, "Org").decode())


def claims(**over):
    base = {"iss": ISS, "aud": [AUD], "sub": "AA:" * 19 + "AA:keyid:" + "BB:" * 19 + "BB", "iat": NOW, "nbf": NOW,
            "exp": NOW + 600, "jti": "j-1", "@type": "ids:DatPayload", "securityProfile": "idsc:BASE_SECURITY_PROFILE",
            "organisation": "Org", "jurisdiction": "HK", "membership": ["hks:StationMember"],
            "membershipStatus": "active", "transportCertsSha256": ["AB" * 32]}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize("over,now,needle", [
    ({"iss": "http://evil.example"}, NOW, "wrong issuer"),
    ({"aud": ["urn:other"]}, NOW, "wrong audience"),
    ({"aud": None}, NOW, "wrong audience"),
    ({"aud": [AUD, "urn:other"]}, NOW, "wrong audience"),  # one recipient, not several
    ({"aud": ["idsc:IDS_CONNECTORS_ALL"]}, NOW, "wrong audience"),  # a token for everyone is refused
    ({"exp": NOW + 10 * 365 * 86400}, NOW, "lifetime too long"),
    ({"iat": NOW - 7200, "nbf": NOW - 7200}, NOW, "lifetime too long"),
    ({}, NOW + 600 + 31, "expired token"),
    ({"exp": None}, NOW, "'exp' claim is missing"),
    ({"nbf": NOW + 31}, NOW, "not yet valid"),
    ({"iat": NOW + 60}, NOW, "not yet valid"),
    ({"sub": "urn:hks:participant:x"}, NOW, "not a participant id"),
    ({"jti": None}, NOW, "'jti' claim is missing"),
    ({"@type": "ids:Other"}, NOW, "ids:DatPayload"),
    ({"exp": True}, NOW, "not a number"),
])
def test_claim_checks_name_the_problem(over, now, needle):
    with pytest.raises(Unauthenticated) as err:
        check_dat_claims(claims(**over), issuer=ISS, audience=AUD, now=now)
    assert needle in err.value.reason


def test_claims_within_the_30s_leeway_pass_and_carry_the_station_claims():
    out = check_dat_claims(claims(aud=AUD), issuer=ISS, audience=AUD, now=NOW + 600 + 29)
    out = check_dat_claims(claims(nbf=NOW + 29), issuer=ISS, audience=AUD, now=NOW)
    assert out["jurisdiction"] == "HK" and out["membership"] == ["hks:StationMember"]
    assert out["securityProfile"] == "idsc:BASE_SECURITY_PROFILE"
    assert out["transportCertsSha256"] == ["ab" * 32]  # hex compared in lower case


def test_bearer_prefix_is_optional_and_size_limited():
    assert strip_bearer("Bearer abc") == "abc" and strip_bearer("abc") == "abc" and strip_bearer("bearer  abc ") == "abc"
    for bad, needle in ((None, "no token"), ("", "no token"), ("Bearer ", "empty"), ("x" * 9000, "over")):
        with pytest.raises(Unauthenticated, match=needle):
            strip_bearer(bad)


class FakeTrust:
    def __init__(self, key):
        self.jwk = jose.signing_jwk(key)
        self.keys = {self.jwk["kid"]: (key.public_key(), "ES256")}
        self.statuses = {}
        self.key_calls = 0

    async def issuer(self):
        return ISS

    async def key(self, kid):
        self.key_calls += 1
        return self.keys.get(kid)

    async def algorithms(self):
        return frozenset({"ES256"})

    async def status(self, pid, *, fresh):
        return self.statuses.get(pid, "active"), time.time()


def mint(key, kid, **over):
    return jwt.encode(claims(iat=time.time(), nbf=time.time(), exp=time.time() + 600, **over), key,
                      algorithm="ES256", headers={"kid": kid})


def b64(obj):
    return jose.b64url(json.dumps(obj).encode())


async def test_verifier_refuses_each_bad_token_and_caches_good_ones():
    key = ec.generate_private_key(ec.SECP256R1())
    trust = FakeTrust(key)
    kid = trust.jwk["kid"]
    verifier = DatVerifier(trust, MemoryReplayStore(), audience=AUD)
    good = mint(key, kid)
    caller = await verifier.verify(f"Bearer {good}")
    assert caller.claims["organisation"] == "Org" and is_participant_id(caller.participant_id)
    calls = trust.key_calls
    assert (await verifier.verify(good)) is caller and trust.key_calls == calls  # cached: no second verify

    body = {"iss": ISS, "sub": caller.participant_id}
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64({'alg': 'HS256', 'kid': kid})}.{b64(body)}"
    hs256 = signing_input + "." + jose.b64url(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
    other = ec.generate_private_key(ec.SECP256R1())
    cases = [
        ("not.a.jwt", "malformed token"),
        (f"{b64({'alg': 'none', 'kid': kid})}.{b64(body)}.", "algorithm 'none' is not allowed"),
        (hs256, "algorithm 'HS256' is not allowed"),
        (mint(other, "someone-else"), "unknown kid"),
        (mint(other, kid), "bad signature"),
        (jwt.encode(claims(), key, algorithm="ES256"), "names no key"),
    ]
    for token, needle in cases:
        with pytest.raises(Unauthenticated) as err:
            await verifier.verify(token)
        assert needle in err.value.reason, (needle, err.value.reason)


async def test_revoked_and_unknown_participants_are_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    trust = FakeTrust(key)
    verifier = DatVerifier(trust, MemoryReplayStore(), audience=AUD)
    token = mint(key, trust.jwk["kid"])
    sub = jwt.decode(token, options={"verify_signature": False})["sub"]
    trust.statuses[sub] = "revoked"
    with pytest.raises(Unauthenticated, match="revoked participant"):
        await verifier.verify(token)
    trust.statuses[sub] = "unknown"
    with pytest.raises(Unauthenticated, match="unknown participant"):
        await verifier.verify(token)


async def test_transport_certificate_binding():
    key = ec.generate_private_key(ec.SECP256R1())
    trust = FakeTrust(key)
    verifier = DatVerifier(trust, MemoryReplayStore(), audience=AUD, require_transport_cert=True)
    token = mint(key, trust.jwk["kid"])
    assert (await verifier.verify(token, peer_cert_sha256="ab" * 32)).participant_id
    with pytest.raises(Unauthenticated, match="not in the token's transportCertsSha256"):
        await verifier.verify(token, peer_cert_sha256="cd" * 32)  # also from the cache
    with pytest.raises(Unauthenticated, match="no client certificate"):
        await verifier.verify(token)


async def test_replayed_jti_is_refused_and_the_binding_survives_a_restart(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    trust = FakeTrust(key)
    kid = trust.jwk["kid"]
    store = SqliteReplayStore(tmp_path / "identity.db")
    await store.open()
    first = mint(key, kid, jti="shared-jti")
    await DatVerifier(trust, store, audience=AUD).verify(first)
    forged = mint(key, kid, jti="shared-jti", organisation="Another Org")  # valid signature, reused jti
    with pytest.raises(Unauthenticated, match="replayed jti"):
        await DatVerifier(trust, store, audience=AUD).verify(forged)
    await store.close()
    reopened = SqliteReplayStore(tmp_path / "identity.db")  # a restarted node
    await reopened.open()
    with pytest.raises(Unauthenticated, match="replayed jti"):
        await DatVerifier(trust, reopened, audience=AUD).verify(forged)
    assert (await DatVerifier(trust, reopened, audience=AUD).verify(first)).claims["organisation"] == "Org"  # its holder's token
    await reopened.close()


def test_detached_signature_round_trip_and_tamper():
    key = ec.generate_private_key(ec.SECP256R1())
    sig = jose.sign_detached(b"@prefix x: <y> .", key, {"kid": "me"})
    assert sig.split(".")[1] == ""
    assert jose.verify_detached(sig, b"@prefix x: <y> .", key.public_key())["kid"] == "me"
    with pytest.raises(jwt.InvalidSignatureError):
        jose.verify_detached(sig, b"@prefix x: <z> .", key.public_key())
    with pytest.raises(jwt.InvalidSignatureError):
        jose.verify_detached(sig, b"@prefix x: <y> .", ec.generate_private_key(ec.SECP256R1()).public_key())


def test_token_form_and_client_assertion_checks():
    ca, key, cert = ca_and_participant()
    pid = participant_id(cert)
    endpoint = ISS + "/token"
    assertion = client_assertion(pid, key, endpoint, now=NOW)
    form = {"grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion, "scope": "idsc:IDS_CONNECTOR_ATTRIBUTES_ALL"}
    assert check_form(form) == assertion
    for field, value, error in (("grant_type", "password", "unsupported_grant_type"),
                                ("scope", "openid", "invalid_scope"),
                                ("client_assertion_type", "x", "invalid_request")):
        with pytest.raises(OAuthError) as err:
            check_form({**form, field: value})
        assert err.value.error == error
    ok = verify_assertion(assertion, participant_id=pid, key=cert.public_key(), audiences=frozenset({endpoint}),
                          now=NOW, max_lifetime=600)
    assert ok.participant_id == pid and ok.jti
    problems = [
        (client_assertion(pid, ec.generate_private_key(ec.SECP256R1()), endpoint, now=NOW), "does not verify"),
        (client_assertion(pid, key, "http://elsewhere/token", now=NOW), "aud"),
        (client_assertion(pid, key, endpoint, now=NOW - 200), "expired"),
        (client_assertion(pid, key, endpoint, now=NOW, lifetime=3600), "lives too long"),
        (jwt.encode({"iss": pid, "sub": pid, "aud": endpoint, "exp": NOW + 60}, key, algorithm="ES256"), "no jti"),
        (jwt.encode({"iss": "x", "sub": pid, "aud": endpoint, "exp": NOW + 60, "jti": "j"}, key, algorithm="ES256"),
         "iss and sub"),
    ]
    for token, needle in problems:
        with pytest.raises(OAuthError) as err:
            verify_assertion(token, participant_id=pid, key=cert.public_key(), audiences=frozenset({endpoint}),
                             now=NOW, max_lifetime=600)
        assert needle in err.value.description and err.value.status == 401


def test_dat_claims_carry_the_ids_payload_and_station_claims():
    record = {"id": "AA:keyid:BB", "name": "Org", "jurisdiction": "CN-GD-SZ", "status": "active",
              "security_profile": "idsc:BASE_SECURITY_PROFILE", "membership": ["hks:StationMember"],
              "connector_url": "http://node.example/"}
    out = dat_claims(record, issuer=ISS, audience=AUD, now=NOW, lifetime=3600, transport_certs=["ab" * 32])
    for name in ("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "securityProfile", "referringConnector",
                 "transportCertsSha256", "organisation", "jurisdiction", "membership", "membershipStatus"):
        assert name in out
    assert out["@type"] == "ids:DatPayload" and out["exp"] - out["iat"] == 3600
    assert out["jti"] != dat_claims(record, issuer=ISS, audience=AUD, now=NOW, lifetime=3600,
                                    transport_certs=[])["jti"]
    uuid.UUID(out["jti"])


async def test_dev_mode_tokens_name_their_recipient_and_are_refused_elsewhere():
    from connector.identity import DevSharedSecret

    n1, n2 = DevSharedSecret("urn:n1", "s" * 20), DevSharedSecret("urn:n2", "s" * 20, also_accept=("http://n2",))
    sender = DevSharedSecret("urn:m", "s" * 20)
    to_n1 = await sender.outbound_authorization("urn:n1")
    assert (await n1.verify(to_n1)).participant_id == "urn:m"
    with pytest.raises(Unauthenticated, match="wrong audience"):
        await n2.verify(to_n1)
    assert (await n2.verify(await sender.outbound_authorization("http://n2"))).participant_id == "urn:m"
    with pytest.raises(Unauthenticated, match="wrong audience"):
        await n1.verify("Bearer " + sender.token_for("urn:m", audience="idsc:IDS_CONNECTORS_ALL"))


def test_a_verifier_for_everyone_cannot_be_built():
    with pytest.raises(ValueError):
        DatVerifier(None, MemoryReplayStore(), audience="idsc:IDS_CONNECTORS_ALL")
