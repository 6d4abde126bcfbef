"""Negotiations per second between two real node processes (SQLite each).

Each negotiation: the bench asks the consumer's management API to start it and then
waits on it (long poll) until FINALIZED; the nodes exchange 4 DSP round trips
(request/ACK, agreement, verification, finalized) and commit each transition with its
outbox message. Baseline, measured in the same run between the same two processes:
one management call that makes 4 bare aiohttp round trips from the consumer process
to the provider process (GET /health), the ceiling for any 4-message exchange. The N
negotiations run in R rounds (`--rounds`, default 5) of N/R, each round preceded by a baseline
sample of N/R calls, with one more sample after the last round; the baseline is the median of
the R+1 samples (the machine is shared, and a single phase swings widely), the value is still
N negotiations over the time spent negotiating.

    python bench/negotiation.py [--quick] [--postgres] [--traces] [-n N] [-c C] [--rounds R]

`--traces`: both nodes export every span over OTLP/HTTP to a receiver in the bench process
([telemetry] otlp_endpoint), to compare with a run without (tracing off, the default).

Last line: one JSON object (bench, value, unit, baseline, ratio, p50/p99 ...).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.nodes import NodeProcess, postgres_admin_dsn  # noqa: E402
from support.stats import pct  # noqa: E402


async def drive(n: int, c: int, one) -> tuple[float, list[float]]:  # noqa: ANN001
    latencies: list[float] = []
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            t0 = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    return time.perf_counter() - started, latencies


async def run(n: int, c: int, consumer: NodeProcess, provider: NodeProcess, rounds: int = 5) -> dict:
    headers = consumer.headers()
    api = consumer.url + "/api/v1"
    conn = aiohttp.TCPConnector(limit=c + 8)
    async with aiohttp.ClientSession(connector=conn, headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as http:
        async with http.post(api + "/catalog/request", json={"counterPartyAddress": provider.url}) as resp:
            catalog = (await resp.json())["catalog"]
        offer = catalog["dataset"][0]["hasPolicy"][0]
        body = {"counterPartyAddress": provider.url, "datasetId": "dataset-1", "offer": offer, "dspVersion": "2025-1"}
        failures = []

        async def negotiate() -> None:
            async with http.post(api + "/negotiations", json=body) as resp:
                neg = await resp.json()
            async with http.get(f"{api}/negotiations/{neg['id']}?waitFor=FINALIZED&timeout=60") as resp:
                done = await resp.json()
            if done["state"] != "FINALIZED":
                failures.append(done["state"])

        async def baseline() -> None:
            async with http.post(api + "/diagnostics/peer-roundtrips", json={"url": provider.url + "/health", "count": 4}) as resp:
                await resp.read()

        await drive(min(64, n), c, negotiate)  # warm up both processes
        await drive(min(64, n), c, baseline)
        # Baseline samples interleaved with the negotiation rounds; the baseline is their median:
        # the machine is shared and a single short phase swings widely.
        sizes = [n // rounds + (1 if i < n % rounds else 0) for i in range(rounds)]
        base_rates: list[float] = []
        base_lat: list[float] = []
        neg_time, neg_lat, neg_rates = 0.0, [], []
        for size in sizes:
            elapsed, lat = await drive(size, c, baseline)
            base_rates.append(size / elapsed)
            base_lat += lat
            elapsed, lat = await drive(size, c, negotiate)
            neg_time += elapsed
            neg_lat += lat
            neg_rates.append(size / elapsed)
        elapsed, lat = await drive(sizes[0], c, baseline)
        base_rates.append(sizes[0] / elapsed)
        base_lat += lat
    base_rate = statistics.median(base_rates)
    return {
        "value": round(n / neg_time, 1), "baseline": round(base_rate, 1),
        "baseline_runs": [round(r, 1) for r in base_rates], "negotiation_rounds": [round(r, 1) for r in neg_rates],
        "p50_ms": round(statistics.median(neg_lat) * 1000, 2), "p99_ms": round(pct(neg_lat, 0.99) * 1000, 2),
        "baseline_p50_ms": round(statistics.median(base_lat) * 1000, 2),
        "baseline_p99_ms": round(pct(base_lat, 0.99) * 1000, 2), "failed": len(failures),
    }


@contextlib.contextmanager
def postgres_databases(wanted: bool, count: int):  # noqa: ANN201
    """`count` new PostgreSQL databases (dropped afterwards) as SQLAlchemy URLs, or Nones (SQLite)."""
    if not wanted:
        yield [None] * count
        return
    import asyncpg

    dsn = postgres_admin_dsn()
    if dsn is None:
        sys.exit("--postgres needs CONNECTOR_TEST_POSTGRES_DSN, e.g. postgresql://postgres@127.0.0.1:5432/test")
    names = [f"bench_negotiation_{uuid.uuid4().hex[:10]}" for _ in range(count)]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for name in names:
                await conn.execute(sql.format(name=name))
        finally:
            await conn.close()

    asyncio.run(admin('CREATE DATABASE "{name}"'))
    try:
        base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield [f"{base}/{name}" for name in names]
    finally:
        asyncio.run(admin('DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (under 60 s)")
    parser.add_argument("-n", type=int, default=None, help="negotiations (default 3000, --quick 600)")
    parser.add_argument("-c", type=int, default=32, help="concurrency")
    parser.add_argument("--postgres", action="store_true",
                        help="each node on a PostgreSQL database of its own (CONNECTOR_TEST_POSTGRES_DSN)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="negotiation rounds, each after a baseline sample (baseline: the median of the samples)")
    parser.add_argument("--traces", action="store_true",
                        help="tracing on: the nodes export their spans to an OTLP/HTTP receiver in this process")
    args = parser.parse_args()
    n = args.n or (600 if args.quick else 3000)
    receiver = None
    if args.traces:
        from support.otlp import Receiver
        receiver = Receiver()
        os.environ["CONNECTOR_TELEMETRY_OTLP_ENDPOINT"] = receiver.url  # NodeProcess passes it on
    with tempfile.TemporaryDirectory(prefix="bench-negotiation-") as tmp, postgres_databases(args.postgres, 2) as urls:
        provider = NodeProcess(Path(tmp) / "provider", "BenchProvider", database_url=urls[0]).start()
        consumer = NodeProcess(Path(tmp) / "consumer", "BenchConsumer", database_url=urls[1]).start()
        try:
            provider.publish("dataset-1", "offer-1")
            print(f"running {n} negotiations at concurrency {args.c} ({'PostgreSQL' if args.postgres else 'SQLite'}, "
                  "DSP 2025-1) ...", file=sys.stderr, flush=True)
            result = asyncio.run(run(n, args.c, consumer, provider, max(1, min(args.rounds, n))))
        finally:
            consumer.stop()
            provider.stop()
    result = {"bench": "negotiation", "unit": "negotiations/s", **result,
              "baseline_unit": "4 bare aiohttp round trips/s between the same processes",
              "ratio": round(result["value"] / result["baseline"], 3), "n": n, "concurrency": args.c,
              "rounds": max(1, min(args.rounds, n)),
              "backend": "postgres" if args.postgres else "sqlite", "target": {"value": 150, "ratio": 0.25},
              "spans_exported": None if receiver is None else len(receiver.spans)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
