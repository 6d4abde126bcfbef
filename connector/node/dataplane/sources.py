"""The provider's data sources: file assets under the data root and HTTP upstreams on the
allowed list, validated when an asset is created and again at every access; chunked reads."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlparse

import aiohttp

from ...policy.explain import M_, Msg
from ...protocol.errors import echo
from ..destinations import DestinationRefused, forbidden, parse_destination
from ..usage import ours

from .common import CHUNK, AccessRefused, Json, log
from ...errors import DataPlaneError


class Sources:
    def check_data_address(self, address: Json) -> Json:
        """Validate an asset's data address when the asset is created. Raises ValueError."""
        kind = address.get("type")
        if kind == "file":
            path = address.get("path")
            if not isinstance(path, str) or not path:
                raise ValueError("dataAddress: a file source needs a 'path' relative to the data root")
            self._file_path(path)
            return {"type": "file", "path": path}
        if kind == "http":
            url = address.get("url")
            if not isinstance(url, str):
                raise ValueError("dataAddress: an http source needs a 'url'")
            self._check_upstream(url)
            return {"type": "http", "url": url}
        raise ValueError("dataAddress: 'type' must be 'file' or 'http'")

    def _file_path(self, relative: str) -> Path:
        candidate = (self.data_root / relative).resolve()
        if candidate != self.data_root and self.data_root not in candidate.parents:
            raise ValueError(f"dataAddress: path {echo(relative)} is outside the data root")
        return candidate

    def _access_path(self, relative: str) -> Path:
        """An asset's file at an access, under the data root still. The consumer is told the rule;
        the path (ours) is only in our own access log."""
        try:
            return self._file_path(relative)
        except ValueError:
            raise AccessRefused(403, [OUTSIDE_DATA_ROOT], [ours(M_(
                "the asset's file %(path)s is outside this node's data root: refused"), path=echo(relative))]) from None

    def _access_upstream(self, url: str) -> None:
        """An asset's HTTP source at an access, still allowed; told like `_access_path`."""
        try:
            self._check_upstream(url)
        except ValueError:
            raise AccessRefused(403, [UPSTREAM_NOT_ALLOWED], [ours(M_(
                "the asset's HTTP source %(url)s is not allowed by this node's rules ([dataplane] upstream_hosts, "
                "[dsp] allowed_destinations): refused"), url=echo(url))]) from None

    def _check_upstream(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("dataAddress: the url must be http(s)")
        if parsed.hostname.lower() not in self.upstream_hosts:
            raise ValueError(f"dataAddress: host {echo(parsed.hostname)} is not on the allowed upstream list "
                             "([dataplane] upstream_hosts)")
        try:
            parse_destination(url)
        except DestinationRefused as exc:
            raise ValueError(f"dataAddress: the url is refused: {exc.reason}") from None

    async def check_upstream_address(self, url: str) -> None:
        """An HTTP upstream must also resolve to public addresses unless [dsp] allowed_destinations
        names it (checked when the asset is created; the HTTP client checks again at every connect)."""
        try:
            await self.node.destinations.check_resolved(parse_destination(url), "the asset's url")
        except DestinationRefused as exc:
            raise ValueError(f"dataAddress: {exc.reason}") from None

    async def _open_upstream(self, url: str) -> aiohttp.ClientResponse:
        """Connect and read the upstream's status before our own response starts."""
        silence = self.node.settings.dataplane_upstream_timeout
        timeout = aiohttp.ClientTimeout(total=None, connect=min(10, silence), sock_read=silence)
        # The consumer learns that the source failed, never how: our network is not its business.
        # Our access log keeps how (the upstream's status or the error, as they are) for our operator.
        try:
            resp = await self.node.session.get(url, timeout=timeout, allow_redirects=False)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("the upstream of an asset could not be read%s: %s %s",
                        " (refused: not a public address)" if forbidden(exc) else "", type(exc).__name__, exc)
            detail: object = Msg(M_("not a public address ([dsp] allowed_destinations)")) if forbidden(exc) \
                else f"{type(exc).__name__}: {exc}"[:300]
            raise _unavailable(detail) from None
        if resp.status >= 300:
            resp.release()
            log.warning("the upstream %s answered %s%s", url, resp.status,
                        " (redirects are not followed)" if 300 <= resp.status < 400 else "")
            status = f"{resp.status} {resp.reason or ''}".strip()[:100]
            raise _unavailable(Msg(M_("it answered %(status)s (redirects are not followed)"), status=status)
                               if resp.status < 400 else Msg(M_("it answered %(status)s"), status=status))
        return resp

    async def _upstream_chunks(self, url: str, resp: aiohttp.ClientResponse | None = None) -> AsyncIterator[bytes]:
        resp = resp or await self._open_upstream(url)
        try:
            async for chunk in resp.content.iter_chunked(CHUNK):
                yield chunk
        finally:
            resp.release()


#: what the consumer is told when an asset's source is no longer allowed at an access (our rule only)
OUTSIDE_DATA_ROOT = ours(M_("the asset's file is outside this node's data root: refused"))
UPSTREAM_NOT_ALLOWED = ours(M_("the asset's HTTP source is not allowed by this node's rules: refused"))
SOURCE_UNAVAILABLE = ours(M_("the asset's data source is unavailable"))


def _unavailable(detail: object) -> AccessRefused:
    return AccessRefused(502, [SOURCE_UNAVAILABLE],
                         [ours(M_("the asset's data source is unavailable: %(detail)s"), detail=detail)])


class RangeNotSatisfiable(DataPlaneError, ValueError):
    """A Range header this node does not serve; `reason` is the sentence with its message id."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _parse_range(header: str, size: int) -> tuple[int, int]:
    """One byte range (RFC 9110): (start, end exclusive)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        raise RangeNotSatisfiable(ours(M_("only a single byte range is supported")))
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            length = int(last)
            start, end = max(0, size - length), size
        else:
            start = int(first)
            end = min(size, int(last) + 1) if last else size
    except ValueError:
        raise RangeNotSatisfiable(ours(M_("malformed Range %(range)s"), range=echo(header))) from None
    if start >= size or start >= end:
        raise RangeNotSatisfiable(ours(M_("range %(range)s is outside the %(size)s bytes"), range=echo(header),
                                       size=size))
    return start, end


async def _file_chunks(path: Path, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
    # Blocking 256 KiB reads on the loop: measured faster than a thread hop per chunk.
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            chunk = fh.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
            await asyncio.sleep(0)
