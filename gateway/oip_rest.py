"""The Open Inference Protocol's REST routes (KServe v2, Triton's HTTP API) on the gateway.

``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}``,
``/v2/models/{name}/ready`` and ``POST /v2/models/{name}/infer``, so that stock REST
clients (``tritonclient.http``, KServe's REST client) call the service unmodified. The
metadata is the gateway's own view of the served model (from ModelMetadata); inference
runs the same calls, limits and errors as ``/predict`` (the app wires the infer route).

An infer request is JSON tensors, one per model input, of shape ``[N]`` or ``[N, 1]``:
``{"inputs": [{"name", "datatype", "shape", "data"}], "outputs": [{"name"}]}``. Inputs may
also come as the binary tensor extension (``Inference-Header-Content-Length`` bytes of
JSON, then each input's raw bytes, its size in ``parameters.binary_data_size``: what
``tritonclient.http`` sends by default). Answers are always JSON tensors. Naming an
explanation output (``logit``, ``base_logit``, ``contributions``) makes it an explanation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import orjson
from flask import Flask, Response, request
from numpy.typing import NDArray

from gateway import contract
from gateway.client import InferenceClient
from gateway.config import Config
from gateway.convert import Batch, columns_to_batch
from gateway.errors import ApiError, bad_request, detail, preview
from proto.codec import (
    BASE_LOGIT,
    BYTES,
    CLASS,
    CONTRIBUTIONS,
    DEFAULT_OUTPUTS,
    EXPLANATION_OUTPUTS,
    FP64,
    INT64,
    LOGIT,
    NUMPY_DTYPES,
    PROBABILITY,
    CodecError,
    ModelSchema,
    unpack_bytes,
)

HEADER_LENGTH = "Inference-Header-Content-Length"
"""The binary tensor extension's header: how many leading body bytes are the JSON."""
SERVER_NAME = "scoring-service"
OUTPUT_DATATYPES: Mapping[str, str] = {
    PROBABILITY: FP64,
    CLASS: INT64,
    LOGIT: FP64,
    BASE_LOGIT: FP64,
    CONTRIBUTIONS: FP64,
}
"""The datatype of every output the served model can answer."""
_BINARY = "application/octet-stream"
_NUMERIC_WIRE = frozenset({"FP64", "FP32", "INT64", "INT32"})
"""Datatypes a numeric input may arrive in (JSON numbers carry no type of their own)."""


def accepts(mimetype: str) -> bool:
    """Whether an infer request's content type is acceptable (tritonclient sends none)."""
    return mimetype in ("", _BINARY) or (
        mimetype.startswith("application/") and mimetype.endswith("json")
    )


def _json_length(body: bytes, header: str | None) -> int:
    """How many leading bytes of ``body`` are the JSON request (all, without the extension).

    Raises:
        ApiError: 400 when the header is not a length within the body.

    """
    if header is None:
        return len(body)
    try:
        length = int(header)
    except ValueError:
        length = -1
    if not 0 < length <= len(body):
        raise bad_request(f"{HEADER_LENGTH} must be a byte count within the body, got {header!r}")
    return length


def count_values(body: bytes, config: Config) -> int:
    """The values an infer body may hold at most: one per comma of its JSON, one per 8 bytes after.

    Raises:
        ApiError: 413 when its JSON may hold more values than ``config.max_values``.

    """
    length = _json_length(body, request.headers.get(HEADER_LENGTH))
    values = body.count(b",", 0, length) + 1
    if values > config.max_values:
        raise ApiError(
            413, f"more than {config.max_values} JSON values; the limit is {config.max_values}"
        )
    return values + (len(body) - length) // 8


@dataclass(frozen=True)
class Tensor:
    """One input tensor of an infer request: JSON ``data`` or its raw binary bytes."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Sequence[Any] | bytes


@dataclass(frozen=True)
class InferRequest:
    """A decoded OIP REST infer request."""

    id: str | None
    inputs: Mapping[str, Tensor]
    outputs: tuple[str, ...]

    @property
    def explains(self) -> bool:
        """Whether it asks for an explanation output."""
        return any(name in EXPLANATION_OUTPUTS for name in self.outputs)

    def batch(self, schema: ModelSchema, config: Config) -> Batch:
        """The request's inputs as the columns of ``schema``.

        Raises:
            ApiError: 400 naming a missing, unknown, mistyped or misshapen input or a bad
                value, 413 for more rows than ``config.max_rows``.

        """
        expected = {spec.name: spec for spec in schema.inputs}
        problems = [
            detail(None, name, None, "not an input of the model")
            for name in self.inputs
            if name not in expected
        ] + [
            detail(None, name, None, "input missing")
            for name in expected
            if name not in self.inputs
        ]
        if problems:
            raise bad_request("the inputs do not match the model's", problems)
        rows = {_rows(tensor) for tensor in self.inputs.values()}
        if len(rows) != 1:
            raise bad_request(f"inputs of different row counts: {sorted(rows)}")
        n_rows = rows.pop()
        if n_rows == 0:
            raise bad_request("the inputs hold no rows")
        if n_rows > config.max_rows:
            raise ApiError(413, f"{n_rows} rows in one request; the limit is {config.max_rows}")
        values = [_values(self.inputs[spec.name], spec.datatype, n_rows) for spec in schema.inputs]
        return columns_to_batch(
            values,
            n_rows,
            schema.inputs,
            max_text_chars=config.max_text_chars,
            max_errors=config.max_error_details,
            missing=schema.missing_text,
        )


def parse_infer(body: bytes, header: str | None) -> InferRequest:
    """Decode an infer body (JSON, or JSON and binary tensors).

    Raises:
        ApiError: 400 for malformed JSON, a request that is not an object of inputs, an
            unknown output, or binary sizes that do not add up to the body.

    """
    length = _json_length(body, header)
    try:
        document = orjson.loads(body[:length])
    except orjson.JSONDecodeError as exc:
        document = _with_nan(body[:length], exc)
    if not isinstance(document, dict):
        raise bad_request("an infer request must be a JSON object with 'inputs'")
    raw = memoryview(body)[length:]
    inputs: dict[str, Tensor] = {}
    offset = 0
    for item in _list(document, "inputs", required=True):
        tensor, size = _tensor(item, raw, offset)
        offset += size
        if tensor.name in inputs:
            raise bad_request(f"input {tensor.name!r} given twice")
        inputs[tensor.name] = tensor
    if offset != len(raw):
        raise bad_request(f"{len(raw) - offset} bytes of binary data no input claims")
    outputs = tuple(_output_name(item) for item in _list(document, "outputs", required=False))
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad_request("'id' must be a string")
    return InferRequest(request_id, inputs, outputs or DEFAULT_OUTPUTS)


def _with_nan(text: bytes, error: orjson.JSONDecodeError) -> Any:
    """JSON as stock clients write it: ``NaN`` for a missing number (tritonclient does).

    Raises:
        ApiError: 400 when it is malformed otherwise.

    """
    if b"NaN" not in text:
        raise bad_request(f"malformed JSON: {error}")
    try:
        return json.loads(text, parse_constant=_constant)
    except (ValueError, RecursionError):
        raise bad_request(f"malformed JSON: {error}") from None


def _constant(name: str) -> float | None:
    """``NaN`` is a missing value; ``Infinity`` stays a number (and is refused as one)."""
    return None if name == "NaN" else float(name)


def _list(document: Mapping[str, Any], key: str, *, required: bool) -> list[Any]:
    value = document.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise bad_request(f"'{key}' must be a non-empty array of objects")
    return value


def _tensor(item: Any, raw: memoryview, offset: int) -> tuple[Tensor, int]:
    """One input tensor and the binary bytes it takes from ``raw`` at ``offset``."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise bad_request("each input must be an object with a 'name'")
    name = item["name"]
    datatype, shape = item.get("datatype"), item.get("shape")
    if not isinstance(datatype, str):
        raise bad_request(f"input {name!r}: 'datatype' must be a string")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise bad_request(f"input {name!r}: 'shape' must be an array of non-negative integers")
    parameters = item.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or not 0 <= size <= len(raw) - offset
        ):
            raise bad_request(f"input {name!r}: binary_data_size beyond the body")
        return Tensor(name, datatype, tuple(shape), bytes(raw[offset : offset + size])), size
    data = item.get("data")
    if not isinstance(data, list):
        raise bad_request(f"input {name!r}: 'data' must be an array (or binary data)")
    return Tensor(name, datatype, tuple(shape), data), 0


def _output_name(item: Any) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    if not isinstance(name, str) or name not in OUTPUT_DATATYPES:
        raise bad_request(
            f"unknown output {preview(name)!r}; the model answers {', '.join(OUTPUT_DATATYPES)}"
        )
    return str(name)


def _rows(tensor: Tensor) -> int:
    """The rows of a tensor of shape ``[N]`` or ``[N, 1]``."""
    if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
        raise bad_request(
            f"input {tensor.name!r}: shape {list(tensor.shape)}; one value per row is [N] or [N, 1]"
        )
    return tensor.shape[0]


def _values(tensor: Tensor, declared: str, n_rows: int) -> Sequence[Any]:
    """A tensor's ``n_rows`` values, as the JSON values ``/predict`` would have had."""
    text = declared == BYTES
    if (tensor.datatype == BYTES) != text or (not text and tensor.datatype not in _NUMERIC_WIRE):
        raise bad_request(
            f"input {tensor.name!r}: datatype {tensor.datatype}; the model expects {declared}"
        )
    if isinstance(tensor.data, bytes):
        return _binary_values(tensor.name, tensor.datatype, tensor.data, n_rows)
    data: list[Any] = list(tensor.data)
    if len(tensor.shape) == 2 and all(isinstance(v, list) and len(v) == 1 for v in data):
        data = [v[0] for v in data]  # [N, 1] sent nested
    if len(data) != n_rows:
        raise bad_request(f"input {tensor.name!r}: {len(data)} values for {n_rows} rows")
    return data


def _binary_values(name: str, datatype: str, raw: bytes, n_rows: int) -> Sequence[Any]:
    if datatype == BYTES:
        try:
            elements = unpack_bytes(raw, n_rows, name)
        except CodecError as exc:
            raise bad_request(str(exc)) from None
        texts: list[Any] = []
        bad = []
        for row, element in enumerate(elements):
            try:
                texts.append(element.decode())
            except UnicodeDecodeError:
                texts.append(None)
                bad.append(detail(row, name, None, "text is not valid UTF-8"))
        if bad:
            raise bad_request(f"{len(bad)} invalid values", bad)
        return texts
    dtype = NUMPY_DTYPES[datatype]
    if len(raw) != n_rows * dtype.itemsize:
        raise bad_request(f"input {name!r}: {len(raw)} bytes of {datatype} for {n_rows} rows")
    values: NDArray[np.float64] = np.frombuffer(raw, dtype).astype(np.float64)
    return values  # type: ignore[return-value]


def infer_response(
    schema: ModelSchema, infer: InferRequest, outputs: Mapping[str, NDArray[Any]], version: str
) -> contract.InferResponse:
    """The OIP answer holding the requested ``outputs`` as JSON tensors, from ``version``."""
    tensors = [
        contract.OutputTensor(
            name, OUTPUT_DATATYPES[name], list(outputs[name].shape), outputs[name].ravel().tolist()
        )
        for name in infer.outputs
    ]
    return contract.InferResponse(
        schema.name, version, tensors, msgspec.UNSET if infer.id is None else infer.id
    )


def model_metadata(schema: ModelSchema) -> contract.ModelMetadata:
    """The OIP model metadata of the served model."""
    tensor = contract.TensorMetadata
    outputs = [tensor(n, OUTPUT_DATATYPES[n], [-1]) for n in DEFAULT_OUTPUTS]
    if schema.contribution_names:
        width = len(schema.contribution_names)
        outputs += [
            tensor(LOGIT, FP64, [-1]),
            tensor(BASE_LOGIT, FP64, [-1]),
            tensor(CONTRIBUTIONS, FP64, [-1, width]),
        ]
    return contract.ModelMetadata(
        schema.name,
        [schema.version] if schema.version else [],
        SERVER_NAME,
        [tensor(s.name, s.datatype, [-1]) for s in schema.inputs],
        outputs,
    )


def served(schema: ModelSchema, name: str) -> ModelSchema:
    """``schema`` when ``name`` is the served model's.

    Raises:
        ApiError: 404 otherwise.

    """
    if name != schema.name:
        raise ApiError(404, f"model {name!r} is not served here; the model is {schema.name!r}")
    return schema


def register(
    app: Flask, client: InferenceClient, infer: Callable[[str], Response], version: str
) -> None:
    """Add the OIP REST routes to ``app``; ``infer(name)`` answers an infer request."""

    def answer(payload: msgspec.Struct) -> Response:
        return Response(contract.encode(payload), mimetype="application/json")

    @app.get("/v2")
    def oip_server() -> Response:
        return answer(contract.ServerMetadata(SERVER_NAME, version, []))

    @app.get("/v2/health/live")
    def oip_live() -> Response:
        return answer(contract.Live(live=True))

    @app.get("/v2/health/ready")
    def oip_ready() -> Response:
        client.ready()
        return answer(contract.Ready(ready=True))

    @app.get("/v2/models/<name>")
    def oip_model(name: str) -> Response:
        return answer(model_metadata(served(client.schema(), name)))

    @app.get("/v2/models/<name>/ready")
    def oip_model_ready(name: str) -> Response:
        served(client.ready(), name)
        return answer(contract.ModelReady(name, ready=True))

    @app.post("/v2/models/<name>/infer")
    def oip_infer(name: str) -> Response:
        return infer(name)
