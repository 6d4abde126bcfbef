"""The catalog's version (issue 16, branch catalog): one row whose counter every change to what a
catalog page shows (assets, policies, offers, the offer index, dataset certificates) raises in the
same transaction, by trigger, whoever writes. A replica reads it at the start of each catalog
request and keeps rendered pages only under the version they were read at, so a change made
through any replica is seen by the very next request on every replica.

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: what a catalog page is read from (connector/node/catalog_pages.py)
SOURCES = ("assets", "policies", "offers", "offer_assets", "dataset_certificates")
BUMP = "UPDATE catalog_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "catalog_version",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO catalog_version (id, version) VALUES (1, 1)")
    if op.get_bind().dialect.name == "postgresql":
        # Once per transaction: every UPDATE of one row in one transaction leaves a row version that the
        # next must step over, so a bulk load by single-row statements raised it in quadratic time
        # (10,000 offers: 72 s). The mark is transaction-local and undone with a rolled-back savepoint,
        # as the UPDATE is.
        op.execute(f"CREATE FUNCTION catalog_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   f"IF coalesce(current_setting('hks.catalog_version_raised', true), '') <> 'yes' THEN "
                   f"{BUMP}; PERFORM set_config('hks.catalog_version_raised', 'yes', true); END IF; "
                   f"RETURN NULL; END $$")
        for table in SOURCES:  # once per statement: a bulk insert raises the counter once
            op.execute(f"CREATE TRIGGER {table}_catalog_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                       f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION catalog_version_bump()")
    else:  # SQLite has row triggers only
        for table in SOURCES:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_catalog_version_{event.lower()} AFTER {event} ON {table} "
                           f"BEGIN {BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in SOURCES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_catalog_version ON {table}")
        op.execute("DROP FUNCTION IF EXISTS catalog_version_bump()")
    else:
        for table in SOURCES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_catalog_version_{event}")
    op.drop_table("catalog_version")
