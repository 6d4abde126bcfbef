"""Access policy decided wherever an offer is used, and pull tokens kept as hashes (issue 10).

- agreements.offer_id: the offer (offers.id) an agreement was made under, so that its access
  policy can be decided again at transfer start and at every access. Backfilled for the
  provider's agreements from their negotiation's catalog offer id; an agreement whose offer
  cannot be found keeps NULL and is refused (fail closed).
- transfers.token_hash / token_expires_at: the provider keeps only SHA-256 of a pull token and
  looks it up by that hash. Tokens issued before this revision have no hash: they stop working.
- access_log: every access decision, also the refusals at negotiation and transfer start
  (stage), which have no transfer and, at negotiation, no agreement yet.

Revision ID: 0005
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SEPARATOR = "::"  # connector.node.catalog.OFFER_ASSET_SEPARATOR


def upgrade() -> None:
    with op.batch_alter_table("agreements") as batch:
        batch.add_column(sa.Column("offer_id", sa.String(255), nullable=True))
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("token_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("token_expires_at", sa.Float, nullable=True))
        batch.create_index("ix_transfers_token_hash", ["token_hash"], unique=True)
    with op.batch_alter_table("access_log") as batch:
        batch.add_column(sa.Column("stage", sa.String(32), nullable=False, server_default="access"))
        batch.add_column(sa.Column("offer_id", sa.String(512), nullable=True))
        batch.alter_column("transfer_id", existing_type=sa.String(255), nullable=True)
        batch.alter_column("agreement_id", existing_type=sa.String(512), nullable=True)
    _backfill_offer_ids()


def _backfill_offer_ids() -> None:
    conn = op.get_bind()
    offer_ids = {row[0] for row in conn.execute(sa.text("SELECT id FROM offers"))}
    rows = conn.execute(sa.text(
        "SELECT a.id, n.offer_id FROM agreements a JOIN negotiations n ON n.id = a.negotiation_id "
        "WHERE a.role = 'provider' AND n.offer_id IS NOT NULL")).all()
    for agreement_id, catalog_offer_id in rows:
        offer_id = catalog_offer_id if catalog_offer_id in offer_ids else None
        if offer_id is None and SEPARATOR in catalog_offer_id:
            head = catalog_offer_id.rpartition(SEPARATOR)[0]
            offer_id = head if head in offer_ids else None
        if offer_id is not None:
            conn.execute(sa.text("UPDATE agreements SET offer_id = :o WHERE id = :a"),
                         {"o": offer_id, "a": agreement_id})


def downgrade() -> None:
    with op.batch_alter_table("access_log") as batch:
        batch.drop_column("offer_id")
        batch.drop_column("stage")
    with op.batch_alter_table("transfers") as batch:
        batch.drop_index("ix_transfers_token_hash")
        batch.drop_column("token_expires_at")
        batch.drop_column("token_hash")
    with op.batch_alter_table("agreements") as batch:
        batch.drop_column("offer_id")
