"""The drift window, its tracker off the request path and its Prometheus collector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from inference.config import Settings
from inference.drift import SCORE_BUCKETS, DriftCollector, DriftTracker, DriftWindow
from inference.server import InferenceServer
from modeling.cleaning import CleanBatch, clean
from modeling.predictor import Predictor
from modeling.profile import ReferenceProfile
from modeling.schema import COLUMNS
from modeling.training.profile import build_profile
from modeling.training.synthetic import synthetic_table


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    columns, _ = synthetic_table(3000, seed=5)
    scores = np.random.default_rng(5).beta(1.0, 4.0, 3000)
    return build_profile(clean(columns, 3000).matrix, scores, threshold=0.3)


def rows(n: int, seed: int) -> CleanBatch:
    columns, _ = synthetic_table(n, seed=seed)
    return clean(columns, n)


def scrape(registry: CollectorRegistry) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample on the registry's exposition, by name and sorted labels."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def by_column(samples: dict[str, float] | dict[tuple[tuple[str, str], ...], float]) -> dict:
    return {dict(key)["column"]: value for key, value in samples.items()}  # type: ignore[arg-type]


# ---- the window -----------------------------------------------------------------------------


def test_window_wraps_and_keeps_the_last_rows(profile: ReferenceProfile) -> None:
    window = DriftWindow(profile, capacity=5)
    memory = window.nbytes
    scores = np.arange(1, 10) / 10
    for start, stop in ((0, 3), (3, 7), (7, 9)):
        n = stop - start
        window.add(rows(n, start).matrix, np.zeros((n, len(COLUMNS))), scores[start:stop])
    assert window.rows == 5
    assert window.nbytes == memory  # fixed at start, whatever went through
    summary = window.summary()
    assert summary.score_mean == pytest.approx(scores[4:].mean())  # the last five rows
    assert summary.positive_share == pytest.approx(np.mean(scores[4:] >= 0.3))
    assert window.total_rows == 9  # the histogram counts every row


def test_a_batch_larger_than_the_window_keeps_its_tail(profile: ReferenceProfile) -> None:
    window = DriftWindow(profile, capacity=4)
    scores = np.linspace(0.0, 1.0, 10)
    window.add(rows(10, 1).matrix, np.zeros((10, len(COLUMNS))), scores)
    assert window.rows == 4
    assert window.summary().score_mean == pytest.approx(scores[-4:].mean())
    assert window.score_counts.sum() == 10
    assert window.score_counts[0] == 1  # 0.0 in the first bucket (le 0.05)
    assert window.score_counts[-1] == 1  # 1.0 in the last (le 1)


def test_window_memory_is_five_bytes_per_cell(profile: ReferenceProfile) -> None:
    assert DriftWindow(profile, capacity=10_000).nbytes == 10_000 * (100 * 5 + 8)
    with pytest.raises(ValueError, match="capacity"):
        DriftWindow(profile, capacity=0)


def test_missing_and_unrecognised_shares(profile: ReferenceProfile) -> None:
    window = DriftWindow(profile, capacity=100)
    batch = clean({"x0": ["1.5", "", "2"] * 10, "x1": ["monday", "blursday", ""] * 10}, 30)
    assert batch.unrecognised["x1"] == 10
    shares = np.zeros((30, len(COLUMNS)))
    shares[:, COLUMNS.index("x1")] = 10 / 30
    window.add(batch.matrix, shares, np.full(30, 0.5))
    summary = window.summary()
    x0, x1, x2 = (COLUMNS.index(c) for c in ("x0", "x1", "x2"))
    assert summary.missing[x0] == pytest.approx(1 / 3)
    assert summary.unrecognised[x0] == 0.0
    assert summary.missing[x1] == pytest.approx(1 / 3)  # "" only: "blursday" is unreadable
    assert summary.unrecognised[x1] == pytest.approx(1 / 3)
    assert summary.missing[x2] == 1.0


def test_shifted_rows_raise_their_column_psi(profile: ReferenceProfile) -> None:
    window = DriftWindow(profile, capacity=3000)
    batch = rows(3000, 8)
    window.add(batch.matrix, np.zeros((3000, len(COLUMNS))), np.full(3000, 0.2))
    calm = window.summary()
    assert calm.column_psi.max() < 0.05
    matrix = batch.matrix.copy()
    matrix[:, COLUMNS.index("x3")] += 20.0  # two standard deviations (sd 10)
    window.add(matrix, np.zeros((3000, len(COLUMNS))), np.full(3000, 0.2))
    moved = window.summary()
    assert moved.column_psi[COLUMNS.index("x3")] > 2.0
    assert np.delete(moved.column_psi, COLUMNS.index("x3")).max() < 0.05
    assert moved.score_psi > 1.0  # every score in one decile


# ---- the tracker ----------------------------------------------------------------------------


def test_tracker_bins_off_the_calling_thread(profile: ReferenceProfile) -> None:
    tracker = DriftTracker(profile, capacity=1000, min_rows=100)
    try:
        for seed in range(5):
            tracker.observe(rows(50, seed), np.full(50, 0.4))
        tracker.observe(rows(0, 0), np.empty(0))  # nothing to track
        assert tracker.flush()
        assert tracker.summary().rows == 250
        assert tracker.dropped_rows == 0
    finally:
        tracker.close(timeout=5)
    assert not tracker._worker.is_alive()


def test_tracker_drops_and_counts_rows_beyond_its_queue(profile: ReferenceProfile) -> None:
    tracker = DriftTracker(profile, capacity=100)
    try:
        with tracker._window_lock:  # the worker cannot bin: the queue stays full
            tracker.observe(rows(80, 1), np.full(80, 0.1))
            tracker.observe(rows(15, 2), np.full(15, 0.1))
            tracker.observe(rows(10, 3), np.full(10, 0.1))  # 105 > 100: dropped
            assert tracker.dropped_rows == 10
        assert tracker.flush()
        assert tracker.summary().rows == 95
        # An empty queue takes even a batch larger than the window (it keeps the tail).
        tracker.observe(rows(150, 4), np.full(150, 0.1))
        assert tracker.flush()
        assert tracker.summary().rows == 100
    finally:
        tracker.close(timeout=5)


def test_a_failing_update_is_logged_and_the_worker_goes_on(
    profile: ReferenceProfile, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = DriftTracker(profile, capacity=100)
    try:
        bad = CleanBatch(np.zeros((2, 3)), {}, {})  # three columns: cannot be binned
        tracker.observe(bad, np.zeros(2))
        assert tracker.flush()
        assert "drift window update failed" in caplog.text
        tracker.observe(rows(5, 1), np.full(5, 0.2))
        assert tracker.flush()
        assert tracker.summary().rows == 5
    finally:
        tracker.close(timeout=5)


# ---- the collector --------------------------------------------------------------------------


def test_collector_exports_bounded_families_at_scrape_time(profile: ReferenceProfile) -> None:
    tracker = DriftTracker(profile, capacity=2000, min_rows=500)
    registry = CollectorRegistry()
    registry.register(DriftCollector(tracker))
    try:
        empty = scrape(registry)
        assert empty["inference_drift_window_rows"] == {(): 0.0}
        assert empty["inference_drift_dropped_rows_total"] == {(): 0.0}
        assert set(by_column(empty["inference_drift_reference_missing_ratio"])) == set(COLUMNS)
        assert "inference_drift_missing_ratio" not in empty

        tracker.observe(rows(200, 1), np.full(200, 0.9))
        assert tracker.flush()
        few = scrape(registry)
        assert few["inference_drift_window_rows"] == {(): 200.0}
        assert "inference_drift_psi" not in few  # 200 < 500 rows: noise, not drift
        assert few["inference_drift_positive_ratio"] == {(): 1.0}
        assert few["inference_scored_probability_count"] == {(): 200.0}
        assert few["inference_scored_probability_bucket"][(("le", "0.85"),)] == 0.0
        assert few["inference_scored_probability_bucket"][(("le", "0.9"),)] == 200.0

        shifted = rows(1000, 2)
        shifted.matrix[:, COLUMNS.index("x0")] += 20.0
        tracker.observe(shifted, np.full(1000, 0.2))
        assert tracker.flush()
        full = scrape(registry)
        column_psi = by_column(full["inference_drift_psi"])
        assert set(column_psi) == set(COLUMNS)
        assert column_psi["x0"] > 1.0
        assert max(v for c, v in column_psi.items() if c != "x0") < 0.1
        assert full["inference_drift_score_psi"][()] > 0.5
        assert len(full["inference_scored_probability_bucket"]) == len(SCORE_BUCKETS) + 1
        reference = full["inference_drift_reference_positive_ratio"][()]
        assert reference == pytest.approx(profile.positive_share)
    finally:
        tracker.close(timeout=5)


def test_a_new_profile_starts_the_window_again_and_keeps_the_histogram(
    profile: ReferenceProfile,
) -> None:
    """A swap: the window measures against the new version's training data from then on."""
    columns, _ = synthetic_table(3000, seed=6)
    scores = np.random.default_rng(6).beta(2.0, 2.0, 3000)
    other = build_profile(clean(columns, 3000).matrix, scores, threshold=0.5)
    tracker = DriftTracker(profile, capacity=1000)
    registry = CollectorRegistry()
    registry.register(DriftCollector(tracker))
    try:
        tracker.observe(rows(300, 1), np.full(300, 0.9))
        assert tracker.flush()
        tracker.use_profile(other)
        swapped = scrape(registry)
        assert swapped["inference_drift_window_rows"] == {(): 0.0}
        reference = swapped["inference_drift_reference_positive_ratio"][()]
        assert reference == pytest.approx(other.positive_share) != profile.positive_share
        missing = by_column(swapped["inference_drift_reference_missing_ratio"])
        assert list(missing.values()) == pytest.approx(list(other.missing_share))
        tracker.observe(rows(100, 2), np.full(100, 0.1))
        assert tracker.flush()
        after = scrape(registry)
        assert after["inference_drift_window_rows"] == {(): 100.0}
        assert after["inference_drift_positive_ratio"] == {(): 0.0}  # 0.1 < the new 0.5
        assert after["inference_scored_probability_count"] == {(): 400.0}  # cumulative
    finally:
        tracker.close(timeout=5)


def test_min_rows_never_exceeds_the_window(profile: ReferenceProfile) -> None:
    tracker = DriftTracker(profile, capacity=50, min_rows=1000)
    try:
        assert tracker.min_rows == 50
    finally:
        tracker.close(timeout=5)


# ---- the server wiring ----------------------------------------------------------------------


def test_server_tracks_drift_when_the_bundle_has_a_profile(quick_bundle: Path) -> None:
    predictor = Predictor.from_bundle(quick_bundle)
    settings = Settings(bundle=quick_bundle, drift_window_rows=300, drift_min_rows=10)
    server = InferenceServer(predictor, settings)
    try:
        columns, _ = synthetic_table(20, seed=4)
        server.plane.infer({c: np.asarray(v, dtype=object) for c, v in columns.items()}, 20)
        assert server.drift is not None
        assert server.drift.flush()
        samples = scrape(server.metrics.registry)
        assert samples["inference_drift_window_rows"] == {(): 20.0}
        assert set(by_column(samples["inference_drift_psi"])) == set(COLUMNS)
    finally:
        server.stop(0)
    assert not server.drift._worker.is_alive()


@pytest.mark.parametrize("window", [0, 300])
def test_no_profile_or_window_means_no_drift_metrics(quick_bundle: Path, window: int) -> None:
    predictor = Predictor.from_bundle(quick_bundle)
    if window:  # an older bundle: no profile
        predictor = Predictor(predictor.stack, predictor.manifest)
    server = InferenceServer(predictor, Settings(bundle=quick_bundle, drift_window_rows=window))
    try:
        assert server.drift is None
        server.plane.infer({"x0": np.array([1.0])}, 1)
        assert not any(
            name.startswith("inference_drift") for name in scrape(server.metrics.registry)
        )
    finally:
        server.stop(0)
