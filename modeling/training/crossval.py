"""Stacked ensemble: out-of-fold base predictions feed a logistic meta-learner."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modeling.learners import LEARNERS, Learner
from modeling.learners.meta import MetaLearner
from modeling.selection import ALL_COLUMNS, select_columns

Progress = Callable[[str], None]


def _silent(_: str) -> None:
    """Discard progress messages."""


@dataclass
class Stack:
    """Fitted base learners and the meta-learner that combines them."""

    learners: dict[str, Learner]
    meta: MetaLearner
    threshold: float = 0.5

    def base_probabilities(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(n, k)`` P(y = 1) of each base learner, in meta-learner order."""
        return np.column_stack([self.learners[n].predict_proba(features) for n in self.meta.names])

    def predict_proba(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(y = 1) of the stack."""
        return self.meta.predict_proba(self.base_probabilities(features))


@dataclass
class OutOfFold:
    """Out-of-fold predictions of a cross-validation run.

    Attributes:
        base: ``(n, k)`` P(y = 1) of each base learner, each row predicted by the
            learners that did not see it.
        stack: P(y = 1) of the meta-learner, itself cross-validated over ``base``.
        folds: the fold index of every row.

    """

    names: list[str]
    base: NDArray[np.float64]
    stack: NDArray[np.float64]
    folds: NDArray[np.intp]
    seconds: dict[str, float] = field(default_factory=dict)


def stratified_folds(target: NDArray[np.int_], n_folds: int, seed: int) -> NDArray[np.intp]:
    """Assign each row to one of ``n_folds`` folds, keeping the class balance."""
    from sklearn.model_selection import StratifiedKFold  # training-only dependency

    folds = np.empty(len(target), dtype=np.intp)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(target)), target)):
        folds[held_out] = k
    return folds


def make_learner(
    name: str, params: Mapping[str, Mapping[str, Any]], columns: tuple[int, ...] = ALL_COLUMNS
) -> Learner:
    """A fresh, unfitted learner on ``columns`` with its parameters from ``params[name]``."""
    return LEARNERS[name](columns=columns, **dict(params.get(name, {})))


def fold_columns(
    features: NDArray[np.float64],
    target: NDArray[np.int_],
    params: Mapping[str, Any],
    seed: int,
) -> tuple[int, ...]:
    """The columns :func:`~modeling.selection.select_columns` keeps on these rows."""
    return select_columns(features, target, dict(params.get("selection", {})), seed)


def out_of_fold(
    features: NDArray[np.float64],
    target: NDArray[np.int_],
    params: Mapping[str, Mapping[str, Any]],
    *,
    n_folds: int = 5,
    seed: int = 0,
    progress: Progress = _silent,
) -> OutOfFold:
    """Cross-validate every base learner and the meta-learner on the same folds.

    Column selection is part of what is cross-validated: it is refitted on each
    fold's training rows, so held-out rows never influence which columns are used.
    """
    names = list(LEARNERS)
    folds = stratified_folds(target, n_folds, seed)
    base = np.empty((len(target), len(names)))
    seconds = dict.fromkeys(names, 0.0)
    for k in range(n_folds):
        train, held_out = folds != k, folds == k
        columns = fold_columns(features[train], target[train], params, seed)
        progress(f"fold {k + 1}/{n_folds}: {len(columns)} columns selected")
        for j, name in enumerate(names):
            started = time.perf_counter()
            progress(f"{name}: fold {k + 1}/{n_folds}")
            learner = make_learner(name, params, columns).fit(features[train], target[train])
            base[held_out, j] = learner.predict_proba(features[held_out])
            seconds[name] += time.perf_counter() - started
    stack = np.empty(len(target))
    for k in range(n_folds):
        train, held_out = folds != k, folds == k
        meta = MetaLearner(names).fit(base[train], target[train])
        stack[held_out] = meta.predict_proba(base[held_out])
    return OutOfFold(names=names, base=base, stack=stack, folds=folds, seconds=seconds)


def best_f1_threshold(probability: NDArray[np.float64], target: NDArray[np.int_]) -> float:
    """The probability cut-off that maximises F1 on the given predictions."""
    order = np.argsort(-probability)
    hits = np.cumsum(target[order])
    precision = hits / np.arange(1, len(order) + 1)
    recall = hits / max(int(target.sum()), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(probability[order][int(np.argmax(f1))])


def fit_stack(
    features: NDArray[np.float64],
    target: NDArray[np.int_],
    params: Mapping[str, Mapping[str, Any]],
    oof: OutOfFold,
    *,
    seed: int = 0,
    progress: Progress = _silent,
) -> Stack:
    """Fit the meta-learner on ``oof`` and refit every base learner on all rows.

    The decision threshold is the one that maximises F1 on the out-of-fold stack.
    """
    meta = MetaLearner(oof.names).fit(oof.base, target)
    columns = fold_columns(features, target, params, seed)
    learners = {}
    for name in oof.names:
        progress(f"{name}: refit on all {len(target)} rows, {len(columns)} columns")
        learners[name] = make_learner(name, params, columns).fit(features, target)
    return Stack(learners, meta, threshold=best_f1_threshold(oof.stack, target))
