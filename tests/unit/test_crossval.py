import numpy as np
import pytest

from modeling.learners import LEARNERS, Learner
from modeling.learners.meta import MetaLearner
from modeling.training import crossval
from modeling.training.crossval import (
    OutOfFold,
    candidates,
    fit_learner,
    majority_columns,
    one_standard_error,
    out_of_fold,
    refit_params,
    scoring_work,
)
from modeling.training.data import DataError
from modeling.training.fit import check_learnable, training_set, trust_warnings
from modeling.training.params import load_params
from modeling.training.synthetic import synthetic_table


@pytest.fixture(scope="module")
def small_set():
    columns, target = synthetic_table(600, seed=4)
    return training_set(columns, target, {"synthetic_rows": 600})


def test_a_folds_labels_cannot_reach_its_own_out_of_fold_predictions(small_set):
    params = load_params("quick")
    before = out_of_fold(small_set.features, small_set.target, params, seed=0)
    held_out = before.folds == 1
    flipped = small_set.target.copy()
    flipped[held_out] = 1 - flipped[held_out]
    after = out_of_fold(small_set.features, flipped, params, seed=0, folds=before.folds)
    np.testing.assert_array_equal(after.base[held_out], before.base[held_out])
    # ...while the other folds, which trained on the flipped rows, did change
    assert not np.array_equal(after.base[~held_out], before.base[~held_out])


def test_candidates_expand_the_search_grid():
    options = candidates({"rate": 0.1, "search": {"leaves": [7, 31], "depth": [4]}})
    assert options == [
        {"rate": 0.1, "leaves": 7, "depth": 4},
        {"rate": 0.1, "leaves": 31, "depth": 4},
    ]
    assert candidates({"rate": 0.1}) == [{"rate": 0.1}]


def test_refit_takes_the_folds_majority_choice_and_its_median_rounds():
    oof = OutOfFold(["lightgbm"], np.empty((0, 1)), np.empty(0), np.empty(0, dtype=np.intp))
    oof.capacity = {
        "lightgbm": [
            {"num_leaves": 31, "num_boost_round": 100},
            {"num_leaves": 31, "num_boost_round": 300},
            {"num_leaves": 7, "num_boost_round": 900},
            {"num_leaves": 31, "num_boost_round": 200},
        ]
    }
    params = {"folds": 4, "lightgbm": {"learning_rate": 0.1, "search": {"num_leaves": [7, 31]}}}
    refit = refit_params(params, oof)
    assert refit["lightgbm"] == {"learning_rate": 0.1, "num_leaves": 31, "num_boost_round": 200}
    assert refit["folds"] == 4


@pytest.mark.parametrize(("positives", "negatives"), [(7, 43), (400, 20)])
def test_too_few_rows_of_a_class_are_refused_in_one_line(positives, negatives):
    target = np.array([1] * positives + [0] * negatives)
    with pytest.raises(DataError, match="too few rows to learn from") as error:
        check_learnable(target, load_params("default"))
    assert "\n" not in str(error.value)
    check_learnable(np.array([1] * 200 + [0] * 800), load_params("default"))


def test_a_wide_interval_is_flagged_and_a_narrow_one_is_not():
    wide = {"stack": {"auc": 0.66, "low": 0.43, "high": 0.90}}
    narrow = {"stack": {"auc": 0.944, "low": 0.941, "high": 0.948}}
    assert "too few rows to trust" in trust_warnings(wide)[0]
    assert trust_warnings(narrow) == []


def test_one_standard_error_takes_the_cheapest_option_near_the_best():
    scores = [0.900, 0.930, 0.934]  # e.g. 7, 31 and 127 leaves
    costs = [7 * 2000, 31 * 300, 127 * 250]
    assert one_standard_error(scores, costs, errors=0.005) == 1  # 31 leaves: cheapest within
    assert one_standard_error(scores, costs, errors=0.0) == 2  # no tolerance: the best
    assert one_standard_error(scores, costs, errors=0.05) == 1  # 7 leaves x 2000 costs more
    assert one_standard_error([0.93, 0.93], [5.0, 5.0], errors=0.0) == 0  # ties: the first


def test_scoring_work_counts_comparisons_not_leaves():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 100))
    target = (features[:, 7] + features[:, 9] > 0).astype(int)
    fitted = {}
    for leaves, rounds in ((7, 400), (63, 40)):
        learner = LEARNERS["lightgbm"](
            columns=(7, 9, 20), num_leaves=leaves, num_boost_round=rounds, num_threads=1
        )
        fitted[leaves] = learner.fit(features, target)
    # 400 trees of up to 7 leaves hold fewer leaves than 40 of up to 63, but a row takes
    # at least 2 steps (a comparison, a leaf) in each of the 400, at most 63 in each of the 40
    assert 2 * 400 <= scoring_work(fitted[7]) <= 7 * 400
    assert scoring_work(fitted[63]) <= 63 * 40
    assert scoring_work(fitted[7]) > scoring_work(fitted[63])
    mixture = LEARNERS["logistic"](columns=(7, 9, 20), n_components=2, max_iter=200)
    plain = LEARNERS["logistic"](columns=(7, 9, 20), max_iter=200)
    assert scoring_work(mixture.fit(features, target)) > scoring_work(plain.fit(features, target))


class _Sized(Learner):
    """A learner whose size is a parameter: below 100 it is cheap but blurred by noise."""

    name = "sized"
    filename = "sized.json"
    stops_early = True

    def fit(self, features, target, validation=None):
        return self

    def capacity(self):
        return {"size": self.params["size"]}

    def decision_function(self, features):
        return features[:, 0] + (0.1 if self.params["size"] < 100 else 0.0) * features[:, 2]

    def contributions(self, features):
        raise NotImplementedError

    def save(self, directory):
        raise NotImplementedError

    @classmethod
    def load(cls, directory):
        raise NotImplementedError


@pytest.mark.parametrize(("errors", "size"), [(1.0, 10), (0.0, 1000)])
def test_fit_learner_takes_the_smaller_model_within_one_standard_error(monkeypatch, errors, size):
    monkeypatch.setitem(crossval.LEARNERS, "sized", _Sized)
    rng = np.random.default_rng(0)
    target = (rng.random(2000) < 0.3).astype(int)
    features = rng.normal(size=(2000, 100))
    features[:, 0] += 1.5 * target
    stop = np.arange(2000) % 4 == 0
    params = {
        "capacity_rule": {"standard_errors": errors},
        "sized": {"search": {"size": [1000, 10]}},
    }
    _, chosen = fit_learner("sized", params, (0, 2), features, target, stop)
    # the big, sharp model scores best; the small one blurred by 0.1 is a hair lower
    assert chosen == {"size": size}


def test_own_selection_keeps_the_logistic_learners_signal_and_drops_some_noise():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(2500, 100))
    features[:, [1, 54, 82, 84]] = rng.integers(0, 3, size=(2500, 4))
    target = (2 * features[:, 3] - features[:, 5] + rng.normal(size=2500) > 0).astype(int)
    stop = np.arange(2500) % 5 == 0
    params = {
        "logistic": {"C": 1.0, "max_iter": 500, "n_components": 0},
        "selection": {"repeats": 2, "own": ["logistic"]},
    }
    columns = (1, 3, 5, 10, 11, 12, 13, 14, 15, 16, 17)
    learner, _ = fit_learner("logistic", params, columns, features, target, stop)
    assert {1, 3, 5} <= set(learner.columns) < set(columns)
    no_own = {**params, "selection": {}}
    shared, _ = fit_learner("logistic", no_own, columns, features, target, stop)
    assert shared.columns == columns


def test_majority_columns_are_those_most_folds_kept():
    assert majority_columns([(1, 2, 3), (1, 2), (1, 4), (1, 2, 5)]) == (1, 2)


def test_the_out_of_fold_stack_is_the_shipped_meta_learner_fitted_on_the_other_folds():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(300, 3))
    target = (base @ [1.5, -0.5, 0.0] + rng.normal(size=300) > 0).astype(int)
    folds = np.arange(300) % 4

    stack = crossval.stack_out_of_fold(base, target, folds, ["a", "b", "c"])

    for k in range(4):
        held_out = folds == k
        meta = MetaLearner(["a", "b", "c"]).fit(base[~held_out], target[~held_out])
        expected = 1 / (1 + np.exp(-meta.decision_function(base[held_out])))
        np.testing.assert_allclose(stack[held_out], expected, rtol=0, atol=1e-12)
    assert 0.0 < stack.min() < stack.max() < 1.0  # probabilities, not logits
    adapter = crossval.MetaEstimator(["a", "b", "c"]).fit(base, target)
    np.testing.assert_array_equal(
        adapter.predict(base), (adapter.decision_function(base) >= 0).astype(int)
    )
