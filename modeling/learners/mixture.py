"""Class-conditional Gaussian mixtures, reduced to one feature: their log-likelihood ratio.

The exercise data behaves like Gaussian clusters per class (as from scikit-learn's
``make_classification``): a mixture per class captures that interaction structure far
better than additive terms. Fitted with scikit-learn, scored with numpy from arrays that
serialise to JSON.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

_LLR_BOUND = 30.0


class _Mixture:
    """One fitted mixture: weights, means and Cholesky factors of the precisions."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.log_weights = np.log(np.asarray(state["weights"], dtype=np.float64))
        self.means = np.asarray(state["means"], dtype=np.float64)
        self.precision_cholesky = np.asarray(state["precision_cholesky"], dtype=np.float64)

    def log_density(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """Log of the mixture density at every row of ``points``."""
        n_components, dimension = self.means.shape
        per_component = np.empty((len(points), n_components))
        for k in range(n_components):
            factor = self.precision_cholesky[k]
            projected = points @ factor - self.means[k] @ factor
            log_det = float(np.log(np.diag(factor)).sum())
            per_component[:, k] = (
                self.log_weights[k]
                + log_det
                - 0.5 * dimension * math.log(2 * math.pi)
                - 0.5 * np.einsum("ij,ij->i", projected, projected)
            )
        peak = per_component.max(axis=1)
        return np.asarray(peak + np.log(np.exp(per_component - peak[:, None]).sum(axis=1)))


class MixtureRatio:
    """``log p(z | y=1) - log p(z | y=0)`` from one Gaussian mixture per class.

    The input is standardised with the centre and scale learnt at fit time; the ratio
    is clipped to +/-30 so a far outlier cannot dominate the downstream logit.
    """

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.center = np.asarray(state["center"], dtype=np.float64)
        self.scale = np.asarray(state["scale"], dtype=np.float64)
        self.negative = _Mixture(state["classes"][0])
        self.positive = _Mixture(state["classes"][1])

    @classmethod
    def fit(
        cls, values: NDArray[np.float64], target: NDArray[np.int_], n_components: int, seed: int = 0
    ) -> Self:
        """Fit a full-covariance mixture of ``n_components`` to each class."""
        from sklearn.mixture import GaussianMixture

        center = values.mean(axis=0)
        scale = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)
        points = (values - center) / scale
        classes = []
        for label in (0, 1):
            mixture = GaussianMixture(
                n_components=n_components,
                covariance_type="full",
                reg_covar=1e-4,
                n_init=2,
                random_state=seed,
            ).fit(points[target == label])
            classes.append(
                {
                    "weights": mixture.weights_.tolist(),
                    "means": mixture.means_.tolist(),
                    "precision_cholesky": mixture.precisions_cholesky_.tolist(),
                }
            )
        return cls({"center": center.tolist(), "scale": scale.tolist(), "classes": classes})

    def ratio(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """The clipped log-likelihood ratio of every row (no missing values allowed)."""
        points = (values - self.center) / self.scale
        llr = self.positive.log_density(points) - self.negative.log_density(points)
        return np.clip(llr, -_LLR_BOUND, _LLR_BOUND)
