"""Computation-only offers (issue 15, branch compute): the count and privacy budget spent per
agreement, and every computation with its digests.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compute_budgets",
        sa.Column("agreement_id", sa.String(512), primary_key=True),
        sa.Column("computations", sa.Integer, nullable=False),
        sa.Column("epsilon_spent", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "computations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agreement_id", sa.String(512), nullable=False),
        sa.Column("transfer_id", sa.String(512), nullable=False),
        sa.Column("consumer_id", sa.String(512), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("permitted", sa.Boolean, nullable=False),
        sa.Column("rule", sa.String(64), nullable=True),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("query_sha256", sa.String(64), nullable=True),
        sa.Column("result_sha256", sa.String(64), nullable=True),
        sa.Column("rows", sa.Integer, nullable=True),
        sa.Column("groups_suppressed", sa.Integer, nullable=True),
        sa.Column("epsilon", sa.Float, nullable=True),
        sa.Column("record_sha256", sa.String(64), nullable=True),
    )
    op.create_index("ix_computations_agreement_id", "computations", ["agreement_id"])


def downgrade() -> None:
    op.drop_index("ix_computations_agreement_id", "computations")
    op.drop_table("computations")
    op.drop_table("compute_budgets")
