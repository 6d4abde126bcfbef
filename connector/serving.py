"""What the node, the station and the clearing house share to run as a process: bind an
aiohttp application, print the "listening on URL" line the CLI and tests wait for, turn
Ctrl-C, SIGTERM and start-up errors into an exit code (both signals stop cleanly: the
application's cleanup runs, so a node's SQLite WAL is checkpointed and emptied), and the one
error middleware that turns every exception into its HTTP answer (connector/errors.py)."""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
import ssl
import sys
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

import orjson
from aiohttp import web

from . import telemetry as _telemetry
from .errors import ConnectorError, StorageError, clip, status_code


def undecodable_header(request: web.Request) -> str | None:
    """The name of the first request header whose value is not valid UTF-8, or None.

    aiohttp keeps such bytes as lone surrogates (surrogateescape); any later `.encode()` of
    the value (a token or API key comparison) would fail with a 500. The error middleware asks
    this first and answers 400 (MalformedHeader) instead."""
    for name, value in request.headers.items():
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return name.encode("ascii", "replace").decode()[:100]
    return None


def malformed_header_reason(name: str) -> str:
    return f"the {name} header is not valid UTF-8 (malformed header)"


class MalformedHeader(ConnectorError):
    status, code = 400, "MalformedHeader"


class RequestTooLarge(ConnectorError):  # aiohttp's 413 for a body over client_max_size
    status, code = 413, "TooLarge"


class HttpRefusal(ConnectorError):
    """aiohttp's own 4xx/5xx (no such route, method not allowed), in our body shape."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.code = status, status_code(status)


class InternalError(ConnectorError):
    """What an unexpected exception becomes: nothing of it goes into the body (it is logged)."""

    code = "Internal"

    def __init__(self) -> None:
        super().__init__("internal error")


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def error_body(exc: ConnectorError) -> dict[str, Any]:
    """The error body of the node's management API, the station and the clearing house."""
    return {"error": clip(exc.public_message()), "code": exc.error_code(), "status": exc.status, **exc.extra}


@dataclass(frozen=True)
class ErrorAnswers:
    """What differs between the services' error answers (everything else is connector/errors.py).

    ``body_limit``: the request body limit, named in a 413; ``over_limit_note``: what the 413 adds
    (the clearing house: nothing was appended); ``bearer_challenge``: a 401 carries
    ``WWW-Authenticate: Bearer`` (the station's token endpoint and registry); ``unavailable``:
    library exceptions that mean our database is down, answered 503 with ``unavailable_message``
    and ``unavailable_code``; ``alternate``: an API with its own body shape for some paths (the
    node's DSP routes) returns the response for an error there, None elsewhere."""

    body_limit: int
    over_limit_note: str = ""
    bearer_challenge: bool = False
    unavailable: tuple[type[BaseException], ...] = ()
    unavailable_message: str = "the service's database is unavailable"
    unavailable_code: str = "StorageUnavailable"
    alternate: Callable[[web.Request, ConnectorError], web.StreamResponse | None] | None = None


def error_middleware(answers: ErrorAnswers, log: logging.Logger):  # noqa: ANN201
    """The one error middleware of the node, the station and the clearing house (and the consoles
    mounted in them): a ConnectorError becomes its status and body (connector/errors.py), an
    aiohttp HTTP error the same body shape, anything else a 500 that says nothing of it."""

    def answer(request: web.Request, exc: ConnectorError, *, alternate: bool = True) -> web.StreamResponse:
        if exc.status >= 500:
            log.warning("%s %s -> %d %s: %s%s", request.method, request.path, exc.status, exc.error_code(), exc,
                        f" ({exc.detail})" if exc.detail else "")
        elif exc.status in (401, 403) or exc.detail:
            log.info("%s %s refused (%d %s): %s%s", request.method, request.path, exc.status, exc.error_code(), exc,
                     f" ({exc.detail})" if exc.detail else "")
        if alternate and answers.alternate is not None:
            special = answers.alternate(request, exc)
            if special is not None:
                return special
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} \
            if exc.status == 401 and answers.bearer_challenge else None
        return web.json_response(error_body(exc), status=exc.status, headers=headers, dumps=_dumps)

    @web.middleware
    async def errors(request: web.Request, handler):  # noqa: ANN001, ANN202
        bad = undecodable_header(request)
        if bad is not None:
            return answer(request, MalformedHeader(malformed_header_reason(bad)))
        try:
            return await handler(request)
        except ConnectorError as exc:
            return answer(request, exc)
        except web.HTTPException as exc:
            if exc.status == 413:
                return answer(request, RequestTooLarge(f"the request body is over the limit of {answers.body_limit} "
                                                       f"bytes{answers.over_limit_note}"), alternate=False)
            if exc.status >= 400 and not exc.text.startswith("{"):  # a JSON body: already in our shape
                return answer(request, HttpRefusal(exc.status, exc.reason), alternate=False)
            raise
        except answers.unavailable as exc:
            log.error("database unavailable on %s %s: %s", request.method, request.path, type(exc).__name__)
            down = StorageError(answers.unavailable_message)
            down.code = answers.unavailable_code
            return answer(request, down, alternate=False)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return answer(request, InternalError(), alternate=False)

    return errors


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
    """Serve until cancelled (a service's process, once it listens)."""
    # What start-up made (modules, the application, compiled statements) lives as long as the process:
    # frozen out of the collector's sight, a full collection no longer walks it all (a node's catalog
    # walk paused 60-70 ms every few pages of 1000 for it, and each pause holds every request in flight)
    gc.collect()
    gc.freeze()
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
