"""Station: dataset registration requests and the certificates issued for them (connector/certs).

Like st0001, the table is created only if it is missing, so a station whose tables were made by
``metadata.create_all`` keeps its data.

Revision ID: st0002
Revises: st0001
"""
import sqlalchemy as sa
from alembic import op

revision = "st0002"
down_revision = "st0001"
branch_labels = None
depends_on = None

TABLE = "station_dataset_registrations"


def upgrade() -> None:
    if TABLE in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        TABLE,
        sa.Column("serial", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("participant_id", sa.String(200), nullable=False),
        sa.Column("dataset_id", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("replaces", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("certificate", sa.Text),
        sa.Column("reason", sa.String(1000)),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("reviewed_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_index("ix_station_dataset_registrations_participant_id", TABLE, ["participant_id"])


def downgrade() -> None:
    op.drop_table(TABLE)
