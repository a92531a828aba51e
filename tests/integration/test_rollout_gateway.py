"""Versions through the gateway: every answer names the version that gave all of it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.http as triton

from modeling.predictor import Predictor
from modeling.repository import Repository
from modeling.training.synthetic import synthetic_records, synthetic_table
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from tests.integration.conftest import StartInference, oip_columns
from tests.integration.gateway_helpers import JSON, Gateways, request

pytestmark = pytest.mark.integration

LARGE = 400  # rows of a large request: 8 ModelInfer chunks of 50, sent together
SMALL = 2  # rows of a small one: merged with others by the server's batcher
VERSION = "X-Model-Version"


@pytest.fixture
def stack(
    start_inference: StartInference, model_repository: Path, tmp_path: Path
) -> Iterator[tuple[int, pb_grpc.GRPCInferenceServiceStub]]:
    server = start_inference(model_repository, "--model-version", "1")
    gateways = Gateways(tmp_path)
    try:
        gateway = gateways.start(
            f"127.0.0.1:{server.ports['grpc']}",
            GATEWAY_CHUNK_ROWS="50",
            GATEWAY_EXPLAIN_CHUNK_ROWS="20",
            GATEWAY_THREADS="4",
        )
        with grpc.insecure_channel(f"127.0.0.1:{server.ports['grpc']}") as channel:
            yield gateway.ports["http"], pb_grpc.GRPCInferenceServiceStub(channel)
    finally:
        gateways.stop_all()


def load(stub: pb_grpc.GRPCInferenceServiceStub, version: str) -> None:
    message = pb.RepositoryModelLoadRequest()
    message.parameters["version"].string_param = version
    stub.RepositoryModelLoad(message, timeout=60)


class Traffic:
    """Large and small /predict calls from several threads, each answer checked."""

    def __init__(self, port: int, references: dict[str, dict[str, np.ndarray]]) -> None:
        self.port = port
        self.references = references
        self.bodies = {
            "large": json.dumps(synthetic_records(LARGE, seed=21)).encode(),
            "small": json.dumps(synthetic_records(SMALL, seed=22)).encode(),
        }
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: dict[tuple[str, str], int] = {}
        self.failures: list[str] = []
        kinds = ["large", "large", "small", "small", "small", "small"]
        self.threads = [threading.Thread(target=self.run, args=(kind,)) for kind in kinds]

    def run(self, kind: str) -> None:
        while not self.stop.is_set():
            status, headers, body = request(self.port, "POST", "/predict", self.bodies[kind], JSON)
            version = headers.get(VERSION, "")
            with self.lock:
                if status != 200:
                    self.failures.append(f"{kind}: {status} {body[:200]!r}")
                    continue
                got = np.array([row["probability"] for row in json.loads(body)])
                want = self.references[kind].get(version)
                if want is None or not np.allclose(got, want, rtol=0, atol=1e-9):
                    self.failures.append(f"{kind}: answer of version {version!r} mismatched")
                self.answers[kind, version] = self.answers.get((kind, version), 0) + 1

    def count(self, kind: str, version: str) -> int:
        with self.lock:
            return self.answers.get((kind, version), 0)


def test_large_and_small_calls_never_mix_versions_across_swaps(
    stack: tuple[int, pb_grpc.GRPCInferenceServiceStub],
    predictors_by_version: dict[str, Predictor],
) -> None:
    port, stub = stack
    tables = {"large": synthetic_table(LARGE, 21)[0], "small": synthetic_table(SMALL, 22)[0]}
    references = {
        kind: {
            v: p.predict(table, len(table["x0"])).probability
            for v, p in predictors_by_version.items()
        }
        for kind, table in tables.items()
    }
    traffic = Traffic(port, references)
    for thread in traffic.threads:
        thread.start()
    try:
        for version in ("2", "1", "2", "1", "2", "1"):
            before = traffic.count("large", version)
            load(stub, version)
            status, headers, body = request(port, "GET", "/readyz")
            assert status == 200
            assert headers[VERSION] == version
            assert json.loads(body)["version"] == version
            deadline = threading.Event()
            for _ in range(600):
                if traffic.count("large", version) > before + 2 or deadline.wait(0.05):
                    break
    finally:
        traffic.stop.set()
        for thread in traffic.threads:
            thread.join(60)
    assert traffic.failures == []
    for kind in ("large", "small"):
        assert traffic.count(kind, "1") > 0
        assert traffic.count(kind, "2") > 0


def test_explain_follows_a_swap_without_a_gateway_restart(
    stack: tuple[int, pb_grpc.GRPCInferenceServiceStub],
    predictors_by_version: dict[str, Predictor],
) -> None:
    port, stub = stack
    records = synthetic_records(45, seed=4)  # 3 explanation chunks of 20, 20 and 5 rows
    table, _ = synthetic_table(45, seed=4)
    body = json.dumps(records).encode()
    for version in ("1", "2", "1"):
        if request(port, "GET", "/readyz")[1][VERSION] != version:
            load(stub, version)
        status, headers, answer = request(port, "POST", "/explain?top=all", body, JSON)
        assert status == 200, answer
        assert headers[VERSION] == version
        predictor = predictors_by_version[version]
        explanation = predictor.explain(table, 45)
        rows = json.loads(answer)
        np.testing.assert_allclose(
            [row["logit"] for row in rows], explanation.logit, rtol=0, atol=1e-9
        )
        names = {c["feature"] for c in rows[0]["contributions"]}
        assert names == set(explanation.contributions.names)
        status, headers, _ = request(port, "POST", "/predict", body, JSON)
        assert status == 200
        assert headers[VERSION] == version


@pytest.fixture
def predictors_by_version(model_repository: Path) -> dict[str, Predictor]:
    repository = Repository(model_repository)
    return {v: repository.load(v) for v in repository.versions()}


def test_oip_rest_answers_name_the_version_that_scored_them_across_swaps(
    stack: tuple[int, pb_grpc.GRPCInferenceServiceStub],
    predictors_by_version: dict[str, Predictor],
) -> None:
    port, stub = stack
    client = triton.InferenceServerClient(f"127.0.0.1:{port}")
    table, _ = synthetic_table(30, seed=8)
    columns = oip_columns(table)
    for version in ("1", "2", "1"):
        status, headers, ready = request(port, "GET", "/readyz")
        if headers[VERSION] != version:
            load(stub, version)
        name = json.loads(ready)["model"]
        inputs = []
        for spec in client.get_model_metadata(name)["inputs"]:
            tensor = triton.InferInput(spec["name"], [30], spec["datatype"])
            kind = np.float64 if spec["datatype"] == "FP64" else object
            tensor.set_data_from_numpy(np.asarray(columns[spec["name"]], kind), binary_data=False)
            inputs.append(tensor)

        result = client.infer(name, inputs)

        assert status == 200
        assert result.get_response()["model_version"] == version
        np.testing.assert_allclose(
            result.as_numpy("probability"),
            predictors_by_version[version].predict(table, 30).probability,
            rtol=0,
            atol=1e-12,
        )
