"""Synthetic training sets with the exercise's schema but a structure of their own.

Unlike the stand-in (22 signal columns in one linear block), these come from
scikit-learn's ``make_classification``: several Gaussian clusters per class on a
hypercube, 40 to 60 signal columns (informative plus linear combinations of them),
the rest noise, one signal column behind the percent column ``x79``, 20% positives.
They prove that training finds its capacity on data it was never tuned on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modeling.schema import CATEGORY_INDEX, COLUMNS, KINDS, Kind
from modeling.training.synthetic import render


@dataclass(frozen=True)
class Recipe:
    """The ``make_classification`` settings of one set."""

    informative: int
    redundant: int
    clusters: int
    separation: float


RECIPES: dict[str, Recipe] = {
    "A": Recipe(informative=20, redundant=20, clusters=3, separation=1.0),
    "B": Recipe(informative=28, redundant=24, clusters=4, separation=1.5),
}
"""Set A: 40 signal columns, 3 clusters per class; set B: 52 signal columns, 4 clusters."""

PERCENT = COLUMNS.index(next(c for c in COLUMNS if KINDS[c] is Kind.PERCENT))


def synthetic_set(
    name: str, n_rows: int, seed: int = 0
) -> tuple[dict[str, list[str]], NDArray[np.int_]]:
    """Raw text columns and 0/1 labels of set ``name`` (see :data:`RECIPES`)."""
    from sklearn.datasets import make_classification

    recipe = RECIPES[name]
    numeric = [j for j in range(len(COLUMNS)) if j not in CATEGORY_INDEX]
    values, target = make_classification(
        n_samples=n_rows,
        n_features=len(numeric),
        n_informative=recipe.informative,
        n_redundant=recipe.redundant,
        n_clusters_per_class=recipe.clusters,
        class_sep=recipe.separation,
        weights=[0.8],
        flip_y=0.01,
        shuffle=False,  # signal first: placed below, one of it behind the percent column
        random_state=seed,
    )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(numeric))
    slot = numeric.index(PERCENT)
    first_signal = int(np.flatnonzero(order == 0)[0])
    order[[slot, first_signal]] = order[[first_signal, slot]]  # column 0 (signal) -> x79
    numbers = np.zeros((n_rows, len(COLUMNS)))
    numbers[:, numeric] = 10.0 * values[:, order]
    columns, _ = render(numbers, rng)
    return columns, target.astype(np.int_)
