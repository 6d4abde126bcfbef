"""Cross-border compliance records (issue 14): the record of each agreement made under a
cross-border policy, its versions (each logged by SHA-256 at the clearing house) and the filing.

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compliance_records",
        sa.Column("agreement_id", sa.String(512), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("filed_on", sa.String(10), nullable=True),
        sa.Column("filing_reference", sa.String(255), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "compliance_record_versions",
        sa.Column("agreement_id", sa.String(512), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("change", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("compliance_record_versions")
    op.drop_table("compliance_records")
