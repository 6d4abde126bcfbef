"""The clearing house's storage on a real SQLite file and on PostgreSQL: group-committed appends,
gap-free sequence, replay and party checks, proofs from stored nodes equal to the in-memory oracle."""
from __future__ import annotations

import random
import time

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connector.clearinghouse import store
from connector.clearinghouse.app import open_database
from connector.ledger import checkpoint as C
from connector.ledger import merkle as M


def signer(origin: str = "test.hks/store") -> store.LogSigner:
    return store.LogSigner(C.signer_key_string(origin, Ed25519PrivateKey.generate()))


def pending(i: int, process: str | None = None, parties=("urn:a", "urn:b")) -> store.PendingEntry:
    canonical = '{"i":%d}' % i
    return store.PendingEntry(M.leaf_hash(canonical.encode()), canonical, "hdr", "sig", process or f"p-{i // 3}",
                              "data.accessed", parties[0], parties[1], parties[0])


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request, tmp_path):
    if request.param == "sqlite":
        database = open_database(f"sqlite+aiosqlite:///{tmp_path / 'ch.db'}")
        await database.migrate(store.MIGRATIONS)
        yield database
        await database.dispose()
    else:
        from conftest import fresh_postgres_database
        async with fresh_postgres_database() as url:
            database = open_database(url)
            await database.migrate(store.MIGRATIONS)
            yield database
            await database.dispose()


async def test_appends_match_the_in_memory_oracle(db):
    log = signer()
    head = await db.transaction(store.prepare, log, time.time())
    assert head.size == 0 and C.verify_checkpoint(head.checkpoint, log.verifier_key).root_hash == M.EMPTY_ROOT
    oracle = M.MemoryLeafStore()
    rng = random.Random(6962)
    sizes = []
    i = 0
    while i < 300:
        n = rng.choice([1, 2, 3, 7, 16, 33, 64])
        batch = [pending(k) for k in range(i, i + n)]
        result = await db.transaction(store.append_batch, batch, log, time.time())
        assert [o.index for o in result.outcomes] == list(range(i, i + n))  # no gaps, in order
        oracle.extend(p.leaf_hash for p in batch)
        cp = C.verify_checkpoint(result.checkpoint, log.verifier_key)
        assert (cp.size, cp.root_hash) == (oracle.size, oracle.root())
        for k in range(i, i + n):  # receipts' proofs need no database read
            assert result.proof(k) == oracle.inclusion_proof(k)
            assert result.proof_b64(k) == [store.b64encode(h).decode() for h in oracle.inclusion_proof(k)]
        i += n
        sizes.append(i)

    def check(conn):
        for size in rng.sample(sizes, 8) + [i]:
            assert store.checkpoint_at(conn, size) is not None
            for index in rng.sample(range(size), min(size, 10)):
                assert store.inclusion(conn, index, size) == (size, oracle.inclusion_proof(index, size))
            for old in rng.sample(range(1, size + 1), min(size, 5)):
                assert store.consistency(conn, old, size) == (size, oracle.consistency_proof(old, size))
        head = store.head(conn)
        assert head.size == i and head.root == oracle.root()
        count, top = conn.execute(sa.text("SELECT count(*), max(seq) FROM ch_entries")).one()
        assert (count, top) == (i, i - 1)

    await db.read(check)


async def test_replays_and_party_mismatches_append_nothing(db):
    log = signer()
    await db.transaction(store.prepare, log, time.time())
    first = await db.transaction(store.append_batch, [pending(0, "proc"), pending(1, "proc")], log, time.time())
    assert [type(o) for o in first.outcomes] == [store.Appended, store.Appended]
    again = await db.transaction(store.append_batch, [
        pending(1, "proc"),                                  # replay of an appended entry
        pending(2, "proc", parties=("urn:a", "urn:c")),      # other parties for an existing process
        pending(3, "proc"), pending(3, "proc"),              # duplicate inside one batch
    ], log, time.time())
    kinds = [type(o).__name__ for o in again.outcomes]
    assert kinds == ["Duplicate", "WrongParties", "Appended", "Duplicate"]
    assert again.outcomes[0].index == 1 and again.outcomes[3].index == 2
    assert again.outcomes[1].provider == "urn:a" and again.outcomes[1].consumer == "urn:b"
    only_bad = await db.transaction(store.append_batch, [pending(0, "proc")], log, time.time())
    assert isinstance(only_bad.outcomes[0], store.Duplicate) and only_bad.size == 3

    def check(conn):
        assert store.head(conn).size == 3
        assert store.process_parties(conn, "proc") == ("urn:a", "urn:b")
        assert store.find_leaf(conn, pending(3).leaf_hash) == 2

    await db.read(check)


async def test_prepare_refuses_another_key_and_a_damaged_log(db):
    log = signer()
    await db.transaction(store.prepare, log, time.time())
    await db.transaction(store.append_batch, [pending(k) for k in range(5)], log, time.time())
    with pytest.raises(store.StoreError, match="holds the log"):
        await db.transaction(store.prepare, signer(), time.time())
    await db.transaction(store.prepare, log, time.time())  # the right key: fine

    def delete_one(conn):
        conn.execute(sa.text("DELETE FROM ch_entries WHERE seq = 2"))

    await db.transaction(delete_one)
    with pytest.raises(store.StoreError, match="the tree has 5 leaves but there are 4 entries"):
        await db.transaction(store.prepare, log, time.time())


async def test_proof_requests_out_of_range(db):
    log = signer()
    await db.transaction(store.prepare, log, time.time())
    await db.transaction(store.append_batch, [pending(k) for k in range(4)], log, time.time())
    for fn, args, message in [
        (store.inclusion, (4, None), "not in the tree of size 4"),
        (store.inclusion, (0, 9), "larger than the log"),
        (store.consistency, (0, 4), "need 1 <= from <= to"),
        (store.consistency, (3, 2), "need 1 <= from <= to"),
        (store.list_entries, (0, 10, 3, False), "signed no checkpoint at size 3"),
    ]:
        with pytest.raises(store.ProofRangeError, match=message):
            await db.read(fn, *args)


async def test_missing_nodes_are_reported_not_guessed(db):
    log = signer()
    await db.transaction(store.prepare, log, time.time())
    await db.transaction(store.append_batch, [pending(k) for k in range(8)], log, time.time())

    def drop(conn):
        conn.execute(sa.text("DELETE FROM ch_nodes WHERE id = :id"), {"id": store.node_id(4, 2)})

    await db.transaction(drop)
    with pytest.raises(store.StoreError, match=r"node \(start 4, level 2\) is missing"):
        await db.read(store.inclusion, 0, 8)


def test_node_ids_are_unique_in_order_positions():
    seen = set()
    for level in range(8):
        for start in range(0, 256, 1 << level):
            nid = store.node_id(start, level)
            assert nid not in seen
            seen.add(nid)
    assert store.node_id(5, 0) == 10 and store.node_id(0, 1) == 1 and store.node_id(4, 2) == 11


async def test_sqlite_commits_are_fully_synchronous(tmp_path):
    database = open_database(f"sqlite+aiosqlite:///{tmp_path / 'ch.db'}")
    try:
        mode = await database.read(lambda conn: conn.exec_driver_sql("PRAGMA synchronous").scalar())
        journal = await database.read(lambda conn: conn.exec_driver_sql("PRAGMA journal_mode").scalar())
    finally:
        await database.dispose()
    assert (mode, journal) == (2, "wal")  # FULL: a signed checkpoint survives power loss
