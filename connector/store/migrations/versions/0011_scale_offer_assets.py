"""The catalog's index (issue 16, branch scale): one row per (asset, offer) with the offer's access
policy, so that a page of the catalog is read in dataset order with a keyset over this table alone
(no scan of every offer per request), and offers are found by their access policy. Backfilled
from offers.asset_ids.

Revision ID: 0011
Revises: 0010
"""
import json

from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offer_assets",
        sa.Column("asset_id", sa.String(255), primary_key=True),
        sa.Column("offer_id", sa.String(255), sa.ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("access_policy_id", sa.String(255), nullable=False),
    )
    op.create_index("ix_offer_assets_offer", "offer_assets", ["offer_id"])
    op.create_index("ix_offers_access_policy", "offers", ["access_policy_id"])
    conn = op.get_bind()
    rows = []
    for offer_id, asset_ids, policy_id in conn.execute(sa.text("SELECT id, asset_ids, access_policy_id FROM offers")):
        if isinstance(asset_ids, str):
            asset_ids = json.loads(asset_ids)
        rows += [{"a": a, "o": offer_id, "p": policy_id} for a in dict.fromkeys(asset_ids or [])]
    if rows:
        conn.execute(sa.text("INSERT INTO offer_assets (asset_id, offer_id, access_policy_id) VALUES (:a, :o, :p)"),
                     rows)


def downgrade() -> None:
    op.drop_index("ix_offers_access_policy", table_name="offers")
    op.drop_index("ix_offer_assets_offer", table_name="offer_assets")
    op.drop_table("offer_assets")
