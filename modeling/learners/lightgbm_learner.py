"""Gradient-boosted trees with LightGBM, categories handled natively."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from modeling.learners.base import Learner
from modeling.schema import COLUMNS


class LightGBMLearner(Learner):
    """LightGBM binary classifier; saved as LightGBM's own text model format.

    ``num_boost_round`` sets the number of trees; every other parameter is passed to
    :func:`lightgbm.train` as it is. The model file names its input columns, which is
    how :meth:`load` recovers them.
    """

    name: ClassVar[str] = "lightgbm"
    filename: ClassVar[str] = "lightgbm.txt"
    _booster: lgb.Booster | None = None

    def fit(self, features: NDArray[np.float64], target: NDArray[np.int_]) -> Self:
        """Train on all rows for ``num_boost_round`` rounds."""
        params = {"objective": "binary", "verbosity": -1, "seed": 0, **self.params}
        rounds = int(params.pop("num_boost_round", 500))
        dataset = lgb.Dataset(
            features[:, self.columns],
            label=target,
            feature_name=self.column_names,
            categorical_feature=self.categorical,
            free_raw_data=True,
        )
        self._booster = lgb.train(params, dataset, num_boost_round=rounds)
        return self

    @property
    def booster(self) -> lgb.Booster:
        """The fitted booster (raises when the learner was not fitted)."""
        if self._booster is None:
            raise RuntimeError("LightGBMLearner is not fitted")
        return self._booster

    def predict_proba(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(y = 1); one thread, which is fastest for the small batches served online."""
        return np.asarray(
            self.booster.predict(features[:, self.columns], num_threads=1), dtype=np.float64
        )

    def feature_importance(self) -> dict[str, float]:
        """Total gain of each input column, by column name."""
        gain = self.booster.feature_importance("gain")
        return dict(zip(self.column_names, gain.tolist(), strict=True))

    def save(self, directory: Path) -> Path:
        """Write the model in LightGBM's text format."""
        path = directory / self.filename
        self.booster.save_model(str(path))
        return path

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by :meth:`save`."""
        booster = lgb.Booster(model_file=str(directory / cls.filename))
        learner = cls(columns=[COLUMNS.index(name) for name in booster.feature_name()])
        learner._booster = booster
        return learner
