"""JSON-LD expansion and compaction (the slow path) in worker processes, under a time limit.

PyLD is pure Python: a hostile body keeps it busy for as long as its inline contexts make
it, and in the event loop that stalls every other request. Here the work runs in a small
pool of worker processes, started when the first slow-path body arrives. Each task has a
time limit; a worker that runs over it is killed and a fresh one is started for the next
task, so a hostile body cannot occupy a worker beyond the limit. A body waits for a free
worker no longer than the time limit either (then 503: retry later).

The fast path (a known DSP context) never comes here.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

import orjson

from ..protocol.bounds import JsonLdLimits
from ..errors import NodeError

log = logging.getLogger("connector.jsonld")

_OK, _UNKNOWN_CONTEXT, _FAILED, _OVER_LIMIT, _READY = b"O", b"U", b"F", b"L", b"R"
START_TIMEOUT = 60.0  # seconds a new worker may take to import PyLD and load the contexts


def loads(raw: bytes) -> Any:
    """orjson.loads with the garbage collector paused. A parsed JSON document has no
    reference cycles, but its many new containers trigger collections that walk every
    object of the process: a 1 MB body took 290 ms to parse in a node, 30 ms without."""
    if not gc.isenabled():
        return orjson.loads(raw)
    gc.disable()
    try:
        return orjson.loads(raw)
    finally:
        gc.enable()


class PoolError(NodeError):
    """The task was not done: ``kind`` is "timeout", "busy" or "unavailable"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class UnknownContextError(NodeError):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class CanonicalizeError(NodeError):
    """PyLD or the DSP checks refused the document (the message says why)."""


class OverLimitError(NodeError):
    """The document is over the nesting-depth or node-count limit (the message names it)."""


class _MemoryCap:  # pragma: no cover - runs in the worker process
    """While JSON-LD processes one body, the worker's address space may grow by at most `mib`
    beyond what it holds with the body parsed: a body whose expansion would take more gets
    MemoryError in the worker, never the machine's memory. The parse itself is bounded by the
    size and node-count limits. POSIX only (resource); elsewhere only the time limit applies."""

    def __init__(self, mib: int) -> None:
        self.extra = mib * 1024 * 1024
        try:
            import resource
        except ImportError:
            self.resource = None
            return
        self.resource = resource
        self.soft, self.hard = resource.getrlimit(resource.RLIMIT_AS)
        self.page = resource.getpagesize()

    def __enter__(self) -> None:
        if self.resource is None:
            return
        try:
            with open("/proc/self/statm") as fh:
                held = int(fh.read().split()[0]) * self.page
        except (OSError, ValueError, IndexError):
            return
        cap = held + self.extra
        if self.hard != self.resource.RLIM_INFINITY:
            cap = min(cap, self.hard)
        self.resource.setrlimit(self.resource.RLIMIT_AS, (cap, self.hard))

    def __exit__(self, *exc: object) -> None:
        if self.resource is not None:  # raising the soft limit back up to the hard one is always allowed
            self.resource.setrlimit(self.resource.RLIMIT_AS, (self.soft, self.hard))


def _worker(conn: Connection, limits: JsonLdLimits) -> None:  # pragma: no cover - runs in the worker process
    from .. import vocab
    from ..protocol.bounds import JsonLdLimitExceeded, check_jsonld_shape
    from ..protocol.jsonld import JsonLdProcessor, UnknownContext

    processor = JsonLdProcessor(vocab.load_contexts())
    capped = _MemoryCap(limits.memory_mib)
    conn.send_bytes(_READY)
    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            newline = msg.index(b"\n")
            version, raw = msg[:newline], memoryview(msg)[newline + 1:]
            doc = orjson.loads(raw)
            check_jsonld_shape(doc, limits)  # before PyLD sees it (here: its cost is off the event loop too)
            with capped:
                out = processor.canonicalize(doc, version.decode())
            answer = _OK + orjson.dumps(out)
        except JsonLdLimitExceeded as exc:
            answer = _OVER_LIMIT + exc.reason.encode()
        except UnknownContext as exc:
            answer = _UNKNOWN_CONTEXT + str(exc.url)[:1000].encode("utf-8", "replace")
        except RecursionError:
            answer = _FAILED + b"the document is nested too deeply"
        except MemoryError:  # under the address-space cap: what it allocated is freed as the frames go
            doc = out = raw = None
            gc.collect()
            answer = _OVER_LIMIT + f"processing it needs more than {limits.memory_mib} MiB (jsonld_memory_mib)".encode()
        except Exception as exc:  # noqa: BLE001 - PyLD raises its own error types; all are the document's
            answer = _FAILED + str(exc)[:1000].encode("utf-8", "replace")
        conn.send_bytes(answer)


class _Worker:
    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process, self.conn = process, conn

    async def call(self, payload: bytes | None, timeout: float) -> bytes:
        """Send `payload` (None: only wait for the ready message) and wait for one answer."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()

        def readable() -> None:
            loop.remove_reader(self.conn.fileno())
            try:
                answer = self.conn.recv_bytes()
            except (EOFError, OSError) as exc:
                if not fut.done():
                    fut.set_exception(PoolError("unavailable", f"the JSON-LD worker stopped ({type(exc).__name__})"))
                return
            if not fut.done():
                fut.set_result(answer)

        loop.add_reader(self.conn.fileno(), readable)
        try:
            if payload is not None:
                self.conn.send_bytes(payload)  # the worker is idle and reading: this does not wait long
            return await asyncio.wait_for(fut, timeout)
        except BaseException:
            loop.remove_reader(self.conn.fileno())
            raise

    async def kill(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        if self.process.is_alive():
            self.process.kill()
        await asyncio.to_thread(self.process.join, 5)


class JsonLdPool:
    """Up to ``workers`` worker processes; :meth:`canonicalize` runs one task on one of them."""

    _target = staticmethod(_worker)

    def __init__(self, limits: JsonLdLimits, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("the JSON-LD pool needs at least one worker")
        self.limits, self.workers, self.timeout = limits, workers, limits.timeout
        self._idle: list[_Worker] = []
        self._slots: asyncio.Semaphore | None = None
        self._all: set[_Worker] = set()
        self.replaced = 0  # workers killed over the time limit (for tests and the log)

    async def _spawn(self) -> _Worker:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe(duplex=True)
        process = ctx.Process(target=self._target, args=(theirs, self.limits), daemon=True, name="jsonld-worker")
        await asyncio.to_thread(process.start)
        theirs.close()
        worker = _Worker(process, ours)
        self._all.add(worker)
        try:
            ready = await worker.call(None, START_TIMEOUT)
        except BaseException as exc:
            self._all.discard(worker)
            await worker.kill()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise PoolError("unavailable", "the JSON-LD worker did not start") from None
        if ready != _READY:
            self._all.discard(worker)
            await worker.kill()
            raise PoolError("unavailable", "the JSON-LD worker did not start")
        return worker

    async def canonicalize(self, raw: bytes, version: str) -> Any:
        """The canonical compact form (parsed) of the DSP message whose body is `raw`.

        Raises OverLimitError, UnknownContextError, CanonicalizeError (the document's fault) or
        PoolError."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        try:
            await asyncio.wait_for(self._slots.acquire(), self.timeout)
        except TimeoutError:
            raise PoolError("busy", "every JSON-LD worker is busy") from None
        worker: _Worker | None = None
        try:
            worker = self._idle.pop() if self._idle else await self._spawn()
            try:
                answer = await worker.call(version.encode() + b"\n" + raw, self.timeout)
            except TimeoutError:
                log.warning("a JSON-LD body ran over the %g s limit; its worker is replaced", self.timeout)
                self.replaced += 1
                raise PoolError("timeout", "over the time limit") from None
            else:  # (any other exception: the worker stopped, or we were cancelled mid-task; it goes)
                self._idle.append(worker)
                worker = None
        finally:
            if worker is not None:
                self._all.discard(worker)
                await worker.kill()
            self._slots.release()
        kind, body = answer[:1], answer[1:]
        if kind == _OK:
            return loads(body)
        if kind == _OVER_LIMIT:
            raise OverLimitError(body.decode("utf-8", "replace"))
        if kind == _UNKNOWN_CONTEXT:
            raise UnknownContextError(body.decode("utf-8", "replace"))
        raise CanonicalizeError(body.decode("utf-8", "replace"))

    async def close(self) -> None:
        workers, self._idle = list(self._all), []
        self._all.clear()
        await asyncio.gather(*(w.kill() for w in workers), return_exceptions=True)
