"""Gateway settings: one pydantic-settings class, read once from the environment.

Every setting has a default and one environment variable (its ``validation_alias``); a
bad value stops the process at start with one line naming the variable
(:class:`SettingsError`). gunicorn's master reads them once (:func:`settings`) and the
workers it forks inherit that reading; ``python -m gateway.edge`` reads them to render
nginx's configuration.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_MIB = 1024 * 1024


class SettingsError(ValueError):
    """A setting's value is invalid; the message is one line naming its variable."""


def default_workers() -> int:
    """One gunicorn worker per two usable cores (at least one).

    Threads overlap the waits on the inference server, and the requests of one worker's
    threads share ModelInfer calls under load (:mod:`gateway.coalesce`): fewer, busier
    workers send fewer, larger calls (figures in docs/performance.md).
    """
    return max(1, len(os.sched_getaffinity(0)) // 2)


Positive = Annotated[int, Field(gt=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(gt=0, le=65535)]


class Config(BaseSettings):
    """Everything the gateway (gunicorn, the app and its nginx front) is configured with."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        env_ignore_empty=True,
        extra="ignore",
        str_strip_whitespace=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    host: str = Field(
        "127.0.0.1",
        validation_alias="GATEWAY_HOST",
        description="listen address (the container image sets 0.0.0.0)",
    )
    port: Port = Field(5001, validation_alias="GATEWAY_PORT", description="listen port")
    bind: str = Field(
        "",
        validation_alias="GATEWAY_BIND",
        description="gunicorn's own address, e.g. `unix:PATH` (bin/start-gateway sets it behind "
        "nginx); empty: the host and port",
    )
    workers: Positive = Field(
        default_factory=default_workers,
        validation_alias="GATEWAY_WORKERS",
        description="gunicorn processes (each holds its own gRPC channel and metadata cache)",
    )
    threads: Positive = Field(
        8, validation_alias="GATEWAY_THREADS", description="threads per gunicorn process"
    )
    keepalive_s: Positive = Field(
        75,
        validation_alias="GATEWAY_KEEPALIVE_S",
        description="idle keep-alive seconds (longer than common load balancers' idle timeout)",
    )
    access_log: bool = Field(
        False, validation_alias="GATEWAY_ACCESS_LOG", description="on: log every request"
    )
    log_level: str = Field(
        "info",
        validation_alias="GATEWAY_LOG_LEVEL",
        description="gunicorn's and the app's log level",
    )
    inference_target: str = Field(
        "localhost:8001",
        validation_alias="INFERENCE_TARGET",
        description="gRPC target of the inference server(s); `dns:///inference:8001` resolves "
        "every replica and balances round-robin over them",
    )
    model_name: str = Field(
        "",
        validation_alias="INFERENCE_MODEL",
        description="model to ask for; empty: the one model the server serves",
    )
    deadline_s: PositiveSeconds = Field(
        5.0,
        validation_alias="GATEWAY_DEADLINE_S",
        description="deadline of one request's ModelInfer calls",
    )
    ready_timeout_s: PositiveSeconds = Field(
        1.0,
        validation_alias="GATEWAY_READY_TIMEOUT_S",
        description="deadline of the ModelReady and ModelMetadata calls",
    )
    max_body_bytes: Positive = Field(
        48 * _MIB,
        validation_alias="GATEWAY_MAX_BODY_BYTES",
        description="larger request bodies (chunked included): 413",
    )
    max_rows: Positive = Field(
        20_000,
        validation_alias="GATEWAY_MAX_ROWS",
        description="more rows (or more JSON objects, counted before decoding, outside strings): "
        "413",
    )
    max_values: Positive = Field(
        2_500_000,
        validation_alias="GATEWAY_MAX_VALUES",
        description="more JSON values (counted before decoding, outside strings): 413; bounds what "
        "decoding can cost, whatever the body's shape",
    )
    memory_budget_bytes: Positive = Field(
        320 * _MIB,
        validation_alias="GATEWAY_MEMORY_BUDGET_BYTES",
        description="estimated decoded size of the requests one worker holds (a body counts as its "
        "bytes arrive, `gateway.memory`); beyond it 503 + `Retry-After`",
    )
    chunk_rows: Positive = Field(
        1024,
        validation_alias="GATEWAY_CHUNK_ROWS",
        description="rows per ModelInfer call; a larger request is converted whole, then sent as "
        "several calls that go out together under one deadline",
    )
    max_text_chars: Positive = Field(
        1024,
        validation_alias="GATEWAY_MAX_TEXT_CHARS",
        description="longer text values: 400",
    )
    max_error_details: Positive = Field(
        100,
        validation_alias="GATEWAY_MAX_ERROR_DETAILS",
        description="most entries in an error's `details` (the message gives the full count)",
    )
    retry_after_s: Positive = Field(
        1,
        validation_alias="GATEWAY_RETRY_AFTER_S",
        description="`Retry-After` seconds of a 503",
    )
    explain_deadline_s: PositiveSeconds = Field(
        60.0,
        validation_alias="GATEWAY_EXPLAIN_DEADLINE_S",
        description="deadline of one `/explain` request, all its calls together",
    )
    explain_chunk_rows: Positive = Field(
        1024,
        validation_alias="GATEWAY_EXPLAIN_CHUNK_ROWS",
        description="rows per explanation call, at most the server's `INFERENCE_EXPLAIN_MAX_ROWS`; "
        "the calls go one after another, and large ones amortise CatBoost's per-call "
        "SHAP preparation",
    )
    explain_top: Positive = Field(
        10,
        validation_alias="GATEWAY_EXPLAIN_TOP",
        description="contributions listed per row when `?top` is not given",
    )
    api_keys_file: str = Field(
        "",
        validation_alias="GATEWAY_API_KEYS_FILE",
        description="file of the accepted API keys' SHA-256 hashes (`gateway.auth`); set, every "
        "route but `/healthz` and `/readyz` needs a key; empty: anyone may call",
    )
    metrics_open: bool = Field(
        True,
        validation_alias="GATEWAY_METRICS_OPEN",
        description="off: `/metrics` needs a key too (when keys are on)",
    )
    inference_ca: str = Field(
        "",
        validation_alias="GATEWAY_INFERENCE_CA",
        description="PEM CA of the inference servers' certificates: set, the channel is TLS",
    )
    inference_cert: str = Field(
        "",
        validation_alias="GATEWAY_INFERENCE_CERT",
        description="PEM certificate the gateway presents to the servers (mutual TLS, with "
        "the key)",
    )
    inference_key: str = Field(
        "",
        validation_alias="GATEWAY_INFERENCE_KEY",
        description="PEM private key of `GATEWAY_INFERENCE_CERT`",
    )
    inference_server_name: str = Field(
        "",
        validation_alias="GATEWAY_INFERENCE_SERVER_NAME",
        description="name the servers' certificates are checked against, when not the "
        "target's host",
    )

    metrics_dir: str = Field(
        "",
        validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description="where the workers share their metrics (prometheus_client's "
        "multiprocess mode, `gateway.metrics`); bin/start-gateway makes a fresh one, "
        "removed on exit; empty: each process serves its own",
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"not a logging level: {value}")
        return value.lower()

    @classmethod
    def from_env(cls) -> Config:
        """Read the settings from the environment.

        Raises:
            SettingsError: a value is invalid (one line naming the variable).

        """
        try:
            return cls()
        except ValidationError as error:
            raise SettingsError(one_line(error)) from None


def one_line(error: ValidationError) -> str:
    """The first problem of ``error`` as ``VARIABLE='value': why`` (then how many more)."""
    problems = error.errors(include_url=False)
    first = problems[0]
    where = ".".join(str(part) for part in first["loc"]) or "settings"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    cause = first.get("ctx", {}).get("error")  # a check of ours: its own words
    reason = str(cause) if cause is not None else first["msg"]
    return f"{where}={first['input']!r}: {reason}{more}"


ENV: Mapping[str, str] = {
    name: str(field.validation_alias) for name, field in Config.model_fields.items()
}
"""The environment variable behind each setting."""


@functools.cache
def settings() -> Config:
    """The settings of this process, read on first use (forked workers inherit them)."""
    return Config.from_env()
