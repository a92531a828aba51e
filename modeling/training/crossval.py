"""The one cross-validation of the project, used by ``train``, ``tune`` and ``evaluate``.

Each fold is a full training run on the fold's training rows only: a stratified share
of them is set aside for early stopping (and for column selection and capacity
choices), the rest is fitted. Among a learner's capacity options, the one cheapest to
score whose AUC on that share is within ``capacity_rule.standard_errors`` standard
errors of the best is taken (Breiman's one-standard-error rule with the serving cost
of :func:`scoring_work`, see :func:`one_standard_error`).
The fold's held-out rows are only ever predicted, so their labels cannot reach their own
out-of-fold predictions. The stack's meta-learner, the very
:class:`~modeling.learners.meta.MetaLearner` the bundle ships, is itself cross-validated
over the pooled out-of-fold predictions on the same folds. ``train`` then refits every
learner on all rows with the capacity the folds chose (see :func:`refit_params`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from modeling.learners import (
    LEARNERS,
    CatBoostLearner,
    Learner,
    LightGBMLearner,
    LogisticLearner,
)
from modeling.learners.base import sigmoid
from modeling.learners.meta import MetaLearner
from modeling.schema import ALL_COLUMNS
from modeling.training.evaluation import auc, auc_standard_error
from modeling.training.selection import own_columns, select_columns

Progress = Callable[[str], None]
Params = Mapping[str, Any]


def silent(_: str) -> None:
    """Discard progress messages."""


@dataclass
class OutOfFold:
    """Out-of-fold predictions of a cross-validation run.

    Attributes:
        names: the base learners, in the order of ``base``'s columns.
        base: ``(n, k)`` log-odds of each base learner, each row predicted by the
            learners that did not see it.
        stack: P(y = 1) of the meta-learner, itself cross-validated over ``base``.
        folds: the fold index of every row.
        seconds: fit time of each learner, summed over folds.
        capacity: per learner, the capacity each fold settled on (rounds, leaves...).
        columns: the columns each fold's shared selection kept.
        learner_columns: per learner, the columns each fold fitted it on (the shared
            ones, or its own screen of them, see :func:`.selection.own_columns`).

    """

    names: list[str]
    base: NDArray[np.float64]
    stack: NDArray[np.float64]
    folds: NDArray[np.intp]
    seconds: dict[str, float] = field(default_factory=dict)
    capacity: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    columns: list[tuple[int, ...]] = field(default_factory=list)
    learner_columns: dict[str, list[tuple[int, ...]]] = field(default_factory=dict)


def stratified_folds(target: NDArray[np.int_], n_folds: int, seed: int) -> NDArray[np.intp]:
    """Assign each row to one of ``n_folds`` folds, keeping the class balance."""
    from sklearn.model_selection import StratifiedKFold

    folds = np.empty(len(target), dtype=np.intp)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(target)), target)):
        folds[held_out] = k
    return folds


def stopping_rows(target: NDArray[np.int_], share: float, seed: int) -> NDArray[np.bool_]:
    """A stratified ``share`` of the rows, set aside for early stopping and selection."""
    from sklearn.model_selection import train_test_split

    _, stop = train_test_split(
        np.arange(len(target)), test_size=share, stratify=target, random_state=seed
    )
    mask = np.zeros(len(target), dtype=bool)
    mask[stop] = True
    return mask


def candidates(learner_params: Params) -> list[dict[str, Any]]:
    """Every combination of a learner's ``search`` grid merged into its fixed parameters."""
    fixed = {k: v for k, v in learner_params.items() if k != "search"}
    grid: Mapping[str, Sequence[Any]] = learner_params.get("search", {})
    return [{**fixed, **dict(zip(grid, values, strict=True))} for values in product(*grid.values())]


def _expected_depth(node: Mapping[str, Any], depth: int = 0) -> float:
    """Rows-weighted depth of a LightGBM tree's leaves: comparisons per scored row."""
    if "leaf_index" in node or "split_index" not in node:
        return depth * float(node.get("leaf_count", 1))
    return _expected_depth(node["left_child"], depth + 1) + _expected_depth(
        node["right_child"], depth + 1
    )


def scoring_work(learner: Learner) -> float:
    """What a fitted option costs in serving: the work it does per scored row.

    Boosted trees: the steps a row goes through, summed over the trees: its node
    comparisons plus the read of the leaf's value (LightGBM: each tree's leaf depth
    weighted by the training rows in each leaf, plus one; CatBoost's oblivious trees:
    trees x (depth + 1)). Logistic learner: multiply-adds, which
    the mixture's full-covariance components dominate (components x inputs²). Only
    options of one learner are compared, so the units need not agree across learners.
    Any other learner: the product of its capacity. Counted, not timed: the choice must
    not depend on the machine's load. (Nor is it the number of leaves: 1,044 trees of 7
    leaves score as slowly as 244 of 127.)
    """
    if isinstance(learner, LightGBMLearner):
        rounds = learner.capacity()["num_boost_round"]
        trees = learner.booster.dump_model(num_iteration=rounds)["tree_info"]
        return sum(
            1.0
            + _expected_depth(tree["tree_structure"])
            / max(float(tree["tree_structure"].get("internal_count", 1)), 1.0)
            for tree in trees
        )
    if isinstance(learner, CatBoostLearner):
        return float(learner.capacity()["iterations"] * (1 + int(learner.params.get("depth", 6))))
    if isinstance(learner, LogisticLearner):
        inputs = len(learner.design.numeric)
        return float(inputs + int(learner.params.get("n_components", 0)) * inputs**2)
    return float(np.prod([float(value) for value in learner.capacity().values()]))


def one_standard_error(scores: Sequence[float], costs: Sequence[float], errors: float) -> int:
    """Index of the cheapest option scoring within ``errors`` standard errors of the best.

    ``scores`` are AUCs on the same held-out rows and the standard error is that of
    the best one; ties in cost go to the first option. ``errors=0`` takes the best.
    """
    return min(
        (i for i, score in enumerate(scores) if score >= max(scores) - errors),
        key=lambda i: (costs[i], i),
    )


def fit_learner(  # noqa: PLR0917 - the rows, the stop mask and what to fit
    name: str,
    params: Params,
    columns: tuple[int, ...],
    features: NDArray[np.float64],
    target: NDArray[np.int_],
    stop: NDArray[np.bool_],
    seed: int = 0,
) -> tuple[Learner, dict[str, Any]]:
    """Fit ``name`` on the fold's rows, choosing its capacity (and columns) on the ``stop`` rows.

    Each candidate of the learner's search grid is fitted on the rows outside ``stop``
    (early-stopped on them, if it stops early) and scored by its AUC there; the
    one-standard-error rule picks among them (``params["capacity_rule"]``), the cost of
    an option being its work per scored row (:func:`scoring_work`). A learner
    named in ``params["selection"]["own"]`` then screens its columns with its own model
    (:func:`.selection.own_columns`). A learner that does not stop early is finally
    refitted on all the fold's rows. Returns the learner and the capacity it settled on.
    """
    validation = (features[stop], target[stop])
    learner_params = params.get(name, {})
    grid = learner_params.get("search", {})

    def fit_and_score(option: dict[str, Any], chosen: tuple[int, ...]) -> tuple[Learner, float]:
        learner = LEARNERS[name](columns=chosen, **option)
        learner.fit(features[~stop], target[~stop], validation if learner.stops_early else None)
        return learner, auc(validation[1], learner.predict_proba(validation[0]))

    options = candidates(learner_params)
    fitted = [fit_and_score(option, columns) for option in options]
    capacities = [
        {**{key: option[key] for key in grid}, **learner.capacity()}
        for option, (learner, _) in zip(options, fitted, strict=True)
    ]
    scores = [score for _, score in fitted]
    positives = int(validation[1].sum())
    error = auc_standard_error(max(scores), positives, len(validation[1]) - positives)
    errors = float(params.get("capacity_rule", {}).get("standard_errors", 0.0)) * error
    costs = [scoring_work(learner) for learner, _ in fitted]
    best = one_standard_error(scores, costs, errors)
    learner, score = fitted[best]
    selection = params.get("selection", {})
    if name in selection.get("own", ()):
        learner, score = own_columns(
            learner,
            score,
            lambda chosen: fit_and_score(options[best], chosen),
            validation,
            int(selection.get("repeats", 1)),
            seed,
        )
    if not learner.stops_early:  # it has no rounds to stop: the stop rows are fitted too
        learner = LEARNERS[name](columns=learner.columns, **options[best])
        learner.fit(features, target)
    return learner, capacities[best]


def out_of_fold(
    features: NDArray[np.float64],
    target: NDArray[np.int_],
    params: Params,
    *,
    names: Sequence[str] = tuple(LEARNERS),
    seed: int = 0,
    folds: NDArray[np.intp] | None = None,
    progress: Progress = silent,
) -> OutOfFold:
    """Cross-validate the base learners ``names`` and their stack on the same folds.

    ``folds`` (a fold index per row) defaults to ``params["folds"]`` stratified folds.
    """
    if folds is None:
        folds = stratified_folds(target, int(params["folds"]), seed)
    n_folds = int(folds.max()) + 1
    base = np.empty((len(target), len(names)))
    result = OutOfFold(list(names), base, np.empty(0), folds, dict.fromkeys(names, 0.0))
    result.capacity = {name: [] for name in names}
    result.learner_columns = {name: [] for name in names}
    for k in range(n_folds):
        train, held_out = folds != k, folds == k
        x, y = features[train], target[train]
        stop = stopping_rows(y, float(params["stop_share"]), seed + k)
        columns = select_columns(x, y, stop, params.get("selection", {}), seed)
        result.columns.append(columns)
        progress(f"fold {k + 1}/{n_folds}: {len(columns)} columns kept")
        for j, name in enumerate(names):
            started = time.perf_counter()
            learner, chosen = fit_learner(name, params, columns, x, y, stop, seed)
            base[held_out, j] = learner.decision_function(features[held_out])
            result.seconds[name] += time.perf_counter() - started
            result.capacity[name].append(chosen)
            result.learner_columns[name].append(learner.columns)
            progress(f"{name}: fold {k + 1}/{n_folds} {chosen}, {len(learner.columns)} columns")
    result.stack = stack_out_of_fold(base, target, folds, names)
    return result


class MetaEstimator(ClassifierMixin, BaseEstimator):
    """:class:`MetaLearner` as a scikit-learn estimator, for ``cross_val_predict``.

    The serving code cannot import scikit-learn, so :class:`MetaLearner` does not
    inherit its estimator classes; this adapter fits one per fold, so the out-of-fold
    stack is scored by the class the bundle ships.
    """

    def __init__(self, names: Sequence[str] = (), c: float = 1.0) -> None:
        self.names = names
        self.c = c

    def fit(self, base_logits: NDArray[np.float64], target: NDArray[np.int_]) -> Self:
        """Fit a :class:`MetaLearner` on the base learners' logits."""
        self.meta_ = MetaLearner(list(self.names), self.c).fit(base_logits, target)
        self.classes_ = np.unique(target)
        return self

    def decision_function(self, base_logits: NDArray[np.float64]) -> NDArray[np.float64]:
        """The stack's log-odds."""
        return self.meta_.decision_function(base_logits)

    def predict(self, base_logits: NDArray[np.float64]) -> NDArray[np.int_]:
        """Class 1 where the stack's log-odds are positive."""
        return np.asarray(self.classes_[(self.decision_function(base_logits) >= 0).astype(int)])


def stack_out_of_fold(
    base: NDArray[np.float64],
    target: NDArray[np.int_],
    folds: NDArray[np.intp],
    names: Sequence[str],
) -> NDArray[np.float64]:
    """The meta-learner's own out-of-fold P(y = 1) over ``base``, on the same folds."""
    from sklearn.model_selection import PredefinedSplit, cross_val_predict

    logits = cross_val_predict(
        MetaEstimator(names), base, target, cv=PredefinedSplit(folds), method="decision_function"
    )
    return sigmoid(np.asarray(logits, dtype=np.float64))


def refit_params(params: Params, oof: OutOfFold) -> dict[str, Any]:
    """Each learner's parameters for the final refit, from what the folds chose.

    The grid choice is the one most folds made; the rounds are the median of the
    early-stopped rounds of the folds that made it (the refit has no rows to stop on).
    """
    refit = {key: value for key, value in params.items() if key not in oof.names}
    for name in oof.names:
        fixed = {k: v for k, v in params.get(name, {}).items() if k != "search"}
        grid = list(params.get(name, {}).get("search", {}))
        folds = oof.capacity[name]
        choice = Counter(tuple(fold[key] for key in grid) for fold in folds).most_common(1)[0][0]
        agreeing = [fold for fold in folds if tuple(fold[key] for key in grid) == choice]
        rounds = {
            key: max(1, int(np.median([fold[key] for fold in agreeing])))
            for key in folds[0]
            if key not in grid
        }
        refit[name] = {**fixed, **dict(zip(grid, choice, strict=True)), **rounds}
    return refit


def columns_for_all_rows(
    features: NDArray[np.float64], target: NDArray[np.int_], params: Params, seed: int
) -> tuple[int, ...]:
    """The columns the selection keeps when it sees every row (for the final refit)."""
    if not params.get("selection"):
        return ALL_COLUMNS
    stop = stopping_rows(target, float(params["stop_share"]), seed)
    return select_columns(features, target, stop, params["selection"], seed)


def majority_columns(per_fold: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    """The columns more than half of the folds kept (for a refit that has no rows to judge on)."""
    counts = Counter(column for columns in per_fold for column in columns)
    return tuple(sorted(c for c, n in counts.items() if 2 * n > len(per_fold)))
