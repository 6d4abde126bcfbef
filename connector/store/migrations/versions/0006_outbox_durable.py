"""Durable outbox (issue 11): deadlines instead of an attempt cap, dead letters, fenced leases.

- outbox.lease_gen: the fencing token. Every claim of a row increments it; the dispatcher that
  holds the row may renew, mark or send it only while (lease_owner, lease_gen) are still its own,
  so a dispatcher whose lease was taken over can neither mark the row nor send it again.
- outbox.deadline_at: when the row is given up (a dead letter). NULL: created_at plus the
  deadline configured for its kind ([outbox] message_deadline_seconds,
  clearinghouse_deadline_seconds); an operator's retry of a dead letter sets a new one.
- outbox.dead_at: when the row became a dead letter (status 'dead'; its last_error is the cause).
  Rows queued after a dead letter of the same process are 'cancelled' (the process is terminated).

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lease_gen", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("deadline_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("dead_at", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("dead_at")
        batch.drop_column("deadline_at")
        batch.drop_column("lease_gen")
