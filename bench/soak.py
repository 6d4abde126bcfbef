"""Soak: nothing lost, nothing twice, nothing stuck, under repeated SIGKILLs and a long
clearing-house outage, between real processes (issue 11, must have 8).

Starts a clearing house (SQLite), a consumer node (SQLite) and a provider node (SQLite), or with
`--postgres --replicas 2` two provider replicas sharing one fresh PostgreSQL database
(CONNECTOR_TEST_POSTGRES_DSN; a new database per run, dropped at the end). Every DSP message
between consumer and provider goes through a small HTTP proxy in this process: the provider's
public URL is the proxy (round-robin over the replicas, the next replica tried on a refused
connection only, i.e. when nothing was delivered) and so is the consumer's (its callback
address), so the proxy sees every message in both directions. The nodes use the dev shared
secret (no station is needed) and log every protocol event at the clearing house.

The run: N negotiations at concurrency C through the consumer's management API (each with an
Idempotency-Key, retried across the consumer's crashes), every `--transfer-every`-th one followed
by a pull transfer (start, read the data, complete). Meanwhile, seeded by `random.Random(seed)`:
`--kills` times a node process (consumer or a provider replica) is SIGKILLed at a random point of
progress and restarted on the same files and port after a random pause, and once the clearing
house is SIGKILLed and kept down `--ch-down` seconds, longer than any retry step (the nodes' retry
step is capped at `--retry-max` seconds, which must be shorter). The seed fixes what is killed,
when (in negotiations finished) and for how long; the interleaving with the running messages is
the machine's.

Then it waits for quiescence (no outbox row pending on any node, no change in any negotiation or
transfer state for a few seconds; deadline `--settle`), reads every node's database and the
clearing house's log directly, and prints as its LAST line one JSON object:

- value = negotiations FINALIZED on both sides, baseline = N requested, ratio = value / N;
- disagreements: processes (negotiations and transfers, matched by consumerPid) whose state
  differs between consumer and provider, present on one side only, or with an agreement row on one
  side only (or different agreement ids); `disagreement_detail` says which; `stuck`: processes in
  the same state on both sides that is not an end state (FINALIZED, TERMINATED, COMPLETED);
- duplicates_at_peer: messages the peer accepted (2xx, answer forwarded to the sender) more than
  once. A message's identity is its Idempotency-Key header (the outbox row's message id: one per
  queued message, the same on every retry and on every replica; the SHA-256 of the body when the
  header is absent). Not counted, but reported as `resent_after_kill`: a second delivery that
  follows the SIGKILL of the dispatcher that made the first one before it could mark it sent (the
  first dispatcher never appears at the proxy again and a kill happened between the two
  deliveries) - at-least-once across a crash, which the peer answers idempotently;
- dead_letters: outbox rows given up (status dead) on any node; failed_messages: rows refused by
  the peer (status failed);
- missing_log_entries: (node, process, event) that should be in the clearing house's log but are
  not: every clearing-house entry a node queued (any status), and for every process FINALIZED on a
  node the four negotiation events it sent or received, looked up by leaf hash or by
  (process, event, submitter) in the log's own database; plus each node's on-demand receipt audit;
- rss_before_kb / rss_after_kb: the consumer's RSS after warm-up and at the end (after a restart
  of the consumer this is the newest process's);
- from the nodes' logs: `flush_failures_in_node_logs` (an outbox flush that raised),
  `delivered_after_takeover_in_node_logs`, and `node_log_errors` (the exception of every traceback,
  counted); `--keep DIR` copies every process's log there.

    python bench/soak.py [--quick] [--seed S] [--postgres --replicas 2] [-n N] [-c C] [--kills K] [--ch-down S]
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from connector.clearinghouse.testing import ClearingHouseProcess  # noqa: E402
from connector.ledger.entry import entry_leaf_hash  # noqa: E402
from connector.node.clearinghouse import _payload  # noqa: E402 - the entry inside the JWS a node queued
from support.nodes import SHARED_SECRET, NodeProcess, free_port  # noqa: E402

TERMINAL = {"FINALIZED", "TERMINATED"}
NEGOTIATION_EVENTS = ("negotiation.requested", "negotiation.agreed", "negotiation.verified", "negotiation.finalized")
DATA = "patient_id,age\n" + "".join(f"P{i},{20 + i % 60}\n" for i in range(200))


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ----------------------------------------------------------------------------- the proxy
@dataclass
class Delivery:
    key: str
    what: str
    dispatcher: str
    status: int
    started: float
    answered: float
    forwarded: bool


@dataclass
class Proxy:
    """An HTTP proxy in front of one or more backends (round-robin); records every DSP POST."""
    name: str
    backends: list[str]
    port: int = field(default_factory=free_port)
    deliveries: list[Delivery] = field(default_factory=list)
    dispatcher_seen: dict[str, float] = field(default_factory=dict)  # dispatcher -> last request time
    _rr: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> web.AppRunner:
        self._rr = itertools.cycle(range(len(self.backends)))
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                             connector=aiohttp.TCPConnector(limit=256))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=1024).start()
        return self.runner

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding", "connection")}
        is_dsp = request.method == "POST" and request.path.startswith("/dsp/")
        started = time.monotonic()
        dispatcher = request.headers.get("X-Connector-Dispatcher", "")
        if dispatcher:
            self.dispatcher_seen[dispatcher] = started
        first = next(self._rr)
        last_exc: Exception | None = None
        for i in range(len(self.backends)):
            backend = self.backends[(first + i) % len(self.backends)]
            try:
                async with self.session.request(request.method, backend + request.path_qs, data=body,
                                                headers=headers, allow_redirects=False) as resp:
                    payload = await resp.read()
                    status, ctype = resp.status, resp.headers.get("Content-Type")
                break
            except aiohttp.ClientConnectorError as exc:  # nothing was delivered: the next replica
                last_exc = exc
                continue
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # maybe delivered: the sender retries
                last_exc = exc
                return web.Response(status=502, text="proxy: upstream broke off")
        else:
            return web.Response(status=502, text=f"proxy: no backend ({type(last_exc).__name__})")
        forwarded = request.transport is not None and not request.transport.is_closing()
        if is_dsp:
            key = request.headers.get("Idempotency-Key") or "sha256:" + hashlib.sha256(body).hexdigest()
            self.deliveries.append(Delivery(key, _what(body), dispatcher, status, started, time.monotonic(), forwarded))
        out = web.Response(status=status, body=payload)
        if ctype:
            out.headers["Content-Type"] = ctype
        return out


def _what(body: bytes) -> str:
    try:
        doc = json.loads(body)
        kind = str(doc.get("@type", "?")).rsplit(":", 1)[-1]
        event = doc.get("eventType") or doc.get("dspace:eventType")
        return f"{kind}:{str(event).rsplit(':', 1)[-1]}" if event else kind
    except (ValueError, AttributeError):
        return "?"


def count_duplicates(proxies: list[Proxy], kill_times: list[float]) -> tuple[int, int, list[dict]]:
    """(duplicates, resent_after_kill, examples): see the module docstring."""
    by_key: dict[str, list[Delivery]] = defaultdict(list)
    last_seen: dict[str, float] = {}
    for proxy in proxies:
        for d in proxy.deliveries:
            if 200 <= d.status < 300 and d.forwarded:
                by_key[d.key].append(d)
        for dispatcher, t in proxy.dispatcher_seen.items():
            last_seen[dispatcher] = max(last_seen.get(dispatcher, 0.0), t)
    duplicates, resent, examples, resent_examples = 0, 0, [], []
    t0 = min((d.started for ds in by_key.values() for d in ds), default=0.0)
    for key, ds in by_key.items():
        if len(ds) < 2:
            continue
        ds.sort(key=lambda d: d.started)
        explained = True
        for earlier, later in zip(ds, ds[1:]):
            died = (earlier.dispatcher != later.dispatcher
                    and last_seen.get(earlier.dispatcher, 0.0) <= earlier.started + 1e-9 + _grace(earlier, later)
                    and any(earlier.answered - 1.0 <= t <= later.started for t in kill_times))
            explained = explained and died
        if explained:
            resent += 1
            if len(resent_examples) < 5:
                resent_examples.append({"what": ds[0].what, "deliveries": len(ds),
                                        "dispatchers": [d.dispatcher[:8] for d in ds],
                                        "at": [round(d.started - t0, 2) for d in ds],
                                        "kills": [round(t - t0, 2) for t in kill_times]})
        else:
            duplicates += 1
            if len(examples) < 5:
                examples.append({"key": key, "what": ds[0].what, "deliveries": len(ds),
                                 "dispatchers": [d.dispatcher[:8] for d in ds],
                                 "at": [round(d.started - t0, 2) for d in ds],
                                 "last_seen": [round(last_seen.get(d.dispatcher, 0.0) - t0, 2) for d in ds],
                                 "kills": [round(t - t0, 2) for t in kill_times]})
    return duplicates, resent, examples + [{"resent_after_kill": e} for e in resent_examples]


def _grace(earlier: Delivery, later: Delivery) -> float:
    # the dead dispatcher may have had other sends in flight when it was killed: its last request
    # may be a little after this delivery, but before the later (re)delivery
    return max(0.0, later.started - earlier.started)


# ----------------------------------------------------------------------------- the topology
class Topology:
    def __init__(self, base: Path, args: argparse.Namespace) -> None:
        self.base = base
        self.args = args
        self.pg_admin: str | None = None
        self.pg_name: str | None = None
        self.kill_times: list[float] = []
        self.kills_done: list[str] = []

    async def create(self) -> None:
        args = self.args
        retry = {"CONNECTOR_OUTBOX_RETRY_INITIAL_MS": "200",
                 "CONNECTOR_OUTBOX_RETRY_MAX_SECONDS": str(args.retry_max),
                 "CONNECTOR_OUTBOX_LEASE_SECONDS": str(args.lease)}
        ch_port = free_port()
        self.ch = ClearingHouseProcess(self.base / "ch", shared_secret=SHARED_SECRET, port=ch_port)
        ch_env = {"CONNECTOR_CLEARINGHOUSE_URL": f"http://127.0.0.1:{ch_port}",
                  "CONNECTOR_CLEARINGHOUSE_VERIFIER_KEY": self.ch.verifier_key,
                  "CONNECTOR_CLEARINGHOUSE_AUDIENCE": self.ch.audience,
                  "CONNECTOR_CLEARINGHOUSE_AUDIT_INTERVAL": "0"}
        database_url = None
        if args.postgres:
            database_url = await self._fresh_postgres()
        self.provider_proxy = Proxy("provider", [])
        self.consumer_proxy = Proxy("consumer", [])
        public = lambda proxy: {"CONNECTOR_NODE_PUBLIC_URL": proxy.url}  # noqa: E731
        first = NodeProcess(self.base / "provider-1", "SoakProvider", database_url=database_url,
                            env={**retry, **ch_env, **public(self.provider_proxy)})
        self.providers = [first]
        for i in range(2, args.replicas + 1):  # the same participant: its directory (keys, config) copied
            directory = self.base / f"provider-{i}"
            shutil.copytree(first.directory, directory)
            port = free_port()
            replica = NodeProcess(directory, "SoakProvider", init=False,
                                  env={**retry, **ch_env, **public(self.provider_proxy),
                                       "CONNECTOR_NODE_LISTEN_PORT": str(port)})
            replica.url = f"http://127.0.0.1:{port}"
            self.providers.append(replica)
        self.consumer = NodeProcess(self.base / "consumer", "SoakConsumer",
                                    env={**retry, **ch_env, **public(self.consumer_proxy)})
        for node in (first, self.consumer):
            import subprocess
            subprocess.run([sys.executable, "-m", "connector", "clearinghouse", "trust", str(self.ch.directory),
                            "--node", str(node.directory)], check=True, capture_output=True)
        (first.directory / "data").mkdir(exist_ok=True)
        (first.directory / "data" / "visits.csv").write_text(DATA)
        for replica in self.providers[1:]:
            (replica.directory / "data").mkdir(exist_ok=True)
            (replica.directory / "data" / "visits.csv").write_text(DATA)
        self.provider_proxy.backends = [p.url for p in self.providers]
        self.consumer_proxy.backends = [self.consumer.url]
        await self.provider_proxy.start()
        await self.consumer_proxy.start()
        # in parallel where they can be: the first provider applies the migrations before any replica starts
        await asyncio.gather(asyncio.to_thread(self.ch.start), asyncio.to_thread(first.start, None, 120.0),
                             asyncio.to_thread(self.consumer.start, None, 120.0))
        await asyncio.gather(*(asyncio.to_thread(replica.start, None, 120.0) for replica in self.providers[1:]))
        first.publish("dataset-1", "offer-1", data_address={"type": "file", "path": "visits.csv"})

    async def _fresh_postgres(self) -> str:
        import asyncpg

        dsn = os.environ.get("CONNECTOR_TEST_POSTGRES_DSN")
        if not dsn:
            raise SystemExit("--postgres needs CONNECTOR_TEST_POSTGRES_DSN, e.g. postgresql://postgres@127.0.0.1:5432/test")
        self.pg_admin = dsn
        self.pg_name = f"hks_soak_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(dsn, timeout=10)
        try:
            await admin.execute(f'CREATE DATABASE "{self.pg_name}"')
        finally:
            await admin.close()
        return dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + self.pg_name

    async def drop_postgres(self) -> None:
        if self.pg_name and self.pg_admin:
            import asyncpg
            admin = await asyncpg.connect(self.pg_admin, timeout=10)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            finally:
                await admin.close()

    @property
    def nodes(self) -> list[NodeProcess]:
        return [self.consumer, *self.providers]

    async def kill_and_restart(self, node: NodeProcess, pause: float) -> None:
        self.kill_times.append(time.monotonic())
        node.kill()
        self.kills_done.append(node.directory.name)
        log(f"SIGKILL {node.directory.name}; back in {pause:.1f} s")
        await asyncio.sleep(pause)
        await asyncio.to_thread(node.start, None, 60.0)

    async def ch_outage(self, seconds: float) -> None:
        log(f"clearing house SIGKILLed, down {seconds:.0f} s")
        self.ch.kill()
        await asyncio.sleep(seconds)
        await asyncio.to_thread(self.ch.start)
        log("clearing house back")

    def stop(self) -> None:
        for process in (self.consumer, *self.providers, self.ch):
            try:
                process.stop()
            except Exception as exc:  # noqa: BLE001 - stopping all is best effort
                log(f"stopping {process}: {exc}")


# ----------------------------------------------------------------------------- the load
class Driver:
    def __init__(self, top: Topology, args: argparse.Namespace, rng: random.Random) -> None:
        self.top = top
        self.args = args
        self.rng = rng
        self.finished = 0  # negotiations (with their transfer) done: the chaos schedule's clock
        self.outcomes: dict[str, int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)
        self.transfers = 0
        self.pulled = 0
        self.run_id = uuid.uuid4().hex[:8]
        self.progress = asyncio.Condition()

    async def call(self, http: aiohttp.ClientSession, method: str, path: str, *, body: Any = None,
                   headers: dict | None = None, deadline: float, raw: bool = False) -> Any:
        """A management call to the consumer, retried while the consumer is down or restarting."""
        consumer = self.top.consumer
        while True:
            try:
                async with http.request(method, consumer.url + "/api/v1" + path, json=body,
                                        headers={**consumer.headers(), **(headers or {})}) as resp:
                    data = await resp.read()
                    if resp.status >= 500:
                        raise RuntimeError(f"{resp.status}")
                    return resp.status, (data if raw else json.loads(data) if data else None)
            except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, ValueError) as exc:
                self.errors[f"{method} {path.split('/')[1]}: {type(exc).__name__} {exc}"[:80]] += 1
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{method} {path}") from None
                await asyncio.sleep(0.5)

    async def run(self, offer: dict) -> None:
        timeout = aiohttp.ClientTimeout(total=90)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=self.args.c + 8)) as http:
            todo = iter(range(self.args.n))

            async def worker() -> None:
                for i in todo:
                    try:
                        await self.one(http, i, offer)
                    except TimeoutError as exc:
                        self.outcomes["driver-timeout"] += 1
                        log(f"negotiation {i}: gave up waiting ({exc})")
                    async with self.progress:
                        self.finished += 1
                        self.progress.notify_all()

            await asyncio.gather(*(worker() for _ in range(self.args.c)))

    async def one(self, http: aiohttp.ClientSession, i: int, offer: dict) -> None:
        deadline = time.monotonic() + self.args.per_process_deadline
        provider = self.top.providers[0]
        body = {"counterPartyAddress": self.top.provider_proxy.url, "counterPartyId": provider.participant_id,
                "datasetId": "dataset-1", "offer": offer, "dspVersion": "2025-1"}
        key = {"Idempotency-Key": f"soak-{self.run_id}-neg-{i}"}
        while True:
            status, neg = await self.call(http, "POST", "/negotiations", body=body, headers=key, deadline=deadline)
            if status == 201 or status == 200:
                break
            self.errors[f"POST negotiations {status}: {str(neg)[:60]}"] += 1
            if time.monotonic() > deadline:
                raise TimeoutError("start")
            await asyncio.sleep(1.0)
        state = neg.get("state")
        while state not in TERMINAL:
            _, neg = await self.call(http, "GET", f"/negotiations/{neg['id']}?waitFor=FINALIZED,TERMINATED&timeout=20",
                                     deadline=deadline)
            state = neg["state"]
            if state not in TERMINAL and time.monotonic() > deadline:
                raise TimeoutError(f"negotiation {neg['id']} still {state}")
        self.outcomes[state] += 1
        if state == "FINALIZED" and i % self.args.transfer_every == 0:
            await self.transfer(http, i, neg, deadline)

    async def transfer(self, http: aiohttp.ClientSession, i: int, neg: dict, deadline: float) -> None:
        key = {"Idempotency-Key": f"soak-{self.run_id}-tr-{i}"}
        status, tr = await self.call(http, "POST", "/transfers", body={"agreementId": neg["agreement"]["@id"]},
                                     headers=key, deadline=deadline)
        if status not in (200, 201):
            self.errors[f"POST transfers {status}: {str(tr)[:60]}"] += 1
            return
        self.transfers += 1
        state = tr.get("state")
        while state not in ("STARTED", "TERMINATED", "COMPLETED"):
            _, tr = await self.call(http, "GET", f"/transfers/{tr['id']}?waitFor=STARTED,TERMINATED&timeout=20",
                                    deadline=deadline)
            state = tr["state"]
            if state not in ("STARTED", "TERMINATED") and time.monotonic() > deadline:
                raise TimeoutError(f"transfer {tr['id']} still {state}")
        if state != "STARTED":
            self.outcomes[f"transfer-{state}"] += 1
            return
        for _ in range(20):  # a pull through the consumer; the provider may be restarting
            status, data = await self.call(http, "GET", f"/transfers/{tr['id']}/data", deadline=deadline, raw=True)
            if status == 200 and data == DATA.encode():
                self.pulled += 1
                break
            self.errors[f"GET data {status}"] += 1
            await asyncio.sleep(0.5)
        status, _ = await self.call(http, "POST", f"/transfers/{tr['id']}/complete", deadline=deadline)
        if status != 200:
            self.errors[f"POST complete {status}"] += 1

    async def wait_finished(self, count: int) -> None:
        async with self.progress:
            await self.progress.wait_for(lambda: self.finished >= count)


async def chaos(top: Topology, driver: Driver, rng: random.Random, args: argparse.Namespace) -> None:
    """The seeded schedule: kill points (in negotiations finished), victims and pauses; the CH outage."""
    n = args.n
    points = sorted(rng.sample(range(max(1, n // 10), max(n // 10 + args.kills, (9 * n) // 10)), args.kills)) \
        if args.kills else []
    victims = [rng.choice(top.nodes) for _ in points]
    pauses = [rng.uniform(0.2, 3.0) for _ in points]
    ch_at = rng.randint(max(1, n // 5), max(1, (2 * n) // 5))
    log(f"schedule: kills at {points} of {[v.directory.name for v in victims]}; clearing house down at {ch_at}")

    async def outage() -> None:
        await driver.wait_finished(ch_at)
        await top.ch_outage(args.ch_down)

    locks = {node.directory.name: asyncio.Lock() for node in top.nodes}

    async def kill(point: int, victim: NodeProcess, pause: float) -> None:
        await driver.wait_finished(point)
        async with locks[victim.directory.name]:  # a node being restarted is killed once it is back
            await top.kill_and_restart(victim, pause)

    # each kill at its own point: a slow restart does not push the next kill past the load
    await asyncio.gather(outage(), *(kill(*k) for k in zip(points, victims, pauses)))


# ----------------------------------------------------------------------------- the checks
def engine_url(node: NodeProcess) -> str:
    return node.settings.database_url


async def read_rows(url: str, query: str) -> list[dict]:
    if url.startswith("sqlite"):  # read-only, beside the running node (WAL)
        db = sqlite3.connect(f"file:{url.split(':///', 1)[1]}?mode=ro", uri=True, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute(query)]
        finally:
            db.close()
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(sa.text(query)))]
    finally:
        await engine.dispose()


def distinct_databases(top: Topology) -> list[tuple[str, str]]:
    """(name, url) of every node database: the consumer's and the provider's (shared by replicas)."""
    return [("consumer", engine_url(top.consumer)), ("provider", engine_url(top.providers[0]))]


async def snapshot(top: Topology) -> tuple[int, tuple]:
    pending, states = 0, []
    for _, url in distinct_databases(top):
        pending += (await read_rows(url, "SELECT count(*) AS n FROM outbox WHERE status = 'pending'"))[0]["n"]
        states.append(tuple(sorted((r["state"], r["n"]) for r in await read_rows(
            url, "SELECT state, count(*) AS n FROM negotiations GROUP BY state"))))
        states.append(tuple(sorted((r["state"], r["n"]) for r in await read_rows(
            url, "SELECT state, count(*) AS n FROM transfers GROUP BY state"))))
    return pending, tuple(states)


async def quiesce(top: Topology, settle: float) -> bool:
    deadline = time.monotonic() + settle
    previous, calm_since = None, None
    while time.monotonic() < deadline:
        pending, states = await snapshot(top)
        if pending == 0 and states == previous:
            if calm_since is not None and time.monotonic() - calm_since >= 3:
                return True
            calm_since = calm_since or time.monotonic()
        else:
            calm_since = None
        previous = states
        await asyncio.sleep(1.0)
    log(f"no quiescence within {settle:.0f} s: {pending} pending")
    return False


async def disagreements(top: Topology) -> tuple[int, dict, int]:
    (_, curl), (_, purl) = distinct_databases(top)
    detail: dict[str, int] = defaultdict(int)
    finalized_both = 0
    count = 0
    for table in ("negotiations", "transfers"):
        agreement = ", a.id AS agreement_id" if table == "negotiations" else ""
        join = " LEFT JOIN agreements a ON a.negotiation_id = t.id" if table == "negotiations" else ""
        query = f"SELECT t.consumer_pid, t.state{agreement} FROM {table} t{join} WHERE t.role = '%s'"
        consumer = {r["consumer_pid"]: r for r in await read_rows(curl, query % "consumer")}
        provider = {r["consumer_pid"]: r for r in await read_rows(purl, query % "provider")}
        for pid in consumer.keys() | provider.keys():
            c, p = consumer.get(pid), provider.get(pid)
            problem = None
            if c is None or p is None:
                problem = f"{table}: on the {'provider' if c is None else 'consumer'} only"
            elif c["state"] != p["state"]:
                problem = f"{table}: consumer {c['state']} / provider {p['state']}"
            elif table == "negotiations" and c["agreement_id"] != p["agreement_id"]:
                problem = "negotiations: agreement row on one side only or different"
            if problem:
                count += 1
                detail[problem] += 1
            elif table == "negotiations" and c["state"] == "FINALIZED":
                finalized_both += 1
            elif c["state"] not in ("FINALIZED", "TERMINATED", "COMPLETED"):  # agreed, but not at an end
                detail[f"stuck: {table} {c['state']} on both sides"] += 1
    return count, dict(detail), finalized_both


async def outbox_status(top: Topology) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for name, url in distinct_databases(top):
        for r in await read_rows(url, "SELECT status, count(*) AS n FROM outbox GROUP BY status"):
            totals[r["status"]] += r["n"]
    return dict(totals)


async def missing_log_entries(top: Topology) -> tuple[int, dict]:
    db = sqlite3.connect(f"file:{top.ch.sqlite_path}?mode=ro", uri=True, timeout=30)
    try:
        leaves = {bytes(h) for (h,) in db.execute("SELECT leaf_hash FROM ch_entries")}
        logged = set(db.execute("SELECT process_id, event, submitter FROM ch_entries"))
    finally:
        db.close()
    missing: set[tuple] = set()
    detail: dict[str, int] = defaultdict(int)
    for name, url in distinct_databases(top):
        me = top.consumer.participant_id if name == "consumer" else top.providers[0].participant_id
        for r in await read_rows(url, "SELECT body, status FROM outbox WHERE kind LIKE 'ClearingHouseEntry:%'"):
            body = r["body"] if isinstance(r["body"], dict) else json.loads(r["body"])
            payload = json.loads(_payload(body["jws"]))
            if entry_leaf_hash(payload) not in leaves:
                missing.add((name, payload["processId"], payload["event"]))
                detail[f"{name}: queued, {r['status']}, not in the log"] += 1
        for r in await read_rows(url, "SELECT id FROM negotiations WHERE state = 'FINALIZED'"):
            for event in NEGOTIATION_EVENTS:
                if (r["id"], event, me) not in logged and (name, r["id"], event) not in missing:
                    missing.add((name, r["id"], event))
                    detail[f"{name}: {event} of a FINALIZED negotiation never queued"] += 1
    return len(missing), dict(detail)


async def audits(top: Topology) -> dict[str, Any]:
    out = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        for node in (top.consumer, top.providers[0]):
            async with http.post(node.url + "/api/v1/clearinghouse/audit", headers=node.headers()) as resp:
                body = await resp.json()
            out[node.directory.name] = {"status": resp.status, "ok": body.get("ok"), "checked": body.get("checked")}
            if resp.status != 200 or body.get("ok") is not True:
                out[node.directory.name]["answer"] = str(body)[:300]
    return out


async def dead_letters_api(top: Topology) -> int:
    total = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        for node in (top.consumer, top.providers[0]):
            async with http.get(node.url + "/api/v1/dead-letters", headers=node.headers()) as resp:
                body = await resp.json()
            total += len(body)
    return total


def _errors(texts: list[str]) -> dict[str, int]:
    """The last line of every traceback in the node logs (the exception), counted."""
    found: dict[str, int] = defaultdict(int)
    for text in texts:
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                j = i + 1
                while j < len(lines) and (lines[j].startswith(" ") or lines[j].startswith("Traceback")
                                          or lines[j].startswith("During handling") or not lines[j].strip()):
                    j += 1
                if j < len(lines):
                    found[lines[j][:160]] += 1
    return dict(sorted(found.items(), key=lambda kv: -kv[1])[:8])


# ----------------------------------------------------------------------------- main
async def soak(args: argparse.Namespace, base: Path) -> dict:
    rng = random.Random(args.seed)
    top = Topology(base, args)
    started = time.monotonic()
    try:
        await top.create()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            async with http.post(top.consumer.url + "/api/v1/catalog/request", headers=top.consumer.headers(),
                                 json={"counterPartyAddress": top.provider_proxy.url,
                                       "counterPartyId": top.providers[0].participant_id}) as resp:
                offer = (await resp.json())["catalog"]["dataset"][0]["hasPolicy"][0]
        assert top.consumer.proc is not None
        rss_before = rss_kb(top.consumer.proc.pid)
        driver = Driver(top, args, rng)
        log(f"{args.n} negotiations at concurrency {args.c}, {args.kills} kills, clearing house down {args.ch_down} s, "
            f"{'PostgreSQL, %d provider replicas' % args.replicas if args.postgres else 'SQLite'}")
        chaos_task = asyncio.create_task(chaos(top, driver, rng, args))
        await driver.run(offer)
        log(f"load done: {dict(driver.outcomes)}; waiting for the outage and kills to end")
        await chaos_task
        settled = await quiesce(top, args.settle)
        rss_after = rss_kb(top.consumer.proc.pid)
        count, detail, finalized_both = await disagreements(top)
        stuck = sum(v for k, v in detail.items() if k.startswith("stuck:"))
        duplicates, resent, examples = count_duplicates([top.provider_proxy, top.consumer_proxy], top.kill_times)
        boxes = await outbox_status(top)
        missing, missing_detail = await missing_log_entries(top)
        audit = await audits(top)
        dead_api = await dead_letters_api(top)
        deliveries = sum(len(p.deliveries) for p in (top.provider_proxy, top.consumer_proxy))
        node_logs = [node.log_path.read_text(errors="replace") for node in top.nodes if node.log_path.exists()]
        takeovers = sum(text.count("was delivered after its lease was taken over") for text in node_logs)
        flush_failures = sum(text.count("outbox flush failed") for text in node_logs)
        errors = _errors(node_logs)
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for node in (*top.nodes, top.ch):
                if node.log_path.exists():
                    shutil.copy(node.log_path, keep / f"{node.directory.name}.log")
        return {
            "bench": "soak", "value": finalized_both, "unit": "negotiations FINALIZED on both sides",
            "baseline": args.n, "baseline_unit": "negotiations requested", "ratio": round(finalized_both / args.n, 4),
            "finalized_both_sides": finalized_both, "disagreements": count, "duplicates_at_peer": duplicates,
            "dead_letters": boxes.get("dead", 0), "missing_log_entries": missing,
            "rss_before_kb": rss_before, "rss_after_kb": rss_after, "seed": args.seed, "kills": len(top.kills_done),
            "ch_down_s": args.ch_down, "elapsed_s": round(time.monotonic() - started, 1),
            "backend": "postgres" if args.postgres else "sqlite", "replicas": args.replicas, "n": args.n, "c": args.c,
            "quiescent": settled, "stuck": stuck, "resent_after_kill": resent, "failed_messages": boxes.get("failed", 0),
            "dead_letters_api": dead_api, "outbox": boxes, "outcomes": dict(driver.outcomes),
            "transfers": driver.transfers, "pulled": driver.pulled, "dsp_deliveries_at_proxy": deliveries,
            "delivered_after_takeover_in_node_logs": takeovers,
            "flush_failures_in_node_logs": flush_failures, "node_log_errors": errors,
            "killed": top.kills_done, "retry_max_s": args.retry_max, "lease_s": args.lease, "receipt_audit": audit,
            "disagreement_detail": detail, "missing_detail": missing_detail, "duplicate_examples": examples,
            "driver_retries": sum(driver.errors.values()),
        }
    finally:
        top.stop()
        for proxy in (top.provider_proxy, top.consumer_proxy):
            if getattr(proxy, "runner", None) is not None:
                await proxy.stop()
        await top.drop_postgres()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run: 40 negotiations, 3 kills, 12 s outage")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", action="store_true", help="providers on one fresh PostgreSQL database")
    parser.add_argument("--replicas", type=int, default=None, help="provider replicas (PostgreSQL only; default 2 there)")
    parser.add_argument("-n", type=int, default=None, help="negotiations (default 500, --quick 40)")
    parser.add_argument("-c", type=int, default=16, help="concurrency")
    parser.add_argument("--kills", type=int, default=None, help="SIGKILLs of a node (default 8, --quick 3)")
    parser.add_argument("--ch-down", type=float, default=None, help="clearing-house outage in s (default 90, --quick 12)")
    parser.add_argument("--retry-max", type=int, default=None,
                        help="the nodes' retry step cap in s, shorter than the outage (default 20, --quick 4)")
    parser.add_argument("--lease", type=int, default=None,
                        help="the outbox lease in s (default 30, --quick 5: a killed replica's leased messages wait for it)")
    parser.add_argument("--keep", default=None, help="copy the processes' logs into this directory")
    parser.add_argument("--transfer-every", type=int, default=4, help="a transfer after every k-th negotiation")
    parser.add_argument("--settle", type=float, default=None, help="quiescence deadline in s (default 300, --quick 60)")
    parser.add_argument("--per-process-deadline", type=float, default=None,
                        help="how long the driver waits for one negotiation (default 600, --quick 90)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.n = args.n or (40 if quick else 500)
    args.kills = args.kills if args.kills is not None else (3 if quick else 8)
    args.ch_down = args.ch_down if args.ch_down is not None else (12.0 if quick else 90.0)
    args.retry_max = args.retry_max or (4 if quick else 20)
    args.settle = args.settle or (60.0 if quick else 300.0)
    args.per_process_deadline = args.per_process_deadline or (90.0 if quick else 600.0)
    args.lease = args.lease or (5 if quick else 30)
    args.replicas = args.replicas or (2 if args.postgres else 1)
    if args.replicas > 1 and not args.postgres:
        parser.error("replicas share one database: --replicas > 1 needs --postgres")
    if args.ch_down and args.ch_down <= args.retry_max:
        parser.error("--ch-down must be longer than --retry-max (the outage outlasts every retry step)")
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        result = asyncio.run(soak(args, Path(tmp)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
