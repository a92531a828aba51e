"""Metrics of cross-validated predictions: AUC with intervals, calibration, thresholds.

scikit-learn computes the curves and scores; this module adds the AUC interval and the
per-fold spread that the reports and the bundle manifest show.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, precision_recall_curve, roc_auc_score, roc_curve

_Z95 = 1.959963984540054


def auc(target: NDArray[np.int_], score: NDArray[np.float64]) -> float:
    """Area under the ROC curve (ties count one half)."""
    if len(np.unique(target)) < 2:
        raise ValueError("AUC needs both classes")
    return float(roc_auc_score(target, score))


def auc_standard_error(value: float, n_positive: int, n_negative: int) -> float:
    """Hanley & McNeil's (1982) standard error of an AUC on that many positives and negatives."""
    q1 = value / (2 - value)
    q2 = 2 * value**2 / (1 + value)
    variance = (
        value * (1 - value)
        + (n_positive - 1) * (q1 - value**2)
        + (n_negative - 1) * (q2 - value**2)
    ) / (n_positive * n_negative)
    return math.sqrt(max(variance, 0.0))


def auc_interval(value: float, n_positive: int, n_negative: int) -> tuple[float, float]:
    """95% interval of an AUC by Hanley & McNeil's (1982) standard error."""
    half = _Z95 * auc_standard_error(value, n_positive, n_negative)
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
    return float(brier_score_loss(target, probability))


def reliability(
    target: NDArray[np.int_], probability: NDArray[np.float64], bins: int = 10
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean predicted vs observed rate in equal-count bins: (predicted, observed)."""
    observed, predicted = calibration_curve(target, probability, n_bins=bins, strategy="quantile")
    return np.asarray(predicted, dtype=np.float64), np.asarray(observed, dtype=np.float64)


def roc_points(
    target: NDArray[np.int_], score: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    fpr, tpr, _ = roc_curve(target, score, drop_intermediate=False)
    return np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)


def best_f1_threshold(target: NDArray[np.int_], probability: NDArray[np.float64]) -> float:
    """The probability cut-off (label 1 at and above it) that maximises F1.

    Tied probabilities fall on the same side of every cut-off, as they do in serving.
    """
    precision, recall, thresholds = precision_recall_curve(target, probability)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])
