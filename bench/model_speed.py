"""In-process model speed: bundle load time and prediction latency for 1 and 10,000 rows.

``python -m bench.model_speed --bundle models/current --rows exercise_06_test.csv``
prints a Markdown table. The rows go in as the inference server receives them:
numeric columns as float arrays, text columns as bytes. A second table splits the
scoring time by base learner (on the cleaned matrix, so without the cleaning), with
the capacity each was refitted with: what a capacity choice costs in serving.
"""

from __future__ import annotations

import os

# The serving configuration (bin/start-inference), set before numpy loads its BLAS.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import math
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np

from modeling.cleaning import clean
from modeling.predictor import Predictor
from modeling.schema import TEXT_COLUMNS
from modeling.training.data import read_csv


def _missing(value: object) -> bool:
    """None or a float NaN (what a CSV reader gives for an empty text cell)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_served(path: Path) -> tuple[dict[str, np.ndarray], int]:
    """Read the CSV into the column types the gRPC tensors carry."""
    table = read_csv(path)
    columns: dict[str, np.ndarray] = {}
    for name, values in table.columns.items():
        if name in TEXT_COLUMNS:
            columns[name] = np.array(
                [b"" if _missing(v) else str(v).encode() for v in values], dtype=object
            )
        else:
            columns[name] = values.astype(np.float64)
    return columns, table.n_rows


def _timings(call, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--rows", type=Path, required=True, help="CSV with x0..x99")
    args = parser.parse_args()

    load_ms = _timings(lambda: Predictor.from_bundle(args.bundle), 3)
    predictor = Predictor.from_bundle(args.bundle)
    columns, n_rows = _as_served(args.rows)
    one = {name: values[:1] for name, values in columns.items()}
    predictor.predict(one, 1)  # warm up
    single = _timings(lambda: predictor.predict(one, 1), 500)
    batch = _timings(lambda: predictor.predict(columns, n_rows), 7)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(f"Machine: {cpu}, Python {platform.python_version()}\n")
    print("| measure | median ms | p99 / max ms |")
    print("|---|---|---|")
    print(f"| load bundle | {statistics.median(load_ms):.1f} | {max(load_ms):.1f} |")
    print(f"| predict 1 row | {statistics.median(single):.2f} | {np.percentile(single, 99):.2f} |")
    print(f"| predict {n_rows} rows | {statistics.median(batch):.1f} | {max(batch):.1f} |")
    matrix = clean(columns, n_rows).matrix
    refit = predictor.manifest.get("refit_params", {})
    print("\n| learner | capacity | 1 row median ms | " + f"{n_rows} rows median ms |")
    print("|---|---|---|---|")
    for name, learner in predictor.stack.learners.items():
        learner.predict_proba(matrix[:1])  # warm up
        one_ms = statistics.median(_timings(partial(learner.predict_proba, matrix[:1]), 300))
        all_ms = statistics.median(_timings(partial(learner.predict_proba, matrix), 7))
        print(f"| {name} | {_capacity(refit.get(name, {}))} | {one_ms:.2f} | {all_ms:.1f} |")


def _capacity(params: dict) -> str:
    """The capacity knobs of a learner's refit parameters, in a few words."""
    keys = ("num_leaves", "num_boost_round", "iterations", "depth", "n_components")
    return ", ".join(f"{key} {params[key]}" for key in keys if key in params) or "-"


if __name__ == "__main__":
    main()
