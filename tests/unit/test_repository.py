"""The model repository: versions side by side, the latest, the SERVING pointer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modeling.bundle import MANIFEST, BundleError
from modeling.repository import SERVING_FILE, Repository, check_version


@pytest.fixture
def repository(quick_bundle: Path, tmp_path: Path) -> Repository:
    """Versions 1, 2 and 10 (copies of a bundle from before repositories), and clutter."""
    root = tmp_path / "scoring"
    for version in ("1", "2", "10"):
        shutil.copytree(quick_bundle, root / version)
    (root / "3").mkdir()  # no manifest: not a version
    (root / ".training-4-99").mkdir()  # a training run's unfinished output
    (root / "007").mkdir()
    return Repository(root)


def test_versions_in_numeric_order_and_the_next(repository: Repository) -> None:
    assert repository.versions() == ["1", "2", "10"]
    assert repository.latest() == "10"
    assert repository.next_version() == "11"
    assert repository.name == "scoring"


def test_an_empty_repository(tmp_path: Path) -> None:
    empty = Repository(tmp_path / "none")
    assert empty.versions() == []
    assert empty.next_version() == "1"
    with pytest.raises(BundleError, match="holds no version"):
        empty.latest()
    with pytest.raises(BundleError, match="holds no version"):
        empty.serving()


def test_serving_is_the_pointer_else_the_latest(repository: Repository) -> None:
    assert repository.serving() == "10"
    repository.set_serving("2")
    assert (repository.root / SERVING_FILE).read_text() == "2\n"
    assert repository.serving() == "2"
    with pytest.raises(BundleError, match="no version '3'"):
        repository.set_serving("3")
    (repository.root / SERVING_FILE).write_text("5")
    with pytest.raises(BundleError, match="names version '5', which is absent"):
        repository.serving()


@pytest.mark.parametrize("version", ["", "0", "01", "-1", "+1", "1.0", "../1", "1/..", "²", " 1"])
def test_a_version_is_a_plain_positive_integer(version: str) -> None:
    with pytest.raises(BundleError, match="not a positive integer"):
        check_version(version)


def test_a_loaded_version_is_named_by_the_repository(repository: Repository) -> None:
    predictor = repository.load("2")
    assert (predictor.name, predictor.version) == ("scoring", "2")
    manifest = json.loads((repository.path("10") / MANIFEST).read_text())
    (repository.path("10") / MANIFEST).write_text(json.dumps(manifest | {"version": "2"}))
    with pytest.raises(BundleError, match="holds a bundle of version '2'"):
        repository.load("10")
    with pytest.raises(BundleError, match="not a positive integer"):
        repository.load("../2")
