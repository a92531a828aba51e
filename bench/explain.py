"""What an explanation costs, in process and through the API, beside what a score costs.

``python -m bench.explain --url http://localhost:5001 --rows exercise_06_test.csv
--bundle models/current`` prints a Markdown table: per learner and for the stack, the
median time to score and to explain 1 row and all the file's rows in process, then
``/explain`` through the running stack (one row: p50/p99 of sequential calls; the whole
file in one call). Run it alone on the machine: it measures time.
"""

from __future__ import annotations

import os

# The serving configuration (bin/start-inference), set before numpy loads its BLAS.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cli import as_served, median_s, read_rows
from bench.http_load import Session, Target, percentile
from bench.machine import describe
from modeling.cleaning import clean
from modeling.predictor import Predictor


def median_ms(call: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``call`` in milliseconds over ``repeat`` runs."""
    return median_s(call, repeat) * 1000


def in_process(bundle: Path, rows: list[dict[str, str]], repeat: int) -> list[str]:
    """Table lines: score and explain 1 row and every row, per learner and for the stack."""
    predictor = Predictor.from_bundle(bundle)
    columns, n = as_served(rows), len(rows)
    one = as_served(rows[:1])
    matrix, first = clean(columns, n).matrix, clean(one, 1).matrix
    lines = []
    for name, learner in predictor.stack.learners.items():
        learner.contributions(first)  # warm-up (lazy state)
        score, explain = learner.decision_function, learner.contributions
        lines.append(
            f"| {name} | {median_ms(lambda s=score: s(first), 50):.2f} "
            f"| {median_ms(lambda e=explain: e(first), 20):.2f} "
            f"| {median_ms(lambda s=score: s(matrix), repeat):.0f} "
            f"| {median_ms(lambda e=explain: e(matrix), repeat):.0f} |"
        )
    lines.append(
        f"| **stack, cleaning included** | {median_ms(lambda: predictor.predict(one, 1), 50):.2f} "
        f"| {median_ms(lambda: predictor.explain(one, 1), 20):.2f} "
        f"| {median_ms(lambda: predictor.predict(columns, n), repeat):.0f} "
        f"| {median_ms(lambda: predictor.explain(columns, n), repeat):.0f} |"
    )
    return lines


def through_api(url: str, rows: list[dict[str, str]], calls: int) -> list[str]:
    """Table lines: ``/explain`` of one row (sequential calls) and of every row at once."""
    session = Session(Target.parse(url), timeout=600)
    bodies = [json.dumps(row).encode() for row in rows[:calls]]
    times = []
    for body in [bodies[0], *bodies]:  # the first call warms the connection up
        started = time.perf_counter()
        status, _ = session.post("/explain", body)
        times.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"/explain answered {status}")
    single = times[1:]
    started = time.perf_counter()
    status, answer = session.post("/explain", json.dumps(rows).encode())
    seconds = time.perf_counter() - started
    explained = len(json.loads(answer)) if status == 200 else 0
    session.close()
    p50, p99 = (percentile(single, q) * 1e3 for q in (50, 99))
    return [
        f"| `/explain` one row, {len(single)} sequential calls | p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms |",
        f"| `/explain` of {len(rows):,} rows in one call (top 10) | {seconds:.1f} s, "
        f"status {status}, {explained:,} rows answered |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="", help="gateway base URL (empty: in process only)")
    parser.add_argument("--rows", type=Path, required=True, help="CSV of rows (x0..x99)")
    parser.add_argument("--bundle", type=Path, default=Path("models/current"))
    parser.add_argument("--limit", type=int, default=10_000, help="rows of the CSV to use")
    parser.add_argument("--calls", type=int, default=100, help="single-row /explain calls")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each whole-file timing")
    args = parser.parse_args(argv)
    rows = read_rows(args.rows)[: args.limit]
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in describe().items()) + "\n")
    print(
        f"| in process, median ms | score 1 row | explain 1 row | score {len(rows):,} "
        f"| explain {len(rows):,} |"
    )
    print("|---|---|---|---|---|")
    print("\n".join(in_process(args.bundle, rows, args.repeat)))
    if args.url:
        print("\n| through the API | figure |\n|---|---|")
        print("\n".join(through_api(args.url, rows, args.calls)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
