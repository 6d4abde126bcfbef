"""Console page times with 10,000 negotiations and 100,000 assets in the node's database (issue 13: every page
under 200 ms server time). A real node process on SQLite; the negotiations (with agreements,
transfers, access-log rows and outbox messages for a tenth of them) are written straight into its
database before it starts. Each page is fetched by a signed-in client on loopback; the figure is
the median and the worst of N fetches, client-measured (an upper bound of the server time).
Baseline: the node's /health on the same connection.

    python bench/console_pages.py [--quick] [-n N] [--negotiations N] [--assets N]

Last line: one JSON object (bench, value = the slowest page's median in ms, unit, baseline, ratio, pages).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.nodes import NodeProcess  # noqa: E402

STATES = ["FINALIZED", "TERMINATED", "REQUESTED", "AGREED", "VERIFIED", "OFFERED"]


def fill(database_url: str, count: int, data_root: Path, asset_count: int = 300) -> str:
    """`count` negotiations (a tenth with agreement, transfer, access and outbox rows) and `asset_count`
    assets (at least the 300 the negotiations name); returns one id."""
    from connector.store.tables import access_log, agreements, assets, negotiations, outbox, transfer_bytes, transfers

    engine = sa.create_engine(database_url.replace("+aiosqlite", ""))
    now = time.time()
    neg_rows, agr_rows, tr_rows, acc_rows, out_rows = [], [], [], [], []
    for i in range(count):
        nid = f"urn:uuid:{uuid.uuid4()}"
        state = STATES[i % len(STATES)]
        neg_rows.append(dict(id=nid, role="consumer" if i % 2 else "provider", state=state, version=1,
                             dsp_version="2025-1", counterparty_id=f"urn:hks:participant:peer-{i % 50}",
                             counterparty_address="http://127.0.0.1:9/dsp/2025-1", consumer_pid=nid,
                             provider_pid=f"urn:uuid:{uuid.uuid4()}", dataset_id=f"dataset-{i % 300}",
                             offer_id=f"offer-{i % 300}", offer={"@id": f"offer-{i % 300}"},
                             agreement=None, termination={"by": "provider", "code": "AccessDenied",
                                                          "reason": ["recipient jurisdiction must be CN-GD-GZ"]}
                             if state == "TERMINATED" else None, error=None,
                             created_at=now - i, updated_at=now - i / 2))
        if i % 10 == 0:
            aid = f"urn:uuid:{uuid.uuid4()}"
            agr_rows.append(dict(id=aid, negotiation_id=nid, role="consumer", provider_id="urn:hks:participant:p",
                                 consumer_id="urn:hks:participant:c", asset_id=f"dataset-{i % 300}",
                                 policy={"permission": [{"action": "use"}]}, created_at=now - i, offer_id=None))
            tid = f"urn:uuid:{uuid.uuid4()}"
            tr_rows.append(dict(id=tid, role="consumer", state="COMPLETED", version=1, dsp_version="2025-1",
                                counterparty_id="urn:hks:participant:p", counterparty_address="http://127.0.0.1:9",
                                consumer_pid=tid, provider_pid=None, agreement_id=aid, format="HttpData-PULL",
                                created_at=now - i, updated_at=now - i))
            acc_rows.append(dict(stage="access", transfer_id=tid, agreement_id=aid, offer_id=None,
                                 consumer_id="urn:hks:participant:c", at=now - i, permitted=bool(i % 20),
                                 purpose="hks:MedicalResearch", reasons=[], duties=[]))
            out_rows.append(dict(message_id=uuid.uuid4().hex, process_id=nid, kind="ContractRequestMessage",
                                 url="http://127.0.0.1:9", recipient="p", body={}, status="sent", attempts=1,
                                 next_attempt_at=now, created_at=now - i, sent_at=now - i))
    # the assets the negotiations name: files under the data root (measured on the assets page), some
    # of them missing, and HTTP upstreams (their size unknown)
    asset_rows = [dict(id=f"dataset-{i}", title=f"Dataset {i}", description="", content_type="text/csv",
                       properties={}, created_at=now - i,
                       data_address={"type": "http", "url": f"http://upstream.example/{i}.csv"} if i % 3 == 2
                       else {"type": "file", "path": f"dataset-{i}.csv"}) for i in range(300)]
    for i in range(0, 300, 3):
        (data_root / f"dataset-{i}.csv").write_text("a,b\n" * (i + 1))
    # the rest: HTTP upstreams, newer (the assets page lists the oldest first, so its first page still
    # measures the files above)
    asset_rows += [dict(id=f"more-{i}", title=f"More data {i}", description="", content_type="text/csv",
                        properties={}, created_at=now + 1 + i,
                        data_address={"type": "http", "url": f"http://upstream.example/more-{i}.csv"})
                   for i in range(max(asset_count - 300, 0))]
    with engine.begin() as conn:
        conn.execute(assets.insert(), asset_rows)
        conn.execute(transfer_bytes.insert(), [dict(transfer_id=r["id"], bytes=1024 * 1024 + i, updated_at=now)
                                               for i, r in enumerate(tr_rows)])
        conn.execute(negotiations.insert(), neg_rows)
        conn.execute(agreements.insert(), agr_rows)
        conn.execute(transfers.insert(), tr_rows)
        conn.execute(access_log.insert(), [{k: v for k, v in r.items() if k in access_log.c} for r in acc_rows])
        conn.execute(outbox.insert(), out_rows)
    engine.dispose()
    return neg_rows[0]["id"], tr_rows[0]["id"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-n", type=int, default=None, help="fetches per page")
    parser.add_argument("--negotiations", type=int, default=10_000)
    parser.add_argument("--assets", type=int, default=100_000)
    args = parser.parse_args()
    fetches = args.n or (10 if args.quick else 30)
    with tempfile.TemporaryDirectory() as tmp:
        node = NodeProcess(Path(tmp) / "node", "Bench")
        subprocess.run([sys.executable, "-m", "connector", "user", "add", str(node.directory), "bench",
                        "--role", "operator", "--password-stdin"], input="bench-password\n", text=True, check=True,
                       capture_output=True)  # also migrates the database
        nid, tid = fill(node.settings.database_url, args.negotiations, node.settings.dataplane_data_root, args.assets)
        node.start()
        try:
            client = httpx.Client(base_url=node.url, timeout=30)
            form = client.get("/console/login")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
            client.post("/console/login", data={"csrf": token, "username": "bench", "password": "bench-password"})
            from urllib.parse import quote
            pages = {"dashboard": "/console/", "negotiations": "/console/negotiations",
                     "negotiations?state=TERMINATED": "/console/negotiations?state=TERMINATED",
                     "negotiations?offset=5000": "/console/negotiations?offset=5000",
                     "negotiation": f"/console/negotiations/{quote(nid, safe='')}",
                     "transfers": "/console/transfers", "transfer": f"/console/transfers/{quote(tid, safe='')}",
                     "audit": f"/console/audit/{quote(nid, safe='')}", "assets": "/console/assets",
                     "assets?q=": "/console/assets?q=more+data+9999",
                     "asset edit": "/console/assets/dataset-3/edit", "policies": "/console/policies",
                     "policy template": "/console/policies/templates/gba-cross-border-personal-information",
                     "policy template, checked": "/console/policies/templates/gba-cross-border-personal-information"
                                                 "?count=3&purposes=hks%3AMedicalResearch&drop=name+phone+address",
                     "offer wizard": "/console/offers/new"}

            def timed(path: str) -> list[float]:
                out = []
                for _ in range(fetches):
                    started = time.perf_counter()
                    answer = client.get(path)
                    out.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
                return out
            baseline = timed("/health")
            results = {}
            for name, path in pages.items():
                times = timed(path)
                results[name] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}
                print(f"{name:32s} median {results[name]['median_ms']:7.1f} ms  max {results[name]['max_ms']:7.1f} ms",
                      flush=True)
        finally:
            node.stop()
    slowest = max(r["median_ms"] for r in results.values())
    base = round(statistics.median(baseline), 1)
    print(json.dumps({"bench": "console_pages", "value": slowest, "unit": "ms (slowest page, median)",
                      "baseline": base, "ratio": round(slowest / base, 1) if base else None,
                      "negotiations": args.negotiations, "assets": args.assets, "fetches": fetches,
                      "pages": results}))


if __name__ == "__main__":
    main()
