"""Prometheus metrics of the gateway, safe across gunicorn's worker processes.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (``bin/start-gateway`` sets it to a fresh
temporary directory) every worker writes its samples there and ``/metrics`` merges
them; otherwise the process's own registry is served (tests, a plain Flask run).

Losing metrics never loses a prediction. prometheus_client maps each worker's file
into memory after growing it sparsely, so on a full disk a write to a new page kills
the worker with SIGBUS. So each worker checks the directory before its first sample
(:func:`claim_directory`): unwritable or with less than :data:`HEADROOM_BYTES` free, the
worker writes its samples to a private directory instead (missing from ``/metrics``).
``/metrics`` checks it again: full, missing or unreadable, it answers 503 (a missing
directory is created again). Every update is best effort (:func:`_best_effort`).
docs/hardening.md says why this way.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import shutil
import struct
import tempfile
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
)

from gateway.config import ENV

MULTIPROC_ENV = ENV["metrics_dir"]
HEADROOM_BYTES = 4 * 1024 * 1024
"""Free space the shared directory needs for a worker to write there (room for the
workers' files to grow)."""
_SHM = "/dev/shm"  # noqa: S108  # nosec B108
log = logging.getLogger("gateway")
P = ParamSpec("P")
_shared: list[str] = []
"""The shared directory, once this process writes elsewhere (:func:`claim_directory`)."""


class MetricsUnavailableError(RuntimeError):
    """The shared metrics cannot be read now."""


def shared_directory() -> str:
    """The directory every worker's samples are merged from; empty: none."""
    return _shared[0] if _shared else os.environ.get(MULTIPROC_ENV, "")


def unusable(directory: str) -> str:
    """Why this process cannot write samples to ``directory`` now; empty when it can."""
    try:
        stats = os.statvfs(directory)
    except OSError as error:
        return f"{directory}: {error.strerror}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{directory} is not writable"
    free = stats.f_bavail * stats.f_frsize
    if free < HEADROOM_BYTES:
        return f"{directory} has {free} bytes free (fewer than {HEADROOM_BYTES})"
    return ""


def claim_directory() -> None:
    """Before this process's first sample: the shared directory, else a private one.

    prometheus_client opens a process's files in ``PROMETHEUS_MULTIPROC_DIR`` as it
    finds it at the first sample after a fork, so pointing the variable elsewhere is
    enough. The private directory goes with the process.
    """
    directory = os.environ.get(MULTIPROC_ENV, "")
    why = unusable(directory) if directory else ""
    if not why:
        return
    places = [_SHM] if os.path.isdir(_SHM) else []
    for place in [*places, tempfile.gettempdir()]:
        if not unusable(place):
            private = tempfile.mkdtemp(prefix="gateway-metrics-", dir=place)
            break
    else:
        log.warning("metrics directory unusable (%s), nowhere else to write: kept", why)
        return
    atexit.register(_remove, private, os.getpid())
    _shared.append(directory)
    os.environ[MULTIPROC_ENV] = private
    log.warning("metrics directory unusable (%s): this worker's samples stay private", why)


def _remove(directory: str, owner: int) -> None:
    """Remove a private metrics directory at exit, in the process that made it only."""
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)


claim_directory()  # before the metrics below create this process's first samples


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
COALESCED = Histogram(
    "gateway_coalesced_requests",
    "Requests sent together in one ModelInfer call (merged while another was in flight).",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
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
def observe_coalesced(n_requests: int) -> None:
    """Record how many requests shared one ModelInfer call."""
    COALESCED.observe(n_requests)


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
        MetricsUnavailableError: the shared directory is gone, unreadable or full (a
            missing one is created again, so the next scrape answers).

    """
    directory = shared_directory()
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    why = unusable(directory)
    if not why:
        try:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        except (OSError, ValueError, struct.error) as error:  # a file gone or cut short
            why = str(error)
    with contextlib.suppress(OSError):
        os.makedirs(directory, exist_ok=True)
    raise MetricsUnavailableError(f"metrics unavailable: {why}")
