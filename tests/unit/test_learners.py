import os
import pickle
import pickletools

import numpy as np
import pytest

from modeling.cleaning import clean
from modeling.learners import LEARNERS, NotFittedError
from modeling.learners.base import PARALLEL_ROWS, prediction_threads
from modeling.learners.meta import MetaLearner
from modeling.training.crossval import candidates
from modeling.training.params import load_params
from modeling.training.synthetic import synthetic_table

QUICK = {name: candidates(load_params("quick")[name])[0] for name in LEARNERS}
"""One fixed set of parameters per learner: the first option of the quick preset."""


@pytest.fixture(scope="module")
def data():
    columns, target = synthetic_table(1500, seed=3)
    return clean(columns, len(target)).matrix, target


@pytest.mark.parametrize("name", list(LEARNERS))
def test_learner_learns_and_round_trips_through_its_native_file(name, data, tmp_path):
    features, target = data
    learner = LEARNERS[name](**QUICK[name]).fit(features[:1000], target[:1000])
    probability = learner.predict_proba(features[1000:])
    assert probability.shape == (500,)
    assert ((probability > 0) & (probability < 1)).all()
    # better than chance on held-out rows: the synthetic label has real signal
    positives, negatives = probability[target[1000:] == 1], probability[target[1000:] == 0]
    assert positives.mean() > negatives.mean()
    path = learner.save(tmp_path)
    assert path.name == LEARNERS[name].filename
    assert not is_pickle(path.read_bytes())
    reloaded = LEARNERS[name].load(tmp_path)
    np.testing.assert_allclose(reloaded.predict_proba(features[1000:]), probability, rtol=1e-6)


def is_pickle(data: bytes) -> bool:
    """True when ``data`` parses as a whole pickle program (opcodes up to STOP)."""
    try:
        for _ in pickletools.genops(data):
            pass
    except (ValueError, IndexError, UnicodeDecodeError):
        return False
    return True


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_is_pickle_catches_every_pickle_protocol(protocol):
    payload = pickle.dumps({"coef": [1.0, 2.0], "name": "x"}, protocol=protocol)
    assert is_pickle(payload)
    assert not is_pickle(b'{"coef": [1.0, 2.0]}')


@pytest.mark.parametrize("name", list(LEARNERS))
def test_unfitted_learner_refuses_to_predict_and_to_save(name, data, tmp_path):
    learner = LEARNERS[name]()
    with pytest.raises(NotFittedError, match=f"^{type(learner).__name__} is not fitted$"):
        learner.predict_proba(data[0][:2])
    with pytest.raises(NotFittedError):
        learner.save(tmp_path)


def test_learners_tolerate_all_missing_rows(data):
    features, target = data
    empty = np.full((3, features.shape[1]), np.nan)
    for name in LEARNERS:
        learner = LEARNERS[name](**QUICK[name]).fit(features, target)
        assert np.isfinite(learner.predict_proba(empty)).all()


def test_logistic_fast_scoring_equals_its_design_matrix(data):
    features, target = data
    learner = LEARNERS["logistic"](n_knots=3, C=1.0).fit(features, target)
    features = features.copy()
    features[:5, [0, 1, 54]] = np.nan  # missing numbers and categories
    expected = 1 / (
        1 + np.exp(-(learner.design.transform(features) @ learner.coef + learner.intercept))
    )
    np.testing.assert_allclose(learner.predict_proba(features), expected, rtol=1e-10)


def test_logistic_without_knots_is_a_plain_linear_model(data):
    features, target = data
    learner = LEARNERS["logistic"](n_knots=0, n_components=0, C=1.0).fit(features, target)
    assert learner.design.knots.shape == (96, 0)
    assert learner.coef.shape == (96 + sum((7, 12, 5, 10)),)


def test_meta_learner_weights_the_better_base_learner_more(tmp_path):
    rng = np.random.default_rng(0)
    target = rng.integers(0, 2, 4000)
    good = 1.2 * (target - 0.5) + rng.normal(0, 0.4, 4000)  # log-odds
    noise = rng.normal(0, 2, 4000)
    meta = MetaLearner(["good", "noise"]).fit(np.column_stack([good, noise]), target)
    weights = meta.weights()
    assert weights["good"] > 5 * abs(weights["noise"])
    meta.save(tmp_path)
    again = MetaLearner.load(tmp_path)
    assert again.weights() == weights
    logits = np.array([[0.0, 0.0], [40.0, -3.0]])  # unbounded: no clipping of the logits
    np.testing.assert_allclose(
        again.decision_function(logits), again.intercept + logits @ again.coef, rtol=1e-15
    )


def test_learners_use_only_their_columns_and_remember_them(data, tmp_path):
    features, target = data
    columns = (0, 1, 5, 7, 30, 54)
    scrambled = features.copy()
    scrambled[:, [c for c in range(100) if c not in columns]] = 123.0  # ignored columns
    for name in LEARNERS:
        learner = LEARNERS[name](columns=columns, **QUICK[name]).fit(features, target)
        np.testing.assert_allclose(
            learner.predict_proba(scrambled), learner.predict_proba(features), rtol=1e-12
        )
        learner.save(tmp_path)
        assert LEARNERS[name].load(tmp_path).columns == columns


def test_logistic_with_a_mixture_feature_scores_like_its_design(data):
    features, target = data
    learner = LEARNERS["logistic"](columns=(0, 5, 7, 30, 1), n_components=2).fit(features, target)
    assert learner.design.mixture is not None
    expected = 1 / (
        1 + np.exp(-(learner.design.transform(features) @ learner.coef + learner.intercept))
    )
    np.testing.assert_allclose(learner.predict_proba(features), expected, rtol=1e-10)


@pytest.mark.parametrize("name", ["lightgbm", "catboost"])
def test_boosting_stops_early_on_noise_and_goes_on_with_signal(name, data):
    features, target = data
    params = {**QUICK[name], "learning_rate": 0.05}
    params["num_boost_round" if name == "lightgbm" else "iterations"] = 400
    shuffled = np.random.default_rng(0).permutation(target)
    noise = LEARNERS[name](**params).fit(
        features[:1000], shuffled[:1000], (features[1000:], shuffled[1000:])
    )
    signal = LEARNERS[name](**params).fit(
        features[:1000], target[:1000], (features[1000:], target[1000:])
    )
    (rounds_noise,) = noise.capacity().values()
    (rounds_signal,) = signal.capacity().values()
    assert rounds_noise < rounds_signal
    assert rounds_noise < 400  # stopped before the limit


def test_logistic_fits_its_validation_rows_too(data):
    features, target = data
    both = LEARNERS["logistic"](**QUICK["logistic"]).fit(
        features[:1000], target[:1000], (features[1000:], target[1000:])
    )
    whole = LEARNERS["logistic"](**QUICK["logistic"]).fit(features, target)
    np.testing.assert_allclose(both.coef, whole.coef)
    assert both.capacity() == {}


def test_large_batches_use_every_core_and_score_like_small_ones(data):
    cores = len(os.sched_getaffinity(0))
    assert prediction_threads(1) == prediction_threads(PARALLEL_ROWS - 1) == 1
    assert prediction_threads(PARALLEL_ROWS) == cores
    features, target = data
    for name in ("lightgbm", "catboost"):
        learner = LEARNERS[name](**QUICK[name]).fit(features[:1000], target[:1000])
        whole = learner.decision_function(features)  # 1500 rows: every core
        pieces = [learner.decision_function(features[i : i + 100]) for i in range(0, 1500, 100)]
        np.testing.assert_array_equal(whole, np.concatenate(pieces))
