"""Clearing-house ledger benchmark: appends/s and proof latency at 1,000,000 leaves.

    python bench/ledger_proofs.py [--quick] [--leaves N] [--samples K]

* appends/s of ``CompactTree.append(leaf_hash(entry))`` against the bare
  baseline ``list.append(hashlib.sha256(b"\\x00" + entry).digest())`` (leaf
  hashing, no tree), best of 3 runs (1 with --quick);
* build rate of ``MemoryLeafStore`` (keeps every level, stride 1);
* mean and p99 time to build and to verify an inclusion proof for a random
  leaf, and a consistency proof from a random older size, at the full size.

--quick keeps the 1,000,000 leaves (the build takes a few seconds) and only
takes fewer proof samples and one append run.  The last line printed is a JSON
object: "value" is CompactTree appends/s, "baseline" the bare-list appends/s,
"ratio" value / baseline, plus proof timings in milliseconds.  The project
target is under 1 ms per inclusion proof at 1,000,000 entries.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.ledger.merkle import (  # noqa: E402
    CompactTree,
    MemoryLeafStore,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

TARGET_INCLUSION_MS = 1.0


def _payloads(n: int) -> list[bytes]:
    # ~100-byte entries, shaped like a canonical JSON log entry.
    return [
        b'{"event":"transfer.completed","msg_sha256":"%064x","pid":"p-%08d"}' % (i * 2654435761 % (1 << 256), i)
        for i in range(n)
    ]


def _baseline(data: list[bytes]) -> float:
    sha = hashlib.sha256
    out: list[bytes] = []
    append = out.append
    t0 = time.perf_counter()
    for d in data:
        append(sha(b"\x00" + d).digest())
    return time.perf_counter() - t0


def _compact(data: list[bytes]) -> tuple[float, CompactTree]:
    tree = CompactTree()
    append = tree.append
    lh = leaf_hash
    t0 = time.perf_counter()
    for d in data:
        append(lh(d))
    return time.perf_counter() - t0, tree


def _store(data: list[bytes]) -> tuple[float, MemoryLeafStore]:
    store = MemoryLeafStore()
    append = store.append
    lh = leaf_hash
    t0 = time.perf_counter()
    for d in data:
        append(lh(d))
    return time.perf_counter() - t0, store


def _stats(ns: list[int]) -> tuple[float, float]:
    s = sorted(ns)
    mean = sum(s) / len(s) / 1e6
    p99 = s[min(len(s) - 1, int(len(s) * 0.99))] / 1e6
    return mean, p99


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one append run and fewer proof samples (< 60 s)")
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=None, help="proof samples (default 20000, 2000 with --quick)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    n = args.leaves
    if n < 2:
        ap.error("--leaves must be at least 2")
    samples = args.samples or (2000 if args.quick else 20000)
    runs = 1 if args.quick else 3
    rnd = random.Random(args.seed)
    started = time.perf_counter()

    data = _payloads(n)
    gc.collect()
    gc.freeze()

    base_t = min(_baseline(data) for _ in range(runs))
    compact_runs = [_compact(data) for _ in range(runs)]
    compact_t = min(t for t, _ in compact_runs)
    tree = compact_runs[0][1]
    del compact_runs
    store_t, store = _store(data)
    root = store.root()
    if tree.root() != root or tree.size != n:
        print("root mismatch between CompactTree and MemoryLeafStore", file=sys.stderr)
        return 1

    base_rate = n / base_t
    compact_rate = n / compact_t
    store_rate = n / store_t
    print(f"leaves                         {n:,}")
    print(f"baseline (sha256 -> list)      {base_rate:,.0f} appends/s")
    print(f"CompactTree.append(leaf_hash)  {compact_rate:,.0f} appends/s  ({compact_rate / base_rate:.2f}x baseline)")
    print(f"MemoryLeafStore.append         {store_rate:,.0f} appends/s")

    perf = time.perf_counter_ns
    inc_build: list[int] = []
    inc_verify: list[int] = []
    inc_total: list[int] = []
    proof_len = 0
    for _ in range(samples):
        i = rnd.randrange(n)
        leaf = store.leaf_hash(i)
        t0 = perf()
        proof = store.inclusion_proof(i, n)
        t1 = perf()
        ok = verify_inclusion(leaf, i, n, proof, root)
        t2 = perf()
        if not ok:
            print(f"inclusion proof for {i} failed to verify", file=sys.stderr)
            return 1
        inc_build.append(t1 - t0)
        inc_verify.append(t2 - t1)
        inc_total.append(t2 - t0)
        proof_len = max(proof_len, len(proof))

    con_build: list[int] = []
    con_verify: list[int] = []
    for _ in range(samples):
        old = rnd.randrange(1, n)
        old_root = store.root(old)  # in production: the stored checkpoint
        t0 = perf()
        proof = store.consistency_proof(old, n)
        t1 = perf()
        ok = verify_consistency(old, n, old_root, root, proof)
        t2 = perf()
        if not ok:
            print(f"consistency proof {old} -> {n} failed to verify", file=sys.stderr)
            return 1
        con_build.append(t1 - t0)
        con_verify.append(t2 - t1)

    ib_mean, ib_p99 = _stats(inc_build)
    iv_mean, iv_p99 = _stats(inc_verify)
    it_mean, it_p99 = _stats(inc_total)
    cb_mean, cb_p99 = _stats(con_build)
    cv_mean, cv_p99 = _stats(con_verify)
    print(f"inclusion proof  build  mean {ib_mean:.4f} ms  p99 {ib_p99:.4f} ms  ({proof_len} hashes)")
    print(f"inclusion proof  verify mean {iv_mean:.4f} ms  p99 {iv_p99:.4f} ms")
    print(f"consistency proof build  mean {cb_mean:.4f} ms  p99 {cb_p99:.4f} ms")
    print(f"consistency proof verify mean {cv_mean:.4f} ms  p99 {cv_p99:.4f} ms")
    elapsed = time.perf_counter() - started
    print(f"samples {samples} each, total {elapsed:.1f} s")

    r = lambda x: round(x, 4)  # noqa: E731
    result = {
        "bench": "ledger_proofs",
        "value": round(compact_rate),
        "unit": "appends/s",
        "baseline": round(base_rate),
        "baseline_desc": "hashlib sha256(0x00||entry) appended to a Python list, no tree",
        "ratio": round(compact_rate / base_rate, 3),
        "leaves": n,
        "quick": args.quick,
        "samples": samples,
        "store_appends_per_s": round(store_rate),
        "inclusion_build_mean_ms": r(ib_mean),
        "inclusion_build_p99_ms": r(ib_p99),
        "inclusion_verify_mean_ms": r(iv_mean),
        "inclusion_verify_p99_ms": r(iv_p99),
        "inclusion_build_verify_mean_ms": r(it_mean),
        "inclusion_build_verify_p99_ms": r(it_p99),
        "inclusion_proof_hashes": proof_len,
        "consistency_build_mean_ms": r(cb_mean),
        "consistency_build_p99_ms": r(cb_p99),
        "consistency_verify_mean_ms": r(cv_mean),
        "consistency_verify_p99_ms": r(cv_p99),
        "target_inclusion_ms": TARGET_INCLUSION_MS,
        "meets_target": it_p99 < TARGET_INCLUSION_MS,
        "elapsed_s": round(elapsed, 1),
        "python": platform.python_version(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
