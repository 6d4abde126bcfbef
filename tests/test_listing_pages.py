"""Management listing pages walk the (created_at, id) index from their cursor on both databases
(migration 0017): a page costs the same wherever it is, instead of a scan and sort of the whole
table per page. The plans are read from the databases themselves; the rows from real pages."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from connector.node.listing import encode_cursor, query_page
from connector.store.tables import assets, negotiations, transfers


@pytest.fixture
def db(node_db):  # noqa: ANN001, ANN201
    return node_db


def plan(conn, query) -> str:
    sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "sqlite":
        return " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):  # a tiny table: ask what it can do
        conn.exec_driver_sql(f"SET LOCAL {setting} = off")
    return " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))


@pytest.mark.parametrize(("table", "newest_first"), [(assets, False), (negotiations, True), (transfers, True)])
async def test_a_page_after_a_cursor_walks_the_creation_index(db, table, newest_first):
    query = query_page(sa.select(table), table.c.created_at, table.c.id, limit=100,
                       cursor=encode_cursor(1.0e9, "x-000500"), newest_first=newest_first)
    shown = await db.transaction(lambda conn: plan(conn, query))
    assert f"ix_{table.name}_created" in shown, shown
    assert "TEMP B-TREE" not in shown and "Sort" not in shown, shown  # no sort of the whole table per page


async def test_pages_in_either_order_give_every_row_once(db):
    rows = [{"id": f"a-{i:03d}", "title": "t", "description": "", "content_type": "text/csv", "properties": {},
             "data_address": {}, "created_at": 1.0e9 + i // 3} for i in range(50)]  # equal times: the id decides
    await db.transaction(lambda conn: conn.execute(sa.insert(assets), rows))
    for newest_first in (False, True):
        seen, cursor = [], None
        while True:
            query = query_page(sa.select(assets.c.id, assets.c.created_at), assets.c.created_at, assets.c.id,
                               limit=7, cursor=cursor, newest_first=newest_first)
            page = await db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])
            seen += [r["id"] for r in page[:7]]
            if len(page) <= 7:
                break
            cursor = encode_cursor(page[6]["created_at"], page[6]["id"])
        expected = [r["id"] for r in rows]
        assert seen == (expected[::-1] if newest_first else expected)
