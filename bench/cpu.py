"""CPU time of each process of a running stack, to report CPU per call beside wall time.

Wall-clock figures on a shared 2-core machine drift with its load; CPU seconds per call,
read from ``/proc/PID/stat`` (user + system, every thread) before and after a run, say
what a call costs each process. The load generator's own CPU per call is the yardstick:
when it moves between two runs, the machine's speed moved, not the stack's.

Processes are found by role from the ports they listen on: ``nginx`` holds the gateway
port (behind it, ``gateway`` is the gunicorn processes started beside it); without an
edge, gunicorn holds the port itself. ``inference`` is whatever holds the inference port,
with its descendants.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.machine import PROC, command_line, listening_pids

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOAD_GENERATOR = "load generator"


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (empty when gone)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return []
    return text.rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all its threads (0 when it is gone)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0


def _parents() -> dict[int, int]:
    """Every process's parent pid."""
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            parents[int(entry.name)] = int(fields[1])
    return parents


def _descendants(roots: list[int], parents: dict[int, int]) -> list[int]:
    """``roots`` and every process below them."""
    found = set(roots)
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found} - found
        found |= below
        grew = bool(below)
    return sorted(found)


@dataclass(frozen=True)
class StackProcesses:
    """The processes of a stack, by role (``nginx``, ``gateway``, ``inference``)."""

    roles: dict[str, list[int]]

    @classmethod
    def find(cls, gateway_port: int, inference_port: int | None) -> StackProcesses:
        """The processes behind the gateway port and the inference port, by role."""
        parents = _parents()
        front = listening_pids(gateway_port)
        roles: dict[str, list[int]] = {}
        nginx = [pid for pid in front if command_line(pid).startswith("nginx")]
        if nginx:
            roles["nginx"] = nginx
            starters = {parents.get(pid) for pid in nginx} - set(nginx) - {None}
            beside = _descendants([p for p in starters if p is not None], parents)
            roles["gateway"] = [pid for pid in beside if "gunicorn" in command_line(pid)]
        else:
            roles["gateway"] = _descendants(front, parents)
        if inference_port is not None:
            roles["inference"] = _descendants(listening_pids(inference_port), parents)
        return cls({role: pids for role, pids in roles.items() if pids})

    def snapshot(self) -> dict[str, float]:
        """CPU seconds so far of each role, and of this process (the load generator)."""
        taken = {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in self.roles.items()}
        taken[LOAD_GENERATOR] = cpu_seconds(os.getpid())
        return taken


def per_call(before: dict[str, float], after: dict[str, float], calls: int) -> dict[str, float]:
    """CPU seconds per call of each role between two snapshots, and the stack's sum."""
    spent = {role: (after[role] - before.get(role, 0.0)) / calls for role in after}
    spent["stack"] = sum(value for role, value in spent.items() if role != LOAD_GENERATOR)
    return spent
