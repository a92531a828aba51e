"""``python -m modeling tune``: Optuna search of one learner on cross-validated AUC.

A trial is scored by the one cross-validation of training
(:func:`~modeling.training.crossval.out_of_fold`: columns selected per fold, rounds
early-stopped per fold, pooled out-of-fold AUC), so tuning optimises exactly what
``train`` measures. Rounds are never searched: every fold finds them itself. The best
parameters are written into ``params.json`` (preset ``default``) unless ``--dry-run``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modeling.training.crossval import Progress, out_of_fold, silent
from modeling.training.evaluation import auc
from modeling.training.fit import TrainingSet
from modeling.training.params import load_params, store_params

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
        "num_boost_round": 5000,
        "early_stopping_rounds": 50,
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
        "iterations": 5000,
        "early_stopping_rounds": 100,
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "depth": trial.suggest_int("depth", 4, 8),
        "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 0.5, 30.0, log=True),
        "thread_count": 2,
    }


SPACES: dict[str, Space] = {"logistic": _logistic, "lightgbm": _lightgbm, "catboost": _catboost}


def cross_validated_auc(
    data: TrainingSet,
    learner: str,
    learner_params: dict[str, Any],
    params: dict[str, Any],
    *,
    seed: int,
    progress: Progress = silent,
) -> float:
    """Pooled out-of-fold AUC of ``learner`` with ``learner_params``, as training measures it."""
    trial_params = {**params, learner: learner_params}
    oof = out_of_fold(
        data.features, data.target, trial_params, names=(learner,), seed=seed, progress=progress
    )
    return auc(data.target, oof.base[:, 0])


def tune(
    data: TrainingSet,
    learner: str,
    params: dict[str, Any],
    *,
    seconds: float,
    seed: int,
    progress: Progress,
    store: bool = True,
) -> dict[str, Any]:
    """Search ``learner``'s space for ``seconds``; return (and optionally store) the best."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SPACES[learner]
    start = {k: v for k, v in load_params("default")[learner].items() if k != "search"}

    def objective(trial: optuna.Trial) -> float:
        value = cross_validated_auc(data, learner, space(trial), params, seed=seed)
        progress(f"trial {trial.number}: AUC {value:.4f}")
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(start, skip_if_exists=True)  # the stored values are tried first
    study.optimize(objective, timeout=seconds, gc_after_trial=True)
    best = space(optuna.trial.FixedTrial(study.best_params))
    progress(f"best AUC {study.best_value:.4f} after {len(study.trials)} trials")
    if store:
        store_params(learner, best)
    return best
