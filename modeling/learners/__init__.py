"""Base learners and the meta-learner, each saved in a native, non-executable format.

Every learner takes the cleaned ``(n, 100)`` matrix from :mod:`modeling.cleaning` and
picks its own columns from it, so all of them see exactly the same input in training
and in serving. Fitting imports scikit-learn lazily; scoring needs only numpy and the
boosting libraries.
"""

from modeling.learners.base import Learner, NotFittedError
from modeling.learners.catboost_learner import CatBoostLearner
from modeling.learners.lightgbm_learner import LightGBMLearner
from modeling.learners.logistic import LogisticLearner

LEARNERS: dict[str, type[Learner]] = {
    learner.name: learner for learner in (LogisticLearner, LightGBMLearner, CatBoostLearner)
}
"""Base learners by name, in the order their predictions feed the meta-learner."""

__all__ = [
    "LEARNERS",
    "CatBoostLearner",
    "Learner",
    "LightGBMLearner",
    "LogisticLearner",
    "NotFittedError",
]
