"""`connector demo`: the Hong Kong station on loopback, as SCENARIO.md tells it.

The station authority and the clearing house start first; three organisations enrol
through the station (key and CSR made locally, certificate from the station CA) and from
then on every call carries a Dynamic Attribute Token the receiver verifies. Pearl River
Medical Centre (Guangzhou) publishes synthetic outpatient records under the GBA
cross-border template; Harbour University Research Lab (Hong Kong) finds the offer in the
station registry, agrees, and pulls the data, which arrives without names and phone
numbers and with pseudonymised patient ids; Merlion Analytics (Singapore) is refused with
the rule that refused it; an access without a declared purpose is refused too. The agreement
gets its cross-border record on both sides; a transfer before Pearl River records its PIPIA is
refused with the reason; each party's GBA Standard Contract filing pack is produced; Harbour
Lab's attempt to re-offer what it derived to anyone (Merlion included) is refused. Harbour Lab
then computes mean HbA1c by district and age band on a computation-only offer of the same
records without a record leaving Pearl River, and its query grouped by patient id is
refused with the rule. Every
protocol event and data access is logged at the clearing house, and each process is
audited against the log's public key. Each node has its own SQLite file; no dev secret."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from . import config as config_mod
from .compute.story import computation_story
from .identity.enrol import AdminTokenEnroller, init_enrolled_node
from .identity.search import search_registry
from .node.app import Node
from .certs.demo import certificate_story
from .station import config as station_config
from .station.app import Station

PROVIDER = "Pearl River Medical Centre"
CONSUMER = "Harbour University Research Lab"
REFUSED = "Merlion Analytics"
ORGS = {"provider": (PROVIDER, "CN-GD-GZ"), "consumer": (CONSUMER, "HK"), "refused": (REFUSED, "SG")}
OPEN = {"permission": [{"action": "use"}]}
# A consumer who asks for different terms gets the provider's own offer back (a counter-offer).
NARROWER = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2030-01-01T00:00:00Z"}]}]}
CATEGORIES = ["pd:Identifier", "pd:Name", "pd:TelephoneNumber", "pd:Age", "pd:Gender", "pd:Location",
              "pd:MedicalHealth"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gba_template() -> dict:
    here = Path(__file__).resolve().parent
    for folder in (here / "_policies", here.parent / "policies"):  # installed wheel, source checkout
        path = folder / "gba-cross-border-personal-information.jsonld"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    raise FileNotFoundError("policies/gba-cross-border-personal-information.jsonld is missing")


def synthetic_visits(rows: int = 200, seed: int = 2025) -> str:
    """Synthetic outpatient records (never real personal data)."""
    rng = random.Random(seed)
    districts = ["Tianhe", "Yuexiu", "Haizhu", "Baiyun", "Panyu"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["patient_id", "name", "phone", "age", "sex", "district", "diagnosis_code", "hba1c", "visit_date"])
    for i in range(rows):
        writer.writerow([f"GZ-{100000 + i}", f"Synthetic Patient {i}", f"13{rng.randrange(10**9):09d}",
                         rng.randint(25, 85), rng.choice("FM"), rng.choice(districts),
                         rng.choice(["E11.9", "E11.6", "I10", "R73.0"]), f"{rng.uniform(5.0, 11.0):.1f}",
                         f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"])
    return out.getvalue()


class Step:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.n = 0

    def __call__(self, text: str) -> None:
        self.n += 1
        if not self.quiet:
            print(f"[{self.n}] {text}", flush=True)


async def _demo(base: Path, quiet: bool, console: bool = False) -> dict[str, Any]:
    step = Step(quiet)
    runners: list[web.AppRunner] = []
    try:
        result = await _demo_steps(base, step, runners)
        if console:  # keep the station, the clearing house and the nodes running for the console
            from .console.demo import serve_consoles
            await serve_consoles(base, result, ORGS)
        return result
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def _serve(app: web.Application, port: int, runners: list[web.AppRunner]) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    runners.append(runner)
    await web.TCPSite(runner, "127.0.0.1", port).start()


async def _start_clearinghouse(base: Path, station_url: str, port: int,
                               runners: list[web.AppRunner]) -> tuple[str, str]:
    from .clearinghouse import config as ch_config
    from .clearinghouse.app import ClearingHouse

    directory = base / "clearinghouse"
    ch_config.init_directory(directory, port=port, station_url=station_url, identity="station")
    settings = ch_config.load(directory, environ={})
    await _serve(ClearingHouse(settings).make_app(), port, runners)
    return f"http://127.0.0.1:{port}", (directory / ch_config.PUBLIC_KEY_FILE).read_text().strip()


async def _demo_steps(base: Path, step: Step, runners: list[web.AppRunner]) -> dict[str, Any]:
    station_port, ch_port = free_port(), free_port()
    station_config.init_directory(base / "station", port=station_port)
    station_settings = station_config.load(base / "station")
    # the clearing house is a service the station issues tokens for (its audience: its URL)
    station_settings.service_audiences = (f"http://127.0.0.1:{ch_port}",)
    await _serve(Station(station_settings).make_app(), station_port, runners)
    station_url = station_settings.issuer
    admin_token = station_config.read_admin_token(base / "station")
    step(f"the station authority is running at {station_url} (CA, token service, registry)")
    ch_url, ch_key = await _start_clearinghouse(base, station_url, ch_port, runners)
    # the station logs the dataset certificates it signs there (read when its first entry is due)
    station_settings.clearinghouse_url = station_settings.clearinghouse_audience = ch_url
    station_settings.clearinghouse_verifier_key = ch_key
    step(f"the clearing house is running at {ch_url}; its public key: {ch_key[:40]}...")

    nodes: dict[str, tuple[Node, str]] = {}
    ports = {key: free_port() for key in ORGS}
    # Everything runs on loopback, which nodes refuse as a destination unless allowed: each
    # node allows exactly the three nodes' ports (the clearing house, configured, is trusted).
    allowed = tuple(f"127.0.0.1:{p}" for p in ports.values())
    for key, (name, jurisdiction) in ORGS.items():
        port = ports[key]
        directory = base / key
        _, enrolment = await init_enrolled_node(directory, name=name, station_url=station_url,
                                                enroller=AdminTokenEnroller(station_url, admin_token),
                                                jurisdiction=jurisdiction, port=port)
        settings = config_mod.load(directory)
        settings.clearinghouse_url, settings.clearinghouse_verifier_key = ch_url, ch_key
        settings.clearinghouse_audience = ch_url
        settings.allowed_destinations = allowed
        node = Node(settings)
        await _serve(node.make_app(), port, runners)
        nodes[key] = (node, settings.node.public_url)
        step(f"{name} ({jurisdiction}) enrolled as {enrolment.participant_id[:23]}... and runs at "
             f"{settings.node.public_url}")
    (provider, provider_url), (consumer, consumer_url), (refused, refused_url) = (
        nodes["provider"], nodes["consumer"], nodes["refused"])
    data_root = provider.settings.dataplane_data_root
    data_root.mkdir(parents=True, exist_ok=True)
    (data_root / "outpatient-visits-2025.csv").write_text(synthetic_visits())

    result: dict[str, Any] = {
        "participants": [{"role": key, "name": node.settings.node.name, "jurisdiction": ORGS[key][1],
                          "participantId": node.participant_id, "url": url} for key, (node, url) in nodes.items()],
        "negotiations": [], "transfers": [], "accesses": [], "ok": False,
    }
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        async def call(node: Node, url: str, method: str, path: str, body: Any = None, *,
                       raw: bool = False) -> Any:
            headers = {"X-Api-Key": node.settings.management_api_key}
            async with http.request(method, url + "/api/v1" + path, json=body, headers=headers) as resp:
                if raw:
                    return resp.status, await resp.read()
                data = await resp.json()
                if resp.status >= 400:
                    raise RuntimeError(f"{method} {path}: {resp.status} {data}")
                return data

        await call(provider, provider_url, "POST", "/assets", {
            "id": "outpatient-visits-2025", "title": "De-identified outpatient visits 2025 (synthetic)",
            "contentType": "text/csv", "dataAddress": {"type": "file", "path": "outpatient-visits-2025.csv"},
            "properties": {"theme": "health", "keywords": ["outpatient", "diabetes", "HbA1c", "medical research"],
                           "dataCategories": CATEGORIES}})
        await call(provider, provider_url, "POST", "/assets", {
            "id": "district-statistics-2025", "title": "Outpatient visits per district (aggregated)",
            "contentType": "text/csv", "properties": {"theme": "health"}})
        await call(provider, provider_url, "POST", "/policies", {"id": "open", "policy": OPEN})
        await call(provider, provider_url, "POST", "/policies", {"id": "gba-cross-border", "policy": gba_template()})
        await call(provider, provider_url, "POST", "/offers", {
            "id": "outpatient-offer", "assetIds": ["outpatient-visits-2025"], "accessPolicyId": "open",
            "contractPolicyId": "gba-cross-border"})
        await call(provider, provider_url, "POST", "/offers", {
            "id": "statistics-offer", "assetIds": ["district-statistics-2025"], "accessPolicyId": "open",
            "contractPolicyId": "open"})
        step(f"{PROVIDER} published outpatient-visits-2025 under the GBA cross-border template "
             "(medical research, HK or GBA recipients, at most 10 retrievals, names and phones dropped, "
             "ids pseudonymised, every access logged) and aggregated statistics under an open policy")

        deadline = time.monotonic() + 20  # the catalog change re-registers the signed self-description
        while not (provider.self_description.status()["registered"]
                   and provider.self_description.status()["offers"] == 2):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the provider's self-description was not registered: "
                                   f"{provider.self_description.status()['lastError']}")
            await asyncio.sleep(0.05)
        query = {"jurisdiction": ORGS["provider"][1], "theme": "health"}
        found = (await search_registry(consumer.settings, query))["results"]
        result["registry"] = {"query": query, "found": [
            {"organisation": r["organisation"], "offerId": r["offerId"], "counterPartyAddress": r["counterPartyAddress"]}
            for r in found]}
        step(f"{CONSUMER} searched the station registry (jurisdiction {query['jurisdiction']}, theme health): "
             + (", ".join(f"{r['organisation']} offers {r['offerId']}" for r in found) or "nothing found"))

        # the provider's participant id goes with its address: our tokens are issued for it alone
        to_provider = {"counterPartyAddress": provider_url, "counterPartyId": provider.participant_id}
        cat = await call(consumer, consumer_url, "POST", "/catalog/request", to_provider)
        offers = {o["@id"]: o for d in cat["catalog"].get("dataset", []) for o in d["hasPolicy"]}
        step(f"{CONSUMER} read the catalog over DSP {cat['dspVersion']}: offers {', '.join(sorted(offers))}")
        result["certificate"] = await certificate_story(  # a registration certificate (connector/certs)
            http=http, call=call, provider=provider, provider_url=provider_url, consumer=consumer,
            consumer_url=consumer_url, to_provider=to_provider, asset_id="outpatient-visits-2025",
            data_file=data_root / "outpatient-visits-2025.csv", station_url=station_url, admin_token=admin_token,
            ch_key=ch_key, step=step, provider_name=PROVIDER, consumer_name=CONSUMER)

        async def negotiate(node: Node, url: str, label: str, body: dict, expect: str,
                            then: str | None = None) -> dict:
            started = time.perf_counter()
            neg = await call(node, url, "POST", "/negotiations", body)
            target = "FINALIZED,OFFERED,TERMINATED" if then else "FINALIZED,TERMINATED"
            neg = await call(node, url, "GET", f"/negotiations/{neg['id']}?waitFor={target}&timeout=20")
            if then == "accept" and neg["state"] == "OFFERED":
                step(f"{label}: {PROVIDER} answered with a counter-offer; it is accepted")
                await call(node, url, "POST", f"/negotiations/{neg['id']}/accept")
                neg = await call(node, url, "GET", f"/negotiations/{neg['id']}?waitFor=FINALIZED,TERMINATED&timeout=20")
            elif then == "terminate":
                await call(node, url, "POST", f"/negotiations/{neg['id']}/terminate",
                           {"reason": "the research project was cancelled"})
                neg = await call(node, url, "GET", f"/negotiations/{neg['id']}?waitFor=TERMINATED&timeout=20")
            provider_side = await call(provider, provider_url, "GET", "/negotiations?limit=1000")
            peer = next((n for n in provider_side if n["consumerPid"] == neg["consumerPid"]), None)
            if peer is not None and peer["state"] != expect:  # the last message may still be on its way
                peer = await call(provider, provider_url, "GET", f"/negotiations/{peer['id']}?waitFor={expect}&timeout=20")
            reason = " ".join((neg.get("termination") or {}).get("reason") or [])
            entry = {"label": label, "id": neg["id"], "state": neg["state"], "expected": expect,
                     "providerState": peer["state"] if peer else None, "providerProcess": peer["id"] if peer else None,
                     "dspVersion": neg["dspVersion"], "agreementId": (neg.get("agreement") or {}).get("@id"),
                     "reason": reason or None, "seconds": round(time.perf_counter() - started, 3)}
            result["negotiations"].append(entry)
            step(f"{label}: {neg['state']} (DSP {neg['dspVersion']})"
                 + (f", agreement {entry['agreementId']}" if entry["agreementId"] else "")
                 + (f"; reason: {reason}" if reason and expect == "TERMINATED" else ""))
            return entry

        gba_offer = offers["outpatient-offer"]
        agreed = await negotiate(consumer, consumer_url, f"{CONSUMER} asks for the outpatient records",
                                 {**to_provider, "datasetId": "outpatient-visits-2025",
                                  "offer": gba_offer, "dspVersion": "2025-1"}, "FINALIZED")
        await negotiate(refused, refused_url, f"{REFUSED} (SG) asks for the same records",
                        {**to_provider, "datasetId": "outpatient-visits-2025",
                         "offerId": "outpatient-offer"}, "TERMINATED")
        stats = offers["statistics-offer"]
        await negotiate(consumer, consumer_url, "statistics over DSP 2024-1",
                        {**to_provider, "datasetId": "district-statistics-2025",
                         "offerId": "statistics-offer", "dspVersion": "2024-1"}, "FINALIZED")
        await negotiate(consumer, consumer_url, "statistics, different terms asked",
                        {**to_provider, "datasetId": "district-statistics-2025",
                         "offer": {**stats, **NARROWER}}, "FINALIZED", then="accept")
        await negotiate(consumer, consumer_url, "statistics, withdrawn by the consumer",
                        {**to_provider, "datasetId": "district-statistics-2025",
                         "offer": {**stats, **NARROWER}}, "TERMINATED", then="terminate")

        # the cross-border record on both sides; the first transfer waits for the provider's PIPIA
        records = await call(provider, provider_url, "GET", "/compliance/records")
        record = next((r for r in records if r["agreementId"] == agreed["agreementId"]), None)
        step(f"cross-border record of agreement {str(agreed['agreementId'])[:22]}...: "
             + (f"sha256 {record['sha256'][:16]}..., categories {', '.join(record['record']['categories'])}, "
                f"purposes {', '.join(record['record']['purposes'])}" if record else "MISSING"))
        early = await call(consumer, consumer_url, "POST", "/transfers", {"agreementId": agreed["agreementId"]})
        early = await call(consumer, consumer_url, "GET", f"/transfers/{early['id']}?waitFor=TERMINATED&timeout=20")
        why = " ".join((early.get("termination") or {}).get("reason") or []) or str(early.get("error") or "")
        result["transfers"].append({"id": early["id"], "state": early["state"], "expected": "TERMINATED",
                                    "format": early["format"], "agreementId": early["agreementId"],
                                    "providerProcess": early.get("providerPid"), "reason": why})
        step(f"{CONSUMER} asked for the data before the PIPIA was recorded: {early['state']}; reason: {why[:160]}")
        today = time.strftime("%Y-%m-%d", time.gmtime())
        await call(provider, provider_url, "POST", f"/compliance/records/{agreed['agreementId']}/pipia",
                   {"reference": "PIPIA-PRMC-2025-017", "date": today})
        step(f"{PROVIDER} recorded its PIPIA (PIPIA-PRMC-2025-017, {today}); the record's new version is logged")

        # the transfer: pulled through the provider's data plane, decided on every access
        transfer = await call(consumer, consumer_url, "POST", "/transfers", {"agreementId": agreed["agreementId"]})
        transfer = await call(consumer, consumer_url, "GET", f"/transfers/{transfer['id']}?waitFor=STARTED&timeout=20")
        result["transfers"].append({"id": transfer["id"], "state": transfer["state"], "expected": "STARTED",
                                    "format": transfer["format"], "agreementId": transfer["agreementId"],
                                    "providerProcess": transfer["providerPid"]})
        step(f"{CONSUMER} started transfer {transfer['id'][:18]}... ({transfer['format']}): {transfer['state']}")
        status, body = await call(consumer, consumer_url, "GET",
                                  f"/transfers/{transfer['id']}/data?purpose=hks:MedicalResearch", raw=True)
        rows = list(csv.reader(io.StringIO(body.decode()))) if status == 200 else []
        clean = bool(rows) and "name" not in rows[0] and "phone" not in rows[0] and rows[1][0].startswith("ps_")
        result["accesses"].append({"label": "pull, declared purpose medical research", "status": status,
                                   "expected": 200, "records": max(0, len(rows) - 1),
                                   "columns": rows[0] if rows else [], "personalFieldsRemoved": clean})
        step(f"pulled with purpose medical research: HTTP {status}, {max(0, len(rows) - 1)} records, columns "
             + (", ".join(rows[0]) if rows else "-") + (f"; first id {rows[1][0][:14]}..." if clean else ""))
        status, body = await call(consumer, consumer_url, "GET", f"/transfers/{transfer['id']}/data", raw=True)
        reasons = json.loads(body).get("reasons", []) if status != 200 else []
        result["accesses"].append({"label": "pull without a declared purpose", "status": status, "expected": 403,
                                   "reasons": reasons})
        step(f"pulled without declaring a purpose: HTTP {status}; reason: {' '.join(reasons)[:160]}")

        # the GBA Standard Contract filing pack, for each party; then the policy follows the data
        aid = agreed["agreementId"]
        filings = {}
        for role, (node, url) in (("provider", (provider, provider_url)), ("consumer", (consumer, consumer_url))):
            pack = await call(node, url, "GET", f"/compliance/records/{aid}/filing")
            own = pack["filings"][0 if role == "provider" else 1]
            filings[role] = {"organisation": own["organisation"], "authority": (own.get("authority") or {}).get("en"),
                             "deadline": own.get("deadline"), "status": own.get("status")}
            step(f"filing pack for {own['organisation']}: file with {filings[role]['authority']} by "
                 f"{own.get('deadline')} (10 working days; {own.get('status')})")
        cohort_root = consumer.settings.dataplane_data_root
        cohort_root.mkdir(parents=True, exist_ok=True)
        (cohort_root / "outpatient-cohort.csv").write_text("cohort,patients,mean_hba1c\nE11,133,7.4\n")
        await call(consumer, consumer_url, "POST", "/assets", {
            "id": "outpatient-cohort", "title": "Cohort derived from Pearl River's outpatient visits",
            "contentType": "text/csv", "dataAddress": {"type": "file", "path": "outpatient-cohort.csv"},
            "properties": {"derivedFrom": [transfer["id"]]}})
        await call(consumer, consumer_url, "POST", "/policies", {"id": "open-onward", "policy": OPEN})
        status, body = await call(consumer, consumer_url, "POST", "/offers", {
            "id": "cohort-for-anyone", "assetIds": ["outpatient-cohort"], "accessPolicyId": "open-onward",
            "contractPolicyId": "open-onward"}, raw=True)
        why = json.loads(body).get("error", "") if status != 201 else ""
        result["compliance"] = {
            "record": bool(record), "filings": filings,
            "reoffer": {"label": f"{CONSUMER} re-offers the derived cohort to anyone (Merlion included)",
                        "status": status, "expected": 409, "reason": why}}
        result["compliance"]["ok"] = (bool(record) and status == 409
                                      and all(f["authority"] for f in filings.values()))
        step(f"{CONSUMER} tried to offer a cohort derived from the records to anyone, {REFUSED} included: "
             f"HTTP {status}; reason: {why[:200]}")
        # computation only: usable but not visible (connector/compute)
        result["computations"] = await computation_story(
            call=call, negotiate=negotiate, provider=provider, provider_url=provider_url, consumer=consumer,
            consumer_url=consumer_url, to_provider=to_provider, data_root=data_root, visits_csv=synthetic_visits(),
            step=step, provider_name=PROVIDER, consumer_name=CONSUMER)

        # the audit: every process, checked against the clearing house's public key only
        result["clearinghouse"] = await _audit(base, ch_url, ch_key, station_url, provider, consumer, refused, step)
        result["agreements"] = len(await call(consumer, consumer_url, "GET", "/agreements"))

    found_offer = any(r["offerId"] == "outpatient-offer" for r in result.get("registry", {}).get("found", []))
    result["ok"] = (found_offer
                    and all(n["state"] == n["expected"] and n["providerState"] == n["expected"]
                            for n in result["negotiations"])
                    and all(t["state"] == t["expected"] for t in result["transfers"])
                    and all(a["status"] == a["expected"] for a in result["accesses"])
                    and all(c["status"] == c["expected"] and not c.get("recordLeftProvider")
                            for c in result.get("computations", []))
                    and result["accesses"][0]["personalFieldsRemoved"]
                    and result["compliance"]["ok"]
                    and result["certificate"]["ok"]
                    and result["clearinghouse"]["ok"])
    return result


async def _audit(base: Path, ch_url: str, ch_key: str, station_url: str, provider: Node, consumer: Node,
                 refused: Node, step: Step) -> dict:
    from .clearinghouse.audit import audit_process
    from .clearinghouse.client import ClearingHouseClient
    from .clearinghouse.keys import StationParticipantKeys

    deadline = time.monotonic() + 30  # entries go out through the outbox: wait until all are logged
    while True:
        statuses = [await node.clearinghouse.status() for node in (provider, consumer, refused)]
        if all(s["pending"] == 0 for s in statuses) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    keys = StationParticipantKeys(station_url)
    audits = []
    try:
        # Each party audits its own processes, with its own token: the log shows a process only to its parties.
        for node in (provider, consumer, refused):
            processes = await node.negotiations.list(limit=1000) + await node.transfers.list(limit=1000)
            async with ClearingHouseClient(ch_url, ch_key, authorization=node.identity.outbound_authorization) as client:
                for process in processes:
                    report = await audit_process(client, process["id"], keys, emit=lambda _line: None)
                    audits.append({"auditor": node.settings.node.name, "process": process["id"],
                                   "entries": report.checked, "verdict": "ok" if report.ok else "FAILED",
                                   "firstBad": report.first_bad[1] if report.first_bad else None})
    finally:
        close = getattr(keys, "close", None)
        if close is not None:
            await close()
    total = sum(s["receipts"] for s in statuses)
    size = max(s["checkpointSize"] for s in statuses)
    ok = bool(audits) and all(a["verdict"] == "ok" and a["entries"] > 0 for a in audits) \
        and all(s["consistent"] and s["pending"] == 0 for s in statuses)
    step(f"the clearing house holds {size} entries; the three parties kept {total} verified receipts; "
         f"{sum(a['verdict'] == 'ok' for a in audits)} of {len(audits)} process audits pass")
    return {"url": ch_url, "entries": size, "receipts": total, "audits": audits, "ok": ok}


def run_demo(*, json_output: bool = False, keep: Path | None = None, console: bool = False) -> int:
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="connector-demo-"))
    if keep and base.exists() and any(base.iterdir()):
        print(f"error: {base} is not empty", file=sys.stderr)
        return 2
    base.mkdir(parents=True, exist_ok=True)
    try:
        result = asyncio.run(_demo(base, quiet=json_output, console=console))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # noqa: BLE001 - one clear line for people
        print(f"error: the demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    if json_output:
        print(json.dumps(result))
    else:
        print()
        print("Summary")
        for n in result["negotiations"]:
            mark = "ok " if n["state"] == n["expected"] and n["providerState"] == n["expected"] else "BAD"
            print(f"  {mark} {n['label']:<52} {n['state']:<10} (provider {n['providerState']})")
        for a in result["accesses"] + result.get("computations", []):
            print(f"  {'ok ' if a['status'] == a['expected'] else 'BAD'} {a['label']:<52} HTTP {a['status']}")
        comp = result.get("compliance", {})
        if comp:
            print(f"  {'ok ' if comp['reoffer']['status'] == 409 else 'BAD'} {comp['reoffer']['label'][:52]:<52} "
                  f"HTTP {comp['reoffer']['status']}")
            print(f"  {'ok ' if comp.get('ok') else 'BAD'} cross-border record and filing packs: "
                  + "; ".join(f"{f['organisation']} files with {f['authority']} by {f['deadline']}"
                              for f in comp["filings"].values()))
        found = result.get("registry", {}).get("found", [])
        print(f"  {'ok ' if found else 'BAD'} registry search found: "
              + (", ".join(f"{r['organisation']} / {r['offerId']}" for r in found) or "nothing"))
        ch = result.get("clearinghouse", {})
        print(f"  {'ok ' if ch.get('ok') else 'BAD'} clearing house: {ch.get('entries', 0)} entries, "
              f"{sum(a['verdict'] == 'ok' for a in ch.get('audits', []))}/{len(ch.get('audits', []))} audits pass")
        print("  every step reached its expected outcome" if result["ok"] else "  SOME STEPS FAILED")
    return 0 if result["ok"] else 1
