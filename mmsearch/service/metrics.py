"""Prometheus metrics at `/metrics`: requests and their latency per endpoint, encoder time, store time.

    mmsearch_http_requests_total{method, route, status}     requests answered
    mmsearch_http_request_duration_seconds{method, route}   their latency (histogram)
    mmsearch_encoder_duration_seconds{model, modality}      one encoder call (histogram)
    mmsearch_store_duration_seconds{operation}              one engine call: query, score_points... (histogram)
    mmsearch_queries_pending                                searches running or waiting for a slot
    mmsearch_collection_items                               items in the collection (read at each scrape)
    mmsearch_items_written_total / mmsearch_item_errors_total{kind}   what POST /items did

`route` is the endpoint's path template (`/items/{item_id}`), never the raw path, so ids do not
become label values. Each app has its own registry: two apps in one process do not mix figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indexers.protocol import Encoder, EncoderSpec

# From 1 ms to 30 s: an Edge kNN takes about a millisecond, a batch of image queries seconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED = "<unmatched>"


class _Gauges(Collector):
    """Gauges read when Prometheus scrapes: queries pending, items in the collection."""

    def __init__(self) -> None:
        self.pending: Callable[[], int] = lambda: 0
        self.items: Callable[[], int | None] = lambda: None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("mmsearch_queries_pending", "Searches running or waiting for a slot", self.pending())
        items = self.items()
        if items is not None:
            yield GaugeMetricFamily("mmsearch_collection_items", "Items in the served collection", items)


class Metrics:
    """The service's metrics in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mmsearch_http_requests", "HTTP requests answered", ("method", "route", "status"), registry=r
        )
        self.latency = Histogram(
            "mmsearch_http_request_duration_seconds",
            "HTTP request latency",
            ("method", "route"),
            buckets=_BUCKETS,
            registry=r,
        )
        self.encoder = Histogram(
            "mmsearch_encoder_duration_seconds",
            "Time in one encoder call",
            ("model", "modality"),
            buckets=_BUCKETS,
            registry=r,
        )
        self.store = Histogram(
            "mmsearch_store_duration_seconds",
            "Time in one store engine call",
            ("operation",),
            buckets=_BUCKETS,
            registry=r,
        )
        self.written = Counter("mmsearch_items_written", "Items written by POST /items", registry=r)
        self.item_errors = Counter("mmsearch_item_errors", "Items POST /items skipped, by kind", ("kind",), registry=r)
        self.gauges = _Gauges()
        r.register(self.gauges)

    def observe_store(self, operation: str, seconds: float) -> None:
        self.store.labels(operation).observe(seconds)

    def timed(self, encoder: Encoder) -> TimedEncoder:
        """`encoder` with each `embed` call observed."""
        return TimedEncoder(encoder, self.encoder.labels(encoder.spec.model, encoder.spec.modality).observe)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class TimedEncoder:
    """An encoder whose `embed` calls are timed; anything else is the inner encoder's.

    Args:
        inner: the encoder.
        observe: called with each call's seconds.
    """

    def __init__(self, inner: Encoder, observe: Callable[[float], None]) -> None:
        self.spec: EncoderSpec = inner.spec
        self._inner = inner
        self._observe = observe

    def embed(self, batch: Sequence[Any]) -> Any:
        start = time.perf_counter()
        try:
            return self._inner.embed(batch)
        finally:
            self._observe(time.perf_counter() - start)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class MetricsMiddleware:
    """ASGI middleware counting and timing every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)


__all__ = ["UNMATCHED", "Metrics", "MetricsMiddleware", "TimedEncoder"]
