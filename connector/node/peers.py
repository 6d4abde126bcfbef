"""Talking to other nodes on behalf of the management API: version discovery and catalog requests."""
from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

from ..bodies import BodyTooLarge, read_limited
from ..protocol.errors import ProtocolError, echo
from ..errors import NodeError

Json = dict[str, Any]
WELL_KNOWN = "/.well-known/dspace-version"
VERSION_ALIASES = {"2025-1": "2025-1", "2025/1": "2025-1", "2024-1": "2024-1", "2024/1": "2024-1"}


class PeerError(NodeError):
    """A peer could not be reached or answered something unusable: 502. The message names the peer
    (its participant id, or the part of the protocol that failed) and our rule; the URL, host,
    port and the network library's text go in ``detail``, which is logged, never answered."""

    status, code, expose = 502, "PeerFailed", True

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class PeerDirectory:
    def __init__(self, session: aiohttp.ClientSession, codec: Any, identity: Any, ttl: float = 300.0) -> None:
        self.session = session
        self.codec = codec
        self.identity = identity
        self.ttl = ttl
        self._versions: dict[str, tuple[float, dict[str, str]]] = {}

    async def versions(self, root: str) -> dict[str, str]:
        """{version: DSP base URL} advertised at ROOT/.well-known/dspace-version (cached)."""
        root = root.rstrip("/")
        hit = self._versions.get(root)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        url = root + WELL_KNOWN
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                if resp.status != 200:
                    raise PeerError(f"the peer's {WELL_KNOWN} answered {resp.status}", detail=url)
                doc = orjson.loads(await read_limited(resp, 256 * 1024))
        except (aiohttp.ClientError, OSError, TimeoutError, orjson.JSONDecodeError, BodyTooLarge) as exc:
            raise PeerError(f"the peer's {WELL_KNOWN} could not be read ({type(exc).__name__})",
                            detail=f"{url}: {exc}") from None
        found: dict[str, str] = {}
        for entry in doc.get("protocolVersions", []) if isinstance(doc, dict) else []:
            if not isinstance(entry, dict):
                continue
            version = VERSION_ALIASES.get(str(entry.get("version", "")).lstrip("v"))
            path = entry.get("path")
            if version and isinstance(path, str):
                found[version] = path if path.startswith("http") else root + "/" + path.strip("/")
        if not found:
            raise PeerError(f"the peer's {WELL_KNOWN} advertises no DSP version this node speaks (2025-1, 2024-1)",
                            detail=url)
        self._versions[root] = (time.monotonic() + self.ttl, found)
        return found

    async def resolve(self, root: str, prefer: str | None = None) -> tuple[str, str]:
        """(version, DSP base) to use with a peer: the preferred version, else the newest both speak."""
        found = await self.versions(root)
        if prefer:
            if prefer not in found:
                raise PeerError(f"the peer does not speak DSP {prefer} (it offers {', '.join(found)})")
            return prefer, found[prefer]
        for version in ("2025-1", "2024-1"):
            if version in found:
                return version, found[version]
        raise PeerError("no common DSP version")  # pragma: no cover

    async def request(self, method: str, url: str, version: str, neutral: Json | None = None, *,
                      recipient: str) -> Json:
        """A DSP call to the peer `recipient` (its participant id: our token is good there only)."""
        return (await self.request_with_links(method, url, version, neutral, recipient=recipient))[0]

    async def request_with_links(self, method: str, url: str, version: str, neutral: Json | None = None, *,
                                 recipient: str) -> tuple[Json, dict[str, str]]:
        """`request`, and the answer's `Link` header as {rel: URL} (e.g. a catalog's next page)."""
        headers = {"Authorization": await self.identity.outbound_authorization(recipient),
                   "Content-Type": "application/json"}
        data = self.codec.encode(neutral, version) if neutral is not None else None
        try:
            async with self.session.request(method, url, data=data, headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=15)) as resp:
                raw = await read_limited(resp, 16 * 1024 * 1024)
                status = resp.status
                links = _links(resp)
        except (aiohttp.ClientError, OSError, TimeoutError, BodyTooLarge) as exc:
            raise PeerError(f"peer {echo(recipient)} could not be reached ({type(exc).__name__})",
                            detail=f"{method} {url}: {exc}") from None
        try:
            body = await self.codec.decode(raw, version)
        except ProtocolError as exc:
            raise PeerError(f"peer {echo(recipient)} answered {status} with an unreadable body: {exc.reason}",
                            detail=f"{method} {url}") from None
        if status >= 400:
            reason = body.get("reason") or body.get("code") or status
            raise PeerError(f"peer {echo(recipient)} answered {status}: {echo(reason, quote=False)}",
                            detail=f"{method} {url}")
        return body, links


def _links(resp: aiohttp.ClientResponse) -> dict[str, str]:
    """{rel: URL} of the answer's Link headers (aiohttp's parser; a malformed header is ignored)."""
    try:
        parsed = resp.links
    except Exception:  # noqa: BLE001 - a peer's malformed Link header is no link
        return {}
    out: dict[str, str] = {}
    for rel, link in parsed.items():
        url = link.get("url")
        if isinstance(rel, str) and url is not None and rel not in out:
            out[rel] = str(url)
    return out
