"""The training data's reference profile, and the binning and PSI that compare traffic to it.

A bundle's ``profile.json`` (written by training, sealed by the manifest like every other
file) describes the rows the model learnt from: each numeric column's deciles (as bin
edges) and each category column's frequencies, with the share of missing values of every
column, and the distribution of the out-of-fold stack scores (the scores an unseen row
gets, not the refit model's optimistic ones on its own training rows).

Every column is binned the same way, so one vectorised step bins a whole cleaned batch:
a value falls in the bin of the number of the column's edges it reaches (a category code
``c`` reaches the ``c`` edges ``0.5, 1.5, ...``), and a missing value (``NaN``, also
what an unreadable value becomes) goes to the last slot, :data:`MISSING_SLOT`. The
expected share of each bin is measured on the training rows with this same binning, so
ties among deciles (a column of few distinct values) cannot skew the comparison.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modeling.schema import COLUMNS, KINDS, VOCABULARIES, Kind

PROFILE_FILE = "profile.json"
PROFILE_VERSION = 1
DECILES = tuple(k / 10 for k in range(1, 10))
"""The quantiles whose values are a numeric column's (and the score's) inner bin edges."""
MAX_EDGES = max(len(DECILES), *(len(v) - 1 for v in VOCABULARIES.values()))
"""Most inner edges a column has (December is code 11: 11 edges)."""
SLOTS = MAX_EDGES + 2
"""Bins per column: ``MAX_EDGES + 1`` value bins and the missing slot."""
MISSING_SLOT = SLOTS - 1
_BROADCAST_ROWS = 256
PSI_FLOOR = 1e-4
"""Shares below this count as this in PSI, so an empty bin gives a large, finite term."""


class ProfileError(ValueError):
    """A profile file that is unreadable or does not fit the schema."""


def psi(expected: NDArray[np.float64], actual: NDArray[np.float64]) -> NDArray[np.float64]:
    """Population stability index of ``actual`` shares against ``expected`` ones.

    ``sum((a - e) * ln(a / e))`` over the last axis, both floored at :data:`PSI_FLOOR`
    (bins empty on both sides add nothing). Rows of 2-D inputs are independent columns.
    Rule of thumb: below 0.1 stable, 0.1 to 0.25 a shift worth a look, above 0.25 a
    different population.
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    return np.asarray(np.sum((a - e) * np.log(a / e), axis=-1), dtype=np.float64)


def shares(counts: NDArray[Any]) -> NDArray[np.float64]:
    """Counts to shares along the last axis (all zeros stay zeros)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def _category_edges(column: str) -> list[float]:
    return [code + 0.5 for code in range(len(VOCABULARIES[column]) - 1)]


def edge_matrix(edges: Mapping[str, Sequence[float]]) -> NDArray[np.float64]:
    """``(100, MAX_EDGES)`` edges in column order, padded with ``+inf`` (reached by nothing)."""
    matrix = np.full((len(COLUMNS), MAX_EDGES), np.inf)
    for j, column in enumerate(COLUMNS):
        values = list(edges[column])
        matrix[j, : len(values)] = values
    return matrix


def bin_matrix(matrix: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.uint8]:
    """Bin every value of a cleaned ``(n, 100)`` matrix at once: ``(n, 100)`` slot numbers.

    A value's slot is the number of its column's edges it reaches (so a value equal to
    an edge goes above it); missing values go to :data:`MISSING_SLOT`.
    """
    if matrix.shape[0] <= _BROADCAST_ROWS:  # one step: fastest for a few rows
        slots = (matrix[:, :, None] >= edges[None, :, :]).sum(axis=2, dtype=np.uint8)
    else:  # one pass per edge over all columns: faster for many rows, little memory
        slots = np.zeros(matrix.shape, dtype=np.uint8)
        reached = np.empty(matrix.shape, dtype=np.bool_)
        for k in range(edges.shape[1]):
            np.greater_equal(matrix, edges[:, k], out=reached)
            slots += reached.view(np.uint8)
    slots[np.isnan(matrix)] = MISSING_SLOT
    return slots


def count_slots(slots: NDArray[np.uint8]) -> NDArray[np.int64]:
    """``(100, SLOTS)`` counts of each column's slots in an ``(n, 100)`` slot matrix."""
    offsets = np.arange(slots.shape[1], dtype=np.intp) * SLOTS
    flat = (slots.astype(np.intp) + offsets).ravel()
    counts = np.bincount(flat, minlength=slots.shape[1] * SLOTS)
    return counts.reshape(slots.shape[1], SLOTS).astype(np.int64)


def bin_scores(scores: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.intp]:
    """The bin of each score among sorted inner ``edges`` (an edge goes to the bin above)."""
    return np.searchsorted(edges, scores, side="right")


@dataclass(frozen=True)
class ReferenceProfile:
    """What the training rows looked like, in the form serving compares traffic with.

    Attributes:
        rows: training rows the profile was measured on.
        edges: per column (schema order), its inner bin edges: deciles for numeric
            columns, ``0.5, 1.5, ...`` between category codes.
        expected: ``(100, SLOTS)`` training share of each column's bins, missing slot last.
        score_edges: deciles of the out-of-fold stack probabilities.
        score_expected: training share of each score bin (``len(score_edges) + 1``).
        threshold: the decision threshold the positive share is measured at.
        positive_share: share of training scores at or above ``threshold``.
        score_mean: mean training score.

    """

    rows: int
    edges: tuple[tuple[float, ...], ...]
    expected: NDArray[np.float64]
    score_edges: NDArray[np.float64]
    score_expected: NDArray[np.float64]
    threshold: float
    positive_share: float
    score_mean: float

    @property
    def edge_matrix(self) -> NDArray[np.float64]:
        """The edges as one padded matrix for :func:`bin_matrix`."""
        return edge_matrix(dict(zip(COLUMNS, self.edges, strict=True)))

    @property
    def missing_share(self) -> NDArray[np.float64]:
        """Training share of missing (or unreadable) values per column, schema order."""
        return np.asarray(self.expected[:, MISSING_SLOT], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        """The profile as JSON-ready data (frequencies by name for category columns)."""
        columns: dict[str, Any] = {}
        for j, column in enumerate(COLUMNS):
            n_bins = len(self.edges[j]) + 1
            entry: dict[str, Any] = {
                "kind": str(KINDS[column]),
                "missing": float(self.expected[j, MISSING_SLOT]),
            }
            value_shares = [float(v) for v in self.expected[j, :n_bins]]
            if KINDS[column] is Kind.CATEGORY:
                entry["frequencies"] = dict(zip(VOCABULARIES[column], value_shares, strict=True))
            else:
                entry["deciles"] = list(self.edges[j])
                entry["shares"] = value_shares
            columns[column] = entry
        return {
            "version": PROFILE_VERSION,
            "rows": self.rows,
            "columns": columns,
            "score": {
                "source": "out-of-fold stack probabilities",
                "deciles": [float(v) for v in self.score_edges],
                "shares": [float(v) for v in self.score_expected],
                "threshold": self.threshold,
                "positive_share": self.positive_share,
                "mean": self.score_mean,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_json` data.

        Raises:
            ProfileError: naming the first thing that does not fit the schema.

        """
        try:
            if data["version"] != PROFILE_VERSION:
                raise ProfileError(f"profile version {data['version']!r} is not {PROFILE_VERSION}")
            expected = np.zeros((len(COLUMNS), SLOTS))
            edges: list[tuple[float, ...]] = []
            for j, column in enumerate(COLUMNS):
                entry = data["columns"][column]
                if KINDS[column] is Kind.CATEGORY:
                    frequencies = entry["frequencies"]
                    if list(frequencies) != list(VOCABULARIES[column]):
                        raise ProfileError(f"profile of {column} names other categories")
                    column_edges = tuple(_category_edges(column))
                    values = [float(frequencies[v]) for v in VOCABULARIES[column]]
                else:
                    column_edges = tuple(float(v) for v in entry["deciles"])
                    values = [float(v) for v in entry["shares"]]
                if len(values) != len(column_edges) + 1 or len(column_edges) > MAX_EDGES:
                    raise ProfileError(f"profile of {column} has bins that do not fit its edges")
                edges.append(column_edges)
                expected[j, : len(values)] = values
                expected[j, MISSING_SLOT] = float(entry["missing"])
            score = data["score"]
            score_edges = np.asarray(score["deciles"], dtype=np.float64)
            score_expected = np.asarray(score["shares"], dtype=np.float64)
            if len(score_expected) != len(score_edges) + 1:
                raise ProfileError("profile's score shares do not fit its deciles")
            return cls(
                rows=int(data["rows"]),
                edges=tuple(edges),
                expected=expected,
                score_edges=score_edges,
                score_expected=score_expected,
                threshold=float(score["threshold"]),
                positive_share=float(score["positive_share"]),
                score_mean=float(score["mean"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, ProfileError):
                raise
            raise ProfileError(f"profile does not fit the schema: {error!r}") from error

    def save(self, directory: Path) -> Path:
        """Write ``profile.json`` into ``directory``; return its path."""
        path = directory / PROFILE_FILE
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=False))
        return path

    @classmethod
    def load(cls, directory: Path) -> ReferenceProfile:
        """Read ``profile.json`` from ``directory``.

        Raises:
            ProfileError: when it is unreadable or does not fit the schema.

        """
        try:
            data = json.loads((directory / PROFILE_FILE).read_text())
        except (OSError, ValueError) as error:
            raise ProfileError(f"unreadable {PROFILE_FILE}: {error}") from error
        return cls.from_json(data)


def category_edges() -> dict[str, list[float]]:
    """The fixed edges of every category column (between consecutive codes)."""
    return {column: _category_edges(column) for column in VOCABULARIES}
