"""Hyper-parameters: fixed values and search ranges live in ``params.json`` beside this module.

``default`` is what ``python -m modeling train`` uses (``tune`` can overwrite one
learner with what it found); ``quick`` trains a small model in seconds for tests and demos.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PARAMS_FILE = Path(__file__).with_name("params.json")
PROFILES = ("default", "quick")


def load_params(profile: str = "default", path: Path = PARAMS_FILE) -> dict[str, Any]:
    """The parameters of one profile: ``folds`` and one mapping per learner."""
    profiles: dict[str, dict[str, Any]] = json.loads(path.read_text())
    if profile not in profiles:
        raise KeyError(f"no parameter profile {profile!r} in {path}; have {sorted(profiles)}")
    return profiles[profile]


def store_params(learner: str, values: dict[str, Any], path: Path = PARAMS_FILE) -> None:
    """Replace one learner's ``default`` parameters (used by tuning)."""
    profiles = json.loads(path.read_text())
    profiles["default"][learner] = values
    path.write_text(json.dumps(profiles, indent=2) + "\n")
