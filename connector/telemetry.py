"""Traces and logs for the node, the station and the clearing house ([telemetry] in each one's config).

Tracing (OpenTelemetry) is off unless ``[telemetry] otlp_endpoint`` names an OTLP/HTTP collector
(its base URL; spans go to ``<endpoint>/v1/traces``). Off, no SDK is loaded, no span is made and
the hooks below cost a context-variable set per request. On, every request a service answers is a
server span that continues the caller's W3C ``traceparent``; every aiohttp client request carries
the current one (opentelemetry-instrumentation-aiohttp-client); and an outbox row keeps the
``traceparent`` of the transition that queued it, so the message, sent later or by another replica,
continues that trace (`continued`). One negotiation is thus one trace across both nodes and the
clearing house.

Logs: today's text lines by default; ``[telemetry] log_format = "json"`` writes one JSON object a
line with the request id, the process id (negotiation or transfer pid, where known) and the trace
id (null when tracing is off). Only the message is logged: never headers, tokens or keys."""
from __future__ import annotations

import contextvars
import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlparse

import orjson
from aiohttp import web

from .metrics import route_of

T = TypeVar("T")
#: the [telemetry] section, the same in the three services' config schemas
SCHEMA: dict[str, tuple[type, bool]] = {"otlp_endpoint": (str, False), "log_format": (str, False),
                                        "service_name": (str, False)}
LOG_FORMATS = ("text", "json")
MAX_ID = 100  # characters of a peer-chosen process id put in a log line or a span

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_process_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("process_id", default=None)
_tracer: Any = None  # the SDK tracer while tracing is on
_provider: Any = None


@dataclass(frozen=True)
class TelemetrySettings:
    otlp_endpoint: str = ""  # base URL of an OTLP/HTTP collector; "" : no tracing
    log_format: str = "text"  # text | json
    service_name: str = ""  # the service.name of the spans (default: connector-node, -station, -clearinghouse)


def settings_from(section: dict[str, Any]) -> TelemetrySettings:
    """The checked [telemetry] section. Raises ValueError naming the setting."""
    endpoint = str(section.get("otlp_endpoint") or "").strip()
    if endpoint and (urlparse(endpoint).scheme not in ("http", "https") or not urlparse(endpoint).netloc):
        raise ValueError("[telemetry] otlp_endpoint must be an http(s) URL (the collector's OTLP/HTTP base URL)")
    log_format = str(section.get("log_format") or "text").strip().lower()
    if log_format not in LOG_FORMATS:
        raise ValueError(f"[telemetry] log_format must be one of {', '.join(LOG_FORMATS)}")
    return TelemetrySettings(endpoint, log_format, str(section.get("service_name") or "").strip()[:100])


def tracing() -> bool:
    return _tracer is not None


def configure(service: str, settings: TelemetrySettings) -> None:
    """Set up the process's logs and (when an endpoint is configured) its tracer. Call once, at
    start, before any aiohttp ClientSession is made (the client instrumentation wraps new sessions)."""
    global _tracer, _provider
    root = logging.getLogger()
    for handler in root.handlers:
        if settings.log_format == "json":
            handler.setFormatter(JsonFormatter())
    if not settings.otlp_endpoint or _tracer is not None:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.propagate import set_global_textmap
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    # W3C trace context only: no baggage, so a peer's baggage header is never forwarded to others
    set_global_textmap(TraceContextTextMapPropagator())
    # every span is recorded: a peer's traceparent with the sampled flag off cannot turn our tracing off
    # (shutdown_on_exit, the default: the last spans are flushed when the process ends)
    _provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name or service}),
                               sampler=ALWAYS_ON)
    _provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")))
    trace.set_tracer_provider(_provider)
    # spans and traceparent on every request our sessions send (DSP calls, clearing-house appends, tokens)
    AioHttpClientInstrumentor().instrument(tracer_provider=_provider)
    _tracer = _provider.get_tracer("connector")


def shutdown() -> None:
    """Flush the spans still queued (also done at exit)."""
    if _provider is not None:
        _provider.force_flush(5000)


# ------------------------------------------------------------------ context
def _bounded(value: Any) -> str | None:
    return None if value is None else str(value)[:MAX_ID]


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to be stored with what is sent later (None: tracing off)."""
    if _tracer is None:
        return None
    from opentelemetry.propagate import inject
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


def bind_context(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn` to be run in the caller's context (trace, request and process ids) wherever it runs,
    e.g. by a group-committing writer on behalf of many callers. Unchanged while tracing is off."""
    if _tracer is None:
        return fn
    ctx = contextvars.copy_context()
    return lambda *args: ctx.run(fn, *args)


@contextmanager
def continued(traceparent: str | None, name: str, process_id: str | None) -> Iterator[None]:
    """Work done later on behalf of a process (an outbox send): logged with its process id and,
    while tracing is on, a span in the trace of the transition that queued it."""
    token = _process_id.set(_bounded(process_id))
    try:
        if _tracer is None:
            yield
            return
        from opentelemetry.propagate import extract
        parent = extract({"traceparent": traceparent}) if traceparent else None
        with _tracer.start_as_current_span(name, context=parent, attributes={
                "connector.process_id": _bounded(process_id) or ""}):
            yield
    finally:
        _process_id.reset(token)


def middleware():  # noqa: ANN201
    """First middleware of every service: a request id (answered in X-Request-Id) and the process id
    of the path (``{pid}``/``{tid}``) for the log lines of the request; while tracing is on, a server
    span named by the route pattern (never the raw path) continuing the caller's traceparent."""

    @web.middleware
    async def observe(request: web.Request, handler):  # noqa: ANN001, ANN202
        rid = uuid.uuid4().hex
        info = request.match_info
        pid = info.get("pid") or info.get("tid")
        if pid is None and ("/negotiations/" in request.path or "/transfers/" in request.path):
            pid = info.get("id")  # the management API's /negotiations/{id}, /transfers/{id}
        tokens = (_request_id.set(rid), _process_id.set(_bounded(pid)))
        try:
            if _tracer is None:
                response = await handler(request)
            else:
                response = await _traced(request, handler, pid, rid)
            if not response.prepared:
                response.headers["X-Request-Id"] = rid
            return response
        finally:
            _process_id.reset(tokens[1])
            _request_id.reset(tokens[0])

    return observe


async def _traced(request: web.Request, handler: Any, pid: str | None, rid: str) -> web.StreamResponse:
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind, Status, StatusCode
    route = route_of(request)
    attributes = {"http.request.method": request.method[:16], "http.route": route, "connector.request_id": rid}
    if pid:
        attributes["connector.process_id"] = _bounded(pid) or ""
    with _tracer.start_as_current_span(f"{request.method[:16]} {route}", context=extract(request.headers),
                                       kind=SpanKind.SERVER, attributes=attributes) as span:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            span.set_attribute("http.response.status_code", exc.status)
            raise
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        return response


# ------------------------------------------------------------------ logs
def _trace_id() -> str | None:
    if _tracer is None:
        return None
    from opentelemetry import trace
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, process_id, trace_id (and
    the traceback of an exception). Fields come from the context of the code that logged."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record), "level": record.levelname, "logger": record.name,
            "message": record.getMessage(), "request_id": _request_id.get(), "process_id": _process_id.get(),
            "trace_id": _trace_id(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()
