"""The clearing house's storage: transaction functions over a sync SQLAlchemy Connection.

Each function here is a plain ``fn(conn, ...)`` handed to :meth:`connector.store.db.Database.transaction`
(SQLite: on the clearing house's single writer thread; PostgreSQL: through ``run_sync``).  The Merkle
arithmetic is the pure core in :mod:`connector.ledger.merkle`; this module only moves
hashes in and out of the tables in :mod:`connector.clearinghouse.tables`.

Appending (:func:`append_batch`) is one transaction per batch: lock the tree state
(``FOR UPDATE`` on PostgreSQL, the single writer on SQLite), refuse replays and
party mismatches, insert the entries and every node they complete, sign the
checkpoint of the new size, update the tree state.  The sequence number is the
tree size read under that lock, so there are no gaps and no duplicates however many
processes append.
"""
from __future__ import annotations

import json
from base64 import b64encode
from itertools import chain
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..ledger.checkpoint import (
    CheckpointError,
    parse_checkpoint,
    parse_signer_key,
    sign_checkpoint,
    verifier_key_string,
)
from ..ledger.merkle import (
    CompactTree,
    consistency_proof,
    consistency_proof_nodes,
    inclusion_proof,
    inclusion_proof_nodes,
    inclusion_proof_ranges,
    range_hash,
)
from .entry import b64url
from .tables import checkpoints, entries, processes, tree_state
from ..errors import TransparencyLogError

MIGRATIONS = Path(__file__).parent / "migrations"
_CHUNK = 500  # ids per IN (...) query


class StoreError(TransparencyLogError):
    """The log's storage is not what it should be (wrong key, damaged tree state, missing nodes).
    Answered 500 LogDamaged, saying what is damaged (it names no path or secret)."""

    status, code, expose = 500, "LogDamaged", True


class ProofRangeError(TransparencyLogError, ValueError):
    """A proof was asked for indices or sizes the log does not have."""


def node_id(start: int, level: int) -> int:
    """In-order position of the complete node [start, start + 2**level): leaves are even, unique across levels."""
    return 2 * start + (1 << level) - 1


class LogSigner:
    """The log's Ed25519 key (C2SP signer key string); its key name is the log's origin."""

    def __init__(self, signer_key: str) -> None:
        try:
            self.origin, self._key = parse_signer_key(signer_key.strip())
        except CheckpointError as exc:
            raise StoreError(f"the log key is not a valid signer key: {exc}") from None
        self.verifier_key = verifier_key_string(self.origin, self._key.public_key())

    def sign(self, size: int, root: bytes) -> str:
        return sign_checkpoint(self.origin, size, root, self._key, self.origin)


@dataclass(frozen=True)
class PendingEntry:
    leaf_hash: bytes
    canonical: str
    protected: str
    signature: str
    process_id: str
    event: str
    provider: str
    consumer: str
    submitter: str


@dataclass(frozen=True)
class Appended:
    index: int


@dataclass(frozen=True)
class Duplicate:
    index: int


@dataclass(frozen=True)
class WrongParties:
    process_id: str
    provider: str
    consumer: str


@dataclass
class BatchResult:
    outcomes: list
    size: int
    checkpoint: str
    received_at: float
    known: dict[tuple[int, int], bytes] = field(default_factory=dict)
    received_iso: str = ""
    _encoded: dict[tuple[int, int], str] = field(default_factory=dict, repr=False)

    def get_node(self, start: int, level: int) -> bytes:
        return self.known[(start, level)]

    def proof(self, index: int) -> list[bytes]:
        """Inclusion proof of a leaf appended in this batch against this batch's checkpoint.

        Every node it needs is a frontier node of the tree before the batch or a node
        the batch completed, so no database read is needed."""
        return inclusion_proof(index, self.size, self.get_node)

    def proof_b64(self, index: int) -> list[str]:
        """:meth:`proof`, base64-encoded, sharing the ranges that the batch's proofs have in common."""
        cache = self._encoded
        out = []
        for lo, hi in inclusion_proof_ranges(index, self.size):
            value = cache.get((lo, hi))
            if value is None:
                value = cache[(lo, hi)] = b64encode(range_hash(lo, hi, self.get_node)).decode("ascii")
            out.append(value)
        return out


@dataclass(frozen=True)
class TreeHead:
    size: int
    root: bytes
    checkpoint: str


_STATE_COLUMNS = "id, origin, verifier_key, size, frontier, root, checkpoint, updated_at"


def _lock_state(conn: Connection):
    """The tree-state row, locked for this transaction (``FOR UPDATE`` on PostgreSQL; on SQLite the
    single writer already excludes every other appender).  Driver SQL: this runs once per batch on
    the writer thread, where SQLAlchemy's statement building measured a third of the GIL time."""
    if conn.dialect.name == "postgresql":
        row = conn.exec_driver_sql(f"SELECT {_STATE_COLUMNS} FROM ch_tree_state WHERE id = 1 FOR UPDATE").first()
    else:
        row = conn.exec_driver_sql(f"SELECT {_STATE_COLUMNS} FROM ch_tree_state WHERE id = 1").first()
    if row is None:
        raise StoreError("the clearing house's tree state row is missing (database not initialised or damaged)")
    return row


def _tree(row) -> CompactTree:
    try:
        tree = CompactTree.from_state(json.loads(row.frontier))
    except ValueError as exc:
        raise StoreError(f"the stored tree state is damaged: {exc}") from None
    if tree.size != row.size:
        raise StoreError(f"the stored tree state is damaged: frontier for {tree.size} leaves, size {row.size}")
    return tree


def prepare(conn: Connection, signer: LogSigner, now: float) -> TreeHead:
    """At start-up: bind an empty log to this key, refuse a log signed by another key,
    check the tree state against the entries and the last checkpoint, sign size 0 once."""
    row = _lock_state(conn)
    if row.origin is None:
        conn.execute(tree_state.update().where(tree_state.c.id == 1).values(
            origin=signer.origin, verifier_key=signer.verifier_key, updated_at=now))
    elif row.origin != signer.origin or row.verifier_key != signer.verifier_key:
        raise StoreError(f"this database holds the log {row.origin!r} with key {row.verifier_key}; "
                         f"the configured key is {signer.verifier_key}")
    tree = _tree(row)
    if tree.root() != row.root:
        raise StoreError("the stored tree state is damaged: its frontier does not give its root")
    count_row = conn.execute(sa.select(sa.func.count(), sa.func.max(entries.c.seq))).first()
    count, top = count_row[0], count_row[1]
    if count != row.size or (count and top != count - 1):
        raise StoreError(f"the log is damaged: the tree has {row.size} leaves but there are {count} entries "
                         f"(highest index {top})")
    note = row.checkpoint
    if note is None:
        note = signer.sign(row.size, row.root)
        conn.execute(tree_state.update().where(tree_state.c.id == 1).values(checkpoint=note, updated_at=now))
        conn.execute(checkpoints.insert().values(size=row.size, root=row.root, note=note, created_at=now))
    else:
        try:
            cp = parse_checkpoint(note)
        except CheckpointError as exc:
            raise StoreError(f"the stored checkpoint is damaged: {exc}") from None
        if cp.size != row.size or cp.root_hash != row.root:
            raise StoreError("the stored checkpoint does not match the tree state")
    return TreeHead(row.size, row.root, note)


class _Sql:
    """Driver-level statements for the append and proof hot paths (measured: SQLAlchemy's per-row
    parameter processing and expanding IN lists cost more than the inserts themselves).
    Placeholders follow the driver: ``?`` for sqlite3, ``$n`` for asyncpg.

    On SQLite rows go in as multi-row ``INSERT ... VALUES (...), (...)`` of power-of-two sizes
    (few distinct statements, all in the driver's cache): ``executemany`` steps once per row and
    gives up the GIL at every step, and taking it back from a busy event loop stalled a group
    commit for up to one switch interval per row.  On SQLite the statements go straight to the
    sqlite3 connection, inside the batch's transaction: the writer thread holds the GIL
    for less of each batch (measured: SQLAlchemy's execution context was a third of it)."""

    _cache: dict[str, "_Sql"] = {}

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"
        self._inserts: dict[tuple[str, int], str] = {}
        marks = [f"${i}" for i in range(1, 7)] if self.pg else ["?"] * 6
        self.update_state = ("UPDATE ch_tree_state SET size = {}, frontier = {}, root = {}, checkpoint = {}, "
                             "updated_at = {} WHERE id = 1 AND size = {}").format(*marks)

    @classmethod
    def of(cls, conn: Connection) -> "_Sql":
        name = conn.dialect.name
        sql = cls._cache.get(name)
        if sql is None:
            sql = cls._cache[name] = cls(name)
        return sql

    def insert(self, conn: Connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        width = len(columns)
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        if self.pg:
            key = (table, 0)
            stmt = self._inserts.get(key)
            if stmt is None:
                stmt = self._inserts[key] = head + "(" + ", ".join(f"${i + 1}" for i in range(width)) + ")"
            conn.exec_driver_sql(stmt, rows)
            return
        i, n = 0, len(rows)
        while i < n:
            count = min(1 << ((n - i).bit_length() - 1), max(1, 30000 // width), 1024)
            key = (table, count)
            stmt = self._inserts.get(key)
            if stmt is None:
                one = "(" + ",".join("?" * width) + ")"
                stmt = self._inserts[key] = head + ",".join([one] * count)
            _sqlite(conn).execute(stmt, tuple(chain.from_iterable(rows[i:i + count])))
            i += count

    def lookup(self, conn: Connection, select: str, column: str, cast: str, values: list) -> list:
        """Rows of ``SELECT {select} WHERE {column} IN values``, in chunks."""
        out: list = []
        for chunk in _chunks(values):
            if self.pg:
                out.extend(conn.exec_driver_sql(f"SELECT {select} WHERE {column} = ANY($1::{cast}[])", (chunk,)))
            else:
                marks = ",".join("?" * len(chunk))
                out.extend(_sqlite(conn).execute(f"SELECT {select} WHERE {column} IN ({marks})", tuple(chunk)))
        return out

    def execute(self, conn: Connection, statement: str, params: tuple) -> int:
        """Run one statement; return its row count."""
        if self.pg:
            return conn.exec_driver_sql(statement, params).rowcount
        return _sqlite(conn).execute(statement, params).rowcount


def _sqlite(conn: Connection):  # noqa: ANN202 - the sqlite3.Connection under the SQLAlchemy one
    return conn.connection.driver_connection


_ENTRY_COLUMNS = ("seq", "leaf_hash", "process_id", "event", "submitter", "entry", "protected", "signature",
                  "received_at")


def append_batch(conn: Connection, items: list[PendingEntry], signer: LogSigner, now: float) -> BatchResult:
    """Append a batch of validated entries in one transaction (see the module docstring)."""
    sql = _Sql.of(conn)
    row = _lock_state(conn)
    tree = _tree(row)
    old_size = row.size
    known: dict[tuple[int, int], bytes] = {(s, lv): h for s, lv, h in tree.frontier_nodes()}
    seen: dict[bytes, int] = {bytes(lh): seq for seq, lh in sql.lookup(
        conn, "seq, leaf_hash FROM ch_entries", "leaf_hash", "bytea", list({it.leaf_hash for it in items}))}
    parties: dict[str, tuple[str, str]] = {pid: (provider, consumer) for pid, provider, consumer in sql.lookup(
        conn, "process_id, provider, consumer FROM ch_processes", "process_id", "text",
        list({it.process_id for it in items}))}
    outcomes: list = []
    entry_rows: list[tuple] = []
    node_rows: list[tuple] = []
    process_rows: list[tuple] = []
    append = tree.append_with_nodes
    for it in items:
        if it.leaf_hash in seen:
            outcomes.append(Duplicate(seen[it.leaf_hash]))
            continue
        owners = parties.get(it.process_id)
        if owners is None:
            parties[it.process_id] = (it.provider, it.consumer)
            process_rows.append((it.process_id, it.provider, it.consumer, tree.size))
        elif owners != (it.provider, it.consumer):
            outcomes.append(WrongParties(it.process_id, *owners))
            continue
        index, completed = append(it.leaf_hash)
        seen[it.leaf_hash] = index
        known[(index, 0)] = it.leaf_hash
        node_rows.append((2 * index, it.leaf_hash))
        for start, level, h in completed:
            known[(start, level)] = h
            node_rows.append((2 * start + (1 << level) - 1, h))
        entry_rows.append((index, it.leaf_hash, it.process_id, it.event, it.submitter, it.canonical, it.protected,
                           it.signature, now))
        outcomes.append(Appended(index))
    if not entry_rows:
        return BatchResult(outcomes, old_size, row.checkpoint, now, known)
    root = tree.root()
    note = signer.sign(tree.size, root)
    sql.insert(conn, "ch_entries", _ENTRY_COLUMNS, entry_rows)
    sql.insert(conn, "ch_nodes", ("id", "hash"), node_rows)
    if process_rows:
        sql.insert(conn, "ch_processes", ("process_id", "provider", "consumer", "first_seq"), process_rows)
    sql.insert(conn, "ch_checkpoints", ("size", "root", "note", "created_at"), [(tree.size, root, note, now)])
    done = sql.execute(conn, sql.update_state, (tree.size, json.dumps(tree.to_state()), root, note, now, old_size))
    if done != 1:
        raise StoreError("the tree state changed under the append lock")
    return BatchResult(outcomes, tree.size, note, now, known)


def _chunks(values: list, size: int = _CHUNK) -> Iterable[list]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


# ---------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------


def head(conn: Connection) -> TreeHead:
    row = conn.execute(sa.select(tree_state.c.size, tree_state.c.root, tree_state.c.checkpoint)
                       .where(tree_state.c.id == 1)).first()
    if row is None or row.checkpoint is None:
        raise StoreError("the log has no signed checkpoint yet")
    return TreeHead(row.size, bytes(row.root), row.checkpoint)


def checkpoint_at(conn: Connection, size: int) -> str | None:
    return conn.execute(sa.select(checkpoints.c.note).where(checkpoints.c.size == size)).scalar()


def fetch_nodes(conn: Connection, coords: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    by_id = {node_id(s, lv): (s, lv) for s, lv in coords}
    out: dict[tuple[int, int], bytes] = {}
    for nid, h in _Sql.of(conn).lookup(conn, "id, hash FROM ch_nodes", "id", "bigint", list(by_id)):
        out[by_id[nid]] = bytes(h)
    missing = [c for c in by_id.values() if c not in out]
    if missing:
        raise StoreError(f"the log's tree is damaged: node (start {missing[0][0]}, level {missing[0][1]}) is missing")
    return out


def _getter(known: dict[tuple[int, int], bytes]):
    def get(start: int, level: int) -> bytes:
        return known[(start, level)]
    return get


def _check_size(conn: Connection, size: int | None) -> int:
    current = head(conn).size
    if size is None:
        return current
    if size > current:
        raise ProofRangeError(f"tree size {size} is larger than the log ({current} entries)")
    return size


def inclusion(conn: Connection, index: int, size: int | None = None) -> tuple[int, list[bytes]]:
    size = _check_size(conn, size)
    if not 0 <= index < size:
        raise ProofRangeError(f"leaf index {index} is not in the tree of size {size}")
    known = fetch_nodes(conn, inclusion_proof_nodes(index, size))
    return size, inclusion_proof(index, size, _getter(known))


def consistency(conn: Connection, old: int, new: int | None = None) -> tuple[int, list[bytes]]:
    new = _check_size(conn, new)
    if not 1 <= old <= new:
        raise ProofRangeError(f"no consistency proof from size {old} to size {new} (need 1 <= from <= to)")
    known = fetch_nodes(conn, consistency_proof_nodes(old, new))
    return new, consistency_proof(old, new, _getter(known))


def _items(conn: Connection, rows, size: int, proofs: bool) -> list[dict]:
    out = []
    known: dict[tuple[int, int], bytes] = {}
    if proofs and rows:
        coords: dict[tuple[int, int], None] = {}
        for r in rows:
            for c in inclusion_proof_nodes(r.seq, size):
                coords[c] = None
        known = fetch_nodes(conn, coords)
    get = _getter(known)
    for r in rows:
        item = {"leafIndex": r.seq, "jws": f"{r.protected}.{b64url(r.entry.encode())}.{r.signature}",
                "submitter": r.submitter, "receivedAt": r.received_at}
        if proofs:
            item["inclusionProof"] = inclusion_proof(r.seq, size, get)
        out.append(item)
    return out


_ITEM_COLUMNS = (entries.c.seq, entries.c.entry, entries.c.protected, entries.c.signature, entries.c.submitter,
                 entries.c.received_at)


def list_entries(conn: Connection, start: int, limit: int, size: int | None, proofs: bool) -> tuple[TreeHead, list[dict]]:
    """Entries with ``start <= index < size`` in index order (at most ``limit``), optionally with proofs."""
    cp = _head_at(conn, size)
    rows = conn.execute(sa.select(*_ITEM_COLUMNS).where(entries.c.seq >= start, entries.c.seq < cp.size)
                        .order_by(entries.c.seq).limit(limit)).all()
    return cp, _items(conn, rows, cp.size, proofs)


def process_parties(conn: Connection, process_id: str) -> tuple[str, str] | None:
    row = conn.execute(sa.select(processes.c.provider, processes.c.consumer)
                       .where(processes.c.process_id == process_id)).first()
    return (row.provider, row.consumer) if row else None


def list_process_entries(conn: Connection, process_id: str, after: int, limit: int,
                         size: int | None) -> tuple[TreeHead, list[dict]]:
    cp = _head_at(conn, size)
    rows = conn.execute(sa.select(*_ITEM_COLUMNS).where(entries.c.process_id == process_id, entries.c.seq > after,
                                                        entries.c.seq < cp.size)
                        .order_by(entries.c.seq).limit(limit)).all()
    return cp, _items(conn, rows, cp.size, True)


def _head_at(conn: Connection, size: int | None) -> TreeHead:
    current = head(conn)
    if size is None or size == current.size:
        return current
    if size > current.size:
        raise ProofRangeError(f"tree size {size} is larger than the log ({current.size} entries)")
    row = conn.execute(sa.select(checkpoints.c.root, checkpoints.c.note).where(checkpoints.c.size == size)).first()
    if row is None:
        raise ProofRangeError(f"the log signed no checkpoint at size {size}")
    return TreeHead(size, bytes(row.root), row.note)


def entry_at(conn: Connection, index: int, size: int | None) -> tuple[TreeHead, dict | None, str | None]:
    """The entry at ``index`` with its proof against the checkpoint of ``size`` (default: latest),
    and its process id (for access control); ``None`` if the log has no such entry."""
    cp = _head_at(conn, size)
    if not 0 <= index < cp.size:
        return cp, None, None
    row = conn.execute(sa.select(*_ITEM_COLUMNS, entries.c.process_id).where(entries.c.seq == index)).first()
    if row is None:
        return cp, None, None
    return cp, _items(conn, [row], cp.size, True)[0], row.process_id


def find_leaf(conn: Connection, leaf_hash: bytes) -> int | None:
    return conn.execute(sa.select(entries.c.seq).where(entries.c.leaf_hash == leaf_hash)).scalar()
