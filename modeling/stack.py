"""The fitted stack: base learners whose log-odds a logistic meta-learner combines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modeling.learners import Learner
from modeling.learners.base import Contributions
from modeling.learners.meta import MetaLearner
from modeling.schema import COLUMNS


@dataclass
class Stack:
    """Fitted base learners and the meta-learner that combines them."""

    learners: dict[str, Learner]
    meta: MetaLearner
    threshold: float = 0.5

    def base_logits(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(n, k)`` log-odds of each base learner, in meta-learner order."""
        return np.column_stack(
            [self.learners[n].decision_function(features) for n in self.meta.names]
        )

    def decision_function(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """The stack's log-odds of y = 1."""
        return self.meta.decision_function(self.base_logits(features))

    def contribution_names(self) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        """The names :meth:`contributions` reports on, and the columns behind each group.

        Every schema column, then each group of the learners (a feature read jointly).
        """
        groups = {
            group: columns
            for name in self.meta.names
            for group, columns in self.learners[name].contribution_groups().items()
        }
        return (*COLUMNS, *groups), groups

    def contributions(self, features: NDArray[np.float64]) -> Contributions:
        """The stack's logit split over every schema column (then groups), exactly.

        The meta-learner is linear in the base logits, so each column's contribution is
        the weighted sum of its contributions to each base learner (tree SHAP for the
        boosted trees, coefficient x value for the logistic one), and the base is the
        intercept plus the weighted bases. Columns no learner reads contribute 0.
        """
        names, groups = self.contribution_names()
        index = {name: i for i, name in enumerate(names)}
        values = np.zeros((len(features), len(names)))
        base = np.full(len(features), self.meta.intercept)
        for name, weight in self.meta.weights().items():
            part = self.learners[name].contributions(features)
            values[:, [index[n] for n in part.names]] += weight * part.values
            base += weight * part.base
        return Contributions(names, values, base, groups)

    def accelerate(self) -> None:
        """Let every base learner make its scoring faster (answers unchanged to 1e-9)."""
        for learner in self.learners.values():
            learner.accelerate()
