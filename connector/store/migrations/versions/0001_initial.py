"""Initial schema: assets, policies, offers, negotiations, agreements, outbox.

Revision ID: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("content_type", sa.String(255), nullable=False, server_default="application/octet-stream"),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("data_address", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "offers",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("asset_ids", sa.JSON, nullable=False),
        sa.Column("access_policy_id", sa.String(255), sa.ForeignKey("policies.id"), nullable=False),
        sa.Column("contract_policy_id", sa.String(255), sa.ForeignKey("policies.id"), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "negotiations",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("dsp_version", sa.String(16), nullable=False),
        sa.Column("counterparty_id", sa.String(512), nullable=False),
        sa.Column("counterparty_address", sa.Text, nullable=False),
        sa.Column("consumer_pid", sa.String(255), nullable=True),
        sa.Column("provider_pid", sa.String(255), nullable=True),
        sa.Column("dataset_id", sa.String(255), nullable=True),
        sa.Column("offer_id", sa.String(512), nullable=True),
        sa.Column("offer", sa.JSON, nullable=True),
        sa.Column("agreement", sa.JSON, nullable=True),
        sa.Column("last_in_digest", sa.String(64), nullable=True),
        sa.Column("last_in_response", sa.JSON, nullable=True),
        sa.Column("termination", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("role", "counterparty_id", "consumer_pid", name="uq_negotiation_peer_consumer_pid"),
    )
    op.create_table(
        "agreements",
        sa.Column("id", sa.String(512), primary_key=True),
        sa.Column("negotiation_id", sa.String(255), sa.ForeignKey("negotiations.id"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("provider_id", sa.String(512), nullable=False),
        sa.Column("consumer_id", sa.String(512), nullable=False),
        sa.Column("asset_id", sa.String(255), nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False, unique=True),
        sa.Column("process_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float, nullable=True),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_process", "outbox", ["process_id", "status"])


def downgrade() -> None:
    for table in ("outbox", "agreements", "negotiations", "offers", "policies", "assets"):
        op.drop_table(table)
