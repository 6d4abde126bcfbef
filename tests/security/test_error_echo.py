"""Attack: make a service repeat a huge piece of our input back in its error (a 900 KB `@type`
came back whole): amplification, log and client pollution. Refused: every error body is small and
repeats at most 200 characters of any input, at the node (DSP 2025-1 and 2024-1, management API),
the station and the clearing house. Real processes, real HTTP."""
from __future__ import annotations

import base64
import secrets
from pathlib import Path

import httpx
import orjson
import pytest

from connector.clearinghouse.testing import ClearingHouseProcess, Participant
from connector.identity import DevSharedSecret
from tests.support.nodes import SHARED_SECRET, NodeProcess, StationProcess

HUGE = 900_000  # characters of one value in a body
IN_PATH = 7_000  # characters of an id in a URL path (aiohttp's request line limit is 8190)
MAX_ERROR_BYTES = 2048
CTX = {"2025-1": ["https://w3id.org/dspace/2025/1/context.jsonld"], "2024-1": "https://w3id.org/dspace/2024/1/context.json"}
CALLER = "urn:hks:participant:echo-attacker"


def filler() -> str:
    """A character that appears nowhere else, so runs of it are our input coming back."""
    return "Q"


def assert_small_echo(resp: httpx.Response, *, status: int | tuple[int, ...]) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in statuses, resp.text[:500]
    assert len(resp.content) < MAX_ERROR_BYTES, f"{len(resp.content)}-byte error body: {resp.text[:300]}…"
    assert filler() * 201 not in resp.text, "more than 200 characters of the input came back"


def dsp_message(version: str, mtype: str, **fields: object) -> dict:
    if version == "2024-1":
        fields = {f"dspace:{k}" if not k.startswith(("@", "odrl:", "dspace:")) else k: v for k, v in fields.items()}
        mtype = mtype if mtype.startswith("Q") else f"dspace:{mtype}"
    return {"@context": CTX[version], "@type": mtype, **fields}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    n = NodeProcess(Path(tmp_path_factory.mktemp("echo-node")), "EchoNode").start()
    n.publish("echo-dataset", "echo-offer")
    yield n
    n.stop()


def dsp(node: NodeProcess, version: str, method: str, path: str, body: dict | None = None) -> httpx.Response:
    token = "Bearer " + DevSharedSecret(CALLER, SHARED_SECRET).token_for(CALLER, audience=node.participant_id)
    return httpx.request(method, f"{node.url}/dsp/{version}{path}", content=orjson.dumps(body) if body else None,
                         headers={"Authorization": token, "Content-Type": "application/json"}, timeout=60)


VERSIONS = ["2025-1", "2024-1"]


@pytest.mark.parametrize("version", VERSIONS)
def test_huge_type_is_not_echoed_by_the_node(node: NodeProcess, version: str) -> None:
    resp = dsp(node, version, "POST", "/negotiations/request", dsp_message(version, filler() * HUGE))
    assert_small_echo(resp, status=400)
    assert "expected ContractRequestMessage" in resp.text
    assert f"{filler() * 200}'… ({HUGE} characters)" in resp.json()["reason" if version == "2025-1" else "dspace:reason"][0]


@pytest.mark.parametrize("version", VERSIONS)
def test_huge_type_in_a_jsonld_body_is_not_echoed_by_the_node(node: NodeProcess, version: str) -> None:
    doc = dsp_message(version, filler() * HUGE)
    doc["@context"] = [doc["@context"]] if isinstance(doc["@context"], str) else doc["@context"]
    doc["@context"] = doc["@context"] + [{"ex": "https://example.org/"}]  # leaves the fast path
    assert_small_echo(dsp(node, version, "POST", "/negotiations/request", doc), status=400)


@pytest.mark.parametrize("version", VERSIONS)
def test_huge_ids_are_not_echoed_by_the_node(node: NodeProcess, version: str) -> None:
    huge = filler() * (HUGE // 2)  # twice in one body
    offer = {"@id": huge, "@type": "Offer" if version == "2025-1" else "odrl:Offer", "odrl:target": "echo-dataset"}
    msg = dsp_message(version, "ContractRequestMessage", consumerPid=huge, offer=offer,
                      callbackAddress="http://127.0.0.1:9/cb")
    assert_small_echo(dsp(node, version, "POST", "/negotiations/request", msg), status=(400, 401))
    for path in (f"/negotiations/{filler() * IN_PATH}", f"/transfers/{filler() * IN_PATH}",
                 f"/catalog/datasets/{filler() * IN_PATH}"):
        assert_small_echo(dsp(node, version, "GET", path), status=400)  # over the id rule's 255 characters
    msg = dsp_message(version, "ContractAgreementVerificationMessage", providerPid=huge, consumerPid=huge)
    assert_small_echo(dsp(node, version, "POST", f"/negotiations/{filler() * IN_PATH}/agreement/verification", msg),
                      status=(400, 404))


@pytest.mark.parametrize("version", VERSIONS)
def test_huge_unknown_field_names_are_not_echoed_by_the_node(node: NodeProcess, version: str) -> None:
    msg = dsp_message(version, "ContractNegotiationEventMessage", eventType=filler() * (HUGE // 2),
                      **{filler() * (HUGE // 2): 1, "providerPid": "urn:x", "consumerPid": "urn:y"})
    assert_small_echo(dsp(node, version, "POST", "/negotiations/urn:x/events", msg), status=(400, 404))


def test_huge_input_is_not_echoed_by_the_management_api(node: NodeProcess) -> None:
    def api(method: str, path: str, body: object = None) -> httpx.Response:
        return httpx.request(method, node.url + "/api/v1" + path, content=orjson.dumps(body) if body else None,
                             headers={**node.headers(), "Content-Type": "application/json"}, timeout=60)

    assert_small_echo(api("POST", "/assets", {"id": filler() * HUGE}), status=400)
    assert_small_echo(api("POST", "/assets", {"id": "a", filler() * HUGE: 1}), status=400)
    assert_small_echo(api("POST", "/policies", {"id": "p", "policy": {"permission": filler() * HUGE}}), status=400)
    rules = [{"action": filler() * 50_000, "constraint": [{"leftOperand": filler() * 50_000, "operator": "eq",
                                                           "rightOperand": filler() * 50_000}]} for _ in range(4)]
    assert_small_echo(api("POST", "/policies", {"id": "p", "policy": {"permission": rules}}), status=400)
    assert_small_echo(api("GET", f"/negotiations/{filler() * IN_PATH}"), status=400)
    assert_small_echo(api("GET", f"/negotiations/x?waitFor={filler() * IN_PATH}"), status=(400, 404))


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory):
    s = StationProcess(Path(tmp_path_factory.mktemp("echo-station")) / "station").start()
    yield s
    s.stop()


def test_huge_input_is_not_echoed_by_the_station(station: StationProcess) -> None:
    admin = {"Authorization": f"Bearer {station.admin_token}"}
    big = filler() * 60_000  # the enrolment body limit is 64 KiB
    resp = httpx.post(station.url + "/admin/participants", json={big: 1}, headers=admin, timeout=30)
    assert_small_echo(resp, status=400)
    resp = httpx.post(station.url + "/admin/participants", json={"name": "x", "jurisdiction": big[:30_000], "csr": big[:30_000]},
                      headers=admin, timeout=30)
    assert_small_echo(resp, status=400)
    form = f"{filler() * 8000}=1&{filler() * 8000}=2".encode()
    resp = httpx.post(station.url + "/token", content=form, timeout=30,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_small_echo(resp, status=(400, 401))
    resp = httpx.get(station.url + f"/registry/search?{filler() * IN_PATH}=1", headers=admin, timeout=30)
    assert_small_echo(resp, status=400)
    assert_small_echo(httpx.get(station.url + f"/participants/{filler() * IN_PATH}", timeout=30), status=404)


@pytest.fixture(scope="module")
def clearinghouse(tmp_path_factory: pytest.TempPathFactory):
    secret = "echo-secret-" + secrets.token_hex(8)
    ch = ClearingHouseProcess(Path(tmp_path_factory.mktemp("echo-ch")) / "ch", shared_secret=secret)
    who = Participant("urn:hks:participant:echo", secret)
    ch.trust(who)
    ch.start()
    yield ch, who
    ch.stop()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_huge_input_is_not_echoed_by_the_clearing_house(clearinghouse: tuple[ClearingHouseProcess, Participant]) -> None:
    ch, who = clearinghouse

    def post(body: object) -> httpx.Response:
        return httpx.post(ch.url + "/entries", content=orjson.dumps(body), timeout=30,
                          headers={**who.headers(), "Content-Type": "application/json"})

    assert_small_echo(post({"jws": "x", filler() * 4000: 1}), status=400)  # the body limit is 5 KiB
    entry = dict(who.entry("urn:hks:participant:other"))
    entry[filler() * 2500] = "x"  # an unknown entry field
    header = b64(b'{"alg":"ES256","typ":"hks-ch-entry+jws"}')
    jws = f"{header}.{b64(orjson.dumps(entry, option=orjson.OPT_SORT_KEYS))}.{b64(bytes(64))}"
    assert_small_echo(post({"jws": jws}), status=(400, 413))
    entry = dict(who.entry("urn:hks:participant:other"))
    entry["timestamp"] = filler() * 2500
    jws = f"{header}.{b64(orjson.dumps(entry, option=orjson.OPT_SORT_KEYS))}.{b64(bytes(64))}"
    assert_small_echo(post({"jws": jws}), status=(400, 413))
    other = Participant(filler() * 5000, ch.shared_secret)  # a caller id (dev token) of 5000 characters
    resp = httpx.get(ch.url + "/processes/urn:x/entries", headers=other.headers(), timeout=30)
    assert_small_echo(resp, status=(403, 404))
    resp = httpx.get(ch.url + "/entries", headers=other.headers(), timeout=30)
    assert_small_echo(resp, status=403)
