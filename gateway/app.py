"""The Flask application: ``POST /predict`` and the operational endpoints.

``create_app(config)`` builds one app with its own :class:`InferenceClient`. Request
handling is: content type -> size -> JSON -> rows -> columns (the model's inputs from
ModelMetadata) -> ModelInfer -> ``[{"class": c, "probability": p}, ...]``. Every
failure is an :class:`ApiError` answered as the contract's JSON error body; a bad value
fails only its own request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
from flask import Flask, Response, g, request
from numpy.typing import NDArray
from werkzeug.exceptions import HTTPException

from gateway import memory, metrics
from gateway.client import InferenceClient, StaleSchemaError
from gateway.coalesce import Coalescer
from gateway.config import Config
from gateway.convert import Batch, parse_body, rows_to_batch, split_rows
from gateway.errors import ApiError, merge_invalid, unavailable
from gateway.openapi import OPENAPI
from gateway.wire import ModelSchema

log = logging.getLogger("gateway")
CLIENT_KEY = "gateway.client"
_JSON = "application/json"
_STREAM_MIN_BYTES = 1 << 20  # bodies above 1 MiB are parsed piece by piece when possible
_COALESCE_MAX_ROWS = 64  # requests this small may share a ModelInfer call


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Build a JSON response with orjson."""
    return Response(orjson.dumps(payload), status=status, headers=headers, mimetype=_JSON)


def _is_json(mimetype: str) -> bool:
    """Whether a request content type is JSON (``application/json`` or ``*/*+json``)."""
    return mimetype == _JSON or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def create_app(config: Config | None = None) -> Flask:
    """Build the gateway app; ``config`` defaults to :meth:`Config.from_env`."""
    config = Config.from_env() if config is None else config
    app = Flask("gateway")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    client = InferenceClient(config)
    app.extensions[CLIENT_KEY] = client
    coalescer = Coalescer(
        client.infer_one, config.chunk_rows, 2 * config.deadline_s + 1, config.retry_after_s
    )
    openapi_body = orjson.dumps(OPENAPI)
    budget = memory.Budget(config.memory_budget_bytes, config.retry_after_s)

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        started = g.get("started")
        seconds = None if started is None else time.perf_counter() - started
        metrics.observe_request(route, response.status_code, seconds)
        return response

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        if error.status >= 502:
            metrics.count_inference_error(error.status)
        return _json(error.body(), error.status, error.headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = error.description or error.name
        if status == 413:
            message = f"request body larger than {config.max_body_bytes} bytes"
        # keep werkzeug's headers (``Allow`` of a 405), not its HTML content type
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return _json({"error": message, "details": []}, status, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unexpected error", exc_info=error)
        return _json({"error": "internal error", "details": []}, 500)

    @app.post("/predict")
    def predict() -> Response:
        if not _is_json(request.mimetype):
            raise ApiError(415, f"content type must be {_JSON}, got {request.mimetype or 'none'}")
        declared = min(request.content_length or config.max_body_bytes, config.max_body_bytes)
        with budget.reserve(memory.BYTES_PER_BODY_BYTE * declared) as reservation:
            body = _read_body(config.max_body_bytes)
            values = _count_values(body, config)
            reservation.resize(memory.estimate(len(body), values))
            return _json(_predict(client, coalescer, config, body))

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        schema = client.ready()
        return _json({"status": "ready", "model": schema.name, "version": schema.version})

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        try:
            body, content_type = metrics.render()
        except metrics.MetricsUnavailableError as error:
            raise unavailable(str(error), config.retry_after_s) from None
        return Response(body, content_type=content_type)

    @app.get("/openapi.json")
    def openapi() -> Response:
        return Response(openapi_body, mimetype=_JSON)

    return app


def _read_body(limit: int) -> bytes:
    """The request body, read from the server's stream whatever its framing.

    Raises:
        ApiError: 413 when it is longer than ``limit`` bytes (a chunked body included:
            it is never cut short), 400 when its chunked framing is broken.

    """
    too_large = ApiError(413, f"request body larger than {limit} bytes")
    length = request.content_length
    if length is not None and length > limit:
        raise too_large
    try:
        body: bytes = request.environ["wsgi.input"].read(limit + 1)
    except Exception as exc:  # only the client's framing or connection can fail here
        raise ApiError(400, f"malformed request body: {exc}") from None
    if len(body) > limit:
        raise too_large
    return body


def _count_values(body: bytes, config: Config) -> int:
    """The JSON values a body may hold at most (one per comma, plus one).

    Raises:
        ApiError: 413 when the body may hold more values than ``config.max_values``, or
            more objects than ``config.max_rows`` (byte counts made before decoding, so a
            body of millions of tiny values never costs the memory of decoding them).

    """
    values = body.count(b",") + 1
    if values > config.max_values:
        raise ApiError(
            413, f"more than {config.max_values} JSON values; the limit is {config.max_values}"
        )
    if body.count(b"{") > config.max_rows:
        raise ApiError(
            413, f"more than {config.max_rows} JSON objects (rows); the limit is {config.max_rows}"
        )
    return values


def _predict(
    client: InferenceClient, coalescer: Coalescer, config: Config, body: bytes
) -> list[dict[str, Any]]:
    """Score a body: piece by piece when it is a large plain array, else decoded whole."""
    split = split_rows(body, config.chunk_rows) if len(body) > _STREAM_MIN_BYTES else None
    if split is not None and split[1] <= config.max_rows:
        try:
            return _score_pieces(client, config, split[0])
        except _PieceError:
            pass  # not splittable after all: the whole body decides
    rows = parse_body(body)
    if len(rows) > config.max_rows:
        raise ApiError(413, f"{len(rows)} rows in one request; the limit is {config.max_rows}")
    return _score(client, coalescer, config, rows)


def _score(
    client: InferenceClient, coalescer: Coalescer, config: Config, rows: list[Any]
) -> list[dict[str, Any]]:
    """Convert and score rows; convert again once if the model's inputs changed."""
    schema = client.schema()
    try:
        probability, label = _infer(client, coalescer, config, schema, rows)
    except StaleSchemaError as exc:
        fresh = client.schema(refresh=True)
        if fresh == schema:
            raise ApiError(502, f"inference server rejected the request: {exc}") from None
        try:
            probability, label = _infer(client, coalescer, config, fresh, rows)
        except StaleSchemaError as again:
            raise ApiError(502, f"inference server rejected the request: {again}") from None
    metrics.observe_rows(len(rows))
    return [
        {"class": c, "probability": p}
        for c, p in zip(label.tolist(), probability.tolist(), strict=True)
    ]


def _infer(
    client: InferenceClient,
    coalescer: Coalescer,
    config: Config,
    schema: ModelSchema,
    rows: list[Any],
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Score rows: small requests merged with concurrent ones, one call, or chunks."""
    if len(rows) <= _COALESCE_MAX_ROWS:
        return coalescer.infer(schema, _convert(config, schema, rows, 0))
    if len(rows) <= config.chunk_rows:
        return client.infer_one(schema, _convert(config, schema, rows, 0))
    return client.infer(schema, _chunks(config, schema, _slices(config, rows)))


def _score_pieces(
    client: InferenceClient, config: Config, pieces: list[bytes]
) -> list[dict[str, Any]]:
    """Parse, convert and send a large array piece by piece (parsing overlaps scoring).

    Raises:
        _PieceError: a piece is not a JSON array by itself, or the model changed; the
            caller then handles the whole body the ordinary way.

    """
    schema = client.schema()
    try:
        probability, label = client.infer(schema, _chunks(config, schema, _parsed(config, pieces)))
    except StaleSchemaError:
        raise _PieceError from None
    metrics.observe_rows(len(label))
    return [
        {"class": c, "probability": p}
        for c, p in zip(label.tolist(), probability.tolist(), strict=True)
    ]


class _PieceError(Exception):
    """A piece of a split body cannot be handled on its own."""


def _parsed(config: Config, pieces: list[bytes]) -> Iterator[tuple[int, list[Any]]]:
    """Yield ``(offset, rows)`` of each piece, parsed only when needed."""
    offset = 0
    for piece in pieces:
        try:
            rows = orjson.loads(piece)
        except orjson.JSONDecodeError:
            raise _PieceError from None
        offset += len(rows)
        if offset > config.max_rows:
            raise _PieceError
        yield offset - len(rows), rows


def _slices(config: Config, rows: list[Any]) -> Iterator[tuple[int, list[Any]]]:
    """Yield ``(offset, rows)`` chunks of ``chunk_rows`` rows."""
    for start in range(0, len(rows), config.chunk_rows):
        yield start, rows[start : start + config.chunk_rows]


def _chunks(
    config: Config, schema: ModelSchema, chunks: Iterator[tuple[int, list[Any]]]
) -> Iterator[Batch]:
    """Yield converted chunks; after a bad one, only collect errors.

    Raises:
        ApiError: one 400 listing the invalid rows and values of every chunk.

    """
    errors: list[ApiError] = []
    for start, chunk in chunks:
        try:
            batch = _convert(config, schema, chunk, start)
        except ApiError as error:
            errors.append(error)
            continue
        if not errors:
            yield batch
    if errors:
        raise merge_invalid(errors, config.max_error_details)


def _convert(config: Config, schema: ModelSchema, rows: list[Any], offset: int) -> Batch:
    """Convert rows to the columns of ``schema``."""
    return rows_to_batch(
        rows,
        schema.inputs,
        max_text_chars=config.max_text_chars,
        max_errors=config.max_error_details,
        row_offset=offset,
    )


def warm_up(app: Flask) -> None:
    """Connect and fetch the model's metadata now, so the first request is fast."""
    client: InferenceClient = app.extensions[CLIENT_KEY]
    try:
        schema = client.schema()
    except ApiError as exc:
        log.warning("inference server not reachable yet: %s", exc.message)
    else:
        log.info("model %r version %r: %d inputs", schema.name, schema.version, len(schema.inputs))
