"""What the benchmark ran on: CPU, cores, memory, Python, date; and process memory."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

PROC = Path("/proc")


def _first(path: Path, prefix: str) -> str:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def describe() -> dict[str, str]:
    """Machine facts for the report."""
    mem_kb = _first(PROC / "meminfo", "MemTotal").split()[0]
    ram = f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else "unknown"
    return {
        "CPU": _first(PROC / "cpuinfo", "model name"),
        "cores": f"{len(os.sched_getaffinity(0))} usable ({os.cpu_count()} online)",
        "RAM": ram,
        "Python": platform.python_version(),
        "OS": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load average (1/5/15 min) at the end": " / ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def listening_pids(port: int) -> list[int]:
    """Processes holding a listening TCP socket on ``port`` (from /proc; same user or root)."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    pids = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            pids.append(int(entry.name))
    return sorted(pids)


def command_line(pid: int) -> str:
    """The command line of process ``pid``, words joined by spaces (empty when gone)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pids_matching(text: str) -> list[int]:
    """Processes whose command line contains ``text``."""
    return sorted(
        int(entry.name)
        for entry in PROC.iterdir()
        if entry.name.isdigit()
        and int(entry.name) != os.getpid()
        and text in command_line(int(entry.name))
    )


def _status_mib(pids: list[int], field: str) -> float:
    """Summed ``field`` (a kB figure of ``/proc/PID/status``) of ``pids`` in MiB (gone: 0)."""
    total_kb = 0
    for pid in pids:
        value = _first(PROC / str(pid) / "status", field)
        if value != "unknown":
            total_kb += int(value.split()[0])
    return total_kb / 1024


def rss_mib(pids: list[int]) -> float:
    """Summed resident memory of ``pids`` in MiB (processes gone count 0)."""
    return _status_mib(pids, "VmRSS")


def peak_rss_mib(pids: list[int]) -> float:
    """Summed peak resident memory (VmHWM, since each process started) of ``pids`` in MiB."""
    return _status_mib(pids, "VmHWM")


def load_average() -> str:
    """The 1, 5 and 15-minute load averages."""
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"
