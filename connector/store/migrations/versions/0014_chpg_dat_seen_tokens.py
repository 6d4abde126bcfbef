"""The DAT replay state shared by the node's replicas on PostgreSQL (issue 16, branch chpg): the jti of
every token presented to this node, bound to that token's hash until it expires. On SQLite the node
keeps it in identity.db as before; the table is created there too but not used.

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dat_seen_tokens",
        sa.Column("jti", sa.String(200), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_dat_seen_tokens_expires_at", "dat_seen_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_table("dat_seen_tokens")
