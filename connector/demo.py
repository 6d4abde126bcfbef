"""`connector demo`: the Hong Kong station authority and two participants on loopback, each
with its own SQLite file. The station starts first; the participants enrol through its admin
API (key and CSR made locally, certificate from the station CA) and from then on every DSP call
carries a Dynamic Attribute Token the receiver verifies. The provider publishes an asset, its
self-description reaches the station registry, the consumer finds the offer there and
negotiates usage contracts over DSP. No dev-mode secret anywhere."""
from __future__ import annotations

import asyncio
import json
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
from .identity.enrol import AdminTokenEnroller, init_enrolled_node
from .identity.search import search_registry
from .node.app import Node
from .station import config as station_config
from .station.app import Station

PROVIDER = "Pearl River Medical Centre"
CONSUMER = "Harbour University Research Lab"
JURISDICTIONS = {"provider": "CN-GD-GZ", "consumer": "HK"}
POLICY = {"permission": [{"action": "use"}]}
# A consumer who asks for different terms gets the provider's own offer back (a counter-offer).
NARROWER = {"permission": [{"action": "use", "constraint": [
    {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2030-01-01T00:00:00Z"}]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Step:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.n = 0

    def __call__(self, text: str) -> None:
        self.n += 1
        if not self.quiet:
            print(f"[{self.n}] {text}", flush=True)


async def _demo(base: Path, quiet: bool) -> dict[str, Any]:
    step = Step(quiet)
    runners: list[web.AppRunner] = []
    try:
        return await _demo_steps(base, step, runners)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def _demo_steps(base: Path, step: Step, runners: list[web.AppRunner]) -> dict[str, Any]:
    station_port = free_port()
    station_config.init_directory(base / "station", port=station_port)
    station_settings = station_config.load(base / "station")
    station_runner = web.AppRunner(Station(station_settings).make_app(), access_log=None)
    await station_runner.setup()
    runners.append(station_runner)
    await web.TCPSite(station_runner, "127.0.0.1", station_port).start()
    station_url = station_settings.issuer
    admin_token = station_config.read_admin_token(base / "station")
    step(f"the station authority is running at {station_url} (CA, token service, registry)")

    nodes: dict[str, tuple[Node, web.AppRunner, str]] = {}
    for key, name in (("provider", PROVIDER), ("consumer", CONSUMER)):
        port = free_port()
        directory = base / key
        _, enrolment = await init_enrolled_node(directory, name=name, station_url=station_url,
                                                enroller=AdminTokenEnroller(station_url, admin_token),
                                                jurisdiction=JURISDICTIONS[key], port=port)
        step(f"{name} enrolled at the station ({JURISDICTIONS[key]}): participant id {enrolment.participant_id[:23]}...")
        settings = config_mod.load(directory)
        node = Node(settings)
        runner = web.AppRunner(node.make_app(), access_log=None)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        nodes[key] = (node, runner, settings.node.public_url)
        step(f"{name} is running at {settings.node.public_url} (database {directory / 'node.db'})")

    provider, _, provider_url = nodes["provider"]
    consumer, _, consumer_url = nodes["consumer"]
    result: dict[str, Any] = {"participants": [], "negotiations": [], "ok": False}
    for key in ("provider", "consumer"):
        node, _, url = nodes[key]
        result["participants"].append({"role": key, "name": node.settings.node.name,
                                       "participantId": node.participant_id, "url": url})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async def call(node: Node, url: str, method: str, path: str, body: Any = None) -> Any:
            headers = {"X-Api-Key": node.settings.management_api_key}
            async with http.request(method, url + "/api/v1" + path, json=body, headers=headers) as resp:
                data = await resp.json()
                if resp.status >= 400:
                    raise RuntimeError(f"{method} {path}: {resp.status} {data}")
                return data

        await call(provider, provider_url, "POST", "/assets", {
            "id": "outpatient-visits-2025", "title": "De-identified outpatient visits 2025 (synthetic)",
            "contentType": "text/csv",
            "properties": {"theme": "health", "keywords": ["outpatient", "diabetes", "HbA1c"]}})
        await call(provider, provider_url, "POST", "/policies", {"id": "use", "policy": POLICY})
        await call(provider, provider_url, "POST", "/offers", {
            "id": "outpatient-offer", "assetIds": ["outpatient-visits-2025"],
            "accessPolicyId": "use", "contractPolicyId": "use"})
        step(f"{PROVIDER} published dataset outpatient-visits-2025 with offer outpatient-offer")

        # The catalog change re-registers the provider's signed self-description with the registry.
        deadline = time.monotonic() + 20
        while not (provider.self_description.status()["registered"]
                   and provider.self_description.status()["offers"] == 1):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the provider's self-description was not registered: "
                                   f"{provider.self_description.status()['lastError']}")
            await asyncio.sleep(0.05)
        found = (await search_registry(consumer.settings, {"jurisdiction": JURISDICTIONS["provider"],
                                                             "theme": "health"}))["results"]
        result["registry"] = {"query": {"jurisdiction": JURISDICTIONS["provider"], "theme": "health"},
                              "found": [{"organisation": r["organisation"], "offerId": r["offerId"],
                                         "counterPartyAddress": r["counterPartyAddress"]} for r in found]}
        step(f"{CONSUMER} searched the station registry (jurisdiction {JURISDICTIONS['provider']}, theme health): "
             + (", ".join(f"{r['organisation']} offers {r['offerId']}" for r in found) or "nothing found"))

        cat = await call(consumer, consumer_url, "POST", "/catalog/request", {"counterPartyAddress": provider_url})
        datasets = cat["catalog"].get("dataset", [])
        offer = datasets[0]["hasPolicy"][0]
        step(f"{CONSUMER} read the catalog over DSP {cat['dspVersion']}: {len(datasets)} dataset(s), offer {offer['@id']}")

        async def negotiate(label: str, body: dict, expect: str, then: str | None = None) -> None:
            started = time.perf_counter()
            neg = await call(consumer, consumer_url, "POST", "/negotiations", body)
            target = "FINALIZED,OFFERED,TERMINATED" if then else "FINALIZED,TERMINATED"
            neg = await call(consumer, consumer_url, "GET", f"/negotiations/{neg['id']}?waitFor={target}&timeout=20")
            if then == "accept" and neg["state"] == "OFFERED":
                step(f"{label}: {PROVIDER} answered with a counter-offer; {CONSUMER} accepts it")
                await call(consumer, consumer_url, "POST", f"/negotiations/{neg['id']}/accept")
                neg = await call(consumer, consumer_url, "GET", f"/negotiations/{neg['id']}?waitFor=FINALIZED,TERMINATED&timeout=20")
            elif then == "terminate":
                await call(consumer, consumer_url, "POST", f"/negotiations/{neg['id']}/terminate",
                           {"reason": "the research project was cancelled"})
                neg = await call(consumer, consumer_url, "GET", f"/negotiations/{neg['id']}?waitFor=TERMINATED&timeout=20")
            provider_side = await call(provider, provider_url, "GET", "/negotiations?limit=1000")
            peer = next((n for n in provider_side if n["consumerPid"] == neg["consumerPid"]), None)
            entry = {"label": label, "id": neg["id"], "state": neg["state"], "expected": expect,
                     "providerState": peer["state"] if peer else None, "dspVersion": neg["dspVersion"],
                     "agreementId": (neg.get("agreement") or {}).get("@id"),
                     "seconds": round(time.perf_counter() - started, 3)}
            result["negotiations"].append(entry)
            step(f"{label}: consumer {neg['state']}, provider {entry['providerState']} (DSP {neg['dspVersion']})"
                 + (f", agreement {entry['agreementId']}" if entry["agreementId"] else ""))

        await negotiate("contract over DSP 2025-1", {"counterPartyAddress": provider_url, "datasetId": "outpatient-visits-2025",
                                                     "offer": offer, "dspVersion": "2025-1"}, "FINALIZED")
        await negotiate("contract over DSP 2024-1", {"counterPartyAddress": provider_url, "datasetId": "outpatient-visits-2025",
                                                     "offerId": offer["@id"], "dspVersion": "2024-1"}, "FINALIZED")
        await negotiate("counter-offer accepted", {"counterPartyAddress": provider_url, "datasetId": "outpatient-visits-2025",
                                                   "offer": {**offer, **NARROWER}}, "FINALIZED", then="accept")
        await negotiate("terminated by the consumer", {"counterPartyAddress": provider_url, "datasetId": "outpatient-visits-2025",
                                                       "offer": {**offer, **NARROWER}}, "TERMINATED", then="terminate")
        agreements = await call(consumer, consumer_url, "GET", "/agreements")
        result["agreements"] = len(agreements)
    found_offer = any(r["offerId"] == "outpatient-offer" for r in result.get("registry", {}).get("found", []))
    result["ok"] = found_offer and all(n["state"] == n["expected"] and n["providerState"] == n["expected"]
                                       for n in result["negotiations"])
    return result


def run_demo(*, json_output: bool = False, keep: Path | None = None) -> int:
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="connector-demo-"))
    if keep and base.exists() and any(base.iterdir()):
        print(f"error: {base} is not empty", file=sys.stderr)
        return 2
    base.mkdir(parents=True, exist_ok=True)
    try:
        result = asyncio.run(_demo(base, quiet=json_output))
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
            print(f"  {mark} {n['label']:<28} consumer {n['state']:<10} provider {str(n['providerState']):<10} "
                  f"{n['seconds']:.2f}s")
        found = result.get("registry", {}).get("found", [])
        print(f"  {'ok ' if found else 'BAD'} registry search found: "
              + (", ".join(f"{r['organisation']} / {r['offerId']}" for r in found) or "nothing"))
        print(f"  agreements held by the consumer: {result.get('agreements', 0)}")
        print("  every step reached its expected outcome" if result["ok"] else "  SOME STEPS FAILED")
    return 0 if result["ok"] else 1
