"""Regularised logistic regression over a mixture-ratio feature and the inputs.

The design is plain numpy so that a fitted model is a handful of arrays, stored as
JSON and scored without scikit-learn: median imputation; the numeric values, optional
linear-spline hinges ``max(0, x - knot)`` at quantile knots, and optionally the
class-mixture log-likelihood ratio of :mod:`modeling.learners.mixture`, all
standardised; then one-hot category codes. scikit-learn only fits the coefficients.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from modeling.learners.base import Contributions, Learner, Validation
from modeling.learners.mixture import MixtureRatio
from modeling.schema import COLUMNS, VOCABULARIES

MIXTURE_GROUP = "mixture"
"""Contributions' name for the mixture-ratio feature, which reads every numeric column."""


class _Design:
    """The fitted feature expansion: a pure function of the arrays it holds."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.numeric = np.asarray(state["numeric"], dtype=np.intp)
        self.categories = [int(c) for c in state["categories"]]
        self.medians = np.asarray(state["medians"], dtype=np.float64)
        self.knots = np.asarray(state["knots"], dtype=np.float64).reshape(len(self.numeric), -1)
        self.mixture = MixtureRatio(state["mixture"]) if state.get("mixture") else None
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.scale = np.asarray(state["scale"], dtype=np.float64)
        # training share of each code, the last for "missing" (absent from older bundles)
        self.category_shares = [
            np.asarray(shares, dtype=np.float64) for shares in state.get("category_shares", [])
        ]

    @classmethod
    def fit(
        cls,
        features: NDArray[np.float64],
        target: NDArray[np.int_],
        columns: tuple[int, ...],
        params: dict[str, Any],
    ) -> _Design:
        categories = [c for c in columns if COLUMNS[c] in VOCABULARIES]
        numeric = [c for c in columns if c not in categories]
        values = features[:, numeric]
        medians = np.nan_to_num(np.nanmedian(values, axis=0))
        n_knots = int(params.get("n_knots", 0))
        quantiles = np.linspace(0, 1, n_knots + 2)[1:-1]
        knots = (
            np.nanquantile(values, quantiles, axis=0).T if n_knots else np.empty((len(numeric), 0))
        )
        state: dict[str, Any] = {
            "numeric": numeric,
            "categories": categories,
            "medians": medians,
            "knots": knots,
            "mean": 0,
            "scale": 1,
        }
        n_components = int(params.get("n_components", 0))
        if n_components:
            filled = np.where(np.isnan(values), medians, values)
            state["mixture"] = MixtureRatio.fit(filled, target, n_components).state
        design = cls(state)
        expanded = design._expand(features)
        scale = expanded.std(axis=0)
        design.mean = expanded.mean(axis=0)
        design.scale = np.where(scale > 0, scale, 1.0)
        design.category_shares = [
            np.bincount(codes, minlength=len(VOCABULARIES[COLUMNS[column]]) + 1) / len(codes)
            for column, codes in zip(categories, design.one_hot_codes(features), strict=True)
        ]
        return design

    def filled(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """The numeric columns with missing values replaced by the training medians."""
        values = features[:, self.numeric]
        return np.where(np.isnan(values), self.medians, values)

    def _expand(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        values = self.filled(features)
        hinges = np.maximum(values[:, :, None] - self.knots[None, :, :], 0.0)
        parts = [values, hinges.reshape(len(values), -1)]
        if self.mixture is not None:
            parts.append(self.mixture.ratio(values)[:, None])
        return np.concatenate(parts, axis=1)

    def one_hot_codes(self, features: NDArray[np.float64]) -> list[NDArray[np.intp]]:
        """Per category column, each row's code, with the vocabulary size for missing."""
        codes = []
        for column in self.categories:
            size = len(VOCABULARIES[COLUMNS[column]])
            codes.append(
                np.where(np.isnan(features[:, column]), size, features[:, column]).astype(np.intp)
            )
        return codes

    def transform(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Expanded, standardised numeric columns followed by category one-hots."""
        numeric = (self._expand(features) - self.mean) / self.scale
        one_hots = [
            codes[:, None] == np.arange(len(VOCABULARIES[COLUMNS[column]]))[None, :]
            for column, codes in zip(self.categories, self.one_hot_codes(features), strict=True)
        ]
        return np.concatenate([numeric, *one_hots], axis=1, dtype=np.float64)

    def state(self) -> dict[str, Any]:
        return {
            "numeric": self.numeric.tolist(),
            "categories": self.categories,
            "medians": self.medians.tolist(),
            "knots": self.knots.tolist(),
            "mixture": self.mixture.state if self.mixture is not None else None,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "category_shares": [shares.tolist() for shares in self.category_shares],
        }


class LogisticLearner(Learner):
    """L2-regularised logistic regression; saved as JSON.

    Parameters: ``C`` (inverse regularisation strength), ``n_knots`` (hinges per
    numeric column; 0 for none), ``n_components`` (Gaussian components per class of
    the mixture-ratio feature; 0 for none) and ``max_iter``.
    """

    name: ClassVar[str] = "logistic"
    filename: ClassVar[str] = "logistic.json"
    _design: _Design | None = None
    coef: NDArray[np.float64] = np.empty(0)
    intercept: float = 0.0

    def fit(
        self,
        features: NDArray[np.float64],
        target: NDArray[np.int_],
        validation: Validation | None = None,
    ) -> Self:
        """Fit the expansion, then the coefficients (lbfgs), on all rows given.

        There are no rounds to stop, so ``validation`` rows are simply fitted too.
        """
        from sklearn.linear_model import LogisticRegression  # training-only dependency

        if validation is not None:
            features = np.concatenate([features, validation[0]])
            target = np.concatenate([target, validation[1]])

        self._design = _Design.fit(features, target, self.columns, self.params)
        model = LogisticRegression(
            C=float(self.params.get("C", 1.0)), max_iter=int(self.params.get("max_iter", 2000))
        )
        model.fit(self._design.transform(features), target)
        self.coef = model.coef_.ravel().astype(np.float64)
        self.intercept = float(model.intercept_[0])
        return self

    @property
    def design(self) -> _Design:
        """The fitted expansion."""
        return self.fitted(self._design)

    def decision_function(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Log-odds of y = 1, without building the design matrix.

        Standardisation is folded into the weights, each knot adds one matrix-vector
        product, and each category adds a table look-up: the same numbers as
        ``design.transform(features) @ coef + intercept`` at a fraction of the memory
        traffic.
        """
        design = self.design
        values = design.filled(features)
        weights, knot_weights = self._numeric_weights()
        n_numeric = len(design.numeric)
        logit = values @ weights[:n_numeric] + (self.intercept - weights @ design.mean)
        for k in range(knot_weights.shape[1]):
            logit += np.maximum(values - design.knots[:, k], 0.0) @ knot_weights[:, k]
        if design.mixture is not None:
            logit += weights[-1] * design.mixture.ratio(values)
        for table, codes in zip(
            self._category_tables(), design.one_hot_codes(features), strict=True
        ):
            logit += table[codes]
        return logit

    def contributions(self, features: NDArray[np.float64]) -> Contributions:
        """Coefficient x centred value per column; the mixture feature as one group.

        A numeric column contributes its linear and hinge terms minus their training
        means; a category column its coefficient minus the training average of its
        coefficients; the base is the intercept plus those averages.
        """
        design = self.design
        values = design.filled(features)
        weights, knot_weights = self._numeric_weights()
        n_numeric, n_knots = design.knots.shape
        knot_means = design.mean[n_numeric : n_numeric * (1 + n_knots)].reshape(n_numeric, n_knots)
        numeric = (values - design.mean[:n_numeric]) * weights[:n_numeric]
        for k in range(n_knots):
            hinge = np.maximum(values - design.knots[:, k], 0.0)
            numeric += (hinge - knot_means[:, k]) * knot_weights[:, k]
        parts = [numeric]
        names = [COLUMNS[c] for c in design.numeric]
        base = self.intercept
        tables = self._category_tables()
        shares = design.category_shares or [np.zeros_like(table) for table in tables]
        for column, table, codes, share in zip(
            design.categories, tables, design.one_hot_codes(features), shares, strict=True
        ):
            centre = float(share @ table)  # older bundles have no shares: centred on 0
            parts.append((table[codes] - centre)[:, None])
            names.append(COLUMNS[column])
            base += centre
        if design.mixture is not None:
            ratio = design.mixture.ratio(values)
            parts.append((weights[-1] * (ratio - design.mean[-1]))[:, None])
            names.append(MIXTURE_GROUP)
        return Contributions(
            tuple(names),
            np.concatenate(parts, axis=1),
            np.full(len(values), base),
            self.contribution_groups(),
        )

    def contribution_groups(self) -> dict[str, tuple[str, ...]]:
        """The mixture feature, when there is one: a group of every numeric column."""
        design = self.design
        if design.mixture is None:
            return {}
        return {MIXTURE_GROUP: tuple(COLUMNS[c] for c in design.numeric)}

    def _numeric_weights(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Coefficients per unscaled expanded column, and the hinges' as (numeric, knots)."""
        design = self.design
        n_numeric, n_knots = design.knots.shape
        weights = self.coef[: len(design.mean)] / design.scale
        return weights, weights[n_numeric : n_numeric * (1 + n_knots)].reshape(n_numeric, n_knots)

    def _category_tables(self) -> list[NDArray[np.float64]]:
        """Per category column, the coefficient of each code, then 0 for "missing"."""
        tables, offset = [], len(self.design.mean)
        for column in self.design.categories:
            size = len(VOCABULARIES[COLUMNS[column]])
            tables.append(np.append(self.coef[offset : offset + size], 0.0))
            offset += size
        return tables

    def save(self, directory: Path) -> Path:
        """Write parameters, columns, expansion and coefficients as JSON."""
        path = directory / self.filename
        state = {
            "params": self.params,
            "columns": list(self.columns),
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
        learner = cls(columns=state["columns"], **state["params"])
        learner._design = _Design(state["design"])
        learner.coef = np.asarray(state["coef"], dtype=np.float64)
        learner.intercept = float(state["intercept"])
        return learner
