"""What API keys and TLS cost per call (issue 20): ``python -m bench.security_cost``.

Starts its own processes on free loopback ports (never the usual 5001/8001/8002):

1. TLS: one inference server per mode (plaintext, TLS, mutual TLS, certificates from a
   throwaway CA, :mod:`bench.pki`), each called by the gateway's own
   :class:`InferenceClient` over one kept-alive channel, for 1 row and for 100 rows (p50,
   p99), plus the first call of a fresh channel (connection and handshake included);
2. keys: two gateways (nginx + gunicorn), keys off and on, in front of one plaintext
   server, single-row ``/predict`` calls at concurrency 1 on one keep-alive connection
   each, and the in-process check alone (hashing one key, comparing it with 10 hashes).

The modes run side by side and take turns call by call, so a change in the machine's
load hits them all alike.

    python -m bench.security_cost --bundle models/current --rows data/exercise_06_test.csv

Markdown tables on stdout, for docs/hardening.md.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import machine
from bench.cli import read_rows
from bench.http_load import percentile
from bench.pki import Pki, write_pki
from gateway.auth import KeyRing, presented_key
from gateway.client import InferenceClient
from gateway.config import Config
from gateway.convert import rows_to_batch

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-" + "0" * 54


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(ROOT)
    out["PYTHON"] = sys.executable
    out.update(extra)
    return out


def wait(check: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 120
    while not check():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up (exit {process.poll()})")
        time.sleep(0.1)


def serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


@contextmanager
def inference(bundle: Path, tls: list[str], log: Path) -> Iterator[int]:
    """An inference server (plaintext health port for the wait); yields its gRPC port."""
    port, health = free_port(), free_port()
    argv = [str(ROOT / "bin/start-inference"), "--bundle", str(bundle), "--port", str(port)]
    argv += ["--metrics-port", "-1", "--health-port", str(health), "--drift-window-rows", "0"]
    with log.open("wb") as out:
        process = subprocess.Popen([*argv, *tls], env=env(), stdout=out, stderr=out)
    try:
        wait(lambda: serving(health), process, "inference server")
        yield port
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def gateway(target: str, log: Path, **settings: str) -> Iterator[int]:
    port = free_port()
    extra = {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port), "INFERENCE_TARGET": target}
    extra |= {"GATEWAY_WORKERS": "1", "GATEWAY_THREADS": "4", **settings}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(ROOT / "bin/start-gateway")], env=env(**extra), stdout=out, stderr=out
        )

    def ready() -> bool:
        try:
            return post(port, "/readyz", None, {})[0] == 200
        except OSError:
            return False

    try:
        wait(ready, process, "gateway")
        yield port
    finally:
        process.terminate()
        process.wait(30)


def post(port: int, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET" if body is None else "POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def stats(seconds: list[float]) -> str:
    return f"{percentile(seconds, 50) * 1e3:.3f} / {percentile(seconds, 99) * 1e3:.3f}"


def time_calls(call: Callable[[], object], calls: int) -> list[float]:
    for _ in range(min(50, calls)):  # warm up
        call()
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def interleaved(modes: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Each mode's call times, the modes taking turns (so drift in the machine hits all alike)."""
    for call in modes.values():
        for _ in range(min(50, rounds)):  # warm up
            call()
    times: dict[str, list[float]] = {name: [] for name in modes}
    order = list(modes)
    for turn in range(rounds):
        for name in order[turn % len(order) :] + order[: turn % len(order)]:
            started = time.perf_counter()
            modes[name]()
            times[name].append(time.perf_counter() - started)
    return times


def tls_modes(pki: Pki) -> dict[str, tuple[list[str], dict[str, str]]]:
    server = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    ca = {"inference_ca": str(pki.ca), "inference_server_name": "localhost"}
    client = {"inference_cert": str(pki.client_cert), "inference_key": str(pki.client_key)}
    return {
        "plaintext": ([], {}),
        "TLS": (server, ca),
        "mutual TLS": ([*server, "--tls-client-ca", str(pki.ca)], ca | client),
    }


def first_call_s(config: Config) -> float:
    """Median time of a fresh channel's first call (connection and handshake included)."""
    first = []
    for _ in range(5):
        fresh = InferenceClient(config)
        started = time.perf_counter()
        fresh.schema()
        first.append(time.perf_counter() - started)
        fresh.close()
    return float(np.median(first))


def bench_tls(bundle: Path, rows: list[dict[str, str]], calls: int, work: Path) -> list[str]:
    lines = [
        "| channel | ModelInfer 1 row p50 / p99 ms | 100 rows p50 / p99 ms "
        "| first call of a new channel ms |",
        "|---|---|---|---|",
    ]
    with ExitStack() as stack:
        clients, first, singles, hundreds = {}, {}, {}, {}
        for mode, (server_args, settings) in tls_modes(write_pki(work / "pki")).items():
            log = work / f"inference-{mode}.log"
            port = stack.enter_context(inference(bundle, server_args, log))
            config = Config(inference_target=f"127.0.0.1:{port}", **settings)  # type: ignore[arg-type]
            first[mode] = first_call_s(config)
            client = clients[mode] = InferenceClient(config)
            stack.callback(client.close)
            schema = client.schema()
            one = rows_to_batch(rows[:1], schema.inputs, missing=schema.missing_text)
            many = rows_to_batch(rows[:100], schema.inputs, missing=schema.missing_text)
            singles[mode] = partial(client.infer, schema, one, 1024)
            hundreds[mode] = partial(client.infer, schema, many, 1024)
        single = interleaved(singles, calls)
        hundred = interleaved(hundreds, max(calls // 4, 1))
    for mode in clients:
        lines.append(
            f"| {mode} | {stats(single[mode])} | {stats(hundred[mode])} | {first[mode] * 1e3:.2f} |"
        )
    return lines


def bench_keys(bundle: Path, rows: list[dict[str, str]], calls: int, work: Path) -> list[str]:
    keys = work / "api-keys.sha256"
    hashes = [hashlib.sha256(f"other-{i}".encode()).hexdigest() for i in range(9)]
    keys.write_text("\n".join([*hashes, hashlib.sha256(KEY.encode()).hexdigest()]) + "\n")
    ring = KeyRing.load(keys)
    headers = {"Authorization": f"Bearer {KEY}"}
    check = time_calls(lambda: ring.admits(presented_key(headers.get) or ""), calls * 10)
    body = json.dumps(rows[0]).encode()
    lines = [
        "| gateway | single-row /predict p50 / p99 ms (c=1, keep-alive) |",
        "|---|---|",
    ]
    with ExitStack() as stack:
        port = stack.enter_context(inference(bundle, [], work / "inference-keys.log"))
        calls_by_mode = {}
        for mode, settings, sent in (
            ("keys off", {}, {}),
            ("keys on (Bearer)", {"GATEWAY_API_KEYS_FILE": str(keys)}, headers),
        ):
            log = work / f"gateway-{mode}.log"
            http_port = stack.enter_context(gateway(f"127.0.0.1:{port}", log, **settings))
            connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
            stack.callback(connection.close)
            calls_by_mode[mode] = partial(
                predict, connection, body, {"Content-Type": "application/json", **sent}
            )
        for mode, seconds in interleaved(calls_by_mode, calls).items():
            lines.append(f"| {mode} | {stats(seconds)} |")
    lines.append(f"| the check alone (in process, 10 hashes) | {stats(check)} |")
    return lines


def predict(connection: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> None:
    connection.request("POST", "/predict", body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status


def synthetic_rows(n: int) -> list[dict[str, str]]:
    from modeling.training.synthetic import synthetic_records

    return [{k: str(v) for k, v in row.items()} for row in synthetic_records(n, seed=5)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.security_cost", description=__doc__)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "current")
    parser.add_argument("--rows", type=Path, help="CSV of rows (default: synthetic rows)")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per measurement")
    args = parser.parse_args(argv)
    rows = read_rows(args.rows)[:100] if args.rows else synthetic_rows(100)
    with tempfile.TemporaryDirectory(prefix="bench-security-") as directory:
        work = Path(directory)
        described = ", ".join(f"{k}: {v}" for k, v in machine.describe().items())
        print(f"machine: {described}\n")
        print("\n".join(bench_tls(args.bundle, rows, args.calls, work)) + "\n")
        print("\n".join(bench_keys(args.bundle, rows, args.calls, work)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
