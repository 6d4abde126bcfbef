"""Migration 0005 (access) on a database made before it: agreements learn the offer they were made
under (for its access policy), and pull tokens issued before it stop working."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from connector.store.db import MIGRATIONS


def _alembic(conn: sa.Connection, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


def test_agreements_made_before_the_migration_keep_their_offer(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        _alembic(conn, "0003")
        conn.execute(sa.text("INSERT INTO policies VALUES ('p', '{}', 0)"))
        conn.execute(sa.text("""INSERT INTO offers VALUES ('single', '["a"]', 'p', 'p', 0), ('multi', '["a","b"]', 'p', 'p', 0)"""))
        for pid, offer in (("n1", "single"), ("n2", "multi::b"), ("n3", "gone")):
            conn.execute(sa.text(
                "INSERT INTO negotiations (id, role, state, version, dsp_version, counterparty_id, counterparty_address,"
                " offer_id, created_at, updated_at) VALUES (:id, 'provider', 'FINALIZED', 1, '2025-1', 'c', 'u', :o, 0, 0)"),
                {"id": pid, "o": offer})
            conn.execute(sa.text(
                "INSERT INTO agreements VALUES (:id, :n, 'provider', 'me', 'c', 'a', '{}', 0)"), {"id": f"ag-{pid}", "n": pid})
        conn.execute(sa.text(
            "INSERT INTO access_log (transfer_id, agreement_id, consumer_id, at, permitted, reasons, duties) "
            "VALUES ('t', 'ag-n1', 'c', 0, 1, '[]', '[]')"))
        _alembic(conn, "head")
        kept = dict(conn.execute(sa.text("SELECT id, offer_id FROM agreements")).all())
        assert kept == {"ag-n1": "single", "ag-n2": "multi", "ag-n3": None}  # unknown: refused (fail closed)
        assert conn.execute(sa.text("SELECT stage FROM access_log")).scalar() == "access"
    engine.dispose()
