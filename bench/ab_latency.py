"""Single-row ``/predict`` calls to two running stacks, measured in alternating rounds.

``python -m bench.ab_latency --a http://localhost:5001 --b http://localhost:5011
--rows exercise_06_test.csv`` sends the same single-row calls (keep-alive) to A, then B,
then A... and prints each round's p50/p99, calls/s and, given each stack's inference
port (``--a-inference 8001``), its CPU per call per process, then the median of the
rounds: a change's cost is read beside the drift of a shared machine, not confounded
with it. ``--concurrency 8`` measures throughput (one connection per thread) instead of
latency one call after another. Run it alone on the machine: it measures time.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bench.cli import read_rows
from bench.cpu import StackProcesses, per_call
from bench.http_load import Sample, Target, concurrent, percentile, sequential
from bench.machine import describe

WARMUP = 200
"""Calls before each sequential round's timed ones."""


def _round(
    target: Target, bodies: list[bytes], concurrency: int
) -> tuple[list[Sample], float, int]:
    """One round's timed samples, their wall seconds, and every call made (warm-up too)."""
    if concurrency == 1:
        samples = sequential(target, bodies, len(bodies), warmup=WARMUP)
        return samples, sum(s.seconds for s in samples), len(samples) + WARMUP
    samples, wall = concurrent(target, bodies, concurrency)
    return samples, wall, len(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="base URL of stack A (the baseline)")
    parser.add_argument("--b", required=True, help="base URL of stack B (the change)")
    parser.add_argument("--a-inference", type=int, help="inference gRPC port of stack A")
    parser.add_argument("--b-inference", type=int, help="inference gRPC port of stack B")
    parser.add_argument("--rows", type=Path, required=True, help="CSV of rows (x0..x99)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per stack")
    parser.add_argument("--concurrency", type=int, default=1, help="client threads")
    args = parser.parse_args(argv)
    rows = read_rows(args.rows)
    bodies = [json.dumps(rows[i % len(rows)]).encode() for i in range(args.calls)]
    stacks = {"A": (args.a, args.a_inference), "B": (args.b, args.b_inference)}
    p50s: dict[str, list[float]] = {"A": [], "B": []}
    rates: dict[str, list[float]] = {"A": [], "B": []}
    cpus: dict[str, list[float]] = {"A": [], "B": []}
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in describe().items()) + "\n")
    print(f"Concurrency {args.concurrency}, {args.calls} calls a round.\n")
    print(
        "| round | stack | p50 ms | p99 ms | calls/s | errors | CPU ms/call: stack "
        "(nginx / gateway / inference) | load generator |\n|---|---|---|---|---|---|---|---|"
    )
    for round_ in range(args.rounds):
        for name, (url, inference_port) in stacks.items():
            target = Target.parse(url)
            processes = StackProcesses.find(target.port, inference_port)
            before = processes.snapshot()
            samples, wall, calls = _round(target, bodies, args.concurrency)
            cpu = per_call(before, processes.snapshot(), calls)
            seconds = [s.seconds for s in samples if s.status == 200]
            p50s[name].append(percentile(seconds, 50) * 1000)
            rates[name].append(len(samples) / wall)
            cpus[name].append(cpu["stack"] * 1000)
            roles = " / ".join(
                f"{cpu.get(role, 0.0) * 1000:.2f}" for role in ("nginx", "gateway", "inference")
            )
            print(
                f"| {round_ + 1} | {name} | {p50s[name][-1]:.3f} "
                f"| {percentile(seconds, 99) * 1000:.3f} | {rates[name][-1]:.0f} "
                f"| {sum(s.status != 200 for s in samples)} | {cpus[name][-1]:.2f} ({roles}) "
                f"| {cpu['load generator'] * 1000:.2f} |"
            )
    print("\nMedians over the rounds:")
    for label, values in (("p50 ms", p50s), ("calls/s", rates), ("stack CPU ms/call", cpus)):
        a, b = (statistics.median(values[name]) for name in ("A", "B"))
        print(f"- {label}: A {a:.3f}, B {b:.3f}, B/A {b / a:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
