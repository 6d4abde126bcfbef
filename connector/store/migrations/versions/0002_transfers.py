"""Transfers, usage counters, the provider's access log, the consumer's received data.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("dsp_version", sa.String(16), nullable=False),
        sa.Column("counterparty_id", sa.String(512), nullable=False),
        sa.Column("counterparty_address", sa.Text, nullable=False),
        sa.Column("consumer_pid", sa.String(255), nullable=True),
        sa.Column("provider_pid", sa.String(255), nullable=True),
        sa.Column("agreement_id", sa.String(512), nullable=False),
        sa.Column("format", sa.String(255), nullable=False),
        sa.Column("data_address", sa.JSON, nullable=True),
        sa.Column("claims", sa.JSON, nullable=True),
        sa.Column("last_in_digest", sa.String(64), nullable=True),
        sa.Column("last_in_response", sa.JSON, nullable=True),
        sa.Column("termination", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("role", "counterparty_id", "consumer_pid", name="uq_transfer_peer_consumer_pid"),
    )
    op.create_table(
        "usage_counters",
        sa.Column("agreement_id", sa.String(512), primary_key=True),
        sa.Column("uses", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("transfer_id", sa.String(255), nullable=False),
        sa.Column("agreement_id", sa.String(512), nullable=False),
        sa.Column("consumer_id", sa.String(512), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("permitted", sa.Boolean, nullable=False),
        sa.Column("purpose", sa.String(512), nullable=True),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("duties", sa.JSON, nullable=False),
    )
    op.create_index("ix_access_log_agreement", "access_log", ["agreement_id", "at"])
    op.create_table(
        "received_data",
        sa.Column("transfer_id", sa.String(255), primary_key=True),
        sa.Column("agreement_id", sa.String(512), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.String(255), nullable=True),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("delete_by", sa.Float, nullable=True),
        sa.Column("deleted_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    for table in ("received_data", "access_log", "usage_counters", "transfers"):
        op.drop_table(table)
