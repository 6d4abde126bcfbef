"""Issue 14 item 6: attacks on dataset registration certificates, with real processes (a station, a
clearing house in station mode, two enrolled nodes, a third enrolled participant "Lion Rock" who
calls the station directly).

Each is refused with a reason and changes nothing: bytes that do not match the registered digest, a
certificate re-signed or altered by someone without the station's key, a log entry that logs
another certificate, a revoked certificate (and a revocation list forged to hide it), another
participant's dataset (replacing its certificate, reading its request, verifying it as one's own),
an unknown dataset, an operator action without the admin token, a malformed digest."""
from __future__ import annotations

import base64
import hashlib
import json

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from connector.certs.certificate import process_id
from connector.clearinghouse.entry import make_entry, sign_entry
from support.certs import certified_net, certify, verify
from support.identity import Member

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with certified_net(tmp_path_factory.mktemp("cert-attacks")) as n:
        n["bundle"] = certify(n)
        n["lion"] = Member(n["station"], "Lion Rock Mobility Data Co.")
        yield n


def claims_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))


def registrations(net) -> list[dict]:
    return net["station"].admin("GET", "/admin/certificates", expect=200)


def test_bytes_that_do_not_match_the_registered_digest_are_refused(net, tmp_path):
    tampered = tmp_path / "visits.csv"
    tampered.write_bytes(b"patient_id,age\nP1,41\nP2,51\n")
    out = verify(net, net["bundle"], "--data", str(tampered))
    assert out.returncode == 1
    assert "the data does not match the registered digest" in out.stderr


def test_a_certificate_signed_with_another_key_is_refused(net):
    token = net["bundle"]["certificate"]
    header = jwt.get_unverified_header(token)
    forged = jwt.encode(claims_of(token), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                        headers={"typ": header["typ"], "kid": header["kid"]})  # the station's kid, another key
    out = verify(net, {**net["bundle"], "certificate": forged})
    assert out.returncode == 1 and "bad signature" in out.stderr


def test_an_altered_certificate_is_refused(net):
    head, payload, sig = net["bundle"]["certificate"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "==="))
    claims["sha256"] = hashlib.sha256(b"other bytes").hexdigest()
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    out = verify(net, {**net["bundle"], "certificate": f"{head}.{altered}.{sig}"})
    assert out.returncode == 1 and "bad signature" in out.stderr


def test_a_log_entry_for_another_certificate_is_refused(net):
    pearl = net["pearl"]
    token = net["bundle"]["certificate"]
    entry = make_entry(process_id=process_id(token), event="dataset.certified", provider=pearl.participant_id,
                       consumer=pearl.participant_id, sender=pearl.participant_id,
                       timestamp=__import__("datetime").datetime.now(__import__("datetime").timezone.utc),
                       sha256=hashlib.sha256(b"another certificate").digest())
    other = sign_entry(entry, ec.generate_private_key(ec.SECP256R1()))
    out = verify(net, {**net["bundle"], "logEntry": other})
    assert out.returncode == 1 and "logs another certificate" in out.stderr


def test_a_revoked_certificate_is_refused_and_a_forged_revocation_list_does_not_hide_it(net, tmp_path):
    station, pearl = net["station"], net["pearl"]
    pearl.api("POST", "/assets", {"id": "withdrawn", "title": "Withdrawn", "contentType": "text/csv",
                                  "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
    bundle = certify(net, "withdrawn")
    serial = claims_of(bundle["certificate"])["serial"]
    station.admin("POST", f"/admin/certificates/{serial}/revoke", {"reason": "consent withdrawn"}, expect=200)
    out = verify(net, bundle, "--revocations", station.url + "/certificates/revocations")
    assert out.returncode == 1 and f"certificate {serial} is revoked" in out.stderr
    listed = httpx.get(station.url + "/certificates/revocations").text
    header = jwt.get_unverified_header(listed)
    empty = jwt.encode({**claims_of(listed), "revoked": []}, ec.generate_private_key(ec.SECP256R1()),
                       algorithm="ES256", headers={"typ": header["typ"], "kid": header["kid"]})
    (tmp_path / "forged.jwt").write_text(empty)
    out = verify(net, bundle, "--revocations", str(tmp_path / "forged.jwt"))
    assert out.returncode == 1 and "bad signature: the revocation list" in out.stderr


def test_replacing_another_participants_certificate_is_refused(net):
    station, lion = net["station"], net["lion"]
    serial = claims_of(net["bundle"]["certificate"])["serial"]
    before = registrations(net)
    resp = httpx.post(station.url + "/certificates/requests", timeout=20,
                      headers={"Authorization": f"Bearer {lion.token(station.url)}"},
                      json={"datasetId": "visits", "sha256": "0" * 64, "title": "Clinic visits", "replaces": serial})
    assert resp.status_code == 403, resp.text
    assert resp.json()["code"] == "NotTheOwner"
    assert "another participant's dataset" in resp.json()["error"]
    assert registrations(net) == before


def test_reading_another_participants_registration_is_refused(net):
    station, lion = net["station"], net["lion"]
    serial = claims_of(net["bundle"]["certificate"])["serial"]
    resp = httpx.get(f"{station.url}/certificates/requests/{serial}", timeout=20,
                     headers={"Authorization": f"Bearer {lion.token(station.url)}"})
    assert resp.status_code == 404 and "certificate" not in resp.json()


def test_another_participants_certificate_is_refused_as_ones_own(net):
    out = verify(net, net["bundle"], "--owner", net["harbour"].participant_id)
    assert out.returncode == 1 and "is for a dataset of" in out.stderr


def test_registering_an_unknown_dataset_is_refused(net):
    before = registrations(net)
    resp = net["pearl"].api("POST", "/assets/no-such-dataset/registration", expect=404)
    assert "no asset no-such-dataset" in resp["error"]
    assert registrations(net) == before
    missing = net["station"].admin("POST", "/admin/certificates/999999/approve", {}, expect=404)
    assert "no certificate request 999999" in missing["error"]


def test_approving_without_the_admin_token_is_refused(net):
    station, lion = net["station"], net["lion"]
    resp = httpx.post(station.url + "/certificates/requests", timeout=20,
                      headers={"Authorization": f"Bearer {lion.token(station.url)}"},
                      json={"datasetId": "lion-data", "sha256": "1" * 64, "title": "Lion data"})
    assert resp.status_code == 201, resp.text
    serial = resp.json()["serial"]
    own = httpx.post(f"{station.url}/admin/certificates/{serial}/approve", timeout=20, json={},
                     headers={"Authorization": f"Bearer {lion.token(station.url)}"})
    assert own.status_code == 401 and "admin token" in own.json()["error"]
    assert [r["status"] for r in registrations(net) if r["serial"] == serial] == ["pending"]


def test_a_malformed_digest_is_refused(net):
    station, lion = net["station"], net["lion"]
    before = registrations(net)
    resp = httpx.post(station.url + "/certificates/requests", timeout=20,
                      headers={"Authorization": f"Bearer {lion.token(station.url)}"},
                      json={"datasetId": "lion-data", "sha256": "<script>" * 40, "title": "Lion data"})
    assert resp.status_code == 400 and "64 lowercase hex digits" in resp.json()["error"]
    assert "<script>" not in resp.text
    assert registrations(net) == before


def test_an_entry_the_owner_logs_for_the_certificate_is_refused(net):
    """Only the station logs a certificate: the owner's own entry, really in the log with a valid
    inclusion proof, does not make a bundle that verifies."""
    import asyncio
    import datetime as dt
    import time

    from connector.clearinghouse.client import ClearingHouseClient
    from connector.identity.dat import ASSERTION_TYPE, DAT_SCOPE, client_assertion
    from connector.identity.keys import load_private_key

    pearl, station = net["pearl"], net["station"]
    token = net["bundle"]["certificate"]
    logged_by = claims_of(token)["loggedBy"]
    assert logged_by != pearl.participant_id
    assert json.loads(base64.urlsafe_b64decode(net["bundle"]["logEntry"].split(".")[1] + "==="))["sender"] == logged_by
    record = httpx.get(f"{station.url}/participants/{logged_by}").json()  # where the clearing house looked it up
    assert record["status"] == "active" and "BEGIN CERTIFICATE" in record["certificate"]
    key = load_private_key(pearl.directory / "keys" / "node.key")
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "scope": DAT_SCOPE,
            "client_assertion": client_assertion(pearl.participant_id, key, station.url + "/token", now=time.time()),
            "audience": net["ch_url"]}
    dat = httpx.post(station.url + "/token", data=form, timeout=10).json()["access_token"]
    # the process is bound to its parties (the owner and the station), so the owner sends as one of them
    entry = make_entry(process_id=process_id(token), event="dataset.certified", provider=pearl.participant_id,
                       consumer=logged_by, sender=pearl.participant_id,
                       timestamp=dt.datetime.now(dt.timezone.utc), sha256=hashlib.sha256(token.encode()).digest())
    jws = sign_entry(entry, key)

    async def log_it():  # noqa: ANN202
        async with ClearingHouseClient(net["ch_url"], net["ch_key"], authorization=f"Bearer {dat}") as ch:
            return await ch.submit(jws)

    receipt = asyncio.run(log_it())  # the clearing house accepts it: the owner is a party and the sender
    out = verify(net, {**net["bundle"], "logEntry": jws, "receipt": receipt.to_json()})
    assert out.returncode == 1
    assert "not logged by the station that signed the certificate" in out.stderr
