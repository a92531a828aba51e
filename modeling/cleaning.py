"""Raw values to one typed matrix: the only cleaning code, shared by training and serving.

Input is a mapping of column name to a sequence of raw values, as they come from a CSV,
a JSON body or a gRPC tensor: numbers, numeric strings, ``bytes``, ``None``, ``""`` or
``"nan"``. Output is a ``float64`` matrix in :data:`~modeling.schema.COLUMNS` order in
which missing values are ``NaN`` and category columns hold the code of their canonical
value. Nothing here raises for a bad value: it becomes ``NaN`` and is counted.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modeling.schema import ALIASES, COLUMNS, KINDS, VOCABULARIES, Kind

MAX_ABS_VALUE = float(np.finfo(np.float32).max)
"""Largest magnitude a numeric value may have. CatBoost scores in float32, where a larger
value is infinite, and squares of such values overflow the other learners: a value
beyond it is unrecognised, like ``inf`` (``NaN`` and counted), so every answer stays a
probability."""

MISSING_TEXT = frozenset({"", "nan", "na", "n/a", "null", "none"})
"""Text that means "no value" (``"nan"`` is what ``str()`` of a pandas NaN gives)."""

_MIN_PREFIX = 3
_MONEY_NOISE = str.maketrans("", "", "()$, ")
_CLOSE_MATCH_CUTOFF = 0.8


@dataclass(frozen=True)
class CleanBatch:
    """The cleaned rows and what cleaning noticed about them.

    Attributes:
        matrix: ``(n_rows, 100)`` float64 matrix in schema column order.
        missing: per column, how many rows had no value.
        unrecognised: per column, how many rows had a value that could not be read
            (an unknown category, or text where a number belongs); those are ``NaN``.

    """

    matrix: NDArray[np.float64]
    missing: dict[str, int]
    unrecognised: dict[str, int]

    @property
    def n_rows(self) -> int:
        """Number of rows in the batch."""
        return int(self.matrix.shape[0])


def _as_text(value: Any) -> str | None:
    """Return the stripped text of a raw value, or None when it means "missing"."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    elif isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip()
    return None if text.lower() in MISSING_TEXT else text


@lru_cache(maxsize=4096)
def normalise_category(column: str, raw: str) -> str | None:
    """Map one spelling to its canonical value, or None when it cannot be recognised.

    Tries, in order: the canonical value itself (any case, trailing dot dropped), the
    alias table, a unique prefix of at least three letters (``"thu"``, ``"Sept"``), and
    a close match (``"thurday"``, ``"volkswagon"``, ``"euorpe"``).
    """
    vocabulary = VOCABULARIES[column]
    text = raw.strip().lower().rstrip(".").strip()
    if text in vocabulary:
        return text
    alias = ALIASES[column].get(text)
    if alias is not None:
        return alias
    if len(text) >= _MIN_PREFIX:
        prefixed = [value for value in vocabulary if value.startswith(text)]
        if len(prefixed) == 1:
            return prefixed[0]
    close = difflib.get_close_matches(text, vocabulary, n=1, cutoff=_CLOSE_MATCH_CUTOFF)
    return close[0] if close else None


@lru_cache(maxsize=4096)
def _category_code(column: str, text: str) -> float:
    canonical = normalise_category(column, text)
    return math.nan if canonical is None else float(VOCABULARIES[column].index(canonical))


def parse_money(text: str) -> float:
    """Parse accounting money: ``"$1,234.56 "`` -> 1234.56, ``"($506.82)"`` -> -506.82."""
    negative = text.startswith("(") and text.endswith(")")
    value = float(text.translate(_MONEY_NOISE))
    return -value if negative else value


def parse_percent(text: str) -> float:
    """Parse percent text to the number before the sign: ``"-0.02%"`` -> -0.02."""
    return float(text.removesuffix("%").strip())


_OK, _MISSING, _UNRECOGNISED = 0, 1, 2
_TEXT_PARSERS: dict[Kind, Callable[[str], float]] = {
    Kind.NUMERIC: float,
    Kind.MONEY: parse_money,
    Kind.PERCENT: parse_percent,
}


def _parse_text(column: str, kind: Kind, raw: Any) -> tuple[float, int]:
    """Parse one raw text value; return it with its status (0 ok, 1 missing, 2 unrecognised)."""
    text = _as_text(raw)
    if text is None:
        return math.nan, _MISSING
    try:
        value = _category_code(column, text) if kind is Kind.CATEGORY else _TEXT_PARSERS[kind](text)
    except ValueError:
        value = math.nan
    return (value, _OK) if abs(value) <= MAX_ABS_VALUE else (math.nan, _UNRECOGNISED)


def _bound(values: NDArray[np.float64]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Set values beyond :data:`MAX_ABS_VALUE` (inf included) to NaN, in place.

    Returns the masks of the values that were missing and of those set to NaN.
    """
    missing = np.isnan(values)
    out_of_range = np.abs(values) > MAX_ABS_VALUE  # NaN compares False
    values[out_of_range] = math.nan
    return missing, out_of_range


def _clean_column(column: str, values: Any, n_rows: int) -> tuple[NDArray[np.float64], int, int]:
    """Clean one column; return its values, missing count and unrecognised count."""
    if values is None:
        return np.full(n_rows, np.nan), n_rows, 0
    try:
        array = np.asarray(values)
    except UnicodeDecodeError:  # non-ASCII bytes beside str: numpy cannot unify them
        array = np.asarray(values, dtype=object)
    if array.shape != (n_rows,):
        raise ValueError(f"column {column} has {array.size} values, expected {n_rows}")
    kind = KINDS[column]
    if kind is Kind.NUMERIC and array.dtype.kind in "fiubU":
        if array.dtype.kind == "U":
            array = np.where(array == "", "nan", array)
        try:
            out = array.astype(np.float64)
        except ValueError:
            pass  # some text is not a plain number: parse value by value below
        else:
            missing, out_of_range = _bound(out)
            return out, int(missing.sum()), int(out_of_range.sum())
    # Text columns repeat few distinct values: parse each distinct value once.
    raw_values = array.tolist()
    distinct = {raw: i for i, raw in enumerate(dict.fromkeys(raw_values))}
    parsed = [_parse_text(column, kind, raw) for raw in distinct]
    lookup = np.fromiter((distinct[raw] for raw in raw_values), dtype=np.intp, count=n_rows)
    out = np.array([value for value, _ in parsed], dtype=np.float64)[lookup]
    status = np.bincount(np.array([s for _, s in parsed], dtype=np.intp)[lookup], minlength=3)
    return out, int(status[_MISSING]), int(status[_UNRECOGNISED])


def clean(columns: Mapping[str, Sequence[Any] | NDArray[Any]], n_rows: int) -> CleanBatch:
    """Clean raw columns into a :class:`CleanBatch`.

    Args:
        columns: column name to raw values; an absent column is all missing, and
            columns outside the schema are ignored.
        n_rows: the number of rows (every given column must have this length).

    Raises:
        ValueError: when a column's length differs from ``n_rows``.

    """
    matrix = np.empty((n_rows, len(COLUMNS)), dtype=np.float64)
    missing: dict[str, int] = {}
    unrecognised: dict[str, int] = {}
    floats = _float_columns(columns, n_rows)
    if floats:  # what the server receives: one vectorised step instead of one per column
        block = np.column_stack([columns[COLUMNS[j]] for j in floats])
        block = block.astype(np.float64, copy=False)
        absent, out_of_range = _bound(block)
        matrix[:, floats] = block
        for j, n_missing, n_bad in zip(
            floats, absent.sum(axis=0).tolist(), out_of_range.sum(axis=0).tolist(), strict=True
        ):
            missing[COLUMNS[j]], unrecognised[COLUMNS[j]] = n_missing, n_bad
    done = frozenset(floats)
    for j, column in enumerate(COLUMNS):
        if j not in done:
            matrix[:, j], missing[column], unrecognised[column] = _clean_column(
                column, columns.get(column), n_rows
            )
    return CleanBatch(
        matrix=matrix,
        missing={c: missing[c] for c in COLUMNS},
        unrecognised={c: unrecognised[c] for c in COLUMNS},
    )


def _float_columns(columns: Mapping[str, Any], n_rows: int) -> list[int]:
    """Positions of the numeric columns given as float arrays of ``n_rows`` values."""
    return [
        j
        for j, column in enumerate(COLUMNS)
        if KINDS[column] is Kind.NUMERIC
        and isinstance(values := columns.get(column), np.ndarray)
        and values.dtype.kind == "f"
        and values.shape == (n_rows,)
    ]
