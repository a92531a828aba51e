"""The dynamic batcher with real threads: coalescing, bounds, waiting, error isolation."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from inference.batcher import BatcherClosedError, DynamicBatcher, Outputs, merge_columns

POISON = 666.0


class Scorer:
    """A deterministic predict function that records its calls and can be held.

    Outputs "probability" = x0 / 1000 (so each row's answer is known) and "label" = x0 > 0:
    the batcher knows no output by name. A row with x0 == POISON makes the whole call
    fail, like a request the model cannot score.
    """

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def __call__(self, columns: Mapping[str, Any], n_rows: int) -> Outputs:
        self.calls.append(n_rows)
        self.entered.set()
        self.hold.wait(10)
        x0 = columns.get("x0", np.full(n_rows, np.nan))
        if np.any(x0 == POISON):
            raise ValueError("poisoned row")
        return {"probability": x0 / 1000, "label": (x0 > 0).astype(np.int64)}


def cols(*x0: float) -> dict[str, np.ndarray]:
    return {"x0": np.array(x0, dtype=np.float64)}


@pytest.fixture
def scorer() -> Scorer:
    return Scorer()


def submit_async(pool: ThreadPoolExecutor, batcher: DynamicBatcher, *x0: float) -> Future[Outputs]:
    return pool.submit(batcher.submit, cols(*x0), len(x0))


def hold_first_call(scorer: Scorer, batcher: DynamicBatcher, pool: ThreadPoolExecutor):
    """Start one request and keep the model busy with it until scorer.hold is set."""
    scorer.hold.clear()
    first = submit_async(pool, batcher, 1.0)
    assert scorer.entered.wait(5)
    return first


def wait_queued(batcher: DynamicBatcher, n: int) -> None:
    deadline = time.monotonic() + 5
    while batcher.queued != n:
        assert time.monotonic() < deadline, f"queue never reached {n}"
        time.sleep(0.001)


def test_a_lone_request_is_scored_at_once(scorer: Scorer) -> None:
    batcher = DynamicBatcher(scorer, max_rows=100, max_delay_s=1.0)
    started = time.perf_counter()
    scores = batcher.submit(cols(5.0, -2.0), 2)
    assert time.perf_counter() - started < 0.5  # the 1 s delay applies only with company
    np.testing.assert_array_equal(scores["probability"], [0.005, -0.002])
    np.testing.assert_array_equal(scores["label"], [1, 0])
    assert scorer.calls == [2]
    batcher.close()


def test_queued_requests_are_coalesced_and_split_back(scorer: Scorer) -> None:
    seen: list[tuple[int, int]] = []
    batcher = DynamicBatcher(
        scorer,
        max_rows=100,
        max_delay_s=0,
        on_batch=lambda rows, n, s: seen.append((rows, n)),
    )
    with ThreadPoolExecutor(8) as pool:
        first = hold_first_call(scorer, batcher, pool)
        rest = [submit_async(pool, batcher, float(i), float(-i)) for i in range(2, 7)]
        wait_queued(batcher, 5)
        scorer.hold.set()
        assert first.result(5)["probability"].tolist() == [0.001]
        for i, future in zip(range(2, 7), rest, strict=True):
            scores = future.result(5)
            assert scores["probability"].tolist() == [i / 1000, -i / 1000]
            assert scores["label"].tolist() == [1, 0]
    assert scorer.calls == [1, 10]
    assert seen == [(1, 1), (10, 5)]
    batcher.close()


def test_batches_respect_max_rows_and_never_split_a_request(scorer: Scorer) -> None:
    batcher = DynamicBatcher(scorer, max_rows=4, max_delay_s=0)
    with ThreadPoolExecutor(8) as pool:
        first = hold_first_call(scorer, batcher, pool)
        futures = []
        for n in (3, 1, 2, 2, 6):  # queued in this order
            futures.append(submit_async(pool, batcher, *([2.0] * n)))
            wait_queued(batcher, len(futures))
        scorer.hold.set()
        first.result(5)
        assert [len(f.result(5)["probability"]) for f in futures] == [3, 1, 2, 2, 6]
    # 3+1 fit in 4; 2+2 fit; the 6-row request exceeds max_rows and runs alone.
    assert scorer.calls == [1, 4, 4, 6]
    batcher.close()


def test_a_batch_with_company_waits_for_late_requests(scorer: Scorer) -> None:
    batcher = DynamicBatcher(scorer, max_rows=100, max_delay_s=1.0)
    with ThreadPoolExecutor(8) as pool:
        first = hold_first_call(scorer, batcher, pool)
        early = [submit_async(pool, batcher, 2.0), submit_async(pool, batcher, 3.0)]
        wait_queued(batcher, 2)
        scorer.entered.clear()
        scorer.hold.set()
        first.result(5)
        wait_queued(batcher, 0)  # the worker took both and now waits up to 1 s for more
        late = submit_async(pool, batcher, 4.0)
        assert [f.result(5)["probability"].tolist() for f in [*early, late]] == [
            [0.002],
            [0.003],
            [0.004],
        ]
    assert scorer.calls == [1, 3]
    batcher.close()


def test_one_bad_request_fails_alone(scorer: Scorer) -> None:
    batcher = DynamicBatcher(scorer, max_rows=100, max_delay_s=0)
    with ThreadPoolExecutor(8) as pool:
        first = hold_first_call(scorer, batcher, pool)
        good1 = submit_async(pool, batcher, 2.0)
        bad = submit_async(pool, batcher, 3.0, POISON)
        good2 = submit_async(pool, batcher, 4.0)
        wait_queued(batcher, 3)
        scorer.hold.set()
        first.result(5)
        assert good1.result(5)["probability"].tolist() == [0.002]
        assert good2.result(5)["probability"].tolist() == [0.004]
        with pytest.raises(ValueError, match="poisoned row"):
            bad.result(5)
    # the coalesced call failed, then each request was retried alone
    assert scorer.calls == [1, 4, 1, 2, 1]
    batcher.close()


def test_a_model_answering_the_wrong_length_is_an_error() -> None:
    def short(columns: Mapping[str, Any], n_rows: int) -> Outputs:
        return {"probability": np.zeros(n_rows), "label": np.zeros(n_rows - 1, np.int64)}

    batcher = DynamicBatcher(short, max_rows=10, max_delay_s=0)
    with pytest.raises(RuntimeError, match="1 label for 2 rows"):
        batcher.submit(cols(1.0, 2.0), 2)
    batcher.close()


def test_a_failing_metrics_hook_does_not_fail_requests(scorer: Scorer) -> None:
    def broken_hook(*_: object) -> None:
        raise KeyError("metrics")

    batcher = DynamicBatcher(scorer, max_rows=10, max_delay_s=0, on_batch=broken_hook)
    assert batcher.submit(cols(7.0), 1)["probability"].tolist() == [0.007]
    batcher.close()


def test_close_finishes_queued_requests_then_refuses_new_ones(scorer: Scorer) -> None:
    batcher = DynamicBatcher(scorer, max_rows=1, max_delay_s=0)
    with ThreadPoolExecutor(4) as pool:
        first = hold_first_call(scorer, batcher, pool)
        queued = submit_async(pool, batcher, 2.0)
        wait_queued(batcher, 1)
        closer = pool.submit(batcher.close, 5)
        time.sleep(0.05)
        with pytest.raises(BatcherClosedError):
            batcher.submit(cols(3.0), 1)
        scorer.hold.set()
        closer.result(5)
        assert first.result(5)["probability"].tolist() == [0.001]
        assert queued.result(5)["probability"].tolist() == [0.002]


def test_merge_fills_columns_a_request_lacks() -> None:
    merged = merge_columns(
        [
            ({"x0": np.array([1.0]), "x1": np.array([b"wed"], dtype=object)}, 1),
            ({}, 2),
            ({"x0": np.array([4.0])}, 1),
        ]
    )
    np.testing.assert_array_equal(merged["x0"], [1.0, np.nan, np.nan, 4.0])
    assert merged["x1"].tolist() == [b"wed", None, None, None]


@pytest.mark.parametrize(("rows", "delay"), [(0, 0.0), (1, -1.0)])
def test_bounds_are_validated(rows: int, delay: float) -> None:
    with pytest.raises(ValueError, match="must be >= "):
        DynamicBatcher(lambda c, n: None, max_rows=rows, max_delay_s=delay)  # type: ignore[arg-type,return-value]


def test_many_threads_get_their_own_rows(scorer: Scorer) -> None:
    batcher = DynamicBatcher(scorer, max_rows=64, max_delay_s=0.0005)
    values = np.arange(1.0, 401.0)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda v: batcher.submit(cols(v), 1)["probability"][0], values))
    np.testing.assert_array_equal(results, values / 1000)
    assert sum(scorer.calls) == 400
    batcher.close()


def test_a_lone_request_runs_on_its_callers_thread() -> None:
    threads: list[threading.Thread] = []

    def predict(columns: Mapping[str, Any], n_rows: int) -> Outputs:
        threads.append(threading.current_thread())
        return {"probability": np.zeros(n_rows)}

    before = threading.active_count()
    batcher = DynamicBatcher(predict, max_rows=10, max_delay_s=0)
    assert threading.active_count() == before  # the batcher keeps no thread of its own
    batcher.submit(cols(1.0), 1)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(batcher.submit, cols(2.0), 1).result(5)
    assert threads[0] is threading.main_thread()
    assert threads[1] is not threading.main_thread()  # the pool's thread, no hand-off
    batcher.close()
