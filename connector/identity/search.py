"""`connector search`: query the station registry with this node's DAT."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Mapping

import aiohttp
import orjson

from ..bodies import BodyTooLarge, read_limited
from .dat import DatClient, StationTrust, TokenUnavailable, TrustUnavailable
from .keys import load_private_key
from ..errors import IdentityError


class SearchError(IdentityError):
    """One line for people."""


async def search_registry(settings: Any, params: Mapping[str, str]) -> dict[str, Any]:
    trust = StationTrust(settings.identity_station_url)
    try:
        client = DatClient(trust, settings.node.participant_id, load_private_key(Path(settings.directory) / "keys" / "node.key"))
        try:
            token = await client.token(await trust.issuer())  # a token for the station's registry only
        except TokenUnavailable as exc:
            raise SearchError(f"no token from the station: {exc.reason}") from None
        except TrustUnavailable as exc:
            raise SearchError(f"no token from the station: {exc}") from None
        assert trust.session is not None
        url = f"{settings.identity_station_url}/registry/search"
        try:
            async with trust.session.get(url, params=dict(params), headers={"Authorization": f"Bearer {token}"}) as resp:
                raw = await read_limited(resp, 16 * 1024 * 1024)
                status = resp.status
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, BodyTooLarge) as exc:
            raise SearchError(f"cannot reach the station registry at {url}: {type(exc).__name__}") from None
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if status != 200 or not isinstance(doc, dict):
            reason = doc.get("error") if isinstance(doc, dict) else None
            raise SearchError(f"the registry answered {status}: {reason or 'no reason given'}")
        return doc
    finally:
        await trust.close()
