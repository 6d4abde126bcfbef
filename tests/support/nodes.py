"""Real node processes for integration tests: `python -m connector run DIR` on loopback."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from connector import config as config_mod

SHARED_SECRET = "test-station-shared-secret-" + secrets.token_hex(8)
# The tests run every node, peer and upstream on loopback, which a node refuses as a destination
# unless its allow-list names it; a test that checks the refusal passes a narrower list.
LOOPBACK_ALLOWED = "127.0.0.1, localhost, ::1"


def postgres_admin_dsn() -> str | None:
    return os.environ.get("CONNECTOR_TEST_POSTGRES_DSN") or None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StationProcess:
    """A real station authority: `python -m connector station run DIR`."""

    def __init__(self, directory: Path, *, port: int | None = None, env: dict[str, str] | None = None,
                 init: bool = True, token_alg: str = "ES256") -> None:
        from connector.station import config as station_config

        self.directory = directory
        self.port = port or free_port()
        if init:
            station_config.init_directory(directory, port=self.port, token_alg=token_alg)
        self.settings = station_config.load(directory)
        self.url = self.settings.issuer
        self.admin_token = station_config.read_admin_token(directory)
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = directory / "station.log"

    def start(self, timeout: float = 90.0) -> "StationProcess":
        env = {**os.environ, **self.env}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "connector", "station", "run", str(self.directory)],
                                     stdout=subprocess.PIPE, stderr=log, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"station did not start: {line!r}; log: {self.log_path.read_text()[-3000:]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("station did not answer /health")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def admin(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        resp = httpx.request(method, self.url + path, json=body, timeout=30,
                             headers={"Authorization": f"Bearer {self.admin_token}"})
        if expect is not None:
            assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def enrol(self, directory: Path, name: str, *, port: int, jurisdiction: str = "HK", tls: bool = False,
              database_url: str | None = None) -> None:
        """What `connector init DIR --station URL --admin-token T --jurisdiction J` does, in-process."""
        import asyncio

        from connector.identity.enrol import AdminTokenEnroller, init_enrolled_node

        asyncio.run(init_enrolled_node(directory, name=name, station_url=self.url,
                                       enroller=AdminTokenEnroller(self.url, self.admin_token),
                                       jurisdiction=jurisdiction, port=port, database_url=database_url, tls=tls))


class NodeProcess:
    def __init__(self, directory: Path, name: str, *, database_url: str | None = None, tck: bool = False,
                 participant_id: str | None = None, env: dict[str, str] | None = None, port: int | None = None,
                 init: bool = True, jurisdiction: str = "", station: "StationProcess | None" = None,
                 tls: bool = False) -> None:
        self.directory = directory
        self.port = port or free_port()
        if init and station is not None:  # enrolled at a real station: DATs instead of the dev secret
            station.enrol(directory, name, port=self.port, jurisdiction=jurisdiction or "HK", tls=tls,
                          database_url=database_url)
        elif init:
            config_mod.init_directory(directory, name=name, port=self.port, shared_secret=SHARED_SECRET,
                                      database_url=database_url, tck=tck, jurisdiction=jurisdiction,
                                      participant_id=participant_id or f"urn:hks:participant:{name.lower()}-{secrets.token_hex(3)}")
        self.settings = config_mod.load(directory)
        self.url = self.settings.node.public_url
        # under mTLS the tests' own client trusts the station CA (and presents no certificate)
        self.verify: Any = str(directory / "keys" / "station-ca.crt") if self.settings.tls_enabled else True
        self.env = {"CONNECTOR_DSP_ALLOWED_DESTINATIONS": LOOPBACK_ALLOWED, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log_path = directory / "node.log"

    @property
    def participant_id(self) -> str:
        return self.settings.node.participant_id

    def headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.settings.management_api_key}

    def start(self, extra_env: dict[str, str] | None = None, timeout: float = 90.0) -> "NodeProcess":
        env = {k: v for k, v in os.environ.items() if k != "CONNECTOR_FAILPOINTS"}
        env.update(self.env)
        env.update(extra_env or {})
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "connector", "run", str(self.directory)],
                                     stdout=subprocess.PIPE, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"node did not start: {line!r}; log: {self.log_path.read_text()[-3000:]}")
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1, verify=self.ssl()).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("node did not answer /health")

    def replica(self, directory: Path) -> "NodeProcess":
        """Another process of this node (not started): its directory copied (the same participant,
        keys, configuration and database), listening on a port of its own."""
        shutil.copytree(self.directory, directory)
        port = free_port()
        other = NodeProcess(directory, "replica", init=False, env={**self.env, "CONNECTOR_NODE_LISTEN_PORT": str(port)})
        other.url = f"http://127.0.0.1:{port}"
        return other

    def ssl(self) -> Any:
        """httpx `verify=` for this node: True, or the station CA under mTLS."""
        if self.verify is True:
            return True
        import ssl
        return ssl.create_default_context(cafile=self.verify)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    # management API helpers (sync: simple and fine for tests)
    def api(self, method: str, path: str, body: Any = None, expect: int | None = None, **kw: Any) -> Any:
        kw.setdefault("verify", self.ssl())
        resp = httpx.request(method, self.url + "/api/v1" + path, json=body, headers=self.headers(), timeout=30, **kw)
        if expect is not None:
            assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def publish(self, asset_id: str = "dataset-1", offer_id: str = "offer-1",
                policy: dict | None = None, data_address: dict | None = None) -> None:
        """An asset, a policy and an offer. Without `data_address` the asset can be negotiated but not
        transferred (a transfer of it is refused at start)."""
        asset = {"id": asset_id, "title": asset_id} | ({"dataAddress": data_address} if data_address else {})
        self.api("POST", "/assets", asset, expect=201)
        pid = f"policy-{asset_id}"
        self.api("POST", "/policies", {"id": pid, "policy": policy or {"permission": [{"action": "use"}]}}, expect=201)
        self.api("POST", "/offers", {"id": offer_id, "assetIds": [asset_id], "accessPolicyId": pid,
                                     "contractPolicyId": pid}, expect=201)

    def negotiate(self, provider: "NodeProcess", dataset: str = "dataset-1", offer_id: str = "offer-1",
                  version: str | None = None) -> dict:
        body = {"counterPartyAddress": provider.url, "counterPartyId": provider.participant_id,
                "datasetId": dataset, "offerId": offer_id}
        if version:
            body["dspVersion"] = version
        return self.api("POST", "/negotiations", body, expect=201)

    def catalog(self, provider: "NodeProcess", version: str | None = None, expect: int | None = 200) -> Any:
        """The management API's catalog request to `provider` (its id given, as station mode requires)."""
        body = {"counterPartyAddress": provider.url, "counterPartyId": provider.participant_id}
        if version:
            body["dspVersion"] = version
        return self.api("POST", "/catalog/request", body, expect=expect)

    def wait_state(self, pid: str, states: str = "FINALIZED", timeout: int = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            neg = self.api("GET", f"/negotiations/{pid}?waitFor={states}&timeout=10", expect=200)
            if neg["state"] in states.split(",") or time.monotonic() > deadline:
                return neg


def pull_suspended_midway(consumer: NodeProcess, transfer_id: str, suspender: NodeProcess, provider_pid: str,
                          at: int = 1_000_000) -> int:
    """Read a transfer's data through the consumer slowly and, once `at` bytes have arrived, suspend the
    transfer at `suspender` (a provider process); returns the bytes received if the stream is not cut."""
    import asyncio

    async def slow_pull() -> int:
        async with httpx.AsyncClient(timeout=60, headers=consumer.headers()) as client:
            async with client.stream("GET", f"{consumer.url}/api/v1/transfers/{transfer_id}/data") as resp:
                assert resp.status_code == 200
                received = 0
                async for chunk in resp.aiter_bytes():
                    received += len(chunk)
                    if received > at and received - len(chunk) <= at:
                        await asyncio.to_thread(suspender.api, "POST", f"/transfers/{provider_pid}/suspend",
                                                {"reason": "maintenance"}, 200)
                    await asyncio.sleep(0.01)  # a slow reader
                return received

    return asyncio.run(slow_pull())
