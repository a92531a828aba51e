"""Regularised logistic regression over a linear-spline expansion of the inputs.

The design is plain numpy so that a fitted model is a handful of arrays, stored as
JSON and scored without scikit-learn: median imputation, a linear spline per numeric
column (the value plus hinges ``max(0, x - knot)`` at quantile knots), standardisation,
and one-hot category codes. scikit-learn is used only to fit the coefficients.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from modeling.learners.base import Learner
from modeling.schema import CATEGORY_COLUMNS, CATEGORY_INDEX, VOCABULARIES


def sigmoid(logit: NDArray[np.float64]) -> NDArray[np.float64]:
    """The logistic function, safe for large magnitudes."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * logit)), dtype=np.float64)


class _Design:
    """The fitted feature expansion: a pure function of the arrays it holds."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.numeric = np.asarray(state["numeric"], dtype=np.intp)
        self.medians = np.asarray(state["medians"], dtype=np.float64)
        self.knots = np.asarray(state["knots"], dtype=np.float64).reshape(len(self.numeric), -1)
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.scale = np.asarray(state["scale"], dtype=np.float64)

    @classmethod
    def fit(cls, features: NDArray[np.float64], n_knots: int) -> _Design:
        numeric = [j for j in range(features.shape[1]) if j not in CATEGORY_INDEX]
        values = features[:, numeric]
        medians = np.nan_to_num(np.nanmedian(values, axis=0))
        quantiles = np.linspace(0, 1, n_knots + 2)[1:-1]
        knots = (
            np.nanquantile(values, quantiles, axis=0).T if n_knots else np.empty((len(numeric), 0))
        )
        design = cls(
            {"numeric": numeric, "medians": medians, "knots": knots, "mean": 0, "scale": 1}
        )
        expanded = design._expand(features)
        scale = expanded.std(axis=0)
        design.mean = expanded.mean(axis=0)
        design.scale = np.where(scale > 0, scale, 1.0)
        return design

    def _expand(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        values = features[:, self.numeric]
        values = np.where(np.isnan(values), self.medians, values)
        hinges = np.maximum(values[:, :, None] - self.knots[None, :, :], 0.0)
        return np.concatenate([values, hinges.reshape(len(values), -1)], axis=1)

    def transform(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Expanded, standardised numeric columns followed by category one-hots."""
        numeric = (self._expand(features) - self.mean) / self.scale
        one_hots = [
            features[:, [j]] == np.arange(len(VOCABULARIES[column]))[None, :]
            for column, j in zip(CATEGORY_COLUMNS, CATEGORY_INDEX, strict=True)
        ]
        return np.concatenate([numeric, *one_hots], axis=1, dtype=np.float64)

    def state(self) -> dict[str, Any]:
        return {
            "numeric": self.numeric.tolist(),
            "medians": self.medians.tolist(),
            "knots": self.knots.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
        }


class LogisticLearner(Learner):
    """L2-regularised logistic regression on a spline expansion; saved as JSON.

    Parameters: ``C`` (inverse regularisation strength), ``n_knots`` (hinges per
    numeric column; 0 gives a plain linear model) and ``max_iter``.
    """

    name: ClassVar[str] = "logistic"
    filename: ClassVar[str] = "logistic.json"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._design: _Design | None = None
        self.coef = np.empty(0)
        self.intercept = 0.0

    def fit(self, features: NDArray[np.float64], target: NDArray[np.int_]) -> Self:
        """Fit the expansion, then the coefficients (lbfgs)."""
        from sklearn.linear_model import LogisticRegression  # training-only dependency

        self._design = _Design.fit(features, int(self.params.get("n_knots", 4)))
        model = LogisticRegression(
            C=float(self.params.get("C", 0.1)), max_iter=int(self.params.get("max_iter", 2000))
        )
        model.fit(self._design.transform(features), target)
        self.coef = model.coef_.ravel().astype(np.float64)
        self.intercept = float(model.intercept_[0])
        return self

    @property
    def design(self) -> _Design:
        """The fitted expansion (raises when the learner was not fitted)."""
        if self._design is None:
            raise RuntimeError("LogisticLearner is not fitted")
        return self._design

    def predict_proba(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(y = 1), without building the design matrix.

        Standardisation is folded into the weights, each knot adds one matrix-vector
        product, and each category adds a table look-up: the same numbers as
        ``sigmoid(design.transform(features) @ coef + intercept)`` at a fraction of the
        memory traffic.
        """
        design = self.design
        values = features[:, design.numeric]
        values = np.where(np.isnan(values), design.medians, values)
        n_numeric, n_knots = design.knots.shape
        weights = self.coef[: n_numeric * (1 + n_knots)] / design.scale
        logit = values @ weights[:n_numeric] + (self.intercept - weights @ design.mean)
        knot_weights = weights[n_numeric:].reshape(n_numeric, n_knots)
        for k in range(n_knots):
            logit += np.maximum(values - design.knots[:, k], 0.0) @ knot_weights[:, k]
        offset = n_numeric * (1 + n_knots)
        for column, j in zip(CATEGORY_COLUMNS, CATEGORY_INDEX, strict=True):
            size = len(VOCABULARIES[column])
            table = np.append(self.coef[offset : offset + size], 0.0)  # last: no category
            codes = np.where(np.isnan(features[:, j]), size, features[:, j]).astype(np.intp)
            logit += table[codes]
            offset += size
        return sigmoid(logit)

    def save(self, directory: Path) -> Path:
        """Write parameters, expansion and coefficients as JSON."""
        path = directory / self.filename
        state = {
            "params": self.params,
            "design": self.design.state(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }
        path.write_text(json.dumps(state))
        return path

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by :meth:`save`."""
        state = json.loads((directory / cls.filename).read_text())
        learner = cls(**state["params"])
        learner._design = _Design(state["design"])
        learner.coef = np.asarray(state["coef"], dtype=np.float64)
        learner.intercept = float(state["intercept"])
        return learner
