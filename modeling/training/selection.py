"""Screening out noise columns, fitted on training rows only.

A numeric column is kept when either test says it carries signal:

- **redundancy**: the share of its variance explained linearly by the other numeric
  columns (R², from the inverse correlation matrix) reaches ``min_r2``. Informative
  columns of this data come in a block of noisy linear combinations of each other
  (R² 0.6 to 0.97) while noise columns are independent (R² < 0.01);
- **relevance**: its share of a quick LightGBM's total gain reaches ``min_gain_share``,
  which keeps a strong column that no other column echoes.

Category columns are always kept. The kept columns are stored by every learner.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from modeling.schema import CATEGORY_INDEX, COLUMNS

ALL_COLUMNS: tuple[int, ...] = tuple(range(len(COLUMNS)))


def explained_variance(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """R² of each column regressed on all the others (mean-imputed)."""
    filled = np.where(np.isnan(values), np.nanmean(values, axis=0), values)
    correlation = np.corrcoef(filled, rowvar=False)
    correlation = np.nan_to_num(correlation) + 1e-9 * np.eye(len(correlation))
    return np.asarray(1.0 - 1.0 / np.diag(np.linalg.inv(correlation)), dtype=np.float64)


def gain_share(
    features: NDArray[np.float64], target: NDArray[np.int_], seed: int
) -> NDArray[np.float64]:
    """Each column's share of the total gain of a small LightGBM model."""
    params = {
        "objective": "binary",
        "verbosity": -1,
        "num_leaves": 15,
        "learning_rate": 0.1,
        "num_threads": 1,
        "seed": seed,
    }
    data = lgb.Dataset(features, label=target, categorical_feature=list(CATEGORY_INDEX))
    gain = lgb.train(params, data, num_boost_round=200).feature_importance("gain")
    return np.asarray(gain / max(float(gain.sum()), 1e-12), dtype=np.float64)


def select_columns(
    features: NDArray[np.float64], target: NDArray[np.int_], params: dict[str, Any], seed: int = 0
) -> tuple[int, ...]:
    """Indices (into the cleaned matrix) of the columns to learn from.

    ``params``: ``min_r2`` and ``min_gain_share``; an empty mapping keeps every column.
    """
    if not params:
        return ALL_COLUMNS
    numeric = [j for j in ALL_COLUMNS if j not in CATEGORY_INDEX]
    r2 = explained_variance(features[:, numeric])
    share = gain_share(features, target, seed)[numeric]
    keep = (r2 >= params["min_r2"]) | (share >= params["min_gain_share"])
    kept = {j for j, flag in zip(numeric, keep, strict=True) if flag}
    return tuple(sorted(kept | set(CATEGORY_INDEX)))
