"""Putting a new model version into service: load it beside the serving one, verify, swap.

A load reads a version from the model repository (:mod:`modeling.repository`), which
checks every file's hash; then the version must describe the inputs the gateway was told
(the schema in its manifest is this code's), and a probe batch must score to finite
probabilities and explanations that add up. Only then does the data plane swap it in
(:meth:`~inference.dataplane.DataPlane.swap`). A load that fails at any step leaves the
serving version untouched and says why, in the error and in :meth:`Rollout.index`.
One load runs at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from inference.dataplane import DataPlane, ModelNotFoundError, ModelUnavailableError
from modeling.bundle import BundleError, schema_manifest
from modeling.predictor import Predictor
from modeling.repository import Repository, check_version
from modeling.schema import NUMERIC_COLUMNS, VOCABULARIES
from proto.codec import ModelSchema

log = logging.getLogger(__name__)

READY = "READY"
UNAVAILABLE = "UNAVAILABLE"
LOADING = "LOADING"
PROBE_ROWS = 64
"""Rows of the probe batch every new version must score before it serves."""

SwapHook = Callable[[ModelSchema | None, ModelSchema | None], None]
"""Called after a swap or an unload with the serving version's info (None once unloaded)
and the previous one's (None when none served)."""


class LoadError(Exception):
    """A version was not put into service; the serving version is untouched."""


class LoadBusyError(LoadError):
    """Another load is under way (one at a time)."""


@dataclass(frozen=True)
class VersionState:
    """One version in the repository index: its state and why."""

    name: str
    version: str
    state: str
    reason: str = ""


def probe_columns(n_rows: int = PROBE_ROWS) -> dict[str, list[object]]:
    """A probe batch: a row of zeros and known categories, then all-missing rows."""
    numeric = frozenset(NUMERIC_COLUMNS)
    columns: dict[str, list[object]] = {}
    for name in schema_manifest()["columns"]:
        known: object = 0.0 if name in numeric else VOCABULARIES.get(name, ("",))[0]
        columns[name] = [known] + [None] * (n_rows - 1)
    return columns


def verify(predictor: Predictor) -> float:
    """Check a loaded version can serve in place of another; return the seconds it took.

    Raises:
        LoadError: naming the check that failed.

    """
    started = time.perf_counter()
    expected = schema_manifest()
    schema = predictor.manifest.get("schema", {})
    for key in ("columns", "kinds", "vocabularies"):
        if schema.get(key) != expected[key]:
            raise LoadError(
                f"version {predictor.version} has an incompatible schema ({key} differ from "
                "the inputs this server announces)"
            )
    try:
        prediction = predictor.predict(probe_columns(), PROBE_ROWS)
        predictor.predict({}, 1)
        predictor.explain(probe_columns(2), 2)
    except Exception as error:  # whatever a broken model raises: refused, never served
        raise LoadError(
            f"version {predictor.version} failed its probe batch: {type(error).__name__}: {error}"
        ) from error
    probability = prediction.probability
    if probability.shape != (PROBE_ROWS,) or not ((probability >= 0) & (probability <= 1)).all():
        raise LoadError(f"version {predictor.version} gave probabilities outside [0, 1]")
    if not np.isin(prediction.label, (0, 1)).all():  # pragma: no cover - labels come from a cut
        raise LoadError(f"version {predictor.version} gave classes other than 0 and 1")
    return time.perf_counter() - started


class Rollout:
    """The model repository extension of one server: index, load (verify, swap), unload."""

    def __init__(
        self,
        plane: DataPlane,
        repository: Repository | None,
        *,
        accelerate: bool = False,
        on_swap: SwapHook | None = None,
        release_timeout_s: float = 60.0,
    ) -> None:
        self.plane = plane
        self.repository = repository
        self._accelerate = accelerate
        self._on_swap = on_swap
        self._release_timeout_s = release_timeout_s
        self._loading = threading.Lock()
        self._states: dict[str, VersionState] = {}
        self._mark(plane.model.version, READY)

    def _mark(self, version: str, state: str, reason: str = "") -> None:
        self._states[version] = VersionState(self.plane.name, version, state, reason)

    def index(self, ready_only: bool = False) -> list[VersionState]:
        """Every version in the repository (and the serving one), with its state."""
        versions = dict.fromkeys(self.repository.versions() if self.repository else [])
        versions.update(dict.fromkeys(self._states))
        states = [
            self._states.get(v, VersionState(self.plane.name, v, UNAVAILABLE, "not loaded"))
            for v in versions
        ]
        return [s for s in states if s.state == READY or not ready_only]

    def _check_name(self, name: str) -> None:
        if name not in ("", self.plane.name):
            raise ModelNotFoundError(
                f"model {name!r} is not in this server's repository (it serves {self.plane.name!r})"
            )

    def load(self, name: str, version: str = "") -> ModelSchema:
        """Load ``version`` (default: the latest), verify it and swap it in.

        Raises:
            ModelNotFoundError: another model's name.
            LoadBusyError: another load is under way.
            LoadError: no repository, or the version failed to load or verify (the serving
                version answers on).

        """
        self._check_name(name)
        repository = self.repository
        if repository is None:
            raise LoadError(
                "this server serves one bundle (--bundle); start it with --repository to "
                "load versions"
            )
        if not self._loading.acquire(blocking=False):
            raise LoadBusyError("another load is under way; retry when it has finished")
        try:
            return self._load(repository, version)
        finally:
            self._loading.release()

    def _load(self, repository: Repository, version: str) -> ModelSchema:
        started = time.perf_counter()
        previous = self._serving_info()
        try:
            version = check_version(version) if version else repository.latest()
        except BundleError as error:
            raise _refused(version, error, previous) from None
        self._mark(version, LOADING)
        try:
            predictor = repository.load(version)
            probe_s = verify(predictor)
        except (BundleError, LoadError) as error:
            self._mark(version, UNAVAILABLE, str(error))
            raise _refused(version, error, previous) from None
        if self._accelerate:
            predictor.accelerate()
        loaded_s = time.perf_counter() - started
        info = self.plane.swap(predictor, self._release_timeout_s)
        if previous is not None and previous.version != info.version:
            self._mark(previous.version, UNAVAILABLE, f"replaced by version {info.version}")
        self._mark(info.version, READY)
        if self._on_swap is not None:
            self._on_swap(info, previous)
        log.info(
            "swapped",
            extra={
                "event": "swapped",
                "version": info.version,
                "previous": previous.version if previous else None,
                "load_s": round(loaded_s, 3),
                "probe_s": round(probe_s, 3),
                "swap_s": round(time.perf_counter() - started - loaded_s, 3),
            },
        )
        return info

    def unload(self, name: str) -> None:
        """Stop serving the model (calls in flight finish); a later load serves again."""
        self._check_name(name)
        with self._loading:
            previous = self._serving_info()
            self.plane.unload(self._release_timeout_s)
            if previous is not None:
                self._mark(previous.version, UNAVAILABLE, "unloaded")
            if self._on_swap is not None:
                self._on_swap(None, previous)

    def _serving_info(self) -> ModelSchema | None:
        try:
            return self.plane.model
        except ModelUnavailableError:
            return None


def _refused(version: str, error: Exception, serving: ModelSchema | None) -> LoadError:
    """The error of a refused load, logged: what failed and which version still serves."""
    log.warning(
        "load refused", extra={"event": "load_refused", "version": version, "reason": str(error)}
    )
    still = f"version {serving.version}" if serving is not None else "no version"
    return LoadError(f"version {version!r} not loaded: {error}; {still} still serves")
