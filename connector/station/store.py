"""The station's tables (its own database: station.db by default, or PostgreSQL).

Created and upgraded by the station's own Alembic migrations (``connector/station/migrations``,
version table ``station_alembic_version``), so that several station processes can share one
PostgreSQL database (and a node's or a clearing house's). See :mod:`connector.station.shared`."""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
#: participant ids sort by code point, as Python sorts them, whatever the database's collation (and
#: the registry's index joins participants under the same collation: st0006)
PidColumn = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")

participants = sa.Table(
    "station_participants", metadata,
    sa.Column("id", PidColumn, primary_key=True),  # SKI:keyid:AKI
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("jurisdiction", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # active | revoked
    sa.Column("security_profile", sa.String(100), nullable=False),
    sa.Column("membership", sa.JSON, nullable=False),
    sa.Column("connector_url", sa.String(2000)),
    sa.Column("certificate_pem", sa.Text, nullable=False),
    sa.Column("certificate_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("public_key_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("enrolled_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    sa.Column("revocation_reason", sa.String(1000)),
)

# Client-assertion jtis already used at the token endpoint (single use), kept until the
# assertion expires: a restart of the station does not reopen the window.
used_assertions = sa.Table(
    "station_used_assertions", metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # sha256(iss \0 jti)
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

# DATs presented to the registry: jti bound to the token's hash (see connector/identity/dat.py).
seen_tokens = sa.Table(
    "station_seen_tokens", metadata,
    sa.Column("jti", sa.String(200), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

# The revocation feed (GET /revocations?since=SEQ): one row per revocation, in order.
revocations = sa.Table(
    "station_revocations", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("participant_id", sa.String(200), nullable=False, unique=True),
    sa.Column("revoked_at", sa.Float, nullable=False),
)

# Every change to participants or the registry, in commit order (see connector/station/shared.py):
# the other processes sharing the database read it to refresh their caches.
changes = sa.Table(
    "station_changes", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("participant_id", sa.String(200), nullable=False),
    sa.Column("changed_at", sa.Float, nullable=False),
)

registry = sa.Table(
    "station_registry", metadata,
    sa.Column("participant_id", sa.String(200), primary_key=True),
    sa.Column("media_type", sa.String(64), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("signature", sa.Text, nullable=False),
    sa.Column("etag", sa.String(80), nullable=False),
    sa.Column("index", sa.JSON, nullable=False),
    sa.Column("registered_at", sa.Float, nullable=False),
)

# The registry's search index (station migration st0004), rewritten with each registration: one row
# per offer in the order the self-description lists them, so a search is an ordered, indexed query
# instead of a scan of every self-description in each process's memory (issue 16, item 4).
registry_offers = sa.Table(
    "station_registry_offers", metadata,
    sa.Column("participant_id", PidColumn, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("jurisdiction", sa.String(64)),  # the provider's, from its self-description
    sa.Column("search_text", sa.Text, nullable=False),  # the words a query matches, lower case
    sa.Column("decision_key", sa.String(64)),  # station_registry_policies; NULL: no readable policy
    sa.Column("result", sa.JSON, nullable=False),  # the search result for this offer
    sa.Index("ix_station_registry_offers_jurisdiction", "jurisdiction", "participant_id", "position"),
    sa.Index("ix_station_registry_offers_decision_key", "decision_key"),
    # SQLite (st0006): a word or policy search scans this index alone, not the rows with their results
    sa.Index("ix_station_registry_offers_scan", "participant_id", "position", "decision_key",
             "search_text").ddl_if(dialect="sqlite"),
)
# sha256 of each theme IRI of an offer (IRIs of any length, fixed-size keys)
registry_themes = sa.Table(
    "station_registry_themes", metadata,
    sa.Column("theme_sha256", sa.String(64), primary_key=True),
    sa.Column("participant_id", PidColumn, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
)
# One policy per decision key: offers whose usability the station decides the same way share it
registry_policies = sa.Table(
    "station_registry_policies", metadata,
    sa.Column("decision_key", sa.String(64), primary_key=True),
    sa.Column("policy", sa.JSON, nullable=False),
    sa.Column("dataset_id", sa.Text, nullable=False),
    sa.Column("data_categories", sa.JSON, nullable=False),
)
