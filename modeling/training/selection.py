"""Screening out noise columns, fitted on training rows only.

A numeric column is dropped only when nothing says it carries signal:

- **relevance**: shuffling it on rows the screening model did not fit (the
  early-stopping rows) lowers that model's AUC (scikit-learn's permutation importance
  of an early-stopped LightGBM) by more than it lowers it for any of ``shadows``
  *shadow* columns: copies of numeric columns shuffled before fitting, which carry
  no signal by construction but get the same chances to be split on (Boruta's null).
  A column whose removal lowers the held-out AUC more than pure noise does is kept;
- **redundancy**: the share of its variance explained linearly by the other numeric
  columns (R², from the inverse correlation matrix) reaches ``min_r2``: a column that
  echoes others belongs to a block of signal even when the trees used its siblings.

Category columns are always kept. An empty parameter mapping keeps every column.

That screen is shared by every learner. A learner named in the selection's ``own``
list then screens the shared columns once more with its own model
(:func:`own_columns`): trees simply do not split on a useless column, but a model that
must give every input a place (the full-covariance class mixtures of the logistic
learner: each input adds a row and a column to every component's covariance) pays
for each noise column with variance. So such a learner keeps only the columns whose
shuffling lowers *its* held-out AUC, and the pruned set is taken only if a refit on it
does not lower that held-out AUC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modeling.learners.base import Learner
from modeling.schema import ALL_COLUMNS, CATEGORY_INDEX

FitAndScore = Callable[[tuple[int, ...]], tuple[Learner, float]]
"""Fits a learner on the given columns; returns it and its held-out AUC."""


def explained_variance(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """R² of each column regressed on all the others (mean-imputed)."""
    filled = np.where(np.isnan(values), np.nanmean(values, axis=0), values)
    correlation = np.corrcoef(filled, rowvar=False)
    correlation = np.nan_to_num(correlation) + 1e-9 * np.eye(len(correlation))
    return np.asarray(1.0 - 1.0 / np.diag(np.linalg.inv(correlation)), dtype=np.float64)


def auc_drop(
    features: NDArray[np.float64],
    target: NDArray[np.int_],
    stop: NDArray[np.bool_],
    repeats: int,
    seed: int,
) -> NDArray[np.float64]:
    """Mean fall of held-out AUC when each column is shuffled (permutation importance).

    The model is a LightGBM fitted on the rows outside ``stop`` and early-stopped on
    the ``stop`` rows, where the columns are then shuffled ``repeats`` times each.
    """
    import lightgbm as lgb
    from sklearn.inspection import permutation_importance

    categories = [j for j in CATEGORY_INDEX if j < features.shape[1]]
    model = lgb.LGBMClassifier(
        n_estimators=1000, learning_rate=0.1, n_jobs=1, random_state=seed, verbosity=-1
    )
    model.fit(
        features[~stop],
        target[~stop],
        eval_X=(features[stop],),
        eval_y=(target[stop],),
        eval_metric="auc",
        categorical_feature=categories,
        callbacks=[lgb.early_stopping(30, verbose=False)],
    )
    result = permutation_importance(
        model,
        features[stop],
        target[stop],
        scoring="roc_auc",
        n_repeats=repeats,
        random_state=seed,
        n_jobs=1,
    )
    return np.asarray(result.importances_mean, dtype=np.float64)


def select_columns(
    features: NDArray[np.float64],
    target: NDArray[np.int_],
    stop: NDArray[np.bool_],
    params: dict[str, Any],
    seed: int = 0,
) -> tuple[int, ...]:
    """Indices (into the cleaned matrix) of the columns to learn from.

    ``params``: ``min_r2``, ``shadows`` and ``repeats``; an empty mapping keeps every
    column. ``stop`` marks the rows the screening model is judged on.
    """
    if not params:
        return ALL_COLUMNS
    rng = np.random.default_rng(seed)
    numeric = [j for j in ALL_COLUMNS if j not in CATEGORY_INDEX]
    sources = rng.choice(numeric, size=int(params["shadows"]), replace=False)
    shadows = rng.permuted(features[:, sources], axis=0)
    drop = auc_drop(np.hstack([features, shadows]), target, stop, int(params["repeats"]), seed)
    noise_floor = max(float(drop[features.shape[1] :].max()), 0.0)
    r2 = explained_variance(features[~stop][:, numeric])
    keep = (r2 >= params["min_r2"]) | (drop[numeric] > noise_floor)
    kept = {j for j, flag in zip(numeric, keep, strict=True) if flag}
    return tuple(sorted(kept | set(CATEGORY_INDEX)))


def permutation_drop(  # noqa: PLR0917 - the model, the rows and the shuffles
    predict: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    features: NDArray[np.float64],
    target: NDArray[np.int_],
    columns: Sequence[int],
    repeats: int,
    seed: int,
) -> NDArray[np.float64]:
    """Mean fall of ``predict``'s AUC on ``features`` when each of ``columns`` is shuffled.

    ``features`` must be rows the model did not fit (permutation importance).
    """
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    baseline = float(roc_auc_score(target, predict(features)))
    drops = np.zeros(len(columns))
    shuffled = features.copy()
    for i, column in enumerate(columns):
        for _ in range(repeats):
            shuffled[:, column] = rng.permutation(features[:, column])
            drops[i] += (baseline - float(roc_auc_score(target, predict(shuffled)))) / repeats
        shuffled[:, column] = features[:, column]
    return drops


def own_columns(  # noqa: PLR0917 - the fitted learner, how to refit it, the rows
    learner: Learner,
    score: float,
    fit_and_score: FitAndScore,
    stop: tuple[NDArray[np.float64], NDArray[np.int_]],
    repeats: int,
    seed: int = 0,
) -> tuple[Learner, float]:
    """A learner's own screen of the columns it was fitted on; returns the learner to keep.

    ``learner`` was fitted without the ``stop`` rows and scores ``score`` (AUC) on
    them. Every numeric column whose shuffling does not lower that AUC is dropped (its
    removal costs this model nothing); ``fit_and_score`` refits on the remaining
    columns, and the refit is kept only when its AUC on the ``stop`` rows is at least
    ``score``. Category columns are always kept.
    """
    numeric = [c for c in learner.columns if c not in CATEGORY_INDEX]
    drops = permutation_drop(learner.predict_proba, *stop, numeric, repeats, seed)
    drop = dict(zip(numeric, drops, strict=True))
    kept = tuple(c for c in learner.columns if c in CATEGORY_INDEX or drop[c] > 0)
    if kept == learner.columns or not any(c not in CATEGORY_INDEX for c in kept):
        return learner, score
    pruned, pruned_score = fit_and_score(kept)
    return (pruned, pruned_score) if pruned_score >= score else (learner, score)
