"""The contract every base learner keeps."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
from numpy.typing import NDArray

from modeling.schema import ALL_COLUMNS, CATEGORY_INDEX, COLUMNS

Validation = tuple[NDArray[np.float64], NDArray[np.int_]]
"""Rows held out of a fit for early stopping: (features, 0/1 target)."""
Model = TypeVar("Model")


class NotFittedError(RuntimeError):
    """A learner asked to score or save before it was fitted or loaded."""


PARALLEL_ROWS = 512
"""Batches from this many rows are scored on every usable core; smaller ones on one
(thread start-up outweighs the work, and concurrent small calls already fill the cores)."""


def prediction_threads(n_rows: int) -> int:
    """Threads to score ``n_rows`` rows with: one, or every usable core for a large batch."""
    return len(os.sched_getaffinity(0)) if n_rows >= PARALLEL_ROWS else 1


def sigmoid(logit: NDArray[np.float64]) -> NDArray[np.float64]:
    """The logistic function, safe for large magnitudes."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * logit)), dtype=np.float64)


@dataclass(frozen=True)
class Contributions:
    """A logit split additively: ``base + values.sum(axis=1)`` is the logit of every row.

    Attributes:
        names: what each column of ``values`` is attributed to: a schema column, or a
            group named in ``groups``.
        values: ``(n, len(names))`` contribution of each name to each row's logit.
        base: ``(n,)`` the part no input explains (the expected logit).
        groups: the schema columns behind each group name (a feature read jointly).

    """

    names: tuple[str, ...]
    values: NDArray[np.float64]
    base: NDArray[np.float64]
    groups: Mapping[str, tuple[str, ...]]


class Learner(ABC):
    """A binary classifier over the cleaned feature matrix.

    Subclasses take their hyper-parameters as keyword arguments (stored in
    ``params``), learn in :meth:`fit`, and persist themselves with :meth:`save` into
    files of their own native format (never pickle). ``columns`` are the indices of
    the cleaned matrix the learner uses (chosen in training by
    :mod:`modeling.training.selection`); it always receives the whole matrix and takes
    its columns itself.
    """

    name: ClassVar[str]
    """Key in the params file, the manifest and reports."""
    filename: ClassVar[str]
    """The single file the learner is saved to inside a bundle."""
    stops_early: ClassVar[bool] = False
    """Whether :meth:`fit` stops on its ``validation`` rows (else it fits them too)."""

    def __init__(self, columns: Sequence[int] = ALL_COLUMNS, **params: Any) -> None:
        self.columns = tuple(int(c) for c in columns)
        self.params = params

    @property
    def categorical(self) -> list[int]:
        """Positions, within :attr:`columns`, of the category columns."""
        return [i for i, c in enumerate(self.columns) if c in CATEGORY_INDEX]

    @property
    def column_names(self) -> list[str]:
        """Schema names of :attr:`columns` (stored in native model files)."""
        return [COLUMNS[c] for c in self.columns]

    def fitted(self, model: Model | None) -> Model:
        """``model``, the learner's fitted state; raises :class:`NotFittedError` when unset."""
        if model is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        return model

    def accelerate(self) -> None:  # noqa: B027 - a hook: most learners have nothing to do
        """Start making scoring faster where the learner can (the server calls it once).

        Predictions must not change by more than 1e-9; the default does nothing.
        """

    @abstractmethod
    def fit(
        self,
        features: NDArray[np.float64],
        target: NDArray[np.int_],
        validation: Validation | None = None,
    ) -> Self:
        """Learn from ``features`` (n, d) and the 0/1 ``target`` (n,).

        ``validation`` (features, target) are rows kept out of fitting on which a
        boosting learner stops adding trees; a learner without rounds fits on them too.
        """

    def capacity(self) -> dict[str, int]:
        """The capacity the fit settled on (e.g. boosting rounds); empty when fixed."""
        return {}

    @abstractmethod
    def decision_function(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return the log-odds of y = 1 for every row (unbounded)."""

    def predict_proba(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return P(y = 1) for every row: the sigmoid of :meth:`decision_function`."""
        return sigmoid(self.decision_function(features))

    @abstractmethod
    def contributions(self, features: NDArray[np.float64]) -> Contributions:
        """Split :meth:`decision_function` exactly over the learner's inputs, row by row."""

    def contribution_groups(self) -> dict[str, tuple[str, ...]]:
        """The groups :meth:`contributions` reports beside columns; none by default."""
        return {}

    @abstractmethod
    def save(self, directory: Path) -> Path:
        """Write the fitted learner to ``directory / filename``; return that path."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> Self:
        """Read a learner written by :meth:`save`."""
