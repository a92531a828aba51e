"""LightGBM's trees compiled to native code (lleaves), swapped in once proven equal.

The booster walks its trees node by node; lleaves compiles the same model text with
LLVM into one native function per model, several times faster (docs/performance.md).
Compiling takes seconds for hundreds of trees, so it runs in a background thread while
the booster keeps answering; the compiled model is used
only after it gave the booster's probabilities to within :data:`TOLERANCE` on probe
rows. On any failure (no lleaves, a model it cannot compile, a mismatch) the booster
stays, and the reason is logged. Nothing compiled is ever written to disk: the bundle
keeps the model's text format only.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

TOLERANCE = 1e-9
"""Largest difference from the booster's log-odds a compiled model may show."""
PROBE_ROWS = 2048


class Scorer(Protocol):
    """What answers the log-odds for a feature matrix (the booster, or its compilation)."""

    def __call__(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Log-odds of y = 1 per row."""


class CompiledTrees:
    """The faster of a booster and its compilation, decided in the background."""

    def __init__(self, model_file: Path, booster: lgb.Booster) -> None:
        """Start compiling ``model_file``, the text of ``booster``."""
        self._booster_model = booster
        self._compiled: Scorer | None = None
        self.state = "compiling"
        """``compiling``, then ``compiled`` or why not (once the compiled model answers)."""
        self._thread = threading.Thread(
            target=self._compile, args=(model_file,), name="compile-trees", daemon=True
        )
        self._thread.start()

    def __call__(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Log-odds from the compiled model once it is proven, else from the booster."""
        compiled = self._compiled
        return self._booster(features) if compiled is None else compiled(features)

    def _booster(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(
            self._booster_model.predict(features, raw_score=True, num_threads=1), dtype=np.float64
        )

    def _compile(self, model_file: Path) -> None:
        started = time.perf_counter()
        try:
            probe = probe_rows(self._booster_model)
            import lleaves  # the inference image has it; without it the booster stays

            model: Any = lleaves.Model(model_file=str(model_file))
            model.compile(raw_score=True)

            def compiled(features: NDArray[np.float64]) -> NDArray[np.float64]:
                return np.asarray(model.predict(features, n_jobs=1), dtype=np.float64)

            gap = float(np.max(np.abs(compiled(probe) - self._booster(probe)), initial=0.0))
        except Exception as error:  # anything: the booster answers, as before
            self.state = f"not compiled ({type(error).__name__}: {error})"
            log.warning("LightGBM trees %s; the booster answers", self.state)
            return
        if not gap <= TOLERANCE:
            self.state = f"not compiled (differs from the booster by {gap:.1e})"
            log.warning("LightGBM trees %s; the booster answers", self.state)
            return
        self._compiled = compiled
        self.state = "compiled"
        log.info(
            "LightGBM trees compiled in %.1f s (largest difference on %d probe rows: %.1e)",
            time.perf_counter() - started,
            len(probe),
            gap,
        )


def probe_rows(booster: lgb.Booster, seed: int = 0) -> NDArray[np.float64]:
    """Rows that reach many leaves, from the ranges the model file records.

    Each numeric feature spans its training range and 10% beyond; each categorical one
    takes its codes and one never seen; a tenth of all values are missing.
    """
    rng = np.random.default_rng(seed)
    infos = booster.dump_model(num_iteration=0)["feature_infos"]
    rows = np.empty((PROBE_ROWS, booster.num_feature()))
    for j, name in enumerate(booster.feature_name()):
        info = infos.get(name, {})
        if info.get("values"):  # a categorical feature: its codes, and one never seen
            codes = [*info["values"], max(info["values"], default=0) + 1]
            rows[:, j] = rng.choice(np.asarray(codes, dtype=np.float64), PROBE_ROWS)
        else:
            low, high = float(info.get("min_value", -1.0)), float(info.get("max_value", 1.0))
            span = max(high - low, 1.0)
            rows[:, j] = rng.uniform(low - 0.1 * span, high + 0.1 * span, PROBE_ROWS)
    rows[rng.random(rows.shape) < 0.1] = np.nan
    return rows
