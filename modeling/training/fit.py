"""Training end to end: cleaned rows to a cross-validated, sealed model bundle."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modeling.bundle import save_bundle
from modeling.cleaning import clean
from modeling.evaluation import summarise_auc
from modeling.stacking import OutOfFold, Progress, Stack, fit_stack, out_of_fold


@dataclass(frozen=True)
class TrainingSet:
    """Features and labels, and where they came from."""

    features: NDArray[np.float64]
    target: NDArray[np.int_]
    source: dict[str, Any]


def training_set(
    columns: dict[str, Any], target: NDArray[np.int_], source: dict[str, Any]
) -> TrainingSet:
    """Clean and engineer raw columns into a :class:`TrainingSet`."""
    batch = clean(columns, len(target))
    details = {**source, "rows": len(target), "positives": int(target.sum())}
    return TrainingSet(batch.matrix, np.asarray(target, dtype=np.int_), details)


def cross_validate(
    data: TrainingSet, params: dict[str, Any], *, seed: int, progress: Progress
) -> OutOfFold:
    """Out-of-fold predictions of every learner and the stack, with ``params["folds"]`` folds."""
    return out_of_fold(
        data.features,
        data.target,
        params,
        n_folds=int(params["folds"]),
        seed=seed,
        progress=progress,
    )


def cv_metrics(oof: OutOfFold, target: NDArray[np.int_]) -> dict[str, dict[str, float]]:
    """Out-of-fold AUC summary of every base learner and of the stack."""
    metrics = {
        name: summarise_auc(target, oof.base[:, j], oof.folds).as_dict()
        for j, name in enumerate(oof.names)
    }
    metrics["stack"] = summarise_auc(target, oof.stack, oof.folds).as_dict()
    return metrics


def train(
    data: TrainingSet,
    params: dict[str, Any],
    out: Path,
    *,
    progress: Progress,
    seed: int = 0,
    demo: bool = False,
) -> tuple[Stack, dict[str, Any]]:
    """Cross-validate, refit on all rows and write the bundle; return it and its manifest."""
    started = time.perf_counter()
    oof = cross_validate(data, params, seed=seed, progress=progress)
    metrics = cv_metrics(oof, data.target)
    stack = fit_stack(data.features, data.target, params, oof, seed=seed, progress=progress)
    manifest = save_bundle(
        stack,
        out,
        demo=demo,
        training_data=data.source,
        params=params,
        seed=seed,
        cv_metrics=metrics,
        stacking_weights=stack.meta.weights(),
        training_seconds=round(time.perf_counter() - started, 1),
    )
    return stack, manifest
