"""Station: the outbox of the certificate log entries the station sends the clearing house itself.

Approving a certificate writes its signed entry here in the same transaction; the station's sender
leases due rows (several processes on one database send each entry once) and keeps the receipt.

Revision ID: st0005
Revises: st0004
"""
import sqlalchemy as sa
from alembic import op

revision = "st0005"
down_revision = "st0004"
branch_labels = None
depends_on = None

TABLE = "station_log_outbox"


def upgrade() -> None:
    if TABLE in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("serial", sa.Integer, nullable=False, unique=True),
        sa.Column("jws", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.Float),
        sa.Column("last_error", sa.String(500)),
        sa.Column("receipt", sa.JSON),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
    )
    op.create_index("ix_station_log_outbox_state", TABLE, ["state"])


def downgrade() -> None:
    op.drop_table(TABLE)
