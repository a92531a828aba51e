import json

import pytest

from modeling.training.baseline import N_SELECTED, ClassicBaseModel
from modeling.training.cli import main
from modeling.training.fit import training_set
from modeling.training.params import load_params, store_params
from modeling.training.synthetic import synthetic_table


@pytest.fixture(scope="module")
def small_set():
    columns, target = synthetic_table(800, seed=21)
    return training_set(columns, target, {"synthetic_rows": 800})


def test_classic_base_model_keeps_25_variables_and_learns(small_set):
    model = ClassicBaseModel().fit(small_set.features[:600], small_set.target[:600])
    assert len(model.selected) == N_SELECTED
    probability = model.predict_proba(small_set.features[600:])
    held_out = small_set.target[600:]
    assert probability[held_out == 1].mean() > probability[held_out == 0].mean()


def test_evaluate_writes_the_report_with_figures(tmp_path, capsys):
    report = tmp_path / "docs" / "model_report.md"
    code = main(
        [
            "evaluate",
            "--synthetic",
            "800",
            "--preset",
            "quick",
            "--folds",
            "2",
            "--report",
            str(report),
        ]
    )
    assert code == 0
    text = report.read_text()
    for row in (
        "classic base model",
        "default xgboost",
        "default lightgbm",
        "default catboost",
        "logistic",
        "lightgbm",
        "catboost",
        "stack",
    ):
        assert f"| {row} | **0." in text
    for figure in ("roc.png", "calibration.png", "importance.png", "stacking_weights.png"):
        assert (tmp_path / "docs" / "figures" / figure).stat().st_size > 1000
        assert f"figures/{figure}" in text
    assert "DEMO MODEL" in capsys.readouterr().err


def test_tune_searches_and_reports_the_best_without_storing(capsys):
    before = load_params("default")
    assert (
        main(
            [
                "tune",
                "--synthetic",
                "400",
                "--learner",
                "logistic",
                "--minutes",
                "0.02",
                "--dry-run",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "trial 0: AUC 0." in err
    assert "best logistic parameters" in err
    assert load_params("default") == before


def test_store_params_replaces_one_learner(tmp_path):
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"default": {"folds": 5, "lightgbm": {"a": 1}}, "quick": {}}))
    store_params("lightgbm", {"b": 2}, path)
    assert load_params("default", path) == {"folds": 5, "lightgbm": {"b": 2}}


def test_tuning_spaces_produce_valid_learners(small_set):
    import optuna

    from modeling.training.tuning import SPACES, cross_validated_auc

    params = {**load_params("quick"), "folds": 2}
    for name, space in SPACES.items():
        learner_params = space(optuna.trial.FixedTrial(_smallest(name)))
        value = cross_validated_auc(small_set, name, learner_params, params, seed=0)
        assert 0.5 < value <= 1.0, name


def test_tuning_scores_what_training_measures(small_set):
    from modeling.training.crossval import out_of_fold
    from modeling.training.evaluation import auc
    from modeling.training.tuning import cross_validated_auc

    params = {**load_params("quick"), "folds": 2}
    learner_params = {"C": 0.5, "n_knots": 1, "n_components": 0, "max_iter": 500}
    oof = out_of_fold(
        small_set.features, small_set.target, {**params, "logistic": learner_params}, seed=0
    )
    tuned = cross_validated_auc(small_set, "logistic", learner_params, params, seed=0)
    assert tuned == auc(small_set.target, oof.base[:, oof.names.index("logistic")])


def _smallest(name):
    return {
        "logistic": {"C": 0.1, "n_knots": 1, "n_components": 2},
        "lightgbm": {
            "learning_rate": 0.2,
            "num_leaves": 7,
            "min_child_samples": 20,
            "feature_fraction": 0.5,
            "bagging_fraction": 0.8,
            "lambda_l2": 1.0,
        },
        "catboost": {"learning_rate": 0.3, "depth": 4, "l2_leaf_reg": 3.0},
    }[name]


def test_a_rewritten_report_keeps_what_other_tools_appended(tmp_path):
    from modeling.training.report import _appended_sections

    report = tmp_path / "model_report.md"
    assert _appended_sections(report) == ""  # no report yet
    report.write_text("# Model report\n\nold table\n")
    assert _appended_sections(report) == ""
    appended = "\n<!-- synthetic sets: begin -->\n| set A |\n<!-- synthetic sets: end -->\n"
    report.write_text("# Model report\n\nold table\n" + appended)
    assert _appended_sections(report) == appended
