"""LightGBM trees compiled by lleaves: equal to the booster, or not used at all."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from modeling.learners.compiled import TOLERANCE, CompiledTrees, probe_rows
from tests.integration.conftest import wait_until


def settled(trees: CompiledTrees, timeout: float) -> str:
    """The state of ``trees`` once its background compilation has ended."""
    wait_until(lambda: trees.state != "compiling", timeout, "the trees' compilation to end")
    return trees.state


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real booster: 120 trees over 8 numeric and 2 categorical features with NaNs."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3000, 10))
    features[:, 8] = rng.integers(0, 5, 3000)
    features[:, 9] = rng.integers(0, 12, 3000)
    features[rng.random(features.shape) < 0.05] = np.nan
    logit = np.nan_to_num(features[:, 0] * features[:, 1] + np.sin(3 * features[:, 2]))
    target = (logit + (features[:, 8] == 2) + rng.normal(size=3000) > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 31, "seed": 0},
        lgb.Dataset(features, target, categorical_feature=[8, 9]),
        num_boost_round=120,
    )
    path = tmp_path_factory.mktemp("trees") / "lightgbm.txt"
    booster.save_model(str(path))
    return path


def test_compiled_trees_equal_the_booster_on_thousands_of_rows(model_file: Path) -> None:
    booster = lgb.Booster(model_file=str(model_file))
    trees = CompiledTrees(model_file, booster)
    rows = np.vstack([probe_rows(booster, seed=seed) for seed in (11, 12, 13)])  # 6,144 rows
    native = booster.predict(rows, raw_score=True, num_threads=1)
    assert settled(trees, 120) == "compiled"
    compiled = trees(rows)
    assert np.max(np.abs(compiled - native)) <= TOLERANCE
    assert trees(rows[:1]).shape == (1,)


def test_without_lleaves_the_booster_answers(model_file: Path, monkeypatch: Any) -> None:
    real_import = builtins.__import__

    def no_lleaves(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "lleaves":
            raise ImportError("no lleaves here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lleaves)
    booster = lgb.Booster(model_file=str(model_file))
    trees = CompiledTrees(model_file, booster)
    assert settled(trees, 30).startswith("not compiled (ImportError")
    rows = probe_rows(booster, seed=5)
    np.testing.assert_array_equal(trees(rows), booster.predict(rows, raw_score=True, num_threads=1))


def test_a_compilation_that_disagrees_is_not_used(model_file: Path, tmp_path: Path) -> None:
    booster = lgb.Booster(model_file=str(model_file))
    other = tmp_path / "other.txt"  # another model's text: compiles, but answers differently
    lgb.train(
        {"objective": "binary", "verbosity": -1, "seed": 1},
        lgb.Dataset(np.random.default_rng(1).normal(size=(500, 10)), np.arange(500) % 2),
        num_boost_round=5,
    ).save_model(str(other))
    trees = CompiledTrees(other, booster)
    assert settled(trees, 60).startswith("not compiled (differs from the booster by")
    rows = probe_rows(booster, seed=6)
    np.testing.assert_array_equal(trees(rows), booster.predict(rows, raw_score=True, num_threads=1))


def test_an_accelerated_predictor_answers_as_before(quick_bundle: Path) -> None:
    from modeling.predictor import Predictor
    from modeling.training.synthetic import synthetic_table

    predictor = Predictor.from_bundle(quick_bundle)
    table, _ = synthetic_table(3000, seed=9)
    before = predictor.predict(table, 3000).probability
    predictor.accelerate()
    during = predictor.predict(table, 3000).probability  # the booster, or already compiled
    learner = predictor.stack.learners["lightgbm"]
    assert learner._compiled is not None
    assert settled(learner._compiled, 120) == "compiled"
    after = predictor.predict(table, 3000).probability
    assert np.max(np.abs(during - before)) <= TOLERANCE
    assert np.max(np.abs(after - before)) <= TOLERANCE
