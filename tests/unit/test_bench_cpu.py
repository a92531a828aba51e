"""bench.cpu: CPU seconds per process from /proc, and a stack's processes found by port."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench import cpu
from tests.integration.conftest import free_port, wait_until

# A listener with a child; on each line of input it burns BURN_S of its own CPU and
# prints its CPU seconds so far (user + system, as the kernel counts them).
LISTENER = """
import socket, subprocess, sys, time
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
for _ in sys.stdin:
    end = time.process_time() + float(sys.argv[2])
    while time.process_time() < end:
        sum(range(1_000))
    print(time.process_time(), flush=True)
"""
BURN_S = 0.3
TICK_S = 1 / cpu.CLOCK_TICKS


@pytest.fixture
def listener() -> Iterator[tuple[int, subprocess.Popen[str], int]]:
    """(port, the listening process, its child's pid)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", LISTENER, str(port), str(BURN_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    child = int(process.stdout.readline())
    try:
        yield port, process, child
    finally:
        subprocess.run(["kill", str(child)], check=False)
        process.kill()
        process.communicate()


def burn(process: subprocess.Popen[str]) -> float:
    """Have the listener burn BURN_S of CPU: its CPU seconds so far, as it counts them."""
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write("burn\n")
    process.stdin.flush()
    return float(process.stdout.readline())


def test_cpu_seconds_agree_with_the_process_own_count_and_a_gone_one_has_none(
    listener: tuple[int, subprocess.Popen[str], int],
) -> None:
    _, process, _ = listener
    own = burn(process)

    assert own >= BURN_S
    assert cpu.cpu_seconds(process.pid) == pytest.approx(own, abs=2 * TICK_S)
    assert cpu.cpu_seconds(2**22 + 1) == 0.0  # above the kernel's largest pid


def test_processes_are_found_by_port_and_their_cpu_is_split_per_call(
    listener: tuple[int, subprocess.Popen[str], int],
) -> None:
    port, process, child = listener
    wait_until(lambda: bool(cpu.listening_pids(port)), 10.0, "the listener to listen")

    found = cpu.StackProcesses.find(gateway_port=port, inference_port=free_port())
    assert found.roles == {"gateway": sorted([process.pid, child])}  # no nginx, no inference

    start = burn(process)
    before = found.snapshot()
    spent_own = burn(process) - start
    spent = cpu.per_call(before, found.snapshot(), calls=10)

    assert spent["gateway"] == pytest.approx(spent_own / 10, abs=3 * TICK_S / 10)
    assert spent["stack"] == spent["gateway"]
    assert set(spent) == {"gateway", "stack", cpu.LOAD_GENERATOR}
