"""Static checks of docker-compose.yml: no Docker engine needed.

The file is validated against the Compose Specification's JSON schema (the copy vendored,
and kept current, by the ``check-jsonschema`` package), then checked for what the stack
relies on: the start order, inference replicas balanced by gRPC over the service's DNS
name, health checks, resource limits and hardening on every service.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
LONG_RUNNING = ("inference", "gateway")
APP_UID = 10001


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator() -> Any:
    pytest.importorskip("check_jsonschema", reason="pip install check-jsonschema")
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(resource.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def errors(validator: Any, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


# ---- schema -------------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification(validator: Any, compose: dict) -> None:
    assert errors(validator, compose) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "inference", "replicas_typo"), 3),
        (("services", "gateway", "depends_on", "inference", "condition"), "service_ready"),
        (("services", "inference", "healthcheck", "retries"), [3]),
        (("volumes", "models", "driverr"), "local"),
    ],
)
def test_schema_rejects_a_broken_compose_file(
    validator: Any, compose: dict, path: tuple[str, ...], value: object
) -> None:
    broken = copy.deepcopy(compose)
    node = broken
    for key in path[:-1]:
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    assert errors(validator, broken) != []


# ---- topology and start order ---------------------------------------------------------------


def test_services_are_trainer_inference_gateway(compose: dict) -> None:
    assert set(compose["services"]) == {"trainer", "inference", "gateway"}


def test_start_order_trains_then_serves(compose: dict) -> None:
    services = compose["services"]
    assert services["inference"]["depends_on"] == {
        "trainer": {"condition": "service_completed_successfully"}
    }
    # The one-shot trainer is "adopted" by a long-running service, so that
    # `docker compose up --wait` accepts its exit 0 instead of failing on it.
    assert services["gateway"]["depends_on"] == {"inference": {"condition": "service_healthy"}}
    assert services["trainer"]["restart"] == "no"
    assert "healthcheck" not in services["trainer"]


def trainer_script(compose: dict) -> str:
    command = compose["services"]["trainer"]["command"]
    assert command[:2] == ["sh", "-ec"]
    return command[2]


def test_trainer_trains_into_the_model_repository(compose: dict) -> None:
    script = trainer_script(compose)
    # train --repository writes the next version into a hidden directory and renames it:
    # a replica never sees a half-written version (tests/unit/test_repository.py).
    assert "repository=/models/scoring" in script
    assert 'python -m modeling train "$$@" $${TRAIN_ARGS:-} --repository "$$repository"' in script
    # Shell variables are escaped from compose interpolation ($$VAR).
    assert re.search(r"(?<!\$)\$(?!\$)[A-Za-z_@{(]", script) is None


TRAIN = "--repository /models/scoring"


@pytest.mark.parametrize(
    ("state", "csv", "expected"),
    [
        ({}, True, f"TRAIN --train /data/train.csv {TRAIN}"),
        ({}, False, f"TRAIN --synthetic 500 {TRAIN}"),
        ({"scoring/1": {"demo": False}}, True, "nothing to do"),
        ({"scoring/1": {"demo": True}}, False, "keeping the DEMO version"),
        ({"scoring/1": {"demo": True}}, True, f"TRAIN --train /data/train.csv {TRAIN}"),
        ({}, "quick", f"TRAIN --train /data/train.csv --preset quick {TRAIN}"),
        ({"current": {"demo": False}}, True, "/models/current becomes version 1"),
        ({"scoring/1": {"demo": False}, "scoring/2": {"demo": True}}, True, "nothing to do"),
    ],
    ids=[
        "fresh-with-data", "fresh-demo", "exists", "demo-kept", "demo-replaced", "train-args",
        "old-volume", "serving-names-1",
    ],
)  # fmt: skip
def test_trainer_decides_whether_to_train(
    compose: dict, tmp_path: Path, state: dict[str, dict], csv: bool | str, expected: str
) -> None:
    """Run the trainer's real shell script with a stub training, in a scratch /models.

    The repository is read by the real ``modeling.repository`` (which version serves);
    the stub stands for ``train --repository``: it adds the next version, as it does.
    """
    if shutil.which("sh") is None:
        pytest.skip("no POSIX sh")
    models, data, stub = tmp_path / "models", tmp_path / "data", tmp_path / "bin"
    for directory in (models, data, stub):
        directory.mkdir()
    for path, manifest in state.items():
        (models / path).mkdir(parents=True)
        (models / path / "manifest.json").write_text(json.dumps(manifest))
    if "scoring/2" in state:
        (models / "scoring" / "SERVING").write_text("1\n")
    if csv:
        (data / "train.csv").write_text("x0,y\n1,0\n")
    # "python -c" runs for real; "python -m modeling train" is recorded and adds a version.
    (stub / "python").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-c" ]; then exec {shlex.quote(sys.executable)} "$@"; fi\n'
        'shift 3; echo "TRAIN $*"; while [ $# -gt 1 ]; do '
        '[ "$1" = --repository ] && repo="$2"; shift; done; '
        'n=$(($(ls "$repo" 2>/dev/null | grep -c "^[0-9]") + 1)); mkdir -p "$repo/$n"; '
        'echo "{\\"version\\": $n}" > "$repo/$n/manifest.json"\n'
    )
    (stub / "python").chmod(0o755)
    script = (
        trainer_script(compose)
        .replace("$$", "$")
        .replace("/models", str(models))
        .replace("/data", str(data))
    )
    result = subprocess.run(
        ["sh", "-ec", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={
            "PATH": f"{stub}:{os.environ['PATH']}",
            "TRAIN_CSV": str(data / "train.csv"),
            "TRAIN_SYNTHETIC_ROWS": "500",
            "TRAIN_ARGS": "--preset quick" if csv == "quick" else "",
        },
    )
    output = (result.stdout + result.stderr).replace(str(tmp_path), "")
    assert result.returncode == 0, output
    assert expected in output
    trained = "TRAIN" in output
    assert trained == expected.startswith("TRAIN"), output
    versions = sorted(p.name for p in (models / "scoring").iterdir() if p.name.isdigit())
    assert versions, "no version"
    assert versions == [str(n) for n in range(1, len(versions) + 1)], versions
    if trained:
        # A new version was added beside the old, and it is the one to serve (no SERVING).
        assert len(versions) == len([k for k in state if k.startswith("scoring/")]) + 1
        assert not (models / "scoring" / "SERVING").exists()
    if "current" in state:
        assert json.loads((models / "scoring" / "1" / "manifest.json").read_text()) == {
            "demo": False
        }


def test_inference_runs_several_interchangeable_replicas(compose: dict) -> None:
    inference = compose["services"]["inference"]
    assert inference["deploy"]["replicas"] >= 3
    # podman-compose 1.6 creates replicas only when the mode is explicit.
    assert inference["deploy"]["mode"] == "replicated"
    # Replicas cannot share a container name or a published host port.
    assert "container_name" not in inference
    assert "ports" not in inference
    assert {str(p) for p in inference["expose"]} == {"8001", "8002"}


def test_gateway_publishes_5001_and_round_robins_over_inference_dns(compose: dict) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["ports"] == ["${GATEWAY_HOST_ADDR:-127.0.0.1}:${GATEWAY_HOST_PORT:-5001}:5001"]
    env = gateway["environment"]
    assert env["GATEWAY_PORT"] == "5001"
    match = re.fullmatch(r"dns:///(?P<host>[\w.-]+):(?P<port>\d+)", env["INFERENCE_TARGET"])
    assert match, "INFERENCE_TARGET must use gRPC's dns resolver to see every replica"
    assert match["host"] == "inference"
    assert match["port"] == compose["services"]["inference"]["environment"]["INFERENCE_PORT"]


def test_bundle_is_shared_by_volume_and_read_only_for_inference(compose: dict) -> None:
    services = compose["services"]
    trainer_mounts = {m["target"]: m for m in services["trainer"]["volumes"]}
    inference_mounts = {m["target"]: m for m in services["inference"]["volumes"]}
    assert trainer_mounts["/models"]["source"] == inference_mounts["/models"]["source"]
    assert trainer_mounts["/models"]["type"] == "volume"
    assert inference_mounts["/models"]["read_only"] is True
    assert trainer_mounts["/data"]["read_only"] is True
    # The replicas serve the repository (the image's INFERENCE_BUNDLE emptied); the trainer's
    # deploy command records the served version in the same repository's SERVING file.
    assert services["inference"]["environment"]["INFERENCE_BUNDLE"] == ""
    assert services["inference"]["environment"]["INFERENCE_REPOSITORY"] == "/models/scoring"
    assert services["trainer"]["environment"]["INFERENCE_REPOSITORY"] == "/models/scoring"
    assert services["trainer"]["environment"]["INFERENCE_TARGET"] == "inference:8001"
    assert "models" in compose["volumes"]


def test_images_build_from_the_repository_dockerfiles(compose: dict) -> None:
    expected = {
        "trainer": ("Dockerfile.inference", "trainer"),
        "inference": ("Dockerfile.inference", "runtime"),
        "gateway": ("Dockerfile.gateway", "runtime"),
    }
    for name, (dockerfile, target) in expected.items():
        build = compose["services"][name]["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == dockerfile
        assert build["target"] == target
        text = (ROOT / dockerfile).read_text()
        assert re.search(rf"^FROM \S+ AS {target}$", text, re.M), f"no stage {target}"
        assert not compose["services"][name]["image"].endswith(":latest")
        # The base image is passed through from the environment, never fixed here.
        assert build["args"] == ["BASE_IMAGE"]
        assert "command" not in compose["services"][name] or name == "trainer"


# ---- health, limits, hardening ----------------------------------------------------------------


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_healthchecks(compose: dict, name: str) -> None:
    check = compose["services"][name]["healthcheck"]
    assert check["test"][0] == "CMD"
    probe = " ".join(check["test"])
    assert ("grpc_health.v1" in probe) if name == "inference" else ("/readyz" in probe)
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in check
    assert "start_interval" not in check, "podman 4.3 rejects start_interval"


def test_inference_healthcheck_is_the_image_healthcheck(compose: dict) -> None:
    probe = compose["services"]["inference"]["healthcheck"]["test"][-1]
    assert json.dumps(probe) in (ROOT / "Dockerfile.inference").read_text()


@pytest.mark.parametrize("name", ["trainer", *LONG_RUNNING])
def test_every_service_is_hardened_and_limited(compose: dict, name: str) -> None:
    service = compose["services"][name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "cap_add" not in service
    assert "no-new-privileges:true" in service["security_opt"]
    assert service.get("privileged", False) is False
    assert service["user"] == f"{APP_UID}:{APP_UID}"
    assert any(t.split(":")[0] == "/tmp" for t in service["tmpfs"])
    limits = service["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0
    assert re.fullmatch(r"\d+[kmg]", limits["memory"])
    assert "network_mode" not in service
    assert "pid" not in service


def test_no_secrets_in_environment(compose: dict) -> None:
    for name, service in compose["services"].items():
        for key in service.get("environment", {}):
            assert not re.search(r"(?i)password|secret|token|api_?key", key), (name, key)


def test_replicas_wait_for_a_version_then_run_the_image_entrypoint(compose: dict) -> None:
    # podman-compose runs with --no-deps (deploy/docker/engine.sh): no start order there.
    entrypoint = compose["services"]["inference"]["entrypoint"]
    assert entrypoint[:2] == ["sh", "-c"]
    script = entrypoint[2]
    assert 'until ls "$$INFERENCE_REPOSITORY"/*/manifest.json' in script
    image_entrypoint = json.loads(
        re.search(r"^ENTRYPOINT (.+)$", (ROOT / "Dockerfile.inference").read_text(), re.M)[1]
    )
    assert script.strip().endswith(f"exec {image_entrypoint[0]}")


def test_keys_and_tls_are_off_where_the_exercise_runs(compose: dict) -> None:
    # The exercise's curl calls carry no key: compose sets none (nor TLS between the tiers).
    for name, service in compose["services"].items():
        settings = [k for k in service.get("environment", {}) if "TLS" in k or "KEYS" in k]
        assert not settings, (name, settings)
    assert "GATEWAY_API_KEYS_FILE" not in (ROOT / "run_api.sh").read_text()
