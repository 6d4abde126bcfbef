"""The project's one exception hierarchy (pure: no I/O, no clock; the cores import it).

Every exception class in ``connector`` derives from :class:`ConnectorError`, through the base
of its layer (tests/test_errors.py walks the package and fails on any that does not):

====================  =================================  ======  =============
layer                 base                               status  code
====================  =================================  ======  =============
protocol/             ``protocol.errors.ProtocolError``     400  BadRequest
policy/               ``policy.errors.PolicyError``         400  InvalidPolicy
ledger/               :class:`LedgerError`                  500  Internal
identity/             :class:`IdentityError`                500  Internal
store/                :class:`StorageError`                 503  StorageUnavailable
node/                 :class:`NodeError`                    500  Internal
node/dataplane/       :class:`DataPlaneError`               500  Internal
compute/              :class:`ComputeError`                 500  Internal
compliance/           :class:`ComplianceError`              500  Internal
station/              :class:`StationError`                 500  Internal
clearinghouse/        :class:`TransparencyLogError`         500  Internal
console/              :class:`ConsoleError`                 500  Internal
configuration, CLI    :class:`SetupError`                   500  Internal
an HTTP handler       :class:`ApiError`                   given  from the status
====================  =================================  ======  =============

The pure cores' errors are about their input, so they answer 400 wherever they surface. The
shell layers' errors are caught where they are raised and answered with a deliberate status
(an ``ApiError``, a DSP error, or a class that narrows ``status``, e.g. ``PeerError`` 502); one
that escapes is a bug, and answers 500 with a body that says nothing of it (it is logged).

A class (or an instance) may narrow ``status`` and ``code``; the status and the body are
written in one place, ``connector.serving.error_middleware``, which all three services
(node, station, clearing house, and the consoles mounted in them) use. The body is
``{"error": message, "code": code, "status": status, ...extra}``; on the node's DSP routes it
is the DSP error object of the route instead (``@type`` CatalogError,
ContractNegotiationError or TransferError).

**A message in the wrong state is 400, not 409.** HTTP would suggest 409 Conflict, but the DSP
TCK (and the EDC connectors it was written against) expect 400 with a DSP error body for a
message the process's state does not allow (``protocol.errors.InvalidTransition``); 404 only
for a process that does not exist. The management API keeps 409 for its own conflicts
(an id already taken, an action the state does not allow), where no TCK is involved.

**What a body may say.** A refusal names our rule, never our network: no host, port, address
or upstream URL of ours and no secret goes into a message; such detail goes in ``detail``,
which is logged and never sent. Input a peer sent is repeated through :func:`echo` only.
"""
from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

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


def status_code(status: int) -> str:
    """The code of a status when nothing more precise is known: 404 -> ``NotFound``."""
    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return "Error"


class ConnectorError(Exception):
    """The root. ``status``/``code``: the HTTP answer when it reaches a service's error
    middleware; ``extra``: more members of the error body; ``detail``: for the log only."""

    status: int = 500
    #: None: ``Internal`` for a 500, else the status's name (a class with its own status only)
    code: str | None = None
    extra: ClassVar[dict[str, Any]] = {}
    detail: str | None = None
    #: the exception's text may go into the body; None: only below 500 (a 500 says "internal error")
    expose: bool | None = None

    def error_code(self) -> str:
        return self.code or ("Internal" if self.status == 500 else status_code(self.status))

    def public_message(self) -> str:
        """The text of the error body: the exception's text, clipped, unless it must stay in the log."""
        shown = self.expose if self.expose is not None else self.status < 500
        return clip(str(self)) if shown else "internal error"


# -- one base per layer (the pure cores' bases live in their packages: ProtocolError, PolicyError)

class LedgerError(ConnectorError):
    """connector/ledger: a note, checkpoint or proof that does not verify."""


class IdentityError(ConnectorError):
    """connector/identity: certificates, enrolment, trust (a refused token is the protocol's
    ``Unauthenticated``, 401)."""


class StorageError(ConnectorError):
    """connector/store and the services' databases: the database cannot be reached (the shared
    middleware answers the driver's connection errors with it where a service asks so)."""

    status, code = 503, "StorageUnavailable"
    expose = True


class NodeError(ConnectorError):
    """connector/node: the participant node's shell (peers, outbox, catalog, transfers)."""


class DataPlaneError(NodeError):
    """connector/node/dataplane: access to data under an agreement."""


class ComputeError(ConnectorError):
    """connector/compute: computations on data under an agreement."""


class ComplianceError(ConnectorError):
    """connector/compliance: cross-border records and filings."""


class StationError(ConnectorError):
    """connector/station: the station authority (tokens, enrolment, registry)."""


class TransparencyLogError(ConnectorError):
    """connector/clearinghouse: the clearing house's log, and the node's client of it."""


class ConsoleError(ConnectorError):
    """connector/console: the operator consoles."""


class SetupError(ConnectorError):
    """Configuration, start-up and command-line errors (reported on stderr, not over HTTP)."""


class ApiError(ConnectorError):
    """An HTTP handler's answer with its status: the one ``ApiError`` of the node's management
    API, the station and the clearing house. ``code`` defaults to the status's name."""

    expose = True  # the handler wrote the message for the body, whatever the status

    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or status_code(status)
        self.extra = extra
