"""Gateway settings, read once from the environment (every one has a default)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

_MIB = 1024 * 1024


@dataclass(frozen=True)
class Config:
    """Everything the gateway app is configured with.

    Attributes:
        inference_target: gRPC target of the inference server(s); ``dns:///host:port``
            resolves every replica and balances across them round-robin.
        model_name: model to ask ModelMetadata for; empty asks the server for the one
            model it serves (the served name is then used for every call).
        deadline_s: deadline of one ModelInfer call (a 10,000-row call included).
        ready_timeout_s: deadline of the ModelReady/ModelMetadata calls.
        max_body_bytes: largest accepted request body (413 above it).
        max_rows: most rows accepted in one request (413 above it; a body holding more
            JSON objects than this is refused before it is decoded).
        max_values: most JSON values in one body (413 above it, before decoding): bounds
            what decoding can cost, whatever the body's shape.
        memory_budget_bytes: estimated decoded size of the requests one worker process
            holds at once (:mod:`gateway.memory`); beyond it 503 with ``Retry-After``.
        chunk_rows: rows per ModelInfer call; a larger request is converted and sent
            chunk by chunk, so converting one chunk overlaps with scoring the last.
        max_text_chars: longest accepted text value (400 above it).
        max_error_details: most entries listed in an error's ``details``.
        retry_after_s: ``Retry-After`` seconds sent with a 503.
        explain_deadline_s: deadline of one ``/explain`` request, all its calls together
            (explaining costs far more than scoring).
        explain_chunk_rows: rows per explanation call (at most the server's
            ``INFERENCE_EXPLAIN_MAX_ROWS``); the calls go one after another, so one
            request explains on one core of one replica at a time. Large chunks amortise
            CatBoost's SHAP preparation, which it redoes on every call for batches.
        explain_top: contributions listed per row when ``/explain`` is not told ``top``.
        api_keys_file: file of the accepted API keys' SHA-256 hashes (:mod:`gateway.auth`);
            empty lets anyone call. Every route but ``/healthz`` and ``/readyz`` then
            needs a key.
        metrics_open: whether ``/metrics`` answers without a key when keys are on.
        inference_ca: PEM file of the CA that signed the inference servers' certificates;
            set, the channel to them is TLS (plaintext otherwise).
        inference_cert: PEM certificate the gateway presents to the inference servers
            (mutual TLS; with ``inference_key``).
        inference_key: PEM private key of ``inference_cert``.
        inference_server_name: name the servers' certificates are checked against, when
            it is not the target's host name.

    """

    inference_target: str = "localhost:8001"
    model_name: str = ""
    deadline_s: float = 5.0
    ready_timeout_s: float = 1.0
    max_body_bytes: int = 48 * _MIB
    max_rows: int = 20_000
    max_values: int = 2_500_000
    memory_budget_bytes: int = 320 * _MIB
    chunk_rows: int = 1024
    max_text_chars: int = 1024
    max_error_details: int = 100
    retry_after_s: int = 1
    explain_deadline_s: float = 60.0
    explain_chunk_rows: int = 1024
    explain_top: int = 10
    api_keys_file: str = ""
    metrics_open: bool = True
    inference_ca: str = ""
    inference_cert: str = ""
    inference_key: str = ""
    inference_server_name: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Build a Config from environment variables (see :data:`ENV`); bad values raise."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in fields(cls):
            text = env.get(ENV[field.name])
            if text is None or text.strip() == "":
                continue
            kind = type(getattr(cls, field.name))
            if kind is bool:
                values[field.name] = _switch(ENV[field.name], text)
                continue
            try:
                value = kind(text.strip())
            except ValueError as exc:
                raise ValueError(f"{ENV[field.name]}={text!r}: {exc}") from exc
            if kind is not str and value <= 0:
                raise ValueError(f"{ENV[field.name]}={text!r}: must be > 0")
            values[field.name] = value
        return cls(**values)  # type: ignore[arg-type]


def _switch(variable: str, text: str) -> bool:
    """An on/off setting: 1/true/on/yes or 0/false/off/no."""
    lowered = text.strip().lower()
    if lowered not in ("1", "true", "on", "yes", "0", "false", "off", "no"):
        raise ValueError(f"{variable}={text!r}: must be on or off")
    return lowered in ("1", "true", "on", "yes")


ENV: Mapping[str, str] = {
    "inference_target": "INFERENCE_TARGET",
    "model_name": "INFERENCE_MODEL",
    "deadline_s": "GATEWAY_DEADLINE_S",
    "ready_timeout_s": "GATEWAY_READY_TIMEOUT_S",
    "max_body_bytes": "GATEWAY_MAX_BODY_BYTES",
    "max_rows": "GATEWAY_MAX_ROWS",
    "max_values": "GATEWAY_MAX_VALUES",
    "memory_budget_bytes": "GATEWAY_MEMORY_BUDGET_BYTES",
    "chunk_rows": "GATEWAY_CHUNK_ROWS",
    "max_text_chars": "GATEWAY_MAX_TEXT_CHARS",
    "max_error_details": "GATEWAY_MAX_ERROR_DETAILS",
    "retry_after_s": "GATEWAY_RETRY_AFTER_S",
    "explain_deadline_s": "GATEWAY_EXPLAIN_DEADLINE_S",
    "explain_chunk_rows": "GATEWAY_EXPLAIN_CHUNK_ROWS",
    "explain_top": "GATEWAY_EXPLAIN_TOP",
    "api_keys_file": "GATEWAY_API_KEYS_FILE",
    "metrics_open": "GATEWAY_METRICS_OPEN",
    "inference_ca": "GATEWAY_INFERENCE_CA",
    "inference_cert": "GATEWAY_INFERENCE_CERT",
    "inference_key": "GATEWAY_INFERENCE_KEY",
    "inference_server_name": "GATEWAY_INFERENCE_SERVER_NAME",
}
"""The environment variable behind each setting."""
