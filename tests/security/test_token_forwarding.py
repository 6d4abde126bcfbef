"""Issue 10, finding 1: token forwarding = impersonation. A hostile station member M asks node N1
for an offer with the callback at its own listener (registered at the station as M's own
connectorUrl: M is a legitimate member acting maliciously), captures the token N1 sends there,
and presents it as N1 at node N2 (catalog, negotiation, both DSP versions), at the clearing house
and at the station registry. Every token names its one recipient, so each is refused:
401 "wrong audience". Real station, nodes, clearing house and listener; no TLS."""
import time
import uuid

import httpx
import jwt
import orjson
import pytest

from support.identity import Listener, Member, reason_of, station_clearing_house, station_for_clearing_house
from support.nodes import NodeProcess

pytestmark = pytest.mark.slow
CTX25 = ["https://w3id.org/dspace/2025/1/context.jsonld"]
CTX24 = "https://w3id.org/dspace/2024/1/context.json"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("forwarding")
    station, ch_port = station_for_clearing_house(base / "station")
    listener = Listener().start()
    procs = [station]
    try:
        n1 = NodeProcess(base / "n1", "Pearl River Medical Centre", station=station, jurisdiction="CN-GD-GZ").start()
        procs.append(n1)
        n2 = NodeProcess(base / "n2", "Harbour University Research Lab", station=station, jurisdiction="HK").start()
        procs.append(n2)
        ch, ch_url = station_clearing_house(base / "ch", station, ch_port)
        ch.start()
        procs.append(ch)
        n1.publish("dataset-1", "offer-1")
        n2.publish("reserved-dataset", "reserved-offer")
        m = Member(station, "Merlion Analytics", connector_url=listener.url, jurisdiction="SG")
        # M asks N1 for its offer, callback at M's own listener
        request = {"@context": CTX25, "@type": "ContractRequestMessage", "consumerPid": f"urn:uuid:{uuid.uuid4()}",
                   "callbackAddress": listener.url,
                   "offer": {"@id": "offer-1", "@type": "Offer", "target": "dataset-1", "assigner": n1.participant_id,
                             "permission": [{"action": "use"}]}}
        resp = httpx.post(f"{n1.url}/dsp/2025-1/negotiations/request", content=orjson.dumps(request), timeout=20,
                          headers={"Authorization": f"Bearer {m.token(n1.participant_id)}",
                                   "Content-Type": "application/json"})
        assert resp.status_code == 201, resp.text
        captured = listener.wait_for_token()  # N1's token, sent with its next message to M
        yield {"station": station, "n1": n1, "n2": n2, "m": m, "ch": ch, "ch_url": ch_url, "captured": captured}
    finally:
        listener.stop()
        for proc in reversed(procs):
            proc.stop()


def test_the_captured_token_names_the_hostile_listener_as_its_only_recipient(net):
    claims = jwt.decode(net["captured"].split()[-1], options={"verify_signature": False})
    assert claims["sub"] == net["n1"].participant_id
    assert claims["aud"] == [net["m"].participant_id]


@pytest.mark.parametrize("version", ["2025-1", "2024-1"])
def test_a_token_captured_at_a_callback_is_refused_at_another_nodes_catalog(net, version):
    n2 = net["n2"]
    body = {"@context": CTX25, "@type": "CatalogRequestMessage"} if version == "2025-1" else \
        {"@context": CTX24, "@type": "dspace:CatalogRequestMessage"}
    resp = httpx.post(f"{n2.url}/dsp/{version}/catalog/request", content=orjson.dumps(body), timeout=20,
                      headers={"Authorization": net["captured"], "Content-Type": "application/json"})
    assert resp.status_code == 401, resp.text
    assert "wrong audience" in reason_of(resp)
    assert "reserved-offer" not in resp.text


@pytest.mark.parametrize("version", ["2025-1", "2024-1"])
def test_a_token_captured_at_a_callback_cannot_negotiate_at_another_node_as_its_owner(net, version):
    n1, n2 = net["n1"], net["n2"]
    before = len(n2.api("GET", "/negotiations?limit=1000", expect=200))
    cpid = f"urn:uuid:{uuid.uuid4()}"
    if version == "2025-1":
        body = {"@context": CTX25, "@type": "ContractRequestMessage", "consumerPid": cpid,
                "callbackAddress": "http://127.0.0.1:9/cb",
                "offer": {"@id": "reserved-offer", "@type": "Offer", "target": "reserved-dataset",
                          "assignee": n1.participant_id, "permission": [{"action": "use"}]}}
    else:
        body = {"@context": CTX24, "@type": "dspace:ContractRequestMessage", "dspace:consumerPid": cpid,
                "dspace:callbackAddress": "http://127.0.0.1:9/cb",
                "dspace:offer": {"@id": "reserved-offer", "@type": "odrl:Offer",
                                 "odrl:target": {"@id": "reserved-dataset"},
                                 "odrl:assignee": {"@id": n1.participant_id},
                                 "odrl:permission": [{"odrl:action": {"@id": "odrl:use"}}]}}
    resp = httpx.post(f"{n2.url}/dsp/{version}/negotiations/request", content=orjson.dumps(body), timeout=20,
                      headers={"Authorization": net["captured"], "Content-Type": "application/json"})
    assert resp.status_code == 401, resp.text
    assert "wrong audience" in reason_of(resp)
    assert len(n2.api("GET", "/negotiations?limit=1000", expect=200)) == before


def test_a_token_captured_at_a_callback_is_refused_at_the_clearing_house(net):
    ch = net["ch"]
    reads = httpx.get(f"{ch.url}/processes/urn:uuid:anything/entries", headers={"Authorization": net["captured"]},
                      timeout=20)
    assert reads.status_code == 401, reads.text
    assert "wrong audience" in reason_of(reads)
    writes = httpx.post(f"{ch.url}/entries", json={"jws": "x.y.z"}, headers={"Authorization": net["captured"]},
                        timeout=20)
    assert writes.status_code == 401 and "wrong audience" in reason_of(writes)
    # the member's own token for the clearing house is accepted there (the refusal is the audience's)
    own = httpx.get(f"{ch.url}/processes/urn:uuid:anything/entries", timeout=20,
                    headers={"Authorization": f"Bearer {net['m'].token(net['ch_url'])}"})
    assert own.status_code != 401, own.text


def test_a_token_captured_at_a_callback_is_refused_at_the_station_registry(net):
    station = net["station"]
    search = httpx.get(f"{station.url}/registry/search", headers={"Authorization": net["captured"]}, timeout=20)
    assert search.status_code == 401, search.text
    assert "wrong audience" in reason_of(search)
    write = httpx.post(f"{station.url}/registry/self-descriptions", content=b"<a> <b> <c> .", timeout=20,
                       headers={"Authorization": net["captured"], "Content-Type": "text/turtle",
                                "Hks-Signature": "x.y.z"})
    assert write.status_code == 401 and "wrong audience" in reason_of(write)


def test_a_token_for_every_connector_is_neither_issued_nor_accepted(net):
    from support.identity import station_signed

    station, n2, m = net["station"], net["n2"], net["m"]
    assertion_form = {"audience": "idsc:IDS_CONNECTORS_ALL"}
    from connector.identity.dat import ASSERTION_TYPE, DAT_SCOPE, client_assertion
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "scope": DAT_SCOPE,
            "client_assertion": client_assertion(m.participant_id, m.key, station.url + "/token", now=time.time()),
            **assertion_form}
    issued = httpx.post(station.url + "/token", data=form, timeout=10)
    assert issued.status_code == 400 and issued.json()["error"] == "invalid_target"
    generic = station_signed(station, m.participant_id, "idsc:IDS_CONNECTORS_ALL")
    resp = httpx.post(f"{n2.url}/dsp/2025-1/catalog/request", timeout=20,
                      content=orjson.dumps({"@context": CTX25, "@type": "CatalogRequestMessage"}),
                      headers={"Authorization": f"Bearer {generic}", "Content-Type": "application/json"})
    assert resp.status_code == 401 and "wrong audience" in reason_of(resp)
