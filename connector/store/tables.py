"""SQLAlchemy Core tables. The schema is owned by the Alembic migrations in
`migrations/`; these definitions must stay in step with them (a test checks)."""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

assets = sa.Table(
    "assets", metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("content_type", sa.String(255), nullable=False, server_default="application/octet-stream"),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("data_address", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_assets_created", "created_at", "id"),  # listing pages: a keyset (migration 0017)
)

policies = sa.Table(
    "policies", metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_policies_created", "created_at", "id"),  # listing pages: a keyset (migration 0017)
)

offers = sa.Table(
    "offers", metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("asset_ids", sa.JSON, nullable=False),
    sa.Column("access_policy_id", sa.String(255), sa.ForeignKey("policies.id"), nullable=False),
    sa.Column("contract_policy_id", sa.String(255), sa.ForeignKey("policies.id"), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_offers_access_policy", "access_policy_id"),
    sa.Index("ix_offers_created", "created_at", "id"),  # listing pages: a keyset (migration 0017)
)

# the catalog's index (migration 0008): one row per (asset, offer) of offers.asset_ids, with the
# offer's access policy (a page is read from this table alone, in (asset, offer) order)
offer_assets = sa.Table(
    "offer_assets", metadata,
    sa.Column("asset_id", sa.String(255), primary_key=True),
    sa.Column("offer_id", sa.String(255), sa.ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("access_policy_id", sa.String(255), nullable=False),
    sa.Index("ix_offer_assets_offer", "offer_id"),
)

negotiations = sa.Table(
    "negotiations", metadata,
    sa.Column("id", sa.String(255), primary_key=True),  # our own pid
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),  # optimistic concurrency
    sa.Column("dsp_version", sa.String(16), nullable=False),
    sa.Column("counterparty_id", sa.String(512), nullable=False),
    sa.Column("counterparty_address", sa.Text, nullable=False),  # the peer's DSP base or callback
    sa.Column("consumer_pid", sa.String(255), nullable=True),
    sa.Column("provider_pid", sa.String(255), nullable=True),
    sa.Column("dataset_id", sa.String(255), nullable=True),
    sa.Column("offer_id", sa.String(512), nullable=True),
    sa.Column("offer", sa.JSON, nullable=True),  # the current offer; on the provider always its own copy
    sa.Column("agreement", sa.JSON, nullable=True),
    sa.Column("last_in_digest", sa.String(64), nullable=True),  # idempotency of inbound messages
    sa.Column("last_in_response", sa.JSON, nullable=True),
    sa.Column("termination", sa.JSON, nullable=True),  # who terminated and why
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("role", "counterparty_id", "consumer_pid", name="uq_negotiation_peer_consumer_pid"),
    sa.Index("ix_negotiations_created", "created_at", "id"),  # listing pages: a keyset (migration 0017)
)

agreements = sa.Table(
    "agreements", metadata,
    sa.Column("id", sa.String(512), primary_key=True),
    sa.Column("negotiation_id", sa.String(255), sa.ForeignKey("negotiations.id"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("provider_id", sa.String(512), nullable=False),
    sa.Column("consumer_id", sa.String(512), nullable=False),
    sa.Column("asset_id", sa.String(255), nullable=False),
    sa.Column("policy", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # provider: the offer (offers.id) it was made under; its access policy is decided again at
    # transfer start and at every access (NULL: unknown, refused)
    sa.Column("offer_id", sa.String(255), nullable=True),
    sa.Index("ix_agreements_created", "created_at", "id"),  # listing pages: a keyset (migration 0017)
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(64), nullable=False, unique=True),  # sent as Idempotency-Key
    sa.Column("process_id", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    # the peer's participant id: the message's token is issued for it only (NULL: the clearing house's lane)
    sa.Column("recipient", sa.String(512), nullable=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | failed | dead | cancelled
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float, nullable=True),
    # the fencing token: incremented at every claim; only its holder may renew, mark or send the row
    sa.Column("lease_gen", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deadline_at", sa.Float, nullable=True),  # NULL: created_at + the deadline of its kind
    sa.Column("dead_at", sa.Float, nullable=True),  # when it became a dead letter (last_error: why)
    # W3C traceparent of the transition that queued it (NULL: tracing off): its send continues that trace
    sa.Column("traceparent", sa.String(64), nullable=True),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
    sa.Index("ix_outbox_process", "process_id", "status"),
)

transfers = sa.Table(
    "transfers", metadata,
    sa.Column("id", sa.String(255), primary_key=True),  # our own pid
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("dsp_version", sa.String(16), nullable=False),
    sa.Column("counterparty_id", sa.String(512), nullable=False),
    sa.Column("counterparty_address", sa.Text, nullable=False),
    sa.Column("consumer_pid", sa.String(255), nullable=True),
    sa.Column("provider_pid", sa.String(255), nullable=True),
    sa.Column("agreement_id", sa.String(512), nullable=False),
    sa.Column("format", sa.String(255), nullable=False),
    sa.Column("data_address", sa.JSON, nullable=True),  # pull: the endpoint given to the consumer; push: its destination
    sa.Column("claims", sa.JSON, nullable=True),  # provider: the consumer's verified claims when it asked
    sa.Column("last_in_digest", sa.String(64), nullable=True),
    sa.Column("last_in_response", sa.JSON, nullable=True),
    sa.Column("termination", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # provider, pull: SHA-256 (hex) of the live pull token, never the token itself
    sa.Column("token_hash", sa.String(64), nullable=True),
    sa.Column("token_expires_at", sa.Float, nullable=True),
    sa.UniqueConstraint("role", "counterparty_id", "consumer_pid", name="uq_transfer_peer_consumer_pid"),
    sa.Index("ix_transfers_token_hash", "token_hash", unique=True),
    sa.Index("ix_transfers_created", "created_at", "id"),  # listing pages: a keyset (migration 0017)
)

usage_counters = sa.Table(
    "usage_counters", metadata,
    sa.Column("agreement_id", sa.String(512), primary_key=True),
    sa.Column("uses", sa.Integer, nullable=False),  # completed (permitted) accesses under the agreement
    sa.Column("updated_at", sa.Float, nullable=False),
)

# computation-only agreements (connector/compute): what has been spent, and every computation
compute_budgets = sa.Table(
    "compute_budgets", metadata,
    sa.Column("agreement_id", sa.String(512), primary_key=True),
    sa.Column("computations", sa.Integer, nullable=False),  # served (and reserved, while one runs)
    sa.Column("epsilon_spent", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

computations = sa.Table(
    "computations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("agreement_id", sa.String(512), nullable=False),
    sa.Column("transfer_id", sa.String(512), nullable=False),
    sa.Column("consumer_id", sa.String(512), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("permitted", sa.Boolean, nullable=False),
    sa.Column("rule", sa.String(64), nullable=True),  # the term a refusal names
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("query_sha256", sa.String(64), nullable=True),
    sa.Column("result_sha256", sa.String(64), nullable=True),
    sa.Column("rows", sa.Integer, nullable=True),
    sa.Column("groups_suppressed", sa.Integer, nullable=True),
    sa.Column("epsilon", sa.Float, nullable=True),
    sa.Column("record_sha256", sa.String(64), nullable=True),  # what the clearing-house entry carries
    sa.Index("ix_computations_agreement_id", "agreement_id"),
)

access_log = sa.Table(
    "access_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("transfer_id", sa.String(255), nullable=True),  # none for a refusal before a transfer exists
    sa.Column("agreement_id", sa.String(512), nullable=True),  # none for a refusal at negotiation
    sa.Column("consumer_id", sa.String(512), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("permitted", sa.Boolean, nullable=False),
    sa.Column("purpose", sa.String(512), nullable=True),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("duties", sa.JSON, nullable=False),
    sa.Column("stage", sa.String(32), nullable=False, server_default="access"),  # negotiation | transfer-start | access
    sa.Column("offer_id", sa.String(512), nullable=True),
    # the engine's reasons as message ids with parameters, beside `reasons` (their English text); NULL
    # for older rows and reasons that are not the engine's (the console then shows the text)
    sa.Column("reason_msgs", sa.JSON, nullable=True),
    sa.Index("ix_access_log_agreement", "agreement_id", "at"),
)

transfer_bytes = sa.Table(
    "transfer_bytes", metadata,
    # the bytes this node's data plane has moved for a transfer (all its accesses), added at a bounded
    # rate while a stream runs and at its end (connector/node/dataplane/common.py ByteMeter)
    sa.Column("transfer_id", sa.String(255), primary_key=True),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

received_data = sa.Table(
    "received_data", metadata,
    sa.Column("transfer_id", sa.String(255), primary_key=True),
    sa.Column("agreement_id", sa.String(512), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("content_type", sa.String(255), nullable=True),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("delete_by", sa.Float, nullable=True),  # from the agreement's delete duty
    sa.Column("deleted_at", sa.Float, nullable=True),
)

idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    # a management client's Idempotency-Key for POST /api/v1/negotiations or /transfers (scope): a
    # retry with the same key and body gets the first answer, and creates nothing
    sa.Column("scope", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("process_id", sa.String(255), nullable=False),
    sa.Column("response", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

ch_receipts = sa.Table(
    "ch_receipts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("process_id", sa.String(255), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("leaf_index", sa.BigInteger, nullable=False),
    sa.Column("leaf_hash", sa.String(64), nullable=False),
    sa.Column("tree_size", sa.BigInteger, nullable=False),
    sa.Column("receipt", sa.JSON, nullable=False),  # verified when it arrived: checkpoint signature + inclusion
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_ch_receipts_process", "process_id"),
)

ch_state = sa.Table(
    "ch_state", metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # "checkpoint", "alarm"
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# cross-border compliance (connector/compliance/): the record of each agreement made under a
# cross-border policy, every version of it (each logged by SHA-256 at the clearing house), and
# the party's own filing of the contract
compliance_records = sa.Table(
    "compliance_records", metadata,
    sa.Column("agreement_id", sa.String(512), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("record", sa.JSON, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),  # YYYY-MM-DD, working days from the agreement
    sa.Column("filed_on", sa.String(10), nullable=True),
    sa.Column("filing_reference", sa.String(255), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

compliance_record_versions = sa.Table(
    "compliance_record_versions", metadata,
    sa.Column("agreement_id", sa.String(512), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("record", sa.JSON, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("change", sa.String(32), nullable=False),  # created | pipia | consent | consent-withdrawn | narrowed | filed
    sa.Column("at", sa.Float, nullable=False),
)

# the operator console's local accounts and sessions (connector/console/auth.py)
console_users = sa.Table(
    "console_users", metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
console_sessions = sa.Table(
    "console_sessions", metadata,
    sa.Column("id_sha256", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# dataset registration certificates (migration 0012, connector/certs): the request sent to the
# station for an asset and, once approved, the certificate bundle the catalog advertises
dataset_certificates = sa.Table(
    "dataset_certificates", metadata,
    sa.Column("asset_id", sa.String(255), primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("bundle", sa.JSON, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)


# DATs presented to this node when it runs on PostgreSQL: jti bound to the first token carrying it, shared
# by every replica (connector/identity/db_replay.py; on SQLite the node keeps identity.db instead)
dat_seen_tokens = sa.Table(
    "dat_seen_tokens", metadata,
    sa.Column("jti", sa.String(200), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)


# the catalog's version (migration 0016): one row (id 1) whose counter a trigger on every table a
# catalog page is read from (assets, policies, offers, offer_assets, dataset_certificates) raises in
# the writer's transaction; rendered catalog pages are kept per version (node/catalog_pages.py)
catalog_version = sa.Table(
    "catalog_version", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)
