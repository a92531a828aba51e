"""Values a client may send that no learner can score: cleaning never raises, and every
answer stays a probability."""

from __future__ import annotations

import numpy as np
import pytest

from modeling.cleaning import MAX_ABS_VALUE, clean
from modeling.predictor import Predictor
from modeling.schema import NUMERIC_COLUMNS

EXTREMES = [1e155, -1e200, 1e308, -1e308, np.inf, 3.5e38, -MAX_ABS_VALUE]


def test_values_beyond_float32_are_unrecognised_like_inf() -> None:
    values = np.array([*EXTREMES, MAX_ABS_VALUE, 1e38, np.nan])
    batch = clean({"x0": values, "x2": values.astype(str).astype(object)}, len(values))
    for j, column in ((0, "x0"), (2, "x2")):
        out = batch.matrix[:, j]
        assert np.isnan(out[:6]).all()
        assert out[6:9].tolist() == [-MAX_ABS_VALUE, MAX_ABS_VALUE, 1e38]
        assert batch.unrecognised[column] == 6
        assert batch.missing[column] == 1


def test_every_numeric_column_at_any_magnitude_gets_a_probability(quick_bundle) -> None:
    predictor = Predictor.from_bundle(quick_bundle)
    n = len(EXTREMES) + 3
    values = np.array([*EXTREMES, MAX_ABS_VALUE, 1e38, -1e-320])
    for column in NUMERIC_COLUMNS:
        probability = predictor.predict({column: values}, n).probability
        assert np.isfinite(probability).all(), column
        assert ((probability >= 0) & (probability <= 1)).all(), column
    everything = predictor.predict(dict.fromkeys(NUMERIC_COLUMNS, values), n).probability
    assert np.isfinite(everything).all()


def test_a_non_finite_probability_is_an_error_not_an_answer(quick_bundle, monkeypatch) -> None:
    predictor = Predictor.from_bundle(quick_bundle)
    monkeypatch.setattr(predictor.stack, "decision_function", lambda m: np.full(len(m), np.nan))
    with pytest.raises(ArithmeticError, match="non-finite probability for rows \\[0, 1\\]"):
        predictor.predict({"x0": np.array([1.0, 2.0])}, 2)


def test_a_column_mixing_text_and_raw_bytes_is_cleaned_not_raised() -> None:
    batch = clean({"x0": ["", b"\x80", "1.5"], "x1": ["wed", b"\xff", b"fri"]}, 3)
    assert np.isnan(batch.matrix[:2, 0]).all()
    assert batch.matrix[2, 0] == 1.5
    assert batch.missing["x0"] + batch.unrecognised["x0"] == 2


def test_float_arrays_and_lists_clean_alike() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(0, 10, size=(50, len(NUMERIC_COLUMNS)))
    values[rng.random(values.shape) < 0.1] = np.nan
    values[0, :7] = EXTREMES
    arrays = {c: values[:, j] for j, c in enumerate(NUMERIC_COLUMNS)}  # the vectorised path
    lists = {c: values[:, j].tolist() for j, c in enumerate(NUMERIC_COLUMNS)}  # column by column
    fast, slow = clean(arrays, 50), clean(lists, 50)
    np.testing.assert_array_equal(fast.matrix, slow.matrix)
    assert fast.missing == slow.missing
    assert fast.unrecognised == slow.unrecognised
    assert sum(fast.unrecognised.values()) == 6  # the extremes beyond float32, inf included
