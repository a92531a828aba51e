"""Request handling that needs no model: content type, size, JSON, routes, and 503 when
the inference server cannot be reached (a closed local port, a real failed connection)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app, shut_down, warm_up
from gateway.config import Config

ROW = b'{"x0": "9.521496806", "x1": "wed"}'


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def client() -> Iterator[FlaskClient]:
    config = Config(
        inference_target=f"127.0.0.1:{closed_port()}",
        max_body_bytes=2000,
        max_rows=3,
        ready_timeout_s=0.5,
        retry_after_s=2,
    )
    app = create_app(config)
    yield app.test_client()
    shut_down(app)


def post(client: FlaskClient, body: bytes, content_type: str | None = "application/json"):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post("/predict", data=body, headers=headers)


def test_healthz_and_openapi(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    document = client.get("/openapi.json")
    assert document.status_code == 200
    assert "/predict" in document.get_json()["paths"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client: FlaskClient, content_type: str | None) -> None:
    answer = post(client, ROW, content_type)
    assert answer.status_code == 415
    assert "application/json" in answer.get_json()["error"]


def test_json_content_type_variants_are_accepted(client: FlaskClient) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        assert post(client, b"[]", content_type).status_code == 400  # parsed as JSON


def test_body_over_the_limit_is_413(client: FlaskClient) -> None:
    answer = post(client, b"[" + b" " * 3000 + b"]")
    assert answer.status_code == 413
    assert answer.get_json() == {"error": "request body larger than 2000 bytes", "details": []}


def test_too_many_rows_is_413(client: FlaskClient) -> None:
    answer = post(client, b"[" + b",".join([ROW] * 4) + b"]")
    assert answer.status_code == 413
    assert "limit is 3" in answer.get_json()["error"]


@pytest.mark.parametrize("body", [b"{", b"[]", b"42", b'{"x0": NaN}', b"\xff"])
def test_bad_json_is_400_with_the_error_body(client: FlaskClient, body: bytes) -> None:
    answer = post(client, body)
    assert answer.status_code == 400
    payload = answer.get_json()
    assert set(payload) == {"error", "details"}
    assert payload["error"]


def test_unknown_route_and_method_are_json(client: FlaskClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert "error" in missing.get_json()
    wrong = client.get("/predict")
    assert wrong.status_code == 405
    assert "error" in wrong.get_json()


def test_unreachable_inference_server_is_503_with_retry_after(client: FlaskClient) -> None:
    for answer in (post(client, ROW), client.get("/readyz")):
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "2"
        error = answer.get_json()["error"]
        assert "unavailable" in error
        assert "UNAVAILABLE" not in error  # no gRPC status text ...
        assert "127.0.0.1" not in error  # ... and no address
        assert "ipv4" not in error
    warm_up(client.application)  # logs, never raises


def test_metrics_count_requests_by_status(client: FlaskClient) -> None:
    post(client, b"{")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'gateway_requests_total{route="/predict",status="400"}' in text
    assert "gateway_request_duration_seconds_bucket" in text


def test_a_declared_body_over_the_limit_is_refused_before_it_holds_any_budget() -> None:
    # The budget cannot hold 6 bytes per declared byte of 2,000: the size limit must answer.
    config = Config(
        inference_target=f"127.0.0.1:{closed_port()}", max_body_bytes=2000, memory_budget_bytes=5000
    )
    app = create_app(config)
    with app.test_client() as small:
        answer = small.post(
            "/predict", data=b"[" + b" " * 2999 + b"]", headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 413
    assert answer.get_json()["error"] == "request body larger than 2000 bytes"
