"""A page of a 100,000-offer catalog for one requester (issue 16, item 1).

The provider node (a real process) holds N datasets, one offer each, under 50 different access
policies (each admits a set of jurisdictions; the requester, HK, is admitted by about half of
them), seeded straight into its database. The bench asks `POST /dsp/2025-1/catalog/request?
pageSize=100` with a continuation token at a random position, at concurrency 8, with a dev-mode
token carrying the requester's claims. Baseline: the same page, pre-rendered, served as static
JSON by bare aiohttp in a process of its own (same client, same concurrency). Then a full walk
of the catalog along its `Link: rel="next"` headers (pages of 1000): the time per page at the
start and at the end of the walk (linear: about equal). Beside the wall-clock figures, the node's
CPU time per page (/proc) and, on PostgreSQL, its backends' (when the server runs on this
machine): figures that the machine's load does not inflate.

    python bench/catalog.py [--quick] [--postgres] [-n REQUESTS] [--offers N]

    python bench/catalog.py --both [--quick]   # SQLite, then PostgreSQL: both in one line

Last line: one JSON object: value = p99 ms (the worse backend's, by ratio), baseline = the static
page's p99 ms, ratio = value / baseline, and per backend p50/p99, their ratios and the walk figures.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.nodes import SHARED_SECRET, NodeProcess, free_port, postgres_admin_dsn  # noqa: E402
from support.stats import pct  # noqa: E402

from connector.identity import DevSharedSecret  # noqa: E402
from connector.node.catalog_pages import encode_token  # noqa: E402
from connector.store.db import Database  # noqa: E402
from connector.store.tables import assets, offer_assets, offers, policies  # noqa: E402

POLICIES = 50
JURISDICTIONS = ["HK", "SG", "CN-GD-GZ", "CN-GD-SZ", "MO", "JP", "KR", "TW"]
BODY = {"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": "CatalogRequestMessage"}
BASELINE_SERVER = """
import sys
from aiohttp import web
body = open(sys.argv[1], "rb").read()
async def page(request):
    await request.read()
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.add_routes([web.post("/catalog/request", page)])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=lambda *a: print("listening", flush=True),
            access_log=None)
"""


def access_policy(k: int) -> dict:
    """Policy k admits a set of jurisdictions: HK is in every other one."""
    rng = random.Random(k)
    allowed = sorted(set(rng.sample(JURISDICTIONS[1:], 3)) | ({"HK"} if k % 2 == 0 else set()))
    return {"permission": [{"action": "use", "constraint": [
        {"leftOperand": "hks:recipientJurisdiction", "operator": "isAnyOf", "rightOperand": allowed}]}]}


async def seed(url: str, n: int) -> None:
    db = Database(url)
    await db.migrate()
    now = time.time()
    rows_p = [{"id": f"access-{k:02d}", "body": access_policy(k), "created_at": now} for k in range(POLICIES)]
    rows_p.append({"id": "contract", "body": {"permission": [{"action": "use"}]}, "created_at": now})
    await db.transaction(lambda conn: conn.execute(sa.insert(policies), rows_p))
    step = 10_000
    for start in range(0, n, step):
        ids = range(start, min(n, start + step))
        rows_a = [{"id": f"ds-{i:06d}", "title": f"Dataset {i}", "description": "", "content_type": "text/csv",
                   "properties": {}, "data_address": {}, "created_at": now + i * 1e-6} for i in ids]
        rows_o = [{"id": f"offer-{i:06d}", "asset_ids": [f"ds-{i:06d}"], "access_policy_id": f"access-{i % POLICIES:02d}",
                   "contract_policy_id": "contract", "created_at": now + i * 1e-6} for i in ids]
        rows_l = [{"asset_id": f"ds-{i:06d}", "offer_id": f"offer-{i:06d}",
                   "access_policy_id": f"access-{i % POLICIES:02d}"} for i in ids]
        await db.transaction(lambda conn: (conn.execute(sa.insert(assets), rows_a),
                                           conn.execute(sa.insert(offers), rows_o),
                                           conn.execute(sa.insert(offer_assets), rows_l)))
    if db.is_postgres:  # what autovacuum would have done by then: the planner's statistics
        async with db.async_engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("ANALYZE")
    await db.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc): robust to the machine's load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(n: int, c: int, one) -> list[float]:  # noqa: ANN001
    latencies: list[float] = []
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            t0 = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(c)))
    return latencies


async def database_backends(dsn: str | None, name: str | None) -> list[int]:
    """The process ids of the PostgreSQL backends serving database `name` (none for SQLite, whose
    work is in the node's own process)."""
    if dsn is None:
        return []
    import asyncpg

    admin = await asyncpg.connect(dsn)
    try:
        return [r["pid"] for r in await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)]
    finally:
        await admin.close()


def backends_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (OSError, IndexError):  # gone, or not on this machine
            pass
    return total


async def run(provider: NodeProcess, n_offers: int, requests: int, c: int, tmp: Path,
              database: tuple[str | None, str | None] = (None, None)) -> dict:
    # This client's own full garbage collections walked everything it imported (connector, SQLAlchemy,
    # aiohttp): 25-60 ms pauses, counted as the server's latency of every request in flight (one was the
    # whole of a walk's "slow last page"). What exists now lives to the end: out of the collector's sight.
    gc.collect()
    gc.freeze()
    auth = "Bearer " + DevSharedSecret("urn:bench:hk", SHARED_SECRET).token_for(
        "urn:bench:hk", {"jurisdiction": "HK"}, audience=provider.participant_id)
    endpoint = provider.url + "/dsp/2025-1/catalog/request"
    rng = random.Random(16)
    starts = [encode_token("n", f"ds-{rng.randrange(n_offers - 1000):06d}", 100) for _ in range(requests)]
    errors: list[int] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c + 4),
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        async def page(i: int) -> None:
            async with http.post(f"{endpoint}?continuationToken={starts[i]}", json=BODY,
                                 headers={"Authorization": auth}) as resp:
                await resp.read()
                if resp.status != 200:
                    errors.append(resp.status)

        async with http.post(f"{endpoint}?continuationToken={starts[0]}", json=BODY,
                             headers={"Authorization": auth}) as resp:
            sample = await resp.read()
            datasets = len(json.loads(sample).get("dataset", []))
        await drive(min(200, requests), c, page)  # warm up
        backends = await database_backends(*database)  # the node's pool, open since the warm-up
        cpu0, db_cpu0 = cpu_seconds(provider.proc.pid), backends_cpu(backends)
        ours = await drive(requests, c, page)
        page_cpu = (cpu_seconds(provider.proc.pid) - cpu0) / requests
        page_db_cpu = (backends_cpu(backends) - db_cpu0) / requests

        # the baseline: the same page pre-rendered, bare aiohttp in its own process
        (tmp / "page.json").write_bytes(sample)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", BASELINE_SERVER, str(tmp / "page.json"), str(port)],
                                  stdout=subprocess.PIPE)
        try:
            assert server.stdout is not None and b"listening" in server.stdout.readline()
            base_url = f"http://127.0.0.1:{port}/catalog/request"

            async def static(i: int) -> None:
                async with http.post(base_url, json=BODY, headers={"Authorization": auth}) as resp:
                    await resp.read()

            await drive(min(200, requests), c, static)
            base = await drive(requests, c, static)
        finally:
            server.terminate()
            server.wait(10)

        # a full walk along the Link headers, pages of 1000. Its statement shapes are compiled and
        # prepared first, by a walk's first page of another size (so not kept as the walk's page):
        # that one-time cost was about the whole of the first tenth of a --quick walk (one page)
        async with http.post(f"{endpoint}?pageSize=999", json=BODY, headers={"Authorization": auth}) as resp:
            await resp.read()
        walk_pages: list[float] = []
        seen = 0
        url = f"{endpoint}?pageSize=1000"
        t_walk = time.perf_counter()
        walk_cpu: list[float] = []  # the node's CPU seconds per page
        while url:
            t0, cpu0 = time.perf_counter(), cpu_seconds(provider.proc.pid)
            async with http.post(url, json=BODY, headers={"Authorization": auth}) as resp:
                doc = json.loads(await resp.read())
                nxt = resp.links.get("next")
            walk_pages.append(time.perf_counter() - t0)
            walk_cpu.append(cpu_seconds(provider.proc.pid) - cpu0)
            seen += len(doc.get("dataset", []))
            url = str(nxt["url"]) if nxt else None
        walk_s = time.perf_counter() - t_walk
    tenth = max(1, len(walk_pages) // 10)
    return {
        "value": round(pct(ours, 0.99) * 1000, 2), "p50_ms": round(statistics.median(ours) * 1000, 2),
        "baseline_p99_ms": round(pct(base, 0.99) * 1000, 2), "baseline_p50_ms": round(statistics.median(base) * 1000, 2),
        "node_cpu_ms_per_page": round(page_cpu * 1000, 2),
        **({"postgres_cpu_ms_per_page": round(page_db_cpu * 1000, 2)} if database[0] else {}), "page_datasets": datasets, "errors": len(errors),
        "walk_seconds": round(walk_s, 2), "walk_pages": len(walk_pages), "walk_datasets": seen,
        "walk_first_tenth_ms_per_page": round(statistics.mean(walk_pages[:tenth]) * 1000, 1),
        "walk_last_tenth_ms_per_page": round(statistics.mean(walk_pages[-tenth:]) * 1000, 1),
        "walk_first_tenth_node_cpu_ms_per_page": round(statistics.mean(walk_cpu[:tenth]) * 1000, 1),
        "walk_last_tenth_node_cpu_ms_per_page": round(statistics.mean(walk_cpu[-tenth:]) * 1000, 1),
    }


def run_backend(args: argparse.Namespace, postgres: bool, n_offers: int, requests: int) -> dict:
    """Seed a fresh database (SQLite file or PostgreSQL database), start the node on it, measure."""
    pg_name = None
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'provider.db'}"
        if postgres:
            dsn = postgres_admin_dsn()
            if dsn is None:
                sys.exit("--postgres needs CONNECTOR_TEST_POSTGRES_DSN, e.g. postgresql://postgres@127.0.0.1:5432/test")
            import asyncpg

            pg_name = f"bench_catalog_{uuid.uuid4().hex[:10]}"

            async def create() -> None:
                admin = await asyncpg.connect(dsn)
                await admin.execute(f'CREATE DATABASE "{pg_name}"')
                await admin.close()
            asyncio.run(create())
            url = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + pg_name
        try:
            print(f"seeding {n_offers} offers under {POLICIES} access policies ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            asyncio.run(seed(url, n_offers))
            seeded = time.perf_counter() - t0
            provider = NodeProcess(Path(tmp) / "provider", "BenchCatalog", database_url=url).start()
            try:
                print(f"{requests} page requests at concurrency {args.c} ...", file=sys.stderr, flush=True)
                result = asyncio.run(run(provider, n_offers, requests, args.c, Path(tmp),
                                         (dsn, pg_name) if postgres else (None, None)))
            finally:
                provider.stop()
        finally:
            if pg_name is not None:
                async def drop() -> None:
                    admin = await asyncpg.connect(dsn)
                    await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
                    await admin.close()
                asyncio.run(drop())
    result["ratio"] = round(result["value"] / result["baseline_p99_ms"], 2)  # p99 against the static page's
    result["p50_ratio"] = round(result["p50_ms"] / result["baseline_p50_ms"], 2)
    result["seed_seconds"] = round(seeded, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 offers, 500 requests")
    parser.add_argument("--postgres", action="store_true", help="the node on PostgreSQL (CONNECTOR_TEST_POSTGRES_DSN)")
    parser.add_argument("--both", action="store_true", help="SQLite, then PostgreSQL: one line with both")
    parser.add_argument("--offers", type=int, default=None, help="offers (default 100000, --quick 10000)")
    parser.add_argument("-n", type=int, default=None, help="page requests (default 2000, --quick 500)")
    parser.add_argument("-c", type=int, default=8, help="concurrency")
    args = parser.parse_args()
    n_offers = args.offers or (10_000 if args.quick else 100_000)
    requests = args.n or (500 if args.quick else 2000)
    backends = ["sqlite", "postgres"] if args.both else ["postgres" if args.postgres else "sqlite"]
    per_backend = {name: run_backend(args, name == "postgres", n_offers, requests) for name in backends}
    worst = max(per_backend.values(), key=lambda r: r["ratio"])
    result = {"bench": "catalog", "unit": "ms (p99, page of 100)", "value": worst["value"], "p50_ms": worst["p50_ms"],
              "baseline": worst["baseline_p99_ms"], "ratio": worst["ratio"],
              "baseline_what": "the same page pre-rendered, bare aiohttp (p99 ms)",
              **({"backend": backends[0], **per_backend[backends[0]]} if len(backends) == 1 else
                 {"backend": "+".join(backends), "backends": per_backend}),
              "offers": n_offers, "access_policies": POLICIES, "requests": requests, "concurrency": args.c,
              "cpus": os.cpu_count(), "target": {"p99_ms": 50}}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
