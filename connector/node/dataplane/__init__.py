"""The data plane: the agreement's policy is decided again on every access, the use
is counted atomically, duties are performed before a byte leaves, and the data
streams with bounded memory (HTTP pull, HTTP push, file and HTTP upstream sources).

One package, by concern (each module holds one part of `DataPlane`):

- `plane.py`: `DataPlane`, the object the node wires (its settings, keys and streams in flight);
- `tokens.py`: pull and push tokens, derived from the node key (the database keeps a nonce);
- `sources.py`: file and HTTP upstream sources, validated at creation and at every access;
- `access.py`: the access decision, the use counter, the access log and its clearing-house entry;
- `pull.py`: serving a pull, stopped at once by a suspension or termination;
- `push.py`: a provider's push to the consumer's endpoint;
- `receiver.py`: the consumer's side: the push receiver, delete duties, the data of a transfer;
- `common.py`: what they share (Grant, AccessRefused, stream errors, constants).

Every name other modules and tests imported from the former `dataplane.py` is re-exported here."""
from __future__ import annotations

from ..transfers import AGREEMENT_WITH_ACCESS, PULL, PUSH
from ..transform import TransformError
from .access import PERFORMED_HERE, Access
from .common import (CHUNK, HTTP_ENDPOINT_TYPE, NO_DATA_ADDRESS, AccessRefused, Grant, Json, TransferStopped,
                     UpstreamError, abort, log)
from .plane import DataPlane
from .pull import REVOCATION_CHECK, Pull
from .push import Push
from .receiver import Receiver
from .sources import RangeNotSatisfiable, Sources
from .tokens import PULL_TOKEN_PLACEHOLDER, PUSH_TOKEN_PLACEHOLDER, Tokens, derive_key, token_digest

__all__ = ["AccessRefused", "DataPlane", "PULL", "PUSH", "TransformError", "TransferStopped", "UpstreamError",
           "AGREEMENT_WITH_ACCESS", "PERFORMED_HERE", "CHUNK", "HTTP_ENDPOINT_TYPE", "NO_DATA_ADDRESS", "Grant",
           "Json", "abort", "log", "REVOCATION_CHECK", "RangeNotSatisfiable", "PULL_TOKEN_PLACEHOLDER",
           "PUSH_TOKEN_PLACEHOLDER", "derive_key", "token_digest", "Access", "Pull", "Push", "Receiver", "Sources",
           "Tokens"]
