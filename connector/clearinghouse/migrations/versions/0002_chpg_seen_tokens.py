"""Clearing house: the DAT replay state shared by its processes on PostgreSQL (issue 16, branch chpg).

Revision ID: ch0002
Revises: ch0001
"""
import sqlalchemy as sa
from alembic import op

revision = "ch0002"
down_revision = "ch0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ch_seen_tokens",
        sa.Column("jti", sa.String(200), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ch_seen_tokens_expires_at", "ch_seen_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_table("ch_seen_tokens")
