"""Merging concurrent small requests: order, isolation of results and errors, no waiting alone.

The scoring function here is a plain deterministic function of the rows (the score of a
row is its x0 value), so every request can check it got exactly its own rows' scores.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from gateway.client import Scores
from gateway.coalesce import Coalescer
from gateway.convert import Batch, concat_batches
from gateway.errors import ApiError
from proto.codec import ModelSchema, TensorSpec

SCHEMA = ModelSchema("m", "1", (TensorSpec("x0", "FP64"), TensorSpec("x1", "BYTES")))


def batch(*values: float) -> Batch:
    return Batch(len(values), (np.array(values), [str(v).encode() for v in values]))


class Scorer:
    """Scores each row by its x0, answered as version ``v<call number>``; the first call
    can be held open to let others queue."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.timeouts: list[float] = []
        self.hold = threading.Event()
        self.entered = threading.Event()

    def __call__(self, schema: ModelSchema, rows: Batch, timeout: float):  # type: ignore[no-untyped-def]
        self.calls.append(rows.n_rows)
        self.timeouts.append(timeout)
        if len(self.calls) == 1:
            self.entered.set()
            assert self.hold.wait(10)
        x0 = rows.columns[0]
        assert isinstance(x0, np.ndarray)
        if np.isnan(x0).any():
            raise ApiError(503, "down")
        return Scores(x0 * 2, (x0 > 0).astype(np.int64), f"v{len(self.calls)}")


def test_concat_batches_keeps_order() -> None:
    merged = concat_batches([batch(1.0), batch(2.0, 3.0)])
    assert merged.n_rows == 3
    assert merged.columns[0].tolist() == [1.0, 2.0, 3.0]  # type: ignore[union-attr]
    assert merged.columns[1] == [b"1.0", b"2.0", b"3.0"]


def test_a_lone_request_is_sent_at_once() -> None:
    scorer = Scorer()
    scorer.hold.set()
    coalescer = Coalescer(scorer, max_rows=100, deadline_s=5)
    probability, label, version = coalescer.infer(SCHEMA, batch(1.5, -2.0))
    assert version == "v1"
    assert probability.tolist() == [3.0, -4.0]
    assert label.tolist() == [1, 0]
    assert scorer.calls == [2]


def test_requests_queued_behind_a_call_share_the_next_one() -> None:
    scorer = Scorer()
    coalescer = Coalescer(scorer, max_rows=100, deadline_s=10)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(coalescer.infer, SCHEMA, batch(100.0))
        assert scorer.entered.wait(5)
        rest = [
            pool.submit(coalescer.infer, SCHEMA, batch(float(i), float(-i))) for i in range(1, 7)
        ]
        while len(coalescer._queue) < 6:  # all six are queued behind the held call
            threading.Event().wait(0.01)
        scorer.hold.set()
        assert first.result(5)[0].tolist() == [200.0]
        assert first.result(5).version == "v1"
        for i, future in enumerate(rest, start=1):
            probability, label, version = future.result(5)
            assert version == "v2"  # every member of a merged call: the version that scored it
            assert probability.tolist() == [2.0 * i, -2.0 * i]
            assert label.tolist() == [1, 0]
    assert scorer.calls == [1, 12]  # the six queued requests went out as one call


def test_a_group_is_capped_by_rows_and_kept_to_one_schema() -> None:
    scorer = Scorer()
    other = ModelSchema("m", "2", SCHEMA.inputs)
    coalescer = Coalescer(scorer, max_rows=4, deadline_s=10)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(coalescer.infer, SCHEMA, batch(1.0))
        assert scorer.entered.wait(5)
        futures = [pool.submit(coalescer.infer, SCHEMA, batch(2.0, 2.0)) for _ in range(3)]
        futures.append(pool.submit(coalescer.infer, other, batch(3.0)))
        while len(coalescer._queue) < 4:
            threading.Event().wait(0.01)
        scorer.hold.set()
        first.result(5)
        assert [f.result(5)[0].tolist() for f in futures] == [[4.0, 4.0]] * 3 + [[6.0]]
    assert scorer.calls[0] == 1
    assert sorted(scorer.calls[1:]) == [1, 2, 4]


def test_an_error_reaches_every_member_of_the_group() -> None:
    scorer = Scorer()
    coalescer = Coalescer(scorer, max_rows=100, deadline_s=10)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(coalescer.infer, SCHEMA, batch(1.0))
        assert scorer.entered.wait(5)
        bad = [pool.submit(coalescer.infer, SCHEMA, batch(float("nan"))) for _ in range(3)]
        while len(coalescer._queue) < 3:
            threading.Event().wait(0.01)
        scorer.hold.set()
        first.result(5)
        for future in bad:
            with pytest.raises(ApiError) as caught:
                future.result(5)
            assert caught.value.status == 503
    scorer.calls.clear()
    assert coalescer.infer(SCHEMA, batch(5.0))[0].tolist() == [10.0]  # the line is idle again


def test_a_request_that_waits_too_long_gets_504() -> None:
    scorer = Scorer()
    coalescer = Coalescer(scorer, max_rows=100, deadline_s=0.05)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(coalescer.infer, SCHEMA, batch(1.0))
        assert scorer.entered.wait(5)
        with pytest.raises(ApiError) as caught:
            coalescer.infer(SCHEMA, batch(2.0))
        assert caught.value.status == 504
        assert coalescer._queue == []  # it left the line: nobody will hand it a group
        scorer.hold.set()
        first.result(5)
    assert coalescer.infer(SCHEMA, batch(3.0))[0].tolist() == [6.0]


def test_a_queued_request_keeps_its_own_deadline() -> None:
    scorer = Scorer()
    coalescer = Coalescer(scorer, max_rows=100, deadline_s=2.0)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(coalescer.infer, SCHEMA, batch(1.0))
        assert scorer.entered.wait(5)
        started = time.monotonic()
        queued = pool.submit(coalescer.infer, SCHEMA, batch(2.0))
        threading.Event().wait(0.5)  # it waits its turn behind the held call
        scorer.hold.set()
        assert queued.result(5)[0].tolist() == [4.0]
        first.result(5)
    # its own call got what was left of its 2 s, not a fresh deadline
    assert scorer.timeouts[1] <= 2.0 - 0.5 + 0.05
    assert scorer.timeouts[1] <= 2.0 - (time.monotonic() - started) + 0.5


def test_a_group_past_its_deadline_is_not_sent() -> None:
    scorer = Scorer()
    coalescer = Coalescer(scorer, max_rows=100, deadline_s=0.2)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(coalescer.infer, SCHEMA, batch(1.0))
        assert scorer.entered.wait(5)
        late = pool.submit(coalescer.infer, SCHEMA, batch(2.0))
        while not coalescer._queue:
            threading.Event().wait(0.01)
        threading.Event().wait(0.3)  # the queued request's deadline passes while queued
        scorer.hold.set()
        with pytest.raises(ApiError) as caught:
            late.result(5)
        assert caught.value.status == 504
        first.result(5)
    assert scorer.calls == [1]  # only the first call went out
