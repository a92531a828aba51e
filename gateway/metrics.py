"""Prometheus metrics of the gateway, safe across gunicorn's worker processes.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (``bin/start-gateway`` sets it to a fresh
temporary directory) every worker writes its samples there and ``/metrics`` merges
them; otherwise the process's own registry is served (tests, a plain Flask run).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "gateway_requests", "HTTP requests answered, by route and status code.", ["route", "status"]
)
LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Time from request start to response, by route.",
    ["route"],
    buckets=(0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10),
)
ROWS = Histogram(
    "gateway_predict_rows",
    "Rows per accepted /predict request.",
    buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000),
)
COALESCED = Histogram(
    "gateway_coalesced_requests",
    "Requests sent together in one ModelInfer call (merged while another was in flight).",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
)
INFERENCE_ERRORS = Counter(
    "gateway_inference_errors",
    "Failed calls to the inference server, by HTTP status answered.",
    ["status"],
)


def render() -> tuple[bytes, str]:
    """Return the exposition text of every metric (merged over workers) and its type."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live-gauge files (gunicorn ``child_exit`` hook)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
