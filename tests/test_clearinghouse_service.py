"""The clearing house as a real process over real HTTP: receipts, bad input (refused, nothing
appended), access control, concurrency and restarts without gaps or duplicates, crash recovery,
PostgreSQL with two processes, and keys from a station registry."""
from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import os
import secrets
import shutil
import signal
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connector.clearinghouse.client import ClearingHouseClient, ClearingHouseUnavailable
from connector.clearinghouse.entry import b64url, canonical_bytes
from connector.clearinghouse.testing import ClearingHouseProcess, Participant
from connector.clearinghouse.verify import Receipt, decode_proof, open_checkpoint, verify_receipt
from connector.ledger.merkle import verify_consistency, verify_inclusion

pytestmark = pytest.mark.slow
SECRET = "ch-test-station-secret-" + secrets.token_hex(8)
AUDITOR = "urn:hks:participant:auditor"


class World:
    def __init__(self, ch: ClearingHouseProcess) -> None:
        self.ch = ch
        self.a = Participant("urn:hks:participant:pearl", SECRET)
        self.b = Participant("urn:hks:participant:harbour", SECRET)
        self.c = Participant("urn:hks:participant:lionrock", SECRET)
        self.stranger = Participant("urn:hks:participant:unregistered", SECRET)
        self.auditor = Participant(AUDITOR, SECRET)
        for p in (self.a, self.b, self.c, self.auditor):
            ch.trust(p)

    def post(self, who: Participant | None, body, **kw) -> httpx.Response:
        headers = dict(who.headers()) if who else {}
        headers.update(kw.pop("headers", {}))
        if isinstance(body, (bytes, str)):
            return httpx.post(self.ch.url + "/entries", content=body,
                              headers={"Content-Type": "application/json", **headers}, timeout=30, **kw)
        return httpx.post(self.ch.url + "/entries", json=body, headers=headers, timeout=30, **kw)

    def get(self, who: Participant | None, path: str, **params) -> httpx.Response:
        return httpx.get(self.ch.url + path, params=params, headers=who.headers() if who else {}, timeout=30)

    def client(self, who: Participant) -> ClearingHouseClient:
        return ClearingHouseClient(self.ch.url, self.ch.verifier_key, authorization=who.token)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    ch = ClearingHouseProcess(tmp_path_factory.mktemp("ch") / "ch", shared_secret=SECRET, auditors=[AUDITOR])
    w = World(ch)
    ch.start()
    yield w
    ch.stop()


def test_append_returns_a_receipt_that_verifies_from_outside(world):
    a, b = world.a, world.b
    e = a.entry(b, event="negotiation.agreed")
    resp = world.post(a, {"jws": a.sign(e)})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == {"leafIndex", "leafHash", "treeSize", "checkpoint", "inclusionProof", "receivedAt"}
    receipt = Receipt.from_json(body)
    cp = verify_receipt(receipt, world.ch.verifier_key, leaf_hash=hashlib.sha256(b"\0" + canonical_bytes(e)).digest())
    assert cp.size == receipt.tree_size >= receipt.leaf_index + 1
    # the published checkpoint, the verifier key and the log's own description agree
    log = world.get(None, "/log").json()
    assert log["verifierKey"] == world.ch.verifier_key and log["origin"] == cp.origin
    latest = world.get(None, "/checkpoint")
    assert latest.headers["content-type"].startswith("text/plain")
    assert open_checkpoint(latest.text, world.ch.verifier_key).size >= cp.size
    assert world.get(None, "/checkpoint", size=cp.size).text == receipt.checkpoint
    assert world.get(None, "/checkpoint", size=10 ** 9).status_code == 404


def size_of(world) -> int:
    return world.get(None, "/log").json()["size"]


def bad_cases(world):
    a, b, c = world.a, world.b, world.c
    e = a.entry(b)
    signed = a.sign(e)
    header = b64url(b'{"alg":"none","typ":"hks-ch-entry+jws"}')
    future = a.entry(b, timestamp=datetime.now(timezone.utc) + timedelta(hours=2))
    big = "x" * 4500
    return [
        ("no token", None, {"jws": signed}, 401, "Unauthenticated", "Authorization header is missing"),
        ("bad token", Participant(a.participant_id, "another-secret-0123456789"), {"jws": signed}, 401,
         "Unauthenticated", "does not verify"),
        ("unsigned entry", a, e, 400, "Unsigned", "not signed"),
        ("unsigned JWS (alg none)", a, {"jws": f"{header}.{b64url(canonical_bytes(e))}."}, 400, "Unsigned",
         "empty signature"),
        ("signed by another key", a, {"jws": Participant(a.participant_id, SECRET).sign(e)}, 400, "BadSignature",
         "does not verify with the key registered for urn:hks:participant:pearl"),
        ("token of a party not named", c, {"jws": signed}, 403, "NotAParty",
         "urn:hks:participant:lionrock is not a party named in the entry"),
        ("token of the other party", b, {"jws": signed}, 403, "NotTheSender",
         "sender is urn:hks:participant:pearl but the caller is urn:hks:participant:harbour"),
        ("unregistered participant", world.stranger, {"jws": world.stranger.sign(world.stranger.entry(b))}, 403,
         "UnknownParticipant", "no public key is registered for participant urn:hks:participant:unregistered"),
        ("oversized body", a, {"jws": "x" * 20000}, 413, "TooLarge", "over the limit"),
        ("oversized entry", a, {"jws": big}, 413, "TooLarge", "over the limit of 4096"),
        ("not JSON", a, b"{nope", 400, "MalformedRequest", "not JSON"),
        ("extra member", a, {"jws": signed, "more": 1}, 400, "MalformedRequest", "unknown member 'more'"),
        ("wrong content type", a, signed, 415, "UnsupportedMediaType", "application/json"),
        ("future timestamp", a, {"jws": a.sign(future)}, 400, "FutureTimestamp", "in the future"),
        ("tampered payload", a, {"jws": signed.split(".")[0] + "." + b64url(canonical_bytes({**e, "sha256": "0" * 64}))
                                 + "." + signed.split(".")[2]}, 400, "BadSignature", "does not verify"),
    ]


def test_bad_input_is_refused_clearly_and_appends_nothing(world):
    for name, who, body, status, code, message in bad_cases(world):
        before = size_of(world)
        if name == "wrong content type":
            resp = world.post(who, body, headers={"Content-Type": "text/plain"})
        else:
            resp = world.post(who, body)
        assert resp.status_code == status, (name, resp.status_code, resp.text)
        answer = resp.json()
        assert answer["code"] == code and message in answer["error"], (name, answer)
        assert size_of(world) == before, f"{name}: something was appended"


def test_replayed_entry_is_refused_and_the_client_recovers_its_receipt(world):
    a, b = world.a, world.b
    jws = a.sign(a.entry(b))
    first = world.post(a, {"jws": jws})
    assert first.status_code == 201
    before = size_of(world)
    again = world.post(a, {"jws": jws})
    assert again.status_code == 409 and again.json()["code"] == "Replayed"
    assert again.json()["leafIndex"] == first.json()["leafIndex"]
    assert "already in the log at index" in again.json()["error"]
    resigned = world.post(a, {"jws": a.sign(json.loads(base64.urlsafe_b64decode(jws.split(".")[1] + "==")))})
    assert resigned.status_code == 409  # the same entry signed again is the same leaf
    assert size_of(world) == before

    async def resubmit():
        async with world.client(a) as client:
            return await client.submit(jws)

    receipt = asyncio.run(resubmit())
    assert receipt.replayed and receipt.leaf_index == first.json()["leafIndex"]
    assert size_of(world) == before


def test_a_process_keeps_its_parties(world):
    a, b, c = world.a, world.b, world.c
    pid = "urn:uuid:" + secrets.token_hex(16)
    assert world.post(a, {"jws": a.sign(a.entry(b, process_id=pid))}).status_code == 201
    before = size_of(world)
    hijack = world.post(a, {"jws": a.sign(a.entry(c, process_id=pid))})
    assert hijack.status_code == 409 and hijack.json()["code"] == "ProcessPartiesMismatch"
    assert "belongs to provider urn:hks:participant:pearl and consumer urn:hks:participant:harbour" in hijack.json()["error"]
    assert size_of(world) == before
    # the consumer logs its own side of the same process
    assert world.post(b, {"jws": b.sign(b.entry(a, process_id=pid, provider=False))}).status_code == 201


def test_reads_are_for_the_parties_and_auditors_only(world):
    a, b, c, auditor = world.a, world.b, world.c, world.auditor
    pid = "urn:uuid:" + secrets.token_hex(16)
    receipts = [world.post(a, {"jws": a.sign(a.entry(b, process_id=pid, event=ev))}).json()
                for ev in ("negotiation.agreed", "negotiation.finalized")]
    for who in (a, b, auditor):
        resp = world.get(who, f"/processes/{pid}/entries")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert [i["leafIndex"] for i in body["entries"]] == [r["leafIndex"] for r in receipts]
        assert body["provider"] == a.participant_id and body["consumer"] == b.participant_id
        cp = open_checkpoint(body["checkpoint"], world.ch.verifier_key)
        for item in body["entries"]:
            leaf = hashlib.sha256(b"\0" + base64.urlsafe_b64decode(item["jws"].split(".")[1] + "==")).digest()
            assert verify_inclusion(leaf, item["leafIndex"], cp.size, decode_proof(item["inclusionProof"]), cp.root_hash)
    denied = world.get(c, f"/processes/{pid}/entries")
    assert denied.status_code == 403 and "is not a party to process" in denied.json()["error"]
    assert world.get(None, f"/processes/{pid}/entries").status_code == 401
    assert world.get(c, "/processes/urn:uuid:nothing/entries").status_code == 403
    assert world.get(auditor, "/processes/urn:uuid:nothing/entries").status_code == 404
    index = receipts[0]["leafIndex"]
    assert world.get(a, f"/entries/{index}").status_code == 200
    assert world.get(auditor, f"/entries/{index}").status_code == 200
    assert world.get(c, f"/entries/{index}").status_code == 403
    assert world.get(a, "/entries/999999").status_code == 404
    assert world.get(a, "/entries").status_code == 403
    listing = world.get(auditor, "/entries", limit=2)
    assert listing.status_code == 200 and [i["leafIndex"] for i in listing.json()["entries"]] == [0, 1]
    assert world.get(None, "/proofs/inclusion", index=0).status_code == 401


def test_proof_endpoints(world):
    a, b = world.a, world.b
    first = world.post(a, {"jws": a.sign(a.entry(b))}).json()
    for _ in range(3):
        world.post(a, {"jws": a.sign(a.entry(b))})
    later = open_checkpoint(world.get(None, "/checkpoint").text, world.ch.verifier_key)
    old = open_checkpoint(first["checkpoint"], world.ch.verifier_key)
    inc = world.get(a, "/proofs/inclusion", index=first["leafIndex"], size=later.size).json()
    assert inc["treeSize"] == later.size and inc["checkpoint"] == world.get(None, "/checkpoint").text
    assert verify_inclusion(base64.b64decode(first["leafHash"]), first["leafIndex"], later.size,
                            decode_proof(inc["inclusionProof"]), later.root_hash)
    con = world.get(a, "/proofs/consistency", **{"from": old.size, "to": later.size}).json()
    assert verify_consistency(old.size, later.size, old.root_hash, later.root_hash, decode_proof(con["consistencyProof"]))
    for path, params, message in [
        ("/proofs/inclusion", {}, "'index' is required"),
        ("/proofs/inclusion", {"index": "x"}, "must be an integer"),
        ("/proofs/inclusion", {"index": -1}, "between 0 and"),
        ("/proofs/inclusion", {"index": 0, "size": later.size + 100}, "larger than the log"),
        ("/proofs/inclusion", {"index": later.size + 5}, "is not in the tree"),
        ("/proofs/consistency", {"from": 0}, "need 1 <= from <= to"),
        ("/proofs/consistency", {"from": 5, "to": 2}, "need 1 <= from <= to"),
        ("/entries/abc", {}, "non-negative integer"),
    ]:
        resp = world.get(a, path, **params)
        assert resp.status_code == 400 and message in resp.json()["error"], (path, params, resp.text)


def verifier_workers(pid: int) -> list[str]:
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    return [c for c in children if b"spawn_main" in open(f"/proc/{c}/cmdline", "rb").read()]


def test_a_dead_signature_worker_fails_closed_and_is_replaced(world):
    a, b = world.a, world.b
    assert world.post(a, {"jws": a.sign(a.entry(b))}).status_code == 201  # the worker has done work
    pid = world.ch.proc.pid
    workers = verifier_workers(pid)
    assert len(workers) == 1, workers  # verify_workers = 1 by default
    os.kill(int(workers[0]), signal.SIGKILL)
    outcomes = []
    for _ in range(50):  # each attempt is a new entry; a refused one must append nothing
        before = size_of(world)
        resp = world.post(a, {"jws": a.sign(a.entry(b))})
        outcomes.append(resp.status_code)
        if resp.status_code == 201:
            break
        assert resp.status_code == 503 and resp.json()["code"] == "VerifierUnavailable", resp.text
        assert size_of(world) == before
    assert outcomes[-1] == 201, outcomes
    replaced = verifier_workers(pid)
    assert len(replaced) == 1 and replaced != workers
    bad = world.post(a, {"jws": Participant(a.participant_id, SECRET).sign(a.entry(b))})
    assert bad.status_code == 400 and bad.json()["code"] == "BadSignature"  # the new worker still says no


async def append_many(world, n: int, concurrency: int = 32) -> list[Receipt]:
    jobs = []
    for i in range(n):
        sender, other = (world.a, world.b) if i % 2 else (world.b, world.a)
        jobs.append((sender, sender.sign(sender.entry(other, process_id=f"urn:uuid:conc-{i // 5}-{sender.participant_id[-4:]}"))))
    clients = {p.participant_id: world.client(p) for p in (world.a, world.b)}
    receipts: list[Receipt] = []
    todo = iter(jobs)

    async def worker():
        for sender, jws in todo:
            receipts.append(await clients[sender.participant_id].submit(jws))

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        for c in clients.values():
            await c.close()
    return receipts


def all_entries(world) -> list[dict]:
    out, start = [], 0
    while start is not None:
        page = world.get(world.auditor, "/entries", start=start).json()
        out.extend(page["entries"])
        start = page["next"]
    return out


def test_concurrent_appends_have_no_gaps_or_duplicates_across_restarts(world):
    receipts = asyncio.run(append_many(world, 300))
    world.ch.stop()
    world.ch.start()
    receipts += asyncio.run(append_many(world, 100))
    indices = sorted(r.leaf_index for r in receipts)
    assert len(set(indices)) == len(indices) == 400
    entries = all_entries(world)
    assert [e["leafIndex"] for e in entries] == list(range(len(entries)))
    leaves = [hashlib.sha256(b"\0" + base64.urlsafe_b64decode(e["jws"].split(".")[1] + "==")).digest()
              for e in entries]
    assert len(set(leaves)) == len(leaves)

    async def check():
        async with world.client(world.auditor) as client:
            return await client.check_receipts(receipts)

    latest = asyncio.run(check())
    assert latest.size == len(entries)


def test_killed_after_commit_loses_nothing(tmp_path):
    ch = ClearingHouseProcess(tmp_path / "ch", shared_secret=SECRET)
    world = World(ch)
    ch.start(extra_env={"CONNECTOR_FAILPOINTS": "clearinghouse:committed"})
    jws = world.a.sign(world.a.entry(world.b))

    async def submit():
        async with world.client(world.a) as client:
            return await client.submit(jws)

    try:
        with pytest.raises(ClearingHouseUnavailable):
            asyncio.run(submit())
        assert ch.wait_exit() == -9  # died right after committing, before answering
        ch.start()
        receipt = asyncio.run(submit())  # the node's outbox retries: the entry is there, the receipt is rebuilt
        assert receipt.replayed and receipt.leaf_index == 0 and receipt.tree_size == 1
    finally:
        ch.stop()


@pytest.mark.postgres
def test_two_processes_on_one_postgres_share_one_gap_free_log(tmp_path, pg_url):
    first = ClearingHouseProcess(tmp_path / "one", shared_secret=SECRET, database_url=pg_url, auditors=[AUDITOR])
    world = World(first)
    second = ClearingHouseProcess(tmp_path / "two", shared_secret=SECRET, database_url=pg_url, init=False)
    shutil.copytree(first.directory, second.directory)  # the same log: same key and configuration, another port
    first.start()
    second.start()
    try:
        twin = copy.copy(world)
        twin.ch = second
        results = asyncio.run(_both([world, twin]))
        receipts = [r for rs in results for r in rs]
        indices = sorted(r.leaf_index for r in receipts)
        assert indices == list(range(len(indices)))  # every index once, none missing
        entries = all_entries(world)
        assert [e["leafIndex"] for e in entries] == indices

        async def check(w):
            async with w.client(w.auditor) as client:
                return await client.check_receipts(receipts)

        # every receipt (signed by either process) is proved by either process against one tree
        assert asyncio.run(check(world)) == asyncio.run(check(twin))
        assert asyncio.run(check(twin)).size == len(indices)
    finally:
        first.stop()
        second.stop()
    # a different log key on the same database is refused at start
    other = ClearingHouseProcess(tmp_path / "other", shared_secret=SECRET, database_url=pg_url)
    with pytest.raises(RuntimeError, match="holds the log"):
        other.start()


async def _both(worlds):
    return await asyncio.gather(*(append_many(w, 150, concurrency=16) for w in worlds))


# --- keys from the station registry ------------------------------------------------


class FakeStation:
    """The station authority's participant registry: GET /participants/{id} -> certificate PEM and status."""

    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "HKS test station CA")])
        now = datetime.now(timezone.utc)
        self.ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.ca_key.public_key())
                   .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .sign(self.ca_key, hashes.SHA256()))
        self.participants: dict[str, dict] = {}
        self.requests = 0
        station = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                station.requests += 1
                pid = unquote(self.path.rsplit("/", 1)[1])
                info = station.participants.get(pid)
                body = json.dumps(info).encode() if info else b'{"error":"unknown"}'
                self.send_response(200 if info else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def enrol(self, participant: Participant, status: str = "active", issuer_key=None) -> None:
        now = datetime.now(timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, participant.participant_id)]))
                .issuer_name(self.ca.subject).public_key(participant.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
                .sign(issuer_key or self.ca_key, hashes.SHA256()))
        self.participants[participant.participant_id] = {
            "participantId": participant.participant_id, "status": status,
            "certificate": cert.public_bytes(serialization.Encoding.PEM).decode()}


def test_keys_from_the_station_registry(tmp_path):
    station = FakeStation()
    ch = ClearingHouseProcess(tmp_path / "ch", shared_secret=SECRET, station_url=station.url,
                              env={"CONNECTOR_CH_CLEARINGHOUSE_VERIFY_WORKERS": "0"})  # signatures in the loop
    (tmp_path / "ch" / "station-ca.pem").write_bytes(station.ca.public_bytes(serialization.Encoding.PEM))
    text = (tmp_path / "ch" / "clearinghouse.toml").read_text().replace(
        "[participants]\n", '[participants]\nstation_ca = "station-ca.pem"\ncache_seconds = 300\n')
    (tmp_path / "ch" / "clearinghouse.toml").write_text(text)
    a, b = Participant("urn:hks:participant:active", SECRET), Participant("urn:hks:participant:revoked", SECRET)
    forged = Participant("urn:hks:participant:forged", SECRET)
    station.enrol(a)
    station.enrol(b, status="revoked")
    station.enrol(forged, issuer_key=ec.generate_private_key(ec.SECP256R1()))
    ch.start()
    try:
        def post(p, other):
            return httpx.post(ch.url + "/entries", json={"jws": p.sign(p.entry(other))}, headers=p.headers(), timeout=30)

        assert post(a, b).status_code == 201
        assert post(a, b).status_code == 201
        assert station.requests == 1  # cached
        revoked = post(b, a)
        assert revoked.status_code == 403 and revoked.json()["code"] == "RevokedParticipant"
        unknown = post(Participant("urn:hks:participant:nobody", SECRET), a)
        assert unknown.status_code == 403 and "not registered at the station" in unknown.json()["error"]
        bad_cert = post(forged, a)
        assert bad_cert.status_code == 403 and "not issued by the station CA" in bad_cert.json()["error"]
        station.server.shutdown()
        station.server.server_close()
        down = post(Participant("urn:hks:participant:later", SECRET), a)
        assert down.status_code == 503 and "cannot be reached" in down.json()["error"]  # fail closed
        assert post(a, b).status_code == 201  # a cached key still works while the station is down
        assert ch.size() == 3
    finally:
        ch.stop()
