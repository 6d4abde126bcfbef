"""The identity seam: every DSP request carries an Authorization header checked here.

`Identity` is what the node needs: a value for its own outbound Authorization header,
and verification of an inbound one into a `Caller` (participant id and the claims the
policy engine may use: organisation, jurisdiction, membership, ...). Both are async,
because a real implementation fetches tokens and keys over the network.

Implementations, selected by ``[identity] mode`` (connector.identity.binding.build_identity):

* ``station`` — `connector.identity.dat.StationIdentity`: Dynamic Attribute Tokens from the
  station authority out, DATs verified in (see that module for the checks and what ``jti``
  replay protection means here). Caller.claims carries the station's claims: organisation,
  jurisdiction, membership, membershipStatus, securityProfile, referringConnector.
* ``dev-shared-secret`` — DevSharedSecret, an explicit development mode in which every
  participant of a test station shares one secret; its claims are self-asserted. It is named
  as such in config and logs.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

import orjson

from ..protocol.errors import Unauthenticated


@dataclass(frozen=True)
class Caller:
    participant_id: str
    claims: Mapping[str, Any] = field(default_factory=dict)


class Identity(Protocol):
    mode: str

    async def outbound_authorization(self, recipient: str) -> str:
        """The Authorization value for a call to `recipient`: its id (a participant id, the
        station's issuer for registry calls, or a service audience such as the clearing
        house's), never a URL. The credential is good at that recipient only."""
        ...

    async def verify(self, authorization: str | None) -> Caller: ...

    async def addresses_of(self, participant_id: str) -> frozenset[str] | None:
        """The addresses registered for a participant at the station (where callbacks, push and
        data endpoints of its messages must lie), or None where there is no registry (dev mode)."""
        ...


class DevSharedSecret:
    """Token = base64url(JSON claims with "sub" and "aud") "." base64url(HMAC-SHA256(secret, that JSON)).

    Proves membership of the dev station and names the caller and the one recipient
    (``aud``); a receiver accepts only tokens whose ``aud`` is its own id (`audience`, by
    default the participant id; a node also its own public URL), as in station mode. It is not a DAT, carries no expiry, and
    its claims are whatever the holder of the secret wrote: anyone with the secret can mint
    any token. A development mode. Accepts "Bearer <token>" and a bare token (peers differ)."""

    mode = "dev-shared-secret"

    def __init__(self, participant_id: str, secret: str, claims: Mapping[str, Any] | None = None, *,
                 audience: str | None = None, also_accept: tuple[str, ...] = ()):
        self.participant_id = participant_id
        self.audience = audience or participant_id
        # dev mode only: a node also accepts its own public URL as audience, for a first contact
        # whose peer id the user did not give (station mode requires the id)
        self._audiences = frozenset({self.audience, *also_accept})
        self._key = secret.encode()
        self._claims = dict(claims or {})
        self._own: dict[str, str] = {}

    def token_for(self, participant_id: str, claims: Mapping[str, Any] | None = None, *, audience: str) -> str:
        """A token naming `participant_id` as the caller, for the recipient `audience` only."""
        payload = orjson.dumps({**(claims or {}), "sub": participant_id, "aud": audience}, option=orjson.OPT_SORT_KEYS)
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(mac)}"

    async def outbound_authorization(self, recipient: str) -> str:
        token = self._own.get(recipient)
        if token is None:
            if len(self._own) >= 1024:
                self._own.clear()
            token = self._own[recipient] = self.token_for(self.participant_id, self._claims, audience=recipient)
        return f"Bearer {token}"

    async def verify(self, authorization: str | None) -> Caller:
        return self.verify_now(authorization)

    async def addresses_of(self, participant_id: str) -> frozenset[str] | None:
        """Dev mode has no registry of addresses: only the private-destination rule applies."""
        return None

    def verify_now(self, authorization: str | None) -> Caller:
        if not authorization:
            raise Unauthenticated("the Authorization header is missing")
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if len(token) > 8192 or token.count(".") != 1:
            raise Unauthenticated("the Authorization token is not a dev-mode token")
        payload_part, mac_part = token.split(".")
        try:
            payload = _unb64(payload_part)
            mac = _unb64(mac_part)
        except ValueError:
            raise Unauthenticated("the Authorization token is not a dev-mode token") from None
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise Unauthenticated("the Authorization token does not verify")
        try:
            claims = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise Unauthenticated("the Authorization token is not a dev-mode token") from None
        if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthenticated("the Authorization token names no participant")
        if claims.get("aud") not in self._audiences:
            raise Unauthenticated(f"wrong audience: the token is for {str(claims.get('aud'))[:200]!r}, "
                                  f"not {self.audience!r}")
        return Caller(participant_id=claims["sub"],
                      claims={k: v for k, v in claims.items() if k not in ("sub", "aud")})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
