"""Open Inference Protocol tensors <-> numpy columns (the codec, no model knowledge).

The layouts themselves (datatypes, BYTES elements) are ``proto.codec``'s, shared with the
gateway. Inputs are one-dimensional tensors, one per model input, given either all as
``raw_input_contents`` (FP64 little-endian; BYTES as elements each prefixed by its
4-byte little-endian length, as tritonclient sends them) or all as typed ``contents``
(``fp64_contents`` / ``bytes_contents``). Outputs are always answered as
``raw_output_contents``. Anything malformed raises :class:`TensorError` whose message
names the offending tensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from proto import inference_pb2 as pb
from proto.codec import BYTES, FP64, INT64, NUMPY_DTYPES, CodecError, unpack_bytes

_DTYPES = {name: NUMPY_DTYPES[name] for name in (FP64, INT64)}


@dataclass(frozen=True)
class TensorSpec:
    """Name, datatype and shape of a model input or output (-1: any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...] = (-1,)


@dataclass(frozen=True)
class Limits:
    """What one request may hold, whoever sends it (defaults: ``inference.config.Settings``)."""

    max_rows: int
    max_text_bytes: int


class TensorError(CodecError):
    """A request that cannot be decoded into columns; the message names the tensor."""


def _spec(
    tensor: pb.ModelInferRequest.InferInputTensor, specs: Mapping[str, TensorSpec]
) -> TensorSpec:
    """The model input ``tensor`` names, if its datatype is the input's."""
    spec = specs.get(tensor.name)
    if spec is None:
        raise TensorError(f"input {tensor.name!r} is not an input of this model")
    if tensor.datatype != spec.datatype:
        raise TensorError(
            f"input {tensor.name}: datatype {tensor.datatype or '(empty)'}, "
            f"expected {spec.datatype}"
        )
    return spec


def _rows(tensor: pb.ModelInferRequest.InferInputTensor, max_rows: int) -> int:
    """Number of rows of a one-dimensional input tensor, at most ``max_rows``."""
    shape = list(tensor.shape)
    if len(shape) != 1 or shape[0] < 0:
        raise TensorError(f"input {tensor.name}: shape {shape} is not [N] with N >= 0")
    if shape[0] > max_rows:
        raise TensorError(f"input {tensor.name}: {shape[0]} rows; at most {max_rows} per request")
    return int(shape[0])


def _decode_raw(spec: TensorSpec, raw: bytes, rows: int) -> NDArray[Any]:
    if spec.datatype == BYTES:
        return unpack_bytes(raw, rows, spec.name)
    dtype = _DTYPES[spec.datatype]
    if len(raw) != rows * dtype.itemsize:
        raise TensorError(
            f"input {spec.name}: raw contents have {len(raw)} bytes, "
            f"expected {rows * dtype.itemsize} for shape [{rows}] {spec.datatype}"
        )
    return np.frombuffer(raw, dtype=dtype).astype(np.float64, copy=False)


def _decode_typed(spec: TensorSpec, contents: pb.InferTensorContents, rows: int) -> NDArray[Any]:
    if spec.datatype == BYTES:
        values: Sequence[Any] = contents.bytes_contents
        field = "bytes_contents"
    else:
        values = contents.fp64_contents
        field = "fp64_contents"
    if len(values) != rows:
        raise TensorError(
            f"input {spec.name}: {field} has {len(values)} values, "
            f"expected {rows} for shape [{rows}]"
        )
    if spec.datatype == BYTES:
        out = np.empty(rows, dtype=object)
        out[:] = list(values)
        return out
    return np.array(values, dtype=np.float64)


def decode_inputs(
    request: pb.ModelInferRequest, specs: Mapping[str, TensorSpec], limits: Limits
) -> tuple[dict[str, NDArray[Any]], int]:
    """Decode a request's input tensors into ``(columns, n_rows)``.

    Every input must be a model input, appear once, have the model's datatype and a
    one-dimensional shape, and all inputs must have the same number of rows. Model
    inputs the request leaves out are absent from ``columns`` (the model treats them
    as all missing). A request needs at least one input and one row, and stays within
    ``limits`` (rows, and bytes of each text element).
    """
    tensors = request.inputs
    if not tensors:
        raise TensorError("request has no inputs")
    raw_contents = request.raw_input_contents
    if raw_contents and len(raw_contents) != len(tensors):
        raise TensorError(
            f"request has {len(raw_contents)} raw_input_contents for {len(tensors)} inputs"
        )
    columns: dict[str, NDArray[Any]] = {}
    n_rows = -1
    first = ""
    for index, tensor in enumerate(tensors):
        name = tensor.name
        if name in columns:
            raise TensorError(f"input {name} is given more than once")
        spec = _spec(tensor, specs)
        rows = _rows(tensor, limits.max_rows)
        if n_rows < 0:
            n_rows, first = rows, name
        elif rows != n_rows:
            raise TensorError(f"input {name} has {rows} rows but input {first} has {n_rows}")
        if raw_contents:
            if tensor.HasField("contents"):
                raise TensorError(f"input {name}: contents given together with raw_input_contents")
            columns[name] = _decode_raw(spec, raw_contents[index], rows)
        else:
            columns[name] = _decode_typed(spec, tensor.contents, rows)
    if n_rows == 0:
        raise TensorError("request has no rows (input shape [0])")
    for name, column in columns.items():
        if specs[name].datatype == BYTES:
            _check_text(name, column, limits.max_text_bytes)
    return columns, n_rows


def _check_text(name: str, column: NDArray[Any], max_bytes: int) -> None:
    """Refuse a BYTES input holding an element longer than ``max_bytes``."""
    lengths = np.fromiter(map(len, column), dtype=np.int64, count=len(column))
    too_long = np.flatnonzero(lengths > max_bytes)
    if too_long.size:
        row = int(too_long[0])
        raise TensorError(
            f"input {name}: row {row} holds {lengths[row]} bytes; at most {max_bytes} per value"
        )


def requested_outputs(
    request: pb.ModelInferRequest, available: Sequence[str], default: Sequence[str]
) -> list[str]:
    """Names of the outputs to answer: those requested, in order, or ``default``."""
    if not request.outputs:
        return list(default)
    names = [output.name for output in request.outputs]
    for name in names:
        if name not in available:
            raise TensorError(f"output {name!r} is not an output of this model")
    if len(set(names)) != len(names):
        raise TensorError(f"outputs {names} name one output more than once")
    return names


def encode_outputs(
    response: pb.ModelInferResponse, outputs: Iterable[tuple[TensorSpec, NDArray[Any]]]
) -> None:
    """Append each ``(spec, values)`` to ``response`` as an output with raw contents."""
    for spec, values in outputs:
        tensor = response.outputs.add(name=spec.name, datatype=spec.datatype)
        tensor.shape.extend(values.shape)
        response.raw_output_contents.append(
            np.ascontiguousarray(values, dtype=_DTYPES[spec.datatype]).tobytes()
        )
