"""Helpers for the identity security tests (tests/security/test_token_*.py, ...): a hostile
participant enrolled at a real station with a key the test holds, its token requests, a
plain aiohttp listener that records what arrives (a participant's own callback), and a
clearing house in station mode. Everything runs as real processes over real HTTP."""
from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from connector.identity import jose
from connector.identity.dat import ASSERTION_TYPE, DAT_SCOPE, client_assertion
from connector.identity.keys import load_any_private_key
from connector.identity.pki import make_csr
from support.nodes import StationProcess, free_port


class Listener:
    """A plain aiohttp server in a thread of its own: answers 200 with `{}` to everything and
    records (method, path, Authorization) of each request."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[tuple[str, str, str | None]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen.append((request.method, request.path, request.headers.get("Authorization")))
        return web.json_response({})

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def start(self) -> "Listener":
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def wait_for_token(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, _, auth in self.seen:
                if auth:
                    return auth
            time.sleep(0.05)
        raise AssertionError(f"no authorized request arrived at the listener; it saw {self.seen}")


class Member:
    """A participant enrolled at the station by the test, which holds its key."""

    def __init__(self, station: StationProcess, name: str, *, connector_url: str | None = None,
                 jurisdiction: str = "HK") -> None:
        self.station = station
        self.key = ec.generate_private_key(ec.SECP256R1())
        body: dict[str, Any] = {"name": name, "jurisdiction": jurisdiction, "csr": make_csr(self.key, name).decode()}
        if connector_url:
            body["connectorUrl"] = connector_url
        self.record = station.admin("POST", "/admin/participants", body, expect=201)
        self.participant_id = self.record["participantId"]

    def token(self, audience: str) -> str:
        """A DAT from the station's token endpoint for `audience` (the form built here, as any client would)."""
        assertion = client_assertion(self.participant_id, self.key, self.station.url + "/token", now=time.time())
        form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion, "scope": DAT_SCOPE, "audience": audience}
        resp = httpx.post(self.station.url + "/token", data=form, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    def revoke(self) -> None:
        self.station.admin("POST", f"/admin/participants/{self.participant_id}/revoke", {"reason": "test"}, expect=200)


def station_signed(station: StationProcess, sub: str, audience: str, **over: Any) -> str:
    """A DAT signed with the station's own signing key (what a station would issue), claims changed by `over`."""
    key = load_any_private_key(sorted((station.directory / "keys").glob("token-*.key"))[-1])
    now = int(time.time())
    claims = {"@context": "https://w3id.org/idsa/contexts/context.jsonld", "@type": "ids:DatPayload",
              "iss": station.url, "sub": sub, "aud": [audience], "iat": now, "nbf": now, "exp": now + 600,
              "jti": str(uuid.uuid4()), "scope": DAT_SCOPE, "securityProfile": "idsc:BASE_SECURITY_PROFILE",
              "transportCertsSha256": [], "organisation": "Org", "jurisdiction": "HK",
              "membership": ["hks:StationMember"], "membershipStatus": "active", **over}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": jose.signing_jwk(key)["kid"], "typ": "at+jwt"})


def station_for_clearing_house(directory: Path) -> tuple[StationProcess, int]:
    """A started station that issues tokens for a clearing house on the returned (free) port."""
    port = free_port()
    station = StationProcess(directory, env={"CONNECTOR_TOKENS_SERVICE_AUDIENCES": f"http://127.0.0.1:{port}"})
    return station.start(), port


def station_clearing_house(base: Path, station: StationProcess, port: int):  # noqa: ANN201
    """A clearing house in station mode whose audience is its URL (the station must list it in
    [tokens] service_audiences: StationProcess(env={"CONNECTOR_TOKENS_SERVICE_AUDIENCES": url}))."""
    from connector.clearinghouse import config as ch_config
    from connector.clearinghouse.testing import ClearingHouseProcess

    url = f"http://127.0.0.1:{port}"
    ch_config.init_directory(base, port=port, station_url=station.url, identity="station")
    return ClearingHouseProcess(base, shared_secret="unused-in-station-mode", init=False,
                                env={"CONNECTOR_CH_IDENTITY_AUDIENCE": url}), url


def reason_of(resp: httpx.Response) -> str:
    """The refusal's reason as text, whichever service answered (DSP error, station, clearing house)."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text
    if not isinstance(body, dict):
        return str(body)
    for key in ("reason", "dspace:reason", "error", "reasons"):
        if key in body:
            return str(body[key])
    return str(body)
