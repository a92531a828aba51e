"""The layers hold: the contracts in pyproject.toml catch a breach, and serving runs without
any training package (the inference image ships without ``modeling.training``).

``lint-imports`` (``make lint``) checks the import graph statically; the runtime test
below also catches what a static graph cannot (an import a library makes on our behalf).
"""

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import modeling

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
SERVING = sorted(
    module.name
    for module in pkgutil.walk_packages(modeling.__path__, "modeling.")
    if not module.name.startswith("modeling.training") and module.name != "modeling.__main__"
)
TRAINING_ONLY = ("modeling.training", "pandas", "sklearn", "scipy", "optuna", "xgboost")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_layers_hold_and_a_gateway_importing_modeling_breaks_them(tmp_path):
    assert _lint_imports(REPO).returncode == 0, _lint_imports(REPO).stdout
    for name in ("gateway", "inference", "modeling", "proto", "pyproject.toml"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, tmp_path / name)
    (tmp_path / "gateway" / "shortcut.py").write_text(
        '"""A gateway module that scores in process."""\n\n'
        "def score():\n    from modeling.predictor import Predictor\n\n    return Predictor\n"
    )

    broken = _lint_imports(tmp_path)

    assert broken.returncode != 0
    assert "gateway.shortcut -> modeling.predictor" in broken.stdout


def test_serving_modules_are_found_beside_the_training_package():
    assert "modeling.predictor" in SERVING
    assert "modeling.learners.meta" in SERVING
    assert not any(name.startswith("modeling.training") for name in SERVING)


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
        + "from pathlib import Path\nfrom modeling.predictor import Predictor\n"
        + f"p = Predictor.from_bundle(Path({str(quick_bundle)!r}))\n"
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
