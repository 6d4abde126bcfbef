"""``[identity] mode = "edc-iam-mock-test-only"``: speaks Eclipse EDC's `iam-mock` token format, so
our node and an EDC runtime built with `iam-mock` can talk in interop tests. TEST ONLY.

EDC's MockIdentityService (module `iam-mock`) sends as the whole Authorization header the JSON
``{"region": ..., "audience": <counter-party address>, "clientId": <participant id>}`` and, on
receipt, reads that JSON and takes ``clientId`` as the caller's participant id: nothing is signed,
anyone can claim to be anyone. That is all this mode does, both ways. It proves nothing about a
peer, so the configuration must name it explicitly and the node logs it at every start; the real
cross-vendor identity (DCP) is later work.
"""
from __future__ import annotations

from typing import Any

import orjson

from ..protocol.errors import Unauthenticated
from . import Caller

MODE = "edc-iam-mock-test-only"
MAX_TOKEN = 4096


class EdcIamMock:
    mode = MODE

    def __init__(self, participant_id: str, region: str = "eu") -> None:
        self.participant_id = participant_id
        self.region = region

    async def outbound_authorization(self, recipient: str) -> str:
        return orjson.dumps({"region": self.region, "audience": recipient, "clientId": self.participant_id}).decode()

    async def addresses_of(self, participant_id: str) -> frozenset[str] | None:
        """No registry of addresses in this test mode: only the private-range rule applies."""
        return None

    async def verify(self, authorization: str | None) -> Caller:
        if not authorization:
            raise Unauthenticated("the Authorization header is missing")
        if len(authorization) > MAX_TOKEN:
            raise Unauthenticated("the Authorization token is longer than an EDC mock token may be")
        try:
            token: Any = orjson.loads(authorization)
        except orjson.JSONDecodeError:
            raise Unauthenticated("the Authorization token is not an EDC iam-mock token (a JSON object)") from None
        client = token.get("clientId") if isinstance(token, dict) else None
        if not isinstance(client, str) or not client or len(client) > 512:
            raise Unauthenticated("the EDC iam-mock token names no clientId")
        claims = {"region": token["region"]} if isinstance(token.get("region"), str) else {}
        return Caller(participant_id=client, claims=claims)
