"""Driving time in tests: a clock moved forward by hand, injected into nodes run in the test process.

`ManualClock` is the wall clock plus an offset that only `advance` changes: time still passes as
usual (a retry's backoff, a lease renewal, a long poll keep working), and a test jumps over a
deadline, a token's lifetime or a retention period instead of sleeping through it.

`InProcessNode` is a real node (its own directory, SQLite file, keys, HTTP port, outbox, data plane)
served from the test's event loop, so that the test holds the node's clock."""
from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import httpx

from connector import config as config_mod
from connector.clock import Clock
from connector.node.app import Node
from connector.serving import listen
from support.nodes import LOOPBACK_ALLOWED, SHARED_SECRET, free_port


class ManualClock(Clock):
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class InProcessNode:
    def __init__(self, directory: Path, name: str, clock: Clock, *, jurisdiction: str = "HK") -> None:
        self.port = free_port()
        config_mod.init_directory(directory, name=name, port=self.port, shared_secret=SHARED_SECRET,
                                  jurisdiction=jurisdiction,
                                  participant_id=f"urn:hks:participant:{name.lower()}-{secrets.token_hex(3)}")
        env = {**os.environ, "CONNECTOR_DSP_ALLOWED_DESTINATIONS": LOOPBACK_ALLOWED}
        self.settings = config_mod.load(directory, environ=env)
        self.directory = directory
        self.url = self.settings.node.public_url
        self.participant_id = self.settings.node.participant_id
        self.node = Node(self.settings, clock=clock)
        self._runner: Any = None

    async def __aenter__(self) -> "InProcessNode":
        self._runner, _ = await listen(self.node.make_app(), "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._runner.cleanup()

    async def api(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        async with httpx.AsyncClient(timeout=30) as client:
            resp = await client.request(method, self.url + "/api/v1" + path, json=body,
                                        headers={"X-Api-Key": self.settings.management_api_key})
        if expect is not None:
            assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp
