"""Merge concurrent small requests of one worker process into one ModelInfer call.

Leader/follower, with no timer: a request arriving while none is in flight is sent at
once (a lone request never waits). Requests arriving while a call is in flight queue
up; when that call returns, all queued requests (up to ``max_rows`` rows, same model
schema) go out together as one call, led by the first of them. Under load each gRPC
call and each model call then carries several rows, which cuts the per-call cost on
both sides; at concurrency 1 nothing changes. Each request is converted (and
validated) on its own beforehand, so a bad value still fails only its own request.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway import metrics
from gateway.client import Scores, deadline_passed
from gateway.convert import Batch, concat_batches
from gateway.errors import ApiError
from proto.codec import ModelSchema

Infer = Callable[[ModelSchema, Batch, float], Scores]
"""Score a batch within a timeout (seconds)."""


@dataclass(eq=False)
class _Request:
    """One waiting request: its input, then its outcome."""

    schema: ModelSchema
    batch: Batch
    deadline: float  # time.monotonic() by which the request must be answered
    done: threading.Event = field(default_factory=threading.Event)
    scores: Scores | None = None
    error: BaseException | None = None
    lead: list[_Request] | None = None  # set when this request must send a group

    def outcome(self) -> Scores:
        """Return the scores, or raise the call's error."""
        if self.error is not None:
            raise self.error
        if self.scores is None:  # pragma: no cover - set before done is
            raise RuntimeError("request finished without scores")
        return self.scores


class Coalescer:
    """Send small requests through ``infer``, merged while a call is in flight."""

    def __init__(
        self, infer: Infer, max_rows: int, deadline_s: float, retry_after_s: int = 1
    ) -> None:
        """Each request is answered within ``deadline_s``; ``retry_after_s`` goes with a 504."""
        self._retry_after_s = retry_after_s
        self._infer = infer
        self._max_rows = max_rows
        self._deadline_s = deadline_s
        self._lock = threading.Lock()
        self._queue: list[_Request] = []
        self._busy = False

    def infer(self, schema: ModelSchema, batch: Batch) -> Scores:
        """Score ``batch`` alone or together with concurrent requests."""
        me = _Request(schema, batch, time.monotonic() + self._deadline_s)
        with self._lock:
            if self._busy:
                self._queue.append(me)
                group = None
            else:
                self._busy = True
                group = [me]
        if group is None:
            if not me.done.wait(max(0.0, me.deadline - time.monotonic())):
                with self._lock:
                    if me in self._queue:  # still waiting its turn at its deadline: give up
                        self._queue.remove(me)
                        raise deadline_passed(self._retry_after_s)
                me.done.wait()  # taken into a group just now: its call ends by its deadline
            if me.lead is None:
                return me.outcome()
            group = me.lead
        try:
            self._send(group)
        finally:
            self._hand_over()
        return me.outcome()

    def _send(self, group: list[_Request]) -> None:
        """One call for the whole group; every member gets its slice or the error."""
        metrics.observe_coalesced(len(group))
        try:
            timeout = min(r.deadline for r in group) - time.monotonic()
            if timeout <= 0:
                raise deadline_passed(self._retry_after_s)
            if len(group) == 1:
                group[0].scores = self._infer(group[0].schema, group[0].batch, timeout)
                return
            probability, label, version = self._infer(
                group[0].schema, concat_batches([r.batch for r in group]), timeout
            )
            start = 0
            for request in group:
                stop = start + request.batch.n_rows
                request.scores = Scores(probability[start:stop], label[start:stop], version)
                start = stop
        except Exception as error:  # handed to every member to raise
            for request in group:
                request.error = _clone(error)
        finally:
            for request in group[1:]:
                request.done.set()

    def _hand_over(self) -> None:
        """Pass the queued requests to the first of them, or mark the line idle."""
        with self._lock:
            if not self._queue:
                self._busy = False
                return
            first = self._queue[0]
            group: list[_Request] = []
            rows = 0
            for request in self._queue:
                if request.schema is first.schema and (
                    not group or rows + request.batch.n_rows <= self._max_rows
                ):
                    group.append(request)
                    rows += request.batch.n_rows
            self._queue = [r for r in self._queue if r not in group]
        first.lead = group
        first.done.set()


def _clone(error: Exception) -> Exception:
    """A copy of ``error`` for one thread to raise (tracebacks are per raise)."""
    if isinstance(error, ApiError):
        return dataclasses.replace(error)
    try:
        return type(error)(*error.args)
    except TypeError:  # pragma: no cover - an exception with a custom constructor
        return error
