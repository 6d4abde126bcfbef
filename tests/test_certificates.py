"""Issue 14 item 6: dataset registration certificates, with real processes (a station, a clearing
house in station mode, two enrolled nodes): register, operator review, issue, log with an inclusion
proof, advertise in the catalog, verify offline, revoke, re-register a new version."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from connector.certs.certificate import CertificateError, check_revocations

from support.certs import DATA, Upstream, certified_net, certify, cli, verify

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with certified_net(tmp_path_factory.mktemp("certs")) as n:
        yield n


def serial_of(bundle: dict) -> int:
    return json.loads(base64.urlsafe_b64decode(bundle["certificate"].split(".")[1] + "==="))["serial"]


def test_register_review_issue_log_advertise_and_verify_offline(net):
    pearl, station, harbour = net["pearl"], net["station"], net["harbour"]
    out = cli("asset", "register", str(pearl.directory), "visits")
    assert out.returncode == 0, out.stderr
    assert "waiting for the station's review" in out.stdout
    pending = station.admin("GET", "/admin/certificates?status=pending", expect=200)
    mine = [r for r in pending if r["participantId"] == pearl.participant_id and r["datasetId"] == "visits"]
    assert mine and mine[-1]["certificate"] is None
    request = mine[-1]
    assert request["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert request["title"] == "Clinic visits" and request["categories"] == ["pd:Age"]
    # before the review: no certificate, nothing advertised
    waiting = cli("asset", "certificate", str(pearl.directory), "visits")
    assert waiting.returncode == 3 and "pending" in waiting.stdout
    station.admin("POST", f"/admin/certificates/{request['serial']}/approve", {}, expect=200)
    path = net["base"] / "visits.cert.json"
    got = cli("asset", "certificate", str(pearl.directory), "visits", "--out", str(path))
    assert got.returncode == 0, got.stderr
    ok = verify(net, path, "--data", str(pearl.directory / "data" / "visits.csv"), "--owner", pearl.participant_id,
                "--revocations", station.url + "/certificates/revocations")
    assert ok.returncode == 0, ok.stderr
    assert f"certificate {request['serial']} for dataset visits" in ok.stdout and "the data matches" in ok.stdout
    # the catalog Harbour Lab reads carries it, and it verifies from there too
    visits = next(d for d in harbour.catalog(pearl)["catalog"]["dataset"] if d["@id"] == "visits")
    advertised = visits["https://w3id.org/hks/registrationCertificate"]["@value"]
    assert advertised == json.loads(path.read_text())
    assert verify(net, advertised, "--dataset", "visits").returncode == 0
    old_wire = next(d for d in harbour.catalog(pearl, "2024-1")["catalog"]["dataset"] if d["@id"] == "visits")
    assert old_wire["https://w3id.org/hks/registrationCertificate"]["@value"] == advertised  # DSP 2024-1 too
    # and the self-description names it by its SHA-256 (the one the clearing house logged)
    sd = httpx.get(pearl.url + "/.well-known/self-description", headers={"Accept": "application/n-triples"}).text
    cert_sha = hashlib.sha256(advertised["certificate"].encode()).hexdigest()
    assert f'<https://w3id.org/hks/ns#registrationCertificate> "{cert_sha}"' in sd


def test_a_revoked_certificate_fails_verification_with_the_revocation_list(net):
    pearl, station = net["pearl"], net["station"]
    pearl.api("POST", "/assets", {"id": "old-visits", "title": "Old visits", "contentType": "text/csv",
                                  "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
    bundle = certify(net, "old-visits")
    serial = serial_of(bundle)
    assert verify(net, bundle, "--revocations", station.url + "/certificates/revocations").returncode == 0
    revoked = station.admin("POST", f"/admin/certificates/{serial}/revoke", {"reason": "withdrawn"}, expect=200)
    assert revoked["status"] == "revoked"
    listed = httpx.get(station.url + "/certificates/revocations").text
    (net["base"] / "revocations.jwt").write_text(listed)
    out = verify(net, bundle, "--revocations", str(net["base"] / "revocations.jwt"))
    assert out.returncode == 1 and f"certificate {serial} is revoked" in out.stderr
    # without the list the signature and the proof still hold (the list is what tells revocation)
    assert verify(net, bundle).returncode == 0
    again = station.admin("POST", f"/admin/certificates/{serial}/revoke", {}, expect=409)
    assert "only an issued certificate can be revoked" in again["error"]


def test_re_registering_a_new_version_replaces_the_old_certificate(net):
    pearl, station = net["pearl"], net["station"]
    pearl.api("POST", "/assets", {"id": "versioned", "title": "Versioned", "contentType": "text/csv",
                                  "dataAddress": {"type": "file", "path": "versioned.csv"}}, expect=201)
    data = pearl.directory / "data" / "versioned.csv"
    data.write_bytes(b"v,1\n")
    first = certify(net, "versioned")
    data.write_bytes(b"v,2\n")
    second = certify(net, "versioned")
    out = verify(net, second, "--data", str(data))
    assert out.returncode == 0, out.stderr
    first_serial = serial_of(first)
    assert f"replaces {first_serial}" in out.stdout
    old = [r for r in station.admin("GET", "/admin/certificates", expect=200) if r["serial"] == first_serial][0]
    assert old["status"] == "superseded"
    stale = verify(net, first, "--data", str(data))  # the old certificate does not vouch for the new bytes
    assert stale.returncode == 1 and "does not match the registered digest" in stale.stderr
    assert pearl.api("GET", "/assets/versioned/certificate", expect=200) == second


def test_a_rejected_request_issues_nothing(net):
    pearl, station = net["pearl"], net["station"]
    pearl.api("POST", "/assets", {"id": "rejected", "title": "Rejected", "contentType": "text/csv",
                                  "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
    doc = pearl.api("POST", "/assets/rejected/registration", expect=200)
    station.admin("POST", f"/admin/certificates/{doc['request']}/reject", {"reason": "title misleading"}, expect=200)
    out = cli("asset", "certificate", str(pearl.directory), "rejected")
    assert out.returncode == 1 and "rejected (title misleading)" in out.stdout
    pearl.api("GET", "/assets/rejected/certificate", expect=404)
    again = station.admin("POST", f"/admin/certificates/{doc['request']}/approve", {}, expect=409)
    assert "is rejected, not pending" in again["error"]


def test_an_http_upstream_is_registered_by_the_digest_of_a_snapshot(net):
    pearl, station = net["pearl"], net["station"]
    body = b"district,visits\nTianhe,120\nYuexiu,80\n"
    upstream = Upstream(body)
    try:
        for asset, path in (("live", "data"), ("broken", "broken")):
            pearl.api("POST", "/assets", {"id": asset, "title": asset, "contentType": "text/csv",
                                          "dataAddress": {"type": "http", "url": f"{upstream.url}/{path}"}}, expect=201)
        doc = pearl.api("POST", "/assets/live/registration", expect=200)
        assert doc["sha256"] == hashlib.sha256(body).hexdigest()
        before = station.admin("GET", "/admin/certificates", expect=200)
        failed = pearl.api("POST", "/assets/broken/registration", expect=502)
        assert failed["error"] == "the snapshot of the asset's upstream failed"  # no host, no port
        assert station.admin("GET", "/admin/certificates", expect=200) == before
    finally:
        upstream.stop()


def certified_copy(net, asset_id: str) -> dict:
    """A new asset of Pearl River over visits.csv, certified: its bundle."""
    net["pearl"].api("POST", "/assets", {"id": asset_id, "title": asset_id, "contentType": "text/csv",
                                         "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
    return certify(net, asset_id)


def _claims(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))


def test_a_stale_revocation_list_is_refused_so_an_old_list_cannot_hide_a_later_revocation(net):
    station = net["station"]
    bundle = certified_copy(net, "fresh-visits")
    old = httpx.get(station.url + "/certificates/revocations").text
    first = _claims(old)
    assert first["number"] >= 1 and first["nextUpdate"] > first["issuedAt"]
    (net["base"] / "old-list.jwt").write_text(old)
    # the same list is served until half its life has passed (one list per period, not per request)
    assert httpx.get(station.url + "/certificates/revocations").text == old
    ok = verify(net, bundle, "--revocations", str(net["base"] / "old-list.jwt"))
    assert ok.returncode == 0 and f"revocation list {first['number']}" in ok.stdout, ok.stderr
    station.admin("POST", f"/admin/certificates/{serial_of(bundle)}/revoke", {"reason": "superseded"}, expect=200)
    new = _claims(httpx.get(station.url + "/certificates/revocations").text)
    assert new["number"] > first["number"] and serial_of(bundle) in {r["serial"] for r in new["revoked"]}
    # the old list, replayed while it is current, still hides the revocation: what bounds it is nextUpdate
    assert verify(net, bundle, "--revocations", str(net["base"] / "old-list.jwt")).returncode == 0
    stale = verify(net, bundle, "--revocations", str(net["base"] / "old-list.jwt"), "--at", first["nextUpdate"])
    assert stale.returncode == 1 and len(stale.stderr.strip().splitlines()) == 1, stale.stderr
    assert f"the revocation list (number {first['number']}) is stale" in stale.stderr
    assert f"next update was due at {first['nextUpdate']}" in stale.stderr
    # as of a time before the list was issued: refused too
    early = verify(net, bundle, "--revocations", str(net["base"] / "old-list.jwt"), "--at", "2020-01-01T00:00:00Z")
    assert early.returncode == 1 and "after the time of the check" in early.stderr
    bad_at = verify(net, bundle, "--revocations", str(net["base"] / "old-list.jwt"), "--at", "yesterday")
    assert bad_at.returncode == 1 and "is not an ISO 8601 time" in bad_at.stderr


def test_a_revocation_list_with_tampered_times_is_refused(net):
    station = net["station"]
    bundle = certified_copy(net, "tamper-visits")
    token = httpx.get(station.url + "/certificates/revocations").text
    header, payload, signature = token.split(".")
    claims = _claims(token)
    for change in ({"nextUpdate": "2099-01-01T00:00:00Z"}, {"issuedAt": "2099-01-01T00:00:00Z"},
                   {"number": claims["number"] + 1000}):
        forged = base64.urlsafe_b64encode(json.dumps({**claims, **change}).encode()).rstrip(b"=").decode()
        path = net["base"] / "forged-list.jwt"
        path.write_text(f"{header}.{forged}.{signature}")
        out = verify(net, bundle, "--revocations", str(path))
        assert out.returncode == 1 and "bad signature: the revocation list does not verify" in out.stderr, (change, out)
    # a list without its number and times (as the station signed them before) is refused
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": "k1", "alg": "ES256"}
    old_style = jwt.encode({"iss": "s", "issuedAt": "2026-01-01T00:00:00Z", "revoked": []}, key, algorithm="ES256",
                           headers={"typ": "hks-cert-revocations+jwt", "kid": "k1"})
    with pytest.raises(CertificateError, match="has no number"):
        check_revocations(old_style, {"keys": [jwk]}, "s", datetime(2026, 1, 2, tzinfo=timezone.utc))
    backwards = jwt.encode({"iss": "s", "number": 3, "issuedAt": "2026-01-02T00:00:00Z",
                            "nextUpdate": "2026-01-01T00:00:00Z", "revoked": []}, key, algorithm="ES256",
                           headers={"typ": "hks-cert-revocations+jwt", "kid": "k1"})
    with pytest.raises(CertificateError, match="nextUpdate is not after its issuedAt"):
        check_revocations(backwards, {"keys": [jwk]}, "s", datetime(2026, 1, 2, tzinfo=timezone.utc))


def test_the_station_logs_a_certificate_approved_while_the_clearing_house_is_down_once_it_is_back(net):
    """The entry is written with the approval and sent by the station's retry loop: while the
    clearing house is away nothing is advertised (the node's status is "logging"); once it is back
    the same entry is logged and the bundle verifies."""
    import time

    from support.certs import refreshed

    pearl, station, ch = net["pearl"], net["station"], net["ch"]
    pearl.api("POST", "/assets", {"id": "while-down", "title": "While down", "contentType": "text/csv",
                                  "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
    doc = pearl.api("POST", "/assets/while-down/registration", expect=200)
    ch.stop()
    try:
        station.admin("POST", f"/admin/certificates/{doc['request']}/approve", {}, expect=200)
        deadline = time.monotonic() + 30
        while True:
            entry = next(e for e in station.admin("GET", "/admin/certificates/log", expect=200)["entries"]
                         if e["serial"] == doc["request"])
            if entry["attempts"] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert entry["state"] == "pending" and entry["attempts"] >= 1 and entry["lastError"], entry
        assert pearl.api("POST", "/assets/while-down/registration/refresh", expect=200)["status"] == "logging"
        pearl.api("GET", "/assets/while-down/certificate", expect=404)
        metrics = httpx.get(station.url + "/metrics", headers={"Authorization": f"Bearer {station.admin_token}"}).text
        assert 'hks_station_certificate_log_entries{state="pending"}' in metrics
    finally:
        ch.start()
    done = refreshed(pearl, "while-down", seconds=60)
    assert done["status"] == "approved", done
    listing = station.admin("GET", "/admin/certificates/log?state=sent", expect=200)
    sent = next(e for e in listing["entries"] if e["serial"] == doc["request"])
    assert sent["leafIndex"] == done["bundle"]["receipt"]["leafIndex"]
    assert listing["counts"]["dead"] == 0
    out = verify(net, done["bundle"])
    assert out.returncode == 0, out.stderr
