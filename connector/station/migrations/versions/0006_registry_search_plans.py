"""Station: cheaper registry searches (issue 16, item 4), measured at 10,000 participants.

* PostgreSQL: participant ids compare by code point (collation "C") in ``station_participants`` as
  they already do in the registry's index. Joined under two collations, the planner sorted every
  participant for each search (a scan and sort of the whole table, 12-16 ms of the server's time);
  under one it walks both primary keys and stops at the page's last row (about 1 ms).
* SQLite: one index holding what a word search and a policy search read of each offer (its words
  and decision key) in the registry's order: the scan reads the index alone, not each offer's
  row with its stored result (a word search 5 ms -> 2 ms). Not on PostgreSQL, where an index
  entry is limited to about 2.7 kB and an offer's words are not.

Revision ID: st0006
Revises: st0005
"""
import sqlalchemy as sa
from alembic import op

revision = "st0006"
down_revision = "st0005"
branch_labels = None
depends_on = None

SCAN_INDEX = "ix_station_registry_offers_scan"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.alter_column("station_participants", "id", type_=sa.String(200, collation="C"),
                        existing_type=sa.String(200), existing_nullable=False)
    elif SCAN_INDEX not in {i["name"] for i in sa.inspect(bind).get_indexes("station_registry_offers")}:
        op.create_index(SCAN_INDEX, "station_registry_offers",
                        ["participant_id", "position", "decision_key", "search_text"])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.alter_column("station_participants", "id", type_=sa.String(200), existing_type=sa.String(200, collation="C"),
                        existing_nullable=False)
    else:
        op.drop_index(SCAN_INDEX, "station_registry_offers")
