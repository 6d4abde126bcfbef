"""Two replicas of one node, and two processes of one clearing house, on one PostgreSQL database share
the DAT replay state (issue 16, Must 3): a token's jti is bound at the replica that sees it first, and
another token carrying that jti is refused at the other replica too. (Before: each replica kept
identity.db in its own directory, so the second replica accepted it.) Real station, real node and
clearing-house processes, real DATs."""
import shutil
import time

import httpx
import jwt
import orjson
import pytest

from connector.identity import jose
from connector.identity.dat import client_assertion, token_request_form
from connector.identity.keys import load_any_private_key, load_private_key
from connector.clearinghouse.testing import ClearingHouseProcess
from support.identity import Member, reason_of, station_for_clearing_house
from support.nodes import NodeProcess, StationProcess, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
CATALOG = orjson.dumps({"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                        "@type": "CatalogRequestMessage"})


def catalog(node, token):
    return httpx.post(f"{node.url}/dsp/2025-1/catalog/request", content=CATALOG, timeout=30,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def same_jti_other_token(station, token):
    """Another token with the token's jti, re-signed with the station's key, one claim changed."""
    skey = load_any_private_key(sorted((station.directory / "keys").glob("token-*.key"))[-1])
    claims = {**jwt.decode(token, options={"verify_signature": False}), "organisation": "someone else"}
    return jwt.encode(claims, skey, algorithm=jwt.get_unverified_header(token)["alg"],
                      headers={"kid": jose.signing_jwk(skey)["kid"], "typ": "at+jwt"})


def test_a_jti_bound_at_one_node_replica_is_refused_for_another_token_at_the_other(tmp_path, pg_url):
    station = StationProcess(tmp_path / "station").start()
    nodes = []
    try:
        consumer = NodeProcess(tmp_path / "consumer", "Harbour University Research Lab", station=station)  # enrolled only
        first = NodeProcess(tmp_path / "provider-1", "Pearl River Medical Centre", station=station,
                            database_url=pg_url, jurisdiction="CN-GD-GZ")
        shutil.copytree(first.directory, tmp_path / "provider-2")  # the same participant: keys and config copied
        port = free_port()
        second = NodeProcess(tmp_path / "provider-2", "Pearl River Medical Centre", init=False,
                             env={"CONNECTOR_NODE_LISTEN_PORT": str(port)})
        second.url = f"http://127.0.0.1:{port}"
        nodes = [first.start(), second.start()]
        key = load_private_key(consumer.directory / "keys" / "node.key")
        assertion = client_assertion(consumer.participant_id, key, station.url + "/token", now=time.time())
        resp = httpx.post(station.url + "/token", timeout=30,
                          data=token_request_form(assertion, first.participant_id))
        assert resp.status_code == 200, resp.text
        token = resp.json()["access_token"]
        assert catalog(first, token).status_code == 200  # the second replica has not seen this token
        other = same_jti_other_token(station, token)
        refused = catalog(second, other)
        assert refused.status_code == 401 and "replayed jti" in refused.text, refused.text
        assert catalog(first, other).status_code == 401
        assert catalog(second, token).status_code == 200  # its holder reuses it at any replica: normal
    finally:
        for node in nodes:
            node.stop()
        station.stop()


def test_a_jti_bound_at_one_clearing_house_process_is_refused_for_another_token_at_the_other(tmp_path, pg_url):
    station, port = station_for_clearing_house(tmp_path / "station")
    procs = [station]
    try:
        audience = f"http://127.0.0.1:{port}"  # the clearing house's public URL: both processes behind it
        first = ClearingHouseProcess(tmp_path / "ch-1", shared_secret="unused-in-station-mode", port=port,
                                     database_url=pg_url, station_url=station.url, identity="station",
                                     audience=audience)
        shutil.copytree(first.directory, tmp_path / "ch-2")
        second = ClearingHouseProcess(tmp_path / "ch-2", shared_secret="unused-in-station-mode", init=False,
                                      env={"CONNECTOR_CH_CLEARINGHOUSE_LISTEN_PORT": str(free_port())})
        procs += [first.start(), second.start()]
        token = Member(station, "Lion Rock Mobility Data Co.").token(audience)

        def read(ch, tok):
            return httpx.get(f"{ch.url}/processes/urn:uuid:anything/entries", timeout=30,
                             headers={"Authorization": f"Bearer {tok}"})

        assert read(first, token).status_code != 401  # accepted (no entries for this process)
        other = same_jti_other_token(station, token)
        refused = read(second, other)
        assert refused.status_code == 401 and "replayed jti" in reason_of(refused), refused.text
        assert read(second, token).status_code != 401
    finally:
        for proc in reversed(procs):
            proc.stop()
