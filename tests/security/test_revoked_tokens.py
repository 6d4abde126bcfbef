"""Issue 10, item 5: a revoked participant's already-used, cached token kept working for about
60 s at nodes, the clearing house and the registry; and a token the station's key signed with
`exp` ten years ahead was accepted. Now a revocation reaches every receiver within 5 s (the
station's revocation feed, polled), and receivers cap a token's lifetime. Real station, node
and clearing house processes."""
import time

import httpx
import orjson
import pytest

from support.identity import Member, reason_of, station_clearing_house, station_for_clearing_house, station_signed
from support.nodes import NodeProcess

pytestmark = pytest.mark.slow
CTX25 = ["https://w3id.org/dspace/2025/1/context.jsonld"]
TEN_YEARS = 10 * 365 * 86400


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("revocation")
    station, ch_port = station_for_clearing_house(base / "station")
    procs = [station]
    try:
        node = NodeProcess(base / "node", "Harbour University Research Lab", station=station).start()
        procs.append(node)
        ch, ch_url = station_clearing_house(base / "ch", station, ch_port)
        ch.start()
        procs.append(ch)
        yield {"station": station, "node": node, "ch": ch, "ch_url": ch_url}
    finally:
        for proc in reversed(procs):
            proc.stop()


def at_node(net, token):
    return httpx.post(f"{net['node'].url}/dsp/2025-1/catalog/request", timeout=20,
                      content=orjson.dumps({"@context": CTX25, "@type": "CatalogRequestMessage"}),
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def at_clearing_house(net, token):
    return httpx.get(f"{net['ch'].url}/processes/urn:uuid:anything/entries", timeout=20,
                     headers={"Authorization": f"Bearer {token}"})


def at_registry(net, token):
    return httpx.get(f"{net['station'].url}/registry/search", timeout=20, headers={"Authorization": f"Bearer {token}"})


def test_a_revoked_participants_token_in_use_is_refused_within_5_seconds_everywhere(net):
    member = Member(net["station"], "Lion Rock Mobility Data Co.")
    checks = {"node": (at_node, member.token(net["node"].participant_id)),
              "clearing house": (at_clearing_house, member.token(net["ch_url"])),
              "registry": (at_registry, member.token(net["station"].url))}
    for where, (call, token) in checks.items():
        assert call(net, token).status_code != 401, where  # accepted (and cached) before the revocation
    member.revoke()
    revoked_at = time.monotonic()
    pending = dict(checks)
    took: dict[str, float] = {}
    while pending:
        for where, (call, token) in list(pending.items()):
            resp = call(net, token)
            if resp.status_code == 401:
                assert "revoked" in reason_of(resp), (where, resp.text)
                took[where] = time.monotonic() - revoked_at
                del pending[where]
        assert time.monotonic() - revoked_at < 10, f"still accepted 10 s after the revocation at {sorted(pending)}"
        time.sleep(0.2)
    assert max(took.values()) < 5.0, took


def test_the_revocation_feed_is_public_and_incremental(net):
    station = net["station"]
    start = httpx.get(f"{station.url}/revocations?since=0", timeout=10).json()
    member = Member(station, "Kowloon Freight Analytics")
    member.revoke()
    after = httpx.get(f"{station.url}/revocations?since={start['sequence']}", timeout=10).json()
    assert [r["participantId"] for r in after["revoked"]] == [member.participant_id]
    assert after["sequence"] > start["sequence"]
    assert httpx.get(f"{station.url}/revocations?since={after['sequence']}", timeout=10).json()["revoked"] == []
    assert httpx.get(f"{station.url}/revocations?since=x", timeout=10).status_code == 400


def test_a_station_signed_token_valid_for_ten_years_is_refused_everywhere(net):
    member = Member(net["station"], "Victoria Harbour Logistics")
    now = int(time.time())
    for call, audience in ((at_node, net["node"].participant_id), (at_clearing_house, net["ch_url"]),
                           (at_registry, net["station"].url)):
        long_lived = station_signed(net["station"], member.participant_id, audience, iat=now, nbf=now,
                                    exp=now + TEN_YEARS)
        resp = call(net, long_lived)
        assert resp.status_code == 401, resp.text
        assert "lifetime too long" in reason_of(resp)
        # issued long ago but with a short remainder is refused too (exp - iat over the cap)
        old = station_signed(net["station"], member.participant_id, audience, iat=now - TEN_YEARS,
                             nbf=now - TEN_YEARS, exp=now + 600)
        resp = call(net, old)
        assert resp.status_code == 401 and "lifetime too long" in reason_of(resp)
        # within the cap: accepted (the refusal above is the lifetime's)
        ok = station_signed(net["station"], member.participant_id, audience, iat=now, nbf=now, exp=now + 3600)
        assert call(net, ok).status_code != 401
