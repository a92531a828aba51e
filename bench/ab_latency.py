"""Single-row ``/predict`` latency of two running stacks, measured in alternating rounds.

``python -m bench.ab_latency --a http://localhost:5001 --b http://localhost:5011
--rows exercise_06_test.csv`` sends the same single-row calls (concurrency 1, keep-alive)
to A, then B, then A... and prints each round's p50/p99 and the median of the rounds, so
that a change's cost is read beside the drift of a shared machine, not confounded with it.
Run it alone on the machine: it measures time.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bench.cli import read_rows
from bench.http_load import Target, percentile, sequential
from bench.machine import describe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="base URL of stack A (the baseline)")
    parser.add_argument("--b", required=True, help="base URL of stack B (the change)")
    parser.add_argument("--rows", type=Path, required=True, help="CSV of rows (x0..x99)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per stack")
    args = parser.parse_args(argv)
    bodies = [json.dumps(row).encode() for row in read_rows(args.rows)[: args.calls]]
    p50s: dict[str, list[float]] = {"A": [], "B": []}
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in describe().items()) + "\n")
    print("| round | stack | p50 ms | p99 ms | errors |\n|---|---|---|---|---|")
    for round_ in range(args.rounds):
        for name, url in (("A", args.a), ("B", args.b)):
            samples = sequential(Target.parse(url), bodies, args.calls, warmup=200)
            seconds = [s.seconds for s in samples if s.status == 200]
            p50s[name].append(percentile(seconds, 50) * 1000)
            errors = sum(s.status != 200 for s in samples)
            print(
                f"| {round_ + 1} | {name} | {p50s[name][-1]:.3f} "
                f"| {percentile(seconds, 99) * 1000:.3f} | {errors} |"
            )
    a, b = (statistics.median(p50s[name]) for name in ("A", "B"))
    print(f"\nMedian p50 over the rounds: A {a:.3f} ms, B {b:.3f} ms, B/A {b / a:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
