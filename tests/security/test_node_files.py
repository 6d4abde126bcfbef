"""Issue 10, finding 5 (part): a node's files. Its database was mode 0644 (readable by every
local user and by whatever copies the directory), and node.db held live pull tokens in plain
text, so reading the file was enough to pull data. Now the node directory, keys/ and data/
are 0700, node.db and its -wal/-shm 0600, and the provider keeps only SHA-256 of a pull token."""
from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from support.access import held_token
from support.nodes import SHARED_SECRET, NodeProcess, free_port

CSV = "a,b\n1,2\n"


@contextlib.contextmanager
def umask(mask: int):
    """The usual umask for the processes started inside, whatever the test runner's is."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_files_and_directories_are_private_to_the_node(tmp_path):
    directory = tmp_path / "node"
    port = free_port()
    with umask(0o022):
        subprocess.run([sys.executable, "-m", "connector", "init", str(directory), "--name", "Files", "--port",
                        str(port), "--shared-secret", SHARED_SECRET], check=True, capture_output=True)
        node = NodeProcess(directory, "Files", init=False).start()
    try:
        node.api("POST", "/assets", {"id": "a", "title": "a"}, expect=201)  # a write: the WAL is in use
        database = directory / "node.db"
        running = {p: mode(p) for p in (database, Path(f"{database}-wal"), Path(f"{database}-shm"))}
        assert running == {p: 0o600 for p in running}, {str(p): oct(m) for p, m in running.items()}
    finally:
        node.stop()
    for sub in (directory, directory / "keys", directory / "data"):
        assert mode(sub) == 0o700, (sub, oct(mode(sub)))
    for path in directory.glob("node.db*"):
        assert mode(path) == 0o600, (path, oct(mode(path)))


async def test_a_database_left_readable_by_others_is_narrowed_when_opened(tmp_path):
    """An upgrade: node.db (and its WAL) made 0644 by an earlier version become 0600."""
    from connector.store.db import Database

    database = tmp_path / "node.db"
    for path in (database, Path(f"{database}-wal")):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
        os.chmod(path, 0o644)
    db = Database(f"sqlite+aiosqlite:///{database}")
    await db.migrate()
    await db.dispose()
    assert {p.name: oct(mode(p)) for p in tmp_path.glob("node.db*")} == \
        {p.name: oct(0o600) for p in tmp_path.glob("node.db*")}


@pytest.fixture
def pair(tmp_path):
    """A provider offering x.csv to everyone, and a consumer with an agreement for it."""
    provider = NodeProcess(tmp_path / "provider", "Provider")
    consumer = NodeProcess(tmp_path / "consumer", "Consumer")
    (provider.directory / "data").mkdir(exist_ok=True)
    (provider.directory / "data" / "x.csv").write_text(CSV)
    provider.start()
    consumer.start()
    try:
        provider.api("POST", "/assets", {"id": "x", "title": "x", "contentType": "text/csv",
                                         "dataAddress": {"type": "file", "path": "x.csv"}}, expect=201)
        provider.api("POST", "/policies", {"id": "use", "policy": {"permission": [{"action": "use"}]}}, expect=201)
        provider.api("POST", "/offers", {"id": "offer-x", "assetIds": ["x"], "accessPolicyId": "use",
                                         "contractPolicyId": "use"}, expect=201)
        neg = consumer.wait_state(consumer.negotiate(provider, "x", "offer-x")["id"])
        yield provider, consumer, neg["agreement"]["@id"]
    finally:
        provider.stop()
        consumer.stop()


def _transfer(consumer: NodeProcess, agreement_id: str, fmt: str, state: str) -> dict:
    started = consumer.api("POST", "/transfers", {"agreementId": agreement_id, "format": fmt}, expect=201)
    return consumer.api("GET", f"/transfers/{started['id']}?waitFor={state}&timeout=10", expect=200)


def _secret_in(directory: Path, secret: str) -> list[Path]:
    return [f for f in directory.glob("node.db*") if secret.encode() in f.read_bytes()]


def test_a_copy_of_the_providers_node_db_holds_no_live_pull_token(pair):
    provider, consumer, agreement_id = pair
    pull = _transfer(consumer, agreement_id, "HttpData-PULL", "STARTED")
    token = held_token(consumer, pull["id"])
    assert httpx.get(pull["endpoint"], headers={"Authorization": f"Bearer {token}"}).text == CSV
    assert _secret_in(provider.directory, token) == []  # neither the database nor its WAL
    engine = sa.create_engine(provider.settings.database_url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT token_hash FROM transfers WHERE id = :i"),
                            {"i": pull["providerPid"]}).scalar()
    engine.dispose()
    assert kept == hashlib.sha256(token.encode()).hexdigest()  # looked up by its hash
    provider.stop()
    assert _secret_in(provider.directory, token) == []
    assert token not in provider.log_path.read_text()  # nor in the provider's log


def test_a_copy_of_the_consumers_node_db_holds_no_live_push_token(pair):
    provider, consumer, agreement_id = pair
    push = _transfer(consumer, agreement_id, "HttpData-PUSH", "COMPLETED")
    assert push["state"] == "COMPLETED"
    assert httpx.get(f"{consumer.url}/api/v1/transfers/{push['id']}/data", headers=consumer.headers()).text == CSV
    token = held_token(provider, push["providerPid"])  # the provider holds what it presents
    assert _secret_in(consumer.directory, token) == []  # the consumer, which checks it, does not
    wrong = httpx.put(f"{consumer.url}/push/{push['id']}", content=b"forged",
                      headers={"Authorization": "Bearer " + "A" * 43})
    assert wrong.status_code == 401
