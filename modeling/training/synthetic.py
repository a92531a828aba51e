"""Schema-faithful synthetic rows with every quirk of the real files.

Used by the tests, and as the training set of a demo model when the user has no CSV
(every output of such a model says it is a demo). Values are strings, as in the
exercise's curl examples; the label depends on a few columns so models can learn it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from modeling.schema import COLUMNS, KINDS, Kind

SPELLINGS: dict[str, tuple[str, ...]] = {
    "x1": ("wed", "thurday", "wednesday", "thur", "tuesday", "friday", "fri", "monday"),
    "x54": (
        "Jun",
        "July",
        "Aug",
        "May",
        "sept.",
        "Apr",
        "Mar",
        "Oct",
        "Nov",
        "Dev",
        "Feb",
        "January",
    ),
    "x82": ("asia", "euorpe", "america"),
    "x84": (
        "Toyota",
        "volkswagon",
        "Honda",
        "bmw",
        "chrystler",
        "tesla",
        "ford",
        "chevrolet",
        "mercades",
        "nissan",
    ),
}
"""The spellings seen in the exercise files, most frequent first."""

_MISSING_RATE = 0.002


def _money(value: float) -> str:
    text = f"${abs(value):,.2f}"
    return f"({text})" if value < 0 else f"{text} "


def render(
    numbers: NDArray[np.float64], rng: np.random.Generator
) -> tuple[dict[str, list[str]], dict[str, NDArray[np.intp]]]:
    """Write an ``(n, 100)`` matrix as the exercise's raw text columns.

    Numbers become decimal text, ``x12`` money text (times 60), ``x79`` percent text
    (over 500, two decimals: a binned value); category columns are drawn at random
    from :data:`SPELLINGS` (their codes are returned too). A few cells go missing.
    """
    n_rows = len(numbers)
    columns: dict[str, list[str]] = {}
    codes: dict[str, NDArray[np.intp]] = {}
    for j, column in enumerate(COLUMNS):
        kind = KINDS[column]
        if kind is Kind.CATEGORY:
            spellings = SPELLINGS[column]
            weights = 1.0 / np.arange(1, len(spellings) + 1)
            codes[column] = rng.choice(len(spellings), size=n_rows, p=weights / weights.sum())
            values = [spellings[k] for k in codes[column]]
        elif kind is Kind.MONEY:
            values = [_money(v * 60) for v in numbers[:, j]]
        elif kind is Kind.PERCENT:
            values = [f"{v / 500:.2f}%" for v in numbers[:, j]]
        else:
            values = [repr(float(v)) for v in numbers[:, j]]
        missing = rng.random(n_rows) < _MISSING_RATE
        columns[column] = ["" if gone else v for v, gone in zip(values, missing, strict=True)]
    return columns, codes


def synthetic_table(n_rows: int, seed: int = 0) -> tuple[dict[str, list[str]], NDArray[np.int_]]:
    """Return ``n_rows`` rows as string columns (missing is ``""``) and their 0/1 labels."""
    rng = np.random.default_rng(seed)
    numbers = rng.normal(0.0, 10.0, size=(n_rows, len(COLUMNS)))
    columns, codes = render(numbers, rng)
    signal = (
        0.15 * numbers[:, 0]
        - 0.1 * numbers[:, 5]
        + 0.004 * numbers[:, 7] * numbers[:, 30]
        + 0.002 * numbers[:, 12] * 60 / 10
        + 0.6 * (codes["x1"] == 0)
        - 1.5
    )
    target = (rng.random(n_rows) < 1 / (1 + np.exp(-signal))).astype(np.int_)
    return columns, target


def synthetic_records(n_rows: int, seed: int = 0) -> list[dict[str, str]]:
    """The same rows as :func:`synthetic_table`, as one dictionary per row (JSON-like)."""
    columns, _ = synthetic_table(n_rows, seed)
    return [{c: columns[c][i] for c in COLUMNS} for i in range(n_rows)]
