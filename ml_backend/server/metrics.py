"""Prometheus metrics: requests, latencies, cache hits. Shared across worker processes.

With several workers a scrape lands on any one of them, so the counters live in
prometheus_client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by
``serve`` before the workers start); a single process uses its own registry.
"""

from __future__ import annotations

import os
import time

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from ..core.cache import EmbeddingCache
from ..core.engine import Embedding

REQUESTS = Counter("scribble_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "scribble_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5, 10, 30, 100),
)
CACHE_LOOKUPS = Counter("scribble_embedding_cache_total", "Embedding cache lookups", ["result"])
ROUNDS = Counter("scribble_segmentation_rounds_total", "Segmentation rounds", ["entry"])


class CountingCache:
    """Wraps an embedding cache and counts hits and misses."""

    def __init__(self, inner: EmbeddingCache) -> None:
        self.inner = inner

    def get(self, key: str) -> Embedding | None:
        embedding = self.inner.get(key)
        CACHE_LOOKUPS.labels("hit" if embedding is not None else "miss").inc()
        return embedding

    def put(self, key: str, embedding: Embedding) -> None:
        self.inner.put(key, embedding)

    def lock(self, key: str):  # type: ignore[no-untyped-def]
        return self.inner.lock(key)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    # The route template, not the raw path: result ids must not explode label cardinality.
    return getattr(route, "path", "unmatched")


def install_metrics(app: FastAPI) -> None:
    @app.middleware("http")
    async def measure(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = _route_of(request)
            if route != "/metrics":
                REQUESTS.labels(route, request.method, str(status)).inc()
                LATENCY.labels(route).observe(time.perf_counter() - started)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
