"""A compose stack driven through the engine's own command line (docker or podman).

The engine is the one ``deploy/docker/engine.sh`` names; the stack is a compose project
of its own (``-p``), so it never touches a stack someone else runs on the machine. The
test talks to it only through the gateway's port published on 127.0.0.1 and through
``exec`` inside the containers.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENGINE_SCRIPT = REPO / "deploy" / "docker" / "engine.sh"

# The images' own health probe (Dockerfile.inference's HEALTHCHECK): podman 4.3 runs no
# HEALTHCHECK by itself, so the test runs it with exec.
INFERENCE_SERVING = (
    "import grpc,sys;from grpc_health.v1 import health_pb2 as h,health_pb2_grpc as g;"
    "r=g.HealthStub(grpc.insecure_channel('127.0.0.1:8001')).Check("
    "h.HealthCheckRequest(service=''),timeout=2);"
    "sys.exit(0 if r.status==h.HealthCheckResponse.SERVING else 1)"
)
INFERENCE_METRICS = (
    "import urllib.request as u;"
    "print(u.urlopen('http://127.0.0.1:8002/metrics',timeout=5).read().decode())"
)


def engine() -> tuple[str, list[str], list[str]] | None:
    """(engine, compose command, its ``up`` arguments) of the engine here, or None."""
    found = subprocess.run([str(ENGINE_SCRIPT)], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        return None
    compose, up = (
        subprocess.run(
            [str(ENGINE_SCRIPT), flag], capture_output=True, text=True, check=True
        ).stdout.split()
        for flag in ("--compose", "--up")
    )
    return found.stdout.strip(), compose, up


@dataclass
class Stack:
    """One compose project of docker-compose.yml, with the environment it runs under."""

    engine: str
    compose: list[str]
    up: list[str]
    project: str
    env: dict[str, str]
    port: int
    log: Path
    figures: dict[str, object] = field(default_factory=dict)

    def run(self, *argv: str, timeout: float = 120, check: bool = True, merge: bool = False) -> str:
        """Run a command; return its stdout (and stderr if ``merge``), also logged."""
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env},
            cwd=REPO,
            check=False,
        )
        with self.log.open("a") as log:
            log.write(
                f"$ {' '.join(argv)}  -> {result.returncode}\n{result.stdout}{result.stderr}\n"
            )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout + (result.stderr if merge else "")

    def compose_cmd(self, *argv: str, timeout: float = 600) -> str:
        """``<compose> -p <project> -f docker-compose.yml ARGS``."""
        command = [*self.compose, "-p", self.project, "-f", str(COMPOSE_FILE), *argv]
        return self.run(*command, timeout=timeout)

    def containers(self, service: str, *, every: bool = False) -> list[str]:
        """Names of the service's containers (running only, unless ``every``), sorted."""
        out = self.run(
            self.engine, "ps", *(["-a"] if every else []),
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
            "--format", "{{.Names}}",
        )  # fmt: skip
        return sorted(out.split())

    def exec(self, container: str, *argv: str, check: bool = True) -> str:
        """Run ``argv`` inside a running container (as its user)."""
        return self.run(self.engine, "exec", container, *argv, check=check, timeout=60)

    def inspect(self, container: str, template: str) -> str:
        """One field of ``<engine> inspect``."""
        return self.run(self.engine, "inspect", "--format", template, container).strip()

    def serving(self, container: str) -> bool:
        """Whether the replica's gRPC health service says SERVING (checked inside it)."""
        result = subprocess.run(
            [self.engine, "exec", container, "python", "-c", INFERENCE_SERVING],
            capture_output=True,
            timeout=60,
            check=False,
        )
        return result.returncode == 0

    def infer_calls(self, container: str) -> int:
        """ModelInfer calls answered OK by one replica, from its /metrics (read inside it)."""
        text = self.exec(container, "python", "-c", INFERENCE_METRICS)
        for line in text.splitlines():
            if line.startswith("inference_requests_total{") and all(
                label in line for label in ('method="ModelInfer"', 'code="OK"')
            ):
                return int(float(line.rsplit(" ", 1)[1]))
        return 0

    def started_at(self, container: str) -> float:
        """When the container (last) started, as a Unix time."""
        stamp = self.inspect(container, "{{json .State.StartedAt}}")
        return _unix_time(json.loads(stamp))


def _unix_time(stamp: str) -> float:
    """An engine timestamp (RFC 3339, nanoseconds, zone) as a Unix time."""
    from datetime import datetime

    stamp = stamp.replace("Z", "+00:00")
    head, _, zone = stamp.partition("+") if "+" in stamp[19:] else (stamp, "", "")
    if "." in head:
        head, fraction = head.split(".")
        head = f"{head}.{fraction[:6]}"
    return datetime.fromisoformat(head + (f"+{zone}" if zone else "")).timestamp()


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> float:
    """Poll until ``condition()``; return the time it became true. Fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.time()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
