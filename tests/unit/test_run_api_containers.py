"""./run_api.sh's container path with a stand-in engine: what it says when it cannot build.

A stand-in ``podman`` and ``podman-compose`` on ``PATH`` (and a ``docker`` that answers
no engine) play a machine where podman works but no image registry answers. The script
runs from a scratch directory linked to the repository's files, so nothing real is built.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REGISTRY_ERROR = (
    "Error: initializing source docker://python:3.11.16-slim-bookworm: pinging container "
    'registry registry-1.docker.io: Get "https://registry-1.docker.io/v2/": dial tcp: '
    "lookup registry-1.docker.io: no such host"
)
SYSTEMD_NOISE = (
    "Error: unable to get systemd connection to add healthchecks: dial unix "
    "/run/systemd/private: connect: no such file or directory"
)
LOCAL_BASE = "localhost/python-base:3.11-bookworm"

# The stand-in podman: `info` answers, `image inspect` finds only LOCAL_BASE, `images`
# lists it, `pull` fails as it does where no registry answers. Every call is logged.
PODMAN = f"""#!/bin/sh
echo "podman $*" >> "$CALLS"
case "$1" in
    info) exit 0 ;;
    image) [ "$3" = "{LOCAL_BASE}" ] && exit 0; exit 125 ;;
    images) echo "{LOCAL_BASE}"; exit 0 ;;
    pull) echo 'Trying to pull docker.io/library/python:3.11.16-slim-bookworm...' >&2
          echo '{REGISTRY_ERROR}' >&2; exit 125 ;;
esac
exit 0
"""
# The stand-in podman-compose: prints what COMPOSE_OUTPUT holds, exits COMPOSE_STATUS.
COMPOSE = """#!/bin/sh
echo "podman-compose $*" >> "$CALLS"
printf '%s\\n' "$COMPOSE_OUTPUT"
exit "$COMPOSE_STATUS"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A scratch checkout: run_api.sh, deploy/ and the Dockerfiles linked, a stand-in engine."""
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("run_api.sh", "deploy", "Dockerfile.inference", "Dockerfile.gateway"):
        (root / name).symlink_to(REPO / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (
        ("podman", PODMAN),
        ("podman-compose", COMPOSE),
        ("docker", "#!/bin/sh\nexit 1\n"),
    ):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return root


def run_api(checkout: Path, *, timeout: float = 60.0, **env: str) -> tuple[int, str, str]:
    """Run ./run_api.sh in ``checkout``: (exit code, everything printed, the engine's calls)."""
    calls = checkout.parent / "calls.log"
    calls.touch()
    environment = {
        "PATH": f"{checkout.parent / 'bin'}:{os.environ['PATH']}",
        "HOME": str(checkout.parent),
        "CALLS": str(calls),
        "COMPOSE_OUTPUT": "",
        "COMPOSE_STATUS": "0",
        **env,
    }
    done = subprocess.run(
        [str(checkout / "run_api.sh")],
        cwd=checkout,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, calls.read_text()


def test_unpullable_base_image_is_said_before_building_with_the_two_ways_out(
    checkout: Path,
) -> None:
    code, output, calls = run_api(checkout)

    assert code != 0
    assert "podman-compose" not in calls, "it built although the base image cannot be had"
    assert "podman pull python:3.11.16-slim-bookworm" in calls  # the Dockerfiles' default
    assert "No image registry answered" in output
    assert output.count("no such host") == 1, "the engine's error is repeated"
    paragraph = output[output.index("the containers cannot start") :]
    assert f"BASE_IMAGE={LOCAL_BASE} ./run_api.sh" in paragraph  # the image found here
    assert "./run_api.sh --local" in paragraph
    assert paragraph.rstrip().endswith("local processes"), "the way out is not said last"


def test_failed_build_ends_with_what_failed_and_hides_systemd_noise(checkout: Path) -> None:
    failure = 'Error: building at STEP "RUN pip install": exit status 1'
    code, output, calls = run_api(
        checkout,
        BASE_IMAGE=LOCAL_BASE,
        COMPOSE_OUTPUT="\n".join(
            [SYSTEMD_NOISE, SYSTEMD_NOISE, failure, "ERROR:podman_compose:Build command failed"]
        ),
        COMPOSE_STATUS="125",
    )

    assert code == 1
    assert "podman pull" not in calls  # the named base image is here: nothing to pull
    assert "systemd connection" not in output
    assert output.count("runs no HEALTHCHECK without systemd") == 1
    paragraph = output[output.index("the containers cannot start") :]
    assert "exited 125" in paragraph
    assert "No image registry answered" not in paragraph  # not the cause this time
    assert failure in paragraph
    assert "./run_api.sh --local" in paragraph


def test_a_build_that_cannot_reach_a_package_archive_says_so_not_the_registry(
    checkout: Path,
) -> None:
    # as seen here: the base image is local, but apt and pip inside the build lose the network
    pip = (
        "  WARNING: Retrying (Retry(total=2)) after connection broken by 'NewConnectionError("
        "Failed to establish a new connection: [Errno -3] Temporary failure in name resolution')"
    )
    apt = "E: Version '1.22.1-9+deb12u11' for 'nginx' was not found"
    step = 'Error: building at STEP "RUN apt-get update && apt-get install nginx": exit status 100'
    code, output, _ = run_api(
        checkout,
        BASE_IMAGE=LOCAL_BASE,
        COMPOSE_OUTPUT="\n".join([pip, apt, step, "ERROR:podman_compose:Build command failed"]),
        COMPOSE_STATUS="100",
    )

    assert code == 1
    paragraph = output[output.index("the containers cannot start") :]
    assert "No image registry answered" not in paragraph  # the base image was here
    assert "could not reach a package archive" in paragraph
    assert "Temporary failure in name resolution" in paragraph
    assert apt in paragraph
    assert step in paragraph
    assert "podman_compose" not in paragraph  # its summary lines say nothing new


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def ready_port() -> Iterator[int]:
    """A local server answering 200 to every GET, standing in for the gateway's /readyz."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()


def test_started_stack_shows_no_systemd_noise_and_succeeds(checkout: Path, ready_port: int) -> None:
    code, output, _ = run_api(
        checkout,
        BASE_IMAGE=LOCAL_BASE,
        GATEWAY_PORT=str(ready_port),
        COMPOSE_OUTPUT=f"{SYSTEMD_NOISE}\nexercise06_gateway_1\n{SYSTEMD_NOISE}",
    )

    assert code == 0, output
    assert "systemd connection" not in output
    assert "exercise06_gateway_1" in output  # the engine's other lines still show
    assert "runs no HEALTHCHECK without systemd" in output
    assert f"http://localhost:{ready_port}/predict" in output
