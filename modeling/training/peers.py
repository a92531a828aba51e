"""Off-the-shelf peers the stack must beat: XGBoost, LightGBM and CatBoost at their defaults.

Each sees the whole cleaned matrix (category codes as numbers, missing as NaN), with
the library's default parameters; only the thread count and logging are set. They are
scored on the same folds as the stack, fitted on each fold's training rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

PEERS = ("default xgboost", "default lightgbm", "default catboost")


def _peer(name: str, seed: int) -> Any:
    if name == "default xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_jobs=2, random_state=seed)
    if name == "default lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_jobs=2, random_state=seed, verbosity=-1)
    from catboost import CatBoostClassifier

    return CatBoostClassifier(
        thread_count=2, random_seed=seed, verbose=0, allow_writing_files=False
    )


def peers_out_of_fold(
    features: NDArray[np.float64],
    target: NDArray[np.int_],
    folds: NDArray[np.intp],
    *,
    seed: int = 0,
    progress: Callable[[str], None],
) -> dict[str, NDArray[np.float64]]:
    """Out-of-fold P(y = 1) of every peer on the given folds."""
    from sklearn.model_selection import PredefinedSplit, cross_val_predict

    scores = {}
    for name in PEERS:
        progress(f"{name}: {len(np.unique(folds))} folds")
        predicted = cross_val_predict(
            _peer(name, seed), features, target, cv=PredefinedSplit(folds), method="predict_proba"
        )
        scores[name] = np.asarray(predicted[:, 1], dtype=np.float64)
    return scores
