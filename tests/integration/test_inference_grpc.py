"""The real inference server process (bin/start-inference, settings from the environment)."""

from __future__ import annotations

import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from modeling.predictor import Predictor
from modeling.schema import COLUMNS, NUMERIC_COLUMNS
from modeling.training.synthetic import synthetic_table
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from tests.integration.conftest import ManagedProcess, StartInference, infer_request, oip_columns

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def predictor(inference_bundle: Path) -> Predictor:
    return Predictor.from_bundle(inference_bundle)


@pytest.fixture(scope="module")
def channel(inference_server: ManagedProcess):
    with grpc.insecure_channel(f"127.0.0.1:{inference_server.ports['grpc']}") as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> pb_grpc.GRPCInferenceServiceStub:
    return pb_grpc.GRPCInferenceServiceStub(channel)


def rows(n: int, seed: int = 3) -> dict[str, Any]:
    table, _ = synthetic_table(n, seed)
    return oip_columns(table)


def outputs(reply: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    kinds = {"FP64": "<f8", "INT64": "<i8"}
    return {
        o.name: np.frombuffer(raw, kinds[o.datatype])
        for o, raw in zip(reply.outputs, reply.raw_output_contents, strict=True)
    }


def metrics_text(server: ManagedProcess) -> str:
    url = f"http://127.0.0.1:{server.ports['metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_live_ready_and_metadata(stub, predictor: Predictor) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name=predictor.name), timeout=5).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="other"), timeout=5).ready
    assert stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=5).name
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=predictor.name), timeout=5)
    assert list(meta.versions) == [predictor.version]
    assert [(i.name, i.datatype) for i in meta.inputs] == [
        (c, "FP64" if c in NUMERIC_COLUMNS else "BYTES") for c in COLUMNS
    ]
    assert [o.name for o in meta.outputs] == [
        "probability",
        "class",
        "logit",
        "base_logit",
        "contributions",
    ]


@pytest.mark.parametrize("raw", [True, False])
def test_infer_equals_the_bundle_scored_in_process(stub, predictor: Predictor, raw: bool) -> None:
    columns = rows(50)
    reply = stub.ModelInfer(infer_request(predictor.name, columns, raw=raw), timeout=10)
    got = outputs(reply)
    expected = predictor.predict(columns, 50)
    np.testing.assert_allclose(got["probability"], expected.probability, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got["class"], expected.label)


def test_a_10000_row_request_fits_the_message_limit(stub, predictor: Predictor) -> None:
    columns = rows(10_000, seed=4)
    request = infer_request(predictor.name, columns)
    assert request.ByteSize() > 4 * 1024 * 1024  # above gRPC's default receive limit
    got = outputs(stub.ModelInfer(request, timeout=60))
    assert got["probability"].shape == (10_000,)
    np.testing.assert_allclose(
        got["probability"], predictor.predict(columns, 10_000).probability, atol=1e-12
    )


@pytest.mark.parametrize(
    ("mutate", "code", "needle"),
    [
        (lambda r: r.raw_input_contents.__setitem__(1, b"\xff\xff"), "INVALID_ARGUMENT", "x1"),
        (lambda r: r.inputs[0].__setattr__("datatype", "INT32"), "INVALID_ARGUMENT", "x0"),
        (lambda r: r.inputs[7].shape.__setitem__(0, 4), "INVALID_ARGUMENT", "x7"),
        (lambda r: r.__setattr__("model_version", "nope"), "NOT_FOUND", "nope"),
    ],
)
def test_bad_requests_over_the_wire(stub, predictor: Predictor, mutate, code, needle) -> None:
    request = infer_request(predictor.name, rows(3))
    mutate(request)
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(request, timeout=10)
    assert error.value.code().name == code
    assert needle in error.value.details()
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live  # the server carries on


def test_concurrent_single_rows_are_each_answered_correctly(
    stub, predictor: Predictor, inference_server: ManagedProcess
) -> None:
    before = metrics_text(inference_server)
    columns = rows(200, seed=5)
    expected = predictor.predict(columns, 200).probability

    def one(i: int) -> float:
        row = {name: values[i : i + 1] for name, values in columns.items()}
        return float(
            outputs(stub.ModelInfer(infer_request(predictor.name, row), timeout=10))["probability"][
                0
            ]
        )

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(200)))
    np.testing.assert_allclose(got, expected, atol=1e-12)
    after = metrics_text(inference_server)
    version = f'{{version="{predictor.version}"}}'
    rows_scored = sample(after, "inference_rows_scored_total", version) - sample(
        before, "inference_rows_scored_total", version
    )
    model_calls = sample(after, "inference_batch_rows_count") - sample(
        before, "inference_batch_rows_count"
    )
    assert rows_scored == 200
    assert 1 <= model_calls <= 200


def test_health_service(inference_server: ManagedProcess, channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "inference.GRPCInferenceService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as error:
        health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
    assert error.value.code() is grpc.StatusCode.NOT_FOUND


def test_reflection_lists_and_describes_the_services(channel: grpc.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="inference.GRPCInferenceService"
        ),
    ]
    listed, described = list(reflection.ServerReflectionInfo(iter(requests), timeout=5))
    names = {s.name for s in listed.list_services_response.service}
    assert {
        "inference.GRPCInferenceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    files = described.file_descriptor_response.file_descriptor_proto
    proto = descriptor_pb2.FileDescriptorProto.FromString(files[0])
    assert proto.package == "inference"
    methods = {m.name for m in proto.service[0].method}
    assert {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata"} < methods
    assert "ModelInfer" in methods


def test_metrics_endpoint(inference_server: ManagedProcess, stub, predictor: Predictor) -> None:
    columns = rows(6)
    columns["x1"] = [b"blursday"] * 6
    columns["x3"] = np.full(6, np.nan)
    before = metrics_text(inference_server)
    stub.ModelInfer(infer_request(predictor.name, columns), timeout=10)
    text = metrics_text(inference_server)

    def delta(name: str, labels: str = "") -> float:
        return sample(text, name, labels) - sample(before, name, labels)

    assert delta("inference_requests_total", '{code="OK",method="ModelInfer"}') == 1
    assert delta("inference_request_duration_seconds_count", '{method="ModelInfer"}') == 1
    assert delta("inference_rows_scored_total", f'{{version="{predictor.version}"}}') == 6
    assert delta("inference_batch_rows_sum") == 6
    assert delta("inference_missing_values_total", '{column="x3"}') == 6
    assert delta("inference_unrecognised_values_total", '{column="x1"}') == 6
    assert f'inference_model_info{{model="{predictor.name}"' in text
    assert sample(text, "inference_queued_requests") == 0  # idle: nothing waits
    assert "process_resident_memory_bytes" in text


def test_the_server_enforces_its_own_limits_whoever_calls(
    start_inference: StartInference, inference_bundle: Path
) -> None:
    server = start_inference(
        inference_bundle,
        "--max-request-rows", "500",
        "--max-text-bytes", "64",
        "--max-message-bytes", "200000",
        "--reflection", "off",
    )  # fmt: skip
    with grpc.insecure_channel(f"127.0.0.1:{server.ports['grpc']}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        table, _ = synthetic_table(50, seed=3)  # every column, about 40 kB
        assert len(stub.ModelInfer(infer_request("", oip_columns(table)), timeout=10).outputs) == 2
        refused = {
            "rows": {"x0": np.zeros(501)},  # 4 kB
            "text": {"x1": [b"wed"] * 49 + [b"x" * 65]},
            "message": {c: np.zeros(300) for c in NUMERIC_COLUMNS},  # 225 kB
        }
        codes = {}
        for what, columns in refused.items():
            with pytest.raises(grpc.RpcError) as failed:
                stub.ModelInfer(infer_request("", columns), timeout=10)
            codes[what] = (failed.value.code(), failed.value.details())
        assert codes["rows"][0] is grpc.StatusCode.INVALID_ARGUMENT
        assert "501 rows; at most 500" in codes["rows"][1]
        assert codes["text"][0] is grpc.StatusCode.INVALID_ARGUMENT
        assert "row 49 holds 65 bytes; at most 64" in codes["text"][1]
        assert codes["message"][0] is grpc.StatusCode.RESOURCE_EXHAUSTED
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.RpcError) as off:
            list(
                reflection.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
                )
            )
        assert off.value.code() is grpc.StatusCode.UNIMPLEMENTED
