"""The rendered Kubernetes manifests of deploy/ played as pods by ``podman kube play``.

podman plays the Deployments (one pod each, whatever the replica count) and the ConfigMaps
they read; it has no Services, autoscalers, disruption budgets or network policies, and
podman 4.3 runs none of the probes. So :func:`for_podman` keeps the objects podman plays
and changes only what a shared podman needs, and :func:`probe` runs a container's probes
as the kubelet does, from the host to the pod's address:

- every name is prefixed per run (podman's pod, container and volume names are
  machine-wide), and each pod's volumes are its own: podman 4.3 plays an ``emptyDir`` as a
  named volume of the same name, which two pods naming ``tmp`` would share;
- the model image is the one the test built from ``deploy/model-image/Dockerfile``;
- the init container runs at each start of the pod (``always``) and is kept, not run
  ``once`` and removed: podman 4.3 removes a ``once`` one in a race with its exit, and
  fails the play when it loses ("cannot remove container ... as it is running");
- the gateway dials the inference pod by the name podman's DNS gives it, in place of the
  headless Service ``inference`` (see ``docs/containers.md``).
"""

from __future__ import annotations

import copy
import http.client
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

PLAYED_KINDS = ("ConfigMap", "Deployment")
MODEL_IMAGE = "scoring-service/model"
INIT_TYPE = "io.podman.annotations.init.container.type"
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def deployment(documents: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The Deployment ``name`` of rendered manifests."""
    (found,) = (d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
    return found


def containers(deployment: dict[str, Any], *, init: bool = False) -> list[dict[str, Any]]:
    """A Deployment's containers (and its init containers first, if ``init``)."""
    spec = deployment["spec"]["template"]["spec"]
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def for_podman(
    documents: list[dict[str, Any]], name: str, prefix: str, model_image: str
) -> list[dict[str, Any]]:
    """Deployment ``name`` and the ConfigMaps it reads, as ``podman kube play`` runs them."""
    played = copy.deepcopy(deployment(documents, name))
    played["metadata"]["name"] = f"{prefix}-{name}"
    # podman 4.3 reads its annotations from the Deployment's metadata, not the template's.
    played["metadata"].setdefault("annotations", {})[INIT_TYPE] = "always"
    spec = played["spec"]["template"]["spec"]
    volumes = {v["name"]: f"{prefix}-{name}-{v['name']}" for v in spec.get("volumes", [])}
    for volume in spec.get("volumes", []):
        volume["name"] = volumes[volume["name"]]
    maps = []
    for container in containers(played, init=True):
        for mount in container.get("volumeMounts", []):
            mount["name"] = volumes[mount["name"]]
        if container["image"].rpartition(":")[0] == MODEL_IMAGE:
            container["image"] = model_image
        maps += [source["configMapRef"]["name"] for source in container.get("envFrom", [])]
    configs = [
        copy.deepcopy(d)
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] in maps
    ]
    return [*configs, played]


def set_config(documents: list[dict[str, Any]], key: str, value: str) -> None:
    """Set ``key`` in the one played ConfigMap that has it."""
    (config,) = (d for d in documents if d["kind"] == "ConfigMap" and key in d["data"])
    config["data"][key] = value


def port_number(container: dict[str, Any], port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    (number,) = (p["containerPort"] for p in container["ports"] if p["name"] == port)
    return int(number)


def probe(container: dict[str, Any], spec: dict[str, Any], address: str) -> str | None:
    """Run one probe against ``address`` as the kubelet does: None if it passes, else why."""
    timeout = float(spec.get("timeoutSeconds", 1))
    if "grpc" in spec:
        port = port_number(container, spec["grpc"]["port"])
        request = health_pb2.HealthCheckRequest(service=spec["grpc"].get("service", ""))
        with grpc.insecure_channel(f"{address}:{port}") as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout)
            except grpc.RpcError as error:
                return f"gRPC health on {port}: {error.code().name}"
        serving = answer.status == health_pb2.HealthCheckResponse.SERVING
        return None if serving else f"gRPC health on {port}: {answer.status}"
    if "httpGet" in spec:
        port = port_number(container, spec["httpGet"]["port"])
        connection = http.client.HTTPConnection(address, port, timeout=timeout)
        try:
            connection.request("GET", spec["httpGet"]["path"])
            status = connection.getresponse().status
        except OSError as error:
            return f"GET {spec['httpGet']['path']} on {port}: {error!r}"
        finally:
            connection.close()
        return None if 200 <= status < 400 else f"GET {spec['httpGet']['path']}: {status}"
    raise AssertionError(f"a probe this test cannot run: {sorted(spec)}")


def probe_budget_s(spec: dict[str, Any]) -> float:
    """How long the kubelet lets a probe fail before it acts (period x failure threshold)."""
    return float(spec.get("periodSeconds", 10) * spec.get("failureThreshold", 3))
