"""Protocol errors. The shell turns each into a DSP error object and an HTTP status."""
from __future__ import annotations

from ..errors import ECHO_LIMIT, ConnectorError, clip, echo

__all__ = ["ECHO_LIMIT", "clip", "echo", "ProtocolError", "MalformedMessage", "InvalidTransition", "UnknownProcess",
           "Unauthenticated", "PayloadTooLarge", "Refused", "Forbidden"]


class ProtocolError(ConnectorError):
    """The protocol layer's base (connector/errors.py): `status` is the HTTP status, `code` a short
    machine-readable code. Wrong-state messages are 400, not 409 (InvalidTransition; see there)."""

    status = 400
    code = "BadRequest"

    def __init__(self, reason: str, *, code: str | None = None):
        reason = clip(reason)
        super().__init__(reason)
        self.reason = reason
        if code:
            self.code = code


class MalformedMessage(ProtocolError):
    status = 400
    code = "MalformedMessage"


class InvalidTransition(ProtocolError):
    # DSP: an invalid state transition is 400 with an error body (never 404: the TCK fails on that).
    # Not 409, which HTTP would suggest: the TCK's peers answer 400 (docs/ARCHITECTURE.md).
    status = 400
    code = "InvalidStateTransition"


class UnknownProcess(ProtocolError):
    status = 404
    code = "UnknownProcess"


class Unauthenticated(ProtocolError):
    status = 401
    code = "Unauthenticated"


class PayloadTooLarge(ProtocolError):
    status = 413
    code = "PayloadTooLarge"


class Refused(ProtocolError):
    """The request was understood but refused (unknown offer, policy mismatch, ...)."""

    status = 400
    code = "Refused"


class Forbidden(ProtocolError):
    """The requester is known but a policy does not admit it (e.g. an offer's access policy)."""

    status = 403
    code = "Forbidden"
