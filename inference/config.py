"""Server settings: one pydantic-settings class, each setting a flag and a variable.

:class:`Settings` is the one source of the names, defaults and checks: every field is
read from its environment variable (its ``validation_alias``), and ``python -m
inference`` also takes it as a flag (``--`` and the field's name with dashes), a flag
winning over its variable. A bad value stops the server at start with one line naming
the flag or the variable (exit code 2).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from proto.codec import MAX_MESSAGE_BYTES

PROG = "python -m inference"
PREFIX = "inference: "
"""How the server's refusals at start begin (as in :mod:`inference.server`)."""

Positive = Annotated[int, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
OptionalPort = Annotated[int, Field(le=65535)]
"""A port number, or a negative one for none."""


class Settings(BaseSettings):
    """Everything the inference server process is configured with."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        env_ignore_empty=True,
        extra="ignore",
        str_strip_whitespace=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    bundle: Path | None = Field(
        None,
        validation_alias="INFERENCE_BUNDLE",
        description="model bundle directory to serve (or a repository)",
    )
    repository: Path | None = Field(
        None,
        validation_alias="INFERENCE_REPOSITORY",
        description="model repository (`modeling.repository`): the server starts with the "
        "model version below and loads others on RepositoryModelLoad",
    )
    model_version: str = Field(
        "",
        validation_alias="INFERENCE_MODEL_VERSION",
        description="repository version to start with; empty: the repository's `SERVING`, "
        "else its latest",
    )
    host: str = Field(
        "127.0.0.1",
        validation_alias="INFERENCE_HOST",
        description="interface the gRPC and metrics servers bind to (the images set 0.0.0.0)",
    )
    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        8001, validation_alias="INFERENCE_PORT", description="gRPC port (0 picks a free one)"
    )
    metrics_port: OptionalPort = Field(
        8002,
        validation_alias="INFERENCE_METRICS_PORT",
        description="Prometheus port (0 picks a free one, negative disables metrics)",
    )
    max_batch_rows: Positive = Field(
        4096,
        validation_alias="INFERENCE_MAX_BATCH_ROWS",
        description="most rows one model call coalesces (a larger request runs alone)",
    )
    max_queue_delay_ms: NonNegativeFloat = Field(
        0.5,
        validation_alias="INFERENCE_MAX_QUEUE_DELAY_MS",
        description="how long a forming batch waits for more requests, only when others "
        "are already queued (a lone request never waits)",
    )
    workers: Positive = Field(
        16,
        validation_alias="INFERENCE_WORKERS",
        description="gRPC worker threads (concurrent calls in flight)",
    )
    grace_s: NonNegativeFloat = Field(
        8.0,
        validation_alias="INFERENCE_GRACE_S",
        description="seconds in-flight calls get to finish after SIGTERM or SIGINT",
    )
    log_level: str = Field(
        "INFO", validation_alias="INFERENCE_LOG_LEVEL", description="logging level name"
    )
    max_request_rows: Positive = Field(
        20_000,
        validation_alias="INFERENCE_MAX_REQUEST_ROWS",
        description="most rows one ModelInfer call may carry (INVALID_ARGUMENT beyond)",
    )
    max_text_bytes: Positive = Field(
        4096,
        validation_alias="INFERENCE_MAX_TEXT_BYTES",
        description="longest BYTES element accepted (INVALID_ARGUMENT beyond)",
    )
    max_message_bytes: Positive = Field(
        MAX_MESSAGE_BYTES,
        validation_alias="INFERENCE_MAX_MESSAGE_BYTES",
        description="largest request message gRPC accepts (RESOURCE_EXHAUSTED beyond)",
    )
    reflection: bool = Field(
        True,
        validation_alias="INFERENCE_REFLECTION",
        description="serve gRPC server reflection (for grpcurl and other tools)",
    )
    explain_max_rows: Positive = Field(
        1024,
        validation_alias="INFERENCE_EXPLAIN_MAX_ROWS",
        description="most rows one call may ask explanations for",
    )
    explain_concurrency: Positive = Field(
        1,
        validation_alias="INFERENCE_EXPLAIN_CONCURRENCY",
        description="explanation calls computed at once; one more is refused with "
        "RESOURCE_EXHAUSTED (scoring is never held up by explanations)",
    )
    compile_trees: bool = Field(
        False,
        validation_alias="INFERENCE_COMPILE_TREES",
        description="compile LightGBM's trees to native code in the background (the "
        "`accelerate` extra; answers unchanged to 1e-9); its cost is in docs/performance.md",
    )
    drift_window_rows: NonNegative = Field(
        10_000,
        validation_alias="INFERENCE_DRIFT_WINDOW_ROWS",
        description="scored rows the drift window holds (0 turns drift tracking off); its "
        "memory is in docs/monitoring.md",
    )
    drift_min_rows: Positive = Field(
        1_000,
        validation_alias="INFERENCE_DRIFT_MIN_ROWS",
        description="rows the window needs before PSI is exported",
    )
    tls_cert: str = Field(
        "",
        validation_alias="INFERENCE_TLS_CERT",
        description="PEM certificate to serve TLS with (with the key); empty: plaintext",
    )
    tls_key: str = Field(
        "", validation_alias="INFERENCE_TLS_KEY", description="PEM private key of the certificate"
    )
    tls_client_ca: str = Field(
        "",
        validation_alias="INFERENCE_TLS_CLIENT_CA",
        description="PEM CA that must have signed every client's certificate (mutual TLS); "
        "empty: any TLS client",
    )
    health_port: OptionalPort = Field(
        -1,
        validation_alias="INFERENCE_HEALTH_PORT",
        description="plaintext port serving `grpc.health.v1` only, for probes that cannot "
        "speak TLS; negative: none",
    )

    @field_validator("bundle", "repository", mode="before")
    @classmethod
    def _no_empty_path(cls, value: object) -> object:
        return None if value is None or str(value) in ("", ".") else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"not a logging level: {value}")
        return value.upper()

    @model_validator(mode="after")
    def _one_model_source(self) -> Self:
        if (self.bundle is None) == (self.repository is None):
            raise ValueError(
                "give one of --bundle (INFERENCE_BUNDLE) and --repository (INFERENCE_REPOSITORY)"
            )
        if self.model_version and self.repository is None:
            raise ValueError("--model-version needs --repository")
        return self


def flag(name: str) -> str:
    """The command-line flag of the setting ``name``."""
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser: one flag per :class:`Settings` field, unset by default."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve one model bundle over the Open Inference Protocol v2 (gRPC).",
        argument_default=argparse.SUPPRESS,
    )
    for name, field in Settings.model_fields.items():
        default = "none" if field.default in (None, "") else field.default
        parser.add_argument(
            flag(name),
            dest=name,
            metavar="VALUE",
            help=f"{field.description} (env {field.validation_alias}, default {default})",
        )
    return parser


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    """Settings from flags (``sys.argv`` when None) over the environment.

    A bad value exits with code 2 and one line on stderr naming the flag or variable.
    """
    given = vars(build_parser().parse_args(argv))
    try:
        return Settings(**given)
    except ValidationError as error:
        sys.stderr.write(f"{PREFIX}{_one_line(error, given)}\n")
        raise SystemExit(2) from None


def _one_line(error: ValidationError, given: dict[str, str]) -> str:
    """The first problem of ``error``, naming the flag or the variable it came from."""
    problems = error.errors(include_url=False)
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    cause = first.get("ctx", {}).get("error")
    reason = str(cause) if cause is not None else first["msg"]
    if not first["loc"]:  # a rule across settings
        return f"{reason}{more}"
    name = str(first["loc"][0])
    where = flag(name) if name in given else name
    return f"{where}={first['input']!r}: {reason}{more}"
