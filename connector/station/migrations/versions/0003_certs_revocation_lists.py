"""Station: the signed certificate revocation lists it issued (connector/certs), numbered.

Each list has a number one above the one before, an issue time and a next-update time (like a CRL's
cRLNumber, thisUpdate and nextUpdate); every replica serves the newest row, so the number only grows.

Revision ID: st0003
Revises: st0002
"""
import sqlalchemy as sa
from alembic import op

revision = "st0003"
down_revision = "st0002"
branch_labels = None
depends_on = None

TABLE = "station_revocation_lists"


def upgrade() -> None:
    if TABLE in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        TABLE,
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("issued_at", sa.Float, nullable=False),
        sa.Column("next_update", sa.Float, nullable=False),
        sa.Column("token", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table(TABLE)
