"""The inference server process: load and warm a bundle, serve gRPC, drain on SIGTERM.

The gRPC server runs handlers on a thread pool; concurrent ModelInfer calls meet in the
dynamic batcher, and a lone call is scored on its own handler thread. Next to
``inference.GRPCInferenceService`` it serves the standard ``grpc.health.v1.Health``
service (SERVING once the model is warmed, NOT_SERVING from the first signal) and server
reflection. Prometheus metrics are on their own HTTP port.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path
from types import FrameType

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from inference import logs, tls
from inference.config import Settings, load_settings
from inference.dataplane import DataPlane, ExplainLimits
from inference.drift import DriftCollector, DriftTracker
from inference.metrics import Metrics
from inference.rollout import Rollout
from inference.servicer import InferenceServicer
from modeling.bundle import BundleError
from modeling.predictor import Predictor
from modeling.repository import Repository
from proto import inference_pb2, inference_pb2_grpc
from proto.codec import SERVICE_NAME, Limits, ModelSchema

log = logging.getLogger("inference")

EXIT_BAD_BUNDLE = 2
EXIT_BAD_SETTINGS = 2
EXIT_CANNOT_SERVE = 1
_SIGNAL_POLL_S = 0.1
_MAX_CONNECTION_AGE_MS = 30_000
_MAX_CONNECTION_AGE_GRACE_MS = 10_000


def _reflection_pool() -> descriptor_pool.DescriptorPool:
    """A pool with every served file (the OIP messages live outside the default pool)."""
    pool = descriptor_pool.DescriptorPool()
    for module in (health_pb2, reflection_pb2, inference_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    return pool


class InferenceServer:
    """One model served over gRPC (OIP v2 and its repository extension, health, reflection)."""

    def __init__(
        self, predictor: Predictor, settings: Settings, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self.drift: DriftTracker | None = None
        if predictor.profile is not None and settings.drift_window_rows > 0:
            self.drift = DriftTracker(
                predictor.profile, settings.drift_window_rows, settings.drift_min_rows
            )
            self.metrics.registry.register(DriftCollector(self.drift))
        self.plane = DataPlane(
            predictor,
            max_batch_rows=settings.max_batch_rows,
            max_queue_delay_s=settings.max_queue_delay_ms / 1000,
            on_batch=self.metrics.observe_batch,  # with each batch's version
            on_quality=self.metrics.observe_quality,
            on_scored=self.drift.observe if self.drift is not None else None,
            limits=Limits(settings.max_request_rows, settings.max_text_bytes),
            explain=ExplainLimits(settings.explain_max_rows, settings.explain_concurrency),
        )
        self.metrics.queued.set_function(lambda: self.plane.queued)
        self.health = health.HealthServicer()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(settings.workers, thread_name_prefix="grpc"),
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                # Clients reconnect every 30 s and so re-resolve DNS: gateways balancing
                # over a headless Service find the replicas a scale-out adds.
                ("grpc.max_connection_age_ms", _MAX_CONNECTION_AGE_MS),
                ("grpc.max_connection_age_grace_ms", _MAX_CONNECTION_AGE_GRACE_MS),
            ],
        )
        self.rollout = Rollout(
            self.plane,
            Repository(settings.repository) if settings.repository is not None else None,
            accelerate=settings.compile_trees,
            on_swap=self._on_swap,
        )
        inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self.plane, self.metrics, self.rollout), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        if settings.reflection:
            services = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
            reflection.enable_server_reflection(services, self._server, pool=_reflection_pool())
        self.port = 0
        self.metrics_port: int | None = None
        self.health_port: int | None = None
        self._health_server: grpc.Server | None = None

    def start(self) -> float:
        """Bind, warm the model, start serving and report SERVING; return the warm-up seconds.

        Raises:
            TlsSettingsError: when the TLS settings are incomplete or unreadable.
            RuntimeError: when the gRPC port cannot be bound.
            OSError: when the metrics port cannot be bound.

        """
        settings = self.settings
        credentials = tls.server_credentials(settings)
        address = f"{settings.host}:{settings.port}"
        if credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, credentials)
        if settings.health_port >= 0:
            self._start_health_port(settings.host, settings.health_port)
        if settings.metrics_port >= 0:
            self.metrics_port = self.metrics.serve(settings.host, settings.metrics_port)
        warm_s = self.plane.warm()
        self._on_swap(self.plane.model, None)
        self._server.start()
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return warm_s

    def _start_health_port(self, host: str, port: int) -> None:
        """Serve the health service alone, in plaintext, on ``port`` (probes without TLS)."""
        server = grpc.server(futures.ThreadPoolExecutor(2, thread_name_prefix="health"))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        self.health_port = server.add_insecure_port(f"{host}:{port}")
        server.start()
        self._health_server = server

    def _on_swap(self, serving: ModelSchema | None, previous: ModelSchema | None) -> None:
        """Name the serving version on the metrics and in gRPC health (none: NOT_SERVING)."""
        self.metrics.observe_serving(
            self.plane.name,
            serving.version if serving else None,
            previous.version if previous else None,
        )
        if serving is not None and self.drift is not None:
            self._follow_drift(self.drift)
        status = health_pb2.HealthCheckResponse
        if previous is not None or serving is None:  # not at start: start() reports SERVING
            for service in ("", SERVICE_NAME):
                self.health.set(service, status.SERVING if serving else status.NOT_SERVING)

    def _follow_drift(self, drift: DriftTracker) -> None:
        """Measure drift against the serving version's training data (a swap changes it)."""
        profile = self.plane.predictor.profile
        if profile is None:
            log.warning(
                "version %s has no reference profile: drift is still measured against "
                "the previous version's",
                self.plane.model.version,
            )
        elif profile is not drift.window.profile:
            drift.use_profile(profile)

    def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, refuse new calls, let in-flight ones finish (up to ``grace_s``)."""
        self.health.enter_graceful_shutdown()
        self.plane.drain()
        self._server.stop(grace_s).wait(grace_s + 1)
        if self._health_server is not None:
            self._health_server.stop(0)
        self.plane.close(timeout=1)
        if self.drift is not None:
            self.drift.close(timeout=1)


def serve(server: InferenceServer, stop: threading.Event) -> None:
    """Run ``server`` until ``stop`` is set, then drain it.

    The wait polls: a signal may be delivered to one of gRPC's threads, and Python runs
    its handler only once the main thread wakes up.
    """
    while not stop.wait(_SIGNAL_POLL_S):
        pass
    log.info("draining", extra={"event": "draining", "grace_s": server.settings.grace_s})
    started = time.perf_counter()
    server.stop(server.settings.grace_s)
    log.info(
        "stopped", extra={"event": "stopped", "drain_s": round(time.perf_counter() - started, 3)}
    )


def _first_model(settings: Settings) -> Predictor:
    """The bundle, or the repository's ``--model-version`` (else SERVING, else the latest)."""
    if settings.repository is None:
        return Predictor.from_bundle(settings.bundle or Path())
    repository = Repository(settings.repository)
    return repository.load(settings.model_version or repository.serving())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m inference``; return the process exit code."""
    settings = load_settings(argv)
    logs.configure(settings.log_level)
    started = time.perf_counter()
    source = settings.repository if settings.repository is not None else settings.bundle
    try:
        predictor = _first_model(settings)
        if settings.compile_trees:
            predictor.accelerate()  # in the background; the booster answers meanwhile
    except (BundleError, OSError) as error:
        print(f"inference: cannot serve {source}: {error}", file=sys.stderr)
        return EXIT_BAD_BUNDLE
    load_s = time.perf_counter() - started
    server = InferenceServer(predictor, settings)
    try:
        warm_s = server.start()
    except tls.TlsSettingsError as error:
        print(f"inference: cannot serve TLS: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except (RuntimeError, OSError) as error:
        print(f"inference: cannot listen on {settings.host}: {error}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal", extra={"event": "signal", "signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    model = server.plane.model
    log.info(
        "ready",
        extra={
            "event": "ready",
            "model": model.name,
            "version": model.version,
            "bundle": str(source),
            "grpc_port": server.port,
            "metrics_port": server.metrics_port,
            "tls": "mutual" if settings.tls_client_ca else "on" if settings.tls_cert else "off",
            "health_port": server.health_port,
            "load_s": round(load_s, 3),
            "warm_s": round(warm_s, 3),
            "max_batch_rows": settings.max_batch_rows,
            "max_queue_delay_ms": settings.max_queue_delay_ms,
            "workers": settings.workers,
            "drift_window_rows": settings.drift_window_rows if server.drift else 0,
        },
    )
    serve(server, stop)
    return 0
