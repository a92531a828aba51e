"""Edge modes of the benchmark: hostile connections and memory under batch load.

``--slow-clients``: single-row p50/p99 at concurrency 1 and calls/s at concurrency 8
of a well-behaved client, first undisturbed, then while ``--idle`` connections that
send nothing and ``--slow`` connections that send a request's headers one byte at a
time are held open (each stays open, trickling, for the whole disturbed run).

``--memory``: ``--concurrency`` clients each send ``--rounds`` calls of every row at
once; the resident memory of every gateway and inference process is sampled every
50 ms. Reports each side's peak and settled (5 s after the load) memory, the answers
by status (a 503 with Retry-After is retried after it, as the contract says), and
whether any process died. Loops are bounded and send only to loopback.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from bench import http_load, machine
from bench.http_load import Session, Target, percentile

SLOW_BYTE_EVERY_S = 2.0


@contextmanager
def hostile_connections(target: Target, idle: int, slow: int) -> Iterator[Counter[str]]:
    """Hold ``idle`` silent and ``slow`` header-trickling connections open meanwhile."""
    stop = threading.Event()
    sockets: list[socket.socket] = []
    state: Counter[str] = Counter()
    for _ in range(idle):
        sockets.append(socket.create_connection((target.host, target.port), timeout=5))
    header = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Pad: "

    def trickle(conn: socket.socket) -> None:
        position = 0
        while not stop.wait(SLOW_BYTE_EVERY_S):
            try:
                conn.send(header[position % len(header) : position % len(header) + 1])
            except OSError:
                state["slow connections closed by the server"] += 1
                try:  # reopen, so the disturbance lasts the whole run
                    conn = socket.create_connection((target.host, target.port), timeout=5)
                except OSError:
                    return
            position += 1

    threads = []
    for _ in range(slow):
        conn = socket.create_connection((target.host, target.port), timeout=5)
        sockets.append(conn)
        conn.send(header[:10])
        threads.append(threading.Thread(target=trickle, args=(conn,), daemon=True))
    for thread in threads:
        thread.start()
    try:
        yield state
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=SLOW_BYTE_EVERY_S + 1)
        for conn in sockets:
            conn.close()


def well_behaved(target: Target, bodies: list[bytes], calls: int, concurrency: int) -> dict:
    """Single-row latency at concurrency 1 and throughput at ``concurrency``."""
    single = http_load.sequential(target, bodies, calls, warmup=50)
    busy, wall = http_load.concurrent(target, bodies[: calls * 2], concurrency)
    ok = [s.seconds for s in single if s.status == 200]
    return {
        "p50": percentile(ok, 50),
        "p99": percentile(ok, 99),
        "errors": sum(s.status != 200 for s in single + busy),
        "rate": len(busy) / wall,
    }


def run_slow_clients(args: argparse.Namespace, bodies: list[bytes]) -> str:
    target = Target.parse(args.url)
    calls = args.single_calls
    calm = well_behaved(target, bodies, calls, args.concurrency)
    print(f"undisturbed: {calm}")
    with hostile_connections(target, args.idle, args.slow) as state:
        time.sleep(1.0)  # let every hostile connection be accepted
        stormy = well_behaved(target, bodies, calls, args.concurrency)
    print(f"with {args.idle} idle + {args.slow} slow: {stormy} {dict(state)}")
    ratio = stormy["rate"] / calm["rate"]
    return "\n".join(
        [
            f"| client | single-row p50 / p99 (c=1, {calls} calls) "
            f"| calls/s (c={args.concurrency}, {2 * calls} calls) | errors |",
            "|---|---|---|---|",
            f"| undisturbed | {calm['p50'] * 1e3:.2f} / {calm['p99'] * 1e3:.2f} ms "
            f"| {calm['rate']:.0f} | {calm['errors']} |",
            f"| with {args.idle} idle + {args.slow} slow-header connections held open "
            f"| {stormy['p50'] * 1e3:.2f} / **{stormy['p99'] * 1e3:.2f} ms** "
            f"| {stormy['rate']:.0f} (**{ratio:.0%}** of undisturbed) | {stormy['errors']} |",
            "",
        ]
    )


def _sides(args: argparse.Namespace) -> dict[str, list[int]]:
    """The processes of each side: gateway (front and gunicorn), inference server."""
    target = Target.parse(args.url)
    gateway = machine.listening_pids(target.port) + machine.pids_matching("gateway.gunicorn_conf")
    return {
        "gateway": sorted(set(gateway)),
        "inference": machine.listening_pids(args.inference_port),
    }


def run_memory(args: argparse.Namespace, body: bytes, n_rows: int) -> str:
    target = Target.parse(args.url)
    sides = _sides(args)
    baseline = {side: machine.rss_mib(pids) for side, pids in sides.items()}
    peak = dict(baseline)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            for side, pids in sides.items():
                peak[side] = max(peak[side], machine.rss_mib(pids))

    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    seconds: list[float] = []

    def client() -> None:
        session = Session(target, timeout=120.0)
        try:
            for _ in range(args.rounds):
                for _attempt in range(20):  # a 503 is retried after its Retry-After
                    started = time.perf_counter()
                    status, payload = session.post("/predict", body)
                    if status == 200 and len(json.loads(payload)) != n_rows:
                        status = -1
                    with lock:
                        statuses[status] += 1
                        if status == 200:
                            seconds.append(time.perf_counter() - started)
                    if status != 503:
                        break
                    time.sleep(1.0)
        finally:
            session.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    http_load.run_threads(client, args.concurrency)
    done.set()
    sampler.join()
    time.sleep(5.0)
    settled = {side: machine.rss_mib(pids) for side, pids in sides.items()}
    alive = {side: all(machine.rss_mib([pid]) > 0 for pid in pids) for side, pids in sides.items()}
    print(f"memory: baseline {baseline} peak {peak} settled {settled} statuses {dict(statuses)}")
    lost = sum(count for status, count in statuses.items() if status not in (200, 503))
    median = statistics.median(seconds) if seconds else float("nan")
    lines = [
        f"{args.concurrency} clients x {args.rounds} calls of {n_rows} rows "
        f"({len(body) / 1e6:.1f} MB each); answers: "
        + ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
        + f"; lost calls: **{lost}**; median 200 call {median:.2f} s",
        "",
        "| side (processes) | before | peak | settled 5 s after | all processes alive |",
        "|---|---|---|---|---|",
    ]
    for side, pids in sides.items():
        lines.append(
            f"| {side} ({len(pids)}) | {baseline[side]:.0f} MiB | **{peak[side]:.0f} MiB** "
            f"| {settled[side]:.0f} MiB | {'yes' if alive[side] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"
