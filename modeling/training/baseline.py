"""The exercise's classic base model, kept as the reference row of every report.

Mean imputation, standardisation, one-hot categories, an L1 logistic regression
whose 25 largest coefficients pick the variables, then an unpenalised logit on them.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from numpy.typing import NDArray

from modeling.schema import CATEGORY_INDEX, VOCABULARIES

N_SELECTED = 25


def _design(features: NDArray[np.float64], means: NDArray[np.float64]) -> NDArray[np.float64]:
    numeric = np.delete(features, CATEGORY_INDEX, axis=1)
    numeric = np.where(np.isnan(numeric), means, numeric)
    one_hots = [
        features[:, [j]] == np.arange(len(vocabulary))[None, :]
        for j, vocabulary in zip(CATEGORY_INDEX, VOCABULARIES.values(), strict=True)
    ]
    return np.concatenate([numeric, *one_hots], axis=1, dtype=np.float64)


class ClassicBaseModel:
    """Two-step logistic model of the original exercise (training-time only)."""

    def fit(self, features: NDArray[np.float64], target: NDArray[np.int_]) -> Self:
        """Select 25 variables with L1, then fit an unpenalised logit on them."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        numeric = np.delete(features, CATEGORY_INDEX, axis=1)
        self.means = np.nan_to_num(np.nanmean(numeric, axis=0))
        design = _design(features, self.means)
        self.scaler = StandardScaler().fit(design)
        scaled = self.scaler.transform(design)
        lasso = LogisticRegression(l1_ratio=1.0, solver="liblinear", C=1.0, max_iter=1000)
        lasso.fit(scaled, target)
        self.selected = np.argsort(-np.abs(lasso.coef_.ravel()))[:N_SELECTED]
        self.logit = LogisticRegression(C=np.inf, max_iter=2000)
        self.logit.fit(scaled[:, self.selected], target)
        return self

    def predict_proba(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(y = 1)."""
        scaled = self.scaler.transform(_design(features, self.means))
        return np.asarray(
            self.logit.predict_proba(scaled[:, self.selected])[:, 1], dtype=np.float64
        )
