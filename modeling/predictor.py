"""A loaded model bundle that scores raw columns: the transport-free data plane.

The inference server wraps exactly this class; nothing here knows about gRPC or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modeling.cleaning import CleanBatch


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


class Predictor:
    """Interface placeholder; the implementation lands with the stacking code.

    ``name``, ``version`` and ``threshold`` describe the model;
    ``predict(columns, n_rows)`` takes column name -> raw values (FP64 arrays for
    numeric columns, str/bytes arrays for text columns) and returns a Prediction.
    """

    name: str
    version: str
    threshold: float

    def predict(self, columns: Mapping[str, Sequence[Any] | NDArray[Any]], n_rows: int) -> Prediction:
        """Clean and score ``n_rows`` rows given as columns."""
        raise NotImplementedError
