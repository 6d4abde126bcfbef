"""The identity seam: every DSP request carries an Authorization header checked here.

Until the station authority lands, the only implementation is DevSharedSecret, an
explicit development mode in which every participant of a test station shares one
secret. It is named as such in config and logs.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

from ..protocol.errors import Unauthenticated


@dataclass(frozen=True)
class Caller:
    participant_id: str


class Identity(Protocol):
    mode: str

    def outbound_authorization(self, audience: str) -> str: ...

    def verify(self, authorization: str | None) -> Caller: ...


class DevSharedSecret:
    """Token = base64url(participant_id) "." base64url(HMAC-SHA256(secret, participant_id)).

    Proves membership of the dev station and names the caller; it is not a DAT and
    carries no expiry. Accepts "Bearer <token>" and a bare token (peers differ)."""

    mode = "dev-shared-secret"

    def __init__(self, participant_id: str, secret: str):
        self.participant_id = participant_id
        self._key = secret.encode()
        self._own = self.token_for(participant_id)

    def token_for(self, participant_id: str) -> str:
        mac = hmac.new(self._key, participant_id.encode(), hashlib.sha256).digest()
        return f"{_b64(participant_id.encode())}.{_b64(mac)}"

    def outbound_authorization(self, audience: str) -> str:
        return f"Bearer {self._own}"

    def verify(self, authorization: str | None) -> Caller:
        if not authorization:
            raise Unauthenticated("the Authorization header is missing")
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if len(token) > 4096 or token.count(".") != 1:
            raise Unauthenticated("the Authorization token is not a dev-mode token")
        pid_part, mac_part = token.split(".")
        try:
            participant = _unb64(pid_part).decode()
            mac = _unb64(mac_part)
        except (ValueError, UnicodeDecodeError):
            raise Unauthenticated("the Authorization token is not a dev-mode token") from None
        expected = hmac.new(self._key, participant.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise Unauthenticated("the Authorization token does not verify")
        return Caller(participant_id=participant)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
