"""Metrics of cross-validated predictions: AUC with intervals, calibration, thresholds."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

_Z95 = 1.959963984540054


def auc(target: NDArray[np.int_], score: NDArray[np.float64]) -> float:
    """Area under the ROC curve (ties count one half), via the rank-sum statistic."""
    positives = int(target.sum())
    negatives = len(target) - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both classes")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float(
        (ranks[target == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )


def auc_interval(value: float, n_positive: int, n_negative: int) -> tuple[float, float]:
    """95% interval of an AUC by Hanley & McNeil's (1982) standard error."""
    q1 = value / (2 - value)
    q2 = 2 * value**2 / (1 + value)
    variance = (
        value * (1 - value)
        + (n_positive - 1) * (q1 - value**2)
        + (n_negative - 1) * (q2 - value**2)
    ) / (n_positive * n_negative)
    half = _Z95 * math.sqrt(max(variance, 0.0))
    return max(0.0, value - half), min(1.0, value + half)


@dataclass(frozen=True)
class AucSummary:
    """AUC of out-of-fold predictions, its interval and the spread across folds."""

    auc: float
    low: float
    high: float
    fold_mean: float
    fold_std: float

    def as_dict(self) -> dict[str, float]:
        """Plain dictionary, rounded for manifests and reports."""
        return {key: round(value, 5) for key, value in asdict(self).items()}


def summarise_auc(
    target: NDArray[np.int_], score: NDArray[np.float64], folds: NDArray[np.intp]
) -> AucSummary:
    """Pooled out-of-fold AUC with a 95% interval, and the per-fold mean and spread."""
    value = auc(target, score)
    positives = int(target.sum())
    low, high = auc_interval(value, positives, len(target) - positives)
    per_fold = [auc(target[folds == k], score[folds == k]) for k in np.unique(folds)]
    return AucSummary(value, low, high, float(np.mean(per_fold)), float(np.std(per_fold)))


def brier(target: NDArray[np.int_], probability: NDArray[np.float64]) -> float:
    """Mean squared error of the probabilities (lower is better)."""
    return float(np.mean((probability - target) ** 2))


def reliability(
    target: NDArray[np.int_], probability: NDArray[np.float64], bins: int = 10
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int_]]:
    """Mean predicted vs observed rate in equal-count bins: (predicted, observed, counts)."""
    order = np.argsort(probability)
    groups = np.array_split(order, bins)
    predicted = np.array([probability[g].mean() for g in groups])
    observed = np.array([target[g].mean() for g in groups])
    return predicted, observed, np.array([len(g) for g in groups])


def roc_points(
    target: NDArray[np.int_], score: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    order = np.argsort(-score, kind="mergesort")
    hits = np.cumsum(target[order])
    false_alarms = np.arange(1, len(order) + 1) - hits
    distinct = np.r_[np.diff(score[order]) != 0, True]
    tpr = np.r_[0.0, hits[distinct] / max(int(target.sum()), 1)]
    fpr = np.r_[0.0, false_alarms[distinct] / max(len(target) - int(target.sum()), 1)]
    return fpr, tpr
