"""JSON rows to typed input columns, value by value: the path that names every bad value.

The typed decode (``gateway.decode``) takes every regular body in one compiled step;
this module takes the rest: values of another type, spellings the typed decode does not
know (``" 1.5"``, ``"NA"``, a number for a text input), and bad values, which it names
by row and field. Each model input becomes one column: FP64/FP32 inputs a float64 array
(missing -> NaN), BYTES inputs a list of UTF-8 strings (missing -> ``b""``; the inference
server cleans text). Keys that are not model inputs are ignored; an absent key is a
missing value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from gateway.errors import ApiError, bad_request, detail, invalid_input
from proto.codec import DEFAULT_MISSING, FP32, FP32_MAX, FP64, TensorSpec

NUMERIC_TYPES = frozenset({FP64, FP32})
"""Datatypes filled from numbers (sent as little-endian raw contents)."""


@dataclass(frozen=True)
class Batch:
    """Converted rows: one column per model input, in the model's input order.

    Attributes:
        n_rows: number of rows.
        columns: float64 arrays for numeric inputs, lists of UTF-8 bytes for BYTES.

    """

    n_rows: int
    columns: tuple[NDArray[np.float64] | list[bytes], ...]


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """One batch holding the rows of ``batches`` in order (same inputs in each)."""
    columns: list[NDArray[np.float64] | list[bytes]] = []
    for parts in zip(*(batch.columns for batch in batches), strict=True):
        if isinstance(parts[0], np.ndarray):
            columns.append(np.concatenate(parts))
        else:
            columns.append(list(chain.from_iterable(parts)))
    return Batch(sum(batch.n_rows for batch in batches), tuple(columns))


def parse_body(body: bytes, max_errors: int = 100) -> list[Any]:
    """Decode a request body into its list of rows; a lone object is one row.

    Raises:
        ApiError: 400 for malformed JSON (NaN/Infinity literals and numbers beyond
            float64 included), bytes that are not UTF-8 (naming the first
            ``max_errors`` rows and fields that hold them), a top-level value that is
            neither an object nor an array, or an empty array.

    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _not_utf8(body, max_errors) or bad_request(f"malformed JSON: {exc}") from None
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise bad_request(
            f"body must be a JSON object or an array of objects, got {_json_type(data)}"
        )
    if not data:
        raise bad_request("body is an empty array: send at least one row")
    return data


def _not_utf8(body: bytes, max_errors: int) -> ApiError | None:
    """The 400 for a body that is not UTF-8 (None if it is), naming each row and field.

    The body is decoded again with each bad byte kept as a lone surrogate (which the
    standard library's JSON parser carries into the strings), so the keys and text values
    holding such bytes can be named, shown with replacement characters.
    """
    try:
        body.decode()
    except UnicodeDecodeError as exc:
        offset = exc.start
    else:
        return None
    message = f"malformed JSON: not UTF-8 (byte 0x{body[offset]:02x} at offset {offset})"
    try:
        data = json.loads(body.decode(errors="surrogateescape"), strict=False)
    except (ValueError, RecursionError):  # not JSON either: the offset says where
        return bad_request(message)
    rows = [data] if isinstance(data, dict) else data if isinstance(data, list) else []
    details = [
        detail(row, _shown(key), _shown(value), "text is not valid UTF-8")
        for row, fields in enumerate(rows)
        if isinstance(fields, dict)
        for key, value in fields.items()
        if _escaped(key) or (isinstance(value, str) and _escaped(value))
    ]
    if details:
        message += f": {len(details)} invalid value{'s' if len(details) != 1 else ''}"
    return ApiError(400, message, details[:max_errors], count=len(details))


def _escaped(text: str) -> bool:
    """Whether ``text`` holds a byte that was not UTF-8 (kept as a lone surrogate)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _shown(value: Any) -> Any:
    """``value`` with each byte that was not UTF-8 shown as U+FFFD."""
    if isinstance(value, str):
        return value.encode(errors="surrogateescape").decode(errors="replace")
    return value


def rows_to_batch(
    rows: Sequence[Any],
    inputs: Sequence[TensorSpec],
    *,
    max_text_chars: int = 1024,
    max_errors: int = 100,
    missing: frozenset[str] = DEFAULT_MISSING,
) -> Batch:
    """Convert rows (JSON objects) into one column per input.

    Raises:
        ApiError: 400 naming every bad row or value (the first ``max_errors`` of them,
            ordered by row then input order): a row that is not an object or holds
            none of the inputs, or a value that is not a number (numeric input) or
            text/number (BYTES input), is non-finite, or is longer than
            ``max_text_chars``.

    """
    names = [spec.name for spec in inputs]
    values = _read_rows(rows, names, max_errors)
    return columns_to_batch(
        values,
        len(rows),
        inputs,
        max_text_chars=max_text_chars,
        max_errors=max_errors,
        missing=missing,
    )


def columns_to_batch(
    values: Sequence[Sequence[Any]],
    n_rows: int,
    inputs: Sequence[TensorSpec],
    *,
    max_text_chars: int = 1024,
    max_errors: int = 100,
    missing: frozenset[str] = DEFAULT_MISSING,
) -> Batch:
    """Convert one column of ``n_rows`` JSON values per input (in ``inputs``' order).

    Raises:
        ApiError: 400 naming every bad value, as :func:`rows_to_batch` does.

    """
    columns: list[NDArray[np.float64] | list[bytes]] = []
    errors: list[tuple[int, int, dict[str, Any]]] = []
    n_bad = 0
    for position, (spec, column) in enumerate(zip(inputs, values, strict=True)):
        found: list[tuple[int, dict[str, Any]]] = []
        if spec.datatype in NUMERIC_TYPES:
            parsed = numeric_column(column, spec.name, found, missing)
            if spec.datatype == FP32:
                _refuse_beyond_fp32(parsed, column, spec.name, found)
            columns.append(parsed)
        else:
            columns.append(text_column(column, spec.name, found, max_text_chars))
        n_bad += len(found)
        errors.extend((row, position, item) for row, item in found[:max_errors])
    if errors:
        errors.sort(key=lambda error: (error[0], error[1]))
        details = [item for _, _, item in errors[:max_errors]]
        raise invalid_input("value", details, n_bad, max_errors)
    return Batch(n_rows, tuple(columns))


def _refuse_beyond_fp32(
    parsed: NDArray[np.float64], column: Sequence[Any], name: str, errors: list[Any]
) -> None:
    """Name every value of an FP32 input beyond float32's range (it would be sent as inf)."""
    for row in np.flatnonzero(np.abs(parsed) > FP32_MAX).tolist():
        errors.append((row, detail(row, name, column[row], "number out of range for float32")))
        parsed[row] = math.nan
    errors.sort(key=lambda error: error[0])


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """Return a callable giving the tuple of ``names``' values of a row (any count)."""
    if len(names) > 1:
        return itemgetter(*names)
    if names:
        return _single_getter(names[0])
    return _no_getter


def _no_getter(row: Any) -> tuple[Any, ...]:
    """Read nothing, but fail like itemgetter on a row that is not an object."""
    if type(row) is not dict:
        raise TypeError("row is not an object")
    return ()


def _read_rows(rows: Sequence[Any], names: list[str], max_errors: int) -> list[tuple[Any, ...]]:
    """Transpose rows into one tuple of raw values per name; 400 for bad rows."""
    getter = _getter(names)
    try:
        table = list(map(getter, rows))  # fails on a non-object row or an absent key
    except (KeyError, TypeError):
        table = []
        bad: list[dict[str, Any]] = []
        wanted = frozenset(names)
        for i, row in enumerate(rows):
            if type(row) is not dict:
                reason = f"row must be a JSON object, got {_json_type(row)}"
                bad.append(detail(i, None, row, reason))
            elif wanted.isdisjoint(row):
                bad.append(detail(i, None, row, "row holds none of the model's inputs"))
            else:
                table.append(tuple(map(row.get, names)))
        if bad:
            raise invalid_input("row", bad, len(bad), max_errors) from None
    return list(zip(*table, strict=True))


def _single_getter(name: str) -> Callable[[Any], tuple[Any, ...]]:
    """Return an itemgetter-like callable giving a 1-tuple (itemgetter of one key does not)."""

    def get(row: Any) -> tuple[Any, ...]:
        return (row[name],)

    return get


def numeric_column(
    column: Sequence[Any],
    name: str,
    errors: list[tuple[int, dict[str, Any]]],
    missing: frozenset[str] = DEFAULT_MISSING,
) -> NDArray[np.float64]:
    """Parse one numeric column into float64 (missing -> NaN); append bad values to errors.

    Accepted: JSON numbers, numeric strings (surrounding spaces allowed), and as
    missing ``null`` and the texts of ``missing`` in any case (the server publishes them).
    """
    out = np.empty(len(column), dtype=np.float64)
    for row, value in enumerate(column):
        number, reason = parse_number(value, missing)
        out[row] = number
        if reason is not None:
            errors.append((row, detail(row, name, value, reason)))
    return out


def parse_number(value: Any, missing: frozenset[str] = DEFAULT_MISSING) -> tuple[float, str | None]:
    """Return ``(number, None)`` for a valid numeric value, ``(nan, reason)`` otherwise."""
    number, reason = math.nan, None
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
        if value is not None:
            reason = f"expected a number, got {_json_type(value)}"
    elif isinstance(value, str):
        text = value.strip()
        if text.lower() not in missing:
            try:
                number = float(text)
            except ValueError:
                reason = "not a number"
    else:
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    if math.isinf(number):
        number, reason = math.nan, "number out of range for float64"
    return number, reason


def text_column(
    column: Sequence[Any],
    name: str,
    errors: list[tuple[int, dict[str, Any]]],
    max_chars: int,
) -> list[bytes]:
    """Encode one text column as UTF-8 (missing -> ``b""``); append bad values to errors.

    Accepted: strings up to ``max_chars`` characters, numbers (sent as their JSON
    text) and ``null``.
    """
    try:
        encoded = list(map(str.encode, column))
    except (TypeError, UnicodeEncodeError):
        pass
    else:
        if not encoded or max(map(len, column)) <= max_chars:
            return encoded
    out: list[bytes] = []
    for row, value in enumerate(column):
        data, reason = encode_text(value, max_chars)
        out.append(data)
        if reason is not None:
            errors.append((row, detail(row, name, value, reason)))
    return out


def encode_text(value: Any, max_chars: int) -> tuple[bytes, str | None]:
    """Return ``(utf8, None)`` for a valid text value, ``(b"", reason)`` otherwise."""
    if value is None:
        return b"", None
    if isinstance(value, bool):
        return b"", "expected text, got a boolean"
    if isinstance(value, int | float):
        value = orjson.dumps(value).decode() if math.isfinite(value) else "nan"
    elif not isinstance(value, str):
        return b"", f"expected text, got {_json_type(value)}"
    if len(value) > max_chars:
        return b"", f"text longer than {max_chars} characters"
    try:
        return value.encode(), None
    except UnicodeEncodeError:
        return b"", "text is not valid Unicode"


_JSON_TYPES: dict[type, str] = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _json_type(value: Any) -> str:
    """Name the JSON type of a decoded value."""
    return _JSON_TYPES.get(type(value), type(value).__name__)
