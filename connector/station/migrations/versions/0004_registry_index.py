"""Station: the registry's search index (issue 16, item 4): one row per registered offer, its themes,
and the policies offers are decided under, filled from the self-descriptions already registered.

Like st0001 and st0002, a table is created only if it is missing.

Revision ID: st0004
Revises: st0003
"""
import sqlalchemy as sa
from alembic import op

revision = "st0004"
down_revision = "st0003"
branch_labels = None
depends_on = None

Pid = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    if "station_registry_offers" not in existing:
        op.create_table(
            "station_registry_offers",
            sa.Column("participant_id", Pid, primary_key=True),
            sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("jurisdiction", sa.String(64)),
            sa.Column("search_text", sa.Text, nullable=False),
            sa.Column("decision_key", sa.String(64)),
            sa.Column("result", sa.JSON, nullable=False),
        )
        op.create_index("ix_station_registry_offers_jurisdiction", "station_registry_offers",
                        ["jurisdiction", "participant_id", "position"])
        op.create_index("ix_station_registry_offers_decision_key", "station_registry_offers", ["decision_key"])
    if "station_registry_themes" not in existing:
        op.create_table(
            "station_registry_themes",
            sa.Column("theme_sha256", sa.String(64), primary_key=True),
            sa.Column("participant_id", Pid, primary_key=True),
            sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        )
    if "station_registry_policies" not in existing:
        op.create_table(
            "station_registry_policies",
            sa.Column("decision_key", sa.String(64), primary_key=True),
            sa.Column("policy", sa.JSON, nullable=False),
            sa.Column("dataset_id", sa.Text, nullable=False),
            sa.Column("data_categories", sa.JSON, nullable=False),
        )
    _index_registered(bind)


def _index_registered(bind: sa.engine.Connection) -> None:
    """Index the self-descriptions registered before the index existed."""
    from connector.station import registry_index
    from connector.station.store import registry, registry_offers

    if bind.execute(sa.select(sa.func.count()).select_from(registry_offers)).scalar():
        return
    decisions = registry_index.Decisions()
    for row in bind.execute(sa.select(registry.c.participant_id, registry.c.index)).mappings().all():
        index = row["index"]
        if isinstance(index, str):  # JSON as text (a driver without a JSON type)
            import json
            index = json.loads(index)
        registry_index.write_entry(bind, registry_index.rows_for(index, decisions))


def downgrade() -> None:
    op.drop_table("station_registry_policies")
    op.drop_table("station_registry_themes")
    op.drop_table("station_registry_offers")
