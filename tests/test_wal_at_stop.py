"""A node stopped cleanly (SIGTERM, what NodeProcess.stop() and service managers send) runs its
cleanup: the SQLite WAL is checkpointed into the database and emptied, not left behind at up to
40 MB (the safety autocheckpoint's size)."""
import sqlite3

import pytest

from support.nodes import NodeProcess

pytestmark = pytest.mark.slow


def test_a_clean_stop_leaves_an_empty_wal(tmp_path):
    node = NodeProcess(tmp_path / "node", "Walnode")
    node.start()
    try:
        node.api("POST", "/policies", {"id": "open", "policy": {"permission": [{"action": "use"}]}}, expect=201)
        for i in range(300):  # every commit appends pages to the WAL
            node.api("POST", "/assets", {"id": f"asset-{i}", "description": "x" * 2000}, expect=201)
        wal = tmp_path / "node" / "node.db-wal"
        assert wal.exists() and wal.stat().st_size > 64 * 1024  # a WAL worth truncating
    finally:
        node.stop()
    assert node.proc.returncode == 0, (node.log_path.read_text())[-2000:]
    assert not wal.exists() or wal.stat().st_size == 0, wal.stat().st_size
    db = sqlite3.connect(tmp_path / "node" / "node.db")  # everything committed is in the database file
    try:
        assert db.execute("SELECT count(*) FROM assets").fetchone()[0] == 300
    finally:
        db.close()
