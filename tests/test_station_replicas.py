"""Two station processes on one PostgreSQL database (issue 16, Must 3): what one process enrols,
revokes or registers, the other knows at its next request; a client assertion or a DAT used at
one process is refused at the other; concurrent enrolments through both keep the station's
rules (one key, one name); the revocation feed is the same, in order and without gaps, on both.
Real processes over HTTP, a fresh PostgreSQL database per test."""
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from connector.identity import jose
from connector.identity.dat import client_assertion, token_request_form
from connector.identity.keys import load_any_private_key
from connector.identity.pki import make_csr
from support.nodes import NodeProcess, StationProcess, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def stations(tmp_path, pg_url):
    """Two processes of one station (same directory contents: CA, token keys, admin token, issuer),
    each on its own port, sharing one PostgreSQL database; as behind a load balancer."""
    env = {"CONNECTOR_DATABASE_URL": pg_url}
    first = StationProcess(tmp_path / "one", env=env)
    shutil.copytree(first.directory, tmp_path / "two")
    port = free_port()
    second = StationProcess(tmp_path / "two", init=False, env={**env, "CONNECTOR_STATION_LISTEN_PORT": str(port)})
    second.port, second.url = port, f"http://127.0.0.1:{port}"  # the issuer stays the first one's public URL
    second.log_path = tmp_path / "two" / "station.log"
    first.start()
    second.start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def enrol(station, name, key=None, expect=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    resp = httpx.post(station.url + "/admin/participants", timeout=30,
                      headers={"Authorization": f"Bearer {station.admin_token}"},
                      json={"name": name, "jurisdiction": "HK", "csr": make_csr(key, name, ["127.0.0.1"]).decode(),
                            "connectorUrl": "http://127.0.0.1:9999"})
    if expect is not None:
        assert resp.status_code == expect, resp.text
    return key, resp


def ask_token(station, form):
    return httpx.post(station.url + "/token", data=form, timeout=30)


def enrolled_form(station, name):
    """Enrol through `station`; the participant id, its key and a token request (for the station itself)."""
    issuer = station.settings.issuer
    key, resp = enrol(station, name, expect=201)
    pid = resp.json()["participantId"]
    return pid, key, token_request_form(client_assertion(pid, key, issuer + "/token", now=time.time()), issuer)


def test_an_assertion_used_at_one_station_process_is_refused_at_the_other(stations):
    first, second = stations
    _, _, form = enrolled_form(first, "Lion Rock Mobility Data Co.")
    ok = ask_token(second, form)  # enrolled through the first process, known to the second
    assert ok.status_code == 200, ok.text
    replayed = ask_token(first, form)
    assert replayed.status_code == 401
    assert "replayed client assertion" in replayed.json()["error_description"]
    assert ask_token(second, form).status_code == 401  # and at the process that issued it


def test_a_dat_jti_bound_at_one_station_process_is_refused_for_another_token_at_the_other(stations):
    first, second = stations
    _, _, form = enrolled_form(first, "Harbour University Research Lab")
    one = ask_token(first, form).json()["access_token"]  # a real DAT for the station's registry
    # another token with the same jti, signed with the station's own key (as if the key had leaked
    # or a token were re-minted): whoever presents it second must be refused, at any process
    skey = load_any_private_key(sorted((first.directory / "keys").glob("token-*.key"))[-1])
    claims = {**jwt.decode(one, options={"verify_signature": False}), "organisation": "someone else"}
    other = jwt.encode(claims, skey, algorithm="ES256", headers={"kid": jose.signing_jwk(skey)["kid"], "typ": "at+jwt"})
    search = "/registry/search?q=anything"
    assert httpx.get(first.url + search, headers={"Authorization": f"Bearer {one}"}, timeout=30).status_code == 200
    again = httpx.get(second.url + search, headers={"Authorization": f"Bearer {one}"}, timeout=30)
    assert again.status_code == 200  # the same token, reused by its holder: fine at either process
    forged = httpx.get(second.url + search, headers={"Authorization": f"Bearer {other}"}, timeout=30)
    assert forged.status_code == 401 and "jti" in forged.text.lower(), forged.text


def test_a_revocation_at_one_station_process_holds_at_the_other(stations):
    first, second = stations
    issuer = first.settings.issuer
    key, resp = enrol(second, "Merlion Analytics", expect=201)
    pid = resp.json()["participantId"]
    assert httpx.get(f"{first.url}/participants/{pid}", timeout=30).json()["status"] == "active"
    second.admin("POST", f"/admin/participants/{pid}/revoke", {"reason": "left"}, expect=200)
    assert httpx.get(f"{first.url}/participants/{pid}", timeout=30).json()["status"] == "revoked"
    refused = ask_token(first, token_request_form(client_assertion(pid, key, issuer + "/token", now=time.time()), issuer))
    assert refused.status_code == 401 and "revoked" in refused.json()["error_description"]
    feed = httpx.get(first.url + "/revocations?since=0", timeout=30).json()
    assert [r["participantId"] for r in feed["revoked"]] == [pid]
    # revoking again through the first process: no second feed entry
    assert first.admin("POST", f"/admin/participants/{pid}/revoke", None, expect=200)["status"] == "revoked"
    assert httpx.get(second.url + "/revocations?since=0", timeout=30).json() == feed


def test_a_dat_one_process_has_verified_is_refused_there_once_the_other_revokes(stations):
    """The first process keeps the DATs it verified (no database work per search); a revocation made at
    the second is read at the first's next request, before the token is taken."""
    first, second = stations
    pid, _, form = enrolled_form(first, "Kowloon Clinical Data Office")
    token = ask_token(first, form).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    for _ in range(2):  # verified, then from the first process's cache
        assert httpx.get(first.url + "/registry/search?q=anything", headers=bearer, timeout=30).status_code == 200
    second.admin("POST", f"/admin/participants/{pid}/revoke", {"reason": "left"}, expect=200)
    refused = httpx.get(first.url + "/registry/search?q=anything", headers=bearer, timeout=30)
    assert refused.status_code == 401 and "revoked" in refused.text, refused.text


def test_concurrent_enrolments_through_both_processes_keep_one_key_one_name_and_one_feed(stations):
    first, second = stations
    key = ec.generate_private_key(ec.SECP256R1())
    with ThreadPoolExecutor(8) as pool:
        same_key = list(pool.map(lambda st: enrol(st, f"Same Key Ltd {st.port}", key)[1], [first, second] * 2))
        same_name = list(pool.map(lambda st: enrol(st, "Kowloon Bay Logistics")[1], [first, second] * 2))
    assert sorted(r.status_code for r in same_key) == [201, 409, 409, 409], [r.text for r in same_key]
    assert sorted(r.status_code for r in same_name) == [201, 409, 409, 409], [r.text for r in same_name]
    assert {r.json()["code"] for r in same_name if r.status_code == 409} == {"DuplicateName"}
    names = ["Tsing Yi Energy", "Sha Tin Clinic", "Tai Po Labs", "Sai Kung Marine", "Tuen Mun Port", "Yuen Long Farms"]
    with ThreadPoolExecutor(6) as pool:
        pids = [r.json()["participantId"] for _, r in pool.map(
            lambda i: enrol((first, second)[i % 2], names[i], expect=201), range(len(names)))]
        list(pool.map(lambda i: (first, second)[i % 2].admin("POST", f"/admin/participants/{pids[i]}/revoke", None,
                                                              expect=200), range(len(pids))))
    feeds = [httpx.get(st.url + "/revocations?since=0", timeout=30).json() for st in (first, second)]
    assert feeds[0] == feeds[1]
    assert sorted(r["participantId"] for r in feeds[0]["revoked"]) == sorted(pids)
    seqs = [r["seq"] for r in feeds[0]["revoked"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    listed = [{p["participantId"]: p["status"] for p in st.admin("GET", "/admin/participants", expect=200)}
              for st in (first, second)]
    assert listed[0] == listed[1] and all(listed[0][p] == "revoked" for p in pids)


def test_a_self_description_registered_at_one_station_process_is_found_at_the_other(stations, tmp_path):
    first, second = stations
    node = NodeProcess(tmp_path / "pearl", "Pearl River Medical Centre", station=first, jurisdiction="CN-GD-GZ")
    node.start()  # registers its self-description at the first process, at start and on each catalog change
    try:
        node.publish("dataset-1", "offer-1")
        deadline = time.monotonic() + 30
        while True:
            found = second.admin("GET", "/registry/search?jurisdiction=CN-GD-GZ", expect=200)["results"]
            if [r["datasetId"] for r in found if r["participantId"] == node.participant_id]:
                break
            assert time.monotonic() < deadline, "the second process never found the registration"
            time.sleep(0.2)
        first.admin("POST", f"/admin/participants/{node.participant_id}/revoke", None, expect=200)
        assert second.admin("GET", "/registry/search?jurisdiction=CN-GD-GZ", expect=200)["results"] == []
        listed = {p["participantId"]: p["status"] for p in second.admin("GET", "/admin/participants", expect=200)}
        assert listed[node.participant_id] == "revoked"
    finally:
        node.stop()
