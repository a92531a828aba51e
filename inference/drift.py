"""Drift and data quality of served traffic against the bundle's reference profile.

The data plane hands every model call's cleaned batch and probabilities to
:meth:`DriftTracker.observe`, which only queues references to them (on the batcher's
thread). A background thread bins the queued rows (all columns at once,
:func:`modeling.profile.bin_matrix`) into a ring buffer holding the last ``capacity``
rows: their bin numbers, their share of unreadable values and their scores. Memory is
fixed at start (its size is in docs/monitoring.md); the queue holds at most ``capacity``
rows, and rows that do not fit are dropped and counted.

Nothing is computed per request beyond that: :class:`DriftCollector` counts the window's
bins and computes the population stability index of every column and of the scores
when Prometheus scrapes. Label values are schema column names only.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from modeling.cleaning import CleanBatch
from modeling.profile import (
    MISSING_SLOT,
    ReferenceProfile,
    bin_matrix,
    bin_scores,
    count_slots,
    psi,
    shares,
)
from modeling.schema import COLUMNS

log = logging.getLogger(__name__)

SCORE_BUCKETS = tuple(round(k / 20, 2) for k in range(1, 21))
"""Upper bounds of the served-probability histogram (fixed: 0.05 steps)."""
_DRAIN_INTERVAL_S = 0.05
"""The worker waits this long between drains, so a busy server's rows are binned in bulk."""


class DriftWindow:
    """The last ``capacity`` scored rows, binned against a reference profile.

    Not thread-safe by itself: :class:`DriftTracker` serialises access.
    """

    def __init__(self, profile: ReferenceProfile, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.profile = profile
        self.capacity = capacity
        self._edges = profile.edge_matrix
        self._slots = np.zeros((capacity, len(COLUMNS)), dtype=np.uint8)
        self._unreadable = np.zeros((capacity, len(COLUMNS)), dtype=np.float32)
        self._scores = np.zeros(capacity, dtype=np.float64)
        self._next = 0
        self.rows = 0
        """Rows in the window (at most ``capacity``)."""
        self.score_counts = np.zeros(len(SCORE_BUCKETS), dtype=np.int64)
        """Every row's probability bucket since start (cumulative, for the histogram)."""
        self.score_sum = 0.0
        self.total_rows = 0

    @property
    def nbytes(self) -> int:
        """Memory held by the ring buffers."""
        return self._slots.nbytes + self._unreadable.nbytes + self._scores.nbytes

    def add(
        self,
        matrix: NDArray[np.float64],
        unrecognised: NDArray[np.float64],
        probability: NDArray[np.float64],
    ) -> None:
        """Add rows: their cleaned values, per column unreadable share, their scores.

        ``unrecognised`` is ``(n, 100)``: the share of each column's values that could
        not be read, given per batch (so a row holds its batch's share).
        """
        self._count_scores(probability)
        keep = min(len(matrix), self.capacity)  # older rows would be overwritten at once
        matrix, unrecognised, probability = (
            matrix[-keep:],
            unrecognised[-keep:],
            probability[-keep:],
        )
        slots = bin_matrix(matrix, self._edges)
        positions = (self._next + np.arange(keep)) % self.capacity
        self._slots[positions] = slots
        self._unreadable[positions] = unrecognised
        self._scores[positions] = probability
        self._next = int((self._next + keep) % self.capacity)
        self.rows = min(self.capacity, self.rows + keep)

    def _count_scores(self, probability: NDArray[np.float64]) -> None:
        buckets = np.searchsorted(SCORE_BUCKETS, probability, side="left")
        self.score_counts += np.bincount(
            np.minimum(buckets, len(SCORE_BUCKETS) - 1), minlength=len(SCORE_BUCKETS)
        )
        self.score_sum += float(probability.sum())
        self.total_rows += len(probability)

    def summary(self) -> WindowSummary:
        """What the window holds now, against the reference."""
        rows = self.rows
        slots, scores = self._slots[:rows], self._scores[:rows]
        column_shares = shares(count_slots(slots))
        nan_share = column_shares[:, MISSING_SLOT]
        unreadable = self._unreadable[:rows].mean(axis=0, dtype=np.float64) if rows else nan_share
        profile = self.profile
        score_counts = np.bincount(
            bin_scores(scores, profile.score_edges), minlength=len(profile.score_edges) + 1
        )
        return WindowSummary(
            rows=rows,
            column_psi=psi(profile.expected, column_shares),
            missing=np.maximum(nan_share - unreadable, 0.0),
            unrecognised=unreadable,
            score_psi=float(psi(profile.score_expected, shares(score_counts))),
            score_mean=float(scores.mean()) if rows else 0.0,
            positive_share=float(np.mean(scores >= profile.threshold)) if rows else 0.0,
        )


class WindowSummary:
    """The window's per-column PSI, missing and unrecognised shares, and score statistics."""

    __slots__ = (
        "column_psi",
        "missing",
        "positive_share",
        "rows",
        "score_mean",
        "score_psi",
        "unrecognised",
    )

    def __init__(  # noqa: PLR0917 - a plain record
        self,
        rows: int,
        column_psi: NDArray[np.float64],
        missing: NDArray[np.float64],
        unrecognised: NDArray[np.float64],
        score_psi: float,
        score_mean: float,
        positive_share: float,
    ) -> None:
        self.rows = rows
        self.column_psi = column_psi
        self.missing = missing
        self.unrecognised = unrecognised
        self.score_psi = score_psi
        self.score_mean = score_mean
        self.positive_share = positive_share


def _unrecognised_shares(counts: Mapping[str, int], n_rows: int) -> NDArray[np.float64]:
    return np.fromiter((counts.get(c, 0) for c in COLUMNS), np.float64, len(COLUMNS)) / n_rows


class DriftTracker:
    """Takes scored batches off the request path and keeps a :class:`DriftWindow` of them."""

    def __init__(self, profile: ReferenceProfile, capacity: int, min_rows: int = 1) -> None:
        self.window = DriftWindow(profile, capacity)
        self.min_rows = max(1, min(min_rows, capacity))
        """Rows the window needs before PSI is reported (fewer give noise, not drift)."""
        self.dropped_rows = 0
        """Rows never binned because the queue was full (the window is then a sample)."""
        self._queue: deque[tuple[CleanBatch, NDArray[np.float64]]] = deque()
        self._queued_rows = 0
        lock = threading.Lock()
        self._items = threading.Condition(lock)  # the worker waits here for rows
        self._drained = threading.Condition(lock)  # flush() waits here for an empty queue
        self._idle = False  # the worker waits for rows (not between two drains)
        self._closed = threading.Event()
        self._window_lock = threading.Lock()
        self._worker = threading.Thread(target=self._loop, name="drift-window", daemon=True)
        self._worker.start()

    def observe(self, batch: CleanBatch, probability: NDArray[np.float64]) -> None:
        """Queue one model call's rows (the data plane's scored hook): no copy, no maths."""
        n_rows = batch.n_rows
        if n_rows == 0:
            return
        with self._items:
            if self._queued_rows + n_rows > self.window.capacity and self._queued_rows:
                self.dropped_rows += n_rows
                return
            self._queue.append((batch, probability))
            self._queued_rows += n_rows
            if self._idle:  # else the worker takes these rows at its next drain
                self._items.notify()

    def use_profile(self, profile: ReferenceProfile) -> None:
        """Measure against ``profile`` from now on (a new version's): the window starts empty.

        The served-probability histogram goes on (it is cumulative). Rows still queued when
        the version changes are binned into the new window.
        """
        window = DriftWindow(profile, self.window.capacity)
        with self._window_lock:
            old = self.window
            window.score_counts = old.score_counts
            window.score_sum, window.total_rows = old.score_sum, old.total_rows
            self.window = window

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued row is in the window; return whether it was in time."""
        with self._drained:
            return self._drained.wait_for(lambda: self._queued_rows == 0, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker after it has binned what is queued."""
        with self._items:
            self._closed.set()
            self._items.notify_all()
        self._worker.join(timeout)

    def summary(self) -> WindowSummary:
        """The window's statistics now (computed on call: scrape time)."""
        with self._window_lock:
            return self.window.summary()

    def score_histogram(self) -> tuple[NDArray[np.int64], float, int]:
        """Cumulative served-probability bucket counts, their sum and count."""
        with self._window_lock:
            window = self.window
            return window.score_counts.copy(), window.score_sum, window.total_rows

    def _take(self) -> list[tuple[CleanBatch, NDArray[np.float64]]] | None:
        with self._items:
            self._idle = True
            self._items.wait_for(lambda: self._queue or self._closed.is_set())
            self._idle = False
            if not self._queue:
                return None
            taken = list(self._queue)
            self._queue.clear()
            return taken

    def _loop(self) -> None:
        while (taken := self._take()) is not None:
            try:
                self._add(taken)
            except Exception:  # a metrics bug must never stop serving: log it, go on
                log.exception("drift window update failed")
            finally:
                with self._drained:
                    self._queued_rows -= sum(batch.n_rows for batch, _ in taken)
                    self._drained.notify_all()
            # Let a busy server's calls pile up for one bulk update; requests queueing
            # meanwhile do not wake this thread (no thread switch on their path).
            self._closed.wait(_DRAIN_INTERVAL_S)

    def _add(self, taken: list[tuple[CleanBatch, NDArray[np.float64]]]) -> None:
        matrix = np.concatenate([batch.matrix for batch, _ in taken])
        unreadable = np.concatenate(
            [
                np.broadcast_to(
                    _unrecognised_shares(batch.unrecognised, batch.n_rows),
                    (batch.n_rows, len(COLUMNS)),
                )
                for batch, _ in taken
            ]
        )
        probability = np.concatenate([p for _, p in taken])
        with self._window_lock:
            self.window.add(matrix, unreadable, probability)


class DriftCollector(Collector):
    """Prometheus collector: the window's statistics, computed at scrape time."""

    def __init__(self, tracker: DriftTracker) -> None:
        self.tracker = tracker

    def describe(self) -> list[Metric]:
        """No up-front description: the registry calls :meth:`collect` once at register."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield every drift and data-quality family."""
        tracker = self.tracker
        summary = tracker.summary()
        profile = tracker.window.profile
        rows = GaugeMetricFamily(
            "inference_drift_window_rows", "Scored rows in the drift window now."
        )
        rows.add_metric([], summary.rows)
        yield rows
        yield _counter(
            "inference_drift_dropped_rows",
            "Scored rows left out of the drift window because its queue was full.",
            tracker.dropped_rows,
        )
        yield from self._reference(profile)
        if summary.rows == 0:
            return
        yield _by_column(
            "inference_drift_missing_ratio",
            "Share of missing values per column over the drift window.",
            summary.missing,
        )
        yield _by_column(
            "inference_drift_unrecognised_ratio",
            "Share of unreadable values (unknown category, bad number) per column over "
            "the drift window.",
            summary.unrecognised,
        )
        yield _gauge(
            "inference_drift_score_mean",
            "Mean served probability over the drift window.",
            summary.score_mean,
        )
        yield _gauge(
            "inference_drift_positive_ratio",
            "Share of the drift window's rows at or above the decision threshold.",
            summary.positive_share,
        )
        counts, total, n_rows = tracker.score_histogram()
        histogram = HistogramMetricFamily(
            "inference_scored_probability", "Served probabilities P(y = 1), every scored row."
        )
        cumulative = np.cumsum(counts).tolist()
        buckets = [
            (f"{bound:g}", float(c)) for bound, c in zip(SCORE_BUCKETS, cumulative, strict=True)
        ]
        histogram.add_metric([], [*buckets, ("+Inf", float(n_rows))], total)
        yield histogram
        if summary.rows < tracker.min_rows:
            return
        yield _by_column(
            "inference_drift_psi",
            "Population stability index of each column over the drift window against "
            "the training data (deciles, categories, missing).",
            summary.column_psi,
        )
        yield _gauge(
            "inference_drift_score_psi",
            "Population stability index of the served probabilities over the drift window "
            "against the training out-of-fold scores (deciles).",
            summary.score_psi,
        )

    def _reference(self, profile: ReferenceProfile) -> Iterator[Metric]:
        yield _by_column(
            "inference_drift_reference_missing_ratio",
            "Share of missing values per column in the training data.",
            profile.missing_share,
        )
        yield _gauge(
            "inference_drift_reference_score_mean",
            "Mean out-of-fold probability of the training rows.",
            profile.score_mean,
        )
        yield _gauge(
            "inference_drift_reference_positive_ratio",
            "Share of training rows whose out-of-fold probability reaches the threshold.",
            profile.positive_share,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _by_column(name: str, documentation: str, values: NDArray[Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["column"])
    for column, value in zip(COLUMNS, values.tolist(), strict=True):
        family.add_metric([column], value)
    return family
