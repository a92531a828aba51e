"""gunicorn settings for the gateway (``gunicorn -c python:gateway.gunicorn_conf``).

Environment: ``GATEWAY_BIND`` (a gunicorn address such as ``unix:PATH``; default
``GATEWAY_HOST:GATEWAY_PORT``), ``GATEWAY_HOST`` (127.0.0.1), ``GATEWAY_PORT`` (5001),
``GATEWAY_WORKERS`` (default: half the usable cores, at least 1), ``GATEWAY_THREADS`` (8),
``GATEWAY_KEEPALIVE_S`` (75), ``GATEWAY_ACCESS_LOG`` (1 to log every request),
``GATEWAY_LOG_LEVEL`` (info). Workers are ``gthread`` (:mod:`gateway.worker`); the app
is loaded in each worker after the fork (no preload), so gRPC channels never cross a fork.
With ``COVERAGE_PROCESS_START`` set, each worker records coverage (for the tests).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from typing import Any

from gateway import metrics


def _int_env(name: str, default: int) -> int:
    """Read a positive integer from the environment."""
    text = os.environ.get(name, "").strip()
    value = int(text) if text else default
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def default_workers() -> int:
    """One worker per two usable cores.

    Threads overlap the waits on the inference server, and the requests of one worker's
    threads share ModelInfer calls under load (gateway.coalesce): fewer, busier workers
    send fewer, larger calls. Measured on 2 cores: 1 worker x 8 threads serves more
    single-row calls per second than 2 x 4 at the same latency.
    """
    return max(1, len(os.sched_getaffinity(0)) // 2)


# Loopback unless told otherwise (containers set GATEWAY_HOST=0.0.0.0); behind the nginx
# front (bin/start-gateway) gunicorn listens on a private unix socket (GATEWAY_BIND).
_HOST = os.environ.get("GATEWAY_HOST", "127.0.0.1")
bind = os.environ.get("GATEWAY_BIND") or f"{_HOST}:{_int_env('GATEWAY_PORT', 5001)}"
wsgi_app = "gateway.wsgi:app"
worker_class = "gateway.worker.JsonErrorThreadWorker"  # gthread, JSON error pages
workers = _int_env("GATEWAY_WORKERS", default_workers())
threads = _int_env("GATEWAY_THREADS", 8)
keepalive = _int_env("GATEWAY_KEEPALIVE_S", 75)  # longer than common load-balancer idle timeouts
timeout = 30  # a worker silent this long is restarted
graceful_timeout = 10  # SIGTERM: finish in-flight requests within 10 s
backlog = 2048
preload_app = False
control_socket_disable = True  # one socket path per user would clash between instances
# Heartbeat files in memory (gunicorn's advice; /tmp may be a slow or read-only disk).
_SHM = "/dev/shm"  # noqa: S108  # nosec B108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None
accesslog = "-" if os.environ.get("GATEWAY_ACCESS_LOG", "") in ("1", "true") else None
errorlog = "-"
loglevel = os.environ.get("GATEWAY_LOG_LEVEL", "info")
proc_name = "gateway"

_coverage: Any = None


def on_starting(server: Any) -> None:  # noqa: ARG001 - gunicorn's hook signature
    """Empty the Prometheus multiprocess directory (stale samples of an earlier run)."""
    directory = os.environ.get(metrics.MULTIPROC_ENV)
    if directory:
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)


def post_fork(server: Any, worker: Any) -> None:  # noqa: ARG001
    """Record coverage in the new worker when the test suite asks for it.

    A master started under coverage (its ``.pth`` hook) hands a running recorder to the
    fork: stop it without saving (its data file belongs to the master) and start the
    worker's own, as coverage's ``patch = fork`` does.
    """
    global _coverage  # noqa: PLW0603 - one coverage recorder per worker process
    if not os.environ.get("COVERAGE_PROCESS_START"):
        return
    import coverage  # only under tests

    inherited = coverage.Coverage.current()
    if inherited is not None:
        inherited._auto_save = False  # no public switch for this
        inherited.stop()
    _coverage = coverage.process_startup(force=True)


def post_worker_init(worker: Any) -> None:
    """Log through gunicorn's error log; connect and fetch the model's metadata now."""
    from gateway.app import warm_up  # already imported by the worker

    error_log = worker.log.error_log
    gateway_log = logging.getLogger("gateway")
    gateway_log.handlers = list(error_log.handlers)
    gateway_log.setLevel(error_log.level)
    gateway_log.propagate = False
    warm_up(worker.wsgi)


def worker_exit(server: Any, worker: Any) -> None:  # noqa: ARG001
    """Save the worker's coverage data."""
    if _coverage is not None:
        _coverage.stop()
        _coverage.save()


def child_exit(server: Any, worker: Any) -> None:  # noqa: ARG001
    """Tell prometheus_client a worker is gone (its live gauges no longer count)."""
    metrics.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:  # noqa: ARG001
    """Remove the metrics directory when bin/start-gateway created it for this run."""
    directory = os.environ.get(metrics.MULTIPROC_ENV)
    if directory and os.environ.get("GATEWAY_METRICS_DIR_OWNED") == "1":
        shutil.rmtree(directory, ignore_errors=True)
