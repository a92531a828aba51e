"""``python -m modeling tune``: Optuna search of one learner on cross-validated AUC.

The best parameters are written into ``params.json`` (profile ``default``), so a plain
``train`` reproduces the model without tuning again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modeling.evaluation import auc
from modeling.learners import LEARNERS
from modeling.params import load_params, store_params
from modeling.stacking import Progress, stratified_folds
from modeling.training import TrainingSet

Space = Callable[[Any], dict[str, Any]]


def _logistic(trial: Any) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("C", 1e-3, 10.0, log=True),
        "n_knots": trial.suggest_int("n_knots", 0, 4),
        "n_components": trial.suggest_int("n_components", 0, 12),
        "max_iter": 3000,
    }


def _lightgbm(trial: Any) -> dict[str, Any]:
    return {
        "num_boost_round": trial.suggest_int("num_boost_round", 200, 2000, step=100),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.2, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "bagging_freq": 1,
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        "num_threads": 1,
    }


def _catboost(trial: Any) -> dict[str, Any]:
    return {
        "iterations": trial.suggest_int("iterations", 300, 2000, step=100),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "depth": trial.suggest_int("depth", 4, 8),
        "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 0.5, 30.0, log=True),
        "thread_count": 2,
    }


SPACES: dict[str, Space] = {"logistic": _logistic, "lightgbm": _lightgbm, "catboost": _catboost}


def cross_validated_auc(
    data: TrainingSet, learner: str, params: dict[str, Any], folds: np.ndarray
) -> float:
    """Mean AUC over folds of one learner with the given parameters."""
    scores = []
    for k in np.unique(folds):
        train, held_out = folds != k, folds == k
        model = LEARNERS[learner](**params).fit(data.features[train], data.target[train])
        scores.append(auc(data.target[held_out], model.predict_proba(data.features[held_out])))
    return float(np.mean(scores))


def tune(
    data: TrainingSet,
    learner: str,
    *,
    seconds: float,
    folds: int,
    seed: int,
    progress: Progress,
    store: bool = True,
) -> dict[str, Any]:
    """Search ``learner``'s space for ``seconds``; return (and optionally store) the best."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    assignment = stratified_folds(data.target, folds, seed)
    space = SPACES[learner]
    current = load_params("default")[learner]

    def objective(trial: optuna.Trial) -> float:
        value = cross_validated_auc(data, learner, space(trial), assignment)
        progress(f"trial {trial.number}: AUC {value:.4f}")
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(current)  # the stored parameters are the first candidate
    study.optimize(objective, timeout=seconds, gc_after_trial=True)
    best = space(optuna.trial.FixedTrial(study.best_params))
    progress(f"best AUC {study.best_value:.4f} after {len(study.trials)} trials")
    if store:
        store_params(learner, best)
    return best
