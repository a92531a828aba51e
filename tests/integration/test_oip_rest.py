"""The Open Inference Protocol's REST routes on the real gateway: stock tritonclient.http,
unmodified, and the bad requests a REST OIP client can send.

One inference server and one gateway (gunicorn behind nginx) serve the module; every
answer is compared with ``/predict`` or ``/explain`` on the same rows.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from modeling.training.synthetic import synthetic_records, synthetic_table
from tests.integration.conftest import ManagedProcess, oip_columns
from tests.integration.gateway_helpers import JSON, Gateways, bundle_name, request

pytestmark = pytest.mark.integration

N_ROWS = 25
MAX_ROWS = 50


@pytest.fixture(scope="module")
def gateway_port(
    inference_server: ManagedProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    gateways = Gateways(tmp_path_factory.mktemp("oip-rest"))
    try:
        yield gateways.start(
            f"127.0.0.1:{inference_server.ports['grpc']}", GATEWAY_MAX_ROWS=str(MAX_ROWS)
        ).ports["http"]
    finally:
        gateways.stop_all()


@pytest.fixture(scope="module")
def model(inference_bundle: Path) -> str:
    return bundle_name(inference_bundle)


@pytest.fixture
def client(gateway_port: int) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(f"127.0.0.1:{gateway_port}")
    yield client
    client.close()


def post_json(port: int, path: str, payload: Any) -> tuple[int, dict[str, str], Any]:
    status, headers, body = request(port, "POST", path, json.dumps(payload).encode(), JSON)
    return status, headers, json.loads(body)


def triton_inputs(
    metadata: dict[str, Any], n_rows: int, seed: int, *, binary: bool
) -> list[triton.InferInput]:
    """Inputs built from the metadata alone, as a client would."""
    table, _ = synthetic_table(n_rows, seed=seed)
    columns = oip_columns(table)
    inputs = []
    for spec in metadata["inputs"]:
        tensor = triton.InferInput(spec["name"], [n_rows], spec["datatype"])
        kind = np.float64 if spec["datatype"] == "FP64" else object
        tensor.set_data_from_numpy(np.asarray(columns[spec["name"]], kind), binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_tritonclient_http_health_and_metadata(
    client: triton.InferenceServerClient, model: str
) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(model)
    assert not client.is_model_ready("no-such-model")
    assert client.get_server_metadata()["name"] == "scoring-service"
    metadata = client.get_model_metadata(model)
    assert metadata["name"] == model
    assert len(metadata["inputs"]) == 100
    assert {o["name"] for o in metadata["outputs"]} >= {"probability", "class", "contributions"}
    with pytest.raises(InferenceServerException, match="not served here"):
        client.get_model_metadata("no-such-model")


@pytest.mark.parametrize("binary", [True, False], ids=["binary-tensors", "json-tensors"])
def test_tritonclient_http_infer_equals_predict(
    client: triton.InferenceServerClient, gateway_port: int, model: str, binary: bool
) -> None:
    metadata = client.get_model_metadata(model)
    inputs = triton_inputs(metadata, N_ROWS, seed=21, binary=binary)
    result = client.infer(model, inputs, request_id="oip-1")
    status, _, expected = post_json(gateway_port, "/predict", synthetic_records(N_ROWS, seed=21))
    assert status == 200
    np.testing.assert_allclose(
        result.as_numpy("probability"), [e["probability"] for e in expected], rtol=0, atol=1e-12
    )
    np.testing.assert_array_equal(result.as_numpy("class"), [e["class"] for e in expected])
    assert result.as_numpy("class").dtype == np.int64
    assert result.get_response()["id"] == "oip-1"
    # named outputs, asked for as binary (tritonclient's default): answered as JSON tensors
    asked = [triton.InferRequestedOutput("probability")]
    only = client.infer(model, inputs, outputs=asked)
    assert only.as_numpy("class") is None
    np.testing.assert_array_equal(only.as_numpy("probability"), result.as_numpy("probability"))


def test_tritonclient_http_asks_for_an_explanation(
    client: triton.InferenceServerClient, gateway_port: int, model: str
) -> None:
    metadata = client.get_model_metadata(model)
    inputs = triton_inputs(metadata, 10, seed=22, binary=True)
    names = ("logit", "base_logit", "contributions", "probability")
    result = client.infer(model, inputs, outputs=[triton.InferRequestedOutput(n) for n in names])
    contributions = result.as_numpy("contributions")
    width = next(o["shape"][1] for o in metadata["outputs"] if o["name"] == "contributions")
    assert contributions.shape == (10, width)
    total = result.as_numpy("base_logit") + contributions.sum(axis=1)
    np.testing.assert_allclose(total, result.as_numpy("logit"), rtol=0, atol=1e-6)
    status, _, explained = post_json(gateway_port, "/explain?top=1", synthetic_records(10, seed=22))
    assert status == 200
    np.testing.assert_allclose(
        result.as_numpy("logit"), [e["logit"] for e in explained], rtol=0, atol=1e-12
    )


def json_request(model_inputs: list[dict[str, Any]], n_rows: int = 2) -> dict[str, Any]:
    """A valid JSON infer request of ``n_rows`` rows (every value missing but x0)."""
    inputs = []
    for spec in model_inputs:
        data: list[Any] = [None] * n_rows
        if spec["name"] == "x0":
            data = [1.5] * n_rows
        inputs.append(
            {"name": spec["name"], "datatype": spec["datatype"], "shape": [n_rows], "data": data}
        )
    return {"inputs": inputs}


@pytest.fixture(scope="module")
def model_inputs(gateway_port: int, model: str) -> list[dict[str, Any]]:
    status, _, body = request(gateway_port, "GET", f"/v2/models/{model}")
    assert status == 200
    return list(json.loads(body)["inputs"])


def mutate(base: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    document = json.loads(json.dumps(base))
    for tensor in document["inputs"]:
        if tensor["name"] == name:
            tensor.update(changes)
    return document


BAD = [
    ("missing input", lambda d: {"inputs": d["inputs"][1:]}, 400, "input missing"),
    (
        "unknown input",
        lambda d: {"inputs": [*d["inputs"], {**d["inputs"][0], "name": "zz"}]},
        400,
        "not an input",
    ),
    ("text as number", lambda d: mutate(d, "x1", datatype="FP64"), 400, "expects BYTES"),
    ("number as text", lambda d: mutate(d, "x0", datatype="BYTES"), 400, "expects FP64"),
    ("bad shape", lambda d: mutate(d, "x0", shape=[1, 2]), 400, "one value per row"),
    ("row counts differ", lambda d: mutate(d, "x0", shape=[3], data=[1, 2, 3]), 400, "row counts"),
    ("data length", lambda d: mutate(d, "x0", data=[1.0]), 400, "1 values for 2 rows"),
    ("bad number", lambda d: mutate(d, "x0", data=["abc", True]), 400, "2 invalid values"),
    ("unknown output", lambda d: {**d, "outputs": [{"name": "proba"}]}, 400, "unknown output"),
    ("no inputs", lambda _: {"inputs": []}, 400, "non-empty array"),
    ("not an object", lambda _: [1, 2], 400, "JSON object"),
    ("shape not ints", lambda d: mutate(d, "x0", shape=["2"]), 400, "non-negative integers"),
    ("zero rows", lambda d: {"inputs": [{**t, "shape": [0], "data": []} for t in d["inputs"]]},
     400, "no rows"),
    ("over the row limit",
     lambda d: {"inputs": [{**t, "shape": [MAX_ROWS + 1], "data": [None] * (MAX_ROWS + 1)}
                           for t in d["inputs"]]},
     413, "limit"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_infer_requests_get_the_contract_error(
    gateway_port: int, model: str, model_inputs: list[dict[str, Any]], case: tuple[Any, ...]
) -> None:
    what, change, status, message = case
    good = json_request(model_inputs)
    assert post_json(gateway_port, f"/v2/models/{model}/infer", good)[0] == 200
    answer_status, _, body = post_json(gateway_port, f"/v2/models/{model}/infer", change(good))
    assert answer_status == status, (what, body)
    assert set(body) == {"error", "details"}
    assert message in body["error"] + json.dumps(body["details"]), body


def test_binary_tensors_that_do_not_add_up_are_400(
    gateway_port: int, model: str, model_inputs: list[dict[str, Any]]
) -> None:
    document = json_request(model_inputs, 1)
    x0 = next(t for t in document["inputs"] if t["name"] == "x0")
    del x0["data"]
    x0["parameters"] = {"binary_data_size": 8}
    header = json.dumps(document).encode()
    path = f"/v2/models/{model}/infer"
    for tail, length, expected in [
        (struct.pack("<d", 2.5), len(header), 200),
        (struct.pack("<d", 2.5) + b"xx", len(header), "no input claims"),
        (b"1234", len(header), "beyond the body"),
        (struct.pack("<d", 2.5), len(header) + 100, "Inference-Header-Content-Length"),
        (struct.pack("<d", 2.5), "abc", "Inference-Header-Content-Length"),
    ]:
        headers = {"Inference-Header-Content-Length": str(length)}
        status, _, raw = request(gateway_port, "POST", path, header + tail, headers)
        if expected == 200:
            assert status == 200, raw
            continue
        assert status == 400, raw
        assert expected in json.loads(raw)["error"]


def test_unknown_models_methods_and_content_types(gateway_port: int, model: str) -> None:
    status, _, body = post_json(gateway_port, "/v2/models/other/infer", {"inputs": []})
    assert status == 400  # the body is checked first: no inputs
    document = {"inputs": [{"name": "x0", "datatype": "FP64", "shape": [1], "data": [1]}]}
    status, _, body = post_json(gateway_port, "/v2/models/other/infer", document)
    assert status == 404
    assert "not served here" in body["error"]
    status, _, _ = request(gateway_port, "GET", f"/v2/models/{model}/infer")
    assert status == 405
    raw = json.dumps(document).encode()
    text = {"Content-Type": "text/plain"}
    assert request(gateway_port, "POST", f"/v2/models/{model}/infer", raw, text)[0] == 415
    assert request(gateway_port, "GET", "/v2/models/other/ready")[0] == 404
    assert json.loads(request(gateway_port, "GET", "/v2/health/live")[2]) == {"live": True}
