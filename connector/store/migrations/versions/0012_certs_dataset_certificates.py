"""Dataset registration certificates (issue 14 item 6, branch certs): per asset, the registration
request sent to the station (its digest and status) and, once approved, the certificate bundle
(the station's signed certificate with the clearing-house receipt of its SHA-256).

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_certificates",
        sa.Column("asset_id", sa.String(255), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("bundle", sa.JSON, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dataset_certificates")
