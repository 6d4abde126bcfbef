"""The outbox row keeps the W3C traceparent of the transition that queued it (issue 16, branch
otel): the message, sent later or by another replica, continues that trace. NULL while tracing
is off ([telemetry] otlp_endpoint unset) and for rows queued before this revision.

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("traceparent")
