"""Provider, HTTP push: a STARTED push transfer sends its data to the consumer's endpoint (again
after a restart), decided like a pull and stopped like one."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import aiohttp
import sqlalchemy as sa

from ...protocol.messages import endpoint_property
from ...protocol.negotiation import Role
from ...protocol.transfer import TransferEvent, TransferState
from ...store.tables import transfers
from ..transform import kind_of, transformer
from ..transfers import PUSH
from ..usage import joined, ours
from ...policy.explain import M_

from .common import _STATE, AccessRefused, ByteMeter, Grant, Json, TransferStopped, UpstreamError, log, transformed
from .sources import _file_chunks


class Push:
    def on_started(self, row: Json) -> None:
        if row["role"] == Role.PROVIDER.value and row["format"] == PUSH:
            task = asyncio.get_running_loop().create_task(self._push(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def resume_pushes(self) -> None:
        """After a restart: pushes that were started and not finished go again (the consumer overwrites)."""
        query = sa.select(transfers).where(transfers.c.role == Role.PROVIDER.value, transfers.c.format == PUSH,
                                           transfers.c.state == TransferState.STARTED.value)
        for row in await self.node.db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()]):
            self.on_started(row)

    async def _push(self, row: Json) -> None:
        address = row["data_address"] or {}
        purpose = endpoint_property(address, "purpose")
        try:
            grant = await self._settle(
                await self.node.db.transaction(self._decide_access, row["id"], purpose, self.clock.now()))
        except AccessRefused as exc:
            await self.node.transfers.act(row["id"], TransferEvent.TERMINATE, joined(" ", exc.reasons))
            return
        headers = {"Content-Type": grant.asset["content_type"]}
        auth = endpoint_property(address, "authorization")
        if auth:
            auth_type = (endpoint_property(address, "authType") or "bearer").lower()
            headers["Authorization"] = f"Bearer {auth}" if auth_type == "bearer" else auth
        sent = [0]
        meter = ByteMeter(self.node.db, self.clock, row["id"])
        try:
            body = self._guarded(row["id"], self._push_body(grant, sent, meter))
            async with self.node.session.put(address["endpoint"], data=body, headers=headers, allow_redirects=False,
                                             timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as resp:
                if resp.status >= 300:
                    raise UpstreamError(f"the consumer's endpoint answered {resp.status}")
            await meter.close()
            self.node.metrics.data_bytes("pushed", sent[0])
            if await self._stopped(row["id"]):  # suspended or terminated as the last bytes went
                raise TransferStopped(f"transfer {row['id']} was stopped while its data was pushed")
            await self.node.transfers.act(row["id"], TransferEvent.COMPLETE)
        except Exception as exc:  # noqa: BLE001 - recorded on the transfer, which ends
            await meter.close()
            # the source refused at this access (no longer allowed, unavailable): its own sentences
            refused = next((e for e in (exc, exc.__cause__) if isinstance(e, AccessRefused)), None)
            if sent[0] == 0:
                await self._give_back(grant, refused.logged if refused is not None else [ours(M_(
                    "the push failed before any byte was sent: %(error)s"), error=type(exc).__name__)])
            if isinstance(exc, TransferStopped) or isinstance(exc.__cause__, TransferStopped) \
                    or await self._stopped(row["id"]):
                # suspended (a resume pushes again) or terminated: the state says so already
                log.warning("push of transfer %s stopped after %d bytes: the transfer is no longer STARTED",
                            row["id"], sent[0])
                return
            # The detail (a host, a port, a status) stays in our log: the termination goes to the peer.
            log.warning("push of transfer %s failed: %s %s", row["id"], type(exc).__name__, exc)
            why = joined(" ", refused.reasons) if refused is not None else ours(M_(
                "the push failed: the data could not be delivered to the push endpoint"))
            await self.node.transfers.act(row["id"], TransferEvent.TERMINATE, why)

    async def _push_body(self, grant: Grant, sent: list[int], meter: ByteMeter) -> AsyncIterator[bytes]:
        """The pushed data; `sent[0]` and `meter` count the bytes handed to the HTTP client."""
        address = grant.asset["data_address"]
        kind = kind_of(grant.asset["content_type"], str(address.get("path", "")))
        tx = transformer(kind, grant.modification) if grant.modification.active and kind else None
        if address.get("type") == "file":
            chunks = _file_chunks(self._access_path(address["path"]))  # checked again at access
        else:
            self._access_upstream(address["url"])
            chunks = self._upstream_chunks(address["url"])
        async for out in (transformed(chunks, tx) if tx else chunks):
            sent[0] += len(out)
            await meter.add(len(out))
            yield out

    async def _stopped(self, transfer_id: str) -> bool:
        state = await self.node.db.read(lambda conn: conn.execute(_STATE, {"b_tid": transfer_id}).scalar())
        return state != TransferState.STARTED.value
