"""What the parts of the data plane share: the access's outcome (Grant, AccessRefused), the
errors of a stream, and the few constants they all use."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from ...store.tables import transfers
from ..transform import Modification
from ...errors import DataPlaneError

log = logging.getLogger("connector.dataplane")
Json = dict[str, Any]
CHUNK = 256 * 1024  # measured here: large blocking reads beat per-chunk thread hops
HTTP_ENDPOINT_TYPE = "https://w3id.org/idsa/v4.1/HTTP"
NO_DATA_ADDRESS = "the asset has no data address: there is nothing this node could deliver"
_STATE = sa.select(transfers.c.state).where(transfers.c.id == sa.bindparam("b_tid"))


def _has_source(asset: Json) -> bool:
    return (asset.get("data_address") or {}).get("type") in ("file", "http")


class AccessRefused(DataPlaneError):
    def __init__(self, status: int, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.status = status
        self.reasons = reasons
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
