"""A model repository: bundles side by side by version, never overwritten.

The layout is Triton's: ``<root>/<version>/`` is one bundle (:mod:`modeling.bundle`), and
versions are positive integers, so the latest is the largest. The repository's directory
name is the model's name, the same for every version. ``train --repository`` writes the
next version (its manifest records it); a bundle from before repositories, copied into a
version directory, is that version. ``<root>/SERVING`` names the version a
server starts with, written once a rollout succeeded; without it, the latest.
"""

from __future__ import annotations

import os
from pathlib import Path

from modeling.bundle import MANIFEST, BundleError
from modeling.predictor import Predictor

SERVING_FILE = "SERVING"


def check_version(version: str) -> str:
    """Return ``version`` if it is a positive integer written plainly, else raise.

    Raises:
        BundleError: for anything else (an empty name, a path, a sign, leading zeros).

    """
    if not (version.isascii() and version.isdigit() and version[0] != "0"):
        raise BundleError(f"model version {version!r} is not a positive integer")
    return version


class Repository:
    """The versions of one model under a root directory."""

    def __init__(self, root: Path) -> None:
        """Remember ``root``; nothing is read until asked."""
        self.root = root
        self.name = root.resolve().name

    def versions(self) -> list[str]:
        """The versions holding a manifest, oldest first."""
        if not self.root.is_dir():
            return []
        found = [
            entry.name
            for entry in self.root.iterdir()
            if entry.name.isascii()
            and entry.name.isdigit()
            and entry.name[0] != "0"
            and (entry / MANIFEST).is_file()
        ]
        return sorted(found, key=int)

    def latest(self) -> str:
        """The newest version.

        Raises:
            BundleError: when the repository holds none.

        """
        versions = self.versions()
        if not versions:
            raise BundleError(
                f"model repository {self.root} holds no version: "
                "train one with `python -m modeling train --repository`"
            )
        return versions[-1]

    def next_version(self) -> str:
        """The version a new training run writes."""
        versions = self.versions()
        return str(int(versions[-1]) + 1) if versions else "1"

    def path(self, version: str) -> Path:
        """The directory of ``version`` (checked to be a plain version name)."""
        return self.root / check_version(version)

    def serving(self) -> str:
        """The version a server starts with: ``SERVING`` if it names one, else the latest."""
        try:
            named = (self.root / SERVING_FILE).read_text().strip()
        except FileNotFoundError:
            return self.latest()
        if named not in self.versions():
            raise BundleError(
                f"{self.root / SERVING_FILE} names version {named!r}, which is absent"
            )
        return named

    def set_serving(self, version: str) -> None:
        """Record ``version`` as the one servers start with (atomically replaced)."""
        if version not in self.versions():
            raise BundleError(f"model repository {self.root} has no version {version!r}")
        staged = self.root / f".{SERVING_FILE}.{os.getpid()}"
        staged.write_text(version + "\n")
        staged.replace(self.root / SERVING_FILE)

    def load(self, version: str) -> Predictor:
        """Load and verify ``version``, named as this repository's model and that version.

        Raises:
            BundleError: an absent version, bad hashes, or a bundle whose manifest names
                another version (copied under the wrong name: answers would be traced to
                the wrong model).

        """
        predictor = Predictor.from_bundle(self.path(version))
        recorded = predictor.manifest.get("version")
        if recorded is not None and str(recorded) != version:
            raise BundleError(
                f"version directory {version} of {self.root} holds a bundle of version {recorded!r}"
            )
        predictor.name, predictor.version = self.name, version
        return predictor
