"""The Kubernetes manifests for real: deploy/base rendered and played by ``podman kube play``.

Run with ``make compose-test`` (CI: ``.ci/run``), after ``make images``. The inference
Deployment starts from the project's image with its model from a model image built here
(``deploy/model-image/Dockerfile``, copied in by the init container); the gateway
Deployment dials it. What podman cannot show, and how that stays checked:
``docs/containers.md``. The pods live on a podman network of their own and publish no
host port: the test reaches them at their addresses, as the kubelet and a Service do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from modeling.training.synthetic import synthetic_records
from tests.containers.conftest import FIGURES
from tests.containers.kube import (
    PROBES,
    containers,
    deployment,
    for_podman,
    probe,
    probe_budget_s,
    set_config,
)
from tests.containers.scores import assert_same_scores, expected_scores
from tests.containers.stack import REPO, engine, wait_for
from tests.integration.gateway_helpers import predict, request
from tests.kustomize import kustomize_command, render

pytestmark = pytest.mark.containers

BASE = REPO / "deploy" / "base"
MODEL_DOCKERFILE = REPO / "deploy" / "model-image" / "Dockerfile"
IMAGES = ("scoring-service/inference:1.0.0", "scoring-service/gateway:1.0.0")
APP_UID = "10001"


@dataclass
class Pods:
    """The played pods: the rendered manifests, each Deployment's pod and its address."""

    rendered: list[dict[str, Any]]
    pod: dict[str, str]
    address: dict[str, str]
    bundle: Path
    log: Path

    def run(self, *argv: str, check: bool = True, timeout: float = 300) -> str:
        """Run a command, logged; its stdout."""
        result = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
        with self.log.open("a") as log:
            log.write(
                f"$ {' '.join(argv)} -> {result.returncode}\n{result.stdout}{result.stderr}\n"
            )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def exec(self, name: str, container: str, *argv: str) -> str:
        """Run ``argv`` in one container of Deployment ``name``'s pod (podman names it so)."""
        return self.run("podman", "exec", f"{self.pod[name]}-{container}", *argv)


def skip_loudly(reason: str) -> NoReturn:
    message = f"\n######## {reason}: the Kubernetes manifests are NOT played ########\n"
    sys.stderr.write(message)
    pytest.skip(message.strip())


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory, quick_bundle: Path) -> Iterator[Pods]:
    """Inference, then gateway, played on a network of their own; all removed at the end."""
    found = engine()
    if found is None or found[0] != "podman":
        skip_loudly("podman does not answer here (kube play is podman's)")
    command = kustomize_command()
    if command is None:
        skip_loudly("neither kubectl nor kustomize is installed (they render deploy/base)")
    work = tmp_path_factory.mktemp("kube")
    prefix = f"scoring-kube-{os.getpid()}"
    model_image = f"localhost/scoring-service/model:{prefix}"
    pods = Pods(render(command, BASE), {}, {}, work / "bundle", work / "engine.log")
    for image in IMAGES:
        if subprocess.run(["podman", "image", "exists", image], check=False).returncode:
            pytest.fail(f"no image {image}: build it first (make images; make compose-test does)")
    # The model image's build context is the bundle itself, readable by its UID 10001.
    shutil.copytree(quick_bundle, pods.bundle)
    pods.bundle.chmod(0o755)
    base = os.environ.get("BASE_IMAGE")
    played: list[Path] = []
    try:
        pods.run("podman", "build", "--format", "docker", "-q",
                 *(["--build-arg", f"MODEL_BASE_IMAGE={base}"] if base else []),
                 "-f", str(MODEL_DOCKERFILE), "-t", model_image, str(pods.bundle))  # fmt: skip
        pods.run("podman", "network", "create", prefix)
        target = ""
        for name in ("inference", "gateway"):
            documents = for_podman(pods.rendered, name, prefix, model_image)
            if name == "gateway":
                set_config(documents, "INFERENCE_TARGET", target)
            path = work / f"{name}.yaml"
            path.write_text(yaml.safe_dump_all(documents))
            played.append(path)
            pods.run("podman", "kube", "play", "--network", prefix, str(path))
            (pods.pod[name],) = pods.run(
                "podman", "pod", "ps", "--filter", f"name=^{prefix}-{name}-", "--format",
                "{{.Name}}",
            ).split()  # fmt: skip
            infra = pods.run("podman", "pod", "inspect", "--format", "{{.InfraContainerID}}",
                             pods.pod[name]).strip()  # fmt: skip
            pods.address[name] = pods.run(
                "podman", "inspect", "--format",
                f'{{{{(index .NetworkSettings.Networks "{prefix}").IPAddress}}}}', infra,
            ).strip()  # fmt: skip
            if name == "inference":
                # No Service here: the gateway dials the inference pod by its podman DNS name.
                rendered = configured(pods.rendered, "gateway", "INFERENCE_TARGET")
                target = rendered.replace("///inference:", f"///{pods.pod['inference']}:")
                assert target != rendered, f"INFERENCE_TARGET {rendered} names no Service"
            FIGURES[f"kube play: {name} started (startup probes passed) in"] = (
                f"{wait_started(pods, name):.1f} s"
            )
        yield pods
    except BaseException:
        sys.stderr.write(f"\nengine log: {pods.log}\n")
        raise
    finally:
        for path in reversed(played):
            pods.run("podman", "kube", "down", str(path), check=False)
        pods.run("podman", "network", "rm", "-f", prefix, check=False)
        pods.run("podman", "rmi", "-f", model_image, check=False)


def configured(rendered: list[dict[str, Any]], name: str, key: str) -> str:
    """A setting of Deployment ``name`` as its ConfigMaps give it."""
    maps = [
        source["configMapRef"]["name"]
        for container in containers(deployment(rendered, name))
        for source in container.get("envFrom", [])
    ]
    values = [
        d["data"][key]
        for d in rendered
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] in maps and key in d["data"]
    ]
    (value,) = values
    return str(value)


def wait_started(pods: Pods, name: str) -> float:
    """Wait until each container's startup probe passes, within the kubelet's budget; the wait."""
    started = time.monotonic()
    for container in containers(deployment(pods.rendered, name)):
        startup = container["startupProbe"]
        wait_for(
            lambda: probe(container, startup, pods.address[name]) is None,  # noqa: B023
            probe_budget_s(startup),
            f"{name}/{container['name']}'s startup probe",
            float(startup.get("periodSeconds", 10)),
        )
    return time.monotonic() - started


@pytest.mark.parametrize("name", ["inference", "gateway"])
def test_probes_pass(pods: Pods, name: str) -> None:
    """Each container has the three probes, and each passes once the pod has started."""
    for container in containers(deployment(pods.rendered, name)):
        specs = {kind: container[kind] for kind in PROBES if kind in container}
        assert set(specs) == set(PROBES), f"{name}/{container['name']} lacks a probe"
        for kind, spec in specs.items():
            assert probe(container, spec, pods.address[name]) is None, kind


def test_inference_serves_the_model_image_s_bundle(pods: Pods) -> None:
    """The init container copied the model image's bundle; the server serves exactly it."""
    served = json.loads(pods.exec("inference", "inference", "cat", "/models/current/manifest.json"))
    built = json.loads((pods.bundle / "manifest.json").read_text())
    assert served == built
    port = int(configured(pods.rendered, "gateway", "GATEWAY_PORT"))
    status, _, body = request(port, "GET", "/readyz", host=pods.address["gateway"])
    assert status == 200, body
    ready = json.loads(body)
    assert ready["model"] == built["name"]
    assert ready["version"] == built["created_at"]


def test_predict_through_the_gateway_pod(pods: Pods) -> None:
    """/predict answers through the gateway pod, as the in-process predictor does."""
    version = json.loads((pods.bundle / "manifest.json").read_text())["created_at"]
    port = int(configured(pods.rendered, "gateway", "GATEWAY_PORT"))
    for rows in (synthetic_records(1, seed=31), synthetic_records(500, seed=32)):
        status, headers, got = predict(port, rows, host=pods.address["gateway"])
        assert status == 200, got
        assert headers["X-Model-Version"] == version
        assert_same_scores(got, expected_scores(pods.bundle, rows))
    status, _, got = predict(port, [{"x0": "not a number"}], host=pods.address["gateway"])
    assert status == 400, got


@pytest.mark.parametrize(
    ("name", "container"), [("inference", "inference"), ("gateway", "gateway")]
)
def test_containers_run_as_their_security_context_says(
    pods: Pods, name: str, container: str
) -> None:
    """Non-root UID 10001 on a read-only root filesystem, /tmp writable (its own volume)."""
    check = (
        "id -u; id -g; if touch /probe 2>/dev/null; then echo root-writable; "
        "else echo root-read-only; fi; touch /tmp/probe && echo tmp-writable"
    )
    assert pods.exec(name, container, "sh", "-c", check).split() == [
        APP_UID, APP_UID, "root-read-only", "tmp-writable"
    ]  # fmt: skip
