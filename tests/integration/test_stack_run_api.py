"""./run_api.sh --local end to end: both servers from a DEMO bundle, the curl, /explain,
loopback binding, a killed inference server restarted (503 meanwhile), Ctrl-C.

The script runs from a scratch directory that links to the repository's run_api.sh and
bin/, so the developer's models/ and data/ are never touched. The session's quick DEMO
bundle is put in place as models/current (training is the modelling tests' business).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from bench.machine import listening_pids
from tests.integration.conftest import REPO, free_port, subprocess_env, wait_until
from tests.integration.gateway_helpers import JSON, answers, predict, request

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_run_api_local_serves_the_bundle_and_stops_on_ctrl_c(
    tmp_path: Path, inference_bundle: Path
) -> None:
    root = tmp_path / "checkout"
    shutil.copytree(inference_bundle, root / "models" / "current")
    (root / "run_api.sh").symlink_to(REPO / "run_api.sh")
    (root / "bin").symlink_to(REPO / "bin")
    ports = {"GATEWAY_PORT": free_port(), "INFERENCE_PORT": free_port()}
    env = subprocess_env(
        **{name: str(port) for name, port in ports.items()},
        INFERENCE_METRICS_PORT=str(free_port()),
        GATEWAY_WORKERS="1",
        GATEWAY_THREADS="2",
    )
    env.pop("TRAIN_CSV", None)
    log_path = tmp_path / "run_api.log"
    with log_path.open("wb") as log:
        script = subprocess.Popen(
            [str(root / "run_api.sh"), "--local"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal would give it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
        )
    gateway = ports["GATEWAY_PORT"]
    try:

        def ready() -> bool:
            assert script.poll() is None, log_path.read_text()
            return "Ctrl-C stops both" in log_path.read_text()

        wait_until(ready, 180.0, "run_api.sh to report ready")
        output = log_path.read_text()
        assert "NOTICE: serving a DEMO model" in output
        assert f"curl --request POST --url http://localhost:{gateway}/predict" in output
        status, _, answer = predict(gateway, {"x0": "9.521496806", "x1": "wed", "x99": "-1.9"})
        assert status == 200
        assert len(answer) == 1
        body = b'{"x0": "9.521496806", "x1": "wed", "x99": "-1.9"}'
        status, _, raw = request(gateway, "POST", "/explain?top=3", body, JSON)
        assert status == 200, raw
        (explained,) = json.loads(raw)
        assert explained["probability"] == answer[0]["probability"]
        assert len(explained["contributions"]) == 3
        for port in (*ports.values(), int(env["INFERENCE_METRICS_PORT"])):
            assert listening_addresses(port) == {"127.0.0.1"}, port

        (inference,) = listening_pids(ports["INFERENCE_PORT"])
        os.kill(inference, signal.SIGKILL)  # the supervisor restarts it
        status, headers, _ = predict(gateway, {"x0": "1"})
        assert (status, headers.get("Retry-After")) == (503, "1")
        wait_until(lambda: predict(gateway, {"x0": "1"})[0] == 200, 30.0, "inference restarted")
        assert "the inference server exited (137): restarting it" in log_path.read_text()

        os.killpg(script.pid, signal.SIGINT)  # what Ctrl-C sends
        assert script.wait(20) == 130
        assert not answers(gateway, "/healthz", 200)  # both servers were stopped and waited for
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port`` (IPv4-mapped as IPv4)."""
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:
                raw = bytes.fromhex(address)
                if table == "tcp":
                    found.add(".".join(str(b) for b in raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
                    v6 = b"".join(words)
                    is_mapped = v6[:12] == bytes(10) + b"\xff\xff"
                    found.add(".".join(map(str, v6[12:])) if is_mapped else v6.hex())
    return found
