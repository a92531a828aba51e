"""Prometheus metrics of the inference server, in a registry of their own."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from modeling.schema import COLUMNS

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5,
)  # fmt: skip
_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
_REQUEST_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class Metrics:
    """Request, batching and data-quality metrics; :meth:`serve` exposes them over HTTP."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        r = self.registry
        self.requests = Counter(
            "inference_requests", "gRPC calls by method and status code.", ["method", "code"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "inference_request_duration_seconds", "gRPC call latency in the servicer.",
            ["method"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "inference_batch_rows", "Rows per model call (after dynamic batching).",
            buckets=_ROW_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_requests = Histogram(
            "inference_batch_requests", "Requests coalesced into one model call.",
            buckets=_REQUEST_BUCKETS, registry=r,
        )  # fmt: skip
        self.model_seconds = Histogram(
            "inference_model_duration_seconds", "Time of one model call (cleaning + scoring).",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.rows = Counter(
            "inference_rows_scored", "Rows scored, by model version.", ["version"], registry=r
        )
        self.missing = Counter(
            "inference_missing_values", "Missing input values by column.", ["column"], registry=r
        )
        self.unrecognised = Counter(
            "inference_unrecognised_values",
            "Input values that could not be read (unknown category, bad number) by column.",
            ["column"],
            registry=r,
        )
        self.queued = Gauge(
            "inference_queued_requests",
            "Requests waiting for a model call (the dynamic batcher's queue).",
            registry=r,
        )
        self.model_info = Gauge(
            "inference_model_info", "The model being served (value 1).", ["model", "version"],
            registry=r,
        )  # fmt: skip
        self._missing = {column: self.missing.labels(column) for column in COLUMNS}
        self._unrecognised = {column: self.unrecognised.labels(column) for column in COLUMNS}

    def observe_request(self, method: str, code: str, seconds: float) -> None:
        """Count one gRPC call and its latency."""
        self.requests.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)

    def observe_batch(self, n_rows: int, n_requests: int, seconds: float, version: str) -> None:
        """Record one model call: its rows, the requests it served, its duration, its version."""
        self.batch_rows.observe(n_rows)
        self.batch_requests.observe(n_requests)
        self.model_seconds.observe(seconds)
        self.rows.labels(version).inc(n_rows)

    def observe_serving(self, name: str, serving: str | None, previous: str | None) -> None:
        """Point ``inference_model_info`` at the serving version (none once unloaded)."""
        if previous is not None and previous != serving:
            self.model_info.remove(name, previous)
        if serving is not None:
            self.model_info.labels(name, serving).set(1)

    def observe_quality(self, missing: Mapping[str, int], unrecognised: Mapping[str, int]) -> None:
        """Count the missing and unrecognised values of one model call's rows, per column."""
        for column, count in missing.items():
            if count:
                self._counter(self._missing, self.missing, column).inc(count)
        for column, count in unrecognised.items():
            if count:
                self._counter(self._unrecognised, self.unrecognised, column).inc(count)

    @staticmethod
    def _counter(cache: dict[str, Counter], family: Counter, column: str) -> Counter:
        child = cache.get(column)
        if child is None:
            child = cache[column] = family.labels(column)
        return child

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP exporter in a daemon thread; return the port it listens on."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
