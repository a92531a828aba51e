"""Stock tritonclient.grpc, unmodified, against the real inference server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from modeling.predictor import Predictor
from modeling.training.synthetic import synthetic_table
from tests.integration.conftest import ManagedProcess, oip_columns

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(inference_server: ManagedProcess):
    client = triton.InferenceServerClient(f"127.0.0.1:{inference_server.ports['grpc']}")
    yield client
    client.close()


def test_tritonclient_metadata_and_infer(client, inference_bundle: Path) -> None:
    predictor = Predictor.from_bundle(inference_bundle)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(predictor.name)
    metadata = client.get_model_metadata(predictor.name, as_json=True)
    assert metadata["versions"] == [predictor.version]
    table, _ = synthetic_table(40, seed=9)
    columns = oip_columns(table)
    inputs = []
    for spec in metadata["inputs"]:  # built from the metadata alone, as a client would
        tensor = triton.InferInput(spec["name"], [40], spec["datatype"])
        values = columns[spec["name"]]
        data = np.asarray(values, np.float64 if spec["datatype"] == "FP64" else object)
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput("probability"), triton.InferRequestedOutput("class")]
    result = client.infer(predictor.name, inputs, outputs=outputs, request_id="t-1")
    expected = predictor.predict(columns, 40)
    np.testing.assert_allclose(result.as_numpy("probability"), expected.probability, atol=1e-12)
    np.testing.assert_array_equal(result.as_numpy("class"), expected.label)
    assert result.get_response().id == "t-1"


def test_tritonclient_asks_for_an_explanation(client, inference_bundle: Path) -> None:
    predictor = Predictor.from_bundle(inference_bundle)
    metadata = client.get_model_metadata(predictor.name, as_json=True)
    shapes = {spec["name"]: spec["shape"] for spec in metadata["outputs"]}
    assert shapes["contributions"] == ["-1", "-1"]  # stock clients read int64 as text
    table, _ = synthetic_table(30, seed=10)
    columns = oip_columns(table)
    inputs = []
    for spec in metadata["inputs"]:
        tensor = triton.InferInput(spec["name"], [30], spec["datatype"])
        kind = np.float64 if spec["datatype"] == "FP64" else object
        tensor.set_data_from_numpy(np.asarray(columns[spec["name"]], kind))
        inputs.append(tensor)
    names = ("probability", "logit", "base_logit", "contributions")
    outputs = [triton.InferRequestedOutput(name) for name in names]
    result = client.infer(predictor.name, inputs, outputs=outputs)
    contributions = result.as_numpy("contributions")
    expected = predictor.explain(columns, 30)
    assert contributions.shape == (30, len(expected.contributions.names))
    total = result.as_numpy("base_logit") + contributions.sum(axis=1)
    np.testing.assert_allclose(total, result.as_numpy("logit"), rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.as_numpy("logit"), expected.logit, atol=1e-12)
    np.testing.assert_allclose(
        result.as_numpy("probability"), predictor.predict(columns, 30).probability, atol=1e-12
    )
    assert result.as_numpy("class") is None  # not asked for, not sent


def test_tritonclient_sees_invalid_argument(client, inference_bundle: Path) -> None:
    predictor = Predictor.from_bundle(inference_bundle)
    tensor = triton.InferInput("x0", [2], "FP32")
    tensor.set_data_from_numpy(np.array([1.0, 2.0], np.float32))
    with pytest.raises(InferenceServerException) as error:
        client.infer(predictor.name, [tensor])
    assert "INVALID_ARGUMENT" in str(error.value.status())
    assert "x0" in error.value.message()
