"""Every console action is a call of the management API's own handler, in process: the same
input schemas, the same id rules, the same checks and the same errors as a program using
`/api/v1` with the API key. The console adds who may ask (roles), never its own rules."""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from ..errors import ConnectorError
from ..node.management import ManagementApi
from ..serving import error_body
from .result import ApiResult


class _Call:
    """What the management handlers read of a request: method, path, headers, query,
    match_info and the body."""

    def __init__(self, method: str, path: str, match_info: dict[str, str], body: Any, query: dict[str, str],
                 api_key: str) -> None:
        self.method = method
        self.path = path
        self.match_info = match_info
        self._body = b"" if body is None else orjson.dumps(body)
        self.can_read_body = body is not None
        self.query = MultiDictProxy(MultiDict(query))
        # a listing's next-page Link is made from the request's URL (a list longer than one page)
        self.url = URL(ManagementApi.PREFIX + path).with_query(query)
        self.headers = CIMultiDictProxy(CIMultiDict({"X-Api-Key": api_key, "Content-Type": "application/json"}))

    async def read(self) -> bytes:
        return self._body


class Api:
    """The node's management API, called in process through its own wrapper (auth included)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.api = ManagementApi(node)
        self._key = node.settings.management_api_key
        self._handlers: dict[tuple[str, str], Any] = {}
        for route in self.api.routes():
            self._handlers[(route.method, route.path[len(ManagementApi.PREFIX):])] = route.handler

    async def call(self, method: str, template: str, body: Any = None, *, query: dict[str, str] | None = None,
                   **match_info: str) -> ApiResult:
        handler = self._handlers[(method, template)]
        path = template.format(**match_info)
        try:
            response = await handler(_Call(method, path, match_info, body, query or {}, self._key))
        except ConnectorError as exc:  # what the error middleware would have answered a program
            return ApiResult(exc.status, error_body(exc))
        raw = getattr(response, "body", None)
        data = orjson.loads(raw) if raw else None
        link = response.headers.get("Link")
        return ApiResult(response.status, data, {"Link": link} if link else None)

    async def stream(self, request: web.Request, template: str, *, query: dict[str, str]) -> web.StreamResponse:
        """A GET whose handler streams its answer (the data of a transfer) onto the console's own
        connection: the console's request, as that GET with `query` and the API key, goes to the
        handler (its path parameters as they are)."""
        handler = self._handlers[("GET", template)]
        headers = CIMultiDict(request.headers)
        headers["X-Api-Key"] = self._key
        return await handler(_AsGet(request, query, headers))


class _AsGet:
    """The console's own request (its body already read, so it cannot be cloned) seen as a GET
    with another query and headers; everything else, the connection included, is the request's."""

    def __init__(self, request: web.Request, query: dict[str, str], headers: CIMultiDict) -> None:
        self._request = request
        self.method = "GET"
        self.query = MultiDictProxy(MultiDict(query))
        self.headers = CIMultiDictProxy(headers)
        self.can_read_body = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)
