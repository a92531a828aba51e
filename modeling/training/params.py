"""Hyper-parameter presets: fixed values and search ranges in ``params.json`` beside this module.

``default`` is what ``python -m modeling train`` uses (``tune`` can overwrite one
learner with what it found); ``quick`` trains a small model in seconds for tests and demos.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PARAMS_FILE = Path(__file__).with_name("params.json")
PRESETS = ("default", "quick")


def load_params(preset: str = "default", path: Path = PARAMS_FILE) -> dict[str, Any]:
    """The parameters of one preset: ``folds`` and one mapping per learner."""
    presets: dict[str, dict[str, Any]] = json.loads(path.read_text())
    if preset not in presets:
        raise KeyError(f"no parameter preset {preset!r} in {path}; have {sorted(presets)}")
    return presets[preset]


def store_params(learner: str, values: dict[str, Any], path: Path = PARAMS_FILE) -> None:
    """Replace one learner's ``default`` parameters (used by tuning)."""
    presets = json.loads(path.read_text())
    presets["default"][learner] = values
    path.write_text(json.dumps(presets, indent=2) + "\n")
