"""Build the reference profile a bundle carries (see :mod:`modeling.profile`)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from modeling.profile import (
    DECILES,
    ReferenceProfile,
    bin_matrix,
    bin_scores,
    category_edges,
    count_slots,
    edge_matrix,
    shares,
)
from modeling.schema import COLUMNS, KINDS, Kind


def _deciles(values: NDArray[np.float64]) -> tuple[float, ...]:
    """Distinct deciles of the present values (none for an all-missing column).

    Deciles are values the column really takes (no interpolation), so a column of few
    distinct values (``x79`` is written with two decimals) gets edges on its values.
    """
    present = values[~np.isnan(values)]
    if present.size == 0:
        return ()
    return tuple(float(v) for v in np.unique(np.quantile(present, DECILES, method="lower")))


def build_profile(
    features: NDArray[np.float64], scores: NDArray[np.float64], threshold: float
) -> ReferenceProfile:
    """Profile cleaned training rows and their honest (out-of-fold) stack scores.

    Args:
        features: the cleaned ``(n, 100)`` training matrix.
        scores: P(y = 1) of every training row from models that did not see it.
        threshold: the bundle's decision threshold.

    """
    fixed = category_edges()
    edges = {
        column: fixed[column] if KINDS[column] is Kind.CATEGORY else _deciles(features[:, j])
        for j, column in enumerate(COLUMNS)
    }
    expected = shares(count_slots(bin_matrix(features, edge_matrix(edges))))
    score_edges = np.unique(np.quantile(scores, DECILES, method="lower"))
    score_counts = np.bincount(bin_scores(scores, score_edges), minlength=len(score_edges) + 1)
    return ReferenceProfile(
        rows=len(features),
        edges=tuple(tuple(edges[c]) for c in COLUMNS),
        expected=expected,
        score_edges=score_edges,
        score_expected=shares(score_counts),
        threshold=float(threshold),
        positive_share=float(np.mean(scores >= threshold)),
        score_mean=float(np.mean(scores)),
    )
