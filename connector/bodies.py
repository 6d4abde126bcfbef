"""Reading a whole HTTP response body, bounded.

aiohttp's ``resp.content.read(n)`` returns what has arrived so far, not n bytes: a large answer
read that way is silently truncated (an audit of 240 entries failed as "not a JSON object").
Every body read from a peer, the station or the clearing house goes through `read_limited`.
"""
from __future__ import annotations

import aiohttp
from .errors import ConnectorError


class BodyTooLarge(ConnectorError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is over {limit} bytes")
        self.limit = limit


async def read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body up to EOF; BodyTooLarge as soon as it exceeds `limit` bytes."""
    if resp.content_length is not None and resp.content_length > limit:
        raise BodyTooLarge(limit)
    data = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise BodyTooLarge(limit)
    return bytes(data)
