import numpy as np
import pytest

from modeling.training.crossval import OutOfFold, candidates, out_of_fold, refit_params
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
