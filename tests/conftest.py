"""Fixtures shared by every test: a small real model bundle and synthetic rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeling.training.cli import main as modeling_main


@pytest.fixture(scope="session")
def quick_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle trained once per session on 2,000 synthetic rows ('quick' profile)."""
    out = tmp_path_factory.mktemp("bundles") / "quick"
    code = modeling_main(["train", "--synthetic", "2000", "--preset", "quick", "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository of two real versions: ``train --repository`` run twice (seeds 0, 7).

    Tests that add versions copy it first.
    """
    root = tmp_path_factory.mktemp("repository") / "scoring"
    for seed in ("0", "7"):
        argv = ["train", "--synthetic", "2000", "--preset", "quick", "--seed", seed]
        assert modeling_main([*argv, "--repository", str(root)]) == 0
    return root
