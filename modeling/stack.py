"""The fitted stack: base learners whose probabilities a logistic meta-learner combines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modeling.learners import Learner
from modeling.learners.meta import MetaLearner


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

    def accelerate(self) -> None:
        """Let every base learner make its scoring faster (answers unchanged to 1e-9)."""
        for learner in self.learners.values():
            learner.accelerate()
