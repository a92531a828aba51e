"""The reference profile: PSI, vectorised binning, building from training rows, the bundle."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from modeling.bundle import MANIFEST, BundleError, sha256_file
from modeling.cleaning import clean
from modeling.predictor import Predictor
from modeling.profile import (
    MISSING_SLOT,
    PROFILE_FILE,
    PSI_FLOOR,
    SLOTS,
    ProfileError,
    ReferenceProfile,
    bin_matrix,
    count_slots,
    psi,
    shares,
)
from modeling.schema import COLUMNS, VOCABULARIES
from modeling.training.profile import build_profile
from modeling.training.synthetic import synthetic_table


@pytest.fixture(scope="module")
def training() -> tuple[np.ndarray, np.ndarray]:
    columns, _ = synthetic_table(4000, seed=3)
    scores = np.random.default_rng(3).beta(1.0, 4.0, 4000)
    return clean(columns, 4000).matrix, scores


@pytest.fixture(scope="module")
def profile(training: tuple[np.ndarray, np.ndarray]) -> ReferenceProfile:
    return build_profile(*training, threshold=0.3)


# ---- PSI ------------------------------------------------------------------------------------


def test_psi_of_known_shares() -> None:
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert float(psi(np.array([0.5, 0.5]), np.array([0.9, 0.1]))) == pytest.approx(expected)
    assert float(psi(np.array([0.5, 0.5]), np.array([0.9, 0.1]))) == pytest.approx(0.8789, 1e-4)


def test_psi_is_zero_for_equal_shares_and_symmetric() -> None:
    e = np.array([0.1, 0.2, 0.3, 0.4])
    a = np.array([0.4, 0.3, 0.2, 0.1])
    assert float(psi(e, e)) == 0.0
    assert float(psi(e, a)) == pytest.approx(float(psi(a, e)))


def test_psi_of_an_empty_bin_is_large_but_finite() -> None:
    value = float(psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])))
    floor_term = (1 - PSI_FLOOR) * math.log(1 / PSI_FLOOR)
    assert value == pytest.approx(2 * floor_term)
    assert math.isfinite(value)


def test_psi_rows_are_independent() -> None:
    e = np.array([[0.5, 0.5], [0.5, 0.5]])
    a = np.array([[0.5, 0.5], [0.9, 0.1]])
    values = psi(e, a)
    assert values.shape == (2,)
    assert values[0] == 0.0
    assert values[1] > 0.8


def test_shares_leave_empty_rows_empty() -> None:
    assert shares(np.array([[0, 0], [1, 3]])).tolist() == [[0.0, 0.0], [0.25, 0.75]]


# ---- binning --------------------------------------------------------------------------------


def _slow_bins(matrix: np.ndarray, profile: ReferenceProfile) -> np.ndarray:
    out = np.empty(matrix.shape, dtype=np.uint8)
    for j, edges in enumerate(profile.edges):
        out[:, j] = np.searchsorted(np.array(edges), matrix[:, j], side="right")
    out[np.isnan(matrix)] = MISSING_SLOT
    return out


@pytest.mark.parametrize("n_rows", [1, 7, 256, 257, 3000])
def test_vectorised_binning_equals_a_search_per_column(
    profile: ReferenceProfile, n_rows: int
) -> None:
    matrix = clean(synthetic_table(n_rows, seed=n_rows)[0], n_rows).matrix
    matrix[0, 0] = profile.edges[0][3]  # a value on an edge goes above it
    assert (bin_matrix(matrix, profile.edge_matrix) == _slow_bins(matrix, profile)).all()
    assert bin_matrix(matrix, profile.edge_matrix)[0, 0] == 4


def test_category_codes_are_their_own_bins(profile: ReferenceProfile) -> None:
    matrix = np.full((13, len(COLUMNS)), np.nan)
    j = COLUMNS.index("x54")
    matrix[:12, j] = np.arange(12)
    slots = bin_matrix(matrix, profile.edge_matrix)[:, j]
    assert slots.tolist() == [*range(12), MISSING_SLOT]


def test_count_slots_counts_each_column() -> None:
    slots = np.array([[0, MISSING_SLOT], [0, 1], [2, 1]], dtype=np.uint8)
    counts = count_slots(slots)
    assert counts.shape == (2, SLOTS)
    assert counts[0, :3].tolist() == [2, 0, 1]
    assert counts[1, 1] == 2
    assert counts[1, MISSING_SLOT] == 1
    assert counts.sum() == 6


# ---- building -------------------------------------------------------------------------------


def test_numeric_deciles_split_the_training_rows_in_tenths(
    profile: ReferenceProfile, training: tuple[np.ndarray, np.ndarray]
) -> None:
    matrix, _ = training
    j = COLUMNS.index("x0")
    present = matrix[~np.isnan(matrix[:, j]), j]
    assert list(profile.edges[j]) == pytest.approx(
        np.quantile(present, np.arange(1, 10) / 10, method="lower")
    )
    value_shares = profile.expected[j, :10] / (1 - profile.expected[j, MISSING_SLOT])
    assert value_shares == pytest.approx(np.full(10, 0.1), abs=0.002)
    assert profile.expected[j, MISSING_SLOT] == pytest.approx(np.isnan(matrix[:, j]).mean())


def test_category_frequencies_and_missing_share(
    profile: ReferenceProfile, training: tuple[np.ndarray, np.ndarray]
) -> None:
    matrix, _ = training
    j = COLUMNS.index("x1")
    codes = matrix[:, j]
    for code in range(len(VOCABULARIES["x1"])):
        assert profile.expected[j, code] == pytest.approx(np.mean(codes == code))
    assert profile.expected[j, MISSING_SLOT] == pytest.approx(np.isnan(codes).mean())
    assert profile.expected.sum(axis=1) == pytest.approx(np.ones(len(COLUMNS)))
    frequencies = profile.to_json()["columns"]["x1"]["frequencies"]
    assert list(frequencies) == list(VOCABULARIES["x1"])
    assert frequencies["wednesday"] > frequencies["saturday"] == 0.0


def test_ties_and_empty_columns_give_fewer_edges() -> None:
    matrix = np.random.default_rng(0).normal(size=(1000, len(COLUMNS)))
    matrix[:, 2] = np.where(np.arange(1000) < 700, 1.0, 2.0)  # two values: one edge
    matrix[:, 3] = np.nan  # never given: no edges, all missing
    profile = build_profile(matrix, np.linspace(0.01, 0.99, 1000), 0.5)
    assert profile.edges[2] == (1.0, 2.0)  # deciles on the values the column takes
    assert profile.expected[2, :3].tolist() == pytest.approx([0.0, 0.7, 0.3])
    assert profile.edges[3] == ()
    assert profile.expected[3, MISSING_SLOT] == 1.0
    assert profile.missing_share[3] == 1.0
    assert float(psi(profile.expected[2], profile.expected[2])) == 0.0


def test_score_reference_from_out_of_fold_scores(
    profile: ReferenceProfile, training: tuple[np.ndarray, np.ndarray]
) -> None:
    _, scores = training
    assert len(profile.score_edges) == 9
    assert profile.score_expected == pytest.approx(np.full(10, 0.1), abs=0.002)
    assert profile.positive_share == pytest.approx(np.mean(scores >= 0.3))
    assert profile.score_mean == pytest.approx(scores.mean())


def test_normal_traffic_is_stable_and_a_shifted_column_is_not(profile: ReferenceProfile) -> None:
    columns, _ = synthetic_table(4000, seed=99)
    matrix = clean(columns, 4000).matrix
    same = psi(profile.expected, shares(count_slots(bin_matrix(matrix, profile.edge_matrix))))
    assert same.max() < 0.05
    j = COLUMNS.index("x5")
    matrix[:, j] += 2 * np.nanstd(matrix[:, j])  # two standard deviations
    moved = psi(profile.expected, shares(count_slots(bin_matrix(matrix, profile.edge_matrix))))
    assert moved[j] > 2.0
    assert np.delete(moved, j).max() < 0.05


# ---- JSON and the bundle --------------------------------------------------------------------


def test_json_round_trip(profile: ReferenceProfile, tmp_path: Path) -> None:
    loaded = ReferenceProfile.load(profile.save(tmp_path).parent)
    assert loaded.edges == profile.edges
    assert loaded.expected == pytest.approx(profile.expected)
    assert loaded.score_edges == pytest.approx(profile.score_edges)
    assert loaded.to_json() == profile.to_json()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), "version"),
        (lambda d: d["columns"]["x1"]["frequencies"].pop("monday"), "other categories"),
        (lambda d: d["columns"]["x0"]["shares"].pop(), "do not fit"),
        (lambda d: d["score"]["shares"].pop(), "score shares"),
        (lambda d: d["columns"].pop("x7"), "does not fit the schema"),
        (lambda d: d["columns"]["x0"].update(missing="many"), "does not fit the schema"),
    ],
)
def test_a_profile_that_does_not_fit_is_refused(
    profile: ReferenceProfile, change: object, message: str
) -> None:
    data = json.loads(json.dumps(profile.to_json()))
    change(data)  # type: ignore[operator]
    with pytest.raises(ProfileError, match=message):
        ReferenceProfile.from_json(data)


def test_unreadable_profile_file(tmp_path: Path) -> None:
    (tmp_path / PROFILE_FILE).write_text("{not json")
    with pytest.raises(ProfileError, match="unreadable"):
        ReferenceProfile.load(tmp_path)


def test_training_writes_a_sealed_profile_the_predictor_loads(quick_bundle: Path) -> None:
    manifest = json.loads((quick_bundle / MANIFEST).read_text())
    assert manifest["files"][PROFILE_FILE] == sha256_file(quick_bundle / PROFILE_FILE)
    predictor = Predictor.from_bundle(quick_bundle)
    assert predictor.profile is not None
    assert predictor.profile.rows == manifest["training_data"]["rows"]
    assert predictor.profile.threshold == pytest.approx(predictor.threshold)
    data = json.loads((quick_bundle / PROFILE_FILE).read_text())
    assert data["score"]["source"] == "out-of-fold stack probabilities"
    assert set(data["columns"]) == set(COLUMNS)


def _copy(bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    return copy


def test_a_tampered_profile_is_refused(quick_bundle: Path, tmp_path: Path) -> None:
    copy = _copy(quick_bundle, tmp_path)
    data = json.loads((copy / PROFILE_FILE).read_text())
    data["rows"] += 1
    (copy / PROFILE_FILE).write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"sha256 of profile\.json"):
        Predictor.from_bundle(copy)


def test_a_sealed_but_bad_profile_is_refused(quick_bundle: Path, tmp_path: Path) -> None:
    copy = _copy(quick_bundle, tmp_path)
    (copy / PROFILE_FILE).write_text('{"version": 1}')
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"][PROFILE_FILE] = sha256_file(copy / PROFILE_FILE)
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"bad profile\.json"):
        Predictor.from_bundle(copy)


def test_a_bundle_from_before_profiles_loads_and_scores(quick_bundle: Path, tmp_path: Path) -> None:
    copy = _copy(quick_bundle, tmp_path)
    (copy / PROFILE_FILE).unlink()
    manifest = json.loads((copy / MANIFEST).read_text())
    del manifest["files"][PROFILE_FILE]
    (copy / MANIFEST).write_text(json.dumps(manifest))
    predictor = Predictor.from_bundle(copy)
    assert predictor.profile is None
    assert 0.0 < predictor.predict({"x0": [1.0]}, 1).probability[0] < 1.0
