"""Roll a new version in and out of a running stack under load; count what went wrong.

``python -m bench.rollout --rows exercise_06_test.csv --repository models/scoring --to 2``

Against a stack started with ``./run_api.sh --local`` (serving version A, the one /readyz
names): single-row ``/predict`` calls from ``--concurrency`` threads run throughout while
the model is rolled forward to ``--to`` and back to A, ``--cycles`` times, through the
repository extension (RepositoryModelLoad on ``--inference``); then a load of a tampered
copy of ``--to`` (sha256 mismatch) that must be refused while A answers on. Each answer
is checked: 200, one version in its header, and its probability equal to that version's
in-process predictor's for that row. Reported: failed calls, mixed answers, the time from
each load call to the first answer of the new version, the p99 before and during the
swaps, and the inference server's memory peak (VmHWM) against its resident memory before.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from bench.cli import as_served, read_rows
from bench.http_load import HEADERS, Target, percentile
from bench.machine import describe, listening_pids, peak_rss_mib, rss_mib
from modeling.repository import Repository
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc

VERSION_HEADER = "X-Model-Version"
SETTLE_S = 5.0
"""Seconds of load between two steps (the before-swap window is twice as long)."""
SWAP_WINDOW_S = 2.0
"""Calls started from a load call until this long after it returned count as during it."""


@dataclass
class Answer:
    """One call: its start and end (monotonic s), status, version header and verdict."""

    started: float
    ended: float
    status: int
    version: str
    exact: bool


class Traffic:
    """Single-row /predict calls from several threads, each checked against its version."""

    def __init__(
        self, target: Target, rows: list[dict[str, str]], expected: dict[str, np.ndarray]
    ) -> None:
        self.target = target
        self.bodies = [json.dumps(row).encode() for row in rows]
        self.expected = expected
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def work(self, seed: int) -> None:
        connection = http.client.HTTPConnection(self.target.host, self.target.port, timeout=30)
        for index in itertools.count(seed * 7919):
            if self.stop.is_set():
                break
            row = index % len(self.bodies)
            started = time.monotonic()
            try:
                connection.request("POST", "/predict", self.bodies[row], HEADERS)
                response = connection.getresponse()
                body, status = response.read(), response.status
                version = response.getheader(VERSION_HEADER) or ""
            except (OSError, http.client.HTTPException):
                connection.close()
                body, status, version = b"", 0, ""
            exact = False
            if status == 200 and version in self.expected:
                probability = json.loads(body)[0]["probability"]
                exact = abs(probability - self.expected[version][row]) <= 1e-9
            with self.lock:
                self.answers.append(Answer(started, time.monotonic(), status, version, exact))
        connection.close()

    def first_of(self, version: str, after: float) -> float | None:
        """When the first call started after ``after`` was answered by ``version``."""
        with self.lock:
            ends = [a.ended for a in self.answers if a.started >= after and a.version == version]
        return min(ends, default=None)


def load(stub: pb_grpc.GRPCInferenceServiceStub, version: str) -> tuple[float, float, str]:
    """RepositoryModelLoad ``version``: (start, end, refusal details or "")."""
    request = pb.RepositoryModelLoadRequest()
    request.parameters["version"].string_param = version
    started = time.monotonic()
    try:
        stub.RepositoryModelLoad(request, timeout=300)
    except grpc.RpcError as error:
        return started, time.monotonic(), f"{error.code().name}: {error.details()}"
    return started, time.monotonic(), ""


def tampered_copy(repository: Repository, version: str) -> str:
    """A new version: a copy of ``version`` with one learner file changed (a bad hash)."""
    bad = repository.next_version()
    target = repository.path(bad)
    shutil.copytree(repository.path(version), target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = bad
    (target / "manifest.json").write_text(json.dumps(manifest))
    with (target / "lightgbm.txt").open("a") as stream:
        stream.write("\n")
    return bad


def run(args: argparse.Namespace) -> str:
    """Measure and return the report (Markdown)."""
    target = Target.parse(args.url)
    connection = http.client.HTTPConnection(target.host, target.port, timeout=10)
    connection.request("GET", "/readyz")
    serving = json.loads(connection.getresponse().read())["version"]
    connection.close()
    repository = Repository(args.repository)
    rows = [  # a training file's target is not an input
        {k: v for k, v in row.items() if k != "y"} for row in read_rows(args.rows)
    ][: args.limit or None]
    columns = as_served(rows)
    expected = {
        v: repository.load(v).predict(columns, len(rows)).probability for v in (serving, args.to)
    }
    (pid,) = listening_pids(args.inference_port)
    channel = grpc.insecure_channel(f"127.0.0.1:{args.inference_port}")
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    traffic = Traffic(target, rows, expected)
    threads = [
        threading.Thread(target=traffic.work, args=(i,), daemon=True)
        for i in range(args.concurrency)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(2 * SETTLE_S)
    before_rss = rss_mib([pid])
    before_end = time.monotonic()
    swaps: list[tuple[str, float, float, float | None, str]] = []
    for _ in range(args.cycles):
        for version in (args.to, serving):
            started, ended, refused = load(stub, version)
            time.sleep(SETTLE_S)
            first = traffic.first_of(version, started)
            swaps.append((version, started, ended, first, refused))
    bad = tampered_copy(repository, args.to)
    try:
        started, ended, refused = load(stub, bad)
        time.sleep(SETTLE_S)
    finally:
        shutil.rmtree(repository.path(bad))
    traffic.stop.set()
    for thread in threads:
        thread.join(60)
    channel.close()
    measured = Measured(
        traffic.answers, began, before_end, swaps, (started, ended, refused), serving
    )
    return _report(args, measured, before_rss, peak_rss_mib([pid]))


def _p99_ms(answers: list[Answer]) -> float:
    return percentile([a.ended - a.started for a in answers if a.status == 200], 99) * 1000


@dataclass
class Measured:
    """Every answer and when each step ran (monotonic s)."""

    answers: list[Answer]
    began: float
    before_end: float
    swaps: list[tuple[str, float, float, float | None, str]]
    """(version, load call start, its end, first answer of the version, refusal)"""
    bad_load: tuple[float, float, str]
    serving: str


def _report(args: argparse.Namespace, measured: Measured, before_rss: float, peak: float) -> str:
    answers, began, before_end = measured.answers, measured.began, measured.before_end
    swaps, bad_load, serving = measured.swaps, measured.bad_load, measured.serving
    failed = [a for a in answers if a.status != 200]
    mixed = [a for a in answers if a.status == 200 and not a.exact]
    before = [a for a in answers if began + 2 <= a.started < before_end]
    during = [a for _, s, e, _, _ in swaps for a in answers if s <= a.started <= e + SWAP_WINDOW_S]
    bad_start, bad_end, refused = bad_load
    after_bad = [a for a in answers if bad_start <= a.started <= bad_end + SETTLE_S]
    lines = [
        "| measure | value |",
        "|---|---|",
        f"| calls (concurrency {args.concurrency}, single rows) | {len(answers)} |",
        f"| failed calls (not 200) | {len(failed)} |",
        f"| answers not equal to their version's in-process predictor | {len(mixed)} |",
        f"| p99 before the swaps | {_p99_ms(before):.1f} ms |",
        f"| p99 during the swaps (load call to {SWAP_WINDOW_S:.0f} s after) | "
        f"{_p99_ms(during):.1f} ms |",
        f"| inference server RSS before / peak (VmHWM) | {before_rss:.0f} / {peak:.0f} MiB |",
    ]
    for version, started, ended, first, refused_swap in swaps:
        to_first = f"{(first - started) * 1000:.0f} ms" if first is not None else "never"
        lines.append(
            f"| load of version {version}: call / first answer of {version} | "
            f"{(ended - started) * 1000:.0f} ms / {to_first}"
            + (f" (REFUSED: {refused_swap})" if refused_swap else "")
            + " |"
        )
    old = sum(1 for a in after_bad if a.version == serving and a.exact)
    lines += [
        f"| tampered version: load refused | {'yes: ' + refused[:120] if refused else 'NO'} |",
        f"| calls during and after it: failed / answered by version {serving} | "
        f"{sum(1 for a in after_bad if a.status != 200)} / {old} of {len(after_bad)} |",
    ]
    header = (
        f"Rollout under load: {args.cycles} x (version {args.to}, then {serving}); "
        f"machine: {'; '.join(f'{k} {v}' for k, v in describe().items())}\n\n"
    )
    return header + "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.rollout", description=__doc__)
    parser.add_argument("--url", default="http://localhost:5001", help="gateway base URL")
    parser.add_argument("--rows", type=Path, required=True, help="CSV of rows (x0..x99)")
    parser.add_argument("--limit", type=int, default=2000, help="rows used (0: all)")
    parser.add_argument("--repository", type=Path, required=True, help="the served repository")
    parser.add_argument("--to", required=True, help="the version to roll forward to")
    parser.add_argument("--inference-port", type=int, default=8001)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--cycles", type=int, default=3)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
