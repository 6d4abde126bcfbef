"""Attack: a request header that is not valid UTF-8 (a raw 0xE9 or 0xFF byte in Authorization,
X-Api-Key or another header a service reads) made the node, the station and the clearing house
answer 500 (the value reached an `.encode()`). Refused: 400 in each service's usual error format,
naming the malformed header. Raw bytes go out through http.client (latin-1 header values)."""
from __future__ import annotations

import http.client
import json
import secrets
from pathlib import Path
from urllib.parse import urlparse

import pytest

from connector.clearinghouse.testing import ClearingHouseProcess
from tests.support.nodes import NodeProcess, StationProcess

BAD = "Bearer \xe9\xff\xfe-not-utf-8"  # latin-1: these go on the wire as single non-UTF-8 bytes


def raw_request(base_url: str, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict]:
    url = urlparse(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.putrequest(method, path)
        for name, value in headers.items():
            conn.putheader(name, value.encode("latin-1"))
        conn.putheader("Content-Length", str(len(body)))
        if body:
            conn.putheader("Content-Type", "application/json")
        conn.endheaders(body or None)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data)
    finally:
        conn.close()


def dsp_reason(body: dict) -> tuple[str, str]:
    reason = body.get("reason", body.get("dspace:reason"))
    code = body.get("code", body.get("dspace:code"))
    return " ".join(reason if isinstance(reason, list) else [str(reason)]), str(code)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    n = NodeProcess(Path(tmp_path_factory.mktemp("hdr-node")), "HeaderNode").start()
    yield n
    n.stop()


@pytest.mark.parametrize("version", ["2025-1", "2024-1"])
@pytest.mark.parametrize("header", ["Authorization", "X-Api-Key", "Accept-Language"])
def test_non_utf8_header_in_a_dsp_request_is_a_400_dsp_error(node: NodeProcess, version: str, header: str) -> None:
    body = json.dumps({"@context": "https://w3id.org/dspace/2024/1/context.json" if version == "2024-1" else
                       ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": "CatalogRequestMessage"}).encode()
    status, doc = raw_request(node.url, "POST", f"/dsp/{version}/catalog/request", {header: BAD}, body)
    assert status == 400, doc
    reason, code = dsp_reason(doc)
    assert code == "MalformedHeader"
    assert f"the {header} header is not valid UTF-8" in reason
    assert doc.get("@type") in ("CatalogError", "dspace:CatalogError")


@pytest.mark.parametrize("method,path,header", [
    ("GET", "/api/v1/assets", "X-Api-Key"),
    ("GET", "/api/v1/assets", "Authorization"),
    ("POST", "/dsp/2025-1/negotiations/request", "Authorization"),
    ("GET", "/data/some-transfer", "Authorization"),
    ("GET", "/.well-known/self-description", "Accept"),
    ("GET", "/health", "User-Agent"),
])
def test_non_utf8_header_at_the_node_is_a_400(node: NodeProcess, method: str, path: str, header: str) -> None:
    status, doc = raw_request(node.url, method, path, {header: BAD})
    assert status == 400, doc
    text = json.dumps(doc)
    assert f"the {header} header is not valid UTF-8" in text and "MalformedHeader" in text


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory):
    s = StationProcess(Path(tmp_path_factory.mktemp("hdr-station")) / "station").start()
    yield s
    s.stop()


@pytest.mark.parametrize("method,path,header", [
    ("POST", "/admin/participants", "Authorization"),
    ("GET", "/admin/participants", "Authorization"),
    ("GET", "/registry/search", "Authorization"),
    ("POST", "/registry/self-descriptions", "Hks-Signature"),
    ("POST", "/token", "Content-Type"),
    ("GET", "/health", "X-Api-Key"),
])
def test_non_utf8_header_at_the_station_is_a_400(station: StationProcess, method: str, path: str, header: str) -> None:
    status, doc = raw_request(station.url, method, path, {header: BAD})
    assert status == 400, doc
    assert doc["code"] == "MalformedHeader"
    assert f"the {header} header is not valid UTF-8" in doc["error"]


@pytest.fixture(scope="module")
def clearinghouse(tmp_path_factory: pytest.TempPathFactory):
    ch = ClearingHouseProcess(Path(tmp_path_factory.mktemp("hdr-ch")) / "ch",
                              shared_secret="hdr-secret-" + secrets.token_hex(8)).start()
    yield ch
    ch.stop()


@pytest.mark.parametrize("method,path,header", [
    ("POST", "/entries", "Authorization"),
    ("GET", "/proofs/inclusion?index=0", "Authorization"),
    ("GET", "/entries/0", "Authorization"),
    ("GET", "/log", "Accept"),
])
def test_non_utf8_header_at_the_clearing_house_is_a_400(clearinghouse: ClearingHouseProcess, method: str, path: str,
                                                         header: str) -> None:
    status, doc = raw_request(clearinghouse.url, method, path, {header: BAD}, b'{"jws": "x"}' if method == "POST" else b"")
    assert status == 400, doc
    assert doc["code"] == "MalformedHeader" and doc["status"] == 400
    assert f"the {header} header is not valid UTF-8" in doc["error"]
