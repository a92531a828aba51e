"""``python -m bench``: measure the running stack and write docs/performance.md.

Rows are read from a CSV as strings, exactly like the exercise's curl examples (every
value a string, missing as ``""``), and serialised once before timing. Measured:

1. single-row calls at concurrency 1 on one keep-alive connection (p50, p99);
2. one call per row (10,000 for the test file) at concurrency 8, one connection per
   thread (calls/s, errors, p50, p99), with the inference server's mean requests per
   model call (dynamic batching) when its metrics URL answers;
3. one call with every row (median of 3);
4. the in-process model time for the same rows (the floor), when ``--bundle`` exists;

and, for runs 1 to 3, the CPU per call of every process of the stack (nginx, gateway,
inference server) and of the load generator itself (:mod:`bench.cpu`).

``--slow-clients`` and ``--memory`` run the edge modes of :mod:`bench.edge` instead.

``--soak SECONDS`` instead runs a mix of single and 100-row calls at concurrency 8 and
reports latency per 30 s window and the resident memory of both servers at start and end.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import cpu, http_load, machine
from bench.http_load import Sample, Target, percentile

ROOT = Path(__file__).resolve().parents[1]


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV as dictionaries of strings (missing values are ``""``)."""
    with path.open(newline="") as handle:
        return [dict(row) for row in csv.DictReader(handle)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def summary(samples: list[Sample]) -> dict[str, Any]:
    ok = [s.seconds for s in samples if s.status == 200]
    return {
        "calls": len(samples),
        "errors": sum(1 for s in samples if s.status != 200),
        "p50": percentile(ok, 50),
        "p90": percentile(ok, 90),
        "p99": percentile(ok, 99),
        "max": max(ok, default=float("nan")),
    }


BATCHING = ("inference_batch_requests", "gateway_coalesced_requests")
"""Histograms of requests per model call (server) and per ModelInfer call (gateway)."""


def scrape(*urls: str | None) -> dict[str, float]:
    """``_sum`` and ``_count`` of the :data:`BATCHING` histograms found at ``urls``."""
    found: dict[str, float] = {}
    for url in urls:
        if not url:
            continue
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            continue
        for name in BATCHING:
            for suffix in ("_sum", "_count"):
                match = re.search(rf"^{name}{suffix} ([0-9.e+]+)$", text, re.MULTILINE)
                if match:
                    found[name + suffix] = float(match.group(1))
    return found


def per_call(before: dict[str, float], after: dict[str, float], name: str) -> float | None:
    """Mean requests per call of histogram ``name`` between two scrapes."""
    try:
        calls = after[name + "_count"] - before[name + "_count"]
        requests = after[name + "_sum"] - before[name + "_sum"]
    except KeyError:
        return None
    return requests / calls if calls else None


def as_served(rows: list[dict[str, str]]) -> dict[str, Any]:
    """The rows' columns as the inference server receives them (floats, UTF-8 text)."""
    text_columns = {"x1", "x12", "x54", "x79", "x82", "x84"}
    columns: dict[str, Any] = {}
    for name in rows[0]:
        values = [row[name] for row in rows]
        if name in text_columns:
            columns[name] = np.array([v.encode() for v in values], dtype=object)
        else:
            columns[name] = np.array([float(v) if v else np.nan for v in values])
    return columns


def median_s(call: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``call`` in seconds over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def model_floor(bundle: Path, rows: list[dict[str, str]]) -> dict[str, Any] | None:
    """The in-process predictor on the rows: median seconds for all and for one, answers."""
    if not (bundle / "manifest.json").exists():
        return None
    from modeling.predictor import Predictor  # bench only: the gateway never imports modeling

    predictor = Predictor.from_bundle(bundle)
    columns = as_served(rows)
    one = as_served(rows[:1])
    predictor.predict(columns, len(rows))  # warm-up
    return {
        "all": median_s(lambda: predictor.predict(columns, len(rows)), 5),
        "one": median_s(lambda: predictor.predict(one, 1), 500),
        "answers": predictor.predict(columns, len(rows)).probability,
    }


def measure(
    url: str, rows: list[dict[str, str]], args: argparse.Namespace, inference_port: int | None
) -> dict[str, Any]:
    """Single-row latency, concurrent throughput and one whole-file call, each with its CPU.

    The CPU per call is that of the processes behind ``url`` and ``inference_port``.
    """
    target = Target.parse(url)
    processes = cpu.StackProcesses.find(target.port, inference_port)
    print(f"{url} processes: {processes.roles}")
    bodies = [json.dumps(row).encode() for row in rows]
    warmup = 100
    started = processes.snapshot()
    single = summary(http_load.sequential(target, bodies, args.single_calls, warmup=warmup))
    single["cpu"] = cpu.per_call(started, processes.snapshot(), args.single_calls + warmup)
    print(f"{url} single c=1: p50 {ms(single['p50'])} ms, p99 {ms(single['p99'])} ms")
    before = scrape(args.inference_metrics, url.rstrip("/") + "/metrics")
    started = processes.snapshot()
    samples, wall = http_load.concurrent(target, bodies, args.concurrency)
    spent = processes.snapshot()
    after = scrape(args.inference_metrics, url.rstrip("/") + "/metrics")
    busy = summary(samples)
    busy["rate"] = len(samples) / wall
    busy["cpu"] = cpu.per_call(started, spent, len(samples))
    print(f"{url} single c={args.concurrency}: {busy['rate']:.0f} calls/s, {busy['errors']} errors")
    batch_body = json.dumps(rows).encode()
    started = processes.snapshot()
    batch = http_load.batch_calls(target, batch_body, 3, len(rows))
    batch_cpu = cpu.per_call(started, processes.snapshot(), len(batch))
    batch_median = statistics.median(s.seconds for s in batch)
    print(f"{url} one {len(rows)}-row call: median {ms(batch_median)} ms")
    answer = json.loads(http_load.Session(target, timeout=120).post("/predict", batch_body)[1])
    return {
        "single": single,
        "busy": busy,
        "batch": batch_median,
        "batch_cpu": batch_cpu,
        "batch_errors": sum(1 for s in batch if s.status != 200),
        "batch_mb": len(batch_body) / 1e6,
        "coalesced": (
            per_call(before, after, "gateway_coalesced_requests"),
            per_call(before, after, "inference_batch_requests"),
        ),
        "answers": np.array([item["probability"] for item in answer]),
    }


def run(args: argparse.Namespace) -> str:
    rows = read_rows(args.rows)
    print(f"bench: {len(rows)} rows from {args.rows}; target {args.url}")
    stack = measure(args.url, rows, args, args.inference_port)
    naive = measure(args.naive_url, rows, args, None) if args.naive_url else None
    try:
        floor = model_floor(args.bundle, rows)
    except Exception as error:  # the HTTP figures are still worth writing
        print(f"bench: no in-process floor ({error})")
        floor = None
    return report(args, len(rows), stack, naive, floor)


ANALYSIS = "<!-- analysis: kept when the bench rewrites the tables above -->"

GOALS = {
    "p50": "≤ 2.0 ms",
    "p99": "≤ 5 ms",
    "rate": "≥ 1,500 calls/s, 0 errors",
    "batch": "≤ 250 ms and ≤ 1.5x the floor",
    "one": "≤ 0.4 ms",
    "all": "≤ 100 ms",
}
"""Issue 8's goals, shown beside each figure."""


def report(
    args: argparse.Namespace,
    n: int,
    stack: dict[str, Any],
    naive: dict[str, Any] | None,
    floor: dict[str, Any] | None,
) -> str:
    facts = machine.describe()
    load = machine.load_average()
    single, busy = stack["single"], stack["busy"]

    def figures(measured: dict[str, Any]) -> dict[str, float]:
        return {
            "p50": measured["single"]["p50"],
            "p99": measured["single"]["p99"],
            "rate": measured["busy"]["rate"],
            "batch": measured["batch"],
        }

    ours = figures(stack)
    theirs = figures(naive) if naive is not None else {}

    def versus(key: str) -> str:
        """The naive server's figure and how many times better the stack does."""
        if key not in theirs:
            return " | "
        if key == "rate":
            return f"{theirs[key]:.0f} calls/s | **{ours[key] / theirs[key]:.1f}x**"
        return f"{ms(theirs[key])} ms | **{theirs[key] / ours[key]:.1f}x**"

    header = "| measure | this stack | goal | naive server | stack vs naive |"
    lines = [
        "# API performance",
        "",
        "Generated by `python -m bench` (bench/cli.py); rerun it to refresh. Gateway, inference",
        "server, the naive server (bench/naive_server.py: Flask's own server, json.loads, a",
        "pandas DataFrame and one model call per request) and the load generator all run on",
        "the machine below, one after another. Rows are sent as strings, like the exercise's",
        "curl examples.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        f"| load average before the run | {load} |",
        f"| command | `python -m bench --url {args.url} --rows {args.rows.name}"
        + (f" --naive-url {args.naive_url}" if args.naive_url else "")
        + "` |",
        *([f"| setup | {args.note} |"] if args.note else []),
        "",
        header,
        "|---|---|---|---|---|",
        f"| single-row call, c=1, keep-alive: p50 | **{ms(single['p50'])} ms** | {GOALS['p50']} "
        f"| {versus('p50')} |",
        f"| single-row call, c=1, keep-alive: p99 | **{ms(single['p99'])} ms** | {GOALS['p99']} "
        f"| {versus('p99')} |",
        f"| {busy['calls']} single-row calls, c={args.concurrency} "
        f"| **{busy['rate']:.0f} calls/s**, {busy['errors']} errors | {GOALS['rate']} "
        f"| {versus('rate')} |",
        f"| one {n}-row call ({stack['batch_mb']:.1f} MB of JSON strings), median of 3 "
        f"| **{ms(stack['batch'])} ms**"
        + (f" ({stack['batch'] / floor['all']:.2f}x the floor)" if floor else "")
        + f" | {GOALS['batch']} | {versus('batch')} |",
    ]
    if floor is not None:
        lines += [
            f"| in-process model, 1 row (median of 500) | **{ms(floor['one'])} ms** "
            f"| {GOALS['one']} | | |",
            f"| in-process model, {n} rows (median of 5; the floor) | **{ms(floor['all'])} ms** "
            f"| {GOALS['all']} | | |",
        ]
    lines += ["", *cpu_table(args.concurrency, n, stack, naive)]
    gateway_merge, server_merge = stack["coalesced"]
    lines.append("")
    if gateway_merge is not None:
        lines.append(
            f"Gateway batching in the c={args.concurrency} run: {gateway_merge:.2f} "
            "requests per ModelInfer call."
        )
    if server_merge is not None:
        lines.append(
            f"Server batching in the c={args.concurrency} run: {server_merge:.2f} "
            "ModelInfer calls per model call."
        )
    if floor is not None:
        for name, measured in (("this stack", stack), ("the naive server", naive)):
            if measured is None:
                continue
            delta = float(np.max(np.abs(measured["answers"] - floor["answers"])))
            lines.append(
                f"Answers of {name} for all {n} rows against the in-process predictor: "
                f"largest difference {delta:.1e}."
            )
    return "\n".join(lines) + "\n"


CPU_GOALS = {"single": "≤ 2.0 ms", "busy": "≤ 1.0 ms"}
"""Issue 16's goals for the stack's CPU per single-row call, summed over its processes."""


def cpu_table(
    concurrency: int, n: int, stack: dict[str, Any], naive: dict[str, Any] | None
) -> list[str]:
    """CPU per call of each process in each run, in ms (from /proc, user + system)."""
    roles = ["nginx", "gateway", "inference"]
    runs = [
        ("single-row calls, c=1", "single", lambda m: m["single"]["cpu"]),
        (f"single-row calls, c={concurrency}", "busy", lambda m: m["busy"]["cpu"]),
        (f"one {n}-row call", "batch", lambda m: m["batch_cpu"]),
    ]
    lines = [
        "CPU per call in ms, each process of the stack (user + system from `/proc/PID/stat`, "
        "all threads), and the load generator's own as the machine's yardstick:",
        "",
        "| run | server | " + " | ".join(roles) + " | **stack** | goal | load generator |",
        "|---|---|" + "---|" * (len(roles) + 3),
    ]
    for label, key, of in runs:
        for name, measured in (("this stack", stack), ("naive", naive)):
            if measured is None:
                continue
            spent = of(measured)
            cells = [ms(spent[role]) if role in spent else "" for role in roles]
            if name == "naive":  # one process: Flask's server and the model together
                cells = ["", "", ""]
            goal = CPU_GOALS.get(key, "") if name == "this stack" else ""
            lines.append(
                f"| {label} | {name} | " + " | ".join(cells) + f" | **{ms(spent['stack'])}** "
                f"| {goal} | {ms(spent[cpu.LOAD_GENERATOR])} |"
            )
    return lines


def soak(args: argparse.Namespace) -> str:
    from bench.soak import run_soak  # only for --soak

    return run_soak(args, read_rows(args.rows))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://localhost:5001", help="gateway base URL")
    parser.add_argument("--rows", type=Path, required=True, help="CSV of rows (x0..x99)")
    parser.add_argument(
        "--bundle",
        type=Path,
        default=ROOT / "models" / "current",
        help="bundle for the in-process floor (skipped when absent)",
    )
    parser.add_argument(
        "--inference-metrics",
        default="http://localhost:8002/metrics",
        help="inference server metrics URL ('' to skip)",
    )
    parser.add_argument("--naive-url", default="", help="the naive server to compare with")
    parser.add_argument("--single-calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--note", default="", help="setup note for the report (workers, ...)")
    parser.add_argument(
        "--out",
        type=Path,
        help="Markdown output (default docs/performance.md, docs/soak.md with --soak)",
    )
    parser.add_argument(
        "--soak", type=float, metavar="SECONDS", help="soak mode: mixed load for this long"
    )
    parser.add_argument("--window", type=float, default=30.0, help="soak report window (s)")
    parser.add_argument("--soak-warmup", type=float, default=15.0, help="soak warm-up (s)")
    parser.add_argument("--gateway-pids", default="", help="comma-separated (default: by port)")
    parser.add_argument("--inference-pids", default="", help="comma-separated (default: by port)")
    parser.add_argument("--inference-port", type=int, default=8001)
    parser.add_argument(
        "--slow-clients",
        action="store_true",
        help="edge mode: a client's latency with idle and slow connections open",
    )
    parser.add_argument("--idle", type=int, default=200, help="idle connections (--slow-clients)")
    parser.add_argument("--slow", type=int, default=50, help="slow-header connections")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="edge mode: memory of each side under concurrent whole-file calls",
    )
    parser.add_argument("--rounds", type=int, default=3, help="calls per client (--memory)")
    return parser  # fmt: skip


def edge(args: argparse.Namespace) -> str:
    from bench import edge as modes  # only for the edge modes

    rows = read_rows(args.rows)
    if args.slow_clients:
        return modes.run_slow_clients(args, [json.dumps(row).encode() for row in rows])
    return modes.run_memory(args, json.dumps(rows).encode(), len(rows))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.slow_clients or args.memory:
        text = edge(args)
        print(text)
        if args.out:
            args.out.write_text(text)
        return 0
    text = soak(args) if args.soak else run(args)
    out = args.out or ROOT / "docs" / ("soak.md" if args.soak else "performance.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and ANALYSIS in (kept := out.read_text()):
        text += "\n" + kept[kept.index(ANALYSIS) :]  # the written analysis stays
    out.write_text(text)
    print(f"bench: wrote {out}")
    return 0
