"""Gradient-boosted trees with LightGBM, categories handled natively."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from modeling.learners.base import Contributions, Learner, Validation, prediction_threads
from modeling.learners.compiled import CompiledTrees
from modeling.schema import COLUMNS


class LightGBMLearner(Learner):
    """LightGBM binary classifier; saved as LightGBM's own text model format.

    ``num_boost_round`` sets the number of trees (the most, with validation rows, where
    ``early_stopping_rounds`` rounds without progress stop it); every other parameter
    is passed to :func:`lightgbm.train` as it is. The model file names its input columns, which is
    how :meth:`load` recovers them.
    """

    name: ClassVar[str] = "lightgbm"
    filename: ClassVar[str] = "lightgbm.txt"
    stops_early: ClassVar[bool] = True
    _booster: lgb.Booster | None = None
    _model_file: Path | None = None  # the text the booster was loaded from
    _compiled: CompiledTrees | None = None

    def fit(
        self,
        features: NDArray[np.float64],
        target: NDArray[np.int_],
        validation: Validation | None = None,
    ) -> Self:
        """Train for ``num_boost_round`` rounds, or until ``validation`` AUC stops improving."""
        params = {"objective": "binary", "verbosity": -1, "seed": 0, **self.params}
        rounds = int(params.pop("num_boost_round", 500))
        patience = int(params.pop("early_stopping_rounds", 50))
        dataset = self._dataset(features, target)
        if validation is None:
            self._booster = lgb.train(params, dataset, num_boost_round=rounds)
            return self
        stop = self._dataset(*validation, reference=dataset)
        self._booster = lgb.train(
            {**params, "metric": "auc"},
            dataset,
            num_boost_round=rounds,
            valid_sets=[stop],
            callbacks=[lgb.early_stopping(patience, verbose=False)],
        )
        return self

    def _dataset(
        self,
        features: NDArray[np.float64],
        target: NDArray[np.int_],
        reference: lgb.Dataset | None = None,
    ) -> lgb.Dataset:
        return lgb.Dataset(
            features[:, self.columns],
            label=target,
            feature_name=self.column_names,
            categorical_feature=self.categorical,
            reference=reference,
            free_raw_data=True,
        )

    def capacity(self) -> dict[str, int]:
        """``num_boost_round``: the best round when early-stopped, else every round."""
        best = self.booster.best_iteration
        return {"num_boost_round": int(best or self.booster.current_iteration())}

    @property
    def booster(self) -> lgb.Booster:
        """The fitted booster."""
        return self.fitted(self._booster)

    def decision_function(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Log-odds (LightGBM's raw score), on one thread unless the batch is large.

        After :meth:`accelerate`, the trees compiled to native code answer once they are
        proven equal to the booster (:mod:`modeling.learners.compiled`).
        """
        if self._compiled is not None:
            return self._compiled(np.ascontiguousarray(features[:, self.columns]))
        return np.asarray(
            self.booster.predict(
                features[:, self.columns],
                raw_score=True,
                num_threads=prediction_threads(len(features)),
            ),
            dtype=np.float64,
        )

    def contributions(self, features: NDArray[np.float64]) -> Contributions:
        """Exact tree SHAP values, LightGBM's own ``pred_contrib`` (always the booster)."""
        shap = np.asarray(
            self.booster.predict(features[:, self.columns], pred_contrib=True, num_threads=1),
            dtype=np.float64,
        )
        return Contributions(tuple(self.column_names), shap[:, :-1], shap[:, -1], {})

    def accelerate(self) -> None:
        """Compile the loaded model's trees in the background (the booster answers meanwhile)."""
        if self._model_file is not None and self._compiled is None:
            self._compiled = CompiledTrees(self._model_file, self.booster)

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
        path = directory / cls.filename
        booster = lgb.Booster(model_file=str(path))
        learner = cls(columns=[COLUMNS.index(name) for name in booster.feature_name()])
        learner._booster, learner._model_file = booster, path
        return learner
