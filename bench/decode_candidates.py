"""Candidates for the gateway's typed decode, timed on a 10,000-row body and on one row.

``python -m bench.decode_candidates --rows exercise_06_test.csv`` prints a Markdown table:
the value-by-value path alone (``gateway.convert``, what every irregular body takes),
msgspec's typed decode (``gateway.decode``, what the gateway runs) and polars' columnar
``read_json`` with a cast of every numeric column. Each candidate's numeric columns must
equal the value-by-value path's before it is timed. Median of repeated runs, in process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.cli import read_rows
from gateway.convert import InputSpec, parse_body, rows_to_batch
from gateway.decode import RowDecoder
from modeling.schema import COLUMNS, NUMERIC_COLUMNS

NUMERIC = frozenset(NUMERIC_COLUMNS)
SPECS = tuple(InputSpec(c, "FP64" if c in NUMERIC else "BYTES") for c in COLUMNS)


def value_by_value(body: bytes) -> list[Any]:
    return list(rows_to_batch(parse_body(body), SPECS).columns)


DECODER = RowDecoder(SPECS)


def typed(body: bytes) -> list[Any]:
    batch = DECODER.batch(body, 1024)
    assert batch is not None, "the typed decode declined a regular body"
    return list(batch.columns)


def columnar(body: bytes) -> list[Any]:
    import polars as pl

    frame = pl.read_json(body, schema=dict.fromkeys(COLUMNS, pl.String))
    return [
        frame[c].str.strip_chars().cast(pl.Float64, strict=False).to_numpy()
        if c in NUMERIC
        else [v.encode() for v in frame[c].fill_null("").to_list()]
        for c in COLUMNS
    ]


def median_ms(decode: Callable[[bytes], object], body: bytes, repeat: int) -> float:
    decode(body)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        decode(body)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decode_candidates")
    parser.add_argument("--rows", type=Path, required=True, help="CSV of rows (x0..x99)")
    args = parser.parse_args(argv)
    rows = read_rows(args.rows)
    bodies = {"all rows": json.dumps(rows).encode(), "one row": json.dumps(rows[0]).encode()}
    reference = value_by_value(bodies["all rows"])
    candidates = {
        "value by value (orjson, column-wise; the fallback)": value_by_value,
        "msgspec typed decode (the gateway's path)": typed,
        "polars read_json + cast": columnar,
    }
    print(f"| candidate | {len(rows)} rows ({len(bodies['all rows']) / 1e6:.1f} MB) | one row |")
    print("|---|---|---|")
    for name, decode in candidates.items():
        try:
            got = decode(bodies["all rows"])
        except ImportError as missing:
            print(f"| {name} | not installed ({missing.name}) | |")
            continue
        for j, column in enumerate(COLUMNS):
            if column in NUMERIC:
                assert np.array_equal(got[j], reference[j], equal_nan=True), (name, column)
        many = median_ms(decode, bodies["all rows"], 5)
        one = median_ms(decode, bodies["one row"], 2000) * 1000
        print(f"| {name} | {many:.0f} ms | {one:.0f} µs |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
