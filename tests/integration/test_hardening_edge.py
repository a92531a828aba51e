"""Hostile and careless clients at the HTTP edge, against the real processes (issue 12).

Each test reproduces a probe that broke the stack before its fix: slow and idle
connections, a body of millions of tiny values, extreme numbers, broken chunked
framing, deep nesting, a chunked body over the limit, a full or deleted metrics
directory, gunicorn's HTML errors, and memory under concurrent large requests. Every
gateway runs both ways the project runs it: behind its nginx front (the default) and
with gunicorn facing clients (``GATEWAY_EDGE=none``), except where only the front can
help (slow clients). Only loopback; counts and times are capped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from modeling.training.synthetic import synthetic_records
from tests.integration.conftest import ManagedProcess, wait_until
from tests.integration.gateway_helpers import (
    EDGES,
    JSON,
    Gateways,
    contract_error,
    exchange,
    one_gateway_per_edge,
    post_head,
    predict,
    request,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]

LIMITS = {
    "GATEWAY_MAX_BODY_BYTES": "2000000",
    "GATEWAY_MAX_ROWS": "2000",
    "GATEWAY_MAX_VALUES": "300000",
    "GATEWAY_WORKERS": "1",
    "GATEWAY_THREADS": "2",
}


@pytest.fixture(scope="module")
def gateways(
    inference_server: ManagedProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    """One gateway per edge (nginx front, gunicorn alone), 1 worker x 2 threads."""
    target = f"127.0.0.1:{inference_server.ports['grpc']}"
    with one_gateway_per_edge(target, tmp_path_factory.mktemp("edge"), **LIMITS) as ports:
        yield ports


# ---- 1. slow and idle clients ---------------------------------------------------------------


def test_slow_and_idle_clients_do_not_starve_a_normal_client(gateways: dict[str, int]) -> None:
    port = gateways["nginx"]
    held: list[socket.socket] = []
    try:
        for _ in range(50):  # connect and send nothing
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for _ in range(8):  # headers, never finished
            conn = socket.create_connection(("127.0.0.1", port), timeout=5)
            conn.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
            held.append(conn)
        for _ in range(8):  # a body announced, 10 bytes sent
            conn = socket.create_connection(("127.0.0.1", port), timeout=5)
            conn.sendall(post_head("Content-Length: 1000000\r\n") + b"[{}, {}, {")
            held.append(conn)
        time.sleep(0.5)
        for _ in range(5):  # gunicorn alone (2 threads) would wait until they leave
            status, _, answer = request(port, "POST", "/predict", b'{"x0": "1"}', JSON, timeout=3)
            assert status == 200, answer
    finally:
        for conn in held:
            conn.close()


# ---- 2. parse cost and memory grow with what is refused early --------------------------------


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize(
    ("body", "limit"),
    [
        (b"[" + b",".join([b"{}"] * 250_000) + b"]", "2000"),  # 750 kB of empty rows
        (b"[" + b",".join([b"1"] * 900_000) + b"]", "300000"),  # 1.8 MB of tiny values
    ],
    ids=["empty-objects", "tiny-values"],
)
def test_bodies_of_many_tiny_values_are_refused_before_decoding(
    gateways: dict[str, int], edge: str, body: bytes, limit: str
) -> None:
    status, _, answer = request(gateways[edge], "POST", "/predict", body, JSON, timeout=10)
    assert status == 413
    assert f"the limit is {limit}" in contract_error(answer)


# ---- 3. extreme numbers ----------------------------------------------------------------------


@pytest.mark.parametrize("edge", EDGES)
def test_extreme_numbers_still_get_a_probability(gateways: dict[str, int], edge: str) -> None:
    rows = [{"x5": 1e155}, {"x2": "-1e200"}, {"x7": -3.4e38}, {"x0": 1e308, "x3": "1e-320"}]
    status, _, answer = predict(gateways[edge], rows)
    assert status == 200
    assert len(answer) == len(rows)
    for item in answer:
        assert isinstance(item["probability"], float)
        assert 0.0 <= item["probability"] <= 1.0


# ---- 4, 5, 10. broken framing, deep nesting, chunked over the limit, HTTP-level errors --------


@pytest.mark.parametrize("edge", EDGES)
def test_a_bad_chunk_size_is_a_json_400(gateways: dict[str, int], edge: str) -> None:
    status, body = exchange(gateways[edge], post_head("Transfer-Encoding: chunked\r\n") + b"zz\r\n")
    assert status == 400
    contract_error(body)


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("depth", [300, 1000, 1030])
def test_deeply_nested_values_are_a_json_400(
    gateways: dict[str, int], edge: str, depth: int
) -> None:
    row = '{"x0": ' + "[" * depth + "]" * depth + "}"
    status, _, answer = request(gateways[edge], "POST", "/predict", row.encode(), JSON)
    assert status == 400
    contract_error(answer)


@pytest.mark.parametrize("edge", EDGES)
def test_a_chunked_body_over_the_limit_is_413_never_cut(
    gateways: dict[str, int], edge: str
) -> None:
    body = b'[{"x0": 1}]' + b" " * 2_000_000 + b"garbage"  # valid JSON up to the limit
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536])
        for i in range(0, len(body), 65536)
    )
    data = post_head("Transfer-Encoding: chunked\r\nConnection: close\r\n") + chunks + b"0\r\n\r\n"
    status, answer = exchange(gateways[edge], data)
    assert status == 413
    assert "larger than 2000000 bytes" in contract_error(answer)


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", (400, 431)),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ],
    ids=["long-uri", "long-header", "many-headers", "garbage"],
)
def test_http_level_refusals_are_json(
    gateways: dict[str, int], edge: str, data: bytes, status: int | tuple[int, ...]
) -> None:
    got, body = exchange(gateways[edge], data)
    assert got in (status if isinstance(status, tuple) else (status,))
    contract_error(body)


def test_pipelined_requests_are_answered_in_order(gateways: dict[str, int]) -> None:
    one = json.dumps(synthetic_records(1, seed=1)[0]).encode()
    request_bytes = post_head(f"Content-Length: {len(one)}\r\n") + one
    with socket.create_connection(("127.0.0.1", gateways["nginx"]), timeout=10) as conn:
        conn.sendall(request_bytes * 3 + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        deadline = time.monotonic() + 10
        while received.count(b"HTTP/1.1 200") < 4 and time.monotonic() < deadline:
            received += conn.recv(65536)
    assert received.count(b"HTTP/1.1 200") == 4
    assert received.rstrip().endswith(b'{"status":"ok"}')


# ---- 6. losing metrics never loses predictions ----------------------------------------------


@contextmanager
def small_tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (needs root and mount rights, else the test is skipped)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def full_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs filled to the last byte."""
    with small_tmpfs(tmp_path, "1m") as mount:
        filler = os.open(mount / "filler", os.O_CREAT | os.O_WRONLY)
        try:
            while os.write(filler, b"\0" * 4096):
                pass
        except OSError:
            pass  # full
        finally:
            os.close(filler)
        yield mount


def test_a_full_metrics_disk_costs_metrics_not_predictions(
    inference_server: ManagedProcess, tmp_path: Path, full_tmpfs: Path
) -> None:
    directory = full_tmpfs / "metrics"
    directory.mkdir()
    started = Gateways(tmp_path)
    try:
        gateway = started.start(
            f"127.0.0.1:{inference_server.ports['grpc']}",
            PROMETHEUS_MULTIPROC_DIR=str(directory),
            GATEWAY_WORKERS="1",
        )
        port = gateway.ports["http"]
        for row in synthetic_records(30, seed=4):  # SIGBUS killed the worker on each one
            status, _, answer = predict(port, row)
            assert status == 200, answer
        status, headers, body = request(port, "GET", "/metrics")
        assert (status, headers.get("Retry-After")) == (503, "1")
        assert "bytes free" in contract_error(body)
        assert "samples stay private" in gateway.log()
    finally:
        started.stop_all()


def test_a_deleted_metrics_directory_heals(
    inference_server: ManagedProcess, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    started = Gateways(tmp_path)
    try:
        port = started.start(
            f"127.0.0.1:{inference_server.ports['grpc']}", PROMETHEUS_MULTIPROC_DIR=str(directory)
        ).ports["http"]
        shutil.rmtree(directory)
        assert predict(port, {"x0": "1"})[0] == 200
        status, headers, body = request(port, "GET", "/metrics")
        assert (status, headers.get("Retry-After")) == (503, "1")
        assert "metrics unavailable" in contract_error(body)
        assert request(port, "GET", "/metrics")[0] == 200  # the directory is back
        assert predict(port, {"x0": "1"})[0] == 200
    finally:
        started.stop_all()


def test_a_body_the_front_cannot_buffer_gets_503_not_a_crash(
    inference_server: ManagedProcess, tmp_path: Path
) -> None:
    with small_tmpfs(tmp_path, "2m") as runtime:  # nginx buffers bodies over 1 MiB here
        started = Gateways(tmp_path)
        try:
            port = started.start(
                f"127.0.0.1:{inference_server.ports['grpc']}", GATEWAY_RUNTIME_DIR=str(runtime)
            ).ports["http"]
            body = json.dumps(synthetic_records(1100, seed=2)).encode()  # ~3 MB
            status, headers, answer = request(port, "POST", "/predict", body, JSON)
            assert (status, headers.get("Retry-After")) == (503, "1")
            assert "could not buffer" in contract_error(answer)
            assert predict(port, {"x0": "1"})[0] == 200  # small requests still served
        finally:
            started.stop_all()


# ---- 11. memory: large requests are admitted within a budget, never killed --------------------


def test_large_requests_beyond_the_memory_budget_get_503_and_succeed_on_retry(
    inference_server: ManagedProcess, tmp_path: Path
) -> None:
    body = json.dumps(synthetic_records(1000, seed=8)).encode()  # 2.8 MB, ~13 MB estimated
    started = Gateways(tmp_path)
    try:
        port = started.start(
            f"127.0.0.1:{inference_server.ports['grpc']}",
            GATEWAY_WORKERS="1",
            GATEWAY_THREADS="4",
            GATEWAY_MEMORY_BUDGET_BYTES=str(20 * 1024 * 1024),  # one at a time
        ).ports["http"]

        def call() -> list[int]:
            statuses = []
            for _ in range(30):
                status, headers, answer = request(port, "POST", "/predict", body, JSON)
                statuses.append(status)
                if status != 503:
                    assert status == 200, answer
                    assert len(json.loads(answer)) == 1000
                    return statuses
                assert headers["Retry-After"] == "1"
                time.sleep(0.2)
            return statuses

        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(lambda _: call(), range(4)))
        assert all(statuses[-1] == 200 for statuses in outcomes)
        assert any(503 in statuses for statuses in outcomes)  # the budget did refuse some
        status, _, answer = request(port, "POST", "/predict", body * 2, JSON)
        assert status == 413  # could never fit
        assert "budget" in contract_error(answer)
        wait_until(lambda: predict(port, {"x0": "1"})[0] == 200, 5.0, "small calls still served")
    finally:
        started.stop_all()
