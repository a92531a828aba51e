"""Stock tritonclient.grpc, unmodified, against the real inference server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from modeling.predictor import load_bundle
from modeling.training.synthetic import synthetic_table
from tests.integration.conftest import ManagedProcess, oip_columns

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(inference_server: ManagedProcess):
    client = triton.InferenceServerClient(f"127.0.0.1:{inference_server.ports['grpc']}")
    yield client
    client.close()


def test_tritonclient_metadata_and_infer(client, inference_bundle: Path) -> None:
    predictor = load_bundle(inference_bundle)
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


def test_tritonclient_sees_invalid_argument(client, inference_bundle: Path) -> None:
    predictor = load_bundle(inference_bundle)
    tensor = triton.InferInput("x0", [2], "FP32")
    tensor.set_data_from_numpy(np.array([1.0, 2.0], np.float32))
    with pytest.raises(InferenceServerException) as error:
        client.infer(predictor.name, [tensor])
    assert "INVALID_ARGUMENT" in str(error.value.status())
    assert "x0" in error.value.message()
