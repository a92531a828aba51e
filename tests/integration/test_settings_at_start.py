"""A bad setting stops each service at start: exit code, one line naming it, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import StartInference, free_port, start_process, subprocess_env
from tests.integration.gateway_helpers import START_GATEWAY

pytestmark = pytest.mark.integration


def own_lines(log: str, prefix: str) -> list[str]:
    """The process's own lines (coverage may add warnings of its own)."""
    return [line for line in log.splitlines() if line.startswith(prefix)]


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (
            (),
            {"INFERENCE_MAX_BATCH_ROWS": "lots"},
            "inference: INFERENCE_MAX_BATCH_ROWS='lots': Input should be a valid integer",
        ),
        (("--workers", "0"), {}, "inference: --workers='0': Input should be greater than 0"),
    ],
)
def test_a_bad_inference_setting_exits_2_naming_it(
    start_inference: StartInference,
    inference_bundle: Path,
    args: tuple[str, ...],
    env: dict[str, str],
    line: str,
) -> None:
    server = start_inference(inference_bundle, *args, wait=False, **env)
    assert server.process.wait(60) == 2
    [refusal] = own_lines(server.log(), "inference:")
    assert refusal.startswith(line)
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("edge", ["nginx", "none"])
def test_a_bad_gateway_setting_stops_it_at_start_naming_it(tmp_path: Path, edge: str) -> None:
    env = subprocess_env(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(free_port()),
        GATEWAY_EDGE=edge,
        GATEWAY_THREADS="many",
        GATEWAY_RUNTIME_DIR=str(tmp_path / "run"),
    )
    gateway = start_process([str(START_GATEWAY)], tmp_path / "gateway.log", env, {})
    code = gateway.process.wait(60)
    assert code != 0
    [refusal] = own_lines(gateway.log(), "gateway:")
    assert refusal.startswith("gateway: GATEWAY_THREADS='many': Input should be a valid integer")
    assert "Traceback" not in gateway.log()
