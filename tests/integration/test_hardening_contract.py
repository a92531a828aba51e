"""Schemathesis and a JSON-schema validator against the running gateway's own
``/openapi.json`` (real processes).

The schema is fetched from the gateway (gunicorn, 2 workers) in front of a real
inference server; Schemathesis generates requests from it, valid ones (positive) and
schema-violating ones (negative), at least 1,000 in all. Every answer must be no 5xx,
pass Schemathesis' response checks (status code, content type, headers and body
declared by the schema), and, when it is an error, carry the contract's JSON body
``{"error": str, "details": [...]}``.

Configuration (explicit, no schemathesis.toml is read): ``positive_data_acceptance`` is
off, since the schema cannot say which strings parse as numbers, nor that a row must
hold at least one model input, so ``{"x0": "abc"}`` or ``{}`` are schema-valid and
rightly answered 400 (see gateway/README.md); ``negative_data_rejection`` accepts the
gateway's documented refusals, 413 (too many rows) included.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from schemathesis import GenerationMode

from tests.integration.conftest import ManagedProcess
from tests.integration.gateway_helpers import Gateways, bundle_name, predict, request

pytestmark = pytest.mark.integration

PREDICT_EXAMPLES = 520  # per generation mode: 1,040 generated /predict requests
EXPLAIN_EXAMPLES = 150  # per generation mode: /explain shares /predict's body and limits
OIP_INFER_EXAMPLES = 150  # per generation mode: POST /v2/models/{name}/infer
OTHER_EXAMPLES = 25  # per GET operation (they take no input: few distinct cases exist)
MIN_CASES = 1_000
HTTP_TIMEOUT_S = 15.0
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {"enabled": False},
            "negative_data_rejection": {
                "expected-statuses": ["400", "404", "405", "406", "413", "415", "422"]
            },
        }
    }
)


@pytest.fixture(scope="module")
def gateway_url(
    inference_server: ManagedProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    gateways = Gateways(tmp_path_factory.mktemp("schemathesis"))
    try:
        port = gateways.start(
            f"127.0.0.1:{inference_server.ports['grpc']}",
            GATEWAY_MAX_BODY_BYTES="200000",
            GATEWAY_MAX_ROWS="20",
        ).ports["http"]
        yield f"http://127.0.0.1:{port}"
    finally:
        gateways.stop_all()


def check_contract(case: Any, response: Any) -> None:
    """No 5xx; an error is the contract's JSON body; a 200 of a POST has one answer a row."""
    where = f"{case.method} {case.path} body={str(case.body)[:200]!r} -> {response.status_code}"
    assert response.status_code < 500, f"{where}: {response.text[:500]}"
    if response.status_code >= 400:
        assert response.headers["content-type"] == ["application/json"], where
        body = json.loads(response.content)
        assert set(body) == {"error", "details"}, where
        assert isinstance(body["error"], str), where
        assert body["error"], where
        assert isinstance(body["details"], list), where
        for item in body["details"]:
            assert set(item) == {"row", "field", "value", "reason"}, where
    elif case.path in ("/predict", "/explain"):
        answer = json.loads(response.content)
        rows = case.body if isinstance(case.body, list) else [case.body]
        assert isinstance(answer, list), where
        assert len(answer) == len(rows), where
    elif case.method == "POST":  # an OIP infer: one value a row in every output
        answer = json.loads(response.content)
        rows = {tensor["shape"][0] for tensor in case.body["inputs"]}
        assert [o["shape"][0] for o in answer["outputs"]] == [rows.pop()] * len(answer["outputs"])


def run_operation(
    operation: Any,
    mode: GenerationMode,
    max_examples: int,
    base_url: str,
    seen: Counter[int],
    *,
    model: str | None = None,
) -> None:
    """Generate up to ``max_examples`` cases of one operation; call and check each.

    ``model`` names the served model in three cases of four (the rest keep the
    generated name, which is answered 404), so the bodies of OIP calls are reached.
    """

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,  # a live server: no replay of stale examples between runs
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def generated(case: Any) -> None:
        if model is not None and case.path_parameters and len(repr(case.body)) % 4:
            case.path_parameters["name"] = model
        response = case.call(base_url=base_url, timeout=HTTP_TIMEOUT_S)
        seen[response.status_code] += 1
        check_contract(case, response)
        case.validate_response(response)

    generated()


def test_schemathesis_finds_no_5xx_and_only_contract_errors(
    gateway_url: str, inference_bundle: Path
) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json", config=CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= {
        ("POST", "/predict"),
        ("POST", "/explain"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/v2/models/{name}"),
        ("POST", "/v2/models/{name}/infer"),
    }
    model = bundle_name(inference_bundle)
    seen: Counter[int] = Counter()
    for path, examples in (("/predict", PREDICT_EXAMPLES), ("/explain", EXPLAIN_EXAMPLES)):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run_operation(schema[path]["POST"], mode, examples, gateway_url, seen)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        infer = schema["/v2/models/{name}/infer"]["POST"]
        run_operation(infer, mode, OIP_INFER_EXAMPLES, gateway_url, seen, model=model)
    for operation in operations:
        if operation.method.upper() != "POST":
            run_operation(
                operation, GenerationMode.POSITIVE, OTHER_EXAMPLES, gateway_url, seen, model=model
            )
    total = sum(seen.values())
    assert total >= MIN_CASES, f"only {total} generated cases: {dict(seen)}"
    assert seen[200] > 0  # valid rows were scored, not only refused
    assert seen[400] > 0
    # The gateway is still healthy and scoring after all of it.
    assert request(int(gateway_url.rsplit(":", 1)[1]), "GET", "/readyz")[0] == 200


UNDECLARED = ["GET", "PUT", "PATCH", "DELETE"]


@pytest.mark.parametrize(("path", "declared"), [("/predict", "POST"), ("/healthz", "GET")])
def test_undeclared_methods_get_405_with_the_contract_body(
    gateway_url: str, path: str, declared: str
) -> None:
    port = int(gateway_url.rsplit(":", 1)[1])
    for method in [m for m in UNDECLARED if m != declared] + ["TRACE"]:
        status, _, raw = request(port, method, path)
        assert status == 405, method
        body = json.loads(raw)
        assert set(body) == {"error", "details"}


def test_405_names_the_allowed_methods(gateway_url: str) -> None:
    port = int(gateway_url.rsplit(":", 1)[1])
    _, headers, _ = request(port, "DELETE", "/predict")
    assert "POST" in headers.get("Allow", "")


def test_a_thousand_extra_keys_are_ignored(gateway_url: str) -> None:
    port = int(gateway_url.rsplit(":", 1)[1])
    row = {"x0": "9.521496806", "x1": "wed", "x12": "$296.43 ", "x99": "-1.926577376"}
    noisy = {**{f"extra_{i}": "z" * (i % 50) for i in range(1_000)}, **row}
    status, _, plain = predict(port, row)
    assert status == 200
    status, _, answer = predict(port, noisy)
    assert status == 200
    assert [a["class"] for a in answer] == [p["class"] for p in plain]
    assert [a["probability"] for a in answer] == pytest.approx([p["probability"] for p in plain])


JSON_TYPE = "application/json"


def documented_schema(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    """The JSON schema the document gives an answer, its ``$ref``s resolvable."""
    responses = document["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, not documented"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def oip_inputs(metadata: dict[str, Any], rows: int) -> list[dict[str, Any]]:
    """One valid input tensor per model input, ``rows`` values each."""
    return [
        {
            "name": spec["name"],
            "datatype": spec["datatype"],
            "shape": [rows],
            "data": ["wed"] * rows if spec["datatype"] == "BYTES" else [0.5] * rows,
        }
        for spec in metadata["inputs"]
    ]


def test_live_answers_and_errors_validate_against_the_served_document(
    gateway_url: str, inference_bundle: Path
) -> None:
    """Every answer, error included, of a range of real calls matches its documented schema."""
    port = int(gateway_url.rsplit(":", 1)[1])
    status, _, raw = request(port, "GET", "/openapi.json")
    assert status == 200
    document = json.loads(raw)
    model = bundle_name(inference_bundle)
    metadata = json.loads(request(port, "GET", f"/v2/models/{model}")[2])
    row = {"x0": "9.521496806", "x1": "wed", "x12": "$296.43 ", "x99": "-1.926577376"}
    rows = json.dumps([row, row]).encode()
    infer = {"id": "call-1", "inputs": oip_inputs(metadata, 2)}
    scores = json.dumps(infer).encode()
    explains = json.dumps({**infer, "outputs": [{"name": "logit"}, {"name": "contributions"}]})
    unknown_output = json.dumps({**infer, "outputs": [{"name": "nope"}]})
    oip = f"/v2/models/{model}/infer"
    calls: list[tuple[str, str, str, bytes | str | None, str, int]] = [
        ("GET", "/healthz", "/healthz", None, "", 200),
        ("GET", "/readyz", "/readyz", None, "", 200),
        ("GET", "/v2", "/v2", None, "", 200),
        ("GET", "/v2/health/live", "/v2/health/live", None, "", 200),
        ("GET", "/v2/health/ready", "/v2/health/ready", None, "", 200),
        ("GET", "/v2/models/{name}", f"/v2/models/{model}", None, "", 200),
        ("GET", "/v2/models/{name}", "/v2/models/nope", None, "", 404),
        ("GET", "/v2/models/{name}/ready", f"/v2/models/{model}/ready", None, "", 200),
        ("POST", "/predict", "/predict", json.dumps(row), JSON_TYPE, 200),
        ("POST", "/predict", "/predict", rows, JSON_TYPE, 200),
        ("POST", "/predict", "/predict", b'[{"x0": "abc", "x2": "1e999"}]', JSON_TYPE, 400),
        ("POST", "/predict", "/predict", b"[]", JSON_TYPE, 400),
        ("POST", "/predict", "/predict", b"{", JSON_TYPE, 400),
        ("POST", "/predict", "/predict", rows, "text/plain", 415),
        ("POST", "/predict", "/predict", json.dumps([row] * 21), JSON_TYPE, 413),
        ("POST", "/predict", "/predict", b" " * 200_001, JSON_TYPE, 413),
        ("POST", "/explain", "/explain", rows, JSON_TYPE, 200),
        ("POST", "/explain", "/explain?top=2", rows, JSON_TYPE, 200),
        ("POST", "/explain", "/explain?top=0", rows, JSON_TYPE, 400),
        ("POST", "/v2/models/{name}/infer", oip, scores, JSON_TYPE, 200),
        ("POST", "/v2/models/{name}/infer", oip, explains, JSON_TYPE, 200),
        ("POST", "/v2/models/{name}/infer", "/v2/models/nope/infer", scores, JSON_TYPE, 404),
        ("POST", "/v2/models/{name}/infer", oip, unknown_output, JSON_TYPE, 400),
    ]
    for method, template, path, body, content_type, expected in calls:
        headers = {"Content-Type": content_type} if content_type else {}
        data = body.encode() if isinstance(body, str) else body
        status, answer_headers, raw = request(port, method, path, data, headers)
        where = f"{method} {path} -> {status}: {raw[:300]!r}"
        assert status == expected, where
        assert answer_headers["Content-Type"] == "application/json", where
        schema = documented_schema(document, template, method, status)
        Draft202012Validator.check_schema(schema)
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(json.loads(raw))]
        assert not errors, f"{where}: {errors}"


def test_the_document_refuses_answers_of_another_shape(gateway_url: str) -> None:
    """The validation above can fail: bodies off the contract do not validate."""
    port = int(gateway_url.rsplit(":", 1)[1])
    document = json.loads(request(port, "GET", "/openapi.json")[2])
    predictions = Draft202012Validator(documented_schema(document, "/predict", "POST", 200))
    errors = Draft202012Validator(documented_schema(document, "/predict", "POST", 400))
    assert predictions.is_valid([{"class": 1, "probability": 0.5}])
    for wrong in ([{"class": 2, "probability": 0.5}], [{"class": 1}], [{"probability": 1.5}]):
        assert not predictions.is_valid(wrong), wrong
    assert errors.is_valid({"error": "x", "details": []})
    assert not errors.is_valid({"error": "x"})
    assert not errors.is_valid({"error": "x", "details": [{"row": 0, "field": "x1"}]})
