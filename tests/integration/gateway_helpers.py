"""Helpers for tests that run the real gunicorn gateway (bin/start-gateway) as a process.

Built on the inference fixtures' helpers in ``tests.integration.conftest``: free ports,
the child environment (coverage included) and :class:`ManagedProcess`.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (
    REPO,
    ManagedProcess,
    free_port,
    start_process,
    subprocess_env,
    wait_until,
)

START_GATEWAY = REPO / "bin" / "start-gateway"
JSON = {"Content-Type": "application/json"}


def bundle_name(bundle: Path) -> str:
    """The model name the inference server serves a bundle under."""
    return str(json.loads((bundle / "manifest.json").read_text())["name"])


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 30.0,
    host: str = "127.0.0.1",
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to host:port; returns (status, headers, body)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def predict(port: int, payload: Any, *, host: str = "127.0.0.1") -> tuple[int, dict[str, str], Any]:
    """POST a JSON payload to /predict; returns (status, headers, decoded body)."""
    body = json.dumps(payload).encode()
    status, headers, body = request(port, "POST", "/predict", body, JSON, host=host)
    return status, headers, json.loads(body)


def answers(port: int, path: str, status: int) -> bool:
    """Whether GET path answers ``status`` now."""
    try:
        return request(port, "GET", path, timeout=5.0)[0] == status
    except OSError:
        return False


class Gateways:
    """Gateways started on free ports for a test or module; :meth:`stop_all` stops them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[ManagedProcess] = []

    def start(self, target: str, *, ready: bool = True, **env: str) -> ManagedProcess:
        """Start bin/start-gateway in front of ``target``; wait for /readyz (or /healthz).

        The result's ``ports["http"]`` is the gateway's port.
        """
        port = free_port()
        settings = {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_WORKERS": "2",
            "GATEWAY_THREADS": "2",
            "INFERENCE_TARGET": target,
            **env,
        }
        log_path = self.log_dir / f"gateway-{len(self.started)}.log"
        env_all = subprocess_env(**settings)
        gateway = start_process([str(START_GATEWAY)], log_path, env_all, {"http": port})
        self.started.append(gateway)
        path, what = ("/readyz", "ready") if ready else ("/healthz", "live")

        def up() -> bool:
            if not gateway.running():
                pytest.fail(f"gateway exited with {gateway.process.returncode}:\n{gateway.log()}")
            return answers(port, path, 200)

        wait_until(up, 60.0, f"gateway {what} on port {port}")
        return gateway

    def stop_all(self) -> None:
        """Stop every gateway with SIGTERM; each must exit cleanly (code 0)."""
        for gateway in self.started:
            code = gateway.stop()
            assert code == 0, f"gateway exited with {code}:\n{gateway.log()}"
        self.started.clear()


EDGES = ("nginx", "none")
"""The two edges a gateway can face clients with: nginx in front, or gunicorn alone."""


@contextmanager
def one_gateway_per_edge(target: str, log_dir: Path, **env: str) -> Iterator[dict[str, int]]:
    """A gateway for each of :data:`EDGES` in front of ``target``: {edge: its HTTP port}."""
    started = Gateways(log_dir)
    try:
        yield {
            edge: started.start(target, GATEWAY_EDGE=edge, **env).ports["http"] for edge in EDGES
        }
    finally:
        started.stop_all()


# ---- raw HTTP: what a client library would not send ----------------------------------------


def exchange(port: int, data: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send raw bytes, read the first response; (status, body) with 0 for no answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        received = b""
        try:
            while b"\r\n\r\n" not in received or _incomplete(received):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
    if not received.startswith(b"HTTP/1."):
        return 0, received
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _incomplete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) < int(line.split(b":")[1])
    return False


def post_head(extra: str = "") -> bytes:
    return (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def contract_error(body: bytes) -> str:
    """The ``error`` of a contract error body (fails on anything else, HTML included)."""
    answer = json.loads(body)
    assert set(answer) == {"error", "details"}
    return str(answer["error"])
