"""End to end through both real processes: gunicorn gateway -> gRPC inference server.

One inference server and one gateway (2 workers) are shared by the module's tests;
tests that need to stop or slow the server start their own processes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from modeling.training.cli import main as modeling_main
from modeling.training.synthetic import synthetic_records
from tests.integration.conftest import ManagedProcess, StartInference, free_port, wait_until
from tests.integration.gateway_helpers import (
    JSON,
    Gateways,
    bundle_name,
    predict,
    request,
)

pytestmark = pytest.mark.integration

ROWS = synthetic_records(60, seed=7)
# The exercise's curl bodies, with the fields it shows (the rest absent = missing).
EXERCISE_ONE = (
    '{"x0": "9.521496806", "x1": "wed", "x2": "-5.087588682", "x3": "-17.21471427", '
    '"x97": "2.216918955", "x98": "-18.64465705", "x99": "-1.926577376"}'
)
EXERCISE_BATCH = (
    "["
    + EXERCISE_ONE
    + ',{"x0": "8.415753628", "x1": "thur", "x2": "-4.934359322", "x3": "-6.21844247", '
    '"x97": "6.2714321", "x98": "-38.057369", "x99": "-2.76817620"}'
    ',{"x0": "0.96691828", "x1": "thursday", "x2": "-3.86881782", "x3": "-2.2981827", '
    '"x97": "3.1854471", "x98": "-33.6058873", "x99": "-2.02788172"}]'
)


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def gateway(inference_server: ManagedProcess, module_tmp: Path) -> Iterator[int]:
    """Port of a gateway in front of the module's inference server."""
    gateways = Gateways(module_tmp)
    try:
        started = gateways.start(  # no INFERENCE_MODEL: the one model the server serves
            f"127.0.0.1:{inference_server.ports['grpc']}",
            GATEWAY_MAX_BODY_BYTES="3000000",
            GATEWAY_MAX_ROWS="3000",
            GATEWAY_CHUNK_ROWS="200",
        )
        yield started.ports["http"]
    finally:
        gateways.stop_all()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Gateways]:
    gateways = Gateways(tmp_path)
    try:
        yield gateways
    finally:
        gateways.stop_all()


def same_scores(got: list[dict[str, float]], expected: list[dict[str, float]]) -> bool:
    """Equal classes and probabilities equal to the last bits (the model's vectorised maths
    may round the last digit differently for different batch sizes)."""
    assert [g["class"] for g in got] == [e["class"] for e in expected]
    assert [g["probability"] for g in got] == pytest.approx(
        [e["probability"] for e in expected], rel=1e-12, abs=1e-15
    )
    return True


def check_predictions(answer: object, n: int) -> list[dict[str, float]]:
    assert isinstance(answer, list)
    assert len(answer) == n
    for item in answer:
        assert set(item) == {"class", "probability"}
        assert item["class"] in (0, 1)
        assert 0.0 <= item["probability"] <= 1.0
    return answer


# ---- the happy paths ------------------------------------------------------------------------


def test_single_object_answers_an_array_of_one(gateway: int) -> None:
    status, headers, answer = predict(gateway, ROWS[0])
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    check_predictions(answer, 1)
    assert predict(gateway, [ROWS[0]])[2] == answer


def test_batch_keeps_order_and_equals_single_calls(gateway: int) -> None:
    status, _, batch = predict(gateway, ROWS)
    assert status == 200
    check_predictions(batch, len(ROWS))
    singles = [predict(gateway, row)[2][0] for row in ROWS]
    assert same_scores(batch, singles)
    assert same_scores(predict(gateway, ROWS[::-1])[2], batch[::-1])
    # Not every row scores the same: the answers really are per row.
    assert len({item["probability"] for item in batch}) > len(ROWS) // 2


def test_chunked_batch_equals_single_calls(gateway: int) -> None:
    rows = synthetic_records(700, seed=11)  # 4 chunks of 200 rows, converted and sent in turn
    status, _, batch = predict(gateway, rows)
    assert status == 200
    check_predictions(batch, 700)
    for index in (0, 199, 200, 450, 699):
        assert same_scores(predict(gateway, rows[index])[2], [batch[index]])


def test_numbers_as_json_numbers_score_like_strings(gateway: int) -> None:
    row = dict(ROWS[1])
    as_numbers = {
        key: (float(value) if value and re.fullmatch(r"-?[0-9.e+-]+", value) else value)
        for key, value in row.items()
    }
    assert same_scores(predict(gateway, as_numbers)[2], predict(gateway, row)[2])


def test_missing_value_spellings_score_alike(gateway: int) -> None:
    row = dict(ROWS[2])
    answers_seen = []
    for missing in (None, "", "nan"):
        answers_seen.append(predict(gateway, {**row, "x5": missing, "x12": missing})[2])
    absent = {k: v for k, v in row.items() if k not in ("x5", "x12")}
    answers_seen.append(predict(gateway, absent)[2])
    assert all(same_scores(answer, answers_seen[0]) for answer in answers_seen)


def test_unknown_extra_keys_are_ignored(gateway: int) -> None:
    row = ROWS[3]
    assert same_scores(
        predict(gateway, {**row, "y": 1, "comment": {"a": [1]}})[2], predict(gateway, row)[2]
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(("data", "n"), [(EXERCISE_ONE, 1), (EXERCISE_BATCH, 3)])
def test_the_exercise_curl_calls_work_verbatim(gateway: int, data: str, n: int) -> None:
    output = subprocess.run(
        [
            "curl", "--silent", "--show-error", "--fail",
            "--request", "POST",
            "--url", f"http://localhost:{gateway}/predict",
            "--header", "content-type: application/json",
            "--data", data,
        ],
        capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    check_predictions(json.loads(output), n)


# ---- every error class ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b'{"x0": "1"', 400, "malformed JSON"),
        (b"\xff\xfe", 400, "malformed JSON"),
        (b'{"x0": NaN}', 400, "malformed JSON"),
        (b'{"x0": 1e400}', 400, "malformed JSON"),
        (b"42", 400, "object or an array"),
        (b"[]", 400, "empty array"),
        (b"[1, {}]", 400, "2 invalid rows"),
        (b'{"x0": "abc", "x2": [1], "x3": true, "x1": {"a": 1}}', 400, "4 invalid values"),
        (b'{"x0": "1e400"}', 400, "1 invalid value"),
        (b"[" + b" " * 3_000_001 + b"]", 413, "larger than 3000000 bytes"),
        (b"[" + b",".join([b'{"x0": 1}'] * 3001) + b"]", 413, "limit is 3000"),
    ],
)
def test_bad_requests_get_the_contract_error(
    gateway: int, body: bytes, status: int, fragment: str
) -> None:
    got, _, raw = request(gateway, "POST", "/predict", body, JSON)
    assert got == status
    payload = json.loads(raw)
    assert set(payload) == {"error", "details"}
    assert fragment in payload["error"]


def test_invalid_values_name_row_field_value_and_reason(gateway: int) -> None:
    rows = [ROWS[0], {**ROWS[1], "x7": "12,5", "x33": "zero"}]
    status, _, payload = predict(gateway, rows)
    assert status == 400
    assert payload["details"] == [
        {"row": 1, "field": "x7", "value": "12,5", "reason": "not a number"},
        {"row": 1, "field": "x33", "value": "zero", "reason": "not a number"},
    ]


def test_wrong_content_type_is_415(gateway: int) -> None:
    status, _, raw = request(
        gateway, "POST", "/predict", json.dumps(ROWS[0]).encode(), {"Content-Type": "text/plain"}
    )
    assert status == 415
    assert "application/json" in json.loads(raw)["error"]


def test_bad_input_never_takes_a_worker_down(gateway: int) -> None:
    bodies = [b"{", b"[1]", b'{"x0": [[[]]]}', b'{"x1": "' + b"z" * 5000 + b'"}'] * 10
    for body in bodies:
        assert request(gateway, "POST", "/predict", body, JSON)[0] == 400
    assert predict(gateway, ROWS[0])[0] == 200


# ---- operational endpoints -------------------------------------------------------------------


def test_health_readiness_openapi_and_metrics(gateway: int, inference_bundle: Path) -> None:
    assert request(gateway, "GET", "/healthz")[0] == 200
    status, _, body = request(gateway, "GET", "/readyz")
    assert status == 200
    assert json.loads(body)["model"] == bundle_name(inference_bundle)
    status, _, body = request(gateway, "GET", "/openapi.json")
    assert status == 200
    assert "/predict" in json.loads(body)["paths"]
    for _ in range(4):  # reach both workers
        predict(gateway, ROWS[0])
        request(gateway, "POST", "/predict", b"{", JSON)
    status, headers, body = request(gateway, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    ok = re.search(r'gateway_requests_total\{route="/predict",status="200"\} (\d+)', text)
    bad = re.search(r'gateway_requests_total\{route="/predict",status="400"\} (\d+)', text)
    assert ok is not None
    assert float(ok.group(1)) >= 4
    assert bad is not None
    assert float(bad.group(1)) >= 4
    assert "gateway_predict_rows_bucket" in text
    assert "gateway_request_duration_seconds_bucket" in text


# ---- faults: server down, back, slow, wrong model -----------------------------------------------


def test_503_while_inference_is_down_and_recovery_without_restart(
    start_gateway: Gateways, start_inference: StartInference, inference_bundle: Path
) -> None:
    port = free_port()
    name = bundle_name(inference_bundle)
    gateway = start_gateway.start(f"127.0.0.1:{port}", ready=False, INFERENCE_MODEL=name).ports[
        "http"
    ]

    def down() -> None:
        status, headers, payload = predict(gateway, ROWS[0])
        assert status == 503, payload
        assert int(headers["Retry-After"]) >= 1
        assert "unavailable" in payload["error"]
        assert request(gateway, "GET", "/readyz")[0] == 503

    def all_workers_back() -> bool:  # each worker's channel reconnects within its backoff
        return all(predict(gateway, ROWS[0])[0] == 200 for _ in range(6))

    down()  # never up yet
    server = start_inference(inference_bundle, "--port", str(port), wait=False)
    wait_until(all_workers_back, 60.0, "every worker scoring after the start")
    server.stop()
    down()  # went away
    start_inference(inference_bundle, "--port", str(port), wait=False)
    wait_until(all_workers_back, 60.0, "every worker scoring after the restart")
    assert request(gateway, "GET", "/readyz")[0] == 200
    check_predictions(predict(gateway, ROWS[0])[2], 1)


def test_deadline_exceeded_is_504(
    start_gateway: Gateways, inference_server: ManagedProcess, inference_bundle: Path
) -> None:
    target = f"127.0.0.1:{inference_server.ports['grpc']}"
    port = start_gateway.start(
        target, INFERENCE_MODEL=bundle_name(inference_bundle), GATEWAY_DEADLINE_S="0.000001"
    ).ports["http"]
    status, headers, payload = predict(port, ROWS[0])
    assert status == 504
    assert "no answer within the deadline" in payload["error"]
    assert "Retry-After" in headers


def test_unknown_model_name_is_503(
    start_gateway: Gateways, inference_server: ManagedProcess
) -> None:
    target = f"127.0.0.1:{inference_server.ports['grpc']}"
    port = start_gateway.start(target, ready=False, INFERENCE_MODEL="no-such-model").ports["http"]
    status, _, payload = predict(port, ROWS[0])
    assert status == 503
    assert "model not found" in payload["error"]


def test_errors_of_every_chunk_are_reported_with_request_row_numbers(gateway: int) -> None:
    rows = synthetic_records(900, seed=5)  # > 1 MiB: parsed in pieces of ~200 rows
    rows[5] = {**rows[5], "x0": "five"}
    rows[820] = {**rows[820], "x99": True}
    status, _, payload = predict(gateway, rows)
    assert status == 400
    assert payload["error"] == "2 invalid values"
    assert [(d["row"], d["field"]) for d in payload["details"]] == [(5, "x0"), (820, "x99")]


def test_large_bodies_score_alike_however_they_are_written(gateway: int) -> None:
    rows = synthetic_records(800, seed=3)
    for row in rows:
        row["x84"] = "a},{b"  # a row separator inside a string: the split is refused
    compact = json.dumps(rows, separators=(",", ":")).encode()
    assert len(compact) > 1 << 20
    spaced = json.dumps(rows, indent=1).encode()  # no "},{": parsed whole
    answers_seen = []
    for body in (compact, spaced):
        status, _, raw = request(gateway, "POST", "/predict", body, JSON)
        assert status == 200
        answers_seen.append(check_predictions(json.loads(raw), 800))
    assert same_scores(answers_seen[0], answers_seen[1])


def test_a_replaced_model_is_picked_up_without_restart(
    start_gateway: Gateways,
    start_inference: StartInference,
    inference_bundle: Path,
    tmp_path: Path,
) -> None:
    # Same name, another version (a redeployed bundle): the gateway keeps its workers,
    # answers 503 during the switch and then scores with the new model.
    replacement = tmp_path / "new" / inference_bundle.name
    code = modeling_main(
        [
            "train",
            "--synthetic",
            "2000",
            "--preset",
            "quick",
            "--seed",
            "1",
            "--out",
            str(replacement),
        ]
    )
    assert code == 0
    port = free_port()
    first = start_inference(inference_bundle, "--port", str(port), wait=False)
    gateway = start_gateway.start(
        f"127.0.0.1:{port}", INFERENCE_MODEL=bundle_name(inference_bundle), GATEWAY_WORKERS="1"
    ).ports["http"]
    before = predict(gateway, ROWS[0])[2]
    first.stop()
    start_inference(replacement, "--port", str(port), wait=False)
    wait_until(lambda: predict(gateway, ROWS[0])[0] == 200, 60.0, "scoring with the new model")
    after = predict(gateway, ROWS[0])[2]
    check_predictions(after, 1)
    assert after != before


def test_concurrent_single_calls_share_model_calls_and_get_their_own_answers(
    start_gateway: Gateways, inference_server: ManagedProcess, gateway: int
) -> None:
    port = start_gateway.start(
        f"127.0.0.1:{inference_server.ports['grpc']}", GATEWAY_WORKERS="1", GATEWAY_THREADS="8"
    ).ports["http"]
    rows = synthetic_records(64, seed=13)
    expected = predict(gateway, rows)[2]  # one batch call through the module's gateway

    def one(index: int) -> tuple[int, list[dict[str, float]]]:
        status, _, answer = predict(port, rows[index])
        assert status == 200
        return index, answer

    with ThreadPoolExecutor(8) as pool:
        results = dict(pool.map(one, range(len(rows))))
    assert same_scores([results[i][0] for i in range(len(rows))], expected)
    text = request(port, "GET", "/metrics")[2].decode()
    merged = re.search(r"gateway_coalesced_requests_sum (\S+)", text)
    calls = re.search(r"gateway_coalesced_requests_count (\S+)", text)
    assert merged is not None
    assert calls is not None
    assert float(merged.group(1)) == len(rows)
    assert float(calls.group(1)) < len(rows)  # some requests went out together
