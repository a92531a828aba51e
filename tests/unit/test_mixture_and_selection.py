import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.mixture import GaussianMixture

from modeling.learners.mixture import MixtureRatio, _Mixture
from modeling.schema import ALL_COLUMNS
from modeling.training.selection import (
    explained_variance,
    own_columns,
    permutation_drop,
    select_columns,
)


def test_mixture_log_density_matches_scikit_learn():
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal(0, 1, (300, 3)), rng.normal(3, 0.5, (300, 3))])
    fitted = GaussianMixture(n_components=2, covariance_type="full", random_state=0).fit(points)
    mixture = _Mixture(
        {
            "weights": fitted.weights_.tolist(),
            "means": fitted.means_.tolist(),
            "precision_cholesky": fitted.precisions_cholesky_.tolist(),
        }
    )
    np.testing.assert_allclose(mixture.log_density(points), fitted.score_samples(points), rtol=1e-9)


def test_mixture_ratio_separates_clustered_classes_and_is_bounded():
    values, target = make_classification(
        n_samples=2000,
        n_features=4,
        n_informative=4,
        n_redundant=0,
        n_clusters_per_class=2,
        random_state=1,
    )
    ratio = MixtureRatio.fit(values, target, n_components=2)
    scores = ratio.ratio(values)
    assert scores[target == 1].mean() > scores[target == 0].mean() + 2
    assert np.abs(ratio.ratio(values * 1e6)).max() <= 30
    again = MixtureRatio(ratio.state)
    np.testing.assert_array_equal(again.ratio(values), scores)


def _redundant_block(n=3000, seed=2):
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n, 100))
    matrix[:, [1, 54, 82, 84]] = rng.integers(0, 3, size=(n, 4))  # category codes
    latent = rng.normal(size=(n, 2))
    for j in (10, 20, 30, 35, 45):  # noisy combinations of the same latent signal
        matrix[:, j] = latent @ rng.normal(size=2) + 0.2 * rng.normal(size=n)
    target = (latent[:, 0] + 0.5 * matrix[:, 40] > 0.5).astype(int)  # x40: strong, unique
    return matrix, target


def test_explained_variance_tells_the_redundant_block_from_noise():
    matrix, _ = _redundant_block()
    r2 = explained_variance(matrix[:, [10, 20, 30, 35, 45, 50, 60]])
    assert (r2[:5] > 0.5).all()
    assert (r2[5:] < 0.05).all()


SCREEN = {"min_r2": 0.5, "shadows": 20, "repeats": 3}


def test_select_columns_keeps_the_block_the_strong_column_and_categories():
    matrix, target = _redundant_block()
    kept = select_columns(matrix, target, _stop(target), SCREEN)
    assert {10, 20, 30, 35, 45, 40, 1, 54, 82, 84} <= set(kept)
    assert len(kept) <= 20  # of the 90 pure-noise columns, at most 10 beat every shadow


def test_select_columns_keeps_a_weak_unique_column_whose_removal_costs_auc():
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(4000, 100))
    matrix[:, [1, 54, 82, 84]] = rng.integers(0, 3, size=(4000, 4))
    logit = 2.0 * matrix[:, 7] + 0.5 * matrix[:, 60] - 1.5  # x60: weak, echoed by nothing
    target = (rng.random(4000) < 1 / (1 + np.exp(-logit))).astype(int)
    kept = select_columns(matrix, target, _stop(target), SCREEN)
    assert {7, 60} <= set(kept)


def _stop(target):
    return np.arange(len(target)) % 5 == 0


def test_no_selection_parameters_keep_every_column():
    matrix, target = _redundant_block(n=200)
    assert select_columns(matrix, target, _stop(target), {}) == ALL_COLUMNS


@pytest.mark.parametrize("missing_rate", [0.0, 0.05])
def test_explained_variance_tolerates_missing_values(missing_rate):
    matrix, _ = _redundant_block(n=500)
    values = matrix[:, [10, 20, 30]].copy()
    values[np.random.default_rng(3).random(values.shape) < missing_rate] = np.nan
    assert np.isfinite(explained_variance(values)).all()


class _Reads:
    """A stand-in fitted learner whose score reads only ``signal`` of its columns."""

    def __init__(self, columns, signal):
        self.columns = tuple(columns)
        self.signal = [c for c in signal if c in self.columns]

    def predict_proba(self, features):
        return features[:, self.signal].sum(axis=1)


def test_own_columns_drops_what_the_model_ignores_and_keeps_categories():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(600, 100))
    target = (matrix[:, 3] + matrix[:, 5] + rng.normal(size=600) > 0).astype(int)
    refits = []

    def refit(columns):
        refits.append(columns)
        return _Reads(columns, (3, 5)), 0.9

    learner = _Reads((1, 3, 5, 8, 9), (3, 5))
    kept, score = own_columns(learner, 0.9, refit, (matrix, target), repeats=2)
    assert kept.columns == (1, 3, 5)  # x1 is a category column: always kept
    assert refits == [(1, 3, 5)]
    assert score == 0.9


def test_own_columns_keeps_the_shared_columns_when_the_pruned_refit_scores_lower():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(600, 100))
    target = (matrix[:, 3] + rng.normal(size=600) > 0).astype(int)
    learner = _Reads((3, 8), (3,))
    kept, score = own_columns(
        learner, 0.9, lambda c: (_Reads(c, (3,)), 0.89), (matrix, target), repeats=1
    )
    assert kept is learner
    assert score == 0.9


def test_permutation_drop_is_large_for_the_signal_and_zero_for_an_ignored_column():
    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(800, 100))
    target = (matrix[:, 3] > 0).astype(int)
    drops = permutation_drop(lambda x: x[:, 3], matrix, target, [3, 8], repeats=2, seed=0)
    assert drops[0] > 0.3
    assert drops[1] == 0
