"""What token checks cost on a DSP endpoint: verified requests per second through
``POST /dsp/2025-1/catalog/request`` of a real node process in station mode (every request
carries the consumer's DAT for that node alone, checked as in production: cached verification, audience,
expiry, the revocation feed, the claimed-sender middleware), against the same endpoint of an identical node process whose
token check is switched off (a bench-only launcher in this file replaces the verifier; the
product has no such switch). Same station, same catalog, same client, same run; the two are
measured alternately and the best round of each is kept.

Also reported: first-use verifications per second (each request a token never seen before:
signature, claims, status at the station, persisted jti binding).

    python bench/tokens.py [--quick] [-n N] [-c C]

Last line: one JSON object (bench, value, unit, baseline, ratio, ...). Target: ratio >= 0.8.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.nodes import NodeProcess, StationProcess  # noqa: E402

CTX25 = ["https://w3id.org/dspace/2025/1/context.jsonld"]
BODY = json.dumps({"@context": CTX25, "@type": "CatalogRequestMessage"}).encode()


def serve_unchecked(directory: str) -> None:
    """Bench only: run a node whose DSP token check accepts anything as the bench's consumer."""
    import logging

    from connector import config as config_mod
    from connector.identity import Caller
    from connector.identity.dat import StationIdentity
    from connector.node import app as node_app

    class NoCheck:
        """Stands in for the DatVerifier wherever the node asks it (the DSP handler and the
        claimed-sender middleware alike): every token is the bench's consumer, unchecked."""

        def __init__(self, real) -> None:  # noqa: ANN001
            self.replay = real.replay

        async def verify(self, authorization, **_kw):  # noqa: ANN001, ANN003, ANN201
            return CALLER

    class Unchecked(StationIdentity):
        def __init__(self, client, verifier) -> None:  # noqa: ANN001
            super().__init__(client, NoCheck(verifier))

        async def verify(self, authorization):  # noqa: ANN001, ANN201
            return CALLER

    CALLER = Caller("bench-consumer", {"jurisdiction": "HK", "membership": ["hks:StationMember"],
                                       "securityProfile": "idsc:BASE_SECURITY_PROFILE"})
    settings = config_mod.load(directory)
    original = node_app.build_identity

    def build(settings):  # noqa: ANN001, ANN202
        real = original(settings)
        return Unchecked(real.client, real.verifier)

    node_app.build_identity = build
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(node_app.serve(settings))


async def load(url: str, tokens: list[str], n: int, c: int) -> float:
    """Requests/s for n catalog requests at concurrency c, cycling through `tokens`."""
    conn = aiohttp.TCPConnector(limit=c + 4)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as http:
        todo = iter(range(n))
        failures = []

        async def worker() -> None:
            for i in todo:
                headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}", "Content-Type": "application/json"}
                async with http.post(url, data=BODY, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        failures.append(resp.status)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"error: {len(failures)} requests failed (first status {failures[0]})")
    return n / elapsed


def real_token(station: StationProcess, node: NodeProcess, recipient: NodeProcess) -> str:
    """`node`'s DAT for `recipient` (its only audience), from the station's token endpoint."""
    import httpx

    from connector.identity.dat import client_assertion, token_request_form
    from connector.identity.keys import load_private_key

    key = load_private_key(node.directory / "keys" / "node.key")
    assertion = client_assertion(node.participant_id, key, station.url + "/token", now=time.time())
    form = token_request_form(assertion, recipient.participant_id)
    return httpx.post(station.url + "/token", data=form, timeout=10).json()["access_token"]


def fresh_tokens(station: StationProcess, node: NodeProcess, recipient: NodeProcess, count: int) -> list[str]:
    """Tokens as the station signs them, each with its own jti (minted with the station's key)."""
    import jwt

    from connector.identity import jose
    from connector.identity.keys import load_any_private_key

    key = load_any_private_key(sorted((station.directory / "keys").glob("token-*.key"))[-1])
    kid = jose.signing_jwk(key)["kid"]
    now = int(time.time())
    base = jwt.decode(real_token(station, node, recipient), options={"verify_signature": False})
    return [jwt.encode({**base, "iat": now, "nbf": now, "exp": now + 600, "jti": str(uuid.uuid4())}, key,
                       algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (well under 60 s)")
    parser.add_argument("-n", type=int, default=None, help="requests per round")
    parser.add_argument("-c", type=int, default=32, help="concurrency")
    parser.add_argument("--serve-unchecked", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_unchecked:
        serve_unchecked(args.serve_unchecked)
        return
    n = args.n or (1500 if args.quick else 10000)
    rounds = 3
    with tempfile.TemporaryDirectory(prefix="bench-tokens-") as tmp:
        base = Path(tmp)
        station = StationProcess(base / "station").start()
        checked = unchecked = None
        try:
            consumer = NodeProcess(base / "consumer", "Harbour University Research Lab", station=station)
            checked = NodeProcess(base / "checked", "Pearl River Medical Centre", station=station,
                                  jurisdiction="CN-GD-GZ").start()
            unchecked = NodeProcess(base / "unchecked", "Pearl River Medical Centre (checks off)", station=station,
                                    jurisdiction="CN-GD-GZ")
            start_unchecked(unchecked)
            for node in (checked, unchecked):
                node.publish("dataset-1", "offer-1")
            token = real_token(station, consumer, checked)  # bound to the checked node (the unchecked ignores it)
            on_url = f"{checked.url}/dsp/2025-1/catalog/request"
            off_url = f"{unchecked.url}/dsp/2025-1/catalog/request"
            asyncio.run(load(on_url, [token], 1000, args.c))  # warm up both
            asyncio.run(load(off_url, [token], 1000, args.c))
            on, off = [], []
            print(f"{rounds} rounds of {n} requests at concurrency {args.c}, checks on and off alternately ...",
                  file=sys.stderr, flush=True)
            for _ in range(rounds):
                on.append(asyncio.run(load(on_url, [token], n, args.c)))
                off.append(asyncio.run(load(off_url, [token], n, args.c)))
            fresh_n = 200 if args.quick else 1000
            first_use = asyncio.run(load(on_url, fresh_tokens(station, consumer, checked, fresh_n), fresh_n, 8))
        finally:
            for node in (checked, unchecked, station):
                if node is not None:
                    node.stop()
    value, baseline = max(on), max(off)
    result = {"bench": "tokens", "value": round(value, 1), "unit": "requests/s", "baseline": round(baseline, 1),
              "ratio": round(value / baseline, 3), "endpoint": "POST /dsp/2025-1/catalog/request",
              "concurrency": args.c, "requests_per_round": n, "rounds": rounds,
              "checked_rounds": [round(x, 1) for x in on], "unchecked_rounds": [round(x, 1) for x in off],
              "first_use_verifications_per_s": round(first_use, 1)}
    print(json.dumps(result))


def start_unchecked(node: NodeProcess) -> None:
    """NodeProcess.start, but through this file's bench-only launcher."""
    import os
    import subprocess

    import httpx

    log = open(node.log_path, "ab")
    node.proc = subprocess.Popen([sys.executable, __file__, "--serve-unchecked", str(node.directory)],
                                 stdout=subprocess.PIPE, stderr=log, env=dict(os.environ))
    assert node.proc.stdout is not None
    line = node.proc.stdout.readline().decode()
    if "listening on" not in line:
        raise SystemExit(f"error: the unchecked node did not start: {node.log_path.read_text()[-2000:]}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(node.url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("error: the unchecked node did not answer /health")


if __name__ == "__main__":
    main()
