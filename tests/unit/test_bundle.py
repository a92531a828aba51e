import json
import shutil

import numpy as np
import pytest

from modeling.bundle import MANIFEST, BundleError, read_manifest
from modeling.predictor import Predictor
from modeling.schema import COLUMNS
from modeling.training.cli import main
from modeling.training.synthetic import synthetic_records, synthetic_table


@pytest.fixture
def bundle_copy(quick_bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(quick_bundle, copy)
    return copy


def test_manifest_seals_every_file_and_records_provenance(quick_bundle):
    manifest = read_manifest(quick_bundle)
    learner_files = {"logistic.json", "lightgbm.txt", "catboost.cbm", "meta.json"}
    assert set(manifest["files"]) == {*learner_files, "profile.json"}
    assert manifest["demo"] is True
    assert manifest["feature_order"][:100] == list(COLUMNS)
    assert manifest["learners"] == ["logistic", "lightgbm", "catboost"]
    assert set(manifest["cv_metrics"]) == {"logistic", "lightgbm", "catboost", "stack"}
    assert 0 < manifest["threshold"] < 1
    assert manifest["libraries"]["lightgbm"]
    assert manifest["training_data"]["rows"] == 2000


def test_predictor_scores_rows_in_order_and_batch_equals_single(quick_bundle):
    predictor = Predictor.from_bundle(quick_bundle)
    columns, _ = synthetic_table(50, seed=9)
    batch = predictor.predict(columns, 50)
    assert batch.probability.shape == batch.label.shape == (50,)
    assert ((batch.probability > 0) & (batch.probability < 1)).all()
    np.testing.assert_array_equal(batch.label, batch.probability >= predictor.threshold)
    for i in (0, 17, 49):
        single = predictor.predict({c: v[i : i + 1] for c, v in columns.items()}, 1)
        assert single.probability[0] == pytest.approx(batch.probability[i], abs=1e-12)


def test_predictor_handles_an_empty_batch_and_reports_unrecognised_values(quick_bundle):
    predictor = Predictor.from_bundle(quick_bundle)
    assert predictor.predict({}, 0).probability.shape == (0,)
    record = synthetic_records(1, seed=4)[0] | {"x84": "lada", "x0": ""}
    result = predictor.predict({c: [record[c]] for c in COLUMNS}, 1)
    assert result.batch.unrecognised["x84"] == 1
    assert result.batch.missing["x0"] == 1
    assert np.isfinite(result.probability).all()


def test_training_is_reproducible(quick_bundle, tmp_path):
    again = tmp_path / "again"
    assert main(["train", "--synthetic", "2000", "--preset", "quick", "--out", str(again)]) == 0
    first, second = read_manifest(quick_bundle), read_manifest(again)
    assert first["cv_metrics"] == second["cv_metrics"]
    assert first["threshold"] == second["threshold"]
    # CatBoost stamps its file with the training time, so compare what the models say.
    for name in ("logistic.json", "lightgbm.txt", "meta.json"):
        assert first["files"][name] == second["files"][name]
    columns, _ = synthetic_table(200, seed=8)
    np.testing.assert_array_equal(
        Predictor.from_bundle(quick_bundle).predict(columns, 200).probability,
        Predictor.from_bundle(again).predict(columns, 200).probability,
    )


def test_a_tampered_file_is_refused(bundle_copy):
    with (bundle_copy / "lightgbm.txt").open("a") as stream:
        stream.write("\n")
    with pytest.raises(BundleError, match=r"tampered: sha256 of lightgbm\.txt"):
        Predictor.from_bundle(bundle_copy)


def test_a_missing_file_is_refused(bundle_copy):
    (bundle_copy / "catboost.cbm").unlink()
    with pytest.raises(BundleError, match=r"incomplete: catboost\.cbm is missing"):
        Predictor.from_bundle(bundle_copy)


def test_a_missing_bundle_or_manifest_is_refused(bundle_copy, tmp_path):
    with pytest.raises(BundleError, match="no model bundle"):
        Predictor.from_bundle(tmp_path / "nowhere")
    (bundle_copy / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match=r"no readable manifest\.json"):
        Predictor.from_bundle(bundle_copy)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("format_version", 99, "has format 99"), ("feature_order", ["x0"], "another feature order")],
)
def test_an_incompatible_manifest_is_refused(bundle_copy, field, value, message):
    manifest = json.loads((bundle_copy / MANIFEST).read_text())
    manifest[field] = value
    (bundle_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message):
        Predictor.from_bundle(bundle_copy)


def test_a_learner_file_that_does_not_parse_is_refused(bundle_copy):
    manifest = json.loads((bundle_copy / MANIFEST).read_text())
    (bundle_copy / "meta.json").write_text('{"names": ["nonsense"], "c": 1}')
    manifest["files"]["meta.json"] = (
        __import__("hashlib").sha256((bundle_copy / "meta.json").read_bytes()).hexdigest()
    )
    (bundle_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="could not be loaded"):
        Predictor.from_bundle(bundle_copy)
