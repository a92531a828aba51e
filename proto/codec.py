"""The Open Inference Protocol codec both sides use: names, the BYTES layout, limits.

The gateway encodes requests and decodes answers with it, the inference server the
other way round; nothing here knows the model. BYTES tensors carry their elements as
raw contents, each prefixed by its 4-byte little-endian length (the tritonclient
layout); numeric tensors are little-endian arrays.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

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

_LENGTH = struct.Struct("<I")


class CodecError(ValueError):
    """Tensor contents that cannot be decoded; the message names the tensor."""


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
