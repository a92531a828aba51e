"""Dynamic batching: concurrent requests coalesced into one model call, like Triton's.

Callers (gRPC worker threads) :meth:`~DynamicBatcher.submit` their columns and block;
one worker thread takes the oldest queued request plus every queued request that still
fits under ``max_rows``, runs the model once and hands each caller its slice. When a
batch already has company, it waits up to ``max_delay_s`` for more; a lone request
never waits. A request larger than ``max_rows`` runs alone (requests are never split).
If a coalesced call fails, each request is retried alone, so one bad request fails only
itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

Columns = Mapping[str, NDArray[Any]]
Outputs = dict[str, NDArray[Any]]
"""A model call's outputs by name, each one value per row."""
PredictFn = Callable[[Columns, int], Outputs]
BatchHook = Callable[[int, int, float], None]
"""Called after every model call with its rows, its request count and seconds."""


class BatcherClosedError(RuntimeError):
    """The batcher no longer accepts requests (the server is shutting down)."""


class _Pending:
    """A submitted request waiting for its scores."""

    __slots__ = ("columns", "done", "error", "n_rows", "scores")

    def __init__(self, columns: Columns, n_rows: int) -> None:
        self.columns = columns
        self.n_rows = n_rows
        self.done = threading.Event()
        self.scores: Outputs | None = None
        self.error: BaseException | None = None


def _missing_like(template: NDArray[Any], n_rows: int) -> NDArray[Any]:
    """An all-missing column of ``n_rows`` with the kind of ``template``."""
    if template.dtype.kind == "f":
        return np.full(n_rows, np.nan)
    return np.full(n_rows, None, dtype=object)


def merge_columns(parts: list[tuple[Columns, int]]) -> dict[str, NDArray[Any]]:
    """Concatenate several requests' columns; a column one request lacks is missing there."""
    names = dict.fromkeys(name for columns, _ in parts for name in columns)
    merged: dict[str, NDArray[Any]] = {}
    for name in names:
        template = next(columns[name] for columns, _ in parts if name in columns)
        merged[name] = np.concatenate(
            [
                columns[name] if name in columns else _missing_like(template, n_rows)
                for columns, n_rows in parts
            ]
        )
    return merged


class DynamicBatcher:
    """Coalesces concurrent :meth:`submit` calls into single ``predict`` calls."""

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_rows: int,
        max_delay_s: float,
        on_batch: BatchHook | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        if max_delay_s < 0:
            raise ValueError(f"max_delay_s must be >= 0, got {max_delay_s}")
        self._predict = predict
        self._max_rows = max_rows
        self._max_delay_s = max_delay_s
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name="dynamic-batcher", daemon=True)
        self._worker.start()

    @property
    def queued(self) -> int:
        """Requests waiting for a model call (not counting the one running)."""
        with self._cond:
            return len(self._queue)

    def submit(self, columns: Columns, n_rows: int) -> Outputs:
        """Score one request's ``n_rows`` rows; blocks until its batch has run.

        Raises:
            BatcherClosedError: after :meth:`close`.
            Exception: whatever the model raised for this request.

        """
        pending = _Pending(columns, n_rows)
        with self._cond:
            if self._closed:
                raise BatcherClosedError("the server is shutting down")
            self._queue.append(pending)
            self._cond.notify()
        pending.done.wait()
        if pending.scores is None:
            raise pending.error or RuntimeError("batch finished without scores")
        return pending.scores

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, finish the queued ones and stop the worker thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout)

    def _fill(self, batch: list[_Pending], rows: int) -> int:
        """Move queued requests into ``batch`` while they fit; return its row count."""
        queue = self._queue
        while queue and rows + queue[0].n_rows <= self._max_rows:
            item = queue.popleft()
            batch.append(item)
            rows += item.n_rows
        return rows

    def _next_batch(self) -> list[_Pending] | None:
        """Block for the next batch; None once closed and drained."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._queue.popleft()
            batch = [first]
            rows = self._fill(batch, first.n_rows)
            if len(batch) > 1 and self._max_delay_s > 0:
                deadline = time.monotonic() + self._max_delay_s
                while rows < self._max_rows and not self._closed and not self._queue:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._cond.wait(remaining):
                        break
                    rows = self._fill(batch, rows)
            return batch

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run(batch)

    def _run(self, batch: list[_Pending]) -> None:
        """Score a batch and hand out the slices; on failure retry each request alone."""
        started = time.perf_counter()
        try:
            if len(batch) == 1:
                columns, n_rows = batch[0].columns, batch[0].n_rows
            else:
                n_rows = sum(item.n_rows for item in batch)
                columns = merge_columns([(item.columns, item.n_rows) for item in batch])
            outputs = self._predict(columns, n_rows)
            for name, values in outputs.items():
                if values.shape[:1] != (n_rows,):
                    raise RuntimeError(f"model returned {len(values)} {name} for {n_rows} rows")
        except Exception as error:
            if len(batch) == 1:
                batch[0].error = error
                batch[0].done.set()
            else:
                log.warning("batch of %d requests failed (%s); retrying each", len(batch), error)
                for item in batch:
                    self._run([item])
            return
        if self._on_batch is not None:
            try:
                self._on_batch(n_rows, len(batch), time.perf_counter() - started)
            except Exception:
                log.exception("batch hook failed")
        offset = 0
        for item in batch:
            end = offset + item.n_rows
            item.scores = {name: values[offset:end] for name, values in outputs.items()}
            offset = end
            item.done.set()
