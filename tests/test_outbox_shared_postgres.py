"""Two node processes on one PostgreSQL database share the outbox: every message is
sent exactly once, and messages of one process go out in order, also when the peer answers
more slowly than the configured lease lasts (a lease always outlives the requests sent under it)."""
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from support.nodes import NodeProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
PROCESSES, PER_PROCESS = 80, 8


class Sink:
    def __init__(self, delay: float = 0.002) -> None:
        self.received: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)  # widen the window in which two dispatchers could collide
                with sink.lock:
                    sink.received.append((self.headers["Idempotency-Key"], self.path,
                                          self.headers.get("X-Connector-Dispatcher", "")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # the default (5) drops connections under 128 concurrent senders
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


async def insert_messages(engine, sink_url: str, processes: int = PROCESSES, per_process: int = PER_PROCESS) -> None:
    now = time.time()
    async with engine.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO outbox (message_id, process_id, kind, url, recipient, body, status, attempts, next_attempt_at,"
            " created_at) VALUES (:m, :p, 'test', :u, 'urn:hks:participant:sink', '{}', 'pending', 0, :t, :t)"),
            [{"m": f"msg-{p}-{i}", "p": f"proc-{p}", "u": f"{sink_url}/sink/{p}/{i}", "t": now}
             for i in range(per_process) for p in range(processes)])


async def test_two_processes_never_send_the_same_message_twice(tmp_path, pg_url):
    sink = Sink()
    first = NodeProcess(tmp_path / "a", "Shared", database_url=pg_url)
    second = NodeProcess(tmp_path / "b", "Shared", database_url=pg_url, participant_id=first.participant_id)
    first.start()  # applies the migrations
    first.stop()
    engine = create_async_engine(pg_url)
    try:
        # Both run before the messages arrive: a dispatcher keeps the processes it claimed (it leases
        # each one's next message as it marks the one before sent), so both must be there to claim.
        first.start()
        second.start()
        await insert_messages(engine, sink.url)
        total = PROCESSES * PER_PROCESS
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                pending = (await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE status <> 'sent'"))).scalar()
            if pending == 0:
                break
            time.sleep(0.2)
        assert pending == 0
    finally:
        first.stop()
        second.stop()
        await engine.dispose()
        sink.server.shutdown()
    by_sender: dict[str, set[str]] = defaultdict(set)
    for key, _, sender in sink.received:
        by_sender[key].add(sender)
    both = [key for key, senders in by_sender.items() if len(senders) > 1]
    assert not both, f"dispatched by both processes: {both[:5]}"
    keys = Counter(key for key, _, _ in sink.received)
    assert len(keys) == total, f"{total - len(keys)} messages never arrived"
    duplicates = {k: n for k, n in keys.items() if n > 1}
    assert not duplicates, f"sent more than once: {list(duplicates)[:5]}"
    order = defaultdict(list)
    for _, path, _ in sink.received:
        _, _, proc, seq = path.split("/")
        order[proc].append(int(seq))
    assert all(seqs == sorted(seqs) for seqs in order.values()), "a process's messages went out of order"
    senders = Counter(sender for _, _, sender in sink.received)
    assert len(senders) == 2, f"both processes should have dispatched: {senders}"


async def wait_all_sent(engine, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        async with engine.connect() as conn:
            pending = (await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE status <> 'sent'"))).scalar()
        if pending == 0 or time.monotonic() > deadline:
            return pending
        time.sleep(0.2)


async def test_a_peer_slower_than_the_lease_gets_each_message_once(tmp_path, pg_url):
    """Every answer takes 2.5 s, the lease 1 s: without renewal the other replica would take the
    message over mid-send and deliver it again."""
    sink = Sink(delay=2.5)
    short_lease = {"CONNECTOR_OUTBOX_LEASE_SECONDS": "1"}
    first = NodeProcess(tmp_path / "a", "Shared", database_url=pg_url, env=short_lease)
    second = NodeProcess(tmp_path / "b", "Shared", database_url=pg_url, participant_id=first.participant_id,
                         env=short_lease)
    engine = create_async_engine(pg_url)
    processes, per_process = 12, 2
    try:
        first.start()
        second.start()
        await insert_messages(engine, sink.url, processes, per_process)
        assert await wait_all_sent(engine, 120) == 0
    finally:
        first.stop()
        second.stop()
        await engine.dispose()
        sink.server.shutdown()
    keys = Counter(key for key, _, _ in sink.received)
    duplicates = {k: n for k, n in keys.items() if n > 1}
    assert not duplicates, f"delivered more than once: {duplicates}"
    assert len(keys) == processes * per_process
    order = defaultdict(list)
    for _, path, _ in sink.received:
        _, _, proc, seq = path.split("/")
        order[proc].append(int(seq))
    assert all(seqs == sorted(seqs) for seqs in order.values()), "a process's messages went out of order"
