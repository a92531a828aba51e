"""gunicorn settings for the gateway (``gunicorn -c python:gateway.gunicorn_conf``).

Its settings come from :class:`gateway.config.Config` (``GATEWAY_BIND``, ``GATEWAY_HOST``,
``GATEWAY_PORT``, ``GATEWAY_WORKERS``, ``GATEWAY_THREADS``, ``GATEWAY_KEEPALIVE_S``,
``GATEWAY_ACCESS_LOG``, ``GATEWAY_LOG_LEVEL``), read once here in the master: a bad
value stops gunicorn at start with one line naming the variable. Workers are ``gthread``
(:mod:`gateway.worker`); the app is loaded in each worker after the fork (no preload),
so gRPC channels never cross a fork. With ``COVERAGE_PROCESS_START`` set, each worker
records coverage (for the tests).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import sys
from typing import Any

from gateway.config import SettingsError, settings

try:
    _SETTINGS = settings()
except SettingsError as error:
    sys.exit(f"gateway: {error}")  # one line, no traceback: gunicorn stops at start

# Loopback unless told otherwise (containers set GATEWAY_HOST=0.0.0.0); behind the nginx
# front (bin/start-gateway) gunicorn listens on a private unix socket (GATEWAY_BIND).
bind = _SETTINGS.bind or f"{_SETTINGS.host}:{_SETTINGS.port}"
wsgi_app = "gateway.wsgi:app"
worker_class = "gateway.worker.JsonErrorThreadWorker"  # gthread, JSON error pages
workers = _SETTINGS.workers
threads = _SETTINGS.threads
keepalive = _SETTINGS.keepalive_s
timeout = 30  # a worker silent this long is restarted
graceful_timeout = 10  # SIGTERM: finish in-flight requests within 10 s
backlog = 2048
preload_app = False
control_socket_disable = True  # one socket path per user would clash between instances
# Heartbeat files in memory (gunicorn's advice; /tmp may be a slow or read-only disk).
_SHM = "/dev/shm"  # noqa: S108  # nosec B108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None
accesslog = "-" if _SETTINGS.access_log else None
errorlog = "-"
loglevel = _SETTINGS.log_level
proc_name = "gateway"

_coverage: Any = None


def on_starting(server: Any) -> None:  # noqa: ARG001 - gunicorn's hook signature
    """Empty the Prometheus multiprocess directory (stale samples of an earlier run)."""
    if _SETTINGS.metrics_dir:
        for path in glob.glob(os.path.join(_SETTINGS.metrics_dir, "*.db")):
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
    """Close the worker's gRPC channel (the server sees it go away); save its coverage."""
    from gateway.app import shut_down  # already imported by the worker

    shut_down(worker.wsgi)
    if _coverage is not None:
        _coverage.stop()
        _coverage.save()


def child_exit(server: Any, worker: Any) -> None:  # noqa: ARG001
    """Tell prometheus_client a worker is gone (its live gauges no longer count)."""
    if _SETTINGS.metrics_dir:
        # Imported here: gateway.metrics is the workers' (the master keeps no samples).
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, _SETTINGS.metrics_dir)


def on_exit(server: Any) -> None:  # noqa: ARG001
    """Remove the metrics directory when bin/start-gateway created it for this run."""
    if _SETTINGS.metrics_dir and os.environ.get("GATEWAY_METRICS_DIR_OWNED") == "1":
        shutil.rmtree(_SETTINGS.metrics_dir, ignore_errors=True)
