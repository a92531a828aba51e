"""Server settings from command-line flags, each with an environment-variable default."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from proto.codec import MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class Settings:
    """Everything the inference server process is configured with.

    Attributes:
        bundle: directory of the model bundle to serve (without a repository).
        repository: model repository (:mod:`modeling.repository`): the server starts with
            ``model_version`` from it and loads other versions on RepositoryModelLoad.
        model_version: version to start with (empty: the repository's ``SERVING``, else
            its latest).
        host: interface the gRPC and metrics servers bind to (loopback unless told
            otherwise; the container images set 0.0.0.0).
        port: gRPC port (0 picks a free one).
        metrics_port: Prometheus port (0 picks a free one, negative disables metrics).
        max_batch_rows: most rows one model call coalesces (a larger request runs alone).
        max_queue_delay_ms: how long a forming batch waits for more requests, only when
            other requests are already queued (a lone request never waits).
        workers: gRPC worker threads (concurrent calls in flight).
        grace_s: seconds in-flight calls get to finish after SIGTERM/SIGINT.
        log_level: logging level name.
        max_request_rows: most rows one ModelInfer call may carry (INVALID_ARGUMENT
            beyond), whoever calls: the gateway sends at most its chunk size.
        max_text_bytes: longest BYTES element accepted (INVALID_ARGUMENT beyond).
        max_message_bytes: largest request message gRPC accepts (RESOURCE_EXHAUSTED).
        reflection: serve gRPC server reflection (for grpcurl and other tools).
        explain_max_rows: most rows one call may ask explanations for (the gateway sends
            its explanations in chunks of this size or fewer).
        explain_concurrency: explanation calls computed at once; one more is refused
            with RESOURCE_EXHAUSTED (scoring is never held up by explanations).
        compile_trees: compile LightGBM's trees to native code in the background (needs
            the ``accelerate`` extra; answers unchanged to 1e-9). Off by default: on the
            stand-in bundle (244 trees of up to 127 leaves) it took 159 s of one core and
            1.8 GB at its peak, while the booster answered.
        drift_window_rows: scored rows the drift window holds (0 turns drift tracking
            off); per-column PSI, missing and unrecognised shares and the score
            distribution on ``/metrics`` are over these rows. About 5 bytes per column
            per row: 5 MB for the default.
        drift_min_rows: rows the window needs before PSI is exported (fewer rows give
            sampling noise, not drift).
        tls_cert: PEM certificate to serve TLS with (with ``tls_key``); empty serves
            plaintext.
        tls_key: PEM private key of ``tls_cert``.
        tls_client_ca: PEM CA that must have signed every client's certificate (mutual
            TLS); empty accepts any TLS client.
        health_port: plaintext port serving ``grpc.health.v1`` only, for probes that
            cannot speak TLS (Kubernetes' gRPC probes); negative serves none.

    """

    bundle: Path | None = None
    repository: Path | None = None
    model_version: str = ""
    host: str = "127.0.0.1"
    port: int = 8001
    metrics_port: int = 8002
    max_batch_rows: int = 4096
    max_queue_delay_ms: float = 0.5
    workers: int = 16
    grace_s: float = 8.0
    log_level: str = "INFO"
    max_request_rows: int = 20_000
    max_text_bytes: int = 4096
    max_message_bytes: int = MAX_MESSAGE_BYTES
    reflection: bool = True
    explain_max_rows: int = 1024
    explain_concurrency: int = 1
    compile_trees: bool = False
    drift_window_rows: int = 10_000
    drift_min_rows: int = 1_000
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    health_port: int = -1


_ENV = {
    "bundle": "INFERENCE_BUNDLE",
    "repository": "INFERENCE_REPOSITORY",
    "model_version": "INFERENCE_MODEL_VERSION",
    "host": "INFERENCE_HOST",
    "port": "INFERENCE_PORT",
    "metrics_port": "INFERENCE_METRICS_PORT",
    "max_batch_rows": "INFERENCE_MAX_BATCH_ROWS",
    "max_queue_delay_ms": "INFERENCE_MAX_QUEUE_DELAY_MS",
    "workers": "INFERENCE_WORKERS",
    "grace_s": "INFERENCE_GRACE_S",
    "log_level": "INFERENCE_LOG_LEVEL",
    "max_request_rows": "INFERENCE_MAX_REQUEST_ROWS",
    "max_text_bytes": "INFERENCE_MAX_TEXT_BYTES",
    "max_message_bytes": "INFERENCE_MAX_MESSAGE_BYTES",
    "reflection": "INFERENCE_REFLECTION",
    "explain_max_rows": "INFERENCE_EXPLAIN_MAX_ROWS",
    "explain_concurrency": "INFERENCE_EXPLAIN_CONCURRENCY",
    "compile_trees": "INFERENCE_COMPILE_TREES",
    "drift_window_rows": "INFERENCE_DRIFT_WINDOW_ROWS",
    "drift_min_rows": "INFERENCE_DRIFT_MIN_ROWS",
    "tls_cert": "INFERENCE_TLS_CERT",
    "tls_key": "INFERENCE_TLS_KEY",
    "tls_client_ca": "INFERENCE_TLS_CLIENT_CA",
    "health_port": "INFERENCE_HEALTH_PORT",
}
"""The environment variable behind each setting (a flag wins over its variable)."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _switch(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered not in ("1", "0", "true", "false", "on", "off", "yes", "no"):
        raise argparse.ArgumentTypeError(f"must be on or off, got {text}")
    return lowered in ("1", "true", "on", "yes")


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """Return the CLI parser whose defaults come from ``env`` (then from :class:`Settings`)."""
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m inference",
        description="Serve one model bundle over the Open Inference Protocol v2 (gRPC).",
    )

    def add(flag: str, name: str, kind: Callable[[str], object], help_text: str) -> None:
        variable = _ENV[name]
        default = env.get(variable, getattr(defaults, name))
        parser.add_argument(
            flag, dest=name, type=kind, default=default, help=f"{help_text} (env {variable})"
        )

    add("--bundle", "bundle", Path, "model bundle directory (or --repository)")
    add("--repository", "repository", Path, "model repository directory (or --bundle)")
    add("--model-version", "model_version", str, "repository version to start with")
    add("--host", "host", str, "bind address, default %(default)s")
    add("--port", "port", int, "gRPC port, default %(default)s")
    add("--metrics-port", "metrics_port", int, "Prometheus port, <0 disables, default %(default)s")
    add(
        "--max-batch-rows",
        "max_batch_rows",
        _positive_int,
        "rows per model call, default %(default)s",
    )
    add(
        "--max-queue-delay-ms",
        "max_queue_delay_ms",
        _non_negative_float,
        "batch wait when others are queued, default %(default)s",
    )
    add("--workers", "workers", _positive_int, "gRPC worker threads, default %(default)s")
    add("--grace-s", "grace_s", _non_negative_float, "drain time on SIGTERM, default %(default)s")
    add("--log-level", "log_level", str.upper, "logging level, default %(default)s")
    add(
        "--max-request-rows",
        "max_request_rows",
        _positive_int,
        "rows per call, default %(default)s",
    )
    add("--max-text-bytes", "max_text_bytes", _positive_int, "bytes per text, default %(default)s")
    add(
        "--max-message-bytes",
        "max_message_bytes",
        _positive_int,
        "request message size, default %(default)s",
    )
    add(
        "--reflection", "reflection", _switch, "serve gRPC reflection (on/off), default %(default)s"
    )
    add(
        "--explain-max-rows",
        "explain_max_rows",
        _positive_int,
        "rows per explanation call, default %(default)s",
    )
    add(
        "--explain-concurrency",
        "explain_concurrency",
        _positive_int,
        "explanation calls at once, default %(default)s",
    )
    add(
        "--compile-trees",
        "compile_trees",
        _switch,
        "compile LightGBM's trees in the background (on/off), default %(default)s",
    )
    add(
        "--drift-window-rows",
        "drift_window_rows",
        _non_negative_int,
        "rows in the drift window, 0 disables drift metrics, default %(default)s",
    )
    add(
        "--drift-min-rows",
        "drift_min_rows",
        _positive_int,
        "window rows before PSI is exported, default %(default)s",
    )
    add("--tls-cert", "tls_cert", str, "PEM certificate: serve TLS (with --tls-key)")
    add("--tls-key", "tls_key", str, "PEM private key of --tls-cert")
    add("--tls-client-ca", "tls_client_ca", str, "PEM CA clients must be signed by (mutual TLS)")
    add(
        "--health-port",
        "health_port",
        int,
        "plaintext grpc.health.v1-only port for probes, <0 none, default %(default)s",
    )
    return parser


def load_settings(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Parse flags (``sys.argv`` when None) over environment defaults (``os.environ``)."""
    parser = build_parser(os.environ if env is None else env)
    options = parser.parse_args(argv)
    bundle, repository = (
        None if path is None or str(path) in ("", ".") else path
        for path in (options.bundle, options.repository)
    )
    if (bundle is None) == (repository is None):
        parser.error(
            "give one of --bundle (INFERENCE_BUNDLE) and --repository (INFERENCE_REPOSITORY)"
        )
    if options.model_version and repository is None:
        parser.error("--model-version needs --repository")
    return Settings(**(vars(options) | {"bundle": bundle, "repository": repository}))
