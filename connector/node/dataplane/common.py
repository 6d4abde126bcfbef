"""What the parts of the data plane share: the access's outcome (Grant, AccessRefused), the
errors of a stream, and the few constants they all use."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import sqlalchemy as sa
from aiohttp import web

from ...policy.explain import M_
from ...store.tables import transfer_bytes, transfers
from ..usage import ours
from ..transform import Modification
from ...errors import DataPlaneError

log = logging.getLogger("connector.dataplane")
Json = dict[str, Any]
CHUNK = 256 * 1024  # measured here: large blocking reads beat per-chunk thread hops
HTTP_ENDPOINT_TYPE = "https://w3id.org/idsa/v4.1/HTTP"
#: a consumer's transfer `error` when the provider's data stream broke off during a download (what
#: follows: the error's name and text, a technical detail); the console shows this part translated
BROKE_OFF = "the provider's data broke off: "
NO_DATA_ADDRESS = ours(M_("the asset has no data address: there is nothing this node could deliver"))
# a pull's and a computation's token, refused in the same words (message ids: see usage.ours)
TOKEN_DOES_NOT_VERIFY = ours(M_("the access token does not verify"))
TOKEN_OF_ANOTHER = ours(M_("the access token is for another transfer"))
TOKEN_EXPIRED = ours(M_("the access token has expired"))
AGREEMENT_GONE = ours(M_("the agreement or its asset no longer exists"))
PURPOSE_TOO_LONG = ours(M_("X-Usage-Purpose is too long"))

_STATE = sa.select(transfers.c.state).where(transfers.c.id == sa.bindparam("b_tid"))
#: a stream adds its bytes to its transfer's count at most this often (seconds), and at its end
BYTES_FLUSH_SECONDS = 1.0


#: outputs of a transformer made ahead of the writer (each up to a batch: memory stays bounded)
TRANSFORM_AHEAD = 2
_END = object()


async def transformed(chunks: AsyncIterator[bytes], tx: Any, ahead: int = TRANSFORM_AHEAD) -> AsyncIterator[bytes]:
    """`chunks` through the transformer `tx`, its batches in a worker thread, made up to `ahead`
    outputs before the writer takes them, in a task of its own: the next batch is modified while
    the peer reads the last (one after the other, each waiting for the other, a CSV went through
    the data plane at half the transformer's rate). An error of the source or the transformer
    comes out here, where the writer takes the next output."""
    queue: asyncio.Queue = asyncio.Queue(ahead)

    async def produce() -> None:
        try:
            async for chunk in chunks:
                out = await asyncio.to_thread(tx.feed, chunk)
                if out:
                    await queue.put(out)
            tail = await asyncio.to_thread(tx.finish)
            if tail:
                await queue.put(tail)
            await queue.put(_END)
        except Exception as exc:  # noqa: BLE001 - handed to the writer, which decides
            await queue.put(exc)

    producer = asyncio.create_task(produce())
    try:
        while (out := await queue.get()) is not _END:
            if isinstance(out, Exception):
                raise out
            yield out
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer


def _has_source(asset: Json) -> bool:
    return (asset.get("data_address") or {}).get("type") in ("file", "http")


def token_revoked(state: str) -> str:
    """Suspension and termination revoke a transfer's token at once."""
    return ours(M_("the access token was revoked: the transfer is %(state)s"), state=state)


class AccessRefused(DataPlaneError):
    """A refused access: `reasons` are what the consumer is told (our rule, never our network);
    `logged`, what our own access log keeps (the same, or with the outside detail our operator may
    see: an upstream's status, an OS error)."""

    def __init__(self, status: int, reasons: list[str], logged: list[str] | None = None):
        super().__init__("; ".join(reasons))
        self.status = status
        self.reasons = reasons
        self.logged = reasons if logged is None else logged
        self.pending: list = []  # log entries queued in the outbox with the refusal


@dataclass
class Grant:
    transfer: Json
    asset: Json
    modification: Modification
    duties: list = field(default_factory=list)
    access_id: int | None = None
    log_jws: str | None = None  # a logging duty: this entry must be accepted before any byte leaves
    pending: list = field(default_factory=list)  # log entries queued in the outbox


class UpstreamError(DataPlaneError):
    pass


class TransferStopped(DataPlaneError):
    pass


def abort(request: web.Request) -> None:
    """Cut the connection of a response already under way, so the client sees an error."""
    if request.transport is not None:
        request.transport.abort()


def add_transfer_bytes(conn: Any, transfer_id: str, count: int, now: float) -> None:
    """Add `count` to a transfer's byte count (one upsert: concurrent streams and replicas add up)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(transfer_bytes).values(transfer_id=transfer_id, bytes=count, updated_at=now)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[transfer_bytes.c.transfer_id],
        set_={"bytes": transfer_bytes.c.bytes + statement.excluded.bytes, "updated_at": statement.excluded.updated_at}))


class ByteMeter:
    """The bytes of one stream, added to its transfer's count in the database at most every
    BYTES_FLUSH_SECONDS and at the end (`close`): the console's progress, the same on every replica,
    without a write per chunk. A failed write is logged and retried with the next; the stream goes on."""

    def __init__(self, db: Any, clock: Any, transfer_id: str) -> None:
        self.db, self.clock, self.transfer_id = db, clock, transfer_id
        self.pending = 0
        self.total = 0
        self._due = clock.monotonic() + BYTES_FLUSH_SECONDS

    async def add(self, count: int) -> None:
        self.pending += count
        self.total += count
        if self.clock.monotonic() >= self._due:
            await self.flush()

    async def flush(self) -> None:
        self._due = self.clock.monotonic() + BYTES_FLUSH_SECONDS
        if not self.pending:
            return
        count, self.pending = self.pending, 0
        try:
            await self.db.transaction(add_transfer_bytes, self.transfer_id, count, self.clock.now())
        except Exception:  # noqa: BLE001 - the count is progress shown, never a decision: the data goes on
            self.pending += count
            log.exception("transfer %s: its byte count could not be written", self.transfer_id)

    async def close(self) -> None:
        await self.flush()
