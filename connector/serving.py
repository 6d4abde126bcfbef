"""What the node, the station and the clearing house share to run as a process: bind an
aiohttp application, print the "listening on URL" line the CLI and tests wait for, and
turn Ctrl-C, SIGTERM and start-up errors into an exit code (both signals stop cleanly: the
application's cleanup runs, so a node's SQLite WAL is checkpointed and emptied)."""
from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
from typing import Coroutine

from aiohttp import web

from . import telemetry as _telemetry


def undecodable_header(request: web.Request) -> str | None:
    """The name of the first request header whose value is not valid UTF-8, or None.

    aiohttp keeps such bytes as lone surrogates (surrogateescape); any later `.encode()` of
    the value (a token or API key comparison) would fail with a 500. Every service's error
    middleware asks this first and answers 400 in its own error format instead."""
    for name, value in request.headers.items():
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return name.encode("ascii", "replace").decode()[:100]
    return None


def malformed_header_reason(name: str) -> str:
    return f"the {name} header is not valid UTF-8 (malformed header)"


async def listen(app: web.Application, host: str, port: int, *,
                 ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, str]:
    """Start serving `app`; returns the runner (to clean up) and the URL actually bound."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024, ssl_context=ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, f"http{'s' if ssl_context else ''}://{host}:{bound}"


async def serve_forever(runner: web.AppRunner) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run_process(main: Coroutine, *, startup_errors: tuple[type[BaseException], ...] = (),
                telemetry: tuple[str, "_telemetry.TelemetrySettings"] | None = None) -> int:
    """Run a service's main coroutine with logging on stderr: 0 after Ctrl-C, 2 (and one
    line) for a start-up error. `telemetry`: (service name, its [telemetry] settings)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if telemetry is not None:
        _telemetry.configure(*telemetry)
    try:
        asyncio.run(_until_terminated(main))
    except KeyboardInterrupt:
        return 0
    except startup_errors as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


async def _until_terminated(main: Coroutine) -> None:
    """Run `main`; SIGTERM (a service manager's stop, NodeProcess.stop) cancels it like Ctrl-C, so
    its `finally` blocks and the application's cleanup run instead of the process dying at once."""
    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def on_term() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, on_term)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
        pass
    try:
        await main
    except asyncio.CancelledError:
        if not terminated:
            raise
    finally:
        try:
            loop.remove_signal_handler(signal.SIGTERM)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
