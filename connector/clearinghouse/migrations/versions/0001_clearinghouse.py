"""Clearing house: append-only log, Merkle nodes, tree state, checkpoints, processes.

Revision ID: ch0001
"""
import hashlib
import json
import time

import sqlalchemy as sa
from alembic import op

revision = "ch0001"
down_revision = None
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    state = op.create_table(
        "ch_tree_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("origin", sa.String(255), nullable=True),
        sa.Column("verifier_key", sa.Text, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("checkpoint", sa.Text, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ch_entries",
        sa.Column("seq", Seq, primary_key=True, autoincrement=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("process_id", sa.String(256), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("submitter", sa.String(256), nullable=False),
        sa.Column("entry", sa.Text, nullable=False),
        sa.Column("protected", sa.String(1024), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ch_entries_process", "ch_entries", ["process_id", "seq"])
    op.create_table(
        "ch_nodes",
        sa.Column("id", Seq, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "ch_checkpoints",
        sa.Column("size", Seq, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ch_processes",
        sa.Column("process_id", sa.String(256), primary_key=True),
        sa.Column("provider", sa.String(256), nullable=False),
        sa.Column("consumer", sa.String(256), nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
    )
    # The empty tree; the service binds it to its log key and signs size 0 on first start.
    op.bulk_insert(state, [{
        "id": 1, "origin": None, "verifier_key": None, "size": 0,
        "frontier": json.dumps({"v": 1, "size": 0, "frontier": []}),
        "root": hashlib.sha256(b"").digest(), "checkpoint": None, "updated_at": time.time(),
    }])


def downgrade() -> None:
    for name in ("ch_processes", "ch_checkpoints", "ch_nodes", "ch_entries", "ch_tree_state"):
        op.drop_table(name)
