"""In-process cost of drift tracking, for 1 row and 10,000 rows per model call.

``python -m bench.drift_cost [--bundle models/current]`` prints a Markdown table (without
``--bundle`` it trains a small synthetic bundle in a temporary directory first):

- the scored hook on the request path (:meth:`inference.drift.DriftTracker.observe`: a
  queue append), which is all a request waits for;
- the background binning of a call's rows into the window (off the request path, but
  CPU the server spends);
- a data-plane call with and without the hook (interleaved, medians), the end-to-end
  check that the request path does not move;
- one scrape of the full window (PSI of 100 columns and the scores) and the window's memory;
- PSI of every column for a window of fresh rows from the training distribution (noise).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from bench.machine import describe
from inference.dataplane import DataPlane
from inference.drift import DriftCollector, DriftTracker
from modeling.cleaning import clean
from modeling.predictor import Predictor
from modeling.schema import NUMERIC_COLUMNS
from modeling.training.cli import main as modeling_main
from modeling.training.synthetic import synthetic_table
from proto.codec import Limits

WINDOW = 10_000


def _median_us(call: Callable[[], object], repeat: int, between: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
        between()
    return statistics.median(times) * 1e6


def _served_columns(n_rows: int, seed: int) -> dict[str, np.ndarray]:
    """Synthetic rows as the gRPC tensors carry them: floats and bytes."""
    columns, _ = synthetic_table(n_rows, seed=seed)
    return {
        name: (
            np.array([float(v) if v else np.nan for v in values])
            if name in NUMERIC_COLUMNS
            else np.array([v.encode() for v in values], dtype=object)
        )
        for name, values in columns.items()
    }


def _plane(predictor: Predictor, tracker: DriftTracker | None) -> DataPlane:
    return DataPlane(
        predictor,
        max_batch_rows=4096,
        max_queue_delay_s=0.0005,
        limits=Limits(20_000, 4096),
        on_scored=tracker.observe if tracker is not None else None,
    )


def _ab_infer_us(predictor: Predictor, n_rows: int, repeat: int) -> tuple[float, float]:
    """Median data-plane call time without and with the hook (interleaved runs)."""
    assert predictor.profile is not None
    tracker = DriftTracker(predictor.profile, WINDOW)
    planes = (_plane(predictor, None), _plane(predictor, tracker))
    columns = _served_columns(n_rows, seed=3)
    times: tuple[list[float], list[float]] = ([], [])
    try:
        for plane in planes:
            plane.infer(columns, n_rows)  # warm
        for i in range(repeat):
            for k in (0, 1) if i % 2 else (1, 0):  # ABBA: neither goes first every time
                started = time.perf_counter()
                planes[k].infer(columns, n_rows)
                times[k].append(time.perf_counter() - started)
    finally:
        for plane in planes:
            plane.close(timeout=5)
        tracker.close(timeout=5)
    return statistics.median(times[0]) * 1e6, statistics.median(times[1]) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, help="a bundle with a profile (default: train one)")
    parser.add_argument("--repeat", type=int, default=2000, help="repetitions for 1 row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        bundle = args.bundle
        if bundle is None:
            bundle = Path(scratch) / "quick"
            argv = ["train", "--synthetic", "2000", "--preset", "quick", "--out", str(bundle)]
            assert modeling_main(argv) == 0
        predictor = Predictor.from_bundle(bundle)
    profile = predictor.profile
    if profile is None:
        raise SystemExit(f"bundle {bundle} has no profile.json: retrain it")

    rows: list[tuple[str, str, str]] = []
    tracker = DriftTracker(profile, WINDOW)
    try:
        for n_rows, repeat in ((1, args.repeat), (10_000, 30)):
            batch = clean(_served_columns(n_rows, seed=n_rows), n_rows)
            probability = np.random.default_rng(0).random(n_rows)
            # One row: back to back, as calls arrive (the worker drains every 50 ms).
            # 10,000 rows: each into an empty queue (a full one would drop it, cheaper).
            between = tracker.flush if n_rows > 1 else (lambda: None)
            hook = _median_us(lambda b=batch, p=probability: tracker.observe(b, p), repeat, between)
            binning = _median_us(
                lambda b=batch, p=probability: tracker._add([(b, p)]), repeat, lambda: None
            )
            rows.append((f"scored hook on the request path, {n_rows:,} rows", f"{hook:.1f} µs", ""))
            rows.append(
                (f"binning into the window (background), {n_rows:,} rows", f"{binning:.0f} µs", "")
            )
        for n_rows, repeat in ((1, args.repeat), (10_000, 40)):
            without, with_hook = _ab_infer_us(predictor, n_rows, repeat)
            change = (with_hook - without) / without * 100
            rows.append(
                (
                    f"data-plane call without / with the hook, {n_rows:,} rows",
                    f"{without:,.0f} / {with_hook:,.0f} µs",
                    f"{change:+.1f}%",
                )
            )
        registry = CollectorRegistry()
        registry.register(DriftCollector(tracker))
        fresh = clean(_served_columns(WINDOW, seed=77), WINDOW)
        tracker.observe(fresh, np.random.default_rng(1).random(WINDOW))
        tracker.flush()
        scrape = _median_us(lambda: generate_latest(registry), 50, lambda: None)
        rows.append((f"one scrape of a full {WINDOW:,}-row window", f"{scrape / 1000:.1f} ms", ""))
        rows.append(
            (f"window memory, {WINDOW:,} rows", f"{tracker.window.nbytes / 2**20:.1f} MiB", "")
        )
        noise = tracker.summary().column_psi
        rows.append(
            (
                f"PSI, {WINDOW:,} fresh rows vs a {profile.rows:,}-row reference",
                f"median {np.median(noise):.4f}, max {noise.max():.4f}",
                "",
            )
        )
    finally:
        tracker.close(timeout=5)

    print("| machine | |\n|---|---|")
    for key, value in describe().items():
        print(f"| {key} | {value} |")
    print(f"\nbundle: {bundle} ({profile.rows:,} training rows)\n")
    print("| what | median | change |\n|---|---|---|")
    for what, value, change in rows:
        print(f"| {what} | {value} | {change} |")


if __name__ == "__main__":
    main()
