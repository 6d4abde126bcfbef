"""The clearing house's own tables (SQLAlchemy Core), prefixed ``ch_`` so that they can
live next to a node's tables in one PostgreSQL database.

* ``ch_entries``: the append-only log, one row per leaf, ``seq`` = leaf index (0, 1, 2 ...).
* ``ch_nodes``: every complete Merkle node, keyed by its in-order position
  ``2 * start + 2**level - 1`` (leaves at even ids), so a proof is one primary-key batch.
* ``ch_tree_state``: the one row (id 1) holding size, frontier, root and the latest signed
  checkpoint; updated in the same transaction as every appended batch, and the lock that
  serialises appenders on PostgreSQL (``SELECT ... FOR UPDATE``).
* ``ch_checkpoints``: every checkpoint the log signed, by size.
* ``ch_processes``: the two parties of each process (fixed by its first entry), for access control.
* ``ch_seen_tokens``: on PostgreSQL in station mode, the jti of every DAT presented, bound to that token
  (shared by every clearing-house process; on SQLite: identity.db in the directory).
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: 64-bit on PostgreSQL; on SQLite a plain INTEGER primary key is the rowid (fast point lookups).
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID_LENGTH = 256

tree_state = sa.Table(
    "ch_tree_state", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("origin", sa.String(255), nullable=True),
    sa.Column("verifier_key", sa.Text, nullable=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("frontier", sa.Text, nullable=False),
    sa.Column("root", sa.LargeBinary(32), nullable=False),
    sa.Column("checkpoint", sa.Text, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)

entries = sa.Table(
    "ch_entries", metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("process_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("submitter", sa.String(ID_LENGTH), nullable=False),
    sa.Column("entry", sa.Text, nullable=False),
    sa.Column("protected", sa.String(1024), nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Index("ix_ch_entries_process", "process_id", "seq"),
)

nodes = sa.Table(
    "ch_nodes", metadata,
    sa.Column("id", Seq, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

checkpoints = sa.Table(
    "ch_checkpoints", metadata,
    sa.Column("size", Seq, primary_key=True, autoincrement=False),
    sa.Column("root", sa.LargeBinary(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

processes = sa.Table(
    "ch_processes", metadata,
    sa.Column("process_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("provider", sa.String(ID_LENGTH), nullable=False),
    sa.Column("consumer", sa.String(ID_LENGTH), nullable=False),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
)

seen_tokens = sa.Table(
    "ch_seen_tokens", metadata,
    sa.Column("jti", sa.String(200), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)
