"""The transport-free data plane: model metadata, readiness, batched scoring, version swaps.

It knows the model (a :class:`modeling.predictor.Predictor`) and the tensor specs derived
from :mod:`modeling.schema`, but nothing of gRPC; the servicer is a thin adapter over it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.batcher import Columns, DynamicBatcher, Outputs
from modeling.cleaning import MISSING_TEXT, CleanBatch
from modeling.predictor import Predictor
from modeling.schema import COLUMNS, NUMERIC_COLUMNS
from proto.codec import (
    BASE_LOGIT,
    BYTES,
    CLASS,
    CONTRIBUTIONS,
    EXPLANATION_OUTPUTS,
    FP64,
    INT64,
    LOGIT,
    PROBABILITY,
    CodecError,
    Limits,
    ModelSchema,
    TensorSpec,
)

log = logging.getLogger(__name__)

OUTPUTS = (
    TensorSpec(PROBABILITY, FP64),
    TensorSpec(CLASS, INT64),
    TensorSpec(LOGIT, FP64),
    TensorSpec(BASE_LOGIT, FP64),
    TensorSpec(CONTRIBUTIONS, FP64, (-1, -1)),
)
"""``probability`` is P(y = 1); ``class`` is 1 where it reaches the model's threshold; the
explanation outputs (:data:`proto.codec.EXPLANATION_OUTPUTS`) only when requested."""
PLATFORM = "scoring-service-stacked-ensemble"


def input_specs() -> tuple[TensorSpec, ...]:
    """One input per schema column, in column order: FP64 if numeric, else BYTES."""
    numeric = frozenset(NUMERIC_COLUMNS)
    return tuple(TensorSpec(c, FP64 if c in numeric else BYTES) for c in COLUMNS)


QualityHook = Callable[[Mapping[str, int], Mapping[str, int]], None]
"""Called after every model call with its missing and unrecognised values per column."""
VersionedBatchHook = Callable[[int, int, float, str], None]
"""Called after every model call with its rows, requests, seconds and model version."""
ScoredHook = Callable[[CleanBatch, NDArray[np.float64]], None]
"""Called after every model call with its cleaned rows and their probabilities (drift).
It runs before the callers get their answers: it must only hand the arrays on."""


class ModelNotFoundError(LookupError):
    """A request named a model (or version) this server does not serve."""


class ModelUnavailableError(RuntimeError):
    """The model is unloaded (RepositoryModelUnload): no version answers until a load."""


class ExplanationsBusyError(RuntimeError):
    """Every explanation slot is taken: the caller should retry shortly."""


@dataclass(frozen=True)
class ExplainLimits:
    """How much explaining one server does: rows per call, and calls at once.

    Explaining costs far more than scoring (tree SHAP walks every path of every tree),
    so it runs beside the batcher, never inside it, in at most ``concurrency`` calls;
    one more is refused at once (the caller retries) rather than holding a gRPC thread.
    """

    max_rows: int
    concurrency: int


@dataclass(frozen=True)
class Answer:
    """A call's outputs by name and the model version that computed every one of them."""

    model: ModelSchema
    outputs: dict[str, NDArray[Any]]


class DataPlane:
    """Serves one model: readiness, metadata and scoring, one version at a time.

    Each loaded version has its own dynamic batcher, so a merged batch is always scored
    by one version. A call leases the serving version for its whole length; a swap
    (:meth:`swap`) points new calls at the new version at once, and the old one is closed
    and released once its last lease ends.
    """

    def __init__(
        self,
        predictor: Predictor,
        *,
        max_batch_rows: int,
        max_queue_delay_s: float,
        limits: Limits,
        explain: ExplainLimits,
        on_batch: VersionedBatchHook | None = None,
        on_quality: QualityHook | None = None,
        on_scored: ScoredHook | None = None,
    ) -> None:
        self.limits = limits
        self.explain_limits = explain
        self._explaining = threading.BoundedSemaphore(explain.concurrency)
        self._batching = (max_batch_rows, max_queue_delay_s)
        self._on_batch = on_batch
        self._on_quality = on_quality
        self._on_scored = on_scored
        self.name = predictor.name
        self.input_specs: Mapping[str, TensorSpec] = {s.name: s for s in input_specs()}
        self.output_names = tuple(s.name for s in OUTPUTS)
        self._leases = threading.Condition()
        self._serving: _Served | None = self._serve(predictor)
        self._ready = False

    @property
    def ready(self) -> bool:
        """True once warmed and until :meth:`drain` or :meth:`close`, while a model is served."""
        return self._ready and self._serving is not None

    @property
    def model(self) -> ModelSchema:
        """The serving version's info.

        Raises:
            ModelUnavailableError: after :meth:`unload`.

        """
        served = self._serving
        if served is None:
            raise ModelUnavailableError(f"model {self.name!r} is unloaded")
        return served.info

    @property
    def queued(self) -> int:
        """Requests waiting for a model call of the serving version."""
        served = self._serving
        return 0 if served is None else served.batcher.queued

    @property
    def predictor(self) -> Predictor:
        """The serving version's predictor (see :attr:`model`)."""
        served = self._serving
        if served is None:
            raise ModelUnavailableError(f"model {self.name!r} is unloaded")
        return served.predictor

    def _serve(self, predictor: Predictor) -> _Served:
        """A version ready to take calls: its info and its own batcher."""
        names, groups = predictor.stack.contribution_names()
        info = ModelSchema(
            name=self.name,
            version=str(predictor.version),
            platform=PLATFORM,
            inputs=input_specs(),
            outputs=OUTPUTS,
            missing_text=MISSING_TEXT,
            contribution_names=names,
            contribution_groups=groups,
        )
        on_batch = self._on_batch
        max_rows, max_delay_s = self._batching
        batcher = DynamicBatcher(
            lambda columns, n_rows: self._predict(predictor, columns, n_rows),
            max_rows=max_rows,
            max_delay_s=max_delay_s,
            on_batch=None
            if on_batch is None
            else lambda rows, requests, seconds: on_batch(rows, requests, seconds, info.version),
        )
        return _Served(predictor, info, batcher)

    def warm(self, rows: tuple[int, ...] = (1, 64)) -> float:
        """Score all-missing rows once per size (loads lazy state), mark ready; return seconds."""
        started = time.perf_counter()
        predictor = self.predictor
        for n_rows in rows:
            predictor.predict({}, n_rows)
        self._ready = True
        return time.perf_counter() - started

    def get_model(self, name: str, version: str = "") -> ModelSchema:
        """Return the serving version's info if ``name`` (and ``version``, when given) match.

        An empty name means the one model this server serves.

        Raises:
            ModelNotFoundError: another model, or a version not served (now).
            ModelUnavailableError: after :meth:`unload`.

        """
        return self._match(self.model, name, version)

    def _match(self, model: ModelSchema, name: str, version: str) -> ModelSchema:
        if name not in ("", model.name) or version not in ("", model.version):
            wanted = f"{name!r}" + (f" version {version!r}" if version else "")
            raise ModelNotFoundError(
                f"model {wanted} is not served here (serving {model.name!r} "
                f"version {model.version!r})"
            )
        return model

    def model_ready(self, name: str, version: str = "") -> bool:
        """Whether the named model is served here and ready."""
        try:
            self.get_model(name, version)
        except (ModelNotFoundError, ModelUnavailableError):
            return False
        return self._ready

    @contextmanager
    def _lease(self) -> Iterator[_Served]:
        """The serving version, kept loaded until the block ends."""
        with self._leases:
            served = self._serving
            if served is None:
                raise ModelUnavailableError(f"model {self.name!r} is unloaded")
            served.leases += 1
        try:
            yield served
        finally:
            with self._leases:
                served.leases -= 1
                self._leases.notify_all()

    def _predict(self, predictor: Predictor, columns: Columns, n_rows: int) -> Outputs:
        """One model call: the outputs by name; the rows' data quality to the hook."""
        prediction = predictor.predict(columns, n_rows)
        if self._on_quality is not None:
            self._on_quality(prediction.batch.missing, prediction.batch.unrecognised)
        if self._on_scored is not None:
            self._on_scored(prediction.batch, prediction.probability)
        return {PROBABILITY: prediction.probability, CLASS: prediction.label}

    def infer(
        self,
        columns: Mapping[str, NDArray[Any]],
        n_rows: int,
        outputs: Sequence[str] = (PROBABILITY, CLASS),
        *,
        name: str = "",
        version: str = "",
    ) -> Answer:
        """Score ``n_rows`` rows given as columns with one version; at least ``outputs``.

        Plain scores go through the version's dynamic batcher; a request for any
        explanation output is explained on the caller's thread, within
        :class:`ExplainLimits`.

        Raises:
            ModelNotFoundError: ``name`` or ``version`` is not the one served.
            ModelUnavailableError: after :meth:`unload`.
            BatcherClosedError: once :meth:`close` has been called.
            CodecError: more rows than an explanation may have.
            ExplanationsBusyError: every explanation slot is taken.

        """
        with self._lease() as served:
            model = self._match(served.info, name, version)
            if not any(output in EXPLANATION_OUTPUTS for output in outputs):
                return Answer(model, served.batcher.submit(columns, n_rows))
            return Answer(model, self._explain(served.predictor, columns, n_rows))

    def _explain(
        self, predictor: Predictor, columns: Mapping[str, NDArray[Any]], n_rows: int
    ) -> dict[str, NDArray[Any]]:
        limit = self.explain_limits.max_rows
        if n_rows > limit:
            raise CodecError(f"{n_rows} rows to explain; at most {limit} per request")
        if not self._explaining.acquire(blocking=False):
            raise ExplanationsBusyError(
                f"all {self.explain_limits.concurrency} explanation slots are busy; retry"
            )
        try:
            explanation = predictor.explain(columns, n_rows)
        finally:
            self._explaining.release()
        contributions = explanation.contributions
        return {
            PROBABILITY: explanation.prediction.probability,
            CLASS: explanation.prediction.label,
            LOGIT: explanation.logit,
            BASE_LOGIT: contributions.base,
            CONTRIBUTIONS: contributions.values,
        }

    def swap(self, predictor: Predictor, release_timeout_s: float | None = None) -> ModelSchema:
        """Serve ``predictor`` from now on; return once the previous version is released.

        New calls go to the new version at once; calls that leased the previous one
        finish on it, then its batcher stops and it is dropped.
        """
        if predictor.name != self.name:
            raise ModelNotFoundError(
                f"the bundle is model {predictor.name!r}; this server serves {self.name!r}"
            )
        fresh = self._serve(predictor)
        with self._leases:
            previous, self._serving = self._serving, fresh
        if previous is not None:
            self._release(previous, release_timeout_s)
        return fresh.info

    def unload(self, release_timeout_s: float | None = None) -> None:
        """Stop serving: calls from now on are refused; those in flight finish first."""
        with self._leases:
            previous, self._serving = self._serving, None
        if previous is not None:
            self._release(previous, release_timeout_s)

    def _release(self, served: _Served, timeout_s: float | None) -> None:
        """Wait for the last lease of ``served`` to end, then stop its batcher."""
        with self._leases:
            if not self._leases.wait_for(lambda: served.leases == 0, timeout_s):
                log.warning(
                    "version %s still had %d calls after %s s; closing it",
                    served.info.version,
                    served.leases,
                    timeout_s,
                )
        served.batcher.close(timeout_s)

    def drain(self) -> None:
        """Report not ready from now on (scoring still works until :meth:`close`)."""
        self._ready = False

    def close(self, timeout: float | None = None) -> None:
        """Stop being ready, finish queued requests and stop the batcher."""
        self._ready = False
        served = self._serving
        if served is not None:
            served.batcher.close(timeout)


@dataclass(eq=False)
class _Served:
    """One loaded version: its predictor, what ModelMetadata says of it, its batcher."""

    predictor: Predictor
    info: ModelSchema
    batcher: DynamicBatcher
    leases: int = 0
