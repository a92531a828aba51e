"""The compose stack of tests/containers: trained on a small CSV this test writes.

``make compose-test`` builds the images first (``make images``); ``compose up`` would
build any that are missing with the same Dockerfiles. Without a container engine every
test here is skipped with a loud message. The figures the tests measure (image sizes,
start-to-ready times, the spread over the replicas, the replica-kill result) are printed
at the end of the run.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeling.schema import COLUMNS
from modeling.training.synthetic import synthetic_table
from tests.containers.stack import Stack, engine, wait_for
from tests.integration.conftest import free_port
from tests.integration.gateway_helpers import answers

TRAIN_ROWS = 2000
READY_TIMEOUT_S = 600.0  # first start: the trainer fits the model
FIGURES: dict[str, object] = {}


def write_training_csv(path: Path, n_rows: int) -> None:
    """Schema-conforming rows with a target, as the exercise's training file looks."""
    columns, target = synthetic_table(n_rows, seed=3)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow([*COLUMNS, "y"])
        for i in range(n_rows):
            writer.writerow([*(columns[c][i] for c in COLUMNS), int(target[i])])


def wait_whole(stack: Stack, timeout: float) -> None:
    """Wait until 3 inference replicas say SERVING and the gateway's /readyz answers 200."""

    def whole() -> bool:
        replicas = stack.containers("inference")
        return (
            len(replicas) == 3
            and all(stack.serving(name) for name in replicas)
            and answers(stack.port, "/readyz", 200)
        )

    wait_for(whole, timeout, "3 SERVING inference replicas and the gateway's /readyz", 1.0)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole stack up and ready; ``down -v`` at the end, whatever happened."""
    found = engine()
    if found is None:
        message = (
            "\n######## NO CONTAINER ENGINE answers here (docker info, podman info): the images "
            "and the compose stack are NOT tested ########\n"
        )
        sys.stderr.write(message)
        pytest.skip(message.strip())
    name, compose, up = found
    if shutil.which(compose[0]) is None:
        pytest.fail(f"{name} answers but {compose[0]} is not installed")
    work = tmp_path_factory.mktemp("compose")
    data = work / "data"
    data.mkdir()
    write_training_csv(data / "train.csv", TRAIN_ROWS)
    # The trainer runs as UID 10001: the bind-mounted directory must be readable by it.
    data.chmod(0o755)
    (data / "train.csv").chmod(0o644)
    env = {
        "TRAIN_DATA_DIR": str(data),
        "TRAIN_CSV_NAME": "train.csv",
        "TRAIN_ARGS": "--preset quick",
        "GATEWAY_HOST_ADDR": "127.0.0.1",
        "GATEWAY_HOST_PORT": str(free_port()),
    }
    if os.environ.get("BASE_IMAGE"):
        env["BASE_IMAGE"] = os.environ["BASE_IMAGE"]
    project = f"scoring-test-{os.getpid()}"
    port = int(env["GATEWAY_HOST_PORT"])
    stack = Stack(name, compose, up, project, env, port, work / "engine.log")
    FIGURES["engine"] = f"{name} ({' '.join(compose)}), project {project}"
    try:
        stack.compose_cmd(*up, timeout=900)
        wait_whole(stack, READY_TIMEOUT_S)
        yield stack
    except BaseException:
        sys.stderr.write(f"\nengine log: {stack.log}\n")
        raise
    finally:
        stack.compose_cmd("down", "-v", "-t", "15", timeout=300)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the container tests measured."""
    if FIGURES:
        terminalreporter.section("compose stack figures")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")
