"""Integration fixtures: real server processes on free local ports.

Reusable helpers (import them from ``tests.integration.conftest``):

- :func:`free_port` picks a free local TCP port;
- :func:`subprocess_env` is the environment for a child process: the repository on
  ``PYTHONPATH`` and, when this test run measures coverage, ``COVERAGE_PROCESS_START``
  so the child records coverage too (coverage's ``.pth`` hook, parallel data files
  written in the repository root and combined by pytest-cov);
- :func:`wait_until` polls a condition with a deadline and fails with a message;
- :class:`ManagedProcess` is a started child with its log, stopped with SIGTERM
  (so coverage data is saved) and killed only as a last resort;
- :func:`oip_columns` and :func:`infer_request` turn string rows (as in the exercise's
  curl examples) into Open Inference Protocol v2 requests, raw or typed.

Fixtures for the inference server: ``inference_bundle`` (the session's real bundle),
``start_inference`` (a factory; every process it starts is stopped at teardown) and
``inference_server`` (one server shared by a module's read-only tests).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.oip import infer_request, oip_columns

__all__ = ["infer_request", "oip_columns"]  # re-exported for the integration tests

REPO = Path(__file__).resolve().parents[2]
START_INFERENCE = REPO / "bin" / "start-inference"
STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def coverage_active() -> bool:
    """Whether this test process is measuring coverage (pytest --cov)."""
    try:
        import coverage
    except ImportError:  # pragma: no cover - coverage is a dev dependency
        return False
    return coverage.Coverage.current() is not None


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child process: ours, the repo importable, coverage if measuring."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHON"] = sys.executable
    if coverage_active():
        env["COVERAGE_PROCESS_START"] = str(REPO / "pyproject.toml")
    env.update(extra)
    return env


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 50 ms until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class ManagedProcess:
    """A child process whose stdout and stderr go to ``log_path``."""

    process: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)

    def log(self) -> str:
        """Everything the process has written so far."""
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait for the exit code (SIGKILL after ``timeout`` seconds)."""
        if self.running():
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_process(
    argv: Sequence[str], log_path: Path, env: dict[str, str], ports: dict[str, int]
) -> ManagedProcess:
    """Start ``argv`` in the repository root, its output into ``log_path``."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return ManagedProcess(process, log_path, ports)


def health_status(port: int, service: str = "", timeout: float = 1.0) -> int | None:
    """The grpc.health.v1 status of ``service`` on ``port``, or None when unreachable."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return None
    return int(reply.status)


def wait_serving(server: ManagedProcess, port: int, timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Wait until ``server`` reports SERVING on ``port``; fail with its log if it dies."""

    def serving() -> bool:
        if not server.running():
            pytest.fail(f"server exited with {server.process.returncode}:\n{server.log()}")
        return health_status(port) == health_pb2.HealthCheckResponse.SERVING

    wait_until(serving, timeout, f"SERVING on port {port}")


@pytest.fixture(scope="session")
def inference_bundle(quick_bundle: Path) -> Path:
    """The session's real bundle (trained once by ``python -m modeling train --synthetic``)."""
    return quick_bundle


StartInference = Callable[..., ManagedProcess]


@pytest.fixture
def start_inference(tmp_path: Path) -> Iterator[StartInference]:
    """Factory: start ``bin/start-inference`` on free ports; stopped at teardown.

    Call it as ``start_inference(bundle, *extra_args, wait=True, **env)``; the result's
    ``ports`` holds ``grpc`` and ``metrics``. With ``wait=False`` it returns at once. A
    directory without a manifest is served as a model repository (``--repository``).
    """
    started: list[ManagedProcess] = []

    def start(bundle: Path, *args: str, wait: bool = True, **env: str) -> ManagedProcess:
        ports = {"grpc": free_port(), "metrics": free_port()}
        argv = [
            str(START_INFERENCE),
            "--bundle" if (bundle / "manifest.json").exists() else "--repository", str(bundle),
            "--host", "127.0.0.1",
            "--port", str(ports["grpc"]),
            "--metrics-port", str(ports["metrics"]),
            *args,
        ]  # fmt: skip
        log_path = tmp_path / f"inference-{len(started)}.log"
        server = start_process(argv, log_path, subprocess_env(**env), ports)
        started.append(server)
        if wait:
            wait_serving(server, ports["grpc"])
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def inference_server(
    inference_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedProcess]:
    """One inference server process shared by a module's tests (do not stop it)."""
    ports = {"grpc": free_port(), "metrics": free_port()}
    log_path = tmp_path_factory.mktemp("inference") / "server.log"
    env = subprocess_env(
        INFERENCE_BUNDLE=str(inference_bundle),
        INFERENCE_HOST="127.0.0.1",
        INFERENCE_PORT=str(ports["grpc"]),
        INFERENCE_METRICS_PORT=str(ports["metrics"]),
    )
    server = start_process([str(START_INFERENCE)], log_path, env, ports)
    try:
        wait_serving(server, ports["grpc"])
        yield server
    finally:
        server.stop()
