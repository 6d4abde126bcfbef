"""Provider, HTTP pull: the token is checked, the access decided, and the data streamed with
bounded memory, stopped as soon as the transfer is suspended or terminated."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from ...protocol.errors import echo
from ...protocol.transfer import TransferState
from ...policy.explain import M_
from ..transform import TransformError, kind_of, transformer
from ..usage import ours

from .common import (NO_DATA_ADDRESS, PURPOSE_TOO_LONG, _STATE, AccessRefused, ByteMeter, Grant, Json,
                     TransferStopped, UpstreamError, abort, log, transformed)
from .sources import RangeNotSatisfiable, _file_chunks, _parse_range

#: how often a stream in flight reads its transfer's state again (seconds)
REVOCATION_CHECK = 0.25


class Pull:
    async def serve(self, request: web.Request) -> web.StreamResponse:
        transfer_id = request.match_info["tid"]
        purpose = request.headers.get("X-Usage-Purpose") or None
        try:
            token_hash = self.token_hash(request.headers.get("Authorization"))
            if purpose is not None and len(purpose) > 512:
                raise AccessRefused(400, [PURPOSE_TOO_LONG])
            grant = await self._settle(
                await self.node.db.transaction(self._decide_access, transfer_id, purpose, self.clock.now(), token_hash))
        except AccessRefused as exc:
            # the node's own log says why (never the token: only the transfer id from the path)
            log.warning("transfer %s: access refused (%s): %s", echo(transfer_id, 100), exc.status,
                        "; ".join(exc.reasons)[:500])
            return web.json_response({"error": "access refused", "status": exc.status, "reasons": exc.reasons},
                                     status=exc.status)
        return await self._stream(request, grant)

    async def _stream(self, request: web.Request, grant: Grant) -> web.StreamResponse:
        asset = grant.asset
        address = asset["data_address"]
        content_type = asset["content_type"]
        kind = kind_of(content_type, str(address.get("path", "")))
        modify = grant.modification.active and kind is not None
        try:
            status, headers = 200, {"Content-Type": content_type}
            if address.get("type") == "file":
                path = self._access_path(address["path"])  # checked again at access
                if not path.is_file():
                    raise AccessRefused(404, [ours(M_("the asset's file is missing"))])
                start, end = 0, None
                if not modify and request.headers.get("Range"):  # a range of transformed data is ill-defined
                    size = path.stat().st_size
                    start, end = _parse_range(request.headers["Range"], size)
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
                    headers["Content-Length"] = str(end - start)
                chunks = _file_chunks(path, start, end)
            elif address.get("type") == "http":
                self._access_upstream(address["url"])  # checked again at access
                chunks = self._upstream_chunks(address["url"], await self._open_upstream(address["url"]))
            else:  # refused at transfer start since; an older transfer still ends here, never in a 500
                raise AccessRefused(409, [NO_DATA_ADDRESS])
        except RangeNotSatisfiable as exc:
            await self._give_back(grant, [exc.reason])
            log.warning("transfer %s: access refused (416): %s", grant.transfer["id"], exc)
            return web.json_response({"error": str(exc)}, status=416)
        except AccessRefused as exc:
            # nothing was delivered: the use is given back and the access is not recorded as permitted
            await self._give_back(grant, exc.logged)
            log.warning("transfer %s: the delivery failed before any byte was sent (%s): %s",
                        grant.transfer["id"], exc.status, "; ".join(exc.logged))
            return web.json_response({"error": "access refused", "reasons": exc.reasons}, status=exc.status)
        response = web.StreamResponse(status=status, headers=headers)
        if "Content-Length" not in headers:
            response.enable_chunked_encoding()
        await response.prepare(request)
        tx = transformer(kind, grant.modification) if modify else None
        transfer_id = grant.transfer["id"]
        # A failure after this point aborts the connection: the consumer sees an error,
        # never a truncated success. So does a suspension or termination mid-stream.
        meter = ByteMeter(self.node.db, self.clock, transfer_id)
        try:
            # Guarded where it is written: a stop holds back the outputs made ahead, too.
            async for out in self._guarded(transfer_id, transformed(chunks, tx) if tx else chunks):
                await response.write(out)
                await meter.add(len(out))
            await response.write_eof()
        except (TransferStopped, TransformError, UpstreamError, aiohttp.ClientError, asyncio.TimeoutError,
                OSError) as exc:
            log.warning("transfer %s: the data stream was cut after %d bytes: %s", transfer_id, meter.total, exc)
            if meter.total == 0:
                await self._give_back(grant, [ours(M_("the delivery failed before any byte was sent: %(error)s"),
                                                   error=type(exc).__name__)])
            abort(request)
        finally:
            await meter.close()
        self.node.metrics.data_bytes("served", meter.total)
        return response

    def on_state(self, row: Json) -> None:
        """Any state but STARTED, committed here, stops this process's streams of it at once."""
        stopped = self._streams.get(row["id"])
        if stopped is not None and row["state"] != TransferState.STARTED.value:
            stopped.set()

    async def _guarded(self, transfer_id: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`chunks`, stopped (TransferStopped) as soon as the transfer is no longer STARTED: told by
        on_state in this process, or read from the database (another replica's suspension)."""
        stopped = self._streams.setdefault(transfer_id, asyncio.Event())
        next_check = self.clock.monotonic() + REVOCATION_CHECK
        try:
            async for chunk in chunks:
                if not stopped.is_set() and self.clock.monotonic() >= next_check:
                    state = await self.node.db.read(lambda conn: conn.execute(_STATE, {"b_tid": transfer_id}).scalar())
                    if state != TransferState.STARTED.value:
                        stopped.set()
                    next_check = self.clock.monotonic() + REVOCATION_CHECK
                if stopped.is_set():
                    raise TransferStopped(f"transfer {transfer_id} was stopped while its data streamed")
                yield chunk
        finally:
            if self._streams.get(transfer_id) is stopped:
                del self._streams[transfer_id]
