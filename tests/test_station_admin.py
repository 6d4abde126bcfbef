"""The station authority as a process: `connector station init|run`, RFC 8414 metadata and
JWKS, the admin API (enrol, list, get, revoke) with its bad input, the public participant
record the clearing house reads, the token endpoint's refusals, and `connector init --station`."""
import json
import os
import stat
import subprocess
import sys
import time
import tomllib

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from connector.identity.dat import client_assertion, token_request_form
from connector.identity.pki import make_csr
from support.nodes import StationProcess, free_port

pytestmark = pytest.mark.slow


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "connector", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    base = tmp_path_factory.mktemp("station")
    port = free_port()
    result = cli("station", "init", str(base / "st"), "--port", str(port))
    assert result.returncode == 0, result.stderr
    proc = StationProcess(base / "st", init=False).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_station_init_writes_private_files_0600(station):
    d = station.directory
    for private in (d / "admin.token", d / "station.toml", d / "keys" / "ca.key",
                    *(d / "keys").glob("token-*.key")):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    assert "BEGIN CERTIFICATE" in (d / "ca.crt").read_text()
    again = cli("station", "init", str(d))
    assert again.returncode == 2 and "already holds a station" in again.stderr
    assert station.admin_token not in (d / "station.log").read_text()


def test_station_config_errors_are_one_line(tmp_path):
    assert cli("station", "init", str(tmp_path / "s")).returncode == 0
    result = cli("station", "run", str(tmp_path / "s"), env={"CONNECTOR_TOKENS_LIFETIME_SECONDS": "5"})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "[tokens] lifetime_seconds" in result.stderr
    result = cli("station", "run", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "no station.toml" in result.stderr
    bad = cli("station", "init", str(tmp_path / "t"), "--token-alg", "HS256")
    assert bad.returncode == 2 and "--token-alg" in bad.stderr and not (tmp_path / "t" / "station.toml").exists()


def test_metadata_and_jwks(station):
    meta = httpx.get(station.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert meta["issuer"] == station.url
    assert meta["token_endpoint"] == station.url + "/token" and meta["jwks_uri"] == station.url + "/jwks.json"
    assert "idsc:IDS_CONNECTOR_ATTRIBUTES_ALL" in meta["scopes_supported"]
    assert meta["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    jwks = httpx.get(meta["jwks_uri"], timeout=10).json()
    assert [k["alg"] for k in jwks["keys"]] == ["ES256"]
    assert all("d" not in k for k in jwks["keys"])  # never a private member


def csr(name="Org"):
    key = ec.generate_private_key(ec.SECP256R1())
    return key, make_csr(key, name, ["127.0.0.1"]).decode()


def participants(station):
    return station.admin("GET", "/admin/participants", expect=200)


@pytest.mark.parametrize("body,status,needle", [
    ({"jurisdiction": "HK", "csr": "x"}, 400, "name"),
    ({"name": "Org", "jurisdiction": "Hong Kong", "csr": csr()[1]}, 400, "jurisdiction"),
    ({"name": "Org", "jurisdiction": "HK", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"}, 400, "csr: the CSR is not"),
    ({"name": "Org", "jurisdiction": "HK", "csr": make_csr(ec.generate_private_key(ec.SECP384R1()), "Org").decode()},
     400, "P-256"),
    ({"name": "Org", "jurisdiction": "HK", "csr": csr()[1], "role": "admin"}, 400, "unknown field 'role'"),
    ({"name": "Org", "jurisdiction": "HK", "csr": csr()[1], "securityProfile": "idsc:SUPER"}, 400, "securityProfile"),
    ({"name": "Org", "jurisdiction": "HK", "csr": csr()[1], "connectorUrl": "ftp://x"}, 400, "connectorUrl"),
    ({"name": "Org", "jurisdiction": "HK", "csr": csr()[1], "membership": []}, 400, "membership"),
])
def test_enrolment_bad_input_is_named_and_changes_nothing(station, body, status, needle):
    before = participants(station)
    resp = httpx.post(station.url + "/admin/participants", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {station.admin_token}"})
    assert resp.status_code == status and needle in resp.json()["error"], resp.text
    assert participants(station) == before


def test_admin_api_needs_the_admin_token(station):
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token-wrong-token"}):
        for method, path in (("GET", "/admin/participants"), ("POST", "/admin/participants")):
            resp = httpx.request(method, station.url + path, headers=headers, json={}, timeout=10)
            assert resp.status_code == 401 and "admin token" in resp.json()["error"]
    resp = httpx.post(station.url + "/admin/participants", content=b"{" * 70000, timeout=10,
                      headers={"Authorization": f"Bearer {station.admin_token}"})
    assert resp.status_code == 413
    resp = httpx.post(station.url + "/admin/participants", content=b"not json", timeout=10,
                      headers={"Authorization": f"Bearer {station.admin_token}"})
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]


def test_enrol_list_get_revoke_and_the_public_record(station):
    key, request = csr("Lion Rock Mobility Data Co.")
    created = station.admin("POST", "/admin/participants", {"name": "Lion Rock Mobility Data Co.",
                                                            "jurisdiction": "HK", "csr": request,
                                                            "connectorUrl": "http://127.0.0.1:9999"}, expect=201)
    pid = created["participantId"]
    assert "BEGIN CERTIFICATE" in created["caCertificate"]
    dup = httpx.post(station.url + "/admin/participants", timeout=10, headers={"Authorization": f"Bearer {station.admin_token}"},
                     json={"name": "Again", "jurisdiction": "HK", "csr": request})
    assert dup.status_code == 409 and pid in dup.json()["error"]
    assert pid in [p["participantId"] for p in participants(station)]
    assert station.admin("GET", f"/admin/participants/{pid}", expect=200)["status"] == "active"
    public = httpx.get(f"{station.url}/participants/{pid}", timeout=10)  # no admin token: public
    assert public.status_code == 200
    record = public.json()
    assert set(record) == {"participantId", "organisation", "jurisdiction", "status", "securityProfile", "membership",
                           "connectorUrl", "certificate", "certificateSha256", "enrolledAt", "revokedAt"}
    assert record["status"] == "active" and record["organisation"] == "Lion Rock Mobility Data Co."
    assert record["connectorUrl"] == "http://127.0.0.1:9999/" and record["membership"] == ["hks:StationMember"]
    assert httpx.get(f"{station.url}/participants/urn:nobody", timeout=10).status_code == 404
    revoked = station.admin("POST", f"/admin/participants/{pid}/revoke", {"reason": "left the station"}, expect=200)
    assert revoked["status"] == "revoked" and revoked["revokedAt"]
    assert httpx.get(f"{station.url}/participants/{pid}", timeout=10).json()["status"] == "revoked"
    assert station.admin("POST", f"/admin/participants/{pid}/revoke", None, expect=200)["status"] == "revoked"
    assert [p["participantId"] for p in station.admin("GET", "/admin/participants?status=revoked")] == [pid]
    assertion = client_assertion(pid, key, station.url + "/token", now=time.time())
    refused = httpx.post(station.url + "/token", data=token_request_form(assertion, station.url), timeout=10)
    assert refused.status_code == 401 and "revoked" in refused.json()["error_description"]


def test_token_endpoint_refusals(station):
    key, request = csr("Merlion Analytics")
    pid = station.admin("POST", "/admin/participants", {"name": "Merlion Analytics", "jurisdiction": "SG",
                                                        "csr": request, "connectorUrl": "http://127.0.0.1:9998"},
                        expect=201)["participantId"]
    good = token_request_form(client_assertion(pid, key, station.url + "/token", now=time.time()), station.url)
    cases = [
        ({k: v for k, v in good.items() if k != "audience"}, 400, "invalid_target"),  # no recipient named
        ({**good, "audience": "idsc:IDS_CONNECTORS_ALL"}, 400, "invalid_target"),  # everyone: off by default
        ({**good, "audience": "http://127.0.0.1:1/elsewhere"}, 400, "invalid_target"),  # not a known recipient
        ({**good, "resource": "urn:other"}, 400, "invalid_target"),  # two different recipients
        ({**good, "grant_type": "password"}, 400, "unsupported_grant_type"),
        ({k: v for k, v in good.items() if k != "scope"}, 400, "invalid_scope"),
        ({**good, "client_assertion": "x.y.z"}, 401, "invalid_client"),
        ({**good, "client_assertion": client_assertion(pid, ec.generate_private_key(ec.SECP256R1()),
                                                         station.url + "/token", now=time.time())}, 401, "invalid_client"),
        ({**good, "client_assertion": client_assertion("AA:" * 19 + "AA:keyid:" + "BB:" * 19 + "BB", key,
                                                         station.url + "/token", now=time.time())}, 401, "invalid_client"),
    ]
    for form, status, error in cases:
        resp = httpx.post(station.url + "/token", data=form, timeout=10)
        assert resp.status_code == status and resp.json()["error"] == error, resp.text
        assert resp.headers["cache-control"] == "no-store"
    resp = httpx.post(station.url + "/token", json=good, timeout=10)
    assert resp.status_code == 400 and "x-www-form-urlencoded" in resp.json()["error_description"]
    ok = httpx.post(station.url + "/token", data=good, timeout=10)
    assert ok.status_code == 200 and ok.json()["token_type"] == "bearer"
    import jwt
    claims = jwt.decode(ok.json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == pid and claims["jurisdiction"] == "SG" and claims["organisation"] == "Merlion Analytics"
    assert claims["aud"] == [station.url]  # exactly the recipient asked for
    by_resource = {**{k: v for k, v in good.items() if k != "audience"}, "resource": pid,
                   "client_assertion": client_assertion(pid, key, station.url + "/token", now=time.time())}
    resp = httpx.post(station.url + "/token", data=by_resource, timeout=10)  # RFC 8707 resource: a participant
    assert resp.status_code == 200 and jwt.decode(resp.json()["access_token"],
                                                  options={"verify_signature": False})["aud"] == [pid]
    assert claims["@type"] == "ids:DatPayload" and len(claims["transportCertsSha256"][0]) == 64
    assert jwt.get_unverified_header(ok.json()["access_token"])["alg"] == "ES256"
    assert ok.json()["access_token"] not in (station.directory / "station.log").read_text()


def test_connector_init_enrols_through_the_station(station, tmp_path):
    node = tmp_path / "harbour"
    result = cli("init", str(node), "--name", "Harbour University Research Lab", "--port", str(free_port()),
                 "--station", station.url, "--jurisdiction", "HK",
                 env={"CONNECTOR_STATION_ADMIN_TOKEN": station.admin_token})
    assert result.returncode == 0, result.stderr
    cfg = tomllib.loads((node / "connector.toml").read_text())
    assert cfg["identity"] == {"mode": "station", "station_url": station.url}
    pid = cfg["node"]["participant_id"]
    assert ":keyid:" in pid and pid in result.stdout
    for private in (node / "connector.toml", node / "keys" / "node.key"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (node / "keys" / "node.crt").is_file() and (node / "keys" / "station-ca.crt").is_file()
    assert json.loads((node / "keys" / "participant.json").read_text())["jurisdiction"] == "HK"
    assert station.admin_token not in result.stdout + result.stderr
    record = httpx.get(f"{station.url}/participants/{pid}", timeout=10).json()
    assert record["connectorUrl"] == cfg["node"]["public_url"] + "/"


@pytest.mark.parametrize("args,env,needle", [
    (["--jurisdiction", "HK", "--admin-token", "wrong-token-wrong-token-wrong-token"], {}, "refused the enrolment (401)"),
    (["--admin-token", "x" * 40], {}, "--jurisdiction is required"),
    (["--jurisdiction", "HK"], {}, "--admin-token"),
    (["--jurisdiction", "HK", "--shared-secret", "s" * 20], {"CONNECTOR_STATION_ADMIN_TOKEN": "t" * 40},
     "--shared-secret cannot be combined"),
])
def test_connector_init_enrolment_errors_are_one_line_and_leave_nothing(station, tmp_path, args, env, needle):
    node = tmp_path / "n"
    result = cli("init", str(node), "--name", "Org", "--station", station.url, *args,
                 env={"CONNECTOR_STATION_ADMIN_TOKEN": "", **env})
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert not node.exists()


def test_connector_init_with_an_unreachable_station(tmp_path):
    result = cli("init", str(tmp_path / "n"), "--name", "Org", "--station", f"http://127.0.0.1:{free_port()}",
                 "--jurisdiction", "HK", "--admin-token", "t" * 40)
    assert result.returncode == 2 and "cannot reach the station" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "n").exists()


def test_a_node_in_station_mode_needs_its_enrolment_files(station, tmp_path):
    node = tmp_path / "h"
    assert cli("init", str(node), "--name", "Org", "--port", str(free_port()), "--station", station.url,
               "--jurisdiction", "HK", env={"CONNECTOR_STATION_ADMIN_TOKEN": station.admin_token}).returncode == 0
    (node / "keys" / "node.crt").rename(node / "keys" / "node.crt.bak")
    result = cli("run", str(node))
    assert result.returncode == 2 and "node.crt is missing" in result.stderr
    (node / "keys" / "node.crt.bak").rename(node / "keys" / "node.crt")
    result = cli("run", str(node), env={"CONNECTOR_NODE_PARTICIPANT_ID": "urn:hks:participant:me"})
    assert result.returncode == 2 and "must be the certificate's id" in result.stderr
    result = cli("run", str(node), env={"CONNECTOR_TLS_ENABLED": "true"})
    assert result.returncode == 2 and "[node] public_url must be https://" in result.stderr
    result = cli("dev-token", str(node), "--participant", "x")
    assert result.returncode == 2 and "dev-shared-secret" in result.stderr


def test_a_node_whose_self_description_violates_the_shapes_refuses_to_start(station, tmp_path):
    node = tmp_path / "bad"
    assert cli("init", str(node), "--name", "Org With Bad Shapes", "--port", str(free_port()), "--station", station.url,
               "--jurisdiction", "HK", env={"CONNECTOR_STATION_ADMIN_TOKEN": station.admin_token}).returncode == 0
    record = json.loads((node / "keys" / "participant.json").read_text())
    (node / "keys" / "participant.json").write_text(json.dumps({**record, "jurisdiction": "hong kong"}))
    # the station unreachable: the description can only be built from the enrolment record
    result = cli("run", str(node), env={"CONNECTOR_IDENTITY_STATION_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.returncode == 2, result.stderr
    assert "does not conform to the station's shapes" in result.stderr and "hks:establishedIn" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sans,url", [(["node.example.hk"], "https://node.example.hk:8443"),
                                      (["127.0.0.1", "localhost"], "http://127.0.0.1:8181"),
                                      ([], None)])
def test_csr_alternative_names_of_the_connector_host_are_certified(station, sans, url):
    """The positive side of tests/security/test_station_inputs.py's SAN rule."""
    from cryptography import x509

    key = ec.generate_private_key(ec.SECP256R1())
    body = {"name": f"Good SAN {sans} {url}", "jurisdiction": "HK", "csr": make_csr(key, "Org", sans).decode(),
            **({"connectorUrl": url} if url else {})}
    resp = httpx.post(station.url + "/admin/participants", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {station.admin_token}"})
    assert resp.status_code == 201, resp.text
    cert = x509.load_pem_x509_certificate(resp.json()["certificate"].encode())
    if sans:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(str(getattr(n, "value", n)) for n in names) == sorted(sans)
