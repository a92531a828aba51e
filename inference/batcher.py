"""Dynamic batching: concurrent requests coalesced into one model call, like Triton's.

Leader/follower, with no thread of its own: a request arriving while no model call runs
is scored at once on its caller's thread (a lone request never waits and is never
handed to another thread). Requests arriving while a call runs queue up; when it ends,
the caller that ran it hands the oldest queued request every queued request that still
fits under ``max_rows``, and that request's thread runs them as one model call. A batch
that already has company waits up to ``max_delay_s`` for more. A request larger than
``max_rows`` runs alone (requests are never split). If a coalesced call fails, each
request is retried alone, so one bad request fails only itself.
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
    """A submitted request waiting for its scores, or for a batch to run."""

    __slots__ = ("batch", "columns", "done", "error", "n_rows", "scores")

    def __init__(self, columns: Columns, n_rows: int) -> None:
        self.columns = columns
        self.n_rows = n_rows
        self.done = threading.Event()
        self.scores: Outputs | None = None
        self.error: BaseException | None = None
        self.batch: list[_Pending] | None = None  # set when this request must run a batch

    def outcome(self) -> Outputs:
        """The scores, or raise the model's error."""
        if self.scores is None:
            raise self.error or RuntimeError("batch finished without scores")
        return self.scores


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
        self._running = False  # a model call runs (or is being handed over)
        self._closed = False

    @property
    def queued(self) -> int:
        """Requests waiting for a model call (not counting those in the running one)."""
        with self._cond:
            return len(self._queue)

    def submit(self, columns: Columns, n_rows: int) -> Outputs:
        """Score one request's ``n_rows`` rows; blocks until its batch has run.

        Raises:
            BatcherClosedError: after :meth:`close`.
            Exception: whatever the model raised for this request.

        """
        me = _Pending(columns, n_rows)
        with self._cond:
            if self._closed:
                raise BatcherClosedError("the server is shutting down")
            if self._running:
                self._queue.append(me)
                self._cond.notify_all()  # a leader waiting for company
            else:
                self._running = True
                me.batch = [me]
        if me.batch is None:
            me.done.wait()
            if me.batch is None:  # scored in another request's batch
                return me.outcome()
        try:
            self._run(self._gather(me.batch))
        finally:
            self._hand_over()
        return me.outcome()

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests; return once the queued ones are scored (or ``timeout``)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._running, timeout)

    def _fill(self, batch: list[_Pending], rows: int) -> int:
        """Move queued requests into ``batch`` while they fit; return its row count."""
        queue = self._queue
        while queue and rows + queue[0].n_rows <= self._max_rows:
            item = queue.popleft()
            batch.append(item)
            rows += item.n_rows
        return rows

    def _gather(self, batch: list[_Pending]) -> list[_Pending]:
        """A batch with company waits up to ``max_delay_s`` for more requests that fit."""
        if len(batch) == 1 or self._max_delay_s == 0:
            return batch
        rows = sum(item.n_rows for item in batch)
        deadline = time.monotonic() + self._max_delay_s
        with self._cond:
            while True:
                rows = self._fill(batch, rows)
                remaining = deadline - time.monotonic()
                # full, the next request does not fit, closing, or out of time
                if rows >= self._max_rows or self._queue or self._closed or remaining <= 0:
                    return batch
                self._cond.wait(remaining)

    def _hand_over(self) -> None:
        """Give the queued requests that fit to the oldest of them, or mark the batcher idle."""
        with self._cond:
            if not self._queue:
                self._running = False
                self._cond.notify_all()  # close() waits for this
                return
            first = self._queue.popleft()
            batch = [first]
            self._fill(batch, first.n_rows)
        first.batch = batch
        first.done.set()

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
                batch[0].error, batch[0].batch = error, None
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
            item.batch = None
            item.done.set()
