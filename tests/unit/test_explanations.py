"""Explanations: each learner's and the stack's logit split exactly over the inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modeling.cleaning import MAX_ABS_VALUE, clean
from modeling.learners import LEARNERS
from modeling.learners.logistic import MIXTURE_GROUP
from modeling.predictor import Predictor
from modeling.schema import COLUMNS, VOCABULARIES
from modeling.training.synthetic import synthetic_table

FIT_PARAMS = {
    "logistic": {"n_knots": 2, "n_components": 2, "C": 1.0, "max_iter": 500},
    "lightgbm": {"num_boost_round": 60, "num_leaves": 15, "num_threads": 1},
    "catboost": {"iterations": 60, "depth": 4, "thread_count": 1},
}
"""Every branch of each learner's explanation: hinges, mixture, categories, trees."""
READ = (0, 1, 5, 7, 12, 30, 54, 82)  # numeric columns and three category ones


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    columns, target = synthetic_table(3000, seed=5)
    return clean(columns, len(target)).matrix, target


@pytest.mark.parametrize("name", list(LEARNERS))
def test_each_learner_s_contributions_add_up_to_its_logit(name, data):
    features, target = data
    learner = LEARNERS[name](columns=READ, **FIT_PARAMS[name]).fit(features[:2000], target[:2000])
    rows = features[2000:]
    explained = learner.contributions(rows)
    total = explained.base + explained.values.sum(axis=1)
    np.testing.assert_allclose(total, learner.decision_function(rows), rtol=0, atol=1e-9)
    assert set(explained.names) - set(explained.groups) == set(learner.column_names)
    assert explained.values.shape == (len(rows), len(explained.names))
    assert np.ptp(explained.base) < 1e-9  # one base value for every row
    assert np.abs(explained.values).max() > 0.01  # the inputs do explain something


def test_logistic_contributions_are_centred_and_name_the_mixture_group(data):
    features, target = data
    learner = LEARNERS["logistic"](columns=READ, **FIT_PARAMS["logistic"])
    learner.fit(features, target)
    explained = learner.contributions(features)
    # centred on the training rows: each column's average contribution there is 0
    np.testing.assert_allclose(explained.values.mean(axis=0), 0.0, atol=1e-9)
    numeric = [COLUMNS[c] for c in READ if COLUMNS[c] not in VOCABULARIES]
    assert explained.groups == {MIXTURE_GROUP: tuple(numeric)}
    assert explained.names[-1] == MIXTURE_GROUP


def test_the_served_stack_explains_thousands_of_rows_exactly(quick_bundle: Path):
    predictor = Predictor.from_bundle(quick_bundle)
    columns, _ = synthetic_table(3000, seed=8)
    explanation = predictor.explain(columns, 3000)
    contributions = explanation.contributions
    total = contributions.base + contributions.values.sum(axis=1)
    np.testing.assert_allclose(total, explanation.logit, rtol=0, atol=1e-6)
    served = predictor.predict(columns, 3000)
    np.testing.assert_allclose(explanation.prediction.probability, served.probability, rtol=1e-12)
    np.testing.assert_array_equal(explanation.prediction.label, served.label)
    assert contributions.names[: len(COLUMNS)] == COLUMNS
    unread = [
        i
        for i, name in enumerate(COLUMNS)
        if all(name not in learner.column_names for learner in predictor.stack.learners.values())
    ]
    assert not contributions.values[:, unread].any()  # a column no learner reads adds 0


def test_explaining_no_rows_keeps_the_names(quick_bundle: Path):
    predictor = Predictor.from_bundle(quick_bundle)
    explanation = predictor.explain({}, 0)
    assert explanation.contributions.values.shape == (0, len(explanation.contributions.names))
    assert explanation.logit.shape == (0,)


def test_an_explanation_that_does_not_add_up_is_refused(quick_bundle: Path, monkeypatch):
    predictor = Predictor.from_bundle(quick_bundle)
    real = predictor.stack.decision_function
    monkeypatch.setattr(predictor.stack, "decision_function", lambda m: real(m) + 1e-3)
    columns, _ = synthetic_table(5, seed=1)
    with pytest.raises(ArithmeticError, match="do not add up"):
        predictor.explain(columns, 5)


def full_float_range() -> np.ndarray:
    """Magnitudes from the smallest subnormal to beyond float32's range, both signs, and 0."""
    magnitudes = np.concatenate([[5e-324, 1e-310], np.logspace(-300, 38, 70), [MAX_ABS_VALUE]])
    beyond = [np.nextafter(MAX_ABS_VALUE, np.inf), 1e39, 1e200, np.finfo(np.float64).max]
    return np.concatenate([magnitudes, -magnitudes, beyond, [0.0, -0.0]])


def test_every_column_over_the_full_float_range_is_explained_as_it_is_scored(quick_bundle: Path):
    # Issue 17: a valid 1e12 made the sum miss the logit by more than an absolute 1e-6.
    predictor = Predictor.from_bundle(quick_bundle)
    values = full_float_range()
    base, _ = synthetic_table(1, seed=17)
    numeric = [c for c in COLUMNS if c not in VOCABULARIES]
    n = len(values) * len(numeric)
    columns: dict[str, object] = {
        c: np.full(n, float(base[c][0] or "nan")) for c in numeric if c not in ("x12", "x79")
    }
    columns.update({c: base[c] * n for c in COLUMNS if c not in columns})
    for j, column in enumerate(numeric):  # block j: column j takes every value of the range
        block = slice(j * len(values), (j + 1) * len(values))
        if column in ("x12", "x79"):  # money and percent text
            suffix = "%" if column == "x79" else ""
            columns[column][block] = [f"{v!r}{suffix}" for v in values]  # type: ignore[index]
        else:
            columns[column][block] = values  # type: ignore[index]
    explanation = predictor.explain(columns, n)  # raised ArithmeticError before
    served = predictor.predict(columns, n)
    np.testing.assert_allclose(explanation.prediction.probability, served.probability, rtol=1e-12)
    np.testing.assert_array_equal(explanation.prediction.label, served.label)
    contributions = explanation.contributions
    assert np.isfinite(contributions.values).all()
    total = contributions.base + contributions.values.sum(axis=1)
    summed = np.abs(contributions.base) + np.abs(contributions.values).sum(axis=1)
    assert (np.abs(total - explanation.logit) <= 1e-6 + 1e-9 * summed).all()
    assert (np.abs(explanation.logit) > 1e6).any()  # the range reaches logits float64 rounds
