"""Faults against the real processes: the inference server killed, frozen; the gateway
stopped under load; a truncated bundle at start.

Each test starts its own inference server (``start_inference``) and gateway
(``Gateways``) on free loopback ports; every load is a few threads for a bounded time,
and every wait has a deadline. Already covered elsewhere, not repeated here: SIGTERM
drain of the inference server and the missing/tampered bundle refusals
(test_inference_process.py), 503 while the server is down and recovery
(test_stack_gateway.py, sequential calls).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modeling.training.synthetic import synthetic_records
from tests.integration.conftest import (
    START_INFERENCE,
    ManagedProcess,
    StartInference,
    free_port,
    start_process,
    subprocess_env,
    wait_serving,
    wait_until,
)
from tests.integration.gateway_helpers import JSON, Gateways, bundle_name, predict, request

pytestmark = pytest.mark.integration

ROWS = synthetic_records(40, seed=21)


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Gateways]:
    started = Gateways(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def worker_pids(master: int) -> set[int]:
    """The pids of the gunicorn master's children (its workers), from /proc."""
    children = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                children.add(int(entry))
    return children


@dataclass
class Outcome:
    """One HTTP request of a load: when it started and ended, and what came back."""

    started: float
    ended: float
    status: int | None
    retry_after: str | None
    rows: int
    answers: int | None
    error: str | None


class Load:
    """``threads`` clients posting rows to /predict until stopped (one connection each call)."""

    def __init__(self, port: int, threads: int, timeout: float, pause_s: float = 0.01) -> None:
        self.port, self.timeout, self.pause_s = port, timeout, pause_s
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a client hung"

    def count(self, status: int, since: float = 0.0) -> int:
        with self._lock:
            return sum(o.status == status and o.started >= since for o in self.outcomes)

    def _run(self, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            size = 10 if n % 5 == 0 else 1  # mostly single rows, some small batches
            rows = [ROWS[(index * 7 + n + k) % len(ROWS)] for k in range(size)]
            outcome = post(self.port, rows, self.timeout)
            with self._lock:
                self.outcomes.append(outcome)
            # A polite client: back off a little after an error, as Retry-After asks.
            self._stop.wait(self.pause_s if outcome.status == 200 else 0.1)


def post(port: int, rows: list[dict[str, Any]], timeout: float) -> Outcome:
    """POST rows on a fresh connection; never raises (a failure is in ``error``)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    status = retry_after = answers = error = None
    try:
        connection.request("POST", "/predict", json.dumps(rows).encode(), JSON)
        response = connection.getresponse()
        body = response.read()
        status, retry_after = response.status, response.getheader("Retry-After")
        if status == 200:
            answers = len(json.loads(body))
        else:
            assert set(json.loads(body)) == {"error", "details"}
    except Exception as exc:  # every failure is recorded, then asserted on
        error = f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    return Outcome(started, time.monotonic(), status, retry_after, len(rows), answers, error)


def start_pair(
    start_inference: StartInference,
    gateways: Gateways,
    bundle: Path,
    **gateway_env: str,
) -> tuple[ManagedProcess, int, int]:
    """An inference server on a port of our choosing and a gateway in front of it."""
    port = free_port()
    server = start_inference(bundle, "--port", str(port), wait=False)
    wait_serving(server, port)
    gateway = gateways.start(
        f"127.0.0.1:{port}", INFERENCE_MODEL=bundle_name(bundle), **gateway_env
    )
    return server, port, gateway.ports["http"]


# ---- (a) the inference server is killed under load ----------------------------------------


def test_sigkill_of_inference_under_load_gives_503_then_recovers_by_itself(
    start_inference: StartInference, gateways: Gateways, inference_bundle: Path
) -> None:
    deadline_s = 2.0
    server, port, http_port = start_pair(
        start_inference,
        gateways,
        inference_bundle,
        GATEWAY_DEADLINE_S=str(deadline_s),
        GATEWAY_THREADS="4",
    )
    master = gateways.started[-1].process.pid
    workers = worker_pids(master)
    assert len(workers) == 2
    with Load(http_port, threads=6, timeout=deadline_s + 10) as load:
        wait_until(lambda: load.count(200) >= 20, 30, "scoring under load")
        server.process.kill()  # SIGKILL: no drain, connections reset
        assert server.process.wait(10) == -signal.SIGKILL
        killed = time.monotonic()
        wait_until(lambda: load.count(503, killed) >= 10, 30, "503s while the server is dead")
        start_inference(inference_bundle, "--port", str(port), wait=False)  # same port
        restarted = time.monotonic()
        wait_until(lambda: load.count(200, restarted) >= 20, 90, "200s after the restart")
    outcomes = load.outcomes
    assert [o.error for o in outcomes if o.error] == []  # no reset, no timeout, no hang
    statuses = {o.status for o in outcomes}
    assert statuses <= {200, 503}, statuses
    for outcome in outcomes:
        assert outcome.ended - outcome.started <= deadline_s + 1, outcome
        if outcome.status == 503:
            assert outcome.retry_after is not None
            assert int(outcome.retry_after) >= 1
        else:
            assert outcome.answers == outcome.rows
    # No worker died or was replaced; the gateway was never restarted.
    assert worker_pids(master) == workers
    assert gateways.started[-1].running()
    assert request(http_port, "GET", "/healthz")[0] == 200
    wait_until(lambda: request(http_port, "GET", "/readyz")[0] == 200, 10, "ready again")
    wait_until(  # each worker's channel reconnects within its backoff (at most 1 s)
        lambda: all(predict(http_port, ROWS[0])[0] == 200 for _ in range(6)),
        15,
        "every worker scoring again",
    )
    assert "Traceback" not in gateways.started[-1].log()


# ---- (b) a frozen inference server (deadline exceeded) ------------------------------------


def test_a_frozen_inference_server_gives_504_or_503_within_the_deadline(
    start_inference: StartInference, gateways: Gateways, inference_bundle: Path
) -> None:
    deadline_s = 1.0
    server, _, http_port = start_pair(
        start_inference, gateways, inference_bundle, GATEWAY_DEADLINE_S=str(deadline_s)
    )
    assert predict(http_port, ROWS[0])[0] == 200  # metadata cached, channel connected
    server.process.send_signal(signal.SIGSTOP)
    try:
        outcomes = [post(http_port, ROWS[:1], timeout=30) for _ in range(3)]  # one at a time
    finally:
        server.process.send_signal(signal.SIGCONT)
    for outcome in outcomes:
        assert outcome.error is None, outcome
        assert outcome.status in (503, 504), outcome
        assert outcome.retry_after is not None
        assert outcome.ended - outcome.started <= deadline_s + 1, outcome
    wait_until(lambda: predict(http_port, ROWS[0])[0] == 200, 30, "scoring after SIGCONT")


# ---- (c) SIGTERM of the gateway under load ------------------------------------------------


def test_sigterm_of_the_gateway_finishes_accepted_requests_and_exits_in_time(
    start_inference: StartInference, gateways: Gateways, inference_bundle: Path
) -> None:
    server, _, http_port = start_pair(
        start_inference,
        gateways,
        inference_bundle,
        GATEWAY_DEADLINE_S="8",
        GATEWAY_THREADS="4",
    )
    gateway = gateways.started[-1]
    assert predict(http_port, ROWS[0])[0] == 200
    # Hold requests in flight: the inference server is frozen while they are sent.
    server.process.send_signal(signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(6) as pool:
            held = [pool.submit(post, http_port, ROWS[i : i + 3], 20) for i in range(6)]
            time.sleep(1.0)  # every request sent and taken by a worker
            assert not any(f.done() for f in held), "requests were not held in flight"
            signalled = time.monotonic()
            gateway.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the gateway is draining now
            server.process.send_signal(signal.SIGCONT)
            outcomes = [f.result(30) for f in held]
    finally:
        server.process.send_signal(signal.SIGCONT)
    for outcome in outcomes:
        assert outcome.error is None, outcome  # no connection reset
        assert outcome.status == 200, outcome
        assert outcome.answers == 3
    code = gateway.process.wait(15)
    elapsed = time.monotonic() - signalled
    assert code == 0, gateway.log()
    assert elapsed < 10
    assert post(http_port, ROWS[:1], 5).error is not None  # no longer listening


def test_sigterm_of_the_gateway_under_continuous_load(
    start_inference: StartInference, gateways: Gateways, inference_bundle: Path
) -> None:
    _, _, http_port = start_pair(start_inference, gateways, inference_bundle)
    gateway = gateways.started[-1]
    with Load(http_port, threads=6, timeout=20, pause_s=0.0) as load:
        wait_until(lambda: load.count(200) >= 30, 30, "scoring under load")
        signalled = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        code = gateway.process.wait(15)
        elapsed = time.monotonic() - signalled
        time.sleep(0.2)
    assert code == 0, gateway.log()
    assert elapsed < 10
    before = [o for o in load.outcomes if o.started < signalled]
    after = [o for o in load.outcomes if o.started >= signalled]
    assert len(before) >= 30
    for outcome in before:  # sent before the signal: answered in full, never reset
        assert outcome.error is None, outcome
        assert outcome.status == 200, outcome
        assert outcome.answers == outcome.rows
    for outcome in after:  # a 200, or a connection the stopping gateway never accepted:
        # refused once the listener is closed, or reset if the kernel completed the
        # handshake in the few ms before it closed (deploy/'s preStop hooks cover this)
        if outcome.status is not None:
            assert outcome.status == 200, outcome
        else:
            assert outcome.error is not None
            assert outcome.error.split(":")[0] in ("ConnectionRefusedError", "ConnectionResetError")


@dataclass
class FrozenCrowd:
    """What 8 concurrent single-row requests to one worker got from a frozen server."""

    deadline_s: float
    outcomes: list[Outcome]
    recovered: bool


@pytest.fixture(scope="module")
def frozen_crowd(
    inference_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FrozenCrowd]:
    """One worker, 8 threads, one row per ModelInfer call (GATEWAY_CHUNK_ROWS=1), so the
    requests queue behind each other in the worker's coalescer (gateway.coalesce); the
    server is frozen (SIGSTOP) while they run, then thawed (SIGCONT).

    With a 1.5 s deadline the calls end at 1.5, 3 and 4.5 s while the queued requests
    give up at 2 x 1.5 + 1 = 4 s: the request handed the lead at 4.5 s has already gone.
    """
    log_dir = tmp_path_factory.mktemp("frozen-crowd")
    port = free_port()
    argv = [
        str(START_INFERENCE), "--bundle", str(inference_bundle), "--host", "127.0.0.1",
        "--port", str(port), "--metrics-port", "-1",
    ]  # fmt: skip
    server = start_process(argv, log_dir / "inference.log", subprocess_env(), {"grpc": port})
    gateways = Gateways(log_dir)
    deadline_s = 1.5
    try:
        wait_serving(server, port)
        http_port = gateways.start(
            f"127.0.0.1:{port}",
            INFERENCE_MODEL=bundle_name(inference_bundle),
            GATEWAY_DEADLINE_S=str(deadline_s),
            GATEWAY_WORKERS="1",
            GATEWAY_THREADS="8",
            GATEWAY_CHUNK_ROWS="1",
        ).ports["http"]
        assert predict(http_port, ROWS[0])[0] == 200
        server.process.send_signal(signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(8) as pool:
                outcomes = list(pool.map(lambda i: post(http_port, ROWS[i : i + 1], 30), range(8)))
        finally:
            server.process.send_signal(signal.SIGCONT)
        recovered = False
        give_up = time.monotonic() + 8
        while not recovered and time.monotonic() < give_up:
            recovered = post(http_port, ROWS[:1], 10).status == 200
            time.sleep(0.2)
        yield FrozenCrowd(deadline_s, outcomes, recovered)
    finally:
        gateways.stop_all()
        server.stop()


def test_queued_requests_to_a_frozen_server_answer_504_or_503_never_hang(
    frozen_crowd: FrozenCrowd,
) -> None:
    for outcome in frozen_crowd.outcomes:
        assert outcome.error is None, outcome
        assert outcome.status in (503, 504), outcome
        # Bounded today by the coalescer's wait plus one call (3 x deadline + 1 s); the
        # contract's bound (deadline + 1 s) is the xfail test below.
        assert outcome.ended - outcome.started <= 3 * frozen_crowd.deadline_s + 1.5, outcome


def test_the_worker_scores_again_once_the_server_is_back(frozen_crowd: FrozenCrowd) -> None:
    # Before 718d1ab a request that gave up stayed queued, was handed the lead at 4.5 s
    # and never sent it: the worker's coalescer stayed busy and answered 504 for good.
    assert frozen_crowd.recovered, "the worker answers 504 for good after the server thawed"


def test_every_504_of_queued_requests_has_retry_after(frozen_crowd: FrozenCrowd) -> None:
    for outcome in frozen_crowd.outcomes:
        assert outcome.retry_after is not None, outcome


def test_queued_requests_keep_their_own_deadline(frozen_crowd: FrozenCrowd) -> None:
    for outcome in frozen_crowd.outcomes:
        assert outcome.ended - outcome.started <= frozen_crowd.deadline_s + 1, outcome


# ---- a truncated bundle at start ------------------------------------------------------------


@pytest.mark.parametrize("victim", ["manifest.json", "lightgbm.txt"])
def test_a_truncated_bundle_is_refused_with_a_clear_message(
    start_inference: StartInference, inference_bundle: Path, tmp_path: Path, victim: str
) -> None:
    bundle = tmp_path / "truncated"
    shutil.copytree(inference_bundle, bundle)
    path = bundle / victim
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a copy cut short
    server = start_inference(bundle, wait=False)
    assert server.process.wait(60) == 2
    lines = [line for line in server.log().splitlines() if line.startswith("inference:")]
    assert len(lines) == 1, server.log()
    assert str(bundle) in lines[0]
    assert "Traceback" not in server.log()
