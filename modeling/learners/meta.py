"""The stacking meta-learner: a logistic regression on the base learners' logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import numpy as np
from numpy.typing import NDArray


class MetaLearner:
    """Combines the base learners' log-odds ``(n, k)`` into one probability.

    Working on log-odds keeps the combination close to a weighted average of them,
    which is what well-calibrated boosted models agree on, and keeps the stack's own
    logit an exact sum: ``intercept + logits @ coef``, so an explanation of each base
    logit is one of the stack's. ``c`` (scikit-learn's ``C``, 1 by default) regularises
    only mildly: there are ``k`` weights to learn from many rows. Cross-validation fits
    this same class per fold (``modeling.training.crossval.MetaEstimator``).
    """

    filename = "meta.json"

    def __init__(self, names: list[str], c: float = 1.0) -> None:
        self.names = names
        self.c = c
        self.coef = np.zeros(len(names))
        self.intercept = 0.0

    def fit(self, base_logits: NDArray[np.float64], target: NDArray[np.int_]) -> Self:
        """Fit the weights on out-of-fold base log-odds."""
        from sklearn.linear_model import LogisticRegression  # training-only dependency

        model = LogisticRegression(C=self.c, max_iter=1000).fit(base_logits, target)
        self.coef = model.coef_.ravel().astype(np.float64)
        self.intercept = float(model.intercept_[0])
        return self

    def decision_function(self, base_logits: NDArray[np.float64]) -> NDArray[np.float64]:
        """The stack's log-odds from the base learners' (columns in ``names`` order)."""
        return np.asarray(base_logits @ self.coef + self.intercept, dtype=np.float64)

    def weights(self) -> dict[str, float]:
        """The weight of each base learner's logit."""
        return dict(zip(self.names, self.coef.tolist(), strict=True))

    def save(self, directory: Path) -> Path:
        """Write names, weights and intercept as JSON."""
        path = directory / self.filename
        state = {"names": self.names, "c": self.c, "coef": self.coef.tolist()}
        path.write_text(json.dumps({**state, "intercept": self.intercept}))
        return path

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a meta-learner written by :meth:`save`."""
        state = json.loads((directory / cls.filename).read_text())
        meta = cls(state["names"], state["c"])
        meta.coef = np.asarray(state["coef"], dtype=np.float64)
        meta.intercept = float(state["intercept"])
        return meta
