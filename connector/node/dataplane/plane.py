"""The data plane as the node wires it: one object combining the parts by concern."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ...clock import SYSTEM_CLOCK, Clock
from ..usage import PolicyCache

from .access import Access
from .pull import Pull
from .push import Push
from .receiver import Receiver
from .sources import Sources
from .tokens import Tokens, derive_key


class DataPlane(Sources, Tokens, Access, Pull, Push, Receiver):
    def __init__(self, node: Any) -> None:
        self.node = node
        # the node's one clock (tests drive it): token expiry, decisions, revocation checks, delete duties
        self.clock: Clock = getattr(node, "clock", SYSTEM_CLOCK)
        settings = node.settings
        self.data_root = Path(settings.dataplane_data_root).resolve()
        self.upstream_hosts = {h.lower() for h in settings.dataplane_upstream_hosts}
        self.token_ttl = settings.dataplane_token_ttl
        key_path = settings.directory / "keys" / "node.key"
        self._token_key = derive_key(key_path, "hks-dataplane-token")
        self._pseudonym_key = derive_key(key_path, "hks-pseudonymise")
        self.received_dir = settings.directory / "received"
        self.policies: PolicyCache = node.catalog.policies
        self._tasks: set[asyncio.Task] = set()
        # Streams in flight (pull and push), by transfer: set when this process commits a state other
        # than STARTED. Bounded by the streams in flight; what decides is the transfer's state in the
        # database, read again during a stream at most every REVOCATION_CHECK seconds, so a suspension
        # committed by another replica stops the stream too.
        self._streams: dict[str, asyncio.Event] = {}
