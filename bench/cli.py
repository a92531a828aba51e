"""``python -m bench``: measure the running stack and write docs/performance.md.

Rows are read from a CSV as strings, exactly like the exercise's curl examples (every
value a string, missing as ``""``), and serialised once before timing. Measured:

1. single-row calls at concurrency 1 on one keep-alive connection (p50, p99);
2. one call per row (10,000 for the test file) at concurrency 8, one connection per
   thread (calls/s, errors, p50, p99), with the inference server's mean requests per
   model call (dynamic batching) when its metrics URL answers;
3. one call with every row (median of 3);
4. the in-process model time for the same rows (the floor), when ``--bundle`` exists.

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
from pathlib import Path
from typing import Any

import numpy as np

from bench import http_load, machine
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


def model_floor(bundle: Path, rows: list[dict[str, str]], repeat: int = 3) -> float | None:
    """Median seconds of the in-process predictor on ``rows``, given as the server gets them."""
    if not (bundle / "manifest.json").exists():
        return None
    from modeling.predictor import load_bundle  # bench only: the gateway never imports modeling

    predictor = load_bundle(bundle)
    text_columns = {"x1", "x12", "x54", "x79", "x82", "x84"}
    columns: dict[str, Any] = {}
    for name in rows[0]:
        values = [row[name] for row in rows]
        if name in text_columns:
            columns[name] = np.array([v.encode() for v in values], dtype=object)
        else:
            columns[name] = np.array([float(v) if v else np.nan for v in values])
    predictor.predict(columns, len(rows))  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        predictor.predict(columns, len(rows))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(args: argparse.Namespace) -> str:
    target = Target.parse(args.url)
    rows = read_rows(args.rows)
    bodies = [json.dumps(row).encode() for row in rows]
    print(f"bench: {len(rows)} rows from {args.rows}; target {args.url}")

    single = summary(http_load.sequential(target, bodies, args.single_calls, warmup=100))
    print(f"single c=1: p50 {ms(single['p50'])} ms, p99 {ms(single['p99'])} ms")

    gateway_metrics = args.url.rstrip("/") + "/metrics"
    before = scrape(args.inference_metrics, gateway_metrics)
    samples, wall = http_load.concurrent(target, bodies, args.concurrency)
    after = scrape(args.inference_metrics, gateway_metrics)
    busy = summary(samples)
    busy["rate"] = len(samples) / wall
    print(f"single c={args.concurrency}: {busy['rate']:.0f} calls/s, {busy['errors']} errors")
    coalesced = (
        per_call(before, after, "gateway_coalesced_requests"),
        per_call(before, after, "inference_batch_requests"),
    )

    batch_body = json.dumps(rows).encode()
    batch = http_load.batch_calls(target, batch_body, 3, len(rows))
    batch_median = statistics.median(s.seconds for s in batch)
    batch_errors = sum(1 for s in batch if s.status != 200)
    print(f"one {len(rows)}-row call: median {ms(batch_median)} ms ({batch_errors} errors)")

    try:
        floor = model_floor(args.bundle, rows)
    except Exception as error:  # the HTTP figures are still worth writing
        print(f"bench: no in-process floor ({error})")
        floor = None
    if floor is not None:
        print(f"in-process model, {len(rows)} rows: {ms(floor)} ms")
    return report(
        args,
        n=len(rows),
        single=single,
        busy=busy,
        coalesced=coalesced,
        batch_median=batch_median,
        batch_errors=batch_errors,
        floor=floor,
        batch_bytes=len(batch_body),
    )


def report(
    args: argparse.Namespace,
    *,
    n: int,
    single: dict[str, Any],
    busy: dict[str, Any],
    coalesced: tuple[float | None, float | None],
    batch_median: float,
    batch_errors: int,
    floor: float | None,
    batch_bytes: int,
) -> str:
    facts = machine.describe()
    lines = [
        "# API performance",
        "",
        "Generated by `python -m bench` (bench/cli.py); rerun it to refresh. Gateway, inference",
        "server and load generator all run on the machine below. Rows are sent as strings, like",
        "the exercise's curl examples.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        f"| command | `python -m bench --url {args.url} --rows {args.rows.name}` |",
        *([f"| setup | {args.note} |"] if args.note else []),
        "",
        "| measure | result |",
        "|---|---|",
        f"| single-row calls, concurrency 1, keep-alive ({single['calls']} calls) "
        f"| p50 **{ms(single['p50'])} ms**, p90 {ms(single['p90'])} ms, "
        f"p99 **{ms(single['p99'])} ms**, errors {single['errors']} |",
        f"| {busy['calls']} single-row calls, concurrency {args.concurrency} "
        f"| **{busy['rate']:.0f} calls/s**, errors **{busy['errors']}**, "
        f"p50 {ms(busy['p50'])} ms, p99 {ms(busy['p99'])} ms |",
    ]
    gateway_merge, server_merge = coalesced
    if gateway_merge is not None:
        lines.append(
            f"| batching in that run: gateway | {gateway_merge:.2f} requests per ModelInfer call |"
        )
    if server_merge is not None:
        lines.append(
            f"| batching in that run: inference server | {server_merge:.2f} ModelInfer calls "
            "per model call |"
        )
    lines.append(
        f"| one {n}-row call ({batch_bytes / 1e6:.1f} MB body), median of 3 "
        f"| **{ms(batch_median)} ms** ({1000 * batch_median / n * 1000:.2f} ms per 1,000 rows), "
        f"errors {batch_errors} |"
    )
    if floor is not None:
        lines.append(
            f"| in-process model on the same {n} rows (the floor), median of 3 "
            f"| {ms(floor)} ms; the API call is {batch_median / floor:.2f}x the floor |"
        )
    return "\n".join(lines) + "\n"


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
    return parser  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    text = soak(args) if args.soak else run(args)
    out = args.out or ROOT / "docs" / ("soak.md" if args.soak else "performance.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"bench: wrote {out}")
    return 0
