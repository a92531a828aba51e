"""Static checks of the Kubernetes manifests in deploy/: no cluster needed.

Every manifest file, and the output of ``kubectl kustomize`` for the base and the
production overlay, is validated strictly (unknown fields are errors) against the
Kubernetes OpenAPI schemas that ``kubernetes-validate`` ships, for the oldest and the
newest Kubernetes minor we support. Then the rendered objects are checked for what the
design relies on: a headless inference Service the gateway resolves, gRPC and HTTP
probes, requests and limits, the restricted security context, autoscalers and
disruption budgets that point at real Deployments, and ports that match the images.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from tests.kustomize import kustomize_command
from tests.kustomize import render as render_with

yaml = pytest.importorskip("yaml")
try:  # only the schema tests need it; the design checks below run without it
    import kubernetes_validate
except ModuleNotFoundError:
    kubernetes_validate = None

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = {"base": DEPLOY / "base", "production": DEPLOY / "overlays" / "production"}
# Oldest minor we promise (preStop sleep, matchLabelKeys, unhealthyPodEvictionPolicy are
# all on by default from 1.31) and the newest the validator knows.
K8S_VERSIONS = ("1.31.0", "latest")
APP_UID = 10001
EXPOSED = {"inference": {8001, 8002}, "gateway": {5001}}
SERVICE_CONTAINERS = {"inference": "inference", "gateway": "gateway"}


def validator_module() -> Any:
    if kubernetes_validate is None:
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
    return kubernetes_validate


def k8s_version(version: str) -> str:
    return validator_module().utils.latest_version() if version == "latest" else version


def render(directory: Path) -> list[dict[str, Any]]:
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kubectl nor kustomize is installed")
    return render_with(command, directory)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(path) for name, path in OVERLAYS.items()}


@pytest.fixture(scope="module")
def base(rendered: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in rendered["base"]}


def validate(document: dict[str, Any], version: str) -> None:
    validator_module().validate(document, k8s_version(version), strict=True)


def manifest_files() -> list[Path]:
    return sorted(
        p
        for p in DEPLOY.rglob("*.yaml")
        if p.name not in ("kustomization.yaml", "kustomization.yml")
    )


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_spec(deployment)["containers"] if c["name"] == name)


def configmap_data(base: dict, deployment: dict[str, Any], name: str) -> dict[str, str]:
    data: dict[str, str] = {}
    for source in container(deployment, name).get("envFrom", []):
        data.update(base["ConfigMap", source["configMapRef"]["name"]]["data"])
    return data


# ---- schema validation ----------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_each_manifest_file_is_valid(path: Path, version: str) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    assert documents, f"{path} holds no object"
    for document in documents:
        validate(document, version)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_rendered_kustomization_is_valid(rendered: dict, overlay: str, version: str) -> None:
    assert rendered[overlay]
    for document in rendered[overlay]:
        validate(document, version)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["spec"].__setitem__("replicass", 3), "replicass"),
        (lambda d: pod_spec(d)["containers"][0].__setitem__("imagePullPolicy", 1), "1"),
        (lambda d: pod_spec(d)["securityContext"].__setitem__("runAsNonRoot", "yes"), "yes"),
    ],
    ids=["unknown-field", "wrong-type", "wrong-bool"],
)
def test_validation_rejects_a_broken_deployment(base: dict, mutate: Any, expected: str) -> None:
    broken = copy.deepcopy(base["Deployment", "inference"])
    mutate(broken)
    with pytest.raises(validator_module().ValidationError, match=re.escape(expected)):
        validate(broken, "latest")


def test_base_holds_the_expected_objects(base: dict) -> None:
    kinds = {key for key in base if key[0] != "ConfigMap"}
    assert kinds == {
        ("ServiceAccount", "scoring-service"),
        ("Deployment", "inference"),
        ("Deployment", "gateway"),
        ("Service", "inference"),
        ("Service", "gateway"),
        ("HorizontalPodAutoscaler", "inference"),
        ("HorizontalPodAutoscaler", "gateway"),
        ("PodDisruptionBudget", "inference"),
        ("PodDisruptionBudget", "gateway"),
        ("NetworkPolicy", "inference"),
        ("NetworkPolicy", "gateway"),
    }


# ---- load balancing and configuration --------------------------------------------------------


def test_inference_service_is_headless_and_selects_the_pods(base: dict) -> None:
    service = base["Service", "inference"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"].get("publishNotReadyAddresses", False) is False
    labels = base["Deployment", "inference"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_gateway_resolves_the_headless_service_with_grpc_dns(base: dict) -> None:
    config = configmap_data(base, base["Deployment", "gateway"], "gateway")
    match = re.fullmatch(r"dns:///(?P<host>[\w-]+):(?P<port>\d+)", config["INFERENCE_TARGET"])
    assert match, config["INFERENCE_TARGET"]
    service = base["Service", match["host"]]
    assert service["spec"]["clusterIP"] == "None"
    assert int(match["port"]) in {p["port"] for p in service["spec"]["ports"]}
    assert config["GATEWAY_PORT"] == "5001"


def test_service_ports_reach_named_container_ports(base: dict) -> None:
    for name in SERVICE_CONTAINERS:
        ports = {p["name"] for p in container(base["Deployment", name], name)["ports"]}
        for port in base["Service", name]["spec"]["ports"]:
            assert port["targetPort"] in ports


@pytest.mark.parametrize("name", sorted(SERVICE_CONTAINERS))
def test_container_ports_match_the_image(base: dict, name: str) -> None:
    ports = container(base["Deployment", name], name)["ports"]
    assert {p["containerPort"] for p in ports} == EXPOSED[name]
    dockerfile = (ROOT / f"Dockerfile.{name}").read_text()
    exposed = {
        int(p) for line in re.findall(r"^EXPOSE (.+)$", dockerfile, re.M) for p in line.split()
    }
    assert exposed == EXPOSED[name]


@pytest.mark.parametrize("name", sorted(SERVICE_CONTAINERS))
def test_start_command_is_the_image_entrypoint(base: dict, name: str) -> None:
    # No command/args override: the image ENTRYPOINT (bin/start-*) runs, as in local mode.
    main = container(base["Deployment", name], name)
    assert "command" not in main
    assert "args" not in main


def test_inference_serves_the_mounted_bundle_read_only(base: dict) -> None:
    deployment = base["Deployment", "inference"]
    config = configmap_data(base, deployment, "inference")
    mounts = {m["mountPath"]: m for m in container(deployment, "inference")["volumeMounts"]}
    bundle = mounts[config["INFERENCE_BUNDLE"]]
    assert bundle["readOnly"] is True
    (init,) = pod_spec(deployment)["initContainers"]
    init_mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    assert init_mounts[config["INFERENCE_BUNDLE"]] == bundle["name"]
    assert init["command"][-1].rstrip("/") == config["INFERENCE_BUNDLE"]


def test_configmaps_are_referenced_and_exist(base: dict) -> None:
    for name in SERVICE_CONTAINERS:
        assert configmap_data(base, base["Deployment", name], name)


# ---- probes ------------------------------------------------------------------------------


def test_inference_probes_use_native_grpc_health(base: dict) -> None:
    main = container(base["Deployment", "inference"], "inference")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["grpc"]["port"] == 8001, probe


def test_gateway_probes_use_readyz_and_healthz(base: dict) -> None:
    main = container(base["Deployment", "gateway"], "gateway")
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main["startupProbe"]["httpGet"]["path"] == "/healthz"


# ---- resources and security ------------------------------------------------------------------


def all_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(deployment)
    return spec.get("initContainers", []) + spec["containers"]


@pytest.mark.parametrize("name", sorted(SERVICE_CONTAINERS))
def test_every_container_has_requests_and_limits(base: dict, name: str) -> None:
    for item in all_containers(base["Deployment", name]):
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(item["resources"][kind]), (item["name"], kind)


@pytest.mark.parametrize("name", sorted(SERVICE_CONTAINERS))
def test_pods_meet_the_restricted_security_profile(base: dict, name: str) -> None:
    spec = pod_spec(base["Deployment", name])
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == APP_UID
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    # Service links would inject e.g. GATEWAY_PORT=tcp://... and clash with our settings.
    assert spec["enableServiceLinks"] is False
    assert not spec.get("hostNetwork")
    assert not spec.get("hostPID")
    for item in all_containers(base["Deployment", name]):
        context = item["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, item["name"]
        assert context["readOnlyRootFilesystem"] is True, item["name"]
        assert context["capabilities"]["drop"] == ["ALL"], item["name"]
        assert "add" not in context["capabilities"]
        assert context.get("privileged", False) is False


@pytest.mark.parametrize("name", sorted(SERVICE_CONTAINERS))
def test_writable_tmp_is_an_emptydir(base: dict, name: str) -> None:
    deployment = base["Deployment", name]
    mounts = {m["mountPath"]: m["name"] for m in container(deployment, name)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


# ---- scaling, availability, placement, observability -----------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICE_CONTAINERS))
def test_hpa_scales_the_deployment_on_cpu_with_behaviour(base: dict, name: str) -> None:
    hpa = base["HorizontalPodAutoscaler", name]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) in base
    assert "replicas" not in base["Deployment", name]["spec"], "the HPA owns replicas"
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert {m["resource"]["name"] for m in hpa["metrics"]} == {"cpu"}
    assert hpa["behavior"]["scaleUp"]["policies"]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60


@pytest.mark.parametrize("name", sorted(SERVICE_CONTAINERS))
def test_pdb_protects_the_pods(base: dict, name: str) -> None:
    pdb = base["PodDisruptionBudget", name]["spec"]
    labels = base["Deployment", name]["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["maxUnavailable"] == 1
    assert base["HorizontalPodAutoscaler", name]["spec"]["minReplicas"] > pdb["maxUnavailable"]


@pytest.mark.parametrize("name", sorted(SERVICE_CONTAINERS))
def test_rollouts_never_drop_capacity(base: dict, name: str) -> None:
    strategy = base["Deployment", name]["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("name", sorted(SERVICE_CONTAINERS))
def test_pods_spread_over_nodes_and_zones(base: dict, name: str) -> None:
    constraints = pod_spec(base["Deployment", name])["topologySpreadConstraints"]
    keys = {c["topologyKey"] for c in constraints}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}


@pytest.mark.parametrize("name", sorted(SERVICE_CONTAINERS))
def test_prometheus_scrapes_the_metrics_port(base: dict, name: str) -> None:
    deployment = base["Deployment", name]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    ports = {p["containerPort"] for p in container(deployment, name)["ports"]}
    assert int(annotations["prometheus.io/port"]) in ports


# ---- images and the production overlay -------------------------------------------------------


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_images_are_tagged_never_latest(rendered: dict, overlay: str) -> None:
    for document in rendered[overlay]:
        if document["kind"] != "Deployment":
            continue
        for item in all_containers(document):
            image = item["image"]
            assert re.search(r"(:[\w.-]+|@sha256:[0-9a-f]{64})$", image), image
            assert not image.endswith(":latest"), image


def test_production_enforces_the_restricted_pod_security_standard(rendered: dict) -> None:
    (namespace,) = [d for d in rendered["production"] if d["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    name = namespace["metadata"]["name"]
    for document in rendered["production"]:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == name, document["metadata"]["name"]


def test_production_ingress_routes_to_the_gateway_service(rendered: dict) -> None:
    (ingress,) = [d for d in rendered["production"] if d["kind"] == "Ingress"]
    services = {d["metadata"]["name"] for d in rendered["production"] if d["kind"] == "Service"}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] in services
    # A 10,000-row request is ~20 MB of JSON: the controller's default 1 MB would reject it.
    body = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(body.rstrip("m")) >= 20


def test_no_secrets_in_the_manifests(rendered: dict) -> None:
    secret_name = re.compile(r"(?i)password|passwd|secret|token|api_?key|credential")
    for document in rendered["production"]:
        assert document["kind"] != "Secret", "secrets come from the platform, not this repo"
        names = list(document.get("data", {})) if document["kind"] == "ConfigMap" else []
        if document["kind"] == "Deployment":
            names += [e["name"] for c in all_containers(document) for e in c.get("env", [])]
        # A *_FILE setting is the path of a mounted Secret (API key hashes), not a secret.
        found = [n for n in names if secret_name.search(n) and not n.endswith("_FILE")]
        assert not found, document["metadata"]["name"]


def production(rendered: dict) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in rendered["production"]}


def mounted_secret(deployment: dict[str, Any], name: str, path: str) -> str:
    """The Secret mounted read-only at the directory holding ``path`` in container ``name``."""
    mounts = {m["mountPath"]: m for m in container(deployment, name).get("volumeMounts", [])}
    mount = mounts[str(Path(path).parent)]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    return str(volumes[mount["name"]]["secret"]["secretName"])


def test_keys_and_mutual_tls_are_off_in_the_base_and_on_in_production(
    base: dict, rendered: dict
) -> None:
    for name in SERVICE_CONTAINERS:
        settings = configmap_data(base, base["Deployment", name], name)
        assert not [k for k in settings if "TLS" in k or "KEYS" in k or "_CA" in k], settings
    objects = production(rendered)
    gateway, inference = objects["Deployment", "gateway"], objects["Deployment", "inference"]
    settings = configmap_data(objects, gateway, "gateway")
    assert mounted_secret(gateway, "gateway", settings["GATEWAY_API_KEYS_FILE"]) == (
        "gateway-api-keys"
    )
    for key in ("GATEWAY_INFERENCE_CA", "GATEWAY_INFERENCE_CERT", "GATEWAY_INFERENCE_KEY"):
        assert mounted_secret(gateway, "gateway", settings[key]) == "gateway-tls"
    served = configmap_data(objects, inference, "inference")
    for key in ("INFERENCE_TLS_CERT", "INFERENCE_TLS_KEY", "INFERENCE_TLS_CLIENT_CA"):
        assert mounted_secret(inference, "inference", served[key]) == "inference-tls"
    # gRPC probes speak plaintext: they ask the health-only port, declared on the container
    health = int(served["INFERENCE_HEALTH_PORT"])
    main = container(inference, "inference")
    assert health in {p["containerPort"] for p in main["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["grpc"]["port"] == health, probe


def test_the_production_ingress_exposes_the_api_but_not_metrics(rendered: dict) -> None:
    ingress = production(rendered)["Ingress", "gateway"]
    paths = {p["path"]: p["pathType"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert paths == {
        "/predict": "Exact",
        "/explain": "Exact",
        "/v2": "Prefix",
        "/openapi.json": "Exact",
    }
