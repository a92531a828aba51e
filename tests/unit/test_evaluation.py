import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score, roc_curve

from modeling.training.crossval import stratified_folds
from modeling.training.evaluation import (
    auc,
    auc_interval,
    best_f1_threshold,
    brier,
    reliability,
    roc_points,
    summarise_auc,
)


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 2, 3000)
    score = np.round(target * 0.7 + rng.normal(0, 0.5, 3000), 2)  # rounded: many ties
    return target, score


def test_auc_matches_scikit_learn_with_ties(scores):
    target, score = scores
    assert auc(target, score) == pytest.approx(roc_auc_score(target, score), abs=1e-12)


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        auc(np.ones(3, dtype=int), np.arange(3.0))


def test_auc_interval_contains_the_value_and_shrinks_with_more_data():
    low, high = auc_interval(0.9, 100, 400)
    assert low < 0.9 < high
    low_big, high_big = auc_interval(0.9, 1000, 4000)
    assert high_big - low_big < high - low


def test_summarise_auc_reports_folds(scores):
    target, score = scores
    folds = stratified_folds(target, 5, seed=0)
    summary = summarise_auc(target, score, folds)
    assert summary.low < summary.auc < summary.high
    assert summary.fold_std > 0
    assert abs(summary.fold_mean - summary.auc) < 0.02
    assert set(summary.as_dict()) == {"auc", "low", "high", "fold_mean", "fold_std"}


def test_roc_points_match_scikit_learn(scores):
    target, score = scores
    fpr, tpr = roc_points(target, score)
    expected_fpr, expected_tpr, _ = roc_curve(target, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, expected_fpr)
    np.testing.assert_allclose(tpr, expected_tpr)


def test_brier_and_reliability_of_a_perfectly_calibrated_forecast():
    rng = np.random.default_rng(2)
    probability = rng.uniform(0, 1, 20000)
    target = (rng.uniform(0, 1, 20000) < probability).astype(int)
    predicted, observed = reliability(target, probability, bins=5)
    np.testing.assert_allclose(predicted, observed, atol=0.03)
    assert len(predicted) == 5
    assert brier(target, probability) == pytest.approx(1 / 6, abs=0.01)


def test_stratified_folds_keep_the_class_balance(scores):
    target, _ = scores
    folds = stratified_folds(target, 4, seed=0)
    rates = [target[folds == k].mean() for k in range(4)]
    assert max(rates) - min(rates) < 0.01


def test_best_f1_threshold_separates_a_clean_split():
    probability = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    target = np.array([0, 0, 0, 1, 1])
    assert best_f1_threshold(target, probability) == 0.8


def test_best_f1_threshold_counts_tied_probabilities_together():
    # The hand-written version believed F1 = 1.0 at 0.5 here; the true F1 there is 2/3.
    probability = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    target = np.array([1, 1, 0, 0, 0])
    threshold = best_f1_threshold(target, probability)
    achieved = f1_score(target, probability >= threshold)
    best = max(f1_score(target, probability >= t) for t in np.unique(probability))
    assert achieved == pytest.approx(best) == pytest.approx(2 / 3)
