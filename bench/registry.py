"""Registry search at 10,000 participants (issue 16, item 4).

A real station process (SQLite, or PostgreSQL with --postgres) holds N registered participants
with generated, realistic self-descriptions (`tests/support/registry_data.py`: 1-6 datasets each,
about 2.3 offers per participant, policies from the repository's templates with participant-specific
variants), seeded straight into its database through the same index writer a registration uses
(the signed Turtle documents themselves are not stored: the search never reads them), then on
PostgreSQL analysed (as autovacuum does soon after a bulk load). An enrolled HK
participant (real CSR, real client assertion, real DAT) asks the README's searches, `--jurisdiction
CN-GD-GZ --theme health` and `--purpose hks:MedicalResearch --usable-by HK`, and the console's word
search (`q=diabetes`), in turn, at concurrency C. Baseline: the same responses, pre-computed, served
by bare aiohttp in a process of its own (same client, same concurrency, same token header).

    python bench/registry.py [--quick] [--postgres] [-n REQUESTS] [-c C] [--participants N]

Last line: one JSON object (bench, value = p99 ms over all searches, unit, baseline = the bare
server's p99 ms, ratio = value / baseline, p50, p99, per-search figures, and the p50 of a search that
finds nothing through an index: what every request costs besides the search).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import fresh_postgres_database  # noqa: E402
from support.nodes import StationProcess, free_port, postgres_admin_dsn  # noqa: E402
from support.stats import pct  # noqa: E402
from support.registry_data import generate  # noqa: E402

from connector.identity.dat import client_assertion, token_request_form  # noqa: E402
from connector.identity.pki import make_csr  # noqa: E402
from connector.station import registry_index, shared  # noqa: E402
from connector.station.store import participants, registry  # noqa: E402
from connector.store.db import Database  # noqa: E402

SEARCHES = {
    "readme-jurisdiction-theme": {"jurisdiction": "CN-GD-GZ", "theme": "health"},
    "readme-purpose-usable-by": {"purpose": "hks:MedicalResearch", "usableBy": "HK"},
    "console-words": {"q": "diabetes"},
}
BASELINE_SERVER = """
import json, sys
from aiohttp import web
bodies = {k: v.encode() for k, v in json.load(open(sys.argv[1])).items()}
async def search(request):
    return web.Response(body=bodies[json.dumps(sorted(request.query.items()))], content_type="application/json")
app = web.Application()
app.add_routes([web.get("/registry/search", search)])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=lambda *a: print("listening", flush=True),
            access_log=None)
"""


async def seed(url: str, n: int, station_url: str) -> dict:
    records, indexes = generate(n, station=station_url)
    db = Database(url)
    await db.migrate(shared.MIGRATIONS)
    rows = [{**r, "certificate_pem": "(generated)", "certificate_sha256": hashlib.sha256(r["id"].encode()).hexdigest(),
             "public_key_sha256": hashlib.sha256(b"key" + r["id"].encode()).hexdigest(), "enrolled_at": time.time()}
            for r in records]
    await db.transaction(lambda conn: conn.execute(sa.insert(participants), rows))
    decisions = registry_index.Decisions()
    now = time.time()
    step = 500
    for start in range(0, n, step):
        part = [i for i in indexes[start:start + step] if i["membershipStatus"] == "active"]  # revoked: removed

        def write(conn: sa.Connection, part: list = part) -> None:
            conn.execute(sa.insert(registry), [
                {"participant_id": i["participantId"], "media_type": "text/turtle", "document": "(not stored)",
                 "signature": "(not stored)", "etag": uuid.uuid4().hex, "index": i, "registered_at": now} for i in part])
            registry_index.write_entries(conn, [registry_index.rows_for(index, decisions) for index in part])
        await db.transaction(write)
    if db.is_postgres:  # statistics, as autovacuum gathers within a minute of a bulk load (without: other plans)
        await db.transaction(lambda conn: conn.execute(sa.text("ANALYZE")))
    await db.dispose()
    return {"participants": n, "offers": sum(len(i["offers"]) for i in indexes)}


def searcher_token(station: StationProcess) -> str:
    """Enrol an HK participant through the admin API and get its DAT for the station's registry."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = "Bench Searcher Research Lab"
    enrolled = station.admin("POST", "/admin/participants", {
        "name": name, "jurisdiction": "HK", "csr": make_csr(key, name, ["127.0.0.1"]).decode(),
        "connectorUrl": "http://127.0.0.1:9999"}, expect=201)
    issuer = station.settings.issuer
    form = token_request_form(client_assertion(enrolled["participantId"], key, issuer + "/token", now=time.time()),
                              issuer)
    resp = httpx.post(station.url + "/token", data=form, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


async def drive(requests: int, c: int, one) -> list[tuple[int, float]]:  # noqa: ANN001
    """(request number, seconds) of `requests` calls of one(i), c at a time."""
    out: list[tuple[int, float]] = []
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await one(i)
            out.append((i, time.perf_counter() - t0))

    await asyncio.gather(*(worker() for _ in range(c)))
    return out


async def run(station: StationProcess, token: str, requests: int, c: int, tmp: Path) -> dict:
    names = list(SEARCHES)
    queries = {name: urlencode(params) for name, params in SEARCHES.items()}
    headers = {"Authorization": f"Bearer {token}"}
    errors: list[str] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c + 4),
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        async def ask(base: str, i: int) -> None:
            async with http.get(f"{base}/registry/search?{queries[names[i % len(names)]]}", headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors.append(f"{resp.status} {(await resp.text())[:200]}")

        bodies, counts = {}, {}
        for name in names:
            async with http.get(f"{station.url}/registry/search?{queries[name]}", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                body = (await resp.read()).decode()
                bodies[json.dumps(sorted(SEARCHES[name].items()))] = body
                counts[name] = json.loads(body)["count"]
        await drive(min(60, requests), c, lambda i: ask(station.url, i))  # warm up
        ours = await drive(requests, c, lambda i: ask(station.url, i))

        async def probe(i: int) -> None:  # the fixed cost: token check, middlewares, one indexed query, no result
            async with http.get(f"{station.url}/registry/search?jurisdiction=AQ", headers=headers) as resp:
                assert resp.status == 200 and (await resp.json())["count"] == 0
        fixed = [s for _, s in await drive(max(30, requests // 3), c, probe)]

        (tmp / "bodies.json").write_text(json.dumps(bodies))
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", BASELINE_SERVER, str(tmp / "bodies.json"), str(port)],
                                  stdout=subprocess.PIPE)
        try:
            assert server.stdout is not None and b"listening" in server.stdout.readline()
            bare = f"http://127.0.0.1:{port}"
            await drive(min(60, requests), c, lambda i: ask(bare, i))
            base = await drive(requests, c, lambda i: ask(bare, i))
        finally:
            server.terminate()
            server.wait(10)
    ours_s = [s for _, s in ours]
    base_s = [s for _, s in base]
    per = {}
    for k, name in enumerate(names):
        mine = [s for i, s in ours if i % len(names) == k]
        per[name] = {"results": counts[name], "p50_ms": round(statistics.median(mine) * 1000, 2),
                     "p99_ms": round(pct(mine, 0.99) * 1000, 2)}
    return {"p99": pct(ours_s, 0.99) * 1000, "p50": statistics.median(ours_s) * 1000,
            "baseline_p99": pct(base_s, 0.99) * 1000, "baseline_p50": statistics.median(base_s) * 1000,
            "fixed_cost_p50_ms": round(statistics.median(fixed) * 1000, 2), "fixed_cost_query": "jurisdiction=AQ (none)",
            "searches": per, "errors": errors[:3], "error_count": len(errors)}


async def bench(args: argparse.Namespace, requests: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        async with (fresh_postgres_database() if args.postgres else contextlib.nullcontext()) as pg_url:
            env = {"CONNECTOR_DATABASE_URL": pg_url} if pg_url else {}
            station = StationProcess(Path(tmp) / "station", env=env)
            print(f"seeding {args.participants} participants ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            data = await seed(pg_url or station.settings.database_url, args.participants, station.settings.issuer)
            data["seed_seconds"] = round(time.perf_counter() - t0, 1)
            station.start()
            try:
                token = searcher_token(station)
                print(f"{requests} searches at concurrency {args.c} ...", file=sys.stderr, flush=True)
                return {**await run(station, token, requests, args.c, Path(tmp)), **data}
            finally:
                station.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 searches (under 2 minutes)")
    parser.add_argument("--postgres", action="store_true", help="the station on PostgreSQL (CONNECTOR_TEST_POSTGRES_DSN)")
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("-n", type=int, default=None, help="searches (default 3000, --quick 600)")
    parser.add_argument("-c", type=int, default=4, help="concurrency")
    args = parser.parse_args()
    if args.postgres and postgres_admin_dsn() is None:
        sys.exit("--postgres needs CONNECTOR_TEST_POSTGRES_DSN, e.g. postgresql://postgres@127.0.0.1:5432/test")
    requests = args.n or (600 if args.quick else 3000)
    result = asyncio.run(bench(args, requests))
    p99, base = result.pop("p99"), result.pop("baseline_p99")
    print(json.dumps({
        "bench": "registry", "value": round(p99, 2), "unit": "ms (p99 of the README's searches and the word search)",
        "baseline": round(base, 2), "baseline_kind": "the same responses pre-computed, served by bare aiohttp",
        "ratio": round(p99 / base, 2), "p50": round(result.pop("p50"), 2), "p99": round(p99, 2),
        "baseline_p50": round(result.pop("baseline_p50"), 2), **result, "requests": requests,
        "concurrency": args.c, "backend": "postgres" if args.postgres else "sqlite", "cpus": os.cpu_count(),
        "target": {"p99_ms": 100},
    }))


if __name__ == "__main__":
    main()
