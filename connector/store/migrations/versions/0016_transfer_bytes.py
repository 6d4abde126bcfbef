"""What the console shows of a transfer in flight and of a refusal (issue 13, branch console4):

- `transfer_bytes`: the bytes a transfer's data plane has moved on this node (provider: served or
  pushed; consumer: downloaded or received), over all its accesses, added at most once a second per
  stream and at its end, so every replica reads the same count. A table of its own: the transfer's
  row is written by its state machine under an optimistic version, which a byte count must not race.
- `access_log.reason_msgs`: the engine's reasons of an access as message ids with parameters
  (connector/policy/explain.py Msg), beside their English text, so the console can show them in the
  viewer's language. NULL for rows written before this revision and for reasons that are not the
  engine's sentences.

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transfer_bytes",
        sa.Column("transfer_id", sa.String(255), primary_key=True),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("access_log") as batch:
        batch.add_column(sa.Column("reason_msgs", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_log") as batch:
        batch.drop_column("reason_msgs")
    op.drop_table("transfer_bytes")
