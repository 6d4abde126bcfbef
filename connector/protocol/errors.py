"""Protocol errors. The shell turns each into a DSP error object and an HTTP status."""
from __future__ import annotations

#: The most characters of a peer's input that an error message may repeat.
ECHO_LIMIT = 200


def echo(value: object, limit: int = ECHO_LIMIT, *, quote: bool = True) -> str:
    """A peer-supplied value for an error message (its ``repr``, or as it is with
    ``quote=False``), with at most ``limit`` characters of it: a longer value is cut and says
    how long it was. Every error that repeats input (the node's, the station's, the clearing
    house's) goes through this."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value) if quote else value
        cut = value[:limit]
        return f"{cut!r}… ({len(value)} characters)" if quote else f"{cut}… ({len(value)} characters)"
    try:
        text = repr(value) if quote else str(value)
    except Exception:  # noqa: BLE001 - a value without a usable repr is still named
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "…"


def clip(text: str, limit: int = 1000) -> str:
    """An error message as sent: at most ``limit`` characters, whatever went into it (a
    backstop behind :func:`echo`)."""
    return text if len(text) <= limit else text[:limit] + "…"


class ProtocolError(Exception):
    """Base class: `status` is the HTTP status, `code` a short machine-readable code."""

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
