"""Render a kustomization directory of deploy/ as ``kubectl kustomize`` (or ``kustomize``) does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml


def kustomize_command() -> list[str] | None:
    """The command that renders a kustomization here, or None when neither tool is installed."""
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    return None


def render(command: list[str], directory: Path) -> list[dict[str, Any]]:
    """The objects ``command directory`` renders, in its order."""
    result = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
