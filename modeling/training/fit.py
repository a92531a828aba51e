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
from modeling.learners import LEARNERS
from modeling.learners.meta import MetaLearner
from modeling.stack import Stack
from modeling.training.crossval import (
    OutOfFold,
    Progress,
    columns_for_all_rows,
    majority_columns,
    out_of_fold,
    refit_params,
)
from modeling.training.data import DataError
from modeling.training.evaluation import best_f1_threshold, summarise_auc
from modeling.training.profile import build_profile

MAX_TRUSTED_WIDTH = 0.05
"""A stack AUC interval wider than this is too uncertain to trust: training warns."""
_ROWS_PER_CLASS_AND_FOLD = 10


@dataclass(frozen=True)
class TrainingSet:
    """Features and labels, and where they came from."""

    features: NDArray[np.float64]
    target: NDArray[np.int_]
    source: dict[str, Any]


def training_set(
    columns: dict[str, Any], target: NDArray[np.int_], source: dict[str, Any]
) -> TrainingSet:
    """Clean raw columns into a :class:`TrainingSet`."""
    batch = clean(columns, len(target))
    details = {**source, "rows": len(target), "positives": int(target.sum())}
    return TrainingSet(batch.matrix, np.asarray(target, dtype=np.int_), details)


def check_learnable(target: NDArray[np.int_], params: dict[str, Any]) -> None:
    """Refuse, in one line, labels too few for the folds, the stopping rows and the mixtures.

    Every class needs ``10 x folds`` rows, and enough that each fold still fits five
    rows per mixture component of the logistic learner.

    Raises:
        DataError: naming the class that is too small and the count it needs.

    """
    folds = int(params["folds"])
    components = max([0, *params.get("logistic", {}).get("search", {}).get("n_components", [])])
    fitted_share = (folds - 1) / folds * (1 - float(params["stop_share"]))
    need = max(_ROWS_PER_CLASS_AND_FOLD * folds, int(np.ceil(5 * components / fitted_share)))
    for label, count in ((1, int(target.sum())), (0, int(len(target) - target.sum()))):
        if count < need:
            raise DataError(
                f"too few rows to learn from: {count} rows of class y={label}, "
                f"{folds}-fold training needs at least {need} of each class"
            )


def cv_metrics(oof: OutOfFold, target: NDArray[np.int_]) -> dict[str, dict[str, float]]:
    """Out-of-fold AUC summary of every base learner and of the stack."""
    metrics = {
        name: summarise_auc(target, oof.base[:, j], oof.folds).as_dict()
        for j, name in enumerate(oof.names)
    }
    metrics["stack"] = summarise_auc(target, oof.stack, oof.folds).as_dict()
    return metrics


def trust_warnings(metrics: dict[str, dict[str, float]]) -> list[str]:
    """Warnings about the cross-validated estimate (an interval too wide to trust)."""
    stack = metrics["stack"]
    width = stack["high"] - stack["low"]
    if width <= MAX_TRUSTED_WIDTH:
        return []
    return [
        f"the stack's cross-validated AUC {stack['auc']:.3f} has a 95% interval "
        f"[{stack['low']:.3f}, {stack['high']:.3f}] wider than {MAX_TRUSTED_WIDTH}: "
        "too few rows to trust this model's quality; train on more labelled rows"
    ]


def fit_stack(
    data: TrainingSet, params: dict[str, Any], oof: OutOfFold, *, seed: int, progress: Progress
) -> tuple[Stack, dict[str, Any]]:
    """Refit every learner on all rows with the folds' capacity; fit the meta-learner on ``oof``.

    The decision threshold is the one that maximises F1 on the out-of-fold stack.
    A learner that screens its own columns (``selection.own``) is refitted on the
    columns most folds kept for it, the others on the shared selection over all rows.
    Returns the stack and the parameters the refit used.
    """
    meta = MetaLearner(oof.names).fit(oof.base, data.target)
    refit = refit_params(params, oof)
    shared = columns_for_all_rows(data.features, data.target, params, seed)
    own = params.get("selection", {}).get("own", ())
    learners = {}
    for name in oof.names:
        columns = majority_columns(oof.learner_columns[name]) if name in own else shared
        progress(
            f"{name}: refit on all {len(data.target)} rows, {len(columns)} columns, {refit[name]}"
        )
        learner = LEARNERS[name](columns=columns, **refit[name])
        learners[name] = learner.fit(data.features, data.target)
    return Stack(learners, meta, threshold=best_f1_threshold(data.target, oof.stack)), refit


def train(
    data: TrainingSet,
    params: dict[str, Any],
    out: Path,
    *,
    progress: Progress,
    seed: int = 0,
    demo: bool = False,
    identity: dict[str, str] | None = None,
) -> tuple[Stack, dict[str, Any]]:
    """Cross-validate, refit on all rows and write the bundle; return it and its manifest.

    ``identity`` (``name`` and ``version`` in a model repository) goes into the manifest.
    """
    check_learnable(data.target, params)
    started = time.perf_counter()
    oof = out_of_fold(data.features, data.target, params, seed=seed, progress=progress)
    metrics = cv_metrics(oof, data.target)
    stack, refit = fit_stack(data, params, oof, seed=seed, progress=progress)
    manifest = save_bundle(
        stack,
        out,
        profile=build_profile(data.features, oof.stack, stack.threshold),
        demo=demo,
        training_data=data.source,
        params=params,
        refit_params=refit,
        seed=seed,
        cv_metrics=metrics,
        warnings=trust_warnings(metrics),
        stacking_weights=stack.meta.weights(),
        training_seconds=round(time.perf_counter() - started, 1),
        **(identity or {}),
    )
    return stack, manifest
