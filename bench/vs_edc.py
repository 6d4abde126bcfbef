"""Negotiations per second, side by side in one run: EDC consumer -> EDC provider (two Eclipse EDC
0.15.1 runtimes, in-memory stores, iam-mock, their state machines' wait tuned down and printed) and
our consumer -> our provider (two node processes, SQLite). Also a mixed pair (EDC consumer -> our
provider) for latency. Needs Java 17 and Maven (the EDC class path of tests/interop/edc/pom.xml,
cached in ~/.cache/hks-connector/interop).

Each negotiation, for both: the bench asks the consumer's management API to start it and waits until
the consumer reports FINALIZED (ours: a long poll; EDC, which has no long poll: GET every 10 ms, so
EDC latencies carry up to 10 ms of polling).

    python bench/vs_edc.py [--quick] [-n N] [-c C] [--edc-wait-ms MS]

Last line: one JSON object: value (ours, negotiations/s), baseline (EDC's), ratio, p50/p99 of each,
the mixed pair's p50/p99 and each side's peak RSS (the sum of its two processes' VmHWM).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from negotiation import drive, pct  # noqa: E402
from support.edc import API_KEY, CONTEXT, PROTOCOL, EdcRuntime  # noqa: E402
from support.interop import classpath, edc_mode_node, java_home  # noqa: E402
from support.nodes import NodeProcess  # noqa: E402


def peak_rss_mb(*pids: int) -> float:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return round(total / 1024, 1)


def stats(prefix: str, n: int, seconds: float, latencies: list[float]) -> dict:
    return {f"{prefix}rate": round(n / seconds, 1), f"{prefix}p50_ms": round(statistics.median(latencies) * 1000, 1),
            f"{prefix}p99_ms": round(pct(latencies, 0.99) * 1000, 1)}


async def edc_negotiations(n: int, c: int, consumer: EdcRuntime, provider_dsp: str, provider_id: str,
                           dataset: str) -> tuple[float, list[float], int]:
    headers = {"X-Api-Key": API_KEY}
    failures = []
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=120),
                                     connector=aiohttp.TCPConnector(limit=c + 8)) as http:
        async with http.post(consumer.management + "/v3/catalog/request", json={
                "@context": CONTEXT, "counterPartyAddress": provider_dsp, "counterPartyId": provider_id,
                "protocol": PROTOCOL}) as resp:
            catalog = await resp.json()
        datasets = catalog["dataset"] if isinstance(catalog["dataset"], list) else [catalog["dataset"]]
        offer = next(d for d in datasets if d["@id"] == dataset)["hasPolicy"]
        offer = offer[0] if isinstance(offer, list) else offer
        policy = {"@context": "http://www.w3.org/ns/odrl.jsonld", **{k: v for k, v in offer.items() if k != "@context"},
                  "assigner": provider_id, "target": dataset}
        body = {"@context": CONTEXT, "@type": "ContractRequest", "counterPartyAddress": provider_dsp,
                "protocol": PROTOCOL, "policy": policy}

        async def negotiate() -> None:
            async with http.post(consumer.management + "/v3/contractnegotiations", json=body) as resp:
                nid = (await resp.json())["@id"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                async with http.get(f"{consumer.management}/v3/contractnegotiations/{nid}/state") as resp:
                    state = (await resp.json()).get("state")
                if state in ("FINALIZED", "TERMINATED"):
                    break
                await asyncio.sleep(0.01)
            if state != "FINALIZED":
                failures.append(state)

        await drive(min(20, n), c, negotiate)  # warm up the JVMs
        failures.clear()
        seconds, latencies = await drive(n, c, negotiate)
    return seconds, latencies, len(failures)


async def our_negotiations(n: int, c: int, consumer: NodeProcess, provider: NodeProcess) -> tuple[float, list[float], int]:
    api = consumer.url + "/api/v1"
    failures = []
    async with aiohttp.ClientSession(headers=consumer.headers(), timeout=aiohttp.ClientTimeout(total=120),
                                     connector=aiohttp.TCPConnector(limit=c + 8)) as http:
        async with http.post(api + "/catalog/request", json={"counterPartyAddress": provider.url}) as resp:
            offer = (await resp.json())["catalog"]["dataset"][0]["hasPolicy"][0]
        body = {"counterPartyAddress": provider.url, "datasetId": "dataset-1", "offer": offer, "dspVersion": "2025-1"}

        async def negotiate() -> None:
            async with http.post(api + "/negotiations", json=body) as resp:
                neg = await resp.json()
            async with http.get(f"{api}/negotiations/{neg['id']}?waitFor=FINALIZED,TERMINATED&timeout=60") as resp:
                if (await resp.json())["state"] != "FINALIZED":
                    failures.append(neg["id"])

        await drive(min(20, n), c, negotiate)
        failures.clear()
        seconds, latencies = await drive(n, c, negotiate)
    return seconds, latencies, len(failures)


def edc_provider_setup(edc: EdcRuntime) -> None:
    edc.api("POST", "/v3/assets", {"@id": "bench-asset", "properties": {"name": "bench"},
                                   "dataAddress": {"@type": "DataAddress", "type": "HttpData", "baseUrl": "http://127.0.0.1:9/x"}})
    edc.api("POST", "/v3/policydefinitions", {"@id": "use", "policy": {
        "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "permission": [{"action": "use"}]}})
    edc.api("POST", "/v3/contractdefinitions", {"@id": "cd", "accessPolicyId": "use", "contractPolicyId": "use",
                                                "assetsSelector": []})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (under 90 s once the jars are cached)")
    parser.add_argument("-n", type=int, default=None, help="negotiations per pair (default 1000, --quick 100)")
    parser.add_argument("-c", type=int, default=16, help="concurrency")
    parser.add_argument("--edc-wait-ms", type=int, default=10,
                        help="EDC's state-machine iteration wait (EDC's default is 1000)")
    args = parser.parse_args()
    n = args.n or (100 if args.quick else 1000)
    home = java_home()
    if home is None or shutil.which("mvn") is None:
        sys.exit("bench/vs_edc.py needs Java 17 (java) and Maven (mvn)")
    lib, fetched = classpath(ROOT / "tests" / "interop" / "edc", "edc")
    java = str(Path(home) / "bin" / "java")
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-vs-edc-") as tmp:
        base = Path(tmp)
        edc_p = EdcRuntime(base / "edc-provider", lib, java, "edc-bench-provider", wait_millis=args.edc_wait_ms)
        edc_c = EdcRuntime(base / "edc-consumer", lib, java, "edc-bench-consumer", wait_millis=args.edc_wait_ms)
        ours_p = NodeProcess(base / "ours-provider", "BenchProvider")
        ours_c = NodeProcess(base / "ours-consumer", "BenchConsumer")
        mixed_p = edc_mode_node(base / "mixed-provider", "MixedProvider")
        started = [edc_p, edc_c, ours_p, ours_c, mixed_p]
        try:
            for process in started:
                process.start()
            edc_provider_setup(edc_p)
            ours_p.publish("dataset-1", "offer-1")
            mixed_p.publish("dataset-1", "offer-1")
            print(f"{n} negotiations per pair at concurrency {args.c}; EDC "
                  f"edc.negotiation.*.state-machine.iteration-wait-millis={args.edc_wait_ms}", file=sys.stderr, flush=True)
            seconds, lat, edc_failed = asyncio.run(edc_negotiations(
                n, args.c, edc_c, edc_p.protocol + "/2025-1", "edc-bench-provider", "bench-asset"))
            result.update(stats("edc_", n, seconds, lat))
            seconds, lat, our_failed = asyncio.run(our_negotiations(n, args.c, ours_c, ours_p))
            result.update(stats("ours_", n, seconds, lat))
            m = max(20, n // 5)
            seconds, lat, mixed_failed = asyncio.run(edc_negotiations(
                m, args.c, edc_c, mixed_p.url + "/dsp/2025-1", mixed_p.participant_id, "dataset-1"))
            result.update(stats("mixed_edc_to_ours_", m, seconds, lat))
            result["edc_peak_rss_mb"] = peak_rss_mb(edc_p.proc.pid, edc_c.proc.pid)
            result["ours_peak_rss_mb"] = peak_rss_mb(ours_p.proc.pid, ours_c.proc.pid)
            result["failed"] = {"edc": edc_failed, "ours": our_failed, "mixed": mixed_failed}
        finally:
            for process in reversed(started):
                process.stop()
    print(json.dumps({
        "bench": "vs_edc", "unit": "negotiations/s", "value": result["ours_rate"], "baseline": result["edc_rate"],
        "baseline_unit": "EDC 0.15.1 consumer -> EDC provider negotiations/s, same machine, same run",
        "ratio": round(result["ours_rate"] / result["edc_rate"], 2), **result, "n": n, "concurrency": args.c,
        "edc_state_machine_wait_ms": args.edc_wait_ms, "edc_classpath_fetch_s": round(fetched),
        "target": {"ratio": 2, "p99": "lower than EDC's"}}))


if __name__ == "__main__":
    main()
