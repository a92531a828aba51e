"""A loaded model bundle that scores and explains raw columns.

The inference server's data plane (:mod:`inference.dataplane`) serves exactly this class;
nothing here knows about gRPC or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modeling.bundle import load_profile, load_stack
from modeling.cleaning import CleanBatch, clean
from modeling.learners.base import Contributions, sigmoid
from modeling.profile import ReferenceProfile
from modeling.stack import Stack

EXPLANATION_TOLERANCE = 1e-6
"""Largest gap allowed between an explanation's sum and the logit it explains, plus
:data:`EXPLANATION_RELATIVE_TOLERANCE` of the magnitudes summed."""
EXPLANATION_RELATIVE_TOLERANCE = 1e-9
"""Share of ``|base| + sum(|contributions|)`` allowed as rounding on top: float64 sums
terms of 1e20 only to about 1e4, and a valid input may be as large as float32 holds."""


@dataclass(frozen=True)
class Prediction:
    """Scores for a batch, in input order.

    Attributes:
        probability: P(y = 1) per row, float64.
        label: 1 where ``probability >= threshold`` else 0, int64.
        batch: the cleaned batch (its missing and unrecognised counts feed metrics).

    """

    probability: NDArray[np.float64]
    label: NDArray[np.int64]
    batch: CleanBatch


@dataclass(frozen=True)
class Explanation:
    """Scores for a batch, with the stack's logit and its exact split over the inputs.

    ``contributions.base + contributions.values.sum(axis=1)`` equals ``logit`` (to
    :data:`EXPLANATION_TOLERANCE` and :data:`EXPLANATION_RELATIVE_TOLERANCE`), and
    ``sigmoid(logit)`` is the prediction's probability.
    """

    prediction: Prediction
    logit: NDArray[np.float64]
    contributions: Contributions


class Predictor:
    """Scores raw rows with a fitted :class:`~modeling.stack.Stack`.

    Attributes:
        name: the bundle's name (its directory name).
        version: the bundle's version in its model repository (:mod:`modeling.repository`),
            else its creation time; either identifies one training run.
        threshold: the probability at and above which ``label`` is 1.
        manifest: the bundle's verified manifest.
        profile: the training data's reference profile (None for an older bundle).

    """

    def __init__(
        self,
        stack: Stack,
        manifest: Mapping[str, Any],
        profile: ReferenceProfile | None = None,
    ) -> None:
        self.stack = stack
        self.profile = profile
        self.manifest = dict(manifest)
        self.name = str(manifest.get("name", "model"))
        self.version = str(manifest.get("version") or manifest.get("created_at", "1"))
        self.threshold = stack.threshold

    @classmethod
    def from_bundle(cls, directory: Path) -> Predictor:
        """Load and verify the bundle in ``directory``."""
        stack, manifest = load_stack(directory)
        return cls(stack, manifest, load_profile(directory, manifest))

    def accelerate(self) -> None:
        """Make scoring faster in the background where a learner can (serving only)."""
        self.stack.accelerate()

    def predict(
        self, columns: Mapping[str, Sequence[Any] | NDArray[Any]], n_rows: int
    ) -> Prediction:
        """Clean and score ``n_rows`` rows given as raw columns.

        Numeric columns may be float arrays or raw values; text columns may be
        ``str`` or ``bytes``. Absent columns count as missing.
        """
        batch = clean(columns, n_rows)
        logit = self.stack.decision_function(batch.matrix) if n_rows else np.empty(0)
        return self._prediction(batch, logit)

    def explain(
        self, columns: Mapping[str, Sequence[Any] | NDArray[Any]], n_rows: int
    ) -> Explanation:
        """Like :meth:`predict`, with each row's logit split exactly over the inputs.

        Raises:
            ArithmeticError: if an explanation does not add up to its logit (a bug, never
                an answer).

        """
        batch = clean(columns, n_rows)
        if n_rows:
            contributions = self.stack.contributions(batch.matrix)
            logit = self.stack.decision_function(batch.matrix)
        else:
            names, groups = self.stack.contribution_names()
            contributions = Contributions(names, np.empty((0, len(names))), np.empty(0), groups)
            logit = np.empty(0)
        gap = np.abs(contributions.base + contributions.values.sum(axis=1) - logit)
        summed = np.abs(contributions.base) + np.abs(contributions.values).sum(axis=1)
        adds_up = gap <= EXPLANATION_TOLERANCE + EXPLANATION_RELATIVE_TOLERANCE * summed
        if not adds_up.all():
            rows = np.flatnonzero(~adds_up)[:5].tolist()
            raise ArithmeticError(f"the explanations of rows {rows} do not add up to their logit")
        return Explanation(self._prediction(batch, logit), logit, contributions)

    def _prediction(self, batch: CleanBatch, logit: NDArray[np.float64]) -> Prediction:
        """Probabilities and labels from the stack's logits; a non-finite one is a bug."""
        probability = sigmoid(logit)
        if not np.isfinite(probability).all():  # a bug, never an answer: fail loudly
            rows = np.flatnonzero(~np.isfinite(probability))[:5].tolist()
            raise ArithmeticError(f"the model gave a non-finite probability for rows {rows}")
        label = (probability >= self.threshold).astype(np.int64)
        return Prediction(probability, label, batch)
