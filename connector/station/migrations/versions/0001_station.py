"""Station: participants, used client assertions, seen DATs, revocation feed, registry, change log.

A station created before it had migrations (tables made by ``metadata.create_all``) is adopted:
each table is created only if it is missing, so its data stays as it is.

Revision ID: st0001
"""
import sqlalchemy as sa
from alembic import op

revision = "st0001"
down_revision = None
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tables() -> list[tuple[str, list, list]]:
    """(name, columns, indexes) of every station table, as the schema was before migrations."""
    return [
        ("station_participants", [
            sa.Column("id", sa.String(200), primary_key=True),
            sa.Column("name", sa.String(300), nullable=False),
            sa.Column("jurisdiction", sa.String(32), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("security_profile", sa.String(100), nullable=False),
            sa.Column("membership", sa.JSON, nullable=False),
            sa.Column("connector_url", sa.String(2000)),
            sa.Column("certificate_pem", sa.Text, nullable=False),
            sa.Column("certificate_sha256", sa.String(64), nullable=False, unique=True),
            sa.Column("public_key_sha256", sa.String(64), nullable=False, unique=True),
            sa.Column("enrolled_at", sa.Float, nullable=False),
            sa.Column("revoked_at", sa.Float),
            sa.Column("revocation_reason", sa.String(1000)),
        ], []),
        ("station_used_assertions", [
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("expires_at", sa.Float, nullable=False),
        ], [("ix_station_used_assertions_expires_at", ["expires_at"])]),
        ("station_seen_tokens", [
            sa.Column("jti", sa.String(200), primary_key=True),
            sa.Column("token_sha256", sa.String(64), nullable=False),
            sa.Column("subject", sa.String(200), nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        ], [("ix_station_seen_tokens_expires_at", ["expires_at"])]),
        ("station_revocations", [
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("participant_id", sa.String(200), nullable=False, unique=True),
            sa.Column("revoked_at", sa.Float, nullable=False),
        ], []),
        ("station_registry", [
            sa.Column("participant_id", sa.String(200), primary_key=True),
            sa.Column("media_type", sa.String(64), nullable=False),
            sa.Column("document", sa.Text, nullable=False),
            sa.Column("signature", sa.Text, nullable=False),
            sa.Column("etag", sa.String(80), nullable=False),
            sa.Column("index", sa.JSON, nullable=False),
            sa.Column("registered_at", sa.Float, nullable=False),
        ], []),
        ("station_changes", [
            sa.Column("seq", Seq, primary_key=True, autoincrement=True),
            sa.Column("participant_id", sa.String(200), nullable=False),
            sa.Column("changed_at", sa.Float, nullable=False),
        ], []),
    ]


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, columns, indexes in _tables():
        if name in existing:
            continue
        op.create_table(name, *columns)
        for index, cols in indexes:
            op.create_index(index, name, cols)


def downgrade() -> None:
    for name, _, _ in reversed(_tables()):
        op.drop_table(name)
