"""Prepared statements (store/prepared.py) give what SQLAlchemy gives, on SQLite's
driver path and through SQLAlchemy on PostgreSQL; and the SQLite transaction control
(group commit, one savepoint per transaction) keeps each transaction's all-or-nothing."""
import asyncio
import contextlib

import pytest
import sqlalchemy as sa

from connector.store.db import Database
from connector.store.prepared import Prepared
from conftest import BACKENDS, database_url

meta = sa.MetaData()
things = sa.Table(
    "things", meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(50), nullable=False, unique=True),
    sa.Column("doc", sa.JSON, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
)

INSERT = Prepared(things.insert().returning(things.c.id))
SELECT = Prepared(sa.select(things).where(things.c.name == sa.bindparam("b_name")))
SELECT_DOC = Prepared(sa.select(things.c.doc).where(things.c.name == sa.bindparam("b_name")))
# A literal in the statement ("new") and one in its SET clause ("done"): constants of the plan.
FINISH = Prepared(things.update().where(things.c.name == sa.bindparam("b_name"), things.c.state == "new")
                  .values(state="done"))
# An expanding IN list cannot be planned: it must still work, through SQLAlchemy.
SELECT_IN = Prepared(sa.select(things.c.name).where(things.c.name.in_(sa.bindparam("b_names", expanding=True)))
                     .order_by(things.c.name))


@pytest.fixture(params=BACKENDS + ["sqlite-writer-thread"])
async def db(request, tmp_path):
    """Each backend, and SQLite with its transactions on a writer thread (the clearing house's)."""
    async with database_url(request.param.removesuffix("-writer-thread"), tmp_path) as url:
        database = Database(url, sqlite_writer_thread=request.param.endswith("-writer-thread"))
        await database.transaction(lambda conn: meta.create_all(conn))
        yield database
        await database.dispose()


def insert(conn, name, doc, score=None, state="new"):
    return INSERT.execute(conn, {"name": name, "doc": doc, "score": score, "state": state}).scalar_one()


async def test_results_match_sqlalchemy(db):
    doc = {"a": [1, 2.5, "x"], "nested": {"k": None}, "text": "港 data"}

    def work(conn):
        first = insert(conn, "one", doc, 1.5)
        second = insert(conn, "two", None)
        mine = SELECT.execute(conn, {"b_name": "one"}).mappings().first()
        theirs = conn.execute(SELECT.statement, {"b_name": "one"}).mappings().first()
        missing = SELECT.execute(conn, {"b_name": "nobody"}).mappings().first()
        return first, second, dict(mine), dict(theirs), missing, SELECT_DOC.execute(conn, {"b_name": "two"}).scalar()

    first, second, mine, theirs, missing, none_doc = await db.transaction(work)
    assert second == first + 1
    assert mine == theirs == {"id": first, "name": "one", "doc": doc, "score": 1.5, "state": "new"}
    assert missing is None
    assert none_doc is None  # SQLAlchemy's own reading of a JSON None, on both paths


async def test_constants_rowcount_and_unplannable_statements(db):
    def work(conn):
        for name in ("a", "b", "c"):
            insert(conn, name, {"n": name})
        changed = FINISH.execute(conn, {"b_name": "a"}).rowcount
        again = FINISH.execute(conn, {"b_name": "a"}).rowcount  # no longer "new"
        states = [r[0] for r in conn.execute(sa.select(things.c.state).order_by(things.c.name))]
        names = [r[0] for r in SELECT_IN.execute(conn, {"b_names": ["c", "a", "zzz"]}).all()]
        return changed, again, states, names

    assert await db.transaction(work) == (1, 0, ["done", "new", "new"], ["a", "c"])


async def test_a_failing_transaction_in_a_group_commit_is_rolled_back_alone(db):
    """Concurrent transactions share one commit on SQLite; the one that raises (here a
    unique violation after a first insert) leaves nothing, the others all land."""
    def good(conn, name):
        insert(conn, name, {"ok": True})
        return name

    def bad(conn):
        insert(conn, "partial", None)  # would land if the rollback were not per transaction
        insert(conn, "g0", None)  # duplicate of a good one: raises

    outcomes = await asyncio.gather(*(db.transaction(good, f"g{i}") for i in range(5)), db.transaction(bad),
                                    *(db.transaction(good, f"h{i}") for i in range(5)), return_exceptions=True)
    assert isinstance(outcomes[5], sa.exc.IntegrityError)
    assert [o for i, o in enumerate(outcomes) if i != 5] == [f"g{i}" for i in range(5)] + [f"h{i}" for i in range(5)]
    names = await db.read(lambda conn: sorted(r[0] for r in conn.execute(sa.select(things.c.name))))
    assert names == sorted([f"g{i}" for i in range(5)] + [f"h{i}" for i in range(5)])


async def test_a_lone_failing_transaction_changes_nothing_and_the_next_one_works(db):
    def bad(conn):
        insert(conn, "x", None)
        raise ValueError("refused half way")

    with pytest.raises(ValueError, match="half way"):
        await db.transaction(bad)
    await db.transaction(insert, "y", [1])
    names = await db.read(lambda conn: [r[0] for r in conn.execute(sa.select(things.c.name))])
    assert names == ["y"]


@pytest.mark.parametrize("writer_thread", [False, True])
async def test_a_broken_connection_fails_its_batch_and_the_next_batch_reconnects(tmp_path, writer_thread):
    """SQLite's one connection: after it breaks, the next batch opens a new one."""
    db = Database(f"sqlite:///{tmp_path / 'broken.db'}", sqlite_writer_thread=writer_thread)
    await db.transaction(lambda conn: meta.create_all(conn))

    def breaks(conn):
        insert(conn, "lost", None)
        conn.invalidate()  # as a driver failure would leave it

    with pytest.raises(Exception):
        await db.transaction(breaks)
    await db.transaction(insert, "kept", None)
    names = await db.read(lambda conn: [r[0] for r in conn.execute(sa.select(things.c.name))])
    await db.dispose()
    assert names == ["kept"]


async def test_the_checkpointer_thread_copies_commits_into_the_database_file(tmp_path):
    """The loop's own connection checkpoints only every SAFETY_AUTOCHECKPOINT_PAGES; the
    rows reach the database file anyway, copied by the checkpointer's connection."""
    import sqlite3

    path = tmp_path / "ckpt.db"
    database = Database(f"sqlite:///{path}")
    await database.transaction(lambda conn: meta.create_all(conn))
    for i in range(50):
        await database.transaction(insert, f"n{i}", {"i": i})
    checkpointer = database._checkpointer
    assert checkpointer is not None and checkpointer.is_alive()
    in_file = None
    for _ in range(100):  # immutable=1 reads the database file alone, ignoring the WAL
        with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as direct:
            try:
                in_file = direct.execute("SELECT count(*) FROM things").fetchone()[0]
            except sqlite3.OperationalError:  # the table itself is not in the file yet
                in_file = None
        if in_file == 50:
            break
        await asyncio.sleep(0.05)
    await database.dispose()
    assert in_file == 50
    assert not checkpointer.is_alive()
