"""Prometheus metrics for the node, the station and the clearing house (prometheus-client).

Each application gets its own ``ServiceMetrics`` with its own ``CollectorRegistry`` (several
applications may run in one process, as in the tests). Label values are bounded by
construction: a request is labelled with its route's canonical pattern (never the raw path;
``unmatched`` when no route matched), its method (one of the HTTP methods, else ``other``) and
its status code; outcomes are fixed words. Values read from a database at scrape time are
handed to ``render`` as metric families and exposed with the rest."""
from __future__ import annotations

import time
from typing import Any, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: request latency buckets, seconds (a catalog page within 50 ms is the target of interest)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOKEN_OUTCOMES = ("accepted", "refused", "unavailable")


class _Snapshot:
    """A collector that yields the families the scrape handler computed just before rendering."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> Metric:
    """A metric family read at scrape time (e.g. counts from the database). A counter's name is
    given without ``_total``; its samples are exposed as ``<name>_total``."""
    metric = Metric(name, help_text, kind)
    suffix = "_total" if kind == "counter" else ""
    for labels, value in samples:
        metric.add_sample(name + suffix, {k: str(v) for k, v in labels.items()}, float(value))
    return metric


def route_of(request: web.Request) -> str:
    """The matched route's canonical pattern (``/dsp/2025-1/negotiations/{pid}``), never the path."""
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or getattr(info, "http_exception", None) is not None:
        return "unmatched"
    return resource.canonical


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self.requests = Histogram(
            "hks_http_request_duration_seconds", "time to answer a request, by route pattern, method and status",
            ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.token_checks = Counter(
            "hks_token_checks", "bearer tokens checked on inbound calls, by outcome (accepted, refused, unavailable)",
            ["outcome"], registry=self.registry)
        for outcome in TOKEN_OUTCOMES:
            self.token_checks.labels(outcome)

    # -------------------------------------------------------------- requests
    def middleware(self):  # noqa: ANN201
        requests = self.requests

        @web.middleware
        async def observe(request: web.Request, handler):  # noqa: ANN001, ANN202
            start = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                method = request.method if request.method in METHODS else "other"
                requests.labels(route_of(request), method, str(status)).observe(time.perf_counter() - start)

        return observe

    # ---------------------------------------------------------------- tokens
    async def checked(self, verify: Any) -> Any:
        """Await a token check (a coroutine) and count its outcome: a ProtocolError with status
        401/403 is a refusal, any other failure (503: the check could not be completed) unavailable."""
        try:
            caller = await verify
        except Exception as exc:
            status = getattr(exc, "status", 503)
            self.token_checks.labels("refused" if status in (400, 401, 403) else "unavailable").inc()
            raise
        self.token_checks.labels("accepted").inc()
        return caller

    # ---------------------------------------------------------------- render
    def render(self, families: Iterable[Metric] = ()) -> web.Response:
        """The Prometheus text exposition of this service's registry plus `families` (no await
        between setting the snapshot and rendering it: concurrent scrapes cannot mix)."""
        self._snapshot.families = list(families)
        try:
            body = generate_latest(self.registry)
        finally:
            self._snapshot.families = []
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4,
                                                "X-Content-Type-Options": "nosniff"})
