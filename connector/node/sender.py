"""The node's DSP-level sender check: the party a DSP message claims to come from must be the
token's subject: the ``assignee`` of the offer in a ContractRequestMessage (the consumer), the
``assigner`` of the offer in a ContractOfferMessage and of the agreement in a
ContractAgreementMessage (the provider). A mismatch is a 401 DSP error naming both, and nothing
is changed. (A message for a process that belongs to another party is answered 404 by the DSP
layer, which does not reveal it.)

Also, under mTLS, the SHA-256 of the peer's client certificate is made available to the token
check (``PEER_CERT_SHA256``) for the duration of the request.

This was in ``identity/binding.py``; it moved here because it reads DSP messages and answers
with a DSP error body, which is the node's business, not the identity layer's.
"""
from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..identity.binding import peer_cert_sha256
from ..identity.dat import PEER_CERT_SHA256
from ..protocol.errors import ProtocolError, Unauthenticated
from ..protocol.messages import error_object

log = logging.getLogger("connector.identity")

_CLAIMED_SENDER = {
    "ContractRequestMessage": ("offer", "assignee"),
    "ContractOfferMessage": ("offer", "assigner"),
    "ContractAgreementMessage": ("agreement", "assigner"),
}
# DSP paths whose messages carry a party claim (POST only)
_CLAIM_SUFFIXES = ("/negotiations/request", "/negotiations/offers", "/request", "/offers", "/agreement")


def _party(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("@id")
    return value if isinstance(value, str) else None


def claimed_sender(neutral: dict[str, Any]) -> str | None:
    """The participant a DSP message says it comes from, if it says so (pure)."""
    where = _CLAIMED_SENDER.get(str(neutral.get("@type")))
    if where is None:
        return None
    container = neutral.get(where[0])
    return _party(container.get(where[1])) if isinstance(container, dict) else None


def identity_middleware(node: Any):  # noqa: ANN201
    station_mode = node.settings.identity_mode == "station"
    tls = node.settings.tls_enabled

    @web.middleware
    async def middleware(request: web.Request, handler):  # noqa: ANN001, ANN202
        if tls:
            token = PEER_CERT_SHA256.set(peer_cert_sha256(request))
        try:
            if station_mode and request.method == "POST" and request.path.startswith("/dsp/") \
                    and request.path.endswith(_CLAIM_SUFFIXES):
                refused = await _check_claimed_sender(node, request)
                if refused is not None:
                    return refused
            return await handler(request)
        finally:
            if tls:
                PEER_CERT_SHA256.reset(token)

    return middleware


async def _check_claimed_sender(node: Any, request: web.Request) -> web.Response | None:
    version = request.path.split("/")[2]
    verifier = getattr(node.identity, "verifier", None)
    if version not in ("2025-1", "2024-1") or verifier is None:
        return None
    try:  # the verifier itself (not the identity, which logs): a refusal here is the handler's to log
        caller = await verifier.verify(request.headers.get("Authorization"), peer_cert_sha256=PEER_CERT_SHA256.get())
    except ProtocolError:
        return None  # the DSP handler refuses it with the same reason
    if request.content_length is not None and request.content_length > node.settings.max_body_bytes:
        return None  # the DSP handler answers 413
    try:
        raw = await request.read()
        neutral = await node.codec.decode_once(request, raw, version)
    except (ProtocolError, web.HTTPException):
        return None  # malformed: the DSP handler answers it
    claimed = claimed_sender(neutral)
    if claimed is None or claimed == caller.participant_id:
        return None
    reason = (f"the token's subject {caller.participant_id} is not the party the message claims to come "
              f"from ({claimed[:200]!r})")
    log.warning("refused a DSP message: %s", reason)
    exc = Unauthenticated(reason, code="SenderMismatch")
    pids = {"provider_pid": _party(neutral.get("providerPid")), "consumer_pid": _party(neutral.get("consumerPid"))}
    body = error_object("ContractNegotiationError", exc.code, exc.reason, **pids)
    return web.Response(body=node.codec.encode(body, version), status=exc.status, content_type="application/json")


