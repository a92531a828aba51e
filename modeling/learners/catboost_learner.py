"""Gradient-boosted oblivious trees with CatBoost, categories handled natively."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
from catboost import CatBoostClassifier, FeaturesData, Pool
from numpy.typing import NDArray

from modeling.learners.base import Contributions, Learner, Validation, prediction_threads
from modeling.schema import COLUMNS

_MISSING_CATEGORY = "missing"
_CODE_TEXT = np.array([str(code) for code in range(64)] + [_MISSING_CATEGORY], dtype=object)


class CatBoostLearner(Learner):
    """CatBoost binary classifier; saved in CatBoost's own ``.cbm`` format.

    Parameters are passed to :class:`catboost.CatBoostClassifier` as they are. The
    model file names its input columns, which is how :meth:`load` recovers them.
    """

    name: ClassVar[str] = "catboost"
    filename: ClassVar[str] = "catboost.cbm"
    stops_early: ClassVar[bool] = True
    _model: CatBoostClassifier | None = None

    def _pool(self, features: NDArray[np.float64], target: NDArray[np.int_] | None = None) -> Pool:
        """Build a Pool through FeaturesData, CatBoost's fast path (~10x a generic array).

        Category codes become short strings (CatBoost's categories are labels, not
        numbers); a missing category is a label of its own.
        """
        categories = self._category_columns
        numeric = [c for c in self.columns if c not in categories]
        codes = features[:, categories]
        codes = np.where(np.isnan(codes), len(_CODE_TEXT) - 1, codes).astype(np.intp)
        data = FeaturesData(
            num_feature_data=np.ascontiguousarray(features[:, numeric], dtype=np.float32),
            cat_feature_data=_CODE_TEXT[codes],
            num_feature_names=[COLUMNS[c] for c in numeric],
            cat_feature_names=[COLUMNS[c] for c in categories],
        )
        return Pool(data, label=target)

    @property
    def _category_columns(self) -> list[int]:
        return [self.columns[i] for i in self.categorical]

    def fit(
        self,
        features: NDArray[np.float64],
        target: NDArray[np.int_],
        validation: Validation | None = None,
    ) -> Self:
        """Train ``iterations`` trees, or until the ``validation`` loss stops improving.

        ``early_stopping_rounds`` is the patience; the model keeps its best iteration.
        """
        params = {"random_seed": 0, "verbose": 0, "allow_writing_files": False, **self.params}
        patience = int(params.pop("early_stopping_rounds", 100))
        model = CatBoostClassifier(**params)
        if validation is None:
            self._model = model.fit(self._pool(features, target))
        else:
            self._model = model.fit(
                self._pool(features, target),
                eval_set=self._pool(*validation),
                early_stopping_rounds=patience,
                use_best_model=True,
            )
        return self

    def capacity(self) -> dict[str, int]:
        """``iterations``: the number of trees the model kept."""
        return {"iterations": int(self.model.tree_count_)}

    @property
    def model(self) -> CatBoostClassifier:
        """The fitted model."""
        return self.fitted(self._model)

    def decision_function(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Log-odds, on one thread unless the batch is large (:func:`prediction_threads`)."""
        raw = self.model.predict(
            self._pool(features),
            prediction_type="RawFormulaVal",
            thread_count=prediction_threads(len(features)),
        )
        return np.asarray(raw, dtype=np.float64)

    def contributions(self, features: NDArray[np.float64]) -> Contributions:
        """Exact tree SHAP values, CatBoost's own ``ShapValues``, on one thread."""
        pool = self._pool(features)
        shap = np.asarray(
            self.model.get_feature_importance(pool, type="ShapValues", thread_count=1),
            dtype=np.float64,
        )
        return Contributions(tuple(pool.get_feature_names()), shap[:, :-1], shap[:, -1], {})

    def save(self, directory: Path) -> Path:
        """Write the model in CatBoost's binary ``cbm`` format."""
        path = directory / self.filename
        self.model.save_model(str(path), format="cbm")
        return path

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by :meth:`save`."""
        model = CatBoostClassifier()
        model.load_model(str(directory / cls.filename), format="cbm")
        learner = cls(columns=sorted(COLUMNS.index(name) for name in model.feature_names_))
        learner._model = model
        return learner
