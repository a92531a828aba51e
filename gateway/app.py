"""The Flask application: ``POST /predict``, ``POST /explain`` and the operational endpoints.

``create_app(config)`` builds one app with its own :class:`InferenceClient`. Request
handling is: content type -> size -> JSON -> rows -> columns (the model's inputs from
ModelMetadata) -> ModelInfer -> ``[{"class": c, "probability": p}, ...]``; ``/explain``
takes the same body and limits, asks for the explanation outputs too and answers each
row's logit and largest contributions. Every failure is an :class:`ApiError` answered as
the contract's JSON error body; a bad value fails only its own request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, g, request
from numpy.typing import NDArray
from werkzeug.exceptions import HTTPException

from gateway import auth, contract, drain, memory, metrics, oip_rest, scan
from gateway.client import InferenceClient, Scores, StaleSchemaError
from gateway.coalesce import Coalescer
from gateway.config import Config
from gateway.convert import Batch, parse_body, rows_to_batch
from gateway.decode import decoder_for
from gateway.errors import ApiError, error_body, too_large, unavailable
from gateway.explanations import explanation_rows, parse_top
from gateway.openapi import API_VERSION, OPENAPI
from proto.codec import CLASS, PROBABILITY, ModelSchema

log = logging.getLogger("gateway")
CLIENT_KEY = "gateway.client"
_JSON = "application/json"
_COALESCE_MAX_ROWS = 64  # requests this small may share a ModelInfer call
VERSION_HEADER = "X-Model-Version"
"""The response header naming the model version that gave an answer."""
_PIECE_BYTES = 1024 * 1024  # a body is read (and budgeted) this much at a time
T = TypeVar("T")


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Build a JSON response of a contract answer (:mod:`gateway.contract`)."""
    return _raw_json(contract.encode(payload), status, headers)


def _raw_json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Build a JSON response of an encoded body."""
    return Response(body, status=status, headers=headers, mimetype=_JSON)


def _route() -> str:
    """The request's route as a metrics label: its template, never the client's path."""
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def _is_json(mimetype: str) -> bool:
    """Whether a request content type is JSON (``application/json`` or ``*/*+json``)."""
    return mimetype == _JSON or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def create_app(config: Config | None = None) -> Flask:
    """Build the gateway app; ``config`` defaults to :meth:`Config.from_env`."""
    config = Config.from_env() if config is None else config
    app = Flask("gateway")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    # whatever answers, the rest of the body is read: the answer then reaches the client
    app.wsgi_app = drain.read_to_the_end(app.wsgi_app, config.max_body_bytes)  # type: ignore[method-assign,assignment]
    client = InferenceClient(config)
    app.extensions[CLIENT_KEY] = client
    coalescer = Coalescer(
        lambda schema, batch, timeout: client.infer(schema, batch, batch.n_rows, timeout),
        config.chunk_rows,
        config.deadline_s,
        config.retry_after_s,
    )
    openapi_body = contract.encode(OPENAPI)
    budget = memory.Budget(config.memory_budget_bytes, config.retry_after_s)
    keys = auth.KeyRing.load(config.api_keys_file) if config.api_keys_file else None

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()
        if keys is not None:  # before the body is read, like the 415
            reason = auth.refusal(keys, request.path, request.headers.get, config.metrics_open)
            if reason is not None:
                metrics.count_auth_rejected(reason)
                raise auth.unauthorized(reason)

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("started")
        seconds = None if started is None else time.perf_counter() - started
        metrics.observe_request(_route(), response.status_code, seconds)
        return response

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        if error.status >= 502:
            metrics.count_inference_error(error.status)
        return _raw_json(error.body(), error.status, error.headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = error.description or error.name
        if status == 413:
            message = too_large(config.max_body_bytes).message
        # keep werkzeug's headers (``Allow`` of a 405), not its HTML content type
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return _raw_json(error_body(message), status, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unexpected error", exc_info=error)
        return _raw_json(error_body("internal error"), 500)

    @app.post("/predict")
    def predict() -> Response:
        return _admitted(config, budget, lambda body, _: _score(client, coalescer, config, body))

    @app.post("/explain")
    def explain() -> Response:
        top = parse_top(request.args.get("top"), config.explain_top)
        return _admitted(
            config, budget, lambda body, held: _explain(client, config, body, top, held)
        )

    @app.get("/healthz")
    def healthz() -> Response:
        return _json(contract.Health())

    @app.get("/readyz")
    def readyz() -> Response:
        schema = client.ready()
        return _json(
            contract.Readiness(schema.name, schema.version),
            headers={VERSION_HEADER: schema.version},
        )

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

    def oip_infer(name: str) -> Response:
        return _admitted(
            config,
            budget,
            lambda body, held: _oip_infer(client, coalescer, config, name, body, reservation=held),
            accepts=oip_rest.accepts,
            count=oip_rest.count_values,
        )

    oip_rest.register(app, client, oip_infer, API_VERSION)
    return app


def _admitted(
    config: Config,
    budget: memory.Budget,
    handle: Callable[[bytes, memory.Reservation], tuple[Any, str]],
    *,
    accepts: Callable[[str], bool] = _is_json,
    count: Callable[[bytes, Config], int] | None = None,
) -> Response:
    """Check, bound and read a body within the memory budget; answer ``handle``'s.

    ``handle`` returns the answer and the model version that gave it (a header).
    ``accepts`` says which content types are read; ``count`` bounds the values a body
    may hold (:func:`_count_values`, the rows of ``/predict``, by default).
    """
    if not accepts(request.mimetype):
        raise ApiError(415, f"content type must be {_JSON}, got {request.mimetype or 'none'}")
    declared = request.content_length
    if declared is not None and declared > config.max_body_bytes:
        raise too_large(config.max_body_bytes)  # before it holds any of the budget
    with budget.reserve(0) as reservation:
        body = _read_body(config.max_body_bytes, declared, reservation)
        values = (_count_values if count is None else count)(body, config)
        reservation.resize(memory.estimate(len(body), values))
        answer, version = handle(body, reservation)
        metrics.count_answer(_route(), version)
        return _json(answer, headers={VERSION_HEADER: version})


def _read_body(limit: int, declared: int | None, reservation: memory.Reservation) -> bytes:
    """The request body, read from the server's stream whatever its framing.

    It is read a piece at a time, and the reservation grows before each piece by what
    the piece may cost: the budget holds bytes received, never bytes only promised (an
    idle upload that declared 40 MB holds the budget of the bytes it sent).

    Raises:
        ApiError: 413 when it turns out longer than ``limit`` bytes (a chunked body: it is
            never cut short), 400 when its chunked framing is broken, 503 when the budget
            cannot hold the next piece now.

    """
    stream = request.environ["wsgi.input"]
    pieces: list[bytes] = []
    received = 0
    while received <= limit:
        wanted = min(_PIECE_BYTES, limit + 1 - received)
        if declared is not None:  # one byte more than promised: a body that ends there
            wanted = min(wanted, max(declared - received, 0) + 1)
        reservation.resize(memory.BYTES_PER_BODY_BYTE * (received + wanted))
        try:
            piece: bytes = stream.read(wanted)
        except Exception as exc:  # only the client's framing or connection can fail here
            raise ApiError(400, f"malformed request body: {exc}") from None
        if not piece:
            break
        pieces.append(piece)
        received += len(piece)
    if received > limit:
        raise too_large(limit)
    return b"".join(pieces)


def _count_values(body: bytes, config: Config) -> int:
    """The JSON values a body may hold at most (one per comma, plus one).

    Every ``,`` and ``{`` byte counts at first; a body over a limit by that count is
    counted again outside its strings (:func:`gateway.scan.outside_strings`), so text
    values holding commas or braces are never refused for them.

    Raises:
        ApiError: 413 when the body holds more values than ``config.max_values``, or
            more objects than ``config.max_rows`` (byte counts made before decoding, so a
            body of millions of tiny values never costs the memory of decoding them).

    """
    values, objects = body.count(b",") + 1, body.count(b"{")
    if values > config.max_values or objects > config.max_rows:
        objects, commas = scan.outside_strings(body)
        values = commas + 1
    if values > config.max_values:
        raise ApiError(
            413, f"more than {config.max_values} JSON values; the limit is {config.max_values}"
        )
    if objects > config.max_rows:
        raise ApiError(
            413, f"more than {config.max_rows} JSON objects (rows); the limit is {config.max_rows}"
        )
    return values


def _score(
    client: InferenceClient, coalescer: Coalescer, config: Config, body: bytes
) -> tuple[list[contract.Prediction], str]:
    """Convert and score a body: one :class:`~gateway.contract.Prediction` a row, the version."""
    probability, label, version = _with_schema(
        client,
        lambda schema: _infer(client, coalescer, config, schema, _convert(config, schema, body)),
        lambda: parse_body(body),
    )
    metrics.observe_rows(len(label))
    answer = list(map(contract.Prediction, label.tolist(), probability.tolist()))
    return answer, version


def _explain(
    client: InferenceClient,
    config: Config,
    body: bytes,
    top: int | None,
    reservation: memory.Reservation,
) -> tuple[list[contract.Explanation], str]:
    """Convert and explain a body: each row's logit and ``top`` contributions; the version."""
    held = reservation.size

    def explain(schema: ModelSchema) -> tuple[ModelSchema, dict[str, NDArray[Any]]]:
        batch = _convert(config, schema, body)
        return schema, _explanation(
            client, config, schema, batch, top=top, held=held, reservation=reservation
        )

    schema, outputs = _with_schema(client, explain, lambda: parse_body(body))
    rows = explanation_rows(outputs, schema.contribution_names, schema.contribution_groups, top)
    return rows, schema.version


def _explanation(
    client: InferenceClient,
    config: Config,
    schema: ModelSchema,
    batch: Batch,
    *,
    top: int | None,
    held: int,
    reservation: memory.Reservation,
) -> dict[str, NDArray[Any]]:
    """Explain a batch, ``top`` contributions a row listed (None: all).

    The answer's memory joins the request's reservation (``held`` before it) before
    anything is explained (once: a retry with fresh metadata resizes to the same total).
    """
    listed = len(schema.contribution_names)
    listed = listed if top is None else min(top, listed)  # a larger top lists them all
    answer = memory.BYTES_PER_CONTRIBUTION * batch.n_rows * max(listed, 1)
    if answer > config.memory_budget_bytes:
        raise ApiError(
            413,
            f"explaining {batch.n_rows} rows with {listed} contributions each needs more "
            "memory than this gateway has; send fewer rows or a smaller top",
        )
    reservation.resize(held + answer)
    return client.explain(schema, batch, config.explain_chunk_rows, config.explain_deadline_s)


def _oip_infer(
    client: InferenceClient,
    coalescer: Coalescer,
    config: Config,
    name: str,
    body: bytes,
    *,
    reservation: memory.Reservation,
) -> tuple[contract.InferResponse, str]:
    """An OIP REST infer answer and the version that gave it.

    The answer holds scores, or an explanation when the request names one.
    """
    infer = oip_rest.parse_infer(body, request.headers.get(oip_rest.HEADER_LENGTH))
    held = reservation.size

    def run(schema: ModelSchema) -> tuple[ModelSchema, dict[str, NDArray[Any]], str]:
        batch = infer.batch(oip_rest.served(schema, name), config)
        if infer.explains:
            outputs = _explanation(
                client, config, schema, batch, top=None, held=held, reservation=reservation
            )
            return schema, outputs, schema.version
        scores = _infer(client, coalescer, config, schema, batch)
        metrics.observe_rows(batch.n_rows)
        return schema, {PROBABILITY: scores.probability, CLASS: scores.label}, scores.version

    schema, outputs, version = _with_schema(client, run, lambda: None)
    return oip_rest.infer_response(schema, infer, outputs, version), version


def _with_schema(
    client: InferenceClient, run: Callable[[ModelSchema], T], check: Callable[[], object]
) -> T:
    """``run(schema)``, once more with fresh metadata if the model's inputs changed.

    ``check()`` validates the body when the metadata cannot be had: a malformed body is
    the client's fault first, and its 400 wins over the 503.
    """
    try:
        schema = client.schema()
    except ApiError:
        check()
        raise
    try:
        return run(schema)
    except StaleSchemaError as exc:
        fresh = client.schema(refresh=True)
        if fresh == schema:
            raise ApiError(502, f"inference server rejected the request: {exc}") from None
        try:
            return run(fresh)
        except StaleSchemaError as again:
            raise ApiError(502, f"inference server rejected the request: {again}") from None


def _infer(
    client: InferenceClient,
    coalescer: Coalescer,
    config: Config,
    schema: ModelSchema,
    batch: Batch,
) -> Scores:
    """Score a batch: small requests merged with concurrent ones, large ones in chunks."""
    if batch.n_rows <= _COALESCE_MAX_ROWS:
        return coalescer.infer(schema, batch)
    return client.infer(schema, batch, config.chunk_rows)


def _convert(config: Config, schema: ModelSchema, body: bytes) -> Batch:
    """The body's rows as the columns of ``schema``: typed decode, else value by value.

    Raises:
        ApiError: 400 for a malformed body or bad values (every one named), 413 for
            more rows than the limit.

    """
    batch = decoder_for(schema).batch(body, config.max_text_chars)
    if batch is not None:  # its rows are objects, counted against max_rows before decoding
        return batch
    rows = parse_body(body, config.max_error_details)
    _check_rows(len(rows), config)  # rows of other types are not: before converting them
    return rows_to_batch(
        rows,
        schema.inputs,
        max_text_chars=config.max_text_chars,
        max_errors=config.max_error_details,
        missing=schema.missing_text,
    )


def _check_rows(n_rows: int, config: Config) -> None:
    if n_rows > config.max_rows:
        raise ApiError(413, f"{n_rows} rows in one request; the limit is {config.max_rows}")


def warm_up(app: Flask) -> None:
    """Connect and fetch the model's metadata now, so the first request is fast."""
    client: InferenceClient = app.extensions[CLIENT_KEY]
    try:
        schema = client.schema()
    except ApiError as exc:
        log.warning("inference server not reachable yet: %s", exc.message)
    else:
        log.info("model %r version %r: %d inputs", schema.name, schema.version, len(schema.inputs))


def shut_down(app: Flask) -> None:
    """Close the app's gRPC channel: its connections end cleanly, not with the process."""
    client: InferenceClient = app.extensions[CLIENT_KEY]
    client.close()
