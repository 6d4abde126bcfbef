"""Durable clearing-house appends per second, and inclusion-proof time at 1,000,000 entries.

Appends: a real clearing-house process with its default settings (SQLite, WAL,
synchronous=FULL, group commit; signatures checked in its worker process) takes signed
entries (ES256 JWS, verified against the sender's key, checked for replay and parties) from
64 concurrent clients in this process; each answer is a receipt with a signed checkpoint and
an inclusion proof, sent only after the batch holding the entry is committed.  The entries
are signed before the clock starts.

Baseline, measured in the same run between the same two processes: bare aiohttp POSTs of
the same bodies to a handler that only reads them (``POST /diagnostics/discard``, enabled
for the benchmark).  It runs before and after the appends; the two rates are averaged.

Proofs: a second log of 1,000,000 entries is built on an SQLite file through the service's
own append transaction (``store.append_batch``, batches of 20,000); with ``--quick`` only
its Merkle nodes and tree state are bulk-loaded (proofs read nothing else).  The time to
build an inclusion proof for a random leaf at the full size (``store.inclusion``: one
primary-key batch for the ~20-25 nodes, then folding) is sampled, mean and p99; every
sampled proof is verified against the log's signed root.  Without ``--quick`` the same is
also timed over HTTP (``GET /proofs/inclusion``) from a clearing-house process on that file.

    python bench/clearinghouse.py [--quick] [-n N] [-c C] [--leaves L]

Last line: one JSON object (bench, value, unit, baseline, ratio, p99_ms, proof_ms ...).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from connector.clearinghouse import config as ch_config  # noqa: E402
from connector.clearinghouse import store  # noqa: E402
from connector.clearinghouse.app import open_database  # noqa: E402
from connector.clearinghouse.testing import ClearingHouseProcess, Participant  # noqa: E402
from connector.ledger.checkpoint import parse_checkpoint  # noqa: E402
from connector.ledger.merkle import CompactTree, leaf_hash, verify_inclusion  # noqa: E402
from support.stats import pct  # noqa: E402

SECRET = "bench-station-secret-" + secrets.token_hex(8)
TARGET_APPENDS = 3000
TARGET_PROOF_MS = 1.0


async def drive(bodies: list[tuple[bytes, str]], c: int, post) -> tuple[float, list[float]]:  # noqa: ANN001
    latencies: list[float] = []
    todo = iter(bodies)

    async def worker() -> None:
        for body, token in todo:
            t0 = time.perf_counter()
            await post(body, token)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    return time.perf_counter() - started, latencies


async def run_appends(url: str, bodies: list[tuple[bytes, str]], warm: list[tuple[bytes, str]], c: int) -> dict:
    conn = aiohttp.TCPConnector(limit=c + 8)
    failures: list[str] = []
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as http:
        async def append(body: bytes, token: str) -> None:
            async with http.post(url + "/entries", data=body, headers={"Authorization": token,
                                                                         "Content-Type": "application/json"}) as resp:
                answer = await resp.read()
            if resp.status != 201:
                failures.append(f"{resp.status} {answer[:200]!r}")

        async def bare(body: bytes, token: str) -> None:
            async with http.post(url + "/diagnostics/discard", data=body,
                                 headers={"Authorization": token, "Content-Type": "application/json"}) as resp:
                await resp.read()

        await drive(warm, c, append)  # warm up both processes
        await drive(bodies[:len(warm)], c, bare)
        base_time1, base_lat1 = await drive(bodies, c, bare)
        gc.collect()
        app_time, app_lat = await drive(bodies, c, append)
        base_time2, base_lat2 = await drive(bodies, c, bare)
    n = len(bodies)
    base_rate = (n / base_time1 + n / base_time2) / 2
    base_lat = base_lat1 + base_lat2
    return {
        "value": round(n / app_time, 1), "baseline": round(base_rate, 1),
        "baseline_runs": [round(n / base_time1, 1), round(n / base_time2, 1)],
        "p50_ms": round(statistics.median(app_lat) * 1000, 2), "p99_ms": round(pct(app_lat, 0.99) * 1000, 2),
        "max_ms": round(max(app_lat) * 1000, 2),
        "baseline_p50_ms": round(statistics.median(base_lat) * 1000, 2),
        "baseline_p99_ms": round(pct(base_lat, 0.99) * 1000, 2), "failed": len(failures),
        "first_failure": failures[0] if failures else None,
    }


def make_bodies(n: int, participants: list[Participant]) -> list[tuple[bytes, str]]:
    out = []
    for i in range(n):
        sender = participants[i % len(participants)]
        other = participants[(i + 1) % len(participants)]
        jws = sender.sign(sender.entry(other, process_id=f"urn:uuid:bench-{i // 4:08d}-{sender.participant_id[-4:]}",
                                       event="data.accessed"))
        out.append((orjson.dumps({"jws": jws}), sender.token))
    return out


def synthetic(i: int) -> store.PendingEntry:
    canonical = ('{"consumer":"urn:hks:participant:b","event":"data.accessed","processId":"urn:uuid:%032x",'
                 '"provider":"urn:hks:participant:a","sender":"urn:hks:participant:a","sha256":"%064x",'
                 '"timestamp":"2026-11-22T10:00:00.000Z","v":1}') % (i // 4, i)
    return store.PendingEntry(leaf_hash(canonical.encode()), canonical, "eyJhbGciOiJFUzI1NiJ9", "c2ln" * 21,
                              "urn:uuid:%032x" % (i // 4), "data.accessed", "urn:hks:participant:a",
                              "urn:hks:participant:b", "urn:hks:participant:a")


async def build_log(directory: Path, leaves: int, full_path: bool) -> float:
    """Populate the clearing house in ``directory`` with ``leaves`` entries; return seconds taken."""
    settings = ch_config.load(directory, environ={})
    signer = store.LogSigner(settings.signer_key)
    db = open_database(settings.database_url)
    await db.migrate(store.MIGRATIONS)
    await db.transaction(store.prepare, signer, time.time())
    started = time.perf_counter()
    if full_path:
        batch = 20_000
        for s in range(0, leaves, batch):
            await db.transaction(store.append_batch, [synthetic(i) for i in range(s, min(leaves, s + batch))],
                                 signer, time.time())
        await db.dispose()
    else:
        await db.dispose()
        # Nodes and tree state only (what a proof reads), written with the raw driver.
        tree = CompactTree()
        path = settings.database_url.split(":///", 1)[1]
        con = sqlite3.connect(path)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=OFF")
        rows: list[tuple[int, bytes]] = []
        for i in range(leaves):
            h = synthetic(i).leaf_hash
            index, completed = tree.append_with_nodes(h)
            rows.append((2 * index, h))
            for start, level, node in completed:
                rows.append((2 * start + (1 << level) - 1, node))
            if len(rows) >= 200_000:
                con.executemany("INSERT INTO ch_nodes (id, hash) VALUES (?, ?)", rows)
                rows.clear()
        con.executemany("INSERT INTO ch_nodes (id, hash) VALUES (?, ?)", rows)
        root = tree.root()
        note = signer.sign(tree.size, root)
        con.execute("UPDATE ch_tree_state SET size = ?, frontier = ?, root = ?, checkpoint = ? WHERE id = 1",
                    (tree.size, json.dumps(tree.to_state()), root, note))
        con.execute("INSERT INTO ch_checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
                    (tree.size, root, note, time.time()))
        con.commit()
        con.close()
    return time.perf_counter() - started


async def time_proofs(directory: Path, samples: int) -> dict:
    settings = ch_config.load(directory, environ={})
    db = open_database(settings.database_url)

    def measure(conn):  # noqa: ANN001, ANN202
        tree = store.head(conn)
        cp = parse_checkpoint(tree.checkpoint)
        rng = random.Random(6962)
        times, bad = [], 0
        for _ in range(samples):
            index = rng.randrange(tree.size)
            t0 = time.perf_counter()
            _, proof = store.inclusion(conn, index, tree.size)
            times.append(time.perf_counter() - t0)
            lh = store.fetch_nodes(conn, [(index, 0)])[(index, 0)]
            bad += not verify_inclusion(lh, index, tree.size, proof, cp.root_hash)
        return tree.size, times, bad, len(proof)

    try:
        size, times, bad, length = await db.read(measure)
    finally:
        await db.dispose()
    return {"leaves": size, "proof_ms": round(statistics.mean(times) * 1000, 4),
            "proof_p99_ms": round(pct(times, 0.99) * 1000, 4), "proof_hashes": length, "proofs_failed": bad}


async def time_http_proofs(url: str, token: str, size: int, samples: int) -> dict:
    rng = random.Random(9162)
    times = []
    async with aiohttp.ClientSession() as http:
        for _ in range(samples):
            t0 = time.perf_counter()
            async with http.get(url + "/proofs/inclusion", params={"index": rng.randrange(size), "size": size},
                                headers={"Authorization": token}) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            times.append(time.perf_counter() - t0)
    return {"proof_http_ms": round(statistics.mean(times) * 1000, 3),
            "proof_http_p99_ms": round(pct(times, 0.99) * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (under 60 s)")
    parser.add_argument("-n", type=int, default=None, help="appends (default 30000, --quick 8000)")
    parser.add_argument("-c", type=int, default=64, help="concurrency")
    parser.add_argument("--leaves", type=int, default=1_000_000, help="log size for the proof timing")
    parser.add_argument("--samples", type=int, default=None, help="proof samples (default 2000, --quick 500)")
    args = parser.parse_args()
    n = args.n or (8000 if args.quick else 30000)
    samples = args.samples or (500 if args.quick else 2000)
    participants = [Participant(f"urn:hks:participant:bench-{i:02d}", SECRET) for i in range(8)]
    print(f"signing {n + 1000} entries ...", file=sys.stderr, flush=True)
    bodies = make_bodies(n + 1000, participants)
    warm, bodies = bodies[:1000], bodies[1000:]
    with tempfile.TemporaryDirectory(prefix="bench-clearinghouse-") as tmp:
        ch = ClearingHouseProcess(Path(tmp) / "ch", shared_secret=SECRET,
                                  env={"CONNECTOR_CH_CLEARINGHOUSE_DIAGNOSTICS": "true"})
        for p in participants:
            ch.trust(p)
        ch.start()
        try:
            print(f"running {n} appends at concurrency {args.c} (SQLite, synchronous=FULL) ...", file=sys.stderr,
                  flush=True)
            result = asyncio.run(run_appends(ch.url, bodies, warm, args.c))
            result["log_size"] = ch.size()
        finally:
            ch.stop()
        proof_dir = Path(tmp) / "proofs"
        ClearingHouseProcess(proof_dir, shared_secret=SECRET)  # init only
        how = "nodes bulk-loaded" if args.quick else "store.append_batch"
        print(f"building a log of {args.leaves} entries ({how}) ...", file=sys.stderr, flush=True)
        build_s = asyncio.run(build_log(proof_dir, args.leaves, full_path=not args.quick))
        proofs = asyncio.run(time_proofs(proof_dir, samples))
        proofs.update({"build_s": round(build_s, 1), "built_with": how})
        if not args.quick:
            server = ClearingHouseProcess(proof_dir, shared_secret=SECRET, init=False).start()
            try:
                proofs.update(asyncio.run(time_http_proofs(server.url, participants[0].token, proofs["leaves"],
                                                           samples // 4)))
            finally:
                server.stop()
    out = {"bench": "clearinghouse", "unit": "durable appends/s", **result,
           "baseline_unit": "bare aiohttp POSTs of the same bodies between the same processes /s",
           "ratio": round(result["value"] / result["baseline"], 3), "n": n, "concurrency": args.c,
           "backend": "sqlite (WAL, synchronous=FULL)", **proofs,
           "target": {"value": TARGET_APPENDS, "proof_ms": TARGET_PROOF_MS}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
