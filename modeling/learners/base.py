"""The contract every base learner keeps."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray


class Learner(ABC):
    """A binary classifier over the cleaned feature matrix.

    Subclasses take their hyper-parameters as keyword arguments (stored in
    ``params``), learn in :meth:`fit`, and persist themselves with :meth:`save` into
    files of their own native format (never pickle).
    """

    name: ClassVar[str]
    """Key in the params file, the manifest and reports."""
    filename: ClassVar[str]
    """The single file the learner is saved to inside a bundle."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def fit(self, features: NDArray[np.float64], target: NDArray[np.int_]) -> Self:
        """Learn from ``features`` (n, d) and the 0/1 ``target`` (n,)."""

    @abstractmethod
    def predict_proba(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return P(y = 1) for every row."""

    @abstractmethod
    def save(self, directory: Path) -> Path:
        """Write the fitted learner to ``directory / filename``; return that path."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> Self:
        """Read a learner written by :meth:`save`."""
