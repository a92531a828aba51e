"""Prometheus metrics of the gateway, safe across gunicorn's worker processes.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (``bin/start-gateway`` sets it to a fresh
temporary directory) every worker writes its samples there and ``/metrics`` merges
them; otherwise the process's own registry is served (tests, a plain Flask run).

Losing metrics never loses a prediction. prometheus_client maps each worker's file
into memory after growing it sparsely, so on a full disk the first write to a new page
killed the worker with SIGBUS; here the space is allocated before a file is mapped
(:class:`_AllocatedDict`): on a full disk the process keeps its samples in memory
instead (missing from ``/metrics``), and every update is best effort
(:func:`_best_effort`). A missing directory makes ``/metrics`` answer 503 once
and is created again.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import ParamSpec

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.mmap_dict import _INITIAL_MMAP_SIZE, MmapedDict

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger("gateway")
P = ParamSpec("P")


class MetricsUnavailableError(RuntimeError):
    """The shared metrics cannot be read now."""


def _allocate(filename: str) -> None:
    """Create a metrics file with its first block of disk space really allocated."""
    descriptor = os.open(filename, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        if os.fstat(descriptor).st_size == 0:
            os.posix_fallocate(descriptor, 0, _INITIAL_MMAP_SIZE)
    except OSError:
        os.unlink(filename)  # an empty file would break the merge of the others
        raise
    finally:
        os.close(descriptor)


class _AllocatedDict(MmapedDict):
    """A metrics file whose disk space is allocated before it is mapped (no SIGBUS)."""

    def __init__(self, filename: str, read_mode: bool = False) -> None:
        memory = None
        if not read_mode:
            try:
                _allocate(filename)
            except OSError as error:  # this process's samples stay out of /metrics
                log.warning("metrics file %s unavailable (%s): kept in memory", filename, error)
                memory = os.memfd_create("gateway-metrics")
                filename = f"/proc/self/fd/{memory}"
        try:
            super().__init__(filename, read_mode)
        finally:
            if memory is not None:
                os.close(memory)  # the dict holds its own descriptor

    def _init_value(self, key: str) -> None:
        # The entry's size as MmapedDict lays it out: length, padded key, two doubles.
        encoded = len(key.encode("utf-8"))
        size = 4 + encoded + (8 - (encoded + 4) % 8) + 16
        capacity = self._capacity
        while self._used + size > capacity:
            capacity *= 2
        if capacity > self._capacity:
            os.posix_fallocate(self._f.fileno(), 0, capacity)
        super()._init_value(key)


values.MmapedDict = _AllocatedDict  # type: ignore[misc]  # the class prometheus_client creates metric files with


def _best_effort(update: Callable[P, None]) -> Callable[P, None]:
    """Run a metrics update; a failure is logged (once per process), never raised."""
    failed: list[bool] = []

    @functools.wraps(update)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            update(*args, **kwargs)
        except Exception as error:  # a full or missing metrics directory, a closed file
            if not failed:
                failed.append(True)
                log.warning("metrics update failed, predictions go on: %s", error)

    return run


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
ANSWERS = Counter(
    "gateway_model_answers",
    "Requests answered with scores, by route and the model version that gave them.",
    ["route", "version"],
)
INFERENCE_ERRORS = Counter(
    "gateway_inference_errors",
    "Failed calls to the inference server, by HTTP status answered.",
    ["status"],
)
AUTH_REJECTED = Counter(
    "gateway_auth_rejected",
    "Requests refused with 401 for a missing or an invalid API key (never the key itself).",
    ["reason"],
)


@_best_effort
def observe_request(route: str, status: int, seconds: float | None) -> None:
    """Count an answered request and time it."""
    REQUESTS.labels(route, str(status)).inc()
    if seconds is not None:
        LATENCY.labels(route).observe(seconds)


@_best_effort
def observe_rows(n_rows: int) -> None:
    """Record the rows of an accepted /predict request."""
    ROWS.observe(n_rows)


@_best_effort
def count_answer(route: str, version: str) -> None:
    """Count a request answered with scores by model ``version``."""
    ANSWERS.labels(route, version).inc()


@_best_effort
def count_inference_error(status: int) -> None:
    """Count a failed call to the inference server by the status answered."""
    INFERENCE_ERRORS.labels(str(status)).inc()


@_best_effort
def count_auth_rejected(reason: str) -> None:
    """Count a request refused for its API key (``missing`` or ``invalid``)."""
    AUTH_REJECTED.labels(reason).inc()


def render() -> tuple[bytes, str]:
    """Return the exposition text of every metric (merged over workers) and its type.

    Raises:
        MetricsUnavailableError: the shared directory is gone or unreadable (it is
            created again, so the next scrape answers).

    """
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    try:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    except (OSError, ValueError) as error:
        os.makedirs(directory, exist_ok=True)
        raise MetricsUnavailableError(f"metrics unavailable: {error}") from None


@_best_effort
def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live-gauge files (gunicorn ``child_exit`` hook)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
