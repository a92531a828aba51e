"""The gRPC side of the gateway: one channel per worker process, metadata, ModelInfer.

The channel is created lazily in the process that uses it (after gunicorn forks its
workers; gRPC channels must not cross a fork), balances round-robin over every address
the target resolves to (``dns:///inference:8001`` with several replicas), retries
UNAVAILABLE once, keeps connections alive and reconnects quickly after an outage.
The model's inputs come from ModelMetadata, fetched on first use and fetched again
after any failed call. The channel is TLS when ``GATEWAY_INFERENCE_CA`` is set, presenting
the gateway's own certificate when one is given (mutual TLS). gRPC failures become
:class:`~gateway.errors.ApiError`: 503 with ``Retry-After`` when no server can take the
call, 504 when the deadline passes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import numpy as np
from numpy.typing import NDArray

from gateway.config import Config
from gateway.convert import Batch
from gateway.errors import ApiError, timed_out, unavailable
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from proto.codec import (
    BASE_LOGIT,
    CLASS,
    CONTRIBUTIONS,
    LOGIT,
    MAX_MESSAGE_BYTES,
    PROBABILITY,
    SERVICE_NAME,
    CodecError,
    ModelSchema,
    decode_outputs,
    encode_request,
)

EXPLANATION = (PROBABILITY, CLASS, LOGIT, BASE_LOGIT, CONTRIBUTIONS)
"""The outputs ``/explain`` asks for."""

log = logging.getLogger("gateway")
_SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [
        {
            "name": [{"service": SERVICE_NAME}],
            "retryPolicy": {
                "maxAttempts": 2,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.2s",
                "backoffMultiplier": 2,
                # CANCELLED: what a stopping server answers a call that arrived as it shut
                # down, before any handler ran (in-flight calls get its grace period);
                # gRPC retries only attempts that received no response, and scoring is pure.
                "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"],
            },
        }
    ],
}
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.service_config", json.dumps(_SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.dns_min_time_between_resolutions_ms", 5_000),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)
"""Channel arguments (round robin, one retry on UNAVAILABLE, keepalive, fast reconnect)."""

_UNAVAILABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED}
)
_STALE = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)


_REASONS = {
    grpc.StatusCode.DEADLINE_EXCEEDED: "no answer within the deadline",
    grpc.StatusCode.UNAVAILABLE: "unavailable",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "overloaded",
    grpc.StatusCode.CANCELLED: "cancelled",
    grpc.StatusCode.NOT_FOUND: "model not found",
}
"""What a client is told of a failed call (the gRPC details stay in the log)."""


PINNED_ATTEMPTS = 16
"""How often a chunk pinned to a version is sent again after a replica lacked it."""
PINNED_STALLS = 3
"""Attempts in a row that no replica answered with the version: it is gone everywhere."""


class Scores(NamedTuple):
    """A batch's scores and the one model version that gave all of them."""

    probability: NDArray[np.float64]
    label: NDArray[np.int64]
    version: str


def deadline_passed(retry_after_s: int) -> ApiError:
    """The 504 of an inference call whose deadline passed (gRPC's or the gateway's own)."""
    reason = _REASONS[grpc.StatusCode.DEADLINE_EXCEEDED]
    return timed_out(f"inference server: inference failed ({reason})", retry_after_s)


class StaleSchemaError(Exception):
    """The server rejected a call made from the cached metadata (the model may have changed)."""


class TlsConfigError(ValueError):
    """The gateway's TLS settings are incomplete or name files that cannot be read."""


def _read_pem(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{setting}={path}: {exc.strerror}") from None


def tls_files(config: Config) -> tuple[bytes, bytes | None, bytes | None] | None:
    """The CA, client key and client certificate (PEM) of a TLS channel, or None for plaintext.

    Raises:
        TlsConfigError: a client certificate without its key (or the reverse), either
            without a CA, or a file that cannot be read.

    """
    ca, cert, key = config.inference_ca, config.inference_cert, config.inference_key
    if bool(cert) != bool(key) or ((cert or key) and not ca):
        raise TlsConfigError(
            "mutual TLS needs GATEWAY_INFERENCE_CA, GATEWAY_INFERENCE_CERT and "
            "GATEWAY_INFERENCE_KEY together"
        )
    if not ca:
        return None
    return (
        _read_pem(ca, "GATEWAY_INFERENCE_CA"),
        _read_pem(key, "GATEWAY_INFERENCE_KEY") if key else None,
        _read_pem(cert, "GATEWAY_INFERENCE_CERT") if cert else None,
    )


class InferenceClient:
    """Thread-safe client of one inference service, used by every thread of a worker."""

    def __init__(self, config: Config) -> None:
        """Remember the settings and read the TLS files; nothing connects until first use."""
        self._config = config
        self._tls = tls_files(config)
        self._lock = threading.Lock()
        self._pid = -1
        self._channel: grpc.Channel | None = None
        self._stub: Any = None
        self._infer: Any = None
        self._schema: ModelSchema | None = None

    def _connect(self) -> None:
        """Create this process's channel (again after a fork)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            target, options = self._config.inference_target, list(CHANNEL_OPTIONS)
            if self._tls is None:
                channel = grpc.insecure_channel(target, options=options)
            else:
                if self._config.inference_server_name:
                    name = self._config.inference_server_name
                    options.append(("grpc.ssl_target_name_override", name))
                credentials = grpc.ssl_channel_credentials(*self._tls)
                channel = grpc.secure_channel(target, credentials, options=options)
            self._stub = pb_grpc.GRPCInferenceServiceStub(channel)
            # Requests are pre-serialized bytes (proto.codec.encode_request): no serializer.
            self._infer = channel.unary_unary(
                f"/{SERVICE_NAME}/ModelInfer",
                request_serializer=None,
                response_deserializer=pb.ModelInferResponse.FromString,
            )
            self._channel, self._schema, self._pid = channel, None, os.getpid()

    def close(self) -> None:
        """Close the channel (a later call reconnects)."""
        with self._lock:
            if self._channel is not None and self._pid == os.getpid():
                self._channel.close()
            self._channel, self._stub, self._infer, self._pid = None, None, None, -1

    def invalidate(self) -> None:
        """Forget the cached metadata; the next call fetches it again."""
        self._schema = None

    def schema(self, *, refresh: bool = False) -> ModelSchema:
        """Return the served model's inputs, from cache or ModelMetadata.

        Raises:
            ApiError: 503 when the server cannot be reached or its metadata is unusable.

        """
        if self._pid != os.getpid():
            self._connect()
        schema = self._schema
        if schema is not None and not refresh:
            return schema
        request = pb.ModelMetadataRequest(name=self._config.model_name)
        try:
            metadata = self._stub.ModelMetadata(request, timeout=self._config.ready_timeout_s)
            schema = ModelSchema.from_metadata(metadata)
        except grpc.RpcError as exc:
            raise self._error(exc, "model metadata") from None
        except CodecError as exc:
            raise unavailable(
                f"model metadata unusable: {exc}", self._config.retry_after_s
            ) from None
        cached = self._schema
        if cached is not None and cached == schema:
            return cached  # unchanged: keep its compiled decoder and request prefixes
        self._schema = schema
        return schema

    def ready(self) -> ModelSchema:
        """Return the model's schema, fetched now, when the server reports it ready.

        Fetched, not cached: it names the version serving now (the cache is refreshed).

        Raises:
            ApiError: 503 otherwise.

        """
        schema = self.schema(refresh=True)
        request = pb.ModelReadyRequest(name=schema.name)
        try:
            answer = self._stub.ModelReady(request, timeout=self._config.ready_timeout_s)
        except grpc.RpcError as exc:
            raise self._error(exc, "model readiness") from None
        if not answer.ready:
            self.invalidate()
            raise unavailable(f"model {schema.name!r} is not ready", self._config.retry_after_s)
        return schema

    def infer(
        self,
        schema: ModelSchema,
        batch: Batch,
        chunk_rows: int,
        timeout_s: float | None = None,
    ) -> Scores:
        """Score a batch converted with ``schema``, ``chunk_rows`` rows per ModelInfer call.

        The calls go out together (the server scores them concurrently) under one deadline:
        ``timeout_s`` from now, or the configured deadline. One call is a plain blocking
        call (the lowest overhead for one row). Every row is scored by one model version:
        when a swap lands between the chunks, the chunks another version answered are sent
        again pinned to the version that answered the most (:meth:`_one_version`).

        Raises:
            StaleSchemaError: the server rejected the request as not matching its model.
            ApiError: 503/504 when the server is unavailable or too slow (or the version
                changed under the call twice), 502 when its answer is unusable.

        """
        deadline = time.monotonic() + (self._config.deadline_s if timeout_s is None else timeout_s)
        n = batch.n_rows
        ranges = [(start, min(start + chunk_rows, n)) for start in range(0, n, chunk_rows)]
        responses = self._send(schema, batch, ranges, deadline)
        if len({r.model_version for r in responses}) > 1:
            responses = self._one_version(schema, batch, ranges, responses, deadline)
        probability, label = self._decode(responses, [stop - start for start, stop in ranges])
        return Scores(probability, label, responses[0].model_version)

    def _send(
        self,
        schema: ModelSchema,
        batch: Batch,
        ranges: list[tuple[int, int]],
        deadline: float,
    ) -> list[pb.ModelInferResponse]:
        """One ModelInfer call per range, concurrently (a single one blocking), any version."""
        calls: list[Any] = []
        try:
            if len(ranges) == 1:
                request = encode_request(schema, batch.columns, *ranges[0])
                return [self._infer(request, timeout=self._left(deadline))]
            for start, stop in ranges:
                request = encode_request(schema, batch.columns, start, stop)
                calls.append(self._infer.future(request, timeout=self._left(deadline)))
            return [call.result() for call in calls]
        except grpc.RpcError as exc:
            raise self._rpc_failure(exc) from None
        finally:
            for call in calls:
                call.cancel()  # no-op for finished calls; frees the rest after a failure

    def _one_version(
        self,
        schema: ModelSchema,
        batch: Batch,
        ranges: list[tuple[int, int]],
        responses: list[pb.ModelInferResponse],
        deadline: float,
    ) -> list[pb.ModelInferResponse]:
        """Re-send the chunks of a split answer pinned to one version, the most frequent first.

        Behind several replicas mid-rollout, a pinned chunk may reach a replica that does not
        serve the version (NOT_FOUND): such chunks are sent again, up to
        :data:`PINNED_ATTEMPTS` times, so round robin reaches one that does. A version
        that no chunk got in :data:`PINNED_STALLS` attempts in a row is taken as served
        nowhere any more and gives way to the next; when none answers every chunk, the
        client is asked to retry (503).
        """
        counts = Counter(r.model_version for r in responses)
        for version, _ in counts.most_common():
            merged = list(responses)
            redo = [i for i, r in enumerate(merged) if r.model_version != version]
            attempts = stalled = 0
            while attempts < PINNED_ATTEMPTS and stalled < PINNED_STALLS:
                attempts += 1
                again = self._send_pinned(
                    schema, batch, [ranges[i] for i in redo], deadline, version
                )
                for index, response in zip(redo, again, strict=True):
                    if response is not None:
                        merged[index] = response
                left = [i for i, response in zip(redo, again, strict=True) if response is None]
                if not left:
                    return merged
                stalled = stalled + 1 if len(left) == len(redo) else 0
                redo = left
        raise unavailable(
            "inference server: the model version changed during the call; retry",
            self._config.retry_after_s,
        )

    def _send_pinned(
        self,
        schema: ModelSchema,
        batch: Batch,
        ranges: list[tuple[int, int]],
        deadline: float,
        version: str,
    ) -> list[pb.ModelInferResponse | None]:
        """One ModelInfer call per range pinned to ``version``; None where it was NOT_FOUND."""
        calls: list[Any] = []
        answers: list[pb.ModelInferResponse | None] = []
        try:
            for start, stop in ranges:
                request = encode_request(schema, batch.columns, start, stop, version=version)
                calls.append(self._infer.future(request, timeout=self._left(deadline)))
            for call in calls:
                try:
                    answers.append(call.result())
                except grpc.RpcError as exc:
                    if exc.code() is not grpc.StatusCode.NOT_FOUND:
                        raise self._rpc_failure(exc) from None
                    answers.append(None)  # this replica does not serve the version
        finally:
            for call in calls:
                call.cancel()
        return answers

    def explain(
        self, schema: ModelSchema, batch: Batch, chunk_rows: int, timeout_s: float
    ) -> dict[str, NDArray[Any]]:
        """Explain a batch: :data:`EXPLANATION`'s outputs, by name, for every row.

        The chunks are explained one after another under one deadline (explaining is
        costly: one request keeps to one core of one replica at a time), every chunk
        pinned to the version ``schema`` describes: the contributions' names are that
        version's, and a swap makes the caller refresh the schema and start again.

        Raises:
            StaleSchemaError: the server rejected the request as not matching its model,
                or serves another version than ``schema`` describes.
            ApiError: 501 when the server does not explain, 503/504 when it is
                unavailable, busy or too slow, 502 when its answer is unusable.

        """
        width = len(schema.contribution_names)
        if not width:
            raise ApiError(501, f"model {schema.name!r} does not explain its scores")
        deadline = time.monotonic() + timeout_s
        parts: list[dict[str, NDArray[Any]]] = []
        for start in range(0, batch.n_rows, chunk_rows):
            stop = min(start + chunk_rows, batch.n_rows)
            request = encode_request(
                schema, batch.columns, start, stop, EXPLANATION, version=schema.version
            )
            try:
                response = self._infer(request, timeout=self._left(deadline))
            except grpc.RpcError as exc:
                raise self._rpc_failure(exc) from None
            n = stop - start
            shapes = dict.fromkeys(EXPLANATION, (n,)) | {CONTRIBUTIONS: (n, width)}
            try:
                parts.append(decode_outputs(response, shapes))
            except CodecError as exc:
                raise ApiError(502, f"unusable answer from the inference server: {exc}") from None
        return {name: np.concatenate([part[name] for part in parts]) for name in EXPLANATION}

    @staticmethod
    def _decode(
        responses: list[pb.ModelInferResponse], sizes: list[int]
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Concatenate the outputs of consecutive responses."""
        try:
            parts = [
                decode_outputs(r, {PROBABILITY: (n,), CLASS: (n,)})
                for r, n in zip(responses, sizes, strict=True)
            ]
        except CodecError as exc:
            raise ApiError(502, f"unusable answer from the inference server: {exc}") from None
        probability = np.concatenate([p[PROBABILITY] for p in parts]).astype(np.float64)
        return probability, np.concatenate([p[CLASS] for p in parts]).astype(np.int64)

    def _left(self, deadline: float) -> float:
        """Seconds left before ``deadline``; a 504 once none are (no call is sent then)."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise deadline_passed(self._config.retry_after_s)
        return left

    def _rpc_failure(self, exc: grpc.RpcError) -> Exception:
        """The exception for a failed ModelInfer: stale metadata or an ApiError."""
        if exc.code() in _STALE:
            self.invalidate()
            return StaleSchemaError(f"{exc.code().name}: {exc.details()}")
        return self._error(exc, "inference")

    def _error(self, exc: grpc.RpcError, what: str) -> ApiError:
        """Map a failed gRPC call to the error answered to the client.

        The client learns what failed; the gRPC details (addresses, status text) go to the
        log only.
        """
        code = exc.code()
        log.warning("inference server: %s failed (%s: %s)", what, code.name, exc.details())
        message = f"inference server: {what} failed ({_REASONS.get(code, 'error')})"
        self.invalidate()
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return timed_out(message, self._config.retry_after_s)
        if code in _UNAVAILABLE:
            return unavailable(message, self._config.retry_after_s)
        if code in _STALE:
            return unavailable(message + "; check INFERENCE_MODEL", self._config.retry_after_s)
        return ApiError(502, message)
