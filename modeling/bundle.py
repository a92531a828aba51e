"""The model bundle: a directory of native learner files and a manifest that seals them.

``manifest.json`` records the schema, feature order, decision threshold, library
versions, cross-validated metrics, the training data's sha256 and the sha256 of every
other file. Loading verifies every hash and refuses a bundle that does not match.
No file in a bundle is executable (no pickle). ``profile.json`` (the training data's
reference profile, :mod:`modeling.profile`) is sealed the same way; a bundle from before
profiles loads without one.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from modeling.learners import LEARNERS
from modeling.learners.meta import MetaLearner
from modeling.profile import PROFILE_FILE, ProfileError, ReferenceProfile
from modeling.schema import COLUMNS, KINDS, VOCABULARIES
from modeling.stack import Stack

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_LIBRARIES = ("numpy", "lightgbm", "catboost", "scikit-learn")


class BundleError(Exception):
    """A bundle is missing, incomplete, tampered with or of an unknown format."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - always installed
            versions[name] = "absent"
    return versions


def schema_manifest() -> dict[str, Any]:
    """The schema this code reads, as a manifest records it (columns, kinds, vocabularies)."""
    return {
        "columns": list(COLUMNS),
        "kinds": {c: str(KINDS[c]) for c in COLUMNS},
        "vocabularies": {c: list(v) for c, v in VOCABULARIES.items()},
    }


def save_bundle(
    stack: Stack, directory: Path, *, profile: ReferenceProfile | None = None, **details: Any
) -> dict[str, Any]:
    """Write ``stack`` (and ``profile``, when given) and the manifest; return the manifest.

    ``details`` (metrics, training data digest, parameters, demo flag, ...) are stored
    in the manifest as they are.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = [learner.save(directory) for learner in stack.learners.values()]
    paths.append(stack.meta.save(directory))
    if profile is not None:
        paths.append(profile.save(directory))
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": directory.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "threshold": stack.threshold,
        "learners": stack.meta.names,
        "schema": schema_manifest(),
        "feature_order": list(COLUMNS),
        "selected_columns": sorted(
            {name for learner in stack.learners.values() for name in learner.column_names},
            key=COLUMNS.index,
        ),
        "libraries": _library_versions(),
        **details,
        "files": {path.name: sha256_file(path) for path in paths},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    """Read and verify a bundle's manifest and every file it lists.

    Raises:
        BundleError: naming what is wrong (missing directory or file, unreadable
            manifest, unknown format, feature order or a hash that does not match).

    """
    path = directory / MANIFEST
    if not directory.is_dir():
        raise BundleError(
            f"no model bundle at {directory}: train one with `python -m modeling train`"
        )
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BundleError(f"bundle {directory} has no readable {MANIFEST}: {error}") from error
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"bundle {directory} has format {manifest.get('format_version')!r}, "
            f"this code reads {FORMAT_VERSION}"
        )
    if manifest.get("feature_order") != list(COLUMNS):
        raise BundleError(f"bundle {directory} was trained on another feature order")
    for name, expected in manifest.get("files", {}).items():
        file = directory / name
        if not file.is_file():
            raise BundleError(f"bundle {directory} is incomplete: {name} is missing")
        if sha256_file(file) != expected:
            raise BundleError(
                f"bundle {directory} is corrupt or tampered: sha256 of {name} "
                "does not match its manifest"
            )
    return manifest


def load_stack(directory: Path) -> tuple[Stack, dict[str, Any]]:
    """Verify a bundle and load its learners; return the stack and the manifest."""
    manifest = read_manifest(directory)
    try:
        meta = MetaLearner.load(directory)
        learners = {name: LEARNERS[name].load(directory) for name in meta.names}
    except (KeyError, ValueError, OSError) as error:
        raise BundleError(f"bundle {directory} could not be loaded: {error}") from error
    return Stack(learners, meta, threshold=float(manifest["threshold"])), manifest


def load_profile(directory: Path, manifest: dict[str, Any]) -> ReferenceProfile | None:
    """The bundle's reference profile, or None for a bundle sealed without one.

    Call it with a manifest :func:`read_manifest` verified (the file's hash is checked).

    Raises:
        BundleError: when the manifest lists a profile that does not fit the schema.

    """
    if PROFILE_FILE not in manifest.get("files", {}):
        return None
    try:
        return ReferenceProfile.load(directory)
    except ProfileError as error:
        raise BundleError(f"bundle {directory} has a bad {PROFILE_FILE}: {error}") from error
