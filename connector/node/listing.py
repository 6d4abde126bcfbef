"""Management listings with cursors (issue 16): `?limit=N` answers at most N rows in creation
order and, when there are more, a `Link: <...?limit=N&cursor=C>; rel="next"` header; the cursor
is opaque (base64url of the last row's creation time and id: a keyset, so a page costs the same
wherever it is). Without `limit` a listing answers every row, as before."""
from __future__ import annotations

import base64
from typing import Any

import orjson
import sqlalchemy as sa
from aiohttp import web

from ..protocol.ids import id_problem
from ..errors import NodeError

Json = dict[str, Any]
MAX_LIMIT = 1000


class CursorError(NodeError, ValueError):
    pass


def encode_cursor(created_at: float, row_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, row_id])).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        if len(cursor) > 1024 or not cursor.isascii():
            raise ValueError
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise CursorError("cursor: not one this listing issued") from None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (int, float))
            and not isinstance(value[0], bool) and id_problem(value[1]) is None):
        raise CursorError("cursor: not one this listing issued")
    return float(value[0]), value[1]


def query_page(query: sa.Select, created: sa.ColumnElement, ident: sa.ColumnElement, *, limit: int | None,
               cursor: str | None, newest_first: bool = False) -> sa.Select:
    """`query` in (creation time, id) order (reversed with `newest_first`), after `cursor`, at
    most limit + 1 rows (the one beyond tells whether there is a next page)."""
    query = query.order_by(created.desc(), ident.desc()) if newest_first else query.order_by(created, ident)
    if cursor is not None:
        at, last = decode_cursor(cursor)
        # A row-value comparison: both databases walk the (created_at, id) index from the cursor
        # (spelled with OR, SQLite scanned the index from the time on: 12 ms a page at 100,000 rows).
        row, after = sa.tuple_(created, ident), sa.tuple_(sa.literal(at, sa.Float), sa.literal(last, sa.String))
        query = query.where(row < after if newest_first else row > after)
    return query.limit(limit + 1) if limit is not None else query


def next_link(request: web.Request, rows: list[Json], limit: int | None, *, created: str = "created_at",
              ident: str = "id") -> tuple[list[Json], dict[str, str]]:
    """The page's rows and its Link header (none on the last page)."""
    if limit is None or len(rows) <= limit:
        return rows, {}
    rows = rows[:limit]
    query = {k: v for k, v in request.query.items() if k != "offset"}  # the cursor is where the next page starts
    url = request.url.with_query({**query, "limit": str(limit),
                                  "cursor": encode_cursor(rows[-1][created], rows[-1][ident])})
    return rows, {"Link": f'<{url.path_qs}>; rel="next"'}
