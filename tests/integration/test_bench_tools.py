"""The bench tools that read a running stack: bench.row_walk and bench.ab_latency."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from bench import ab_latency, row_walk
from modeling.schema import COLUMNS
from tests.integration.conftest import ManagedProcess
from tests.integration.gateway_helpers import Gateways


def test_the_readme_row_takes_the_typed_decode_and_one_codec(
    inference_server: ManagedProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"127.0.0.1:{inference_server.ports['grpc']}"
    functions = row_walk.walk(target)
    names = [name for _, name in functions]
    assert "RowDecoder.batch" in names
    assert "rows_to_batch" not in names  # the value-by-value path is not taken
    assert ("proto/codec.py", "encode_request") in functions
    assert functions[-1] == ("gateway/metrics.py", "observe_request")  # the last hop
    assert row_walk.main(["--target", target]) == 0
    assert f"{len(functions)} functions in" in capsys.readouterr().out


def test_ab_rounds_report_each_stacks_cpu_per_call(
    inference_server: ManagedProcess,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = tmp_path / "rows.csv"
    with rows.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerow(["1.5" if c != "x1" else "wed" for c in COLUMNS])
    gateways = Gateways(tmp_path)
    try:
        grpc = inference_server.ports["grpc"]
        url = f"http://127.0.0.1:{gateways.start(f'127.0.0.1:{grpc}').ports['http']}"
        argv = ["--a", url, "--b", url, "--a-inference", str(grpc), "--rows", str(rows)]
        assert ab_latency.main([*argv, "--calls", "20", "--rounds", "1", "--concurrency", "4"]) == 0
    finally:
        gateways.stop_all()
    out = capsys.readouterr().out
    line = re.search(
        r"\| 1 \| A \| .*? \| (\d+) \| ([\d.]+) \(([\d.]+) / ([\d.]+) / ([\d.]+)\)", out
    )
    assert line is not None, out
    errors, stack, nginx, gateway, inference = line.groups()
    assert errors == "0"
    assert float(gateway) > 0  # each role found and charged
    assert float(inference) > 0
    assert float(stack) == pytest.approx(float(nginx) + float(gateway) + float(inference), abs=0.02)
    assert "calls/s: A" in out
