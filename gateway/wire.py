"""Open Inference Protocol v2 messages on the gateway side: metadata in, bytes out.

Requests are encoded by hand on the hot path: the inputs' metadata part of a
ModelInferRequest is serialized once per row count (cached) and the tensors follow
as ``raw_input_contents`` fields (protobuf concatenation is a merge), so a call costs
no per-input message objects. FP64 is sent little-endian, BYTES as elements each
prefixed by its 4-byte little-endian length (the tritonclient format).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from gateway.convert import DEFAULT_MISSING, Batch, InputSpec
from gateway.decode import RowDecoder
from proto import inference_pb2 as pb
from proto.codec import (
    BYTES,
    CLASS,
    CONTRIBUTION_GROUPS,
    CONTRIBUTION_NAMES,
    FP32,
    FP64,
    MISSING_TEXT,
    NUMPY_DTYPES,
    PROBABILITY,
    CodecError,
    decode_contribution_names,
    decode_texts,
    pack_bytes,
)

_MAX_PREFIXES = 256
_RAW_INPUT_TAG = b"\x3a"  # field 7 (raw_input_contents), wire type 2 (length-delimited)


class WireError(ValueError):
    """Metadata or a response the gateway cannot use (a server/contract mismatch)."""


@dataclass(frozen=True)
class ModelSchema:
    """What the gateway needs to know about the served model (from ModelMetadata)."""

    name: str
    version: str
    inputs: tuple[InputSpec, ...]
    missing_text: frozenset[str] = DEFAULT_MISSING
    contribution_names: tuple[str, ...] = ()
    contribution_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    _prefixes: dict[int, bytes] = field(default_factory=dict, compare=False, repr=False)
    _decoders: list[RowDecoder] = field(default_factory=list, compare=False, repr=False)

    def decoder(self) -> RowDecoder:
        """The compiled typed decoder of these inputs (built on first use)."""
        if not self._decoders:
            self._decoders.append(RowDecoder(self.inputs, self.missing_text))
        return self._decoders[0]

    def prefix(self, n_rows: int) -> bytes:
        """Serialized ModelInferRequest naming the model and every input, shape [n_rows]."""
        prefix = self._prefixes.get(n_rows)
        if prefix is None:
            if len(self._prefixes) >= _MAX_PREFIXES:
                self._prefixes.clear()
            prefix = self._prefixes[n_rows] = request_prefix(self, n_rows)
        return prefix

    @classmethod
    def from_metadata(cls, metadata: pb.ModelMetadataResponse) -> ModelSchema:
        """Read inputs and check the outputs of a ModelMetadata answer."""
        inputs = tuple(InputSpec(t.name, t.datatype) for t in metadata.inputs)
        if not inputs:
            raise WireError(f"model {metadata.name!r} declares no inputs")
        unsupported = [f"{s.name}:{s.datatype}" for s in inputs if s.datatype not in _SUPPORTED]
        if unsupported:
            raise WireError(f"unsupported input datatypes: {', '.join(unsupported)}")
        outputs = {t.name for t in metadata.outputs}
        if not {PROBABILITY, CLASS} <= outputs:
            raise WireError(f"model outputs {sorted(outputs)} lack {PROBABILITY!r}/{CLASS!r}")
        version = metadata.versions[0] if metadata.versions else ""
        parameters = metadata.parameters
        missing = DEFAULT_MISSING
        names: tuple[str, ...] = ()
        groups: dict[str, tuple[str, ...]] = {}
        try:
            if MISSING_TEXT in parameters:
                missing = decode_texts(parameters[MISSING_TEXT].string_param)
            if CONTRIBUTION_NAMES in parameters:  # a server that explains its scores
                names, groups = decode_contribution_names(
                    parameters[CONTRIBUTION_NAMES].string_param,
                    parameters[CONTRIBUTION_GROUPS].string_param,
                )
        except CodecError as exc:
            raise WireError(str(exc)) from None
        return cls(metadata.name, version, inputs, missing, names, groups)


_SUPPORTED = frozenset({FP64, FP32, BYTES})


class Scores(NamedTuple):
    """A batch's scores and the one model version that gave all of them."""

    probability: NDArray[np.float64]
    label: NDArray[np.int64]
    version: str


@lru_cache(maxsize=4096)
def _varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def request_prefix(schema: ModelSchema, n_rows: int) -> bytes:
    """Serialize a ModelInferRequest naming the model and every input with shape [n_rows]."""
    # No model_version: any version may answer (replicas mid-rollout); see version_suffix.
    request = pb.ModelInferRequest(model_name=schema.name)
    for spec in schema.inputs:
        request.inputs.add(name=spec.name, datatype=spec.datatype, shape=[n_rows])
    return request.SerializeToString()


@lru_cache(maxsize=16)
def outputs_suffix(outputs: tuple[str, ...]) -> bytes:
    """A serialized ModelInferRequest asking for ``outputs``: appended, it merges in."""
    return pb.ModelInferRequest(
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in outputs]
    ).SerializeToString()


@lru_cache(maxsize=16)
def version_suffix(version: str) -> bytes:
    """A serialized ModelInferRequest naming ``version``: appended, it pins the call to it."""
    return pb.ModelInferRequest(model_version=version).SerializeToString()


def encode_request(
    schema: ModelSchema,
    batch: Batch,
    start: int,
    stop: int,
    outputs: tuple[str, ...] = (),
    *,
    version: str = "",
) -> bytes:
    """Serialize the ModelInferRequest for rows ``start:stop`` of ``batch``.

    ``outputs`` names the outputs to ask for; none asks for the server's default ones.
    ``version`` pins the call to that model version (a server serving another answers
    NOT_FOUND); empty lets whichever version the server serves answer.
    """
    parts = [
        schema.prefix(stop - start),
        outputs_suffix(outputs) if outputs else b"",
        version_suffix(version) if version else b"",
    ]
    append = parts.append
    for spec, column in zip(schema.inputs, batch.columns, strict=True):
        if isinstance(column, np.ndarray):
            raw = column[start:stop].astype(NUMPY_DTYPES[spec.datatype], copy=False).tobytes()
        else:
            raw = pack_bytes(column[start:stop])
        append(_RAW_INPUT_TAG)
        append(_varint(len(raw)))
        append(raw)
    return b"".join(parts)


def decode_response(
    response: pb.ModelInferResponse, n_rows: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """``(probability, class)`` arrays of a ModelInfer answer for ``n_rows`` rows."""
    found = decode_outputs(response, {PROBABILITY: (n_rows,), CLASS: (n_rows,)})
    return found[PROBABILITY].astype(np.float64), found[CLASS].astype(np.int64)


def decode_outputs(
    response: pb.ModelInferResponse, shapes: Mapping[str, Sequence[int]]
) -> dict[str, NDArray[np.float64] | NDArray[np.int64]]:
    """The outputs named in ``shapes``, each checked against and given its shape.

    Raises:
        WireError: an output is missing, of an unknown datatype or of another size.

    """
    found: dict[str, NDArray[np.float64] | NDArray[np.int64]] = {}
    raw_contents = response.raw_output_contents
    for index, tensor in enumerate(response.outputs):
        shape = shapes.get(tensor.name)
        if shape is None:
            continue
        dtype = NUMPY_DTYPES.get(tensor.datatype)
        if dtype is None:
            raise WireError(f"output {tensor.name} has unsupported datatype {tensor.datatype}")
        if index < len(raw_contents):
            values = np.frombuffer(raw_contents[index], dtype=dtype)
        else:
            values = np.array(_typed_contents(tensor.contents, tensor.datatype), dtype=dtype)
        if values.size != int(np.prod(shape)):
            raise WireError(f"output {tensor.name} has {values.size} values, expected {shape}")
        found[tensor.name] = values.reshape(shape)
    if len(found) < len(shapes):
        raise WireError(f"response lacks {sorted(set(shapes) - set(found))} (has {sorted(found)})")
    return found


def _typed_contents(contents: pb.InferTensorContents, datatype: str) -> list[float | int | bool]:
    """Return the typed ``contents`` list matching an output datatype."""
    if datatype == FP64:
        return list(contents.fp64_contents)
    if datatype == FP32:
        return list(contents.fp32_contents)
    if datatype == "INT64":
        return list(contents.int64_contents)
    if datatype == "INT32":
        return list(contents.int_contents)
    return list(contents.bool_contents)
