"""TLS and mutual TLS between gateway and inference server, and API keys behind nginx.

A throwaway CA (bench.pki, the ``cryptography`` package) signs the server's certificate
and the gateway's client certificate; a second CA signs a client certificate the server
must refuse. The server runs as a real process (bin/start-inference) with TLS on its
gRPC port and a plaintext health-only port for probes; the gateway is the real gunicorn
app behind nginx (bin/start-gateway).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from bench.pki import Pki, write_pki
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from tests.integration.conftest import (
    START_INFERENCE,
    ManagedProcess,
    StartInference,
    free_port,
    health_status,
    start_process,
    subprocess_env,
    wait_until,
)
from tests.integration.gateway_helpers import JSON, Gateways, request

pytestmark = pytest.mark.integration

ROW = {"x0": "9.521496806", "x1": "wed", "x12": "$296.43 ", "x54": "Jun", "x99": "-1.926577376"}
KEY = "tls-test-key-6f1d0c"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_pki(tmp_path_factory.mktemp("pki"))


def start_tls_server(bundle: Path, log_dir: Path, pki: Pki, *, mutual: bool) -> ManagedProcess:
    ports = {"grpc": free_port(), "metrics": free_port(), "health": free_port()}
    argv = [
        str(START_INFERENCE),
        "--bundle", str(bundle),
        "--port", str(ports["grpc"]),
        "--metrics-port", str(ports["metrics"]),
        "--health-port", str(ports["health"]),
        "--tls-cert", str(pki.server_cert),
        "--tls-key", str(pki.server_key),
        *(["--tls-client-ca", str(pki.ca)] if mutual else []),
    ]  # fmt: skip
    server = start_process(argv, log_dir / "inference-tls.log", subprocess_env(), ports)

    def serving() -> bool:
        if not server.running():
            pytest.fail(f"server exited with {server.process.returncode}:\n{server.log()}")
        return health_status(ports["health"]) == health_pb2.HealthCheckResponse.SERVING

    wait_until(serving, 60.0, "SERVING on the plaintext health port")
    return server


@pytest.fixture(scope="module")
def mtls_server(
    inference_bundle: Path, tmp_path_factory: pytest.TempPathFactory, pki: Pki
) -> Iterator[ManagedProcess]:
    server = start_tls_server(inference_bundle, tmp_path_factory.mktemp("mtls"), pki, mutual=True)
    yield server
    server.stop()


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Gateways]:
    started = Gateways(tmp_path)
    yield started
    started.stop_all()


def server_live(port: int, credentials: grpc.ChannelCredentials | None) -> bool:
    """Whether ServerLive answers over this channel (False when the connection is refused)."""
    target = f"localhost:{port}"
    channel = (
        grpc.insecure_channel(target)
        if credentials is None
        else grpc.secure_channel(target, credentials)
    )
    with channel:
        try:
            answer = pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(
                pb.ServerLiveRequest(), timeout=3
            )
        except grpc.RpcError as exc:
            code = exc.code()
        else:
            return bool(answer.live)
    assert code is grpc.StatusCode.UNAVAILABLE  # refused at the handshake, not a later error
    return False


def credentials(ca: Path, cert: Path | None = None, key: Path | None = None):  # type: ignore[no-untyped-def]
    return grpc.ssl_channel_credentials(
        ca.read_bytes(),
        key.read_bytes() if key else None,
        cert.read_bytes() if cert else None,
    )


def gateway_tls_env(pki: Pki, *, client_cert: bool = True) -> dict[str, str]:
    env = {"GATEWAY_INFERENCE_CA": str(pki.ca), "GATEWAY_INFERENCE_SERVER_NAME": "localhost"}
    if client_cert:
        env |= {
            "GATEWAY_INFERENCE_CERT": str(pki.client_cert),
            "GATEWAY_INFERENCE_KEY": str(pki.client_key),
        }
    return env


def test_a_client_with_the_right_certificate_is_served(
    mtls_server: ManagedProcess, pki: Pki
) -> None:
    port = mtls_server.ports["grpc"]
    assert server_live(port, credentials(pki.ca, pki.client_cert, pki.client_key))


def test_a_client_without_a_certificate_is_refused(mtls_server: ManagedProcess, pki: Pki) -> None:
    assert not server_live(mtls_server.ports["grpc"], credentials(pki.ca))


def test_a_certificate_from_another_ca_is_refused(mtls_server: ManagedProcess, pki: Pki) -> None:
    refused = credentials(pki.ca, pki.other_client_cert, pki.other_client_key)
    assert not server_live(mtls_server.ports["grpc"], refused)


def test_plaintext_is_refused_when_tls_is_on(mtls_server: ManagedProcess) -> None:
    assert not server_live(mtls_server.ports["grpc"], None)


def test_a_client_that_does_not_trust_the_servers_ca_refuses_it(
    mtls_server: ManagedProcess, pki: Pki
) -> None:
    wrong_trust = credentials(pki.other_ca, pki.client_cert, pki.client_key)
    assert not server_live(mtls_server.ports["grpc"], wrong_trust)


def test_the_health_port_serves_health_only_in_plaintext(mtls_server: ManagedProcess) -> None:
    health = mtls_server.ports["health"]
    assert health_status(health) == health_pb2.HealthCheckResponse.SERVING
    with (
        grpc.insecure_channel(f"127.0.0.1:{health}") as channel,
        pytest.raises(grpc.RpcError) as failure,
    ):
        pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=3)
    assert failure.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_the_gateway_scores_over_mutual_tls_and_checks_keys_behind_nginx(
    mtls_server: ManagedProcess, pki: Pki, gateways: Gateways, tmp_path: Path
) -> None:
    keys = tmp_path / "api-keys.sha256"
    keys.write_text(hashlib.sha256(KEY.encode()).hexdigest() + "  -\n")
    target = f"127.0.0.1:{mtls_server.ports['grpc']}"
    http = gateways.start(target, GATEWAY_API_KEYS_FILE=str(keys), **gateway_tls_env(pki))
    port = http.ports["http"]
    body = json.dumps([ROW, ROW]).encode()
    status, headers, raw = request(port, "POST", "/predict", body, JSON)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert set(json.loads(raw)) == {"error", "details"}
    wrong = {**JSON, "Authorization": "Bearer not-the-key"}
    assert request(port, "POST", "/predict", body, wrong)[0] == 401
    status, _, raw = request(port, "POST", "/predict", body, {**JSON, "X-API-Key": KEY})
    assert status == 200, raw
    answer = json.loads(raw)
    assert len(answer) == 2
    assert answer[0] == answer[1]
    assert 0 <= answer[0]["probability"] <= 1
    _, _, metrics = request(port, "GET", "/metrics")
    assert b'gateway_auth_rejected_total{reason="missing"} 1.0' in metrics
    assert b'gateway_auth_rejected_total{reason="invalid"} 1.0' in metrics
    assert KEY.encode() not in metrics
    assert KEY not in http.log()


def test_a_gateway_without_a_client_certificate_is_not_ready(
    mtls_server: ManagedProcess, pki: Pki, gateways: Gateways
) -> None:
    target = f"127.0.0.1:{mtls_server.ports['grpc']}"
    port = gateways.start(target, ready=False, **gateway_tls_env(pki, client_cert=False)).ports[
        "http"
    ]
    status, headers, _ = request(port, "POST", "/predict", json.dumps(ROW).encode(), JSON)
    assert status == 503
    assert "Retry-After" in headers
    assert request(port, "GET", "/readyz")[0] == 503


def test_server_side_tls_alone_serves_any_client_that_trusts_it(
    inference_bundle: Path, tmp_path: Path, pki: Pki, gateways: Gateways
) -> None:
    server = start_tls_server(inference_bundle, tmp_path, pki, mutual=False)
    try:
        assert server_live(server.ports["grpc"], credentials(pki.ca))
        assert not server_live(server.ports["grpc"], None)
        target = f"127.0.0.1:{server.ports['grpc']}"
        port = gateways.start(target, **gateway_tls_env(pki, client_cert=False)).ports["http"]
        status, _, raw = request(port, "POST", "/predict", json.dumps(ROW).encode(), JSON)
        assert status == 200, raw
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tls-cert", "{cert}"), "needs both --tls-cert and --tls-key"),
        (("--tls-client-ca", "{ca}"), "--tls-client-ca alone is not enough"),
        (("--tls-cert", "{cert}", "--tls-key", "/nonexistent.key"), "cannot read /nonexistent"),
    ],
)
def test_incomplete_tls_settings_are_refused_in_one_line(
    start_inference: StartInference,
    inference_bundle: Path,
    pki: Pki,
    args: tuple[str, ...],
    message: str,
) -> None:
    filled = [a.format(cert=pki.server_cert, ca=pki.ca) for a in args]
    server = start_inference(inference_bundle, *filled, wait=False)
    assert server.process.wait(60) == 2
    log = server.log()
    assert "inference: cannot serve TLS" in log
    assert message in log
    assert "Traceback" not in log
