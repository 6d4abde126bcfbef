"""Wiring the identity into a node process: which `Identity` the configuration selects, the
TLS contexts for optional mTLS between nodes, and the SHA-256 of the peer's client certificate
(``peer_cert_sha256``), which the token check requires to be in ``transportCertsSha256``.

The DSP-level check that a message's claimed sender is the token's subject, which answers with
a DSP error body, is the node's: ``connector/node/sender.py``.
"""
from __future__ import annotations

import hashlib
import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web

from ..protocol.errors import Unauthenticated
from . import DevSharedSecret
from .dat import (DEFAULT_MAX_LIFETIME, DatClient, DatVerifier, SqliteReplayStore, StationIdentity,
                  StationTrust)
from .edcmock import MODE as EDC_MOCK_MODE, EdcIamMock
from .keys import load_private_key

log = logging.getLogger("connector.identity")




def build_identity(settings: Any) -> Any:
    """The node's Identity: the station's DATs, or the explicit dev shared-secret mode."""
    if settings.identity_mode == "station":
        keys = Path(settings.directory) / "keys"
        trust = StationTrust(settings.identity_station_url)
        client = DatClient(trust, settings.node.participant_id, load_private_key(keys / "node.key"))
        # a token is accepted here only if this node is its one audience
        verifier = DatVerifier(trust, _replay_store(settings),
                               audience=settings.node.participant_id, require_transport_cert=settings.tls_enabled,
                               max_lifetime=settings.identity_max_token_lifetime)
        return StationIdentity(client, verifier)
    if settings.identity_mode == EDC_MOCK_MODE:
        return EdcIamMock(settings.node.participant_id)
    claims = {"organisation": settings.node.name}
    if settings.node.jurisdiction:
        claims["jurisdiction"] = settings.node.jurisdiction
    return DevSharedSecret(settings.node.participant_id, settings.identity_shared_secret, claims,
                           also_accept=(settings.node.public_url.rstrip("/"),))


def _replay_store(settings: Any) -> Any:
    """Replicas on one PostgreSQL share the DAT replay state there; a node on SQLite keeps identity.db."""
    if settings.database_url.startswith("postgresql"):
        from .db_replay import DatabaseReplayStore
        return DatabaseReplayStore(settings.database_url)
    return SqliteReplayStore(Path(settings.directory) / "identity.db")


async def start_identity(identity: Any) -> list:
    """Open what the identity needs; returns background coroutines to run as tasks."""
    if isinstance(identity, StationIdentity):
        await identity.verifier.replay.open()  # type: ignore[attr-defined]
        await identity.client.trust.start()
        return [identity.client.run_refresher(), identity.client.trust.run_revocation_feed()]
    return []


async def stop_identity(identity: Any) -> None:
    if isinstance(identity, StationIdentity):
        await identity.client.trust.close()
        await identity.verifier.replay.close()  # type: ignore[attr-defined]


def server_ssl_context(settings: Any) -> ssl.SSLContext | None:
    """TLS for the node's listener under mTLS: the station certificate, client certificates
    from the station CA requested (required on DSP paths by the token check)."""
    if not settings.tls_enabled:
        return None
    keys = Path(settings.directory) / "keys"
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(keys / "station-ca.crt"))
    ctx.load_cert_chain(str(keys / "node.crt"), str(keys / "node.key"))
    ctx.verify_mode = ssl.CERT_OPTIONAL  # the management API and /health take no client certificate
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def client_ssl_context(settings: Any) -> ssl.SSLContext | None:
    """TLS for calls to peers under mTLS: present the station certificate, trust the station CA."""
    if not settings.tls_enabled:
        return None
    keys = Path(settings.directory) / "keys"
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(keys / "station-ca.crt"))
    ctx.load_cert_chain(str(keys / "node.crt"), str(keys / "node.key"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def peer_cert_sha256(request: web.Request) -> str | None:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


class StationCallers:
    """Verifies callers' DATs for a service that makes no DSP calls of its own (the
    clearing house): the verifier half of StationIdentity, opened on first use. Accepts only
    tokens whose one audience is `audience` (the service's own id)."""

    mode = "station"

    def __init__(self, station_url: str, replay_path: Path, *, audience: str,
                 max_lifetime: float = DEFAULT_MAX_LIFETIME, replay: Any = None) -> None:
        """`replay`: the replay store (default: an SQLite file at `replay_path`)."""
        self.trust = StationTrust(station_url)
        self.verifier = DatVerifier(self.trust, replay or SqliteReplayStore(replay_path), audience=audience,
                                    max_lifetime=max_lifetime)
        self._opened = False
        self._lock = asyncio.Lock()
        self._feed: asyncio.Task | None = None

    async def outbound_authorization(self, recipient: str) -> str:  # pragma: no cover - never calls out
        raise Unauthenticated("this service holds no token of its own")

    async def open(self) -> None:
        async with self._lock:
            if not self._opened:
                await self.verifier.replay.open()  # type: ignore[attr-defined]
                await self.trust.start()
                self._feed = asyncio.create_task(self.trust.run_revocation_feed(), name="revocation-feed")
                self._opened = True

    async def verify(self, authorization: str | None) -> Any:
        if not self._opened:
            await self.open()
        return await self.verifier.verify(authorization)

    async def close(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
            await asyncio.gather(self._feed, return_exceptions=True)
        if self._opened:
            await self.trust.close()
            await self.verifier.replay.close()  # type: ignore[attr-defined]
