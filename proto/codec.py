"""The Open Inference Protocol codec of both sides: names, layouts, metadata, tensors.

Each message's encode and decode sit side by side: the gateway decodes ModelMetadata
(:meth:`ModelSchema.from_metadata`), encodes ModelInfer requests (:func:`encode_request`)
and decodes their answers (:func:`decode_outputs`); the inference server does the other
half (:meth:`ModelSchema.to_metadata`, :func:`decode_inputs`, :func:`encode_outputs`).
Nothing here knows the model. Inputs are one-dimensional tensors; BYTES tensors carry
their elements as raw contents, each prefixed by its 4-byte little-endian length (the
tritonclient layout); numeric tensors are little-endian arrays. Requests are accepted
with raw or typed contents; answers are always raw. Anything malformed raises
:class:`CodecError`, whose message names the tensor.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from proto import inference_pb2 as pb

SERVICE_NAME = "inference.GRPCInferenceService"

FP64 = "FP64"
FP32 = "FP32"
INT64 = "INT64"
INT32 = "INT32"
BOOL = "BOOL"
BYTES = "BYTES"
NUMPY_DTYPES: Mapping[str, np.dtype[Any]] = {
    FP64: np.dtype("<f8"),
    FP32: np.dtype("<f4"),
    INT64: np.dtype("<i8"),
    INT32: np.dtype("<i4"),
    BOOL: np.dtype("?"),
}
"""Wire dtype of each numeric datatype."""
FP32_MAX = float(np.finfo(np.float32).max)
"""Largest magnitude an FP32 input can carry (beyond it the value is infinite)."""

PROBABILITY = "probability"
"""Output: P(y = 1) per row (FP64)."""
CLASS = "class"
"""Output: 1 where the probability reaches the model's threshold, else 0 (INT64)."""
DEFAULT_OUTPUTS = (PROBABILITY, CLASS)
"""What a request that names no outputs gets (explanations cost extra: only on request)."""
LOGIT = "logit"
"""Output, on request: the model's log-odds of y = 1 per row (FP64)."""
BASE_LOGIT = "base_logit"
"""Output, on request: the part of each logit no input explains (FP64)."""
CONTRIBUTIONS = "contributions"
"""Output, on request: ``[N, M]`` FP64, each input's contribution to each row's logit;
``base_logit + contributions.sum(axis=1) == logit``. Columns named by the metadata's
:data:`CONTRIBUTION_NAMES`."""
EXPLANATION_OUTPUTS = (LOGIT, BASE_LOGIT, CONTRIBUTIONS)
CONTRIBUTION_NAMES = "contribution_names"
"""ModelMetadata parameter: JSON list naming the columns of :data:`CONTRIBUTIONS`."""
CONTRIBUTION_GROUPS = "contribution_groups"
"""ModelMetadata parameter: JSON object, each contribution name that is a group of inputs
(a feature read from several columns together) -> the list of those inputs."""

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
"""Largest message either side sends or accepts by default (gRPC's own default is 4 MiB)."""

MISSING_TEXT = "missing_text"
"""ModelMetadata parameter: JSON list of the texts meaning "no value" in a numeric input."""
DEFAULT_MISSING = frozenset({""})
"""Texts meaning "no value" when a server does not publish its own."""

_LENGTH = struct.Struct("<I")


class CodecError(ValueError):
    """A message that cannot be encoded or decoded; the message names the tensor."""


def pack_bytes(values: Sequence[bytes]) -> bytes:
    """BYTES raw contents: each element prefixed by its 4-byte little-endian length."""
    parts: list[bytes] = [b""] * (2 * len(values))
    parts[0::2] = map(_LENGTH.pack, map(len, values))
    parts[1::2] = values
    return b"".join(parts)


def unpack_bytes(raw: bytes, count: int, name: str) -> NDArray[np.object_]:
    """The ``count`` elements of BYTES raw contents.

    Raises:
        CodecError: when the contents hold fewer or more elements, or one is cut short.

    """
    out = np.empty(count, dtype=object)
    unpack = _LENGTH.unpack_from
    end = len(raw)
    offset = 0
    for i in range(count):
        if offset + 4 > end:
            raise CodecError(f"input {name}: raw BYTES contents end after {i} of {count} elements")
        (length,) = unpack(raw, offset)
        offset += 4
        stop = offset + length
        if stop > end:
            raise CodecError(f"input {name}: raw BYTES element {i} is truncated")
        out[i] = raw[offset:stop]
        offset = stop
    if offset != end:
        raise CodecError(f"input {name}: raw BYTES contents hold more than {count} elements")
    return out


def encode_texts(texts: frozenset[str]) -> str:
    """The :data:`MISSING_TEXT` parameter's value for a set of texts."""
    return json.dumps(sorted(texts))


def decode_texts(value: str) -> frozenset[str]:
    """The set of texts in a :data:`MISSING_TEXT` parameter (lower-case).

    Raises:
        CodecError: when the value is not a JSON list of strings.

    """
    try:
        texts = json.loads(value)
    except ValueError:
        texts = None
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise CodecError(f"parameter {MISSING_TEXT} is not a JSON list of strings: {value!r}")
    return frozenset(text.lower() for text in texts)


def encode_contribution_names(
    names: Sequence[str], groups: Mapping[str, Sequence[str]]
) -> tuple[str, str]:
    """The :data:`CONTRIBUTION_NAMES` and :data:`CONTRIBUTION_GROUPS` parameters' values."""
    return json.dumps(list(names)), json.dumps({k: list(v) for k, v in groups.items()})


def decode_contribution_names(
    names: str, groups: str
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Read the parameters written by :func:`encode_contribution_names`.

    Raises:
        CodecError: when either is not the JSON it should be.

    """
    try:
        listed, grouped = json.loads(names), json.loads(groups)
    except ValueError:
        listed = grouped = None
    if (
        not isinstance(listed, list)
        or not all(isinstance(name, str) for name in listed)
        or not isinstance(grouped, dict)
        or not all(
            isinstance(members, list) and all(isinstance(m, str) for m in members)
            for members in grouped.values()
        )
    ):
        raise CodecError(
            f"parameters {CONTRIBUTION_NAMES}/{CONTRIBUTION_GROUPS} are not a JSON list of "
            "strings and an object of string lists"
        )
    return tuple(listed), {name: tuple(members) for name, members in grouped.items()}


# ---- metadata ---------------------------------------------------------------------------

_INPUT_DATATYPES = frozenset({FP64, FP32, BYTES})
"""The input datatypes this codec encodes and decodes."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, datatype and shape of a model input or output (-1: any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...] = (-1,)


@dataclass(frozen=True)
class ModelSchema:
    """A served model version as ModelMetadata describes it, both sides' one record of it."""

    name: str
    version: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()
    platform: str = ""
    missing_text: frozenset[str] = DEFAULT_MISSING
    contribution_names: tuple[str, ...] = ()
    contribution_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    _prefixes: dict[int, bytes] = field(default_factory=dict, compare=False, repr=False)

    def to_metadata(self) -> pb.ModelMetadataResponse:
        """The ModelMetadata answer describing this version."""
        response = pb.ModelMetadataResponse(
            name=self.name, versions=[self.version], platform=self.platform
        )
        for tensors, specs in ((response.inputs, self.inputs), (response.outputs, self.outputs)):
            for spec in specs:
                tensors.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
        parameters = response.parameters
        parameters[MISSING_TEXT].string_param = encode_texts(self.missing_text)
        names, groups = encode_contribution_names(self.contribution_names, self.contribution_groups)
        parameters[CONTRIBUTION_NAMES].string_param = names
        parameters[CONTRIBUTION_GROUPS].string_param = groups
        return response

    @classmethod
    def from_metadata(cls, metadata: pb.ModelMetadataResponse) -> ModelSchema:
        """Read a ModelMetadata answer; a model this codec cannot score through is refused.

        Raises:
            CodecError: no inputs, an input datatype other than FP64/FP32/BYTES, no
                ``probability``/``class`` output, or unreadable parameters.

        """
        inputs = tuple(TensorSpec(t.name, t.datatype) for t in metadata.inputs)
        if not inputs:
            raise CodecError(f"model {metadata.name!r} declares no inputs")
        unsupported = [
            f"{s.name}:{s.datatype}" for s in inputs if s.datatype not in _INPUT_DATATYPES
        ]
        if unsupported:
            raise CodecError(f"unsupported input datatypes: {', '.join(unsupported)}")
        outputs = tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in metadata.outputs)
        if not {PROBABILITY, CLASS} <= {t.name for t in outputs}:
            names = sorted(t.name for t in outputs)
            raise CodecError(f"model outputs {names} lack {PROBABILITY!r}/{CLASS!r}")
        parameters = metadata.parameters
        missing = DEFAULT_MISSING
        names_: tuple[str, ...] = ()
        groups: dict[str, tuple[str, ...]] = {}
        if MISSING_TEXT in parameters:
            missing = decode_texts(parameters[MISSING_TEXT].string_param)
        if CONTRIBUTION_NAMES in parameters:  # a server that explains its scores
            names_, groups = decode_contribution_names(
                parameters[CONTRIBUTION_NAMES].string_param,
                parameters[CONTRIBUTION_GROUPS].string_param,
            )
        return cls(
            metadata.name,
            metadata.versions[0] if metadata.versions else "",
            inputs,
            outputs,
            metadata.platform,
            missing,
            names_,
            groups,
        )

    def prefix(self, n_rows: int) -> bytes:
        """Serialized ModelInferRequest naming the model and every input, shape [n_rows]."""
        prefix = self._prefixes.get(n_rows)
        if prefix is None:
            if len(self._prefixes) >= _MAX_PREFIXES:
                self._prefixes.clear()
            # No model_version: any version may answer (replicas mid-rollout).
            request = pb.ModelInferRequest(model_name=self.name)
            for spec in self.inputs:
                request.inputs.add(name=spec.name, datatype=spec.datatype, shape=[n_rows])
            prefix = self._prefixes[n_rows] = request.SerializeToString()
        return prefix


_MAX_PREFIXES = 256


# ---- ModelInfer requests ----------------------------------------------------------------


Column = NDArray[np.float64] | Sequence[bytes]
"""One input's values: numbers (any float array) or UTF-8 texts."""


def encode_request(
    schema: ModelSchema,
    columns: Sequence[Column],
    start: int,
    stop: int,
    outputs: Sequence[str] = (),
    *,
    version: str = "",
) -> bytes:
    """Serialize the ModelInferRequest for rows ``start:stop`` of ``columns`` (inputs' order).

    ``outputs`` names the outputs to ask for; none asks for the server's default ones.
    ``version`` pins the call to that model version (a server serving another answers
    NOT_FOUND); empty lets whichever version the server serves answer. The inputs' part
    is serialized once per row count; the tensors follow as a second message
    (protobuf concatenation is a merge).
    """
    raw = [
        np.asarray(column[start:stop]).astype(NUMPY_DTYPES[spec.datatype], copy=False).tobytes()
        if spec.datatype != BYTES
        else pack_bytes(column[start:stop])  # type: ignore[arg-type]
        for spec, column in zip(schema.inputs, columns, strict=True)
    ]
    tensors = pb.ModelInferRequest(
        model_version=version,
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in outputs],
        raw_input_contents=raw,
    )
    return schema.prefix(stop - start) + tensors.SerializeToString()


@dataclass(frozen=True)
class Limits:
    """What one request may hold, whoever sends it."""

    max_rows: int
    max_text_bytes: int


def decode_inputs(
    request: pb.ModelInferRequest, specs: Mapping[str, TensorSpec], limits: Limits
) -> tuple[dict[str, NDArray[Any]], int]:
    """Decode a request's input tensors into ``(columns, n_rows)``.

    Every input must be a model input, appear once, have the model's datatype and a
    one-dimensional shape, and all inputs must have the same number of rows. Model
    inputs the request leaves out are absent from ``columns`` (the model treats them
    as all missing). A request needs at least one input and one row, and stays within
    ``limits`` (rows, and bytes of each text element). Numbers come out as float64,
    texts as an object array of bytes.
    """
    decoded = _decode_regular(request, specs, limits.max_rows) or _decode_checked(
        request, specs, limits.max_rows
    )
    for name, column in decoded[0].items():
        if column.dtype == object:  # BYTES
            _check_text(name, column, limits.max_text_bytes)
    return decoded


def _decode_regular(
    request: pb.ModelInferRequest, specs: Mapping[str, TensorSpec], max_rows: int
) -> tuple[dict[str, NDArray[Any]], int] | None:
    """What tritonclient and the gateway send, checked in bulk: raw contents, [N] each.

    None for anything else, which :func:`_decode_checked` then decodes or names.
    """
    tensors, raw_contents = request.inputs, request.raw_input_contents
    if not tensors or len(raw_contents) != len(tensors):
        return None
    names = [tensor.name for tensor in tensors]
    wanted = [specs.get(name) for name in names]
    datatypes = [tensor.datatype for tensor in tensors]
    shapes = {tuple(tensor.shape) for tensor in tensors}
    (shape,) = shapes if len(shapes) == 1 else ((),)
    n_rows = shape[0] if len(shape) == 1 else 0
    if (
        None in wanted
        or len(set(names)) != len(names)
        or datatypes != [spec.datatype for spec in wanted]  # type: ignore[union-attr]
        or not set(datatypes) <= {FP64, BYTES}
        or not 0 < n_rows <= max_rows
        or any(tensor.HasField("contents") for tensor in tensors)
    ):
        return None
    numeric = [i for i, datatype in enumerate(datatypes) if datatype == FP64]
    parts = [raw_contents[i] for i in numeric]
    if any(len(part) != 8 * n_rows for part in parts):
        return None
    matrix = np.frombuffer(b"".join(parts), dtype=NUMPY_DTYPES[FP64]).reshape(len(parts), n_rows)
    columns = dict(zip([names[i] for i in numeric], matrix, strict=True))
    for i, datatype in enumerate(datatypes):
        if datatype == BYTES:
            columns[names[i]] = unpack_bytes(raw_contents[i], n_rows, names[i])
    return columns, int(n_rows)


def _decode_checked(
    request: pb.ModelInferRequest, specs: Mapping[str, TensorSpec], max_rows: int
) -> tuple[dict[str, NDArray[Any]], int]:
    """Decode input by input, raw or typed contents, naming the first problem found."""
    tensors = request.inputs
    if not tensors:
        raise CodecError("request has no inputs")
    raw_contents = request.raw_input_contents
    if raw_contents and len(raw_contents) != len(tensors):
        raise CodecError(
            f"request has {len(raw_contents)} raw_input_contents for {len(tensors)} inputs"
        )
    columns: dict[str, NDArray[Any]] = {}
    n_rows = -1
    first = ""
    for index, tensor in enumerate(tensors):
        name = tensor.name
        if name in columns:
            raise CodecError(f"input {name} is given more than once")
        spec = _input_spec(tensor, specs)
        rows = _rows(tensor, max_rows)
        if n_rows < 0:
            n_rows, first = rows, name
        elif rows != n_rows:
            raise CodecError(f"input {name} has {rows} rows but input {first} has {n_rows}")
        if raw_contents:
            if tensor.HasField("contents"):
                raise CodecError(f"input {name}: contents given together with raw_input_contents")
            columns[name] = _decode_raw(spec, raw_contents[index], rows)
        else:
            columns[name] = _decode_typed(spec, tensor.contents, rows)
    if n_rows == 0:
        raise CodecError("request has no rows (input shape [0])")
    return columns, n_rows


def _input_spec(
    tensor: pb.ModelInferRequest.InferInputTensor, specs: Mapping[str, TensorSpec]
) -> TensorSpec:
    """The model input ``tensor`` names, if its datatype is the input's."""
    spec = specs.get(tensor.name)
    if spec is None:
        raise CodecError(f"input {tensor.name!r} is not an input of this model")
    if tensor.datatype != spec.datatype:
        raise CodecError(
            f"input {tensor.name}: datatype {tensor.datatype or '(empty)'}, "
            f"expected {spec.datatype}"
        )
    return spec


def _rows(tensor: pb.ModelInferRequest.InferInputTensor, max_rows: int) -> int:
    """Number of rows of a one-dimensional input tensor, at most ``max_rows``."""
    shape = list(tensor.shape)
    if len(shape) != 1 or shape[0] < 0:
        raise CodecError(f"input {tensor.name}: shape {shape} is not [N] with N >= 0")
    if shape[0] > max_rows:
        raise CodecError(f"input {tensor.name}: {shape[0]} rows; at most {max_rows} per request")
    return int(shape[0])


def _decode_raw(spec: TensorSpec, raw: bytes, rows: int) -> NDArray[Any]:
    if spec.datatype == BYTES:
        return unpack_bytes(raw, rows, spec.name)
    dtype = NUMPY_DTYPES[spec.datatype]
    if len(raw) != rows * dtype.itemsize:
        raise CodecError(
            f"input {spec.name}: raw contents have {len(raw)} bytes, "
            f"expected {rows * dtype.itemsize} for shape [{rows}] {spec.datatype}"
        )
    return np.frombuffer(raw, dtype=dtype).astype(np.float64, copy=False)


def _decode_typed(spec: TensorSpec, contents: pb.InferTensorContents, rows: int) -> NDArray[Any]:
    values = _typed_contents(contents, spec.datatype)
    if len(values) != rows:
        raise CodecError(
            f"input {spec.name}: {_CONTENTS[spec.datatype]} has {len(values)} values, "
            f"expected {rows} for shape [{rows}]"
        )
    if spec.datatype == BYTES:
        out = np.empty(rows, dtype=object)
        out[:] = list(values)
        return out
    return np.array(values, dtype=np.float64)


def _check_text(name: str, column: NDArray[Any], max_bytes: int) -> None:
    """Refuse a BYTES input holding an element longer than ``max_bytes``."""
    lengths = np.fromiter(map(len, column), dtype=np.int64, count=len(column))
    too_long = np.flatnonzero(lengths > max_bytes)
    if too_long.size:
        row = int(too_long[0])
        raise CodecError(
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
            raise CodecError(f"output {name!r} is not an output of this model")
    if len(set(names)) != len(names):
        raise CodecError(f"outputs {names} name one output more than once")
    return names


# ---- ModelInfer answers -----------------------------------------------------------------


def encode_outputs(
    response: pb.ModelInferResponse, outputs: Iterable[tuple[TensorSpec, NDArray[Any]]]
) -> None:
    """Append each ``(spec, values)`` to ``response`` as an output with raw contents."""
    for spec, values in outputs:
        tensor = response.outputs.add(name=spec.name, datatype=spec.datatype)
        tensor.shape.extend(values.shape)
        response.raw_output_contents.append(
            np.ascontiguousarray(values, dtype=NUMPY_DTYPES[spec.datatype]).tobytes()
        )


def decode_outputs(
    response: pb.ModelInferResponse, shapes: Mapping[str, Sequence[int]]
) -> dict[str, NDArray[Any]]:
    """The outputs named in ``shapes``, each checked against and given its shape.

    Raw or typed contents are read, whichever the server sent.

    Raises:
        CodecError: an output is missing, of an unknown datatype or of another size.

    """
    found: dict[str, NDArray[Any]] = {}
    raw_contents = response.raw_output_contents
    for index, tensor in enumerate(response.outputs):
        shape = shapes.get(tensor.name)
        if shape is None:
            continue
        dtype = NUMPY_DTYPES.get(tensor.datatype)
        if dtype is None:
            raise CodecError(f"output {tensor.name} has unsupported datatype {tensor.datatype}")
        if index < len(raw_contents):
            values = np.frombuffer(raw_contents[index], dtype=dtype)
        else:
            values = np.array(_typed_contents(tensor.contents, tensor.datatype), dtype=dtype)
        if values.size != int(np.prod(shape)):
            raise CodecError(f"output {tensor.name} has {values.size} values, expected {shape}")
        found[tensor.name] = values.reshape(shape)
    if len(found) < len(shapes):
        raise CodecError(f"response lacks {sorted(set(shapes) - set(found))} (has {sorted(found)})")
    return found


_CONTENTS = {
    FP64: "fp64_contents",
    FP32: "fp32_contents",
    INT64: "int64_contents",
    INT32: "int_contents",
    BOOL: "bool_contents",
    BYTES: "bytes_contents",
}
"""The typed contents field of each datatype."""


def _typed_contents(contents: pb.InferTensorContents, datatype: str) -> Sequence[Any]:
    """The typed ``contents`` field matching a datatype."""
    values: Sequence[Any] = getattr(contents, _CONTENTS[datatype])
    return values
