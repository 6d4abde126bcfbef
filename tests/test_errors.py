"""One exception hierarchy (connector/errors.py) and one error middleware (connector/serving.py).

* Every exception class in the package derives from ConnectorError (the walk reads every module).
* Each layer's representative error is answered by the shared middleware with its one status and
  body, over real HTTP (aiohttp's test server).
* The node, the station and the clearing house, as real processes, answer the same kinds of error
  with the same status and body shape, and a peer failure names no host or port.
"""
from __future__ import annotations

import http.client
import importlib
import inspect
import json
import logging
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import connector
from connector.errors import (ApiError, ComplianceError, ComputeError, ConnectorError, ConsoleError, DataPlaneError,
                              IdentityError, LedgerError, NodeError, SetupError, StationError, StorageError,
                              TransparencyLogError)
from connector.serving import ErrorAnswers, error_middleware

ROOT = Path(connector.__file__).resolve().parent

#: classes that may not derive from ConnectorError, each with the reason (none today: a class that
#: must also be a library type takes it as a second base, e.g. ForbiddenAddress(NodeError, OSError))
ALLOWED: dict[str, str] = {}


def _module_names() -> list[str]:
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        if "migrations" in rel.parts or rel.name == "__main__":
            continue
        names.append(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
    return names


def test_every_exception_class_derives_from_the_project_root() -> None:
    seen, stray = 0, []
    for name in _module_names():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name:
                seen += 1
                if not issubclass(value, ConnectorError) and f"{name}.{attr}" not in ALLOWED:
                    stray.append(f"{name}.{attr} ({', '.join(b.__name__ for b in value.__bases__)})")
    assert seen > 60  # the walk found the package's exceptions (protocol/ is a namespace package)
    assert stray == [], "exception classes outside connector.errors.ConnectorError:\n  " + "\n  ".join(stray)


# --------------------------------------------------------------- one error of each layer
def _layers() -> list[tuple[str, BaseException, int, str, str]]:
    """(layer, a representative error as its layer raises it, status, code, the body's message)."""
    from connector.clearinghouse.store import StoreError
    from connector.compliance.record import RecordError
    from connector.compute.query import QueryRefused
    from connector.console.auth import AccountError
    from connector.identity.pki import CertificateError
    from connector.ledger.checkpoint import MalformedNoteError
    from connector.node.dataplane.common import AccessRefused
    from connector.node.peers import PeerError
    from connector.policy.errors import PolicyError
    from connector.protocol.errors import InvalidTransition, UnknownProcess
    from connector.station.registry import QueryError

    return [
        ("protocol: a wrong-state message is 400, not 409 (TCK)", InvalidTransition("REQUESTED -> VERIFIED"), 400,
         "InvalidStateTransition", "REQUESTED -> VERIFIED"),
        ("protocol: no such process", UnknownProcess("no process 'x'"), 404, "UnknownProcess", "no process 'x'"),
        ("policy", PolicyError("unknown left operand 'colour'", "permission[0]"), 400, "InvalidPolicy",
         "invalid policy: permission[0]: unknown left operand 'colour'"),
        ("ledger (escaped: a bug)", MalformedNoteError("secret detail"), 500, "Internal", "internal error"),
        ("identity (escaped)", CertificateError("key at /srv/keys"), 500, "Internal", "internal error"),
        ("node: a peer failed", PeerError("peer 'urn:p' could not be reached (ClientConnectorError)",
                                          detail="POST http://10.0.0.7:9/dsp"), 502, "PeerFailed",
         "peer 'urn:p' could not be reached (ClientConnectorError)"),
        ("data plane: a refusal with its status", AccessRefused(403, ["the purpose is not admitted"]), 403,
         "Forbidden", "the purpose is not admitted"),
        ("compute: a refusal with its status", QueryRefused("query", "SELECT * is not allowed"), 403, "Forbidden",
         "SELECT * is not allowed"),
        ("compliance: a refusal with its status", RecordError("no PIPIA recorded", 409), 409, "Conflict",
         "no PIPIA recorded"),
        ("station (escaped)", QueryError("internal"), 500, "Internal", "internal error"),
        ("clearing house: damaged log", StoreError("the stored tree state is damaged"), 500, "LogDamaged",
         "the stored tree state is damaged"),
        ("console (escaped)", AccountError("internal"), 500, "Internal", "internal error"),
        ("an HTTP handler's answer", ApiError(409, "asset 'a' already exists"), 409, "Conflict",
         "asset 'a' already exists"),
    ]


def test_each_layer_has_one_base_under_the_root() -> None:
    from connector.policy.errors import PolicyError
    from connector.protocol.errors import ProtocolError

    for base in (ProtocolError, PolicyError, LedgerError, IdentityError, StorageError, NodeError, DataPlaneError,
                 ComputeError, ComplianceError, StationError, TransparencyLogError, ConsoleError, SetupError, ApiError):
        assert issubclass(base, ConnectorError), base
    assert (ProtocolError.status, PolicyError.status, StorageError.status) == (400, 400, 503)


async def test_the_shared_middleware_answers_each_layer_over_http() -> None:
    layers = _layers()

    def raiser(exc: BaseException):  # noqa: ANN202
        async def handler(request: web.Request) -> web.Response:
            raise exc
        return handler

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("password=hunter2 at 10.0.0.7")

    async def small(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="read")

    app = web.Application(client_max_size=1024, middlewares=[error_middleware(ErrorAnswers(1024), logging.getLogger("test"))])
    app.add_routes([web.get(f"/{n}", raiser(exc)) for n, (_, exc, *_rest) in enumerate(layers)])
    app.add_routes([web.get("/crash", crash), web.post("/small", small)])
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url("")), timeout=30) as client:
            for n, (layer, _exc, status, code, message) in enumerate(layers):
                resp = await client.get(f"/{n}")
                assert (resp.status_code, resp.json()) == (status, {"error": message, "code": code, "status": status}), layer
                assert "10.0.0.7" not in resp.text and "/srv" not in resp.text, layer
            resp = await client.get("/crash")
            assert (resp.status_code, resp.json()) == (500, {"error": "internal error", "code": "Internal", "status": 500})
            resp = await client.get("/nowhere")
            assert (resp.status_code, resp.json()) == (404, {"error": "Not Found", "code": "NotFound", "status": 404})
            resp = await client.post("/small", content=b"x" * 5000)
            assert resp.status_code == 413 and resp.json()["code"] == "TooLarge", resp.text
            assert "over the limit of 1024 bytes" in resp.json()["error"]
    finally:
        await server.close()


# ------------------------------------------------------------ the three services, as processes
BAD = "Bearer \xe9\xff-not-utf-8"


def _raw(base_url: str, path: str, headers: dict[str, str]) -> tuple[int, dict]:
    url = urlparse(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.putrequest("GET", path)
        for name, value in headers.items():
            conn.putheader(name, value.encode("latin-1"))
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory):
    from connector.clearinghouse.testing import ClearingHouseProcess
    from support.nodes import NodeProcess, StationProcess

    node = NodeProcess(tmp_path_factory.mktemp("err-node"), "ErrNode").start()
    station = StationProcess(tmp_path_factory.mktemp("err-station")).start()
    ch = ClearingHouseProcess(tmp_path_factory.mktemp("err-ch"), shared_secret="err-secret-" + "x" * 20).start()
    try:
        yield {"node": (node.url, "/api/v1/assets"), "station": (station.url, "/admin/participants"),
               "clearinghouse": (ch.url, "/entries/0")}, node
    finally:
        for process in (node, station, ch):
            process.stop()


@pytest.mark.parametrize("service", ["node", "station", "clearinghouse"])
def test_each_service_answers_the_shared_kinds_alike(services, service: str) -> None:
    (url, protected), _node = services[0][service], services[1]
    status, body = _raw(url, protected, {"X-Api-Key": BAD, "Authorization": BAD})
    assert status == 400 and body["code"] == "MalformedHeader" and body["status"] == 400, body
    assert "not valid UTF-8" in body["error"]
    resp = httpx.get(url + "/no/such/route", timeout=30)
    assert (resp.status_code, resp.json()) == (404, {"error": "Not Found", "code": "NotFound", "status": 404})
    resp = httpx.get(url + protected, headers={"X-Api-Key": "wrong", "Authorization": "Bearer wrong"}, timeout=30)
    assert resp.status_code == 401 and resp.json()["status"] == 401 and resp.json()["code"], resp.text
    assert set(resp.json()) >= {"error", "code", "status"}


def test_a_peer_failure_names_the_peer_not_our_network(services) -> None:
    """The management API's 502 for a peer that cannot be reached: the rule, no host or port."""
    from support.nodes import free_port

    node = services[1]
    port = free_port()
    resp = httpx.post(node.url + "/api/v1/catalog/request", headers={"X-Api-Key": node.settings.management_api_key},
                      json={"counterPartyAddress": f"http://127.0.0.1:{port}"}, timeout=30)
    assert resp.status_code == 502 and resp.json()["code"] == "PeerFailed", resp.text
    assert "/.well-known/dspace-version could not be read" in resp.json()["error"]
    for needle in ("127.0.0.1", str(port), "Connect call failed", "Cannot connect"):
        assert needle not in resp.text, (needle, resp.text)
