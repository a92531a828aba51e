"""Serving never imports training: the inference image ships without ``modeling.training``."""

import ast
import subprocess
import sys
from pathlib import Path

import modeling

SERVING = [
    "modeling",
    "modeling.schema",
    "modeling.cleaning",
    "modeling.learners",
    "modeling.learners.base",
    "modeling.learners.logistic",
    "modeling.learners.mixture",
    "modeling.learners.lightgbm_learner",
    "modeling.learners.catboost_learner",
    "modeling.learners.compiled",
    "modeling.learners.meta",
    "modeling.stack",
    "modeling.bundle",
    "modeling.predictor",
    "modeling.repository",
    "modeling.profile",
]
TRAINING_ONLY = ("modeling.training", "pandas", "sklearn", "scipy", "optuna", "xgboost")
PACKAGE = Path(modeling.__file__).parent


def _serving_files():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "training" not in path.relative_to(PACKAGE).parts and path.name != "__main__.py":
            yield path


def test_every_serving_module_is_listed():
    listed = {name.removeprefix("modeling").lstrip(".") for name in SERVING}
    for path in _serving_files():
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        assert module.removesuffix("__init__").rstrip(".") in listed, path


def test_serving_modules_name_no_training_module_even_lazily():
    for path in _serving_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not any(n.startswith("modeling.training") for n in names), (path, names)


_BLOCKER = """
import sys

class Absent:
    \"\"\"Refuses modeling.training, and training libraries imported by modeling's own code.

    (LightGBM and CatBoost may import pandas or scipy themselves: the image has them.)
    \"\"\"

    def find_spec(self, name, path=None, target=None):
        if name.startswith("modeling.training"):
            raise ModuleNotFoundError(f"no module named {{name!r}} (blocked)")
        if name.split(".")[0] in {blocked!r}:
            frame = sys._getframe(1)
            while frame is not None and (
                frame.f_code.co_filename.startswith("<frozen")
                or "importlib" in frame.f_code.co_filename
            ):
                frame = frame.f_back
            if frame is not None and "/modeling/" in frame.f_code.co_filename:
                raise ModuleNotFoundError(f"modeling imports {{name!r}} (blocked)")
        return None

sys.meta_path.insert(0, Absent())
"""


def _run_without_training(body: str) -> subprocess.CompletedProcess[str]:
    blocked = sorted({name.split(".")[0] for name in TRAINING_ONLY if name != "modeling.training"})
    code = _BLOCKER.format(blocked=blocked) + body
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_serving_loads_and_scores_a_bundle_without_any_training_package(quick_bundle):
    body = (
        "".join(f"import {name}\n" for name in SERVING)
        + "from modeling.predictor import load_bundle\n"
        + f"p = load_bundle({str(quick_bundle)!r})\n"
        + "print(p.predict({'x0': [1.0], 'x1': ['monday']}, 1).probability[0])\n"
    )
    result = _run_without_training(body)
    assert result.returncode == 0, result.stderr
    assert 0.0 < float(result.stdout) < 1.0


def test_the_blocker_would_catch_a_training_import():
    result = _run_without_training("import modeling.training.evaluation\n")
    assert result.returncode != 0
    assert "blocked" in result.stderr
    # a serving module that imported scikit-learn itself would be caught too
    result = _run_without_training(
        "import numpy as np\n"
        "from modeling.learners.meta import MetaLearner\n"
        "MetaLearner(['a']).fit(np.array([[0.2], [0.8]]), np.array([0, 1]))\n"
    )
    assert "modeling imports 'sklearn" in result.stderr
