"""HTTP load against the gateway with the standard library only.

Every worker thread keeps one keep-alive ``http.client`` connection. Loops are bounded
(a number of calls or a duration) and stop by themselves; only loopback URLs are used.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Target:
    """Host and port of the gateway (loopback only)."""

    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            raise ValueError(f"bench only targets loopback, not {parts.hostname!r}")
        return cls(parts.hostname, parts.port or 80)


@dataclass
class Sample:
    """One call: when it started (monotonic s), how long it took (s), its status."""

    started: float
    seconds: float
    status: int
    kind: str = "single"


@dataclass
class Session:
    """A keep-alive connection that reconnects after a failure."""

    target: Target
    timeout: float = 60.0
    connection: http.client.HTTPConnection | None = field(default=None, repr=False)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body``; status 0 means a connection-level failure."""
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(
                    self.target.host, self.target.port, timeout=self.timeout
                )
            try:
                self.connection.request("POST", path, body=body, headers=HEADERS)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    return 0, b""
        return 0, b""  # pragma: no cover - the loop always returns

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, NaN for no values."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


def timed_post(session: Session, body: bytes, kind: str = "single") -> tuple[Sample, bytes]:
    started = time.perf_counter()
    status, payload = session.post("/predict", body)
    return Sample(started, time.perf_counter() - started, status, kind), payload


def sequential(target: Target, bodies: Sequence[bytes], calls: int, warmup: int) -> list[Sample]:
    """``calls`` single-row calls one after another on one keep-alive connection."""
    session = Session(target)
    try:
        for index in range(warmup):
            session.post("/predict", bodies[index % len(bodies)])
        return [timed_post(session, bodies[i % len(bodies)])[0] for i in range(calls)]
    finally:
        session.close()


def concurrent(target: Target, bodies: Sequence[bytes], threads: int) -> tuple[list[Sample], float]:
    """Every body once, by ``threads`` workers with one connection each; (samples, wall s)."""
    counter = itertools.count()
    lock = threading.Lock()
    samples: list[Sample] = []

    def work() -> None:
        session = Session(target)
        mine: list[Sample] = []
        try:
            while True:
                with lock:
                    index = next(counter)
                if index >= len(bodies):
                    break
                mine.append(timed_post(session, bodies[index])[0])
        finally:
            session.close()
            with lock:
                samples.extend(mine)

    started = time.perf_counter()
    run_threads(work, threads)
    return samples, time.perf_counter() - started


def run_threads(work: Callable[[], None], threads: int) -> None:
    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def batch_calls(target: Target, body: bytes, repeat: int, expected_rows: int) -> list[Sample]:
    """The same batch body ``repeat`` times (after one warm-up); checks the answer length."""
    session = Session(target, timeout=120.0)
    try:
        session.post("/predict", body)
        samples = []
        for _ in range(repeat):
            sample, payload = timed_post(session, body, "batch")
            if sample.status == 200 and len(json.loads(payload)) != expected_rows:
                sample.status = -1  # a wrong answer counts as an error
            samples.append(sample)
        return samples
    finally:
        session.close()
