"""Consumer memory under long polls: RSS growth between 1,000 and 10,000 negotiations, each
awaited with `GET /negotiations/{id}?waitFor=FINALIZED` (a long poll), between two real node
processes (SQLite each).

Baseline, in fresh processes: the same negotiations awaited by short polls (GET without
`waitFor`, every 20 ms), so that what any negotiation costs (database pages, caches) is
measured apart from what a long poll leaves behind. The issue's target: growth within 20 MB.

    python bench/longpoll_memory.py [--quick] [--first N] [--total N] [-c C]

Last line: one JSON object (bench, value = long-poll RSS growth in MB, baseline = the
short-poll growth in MB, ratio = value / baseline, and the RSS figures).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.nodes import NodeProcess  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def negotiations(consumer: NodeProcess, provider: NodeProcess, n: int, c: int, long_poll: bool) -> int:
    api = consumer.url + "/api/v1"
    failed = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c + 8), headers=consumer.headers(),
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        async with http.post(api + "/catalog/request", json={"counterPartyAddress": provider.url}) as resp:
            offer = (await resp.json())["catalog"]["dataset"][0]["hasPolicy"][0]
        body = {"counterPartyAddress": provider.url, "datasetId": "dataset-1", "offer": offer, "dspVersion": "2025-1"}
        todo = iter(range(n))

        async def worker() -> None:
            nonlocal failed
            for _ in todo:
                async with http.post(api + "/negotiations", json=body) as resp:
                    neg = await resp.json()
                while True:
                    query = "?waitFor=FINALIZED&timeout=60" if long_poll else ""
                    async with http.get(f"{api}/negotiations/{neg['id']}{query}") as resp:
                        state = (await resp.json())["state"]
                    if state in ("FINALIZED", "TERMINATED") or long_poll:
                        break
                    await asyncio.sleep(0.02)
                failed += state != "FINALIZED"

        await asyncio.gather(*(worker() for _ in range(c)))
    return failed


def measure(tmp: Path, first: int, total: int, c: int, long_poll: bool) -> dict:
    name = "long" if long_poll else "short"
    provider = NodeProcess(tmp / f"provider-{name}", "MemProvider").start()
    consumer = NodeProcess(tmp / f"consumer-{name}", "MemConsumer").start()
    try:
        provider.publish("dataset-1", "offer-1")
        assert consumer.proc is not None
        started = time.perf_counter()
        failed = asyncio.run(negotiations(consumer, provider, first, c, long_poll))
        time.sleep(1)
        at_first = rss_mb(consumer.proc.pid)
        failed += asyncio.run(negotiations(consumer, provider, total - first, c, long_poll))
        time.sleep(1)
        at_total = rss_mb(consumer.proc.pid)
        print(f"{name} polls: RSS {at_first:.1f} MB after {first}, {at_total:.1f} MB after {total} "
              f"({time.perf_counter() - started:.0f} s, {failed} not FINALIZED)", file=sys.stderr, flush=True)
    finally:
        consumer.stop()
        provider.stop()
    return {"rss_first_mb": round(at_first, 1), "rss_total_mb": round(at_total, 1),
            "growth_mb": round(at_total - at_first, 1), "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 then 3,000 negotiations")
    parser.add_argument("--first", type=int, default=None, help="negotiations before the first RSS (default 1000)")
    parser.add_argument("--total", type=int, default=None, help="negotiations in all (default 10000, --quick 3000)")
    parser.add_argument("-c", type=int, default=32, help="concurrency")
    args = parser.parse_args()
    first = args.first or 1000
    total = args.total or (3000 if args.quick else 10_000)
    with tempfile.TemporaryDirectory(prefix="bench-longpoll-") as tmp:
        long = measure(Path(tmp), first, total, args.c, long_poll=True)
        short = measure(Path(tmp), first, total, args.c, long_poll=False)
    value, baseline = long["growth_mb"], short["growth_mb"]
    print(json.dumps({
        "bench": "longpoll_memory", "unit": f"MB consumer RSS growth from {first} to {total} long-polled negotiations",
        "value": value, "baseline": baseline,
        "baseline_unit": "MB growth over the same negotiations awaited by short polls (fresh processes)",
        "ratio": round(value / baseline, 3) if baseline > 0 else None,
        "long_poll": long, "short_poll": short, "first": first, "total": total, "concurrency": args.c,
        "backend": "sqlite", "target": {"value_max_mb": 20}}))


if __name__ == "__main__":
    main()
