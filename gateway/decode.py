"""The typed decode of a request body: one compiled msgspec decoder per model schema.

Built from the model's inputs as ModelMetadata declares them (a new bundle needs no
gateway change), it turns a body straight into typed rows in C: numeric inputs as
floats (numeric strings accepted, ``null`` and the ``"nan"`` spellings are missing),
text inputs as strings, an absent key missing, keys that are not inputs skipped. ``""``
means missing in every column, so it is rewritten to ``null`` on the bytes first, unless
the body holds an escaped quote (only then could ``""`` be part of a longer string); an
empty key rewritten that way is no longer valid JSON, so its body takes the other path.

Anything irregular, a value of another type, ``inf``, a number beyond an FP32 input's
range, a text over the limit, bytes that are not UTF-8, a row with no value at all
(it may hold none of the inputs), makes :meth:`RowDecoder.batch` return None: the
caller then converts the body value by value (``gateway.convert``), which accepts every
other valid spelling and names every bad row and field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from gateway.convert import NUMERIC_TYPES, Batch
from proto.codec import FP32, FP32_MAX, ModelSchema, TensorSpec


class RowDecoder:
    """Decodes bodies of rows for one list of model inputs (thread-safe)."""

    def __init__(self, inputs: Sequence[TensorSpec], missing: frozenset[str]) -> None:
        """Compile the decoder: numeric inputs first, then text, each absent as None.

        ``missing`` are the texts the server counts as "no value"; ``""`` is rewritten to
        ``null`` only when it is one of them.
        """
        self._empty_is_missing = "" in missing
        numeric = [i for i, spec in enumerate(inputs) if spec.datatype in NUMERIC_TYPES]
        text = [i for i, spec in enumerate(inputs) if spec.datatype not in NUMERIC_TYPES]
        fields: list[tuple[str, Any, None]] = [(f"n{i}", float | None, None) for i in numeric]
        fields += [(f"t{i}", str | None, None) for i in text]
        names = {field: inputs[int(field[1:])].name for field, _, _ in fields}
        row = msgspec.defstruct("Row", fields, rename=names, kw_only=True)
        self._decoder = msgspec.json.Decoder(row | list[row], strict=False)  # type: ignore[valid-type]
        self._order = numeric + text  # input position of each decoded field
        self._n_numeric = len(numeric)
        self._fp32 = [j for j, i in enumerate(numeric) if inputs[i].datatype == FP32]
        self._n_inputs = len(inputs)

    def batch(self, body: bytes, max_text_chars: int) -> Batch | None:
        """The body's rows as one column per input, or None when it is not regular."""
        if not body.isascii() and not _is_utf8(body):  # msgspec skips unread keys unchecked
            return None
        if self._empty_is_missing and b'\\"' not in body:  # every "" is then an empty string
            body = body.replace(b'""', b"null")
        try:
            data = self._decoder.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError):  # the latter: bytes that are not UTF-8
            return None
        rows = data if isinstance(data, list) else [data]
        if not rows:
            return None
        tuples = list(map(msgspec.structs.astuple, rows))
        numbers = self._numbers(tuples)
        texts = self._texts(tuples, max_text_chars)
        if numbers is None or texts is None or self._has_empty_row(numbers, texts):
            return None
        columns: list[Any] = [None] * self._n_inputs
        for j, position in enumerate(self._order):
            columns[position] = numbers[:, j] if j < self._n_numeric else texts[j - self._n_numeric]
        return Batch(len(rows), tuple(columns))

    def _numbers(self, tuples: list[tuple[Any, ...]]) -> np.ndarray[Any, Any] | None:
        """The numeric values as a (rows, inputs) float64 matrix, None if irregular."""
        k = self._n_numeric
        try:  # None (null or absent) -> NaN
            matrix = np.array([row[:k] for row in tuples], dtype=np.float64).reshape(-1, k)
        except (TypeError, ValueError):
            return None
        if np.isinf(matrix).any():
            return None
        if self._fp32 and (np.abs(matrix[:, self._fp32]) > FP32_MAX).any():
            return None
        return matrix

    def _texts(self, tuples: list[tuple[Any, ...]], max_chars: int) -> list[list[bytes]] | None:
        """Each text input as UTF-8 (missing -> ``b""``), None if irregular."""
        columns = list(zip(*(row[self._n_numeric :] for row in tuples), strict=True))
        encoded = []
        for column in columns:
            if max(len(v) if v else 0 for v in column) > max_chars:
                return None
            try:
                encoded.append([v.encode() if v else b"" for v in column])
            except UnicodeEncodeError:  # a lone surrogate
                return None
        return encoded

    @staticmethod
    def _has_empty_row(numbers: np.ndarray[Any, Any], texts: list[list[bytes]]) -> bool:
        """Whether a row has no value at all (all NaN, all empty text)."""
        empty = np.isnan(numbers).all(axis=1)
        for column in texts:
            if not empty.any():
                return False
            empty &= np.fromiter(map(bool, column), dtype=bool, count=len(column)) == 0
        return bool(empty.any())


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


_compiled: list[tuple[ModelSchema, RowDecoder]] = []


def decoder_for(schema: ModelSchema) -> RowDecoder:
    """The decoder of ``schema``'s inputs, compiled once per schema the client fetched."""
    for known, decoder in _compiled:
        if known is schema:
            return decoder
    decoder = RowDecoder(schema.inputs, schema.missing_text)
    _compiled[:] = [*_compiled[-3:], (schema, decoder)]  # the last few: old ones are gone
    return decoder
