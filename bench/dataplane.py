"""Data-plane throughput: a large file pulled through the provider's policy-enforcing
data plane (token check, policy decision, use counted and logged, then streamed),
against the same file served by a bare aiohttp FileResponse server in the same run,
with the same client. Also: the provider's peak RSS growth during the pull, and the
throughput of CSV modification in transit (drop one field, pseudonymise one): through the data plane,
and in the process alone (the batch transformer) against pyarrow reading and writing the same CSV
without modification (issue 16 targets: >= 150 MB/s, ratio >= 0.5) and against the native CSV pass
reading and writing it without modification (csv_native_ratio); the same for NDJSON against
orjson reading and writing every line (no target yet). Wall and CPU time (`*_cpu_*`: robust on a
loaded machine; the CPU of every thread of the process, so below wall-clock rates when threads help).

    python bench/dataplane.py [--quick]

Last line: one JSON object (bench, value, unit, baseline, ratio, rss_growth_mib, csv_mb_s,
csv_transform_mb_s, csv_ratio, ndjson_transform_mb_s, ndjson_ratio ...).
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.nodes import NodeProcess, free_port  # noqa: E402

MIB = 1024 * 1024
BARE_SERVER = """
import sys
from aiohttp import web
path = sys.argv[1]
async def serve(request):
    return web.FileResponse(path, chunk_size=256 * 1024)
app = web.Application()
app.router.add_get("/file", serve)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=lambda *a: print("listening", flush=True))
"""
MODIFY = {"permission": [{"action": "use", "duty": [
    {"action": [{"rdf:value": {"@id": "hks:drop"}, "refinement": [
        {"leftOperand": "hks:field", "operator": "isAnyOf", "rightOperand": ["name"]}]}]},
    {"action": [{"rdf:value": {"@id": "hks:pseudonymise"}, "refinement": [
        {"leftOperand": "hks:field", "operator": "isAnyOf", "rightOperand": ["patient_id"]}]}]}]}]}


def write_big_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as fh:
        for _ in range(size // MIB):
            fh.write(block)


VISIT_FIELDS = ["patient_id", "name", "phone", "age", "sex", "district", "diagnosis_code", "hba1c", "visit_date"]


def visits(start: int, count: int) -> list[list]:
    return [[f"P{i:07d}", f"Patient {i}", f"9{i:07d}", 20 + i % 60, "FM"[i % 2], "Tianhe", "E11", "6.1", "2025-03-01"]
            for i in range(start, start + count)]


def write_csv(path: Path, size: int) -> None:
    i = 0
    with open(path, "w") as fh:
        csv.writer(fh, lineterminator="\n").writerow(VISIT_FIELDS)
        while fh.tell() < size:
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(visits(i, 1000))
            i += 1000
            fh.write(out.getvalue())


def write_ndjson(path: Path, size: int) -> None:
    """The same visits as records, one JSON object a line."""
    import orjson

    i = 0
    with open(path, "wb") as fh:
        while fh.tell() < size:
            fh.write(b"".join(orjson.dumps(dict(zip(VISIT_FIELDS, row, strict=True)), option=orjson.OPT_APPEND_NEWLINE)
                              for row in visits(i, 1000)))
            i += 1000


def best_of_two(run) -> tuple[float, float]:  # noqa: ANN001
    """The shortest wall time and the shortest CPU time (all of this process's threads) of two runs."""
    wall, cpu = [], []
    for _ in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def modified_in_process(csv_path: Path, ndjson_path: Path) -> dict:
    """The batch transformers alone (256 KiB chunks, as the data plane reads a file): CSV against
    pyarrow's read + write of the same CSV without modification, NDJSON against orjson reading and
    writing every line without modification (what the record path's parse and write cost)."""
    import orjson
    import pyarrow.csv as pacsv

    from connector.node import pseudonym_native
    from connector.node.transform import Modification, transformer

    mod = Modification(frozenset({"name"}), frozenset({"patient_id"}), os.urandom(32))

    def modify(kind: str, data: bytes):  # noqa: ANN202
        def run() -> None:
            tx = transformer(kind, mod)
            for i in range(0, len(data), 256 * 1024):
                tx.feed(data[i:i + 256 * 1024])
            tx.finish()
        return run

    def orjson_read_write(data: bytes):  # noqa: ANN202
        return lambda: b"".join(orjson.dumps(orjson.loads(line), option=orjson.OPT_APPEND_NEWLINE)
                                for line in data.splitlines())

    results = {"native_pseudonyms": pseudonym_native.kernel() is not None}
    for kind, path, baseline_name, baseline in (
            ("csv", csv_path, "pyarrow_read_write", lambda d: lambda: pacsv.write_csv(pacsv.read_csv(io.BytesIO(d)), io.BytesIO())),
            ("ndjson", ndjson_path, "orjson_read_write", orjson_read_write)):
        data = path.read_bytes()
        mb = len(data) / MIB
        ours_wall, ours_cpu = best_of_two(modify(kind, data))
        plain_wall, plain_cpu = best_of_two(baseline(data))
        results.update({f"{kind}_transform_mb_s": round(mb / ours_wall, 1),
                        f"{kind}_{baseline_name}_mb_s": round(mb / plain_wall, 1),
                        f"{kind}_ratio": round(plain_wall / ours_wall, 3),
                        f"{kind}_transform_cpu_mb_s": round(mb / ours_cpu, 1),
                        f"{kind}_cpu_ratio": round(plain_cpu / ours_cpu, 3)})
        if kind == "csv" and results["native_pseudonyms"]:
            # The native pass is the library here: its own read and write of the same CSV without
            # modification (every field kept, none pseudonymised), in the same 4 MiB batches.
            kernel, fields = pseudonym_native.kernel(), data[:data.index(b"\n")].count(b",") + 1

            def copy(body: bytes = data[data.index(b"\n") + 1:]) -> None:
                start = 0
                while start < len(body):
                    end = body.rfind(b"\n", start, start + (4 << 20)) + 1 or len(body)
                    pseudonym_native.csv_rows(kernel, mod.key, body[start:end], fields, range(fields), set())
                    start = end

            copy_wall, copy_cpu = best_of_two(copy)
            results.update({"csv_native_copy_mb_s": round(mb / copy_wall, 1),
                            "csv_native_ratio": round(copy_wall / ours_wall, 3)})
        del data
    return results


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def pull(url: str, headers: dict | None = None) -> tuple[int, float]:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        started = time.perf_counter()
        async with http.get(url, headers=headers or {}) as resp:
            assert resp.status == 200, (resp.status, await resp.text())
            total = 0
            async for chunk in resp.content.iter_chunked(1024 * 1024):
                total += len(chunk)
        return total, time.perf_counter() - started


def pull_token(consumer: NodeProcess, transfer_id: str) -> dict:
    engine = sa.create_engine(consumer.settings.database_url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        address = conn.execute(sa.text("SELECT data_address FROM transfers WHERE id = :i"), {"i": transfer_id}).scalar()
    engine.dispose()
    address = json.loads(address)
    props = {p["name"]: p["value"] for p in address["endpointProperties"]}
    return {"url": address["endpoint"], "headers": {"Authorization": f"Bearer {props['authorization']}"}}


def start_transfer(consumer: NodeProcess, provider: NodeProcess, dataset: str, offer: str) -> dict:
    neg = consumer.wait_state(consumer.negotiate(provider, dataset, offer)["id"])
    assert neg["state"] == "FINALIZED", neg
    row = consumer.api("POST", "/transfers", {"agreementId": neg["agreement"]["@id"]}, expect=201)
    row = consumer.api("GET", f"/transfers/{row['id']}?waitFor=STARTED&timeout=20", expect=200)
    assert row["state"] == "STARTED", row
    return pull_token(consumer, row["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB and a 64 MiB CSV (under 60 s)")
    args = parser.parse_args()
    size = (256 if args.quick else 1024) * MIB
    csv_size = (64 if args.quick else 256) * MIB
    keep = tempfile.TemporaryDirectory(prefix="bench-dataplane-csv-")
    csv_path = Path(keep.name) / "visits.csv"
    ndjson_path = Path(keep.name) / "visits.ndjson"
    with tempfile.TemporaryDirectory(prefix="bench-dataplane-") as tmp:
        base = Path(tmp)
        provider = NodeProcess(base / "provider", "BenchProvider")
        consumer = NodeProcess(base / "consumer", "BenchConsumer")
        data = provider.directory / "data"
        data.mkdir(exist_ok=True)
        print(f"writing a {size // MIB} MiB file and a {csv_size // MIB} MiB CSV ...", file=sys.stderr, flush=True)
        write_big_file(data / "big.bin", size)
        write_csv(data / "visits.csv", csv_size)
        port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(data / "big.bin"), str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert bare.stdout is not None and "listening" in bare.stdout.readline().decode()
        provider.start()
        consumer.start()
        try:
            provider.api("POST", "/policies", {"id": "use", "policy": {"permission": [{"action": "use"}]}}, expect=201)
            provider.api("POST", "/policies", {"id": "modify", "policy": MODIFY}, expect=201)
            provider.api("POST", "/assets", {"id": "big", "dataAddress": {"type": "file", "path": "big.bin"}}, expect=201)
            provider.api("POST", "/assets", {"id": "csv", "contentType": "text/csv",
                                             "dataAddress": {"type": "file", "path": "visits.csv"}}, expect=201)
            provider.api("POST", "/offers", {"id": "big", "assetIds": ["big"], "accessPolicyId": "use",
                                             "contractPolicyId": "use"}, expect=201)
            provider.api("POST", "/offers", {"id": "csv", "assetIds": ["csv"], "accessPolicyId": "use",
                                             "contractPolicyId": "modify"}, expect=201)
            big = start_transfer(consumer, provider, "big", "big")
            modified = start_transfer(consumer, provider, "csv", "csv")
            assert provider.proc is not None
            rss_before = rss_kib(provider.proc.pid, "VmRSS")
            results: dict[str, list[float]] = {"dataplane": [], "bare": []}
            print("pulling ...", file=sys.stderr, flush=True)
            for _ in range(2):  # alternate, so both see the same machine
                got, secs = asyncio.run(pull(big["url"], big["headers"]))
                assert got == size
                results["dataplane"].append(got / MIB / secs)
                got, secs = asyncio.run(pull(f"http://127.0.0.1:{port}/file"))
                assert got == size
                results["bare"].append(got / MIB / secs)
            peak = rss_kib(provider.proc.pid, "VmHWM")
            got, secs = asyncio.run(pull(modified["url"], modified["headers"]))
            csv_in = (data / "visits.csv").stat().st_size
            os.replace(data / "visits.csv", csv_path)
            write_ndjson(ndjson_path, csv_size)
            csv_rate = csv_in / MIB / secs
        finally:
            consumer.stop()
            provider.stop()
            bare.terminate()
            bare.wait(10)
    value, baseline = max(results["dataplane"]), max(results["bare"])
    print(json.dumps({
        "bench": "dataplane", "value": round(value, 1), "unit": "MB/s (MiB/s) through the data plane",
        "baseline": round(baseline, 1), "baseline_unit": "MiB/s from a bare aiohttp FileResponse server",
        "ratio": round(value / baseline, 3), "runs": {k: [round(v, 1) for v in vs] for k, vs in results.items()},
        "file_mib": size // MIB, "rss_growth_mib": round(max(0, peak - rss_before) / 1024, 1),
        "csv_mb_s": round(csv_rate, 1), "csv_input_mib": round(csv_in / MIB, 1), "csv_output_mib": round(got / MIB, 1),
        **modified_in_process(csv_path, ndjson_path),
        "target": {"ratio": 0.8, "rss_growth_mib": 100, "csv_transform_mb_s": 150, "csv_ratio": 0.5},
    }))


if __name__ == "__main__":
    main()
