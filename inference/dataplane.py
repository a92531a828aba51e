"""The transport-free data plane: model metadata, readiness and batched scoring.

It knows the model (a :class:`modeling.predictor.Predictor`) and the tensor specs derived
from :mod:`modeling.schema`, but nothing of gRPC; the servicer is a thin adapter over it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.batcher import BatchHook, Columns, DynamicBatcher, Outputs
from inference.tensors import Limits, TensorError, TensorSpec
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
ScoredHook = Callable[[CleanBatch, NDArray[np.float64]], None]
"""Called after every model call with its cleaned rows and their probabilities (drift).
It runs before the callers get their answers: it must only hand the arrays on."""


class ModelNotFoundError(LookupError):
    """A request named a model (or version) this server does not serve."""


class ExplanationsBusyError(RuntimeError):
    """Every explanation slot is taken: the caller should retry shortly."""


@dataclass(frozen=True)
class ModelInfo:
    """What ModelMetadata reports."""

    name: str
    version: str
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    missing_text: frozenset[str]
    contribution_names: tuple[str, ...]
    contribution_groups: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class ExplainLimits:
    """How much explaining one server does: rows per call, and calls at once.

    Explaining costs far more than scoring (tree SHAP walks every path of every tree),
    so it runs beside the batcher, never inside it, in at most ``concurrency`` calls;
    one more is refused at once (the caller retries) rather than holding a gRPC thread.
    """

    max_rows: int
    concurrency: int


class DataPlane:
    """Serves one predictor: readiness, metadata and scoring through a dynamic batcher."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        max_batch_rows: int,
        max_queue_delay_s: float,
        limits: Limits,
        explain: ExplainLimits,
        on_batch: BatchHook | None = None,
        on_quality: QualityHook | None = None,
        on_scored: ScoredHook | None = None,
    ) -> None:
        self._predictor = predictor
        self.limits = limits
        self.explain_limits = explain
        self._explaining = threading.BoundedSemaphore(explain.concurrency)
        names, groups = predictor.stack.contribution_names()
        self.model = ModelInfo(
            name=predictor.name,
            version=str(predictor.version),
            platform=PLATFORM,
            inputs=input_specs(),
            outputs=OUTPUTS,
            missing_text=MISSING_TEXT,
            contribution_names=names,
            contribution_groups=groups,
        )
        self.input_specs: Mapping[str, TensorSpec] = {s.name: s for s in self.model.inputs}
        self.output_names = tuple(s.name for s in self.model.outputs)
        self._on_quality = on_quality
        self._on_scored = on_scored
        self._batcher = DynamicBatcher(
            self._predict,
            max_rows=max_batch_rows,
            max_delay_s=max_queue_delay_s,
            on_batch=on_batch,
        )
        self._ready = False

    @property
    def ready(self) -> bool:
        """True once warmed and until :meth:`drain` or :meth:`close`."""
        return self._ready

    def warm(self, rows: tuple[int, ...] = (1, 64)) -> float:
        """Score all-missing rows once per size (loads lazy state), mark ready; return seconds."""
        started = time.perf_counter()
        for n_rows in rows:
            self._predictor.predict({}, n_rows)
        self._ready = True
        return time.perf_counter() - started

    def get_model(self, name: str, version: str = "") -> ModelInfo:
        """Return the model's info if ``name`` (and ``version``, when given) match.

        An empty name means the one model this server serves.
        """
        if name not in ("", self.model.name) or version not in ("", self.model.version):
            wanted = f"{name!r}" + (f" version {version!r}" if version else "")
            raise ModelNotFoundError(
                f"model {wanted} is not served here (serving {self.model.name!r} "
                f"version {self.model.version!r})"
            )
        return self.model

    def model_ready(self, name: str, version: str = "") -> bool:
        """Whether the named model is served here and ready."""
        try:
            self.get_model(name, version)
        except ModelNotFoundError:
            return False
        return self._ready

    def _predict(self, columns: Columns, n_rows: int) -> Outputs:
        """One model call: the outputs by name; the rows' data quality to the hook."""
        prediction = self._predictor.predict(columns, n_rows)
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
    ) -> dict[str, NDArray[Any]]:
        """Score ``n_rows`` rows given as columns; return at least ``outputs`` by name.

        Plain scores go through the dynamic batcher; a request for any explanation
        output is explained on the caller's thread, within :class:`ExplainLimits`.

        Raises:
            BatcherClosedError: once :meth:`close` has been called.
            TensorError: more rows than an explanation may have.
            ExplanationsBusyError: every explanation slot is taken.

        """
        if not any(name in EXPLANATION_OUTPUTS for name in outputs):
            return self._batcher.submit(columns, n_rows)
        limit = self.explain_limits.max_rows
        if n_rows > limit:
            raise TensorError(f"{n_rows} rows to explain; at most {limit} per request")
        if not self._explaining.acquire(blocking=False):
            raise ExplanationsBusyError(
                f"all {self.explain_limits.concurrency} explanation slots are busy; retry"
            )
        try:
            explanation = self._predictor.explain(columns, n_rows)
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

    def drain(self) -> None:
        """Report not ready from now on (scoring still works until :meth:`close`)."""
        self._ready = False

    def close(self, timeout: float | None = None) -> None:
        """Stop being ready, finish queued requests and stop the batcher."""
        self._ready = False
        self._batcher.close(timeout)
