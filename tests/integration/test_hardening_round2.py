"""Hostile clients, round 2 (issue 17): six defects at the edge, against the real processes.

Each test reproduced its defect before the fix: non-UTF-8 bytes in a value (500), large
valid numbers that ``/explain`` could not explain (502, gRPC ``INTERNAL``), a large
``?top`` refused for a small request (413), braces and commas inside text values counted
as rows and values (413), an answer given without reading a large body lost on the way
(503, or a broken pipe), and nginx's own 501/505 as HTML. Every gateway probe runs
behind the nginx front and with gunicorn facing clients (``GATEWAY_EDGE=none``).
"""

from __future__ import annotations

import http.client
import json
import math
import shutil
import socket
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeling.schema import COLUMNS, NUMERIC_COLUMNS
from modeling.training.synthetic import synthetic_records
from proto import inference_pb2_grpc as pb_grpc
from proto.codec import CONTRIBUTIONS, LOGIT, PROBABILITY
from tests.integration.conftest import ManagedProcess, infer_request
from tests.integration.gateway_helpers import (
    EDGES,
    JSON,
    Gateways,
    contract_error,
    exchange,
    one_gateway_per_edge,
    post_head,
    predict,
    request,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]

MAX_BODY = 4_000_000
LIMITS = {
    "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY),
    "GATEWAY_MAX_ROWS": "2000",
    "GATEWAY_MAX_VALUES": "300000",
    "GATEWAY_WORKERS": "1",
    "GATEWAY_THREADS": "4",
}
ROUTES = ("/predict", "/explain")
ROW = synthetic_records(1, seed=17)[0]


@pytest.fixture(scope="module")
def gateways(
    inference_server: ManagedProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    """One gateway per edge (nginx front, gunicorn alone), 1 worker x 4 threads."""
    target = f"127.0.0.1:{inference_server.ports['grpc']}"
    with one_gateway_per_edge(target, tmp_path_factory.mktemp("round2"), **LIMITS) as ports:
        yield ports


def post(port: int, path: str, body: bytes) -> tuple[int, Any]:
    status, _, answer = request(port, "POST", path, body, JSON)
    return status, json.loads(answer)


def with_raw_value(field: str, raw: bytes, index: int = 1, *, quoted: bool = True) -> bytes:
    """A body of three valid rows whose row ``index`` has ``raw`` (bytes) as ``field``'s value."""
    rows = []
    for i in range(3):
        row = {key: value for key, value in ROW.items() if key != field}
        encoded = json.dumps(row).encode()
        value = (b'"' + raw + b'"' if quoted else raw) if i == index else b'"1"'
        rows.append(encoded[:-1] + b', "' + field.encode() + b'": ' + value + b"}")
    return b"[" + b", ".join(rows) + b"]"


# ---- 1. bytes that are not UTF-8 inside a value ------------------------------------------------

NOT_UTF8 = {
    "latin-1": b"Citro\xebn",
    "utf8-surrogate": b"a\xed\xa0\x80b",
    "overlong": b"\xc0\xaf",
    "truncated": b"abc\xe2\x82",
    "lone-continuation": b"\x80",
}


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("field", ["x84", "x1", "x5"])  # text, text, numeric
@pytest.mark.parametrize("raw", NOT_UTF8.values(), ids=NOT_UTF8.keys())
def test_bytes_that_are_not_utf8_in_a_value_are_a_400_naming_row_and_field(
    gateways: dict[str, int], edge: str, route: str, field: str, raw: bytes
) -> None:
    status, answer = post(gateways[edge], route, with_raw_value(field, raw))
    assert status == 400, answer
    assert "UTF-8" in contract_error(json.dumps(answer).encode())
    assert answer["details"]
    assert {(item["row"], item["field"]) for item in answer["details"]} == {(1, field)}
    assert "\ufffd" in answer["details"][0]["value"]  # the bad bytes shown as replacements


@pytest.mark.parametrize("edge", EDGES)
def test_bytes_that_are_not_utf8_outside_the_inputs_are_still_a_400(
    gateways: dict[str, int], edge: str
) -> None:
    for body in (
        b'{"x0": 1, "note": "Citro\xebn"}',  # a key the model does not read
        b'{"x0": 1, "n\xebte": 2}',  # in a key
        b'{"x0": 1\xeb}',  # between tokens
    ):
        status, answer = post(gateways[edge], "/predict", body)
        assert status == 400, (body, answer)
        assert "UTF-8" in contract_error(json.dumps(answer).encode())


# ---- 2. large valid numbers are explained like they are scored ---------------------------------

HUGE = (1e8, 1e12, 1e20, 1e30, -1e30, 3.4e38, -3.4e38)
"""Valid magnitudes (float32 still holds them; beyond it a value is unrecognised)."""


def huge_rows() -> list[dict[str, Any]]:
    """One row per numeric input and magnitude, the rest of the row a normal one."""
    rows = []
    for name in NUMERIC_COLUMNS:
        for value in HUGE:
            text: Any = value
            if name == "x12":
                text = f"${value:,.2f}" if value > 0 else f"(${-value:,.2f})"
            elif name == "x79":
                text = f"{value}%"
            rows.append({**ROW, name: text})
    return rows


@pytest.mark.parametrize("edge", EDGES)
def test_large_valid_numbers_are_explained_as_they_are_scored(
    gateways: dict[str, int], edge: str
) -> None:
    rows = huge_rows()
    body = json.dumps(rows).encode()
    status, scores = post(gateways[edge], "/predict", body)
    assert status == 200, scores
    status, explained = post(gateways[edge], "/explain?top=all", body)
    assert status == 200, explained
    assert len(explained) == len(rows)
    for row, score in zip(explained, scores, strict=True):
        assert row["probability"] == pytest.approx(score["probability"], rel=1e-12, abs=1e-15)
        assert row["class"] == score["class"]
        total = row["base_logit"] + sum(item["contribution"] for item in row["contributions"])
        assert total == pytest.approx(row["logit"], rel=1e-9, abs=1e-6)
        sigmoid = 0.5 * (1 + math.tanh(0.5 * row["logit"]))  # exp overflows at such logits
        assert sigmoid == pytest.approx(row["probability"], rel=1e-9, abs=1e-300)


def test_large_valid_numbers_over_grpc_are_never_internal(inference_server: ManagedProcess) -> None:
    rows = huge_rows()
    columns: dict[str, Any] = {}
    for name in COLUMNS:
        values = [row.get(name) for row in rows]
        if name in NUMERIC_COLUMNS and name not in ("x12", "x79"):
            columns[name] = np.array([np.nan if v is None else float(v) for v in values])
        else:
            columns[name] = [b"" if v is None else str(v).encode() for v in values]
    call = infer_request("", columns)
    for name in (PROBABILITY, LOGIT, CONTRIBUTIONS):
        call.outputs.add(name=name)
    with grpc.insecure_channel(f"127.0.0.1:{inference_server.ports['grpc']}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        explained = stub.ModelInfer(call, timeout=60)  # was INTERNAL
        scored = stub.ModelInfer(infer_request("", columns), timeout=60)
    assert [o.name for o in explained.outputs] == [PROBABILITY, LOGIT, CONTRIBUTIONS]
    np.testing.assert_allclose(
        np.frombuffer(explained.raw_output_contents[0], "<f8"),
        np.frombuffer(scored.raw_output_contents[0], "<f8"),  # probability comes first
        rtol=1e-12,
        atol=1e-15,
    )


# ---- 3. a large top on a small request -------------------------------------------------------


@pytest.mark.parametrize("edge", EDGES)
def test_a_top_larger_than_the_contributions_costs_only_what_is_listed(
    gateways: dict[str, int], edge: str
) -> None:
    rows = synthetic_records(10, seed=3)
    status, answer = post(gateways[edge], "/explain?top=100000", json.dumps(rows).encode())
    assert status == 200, answer
    status, every = post(gateways[edge], "/explain?top=all", json.dumps(rows).encode())
    assert status == 200
    assert answer == every


# ---- 4. braces and commas inside text values are not rows or values ---------------------------


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize(
    ("text", "n_rows"),
    [("{{{{{{{{{{{", 2000), ("}{", 2000), (",", 2000), ("," * 1000, 300), ('\\"{,\\\\', 2000)],
    ids=["braces", "closing-brace", "comma", "many-commas", "escaped-quote"],
)
def test_braces_and_commas_inside_text_values_are_not_counted(
    gateways: dict[str, int], edge: str, text: str, n_rows: int
) -> None:
    row = '{"x0": 1, "x84": "' + text + '"}'
    body = ("[" + ", ".join([row] * n_rows) + "]").encode()
    status, answer = post(gateways[edge], "/predict", body)
    assert status == 200, answer
    assert len(answer) == n_rows


@pytest.mark.parametrize("edge", EDGES)
def test_objects_and_values_outside_strings_are_still_counted(
    gateways: dict[str, int], edge: str
) -> None:
    rows = b"[" + b",".join([b'{"x0": 1, "x84": "{"}'] * 2001) + b"]"
    status, answer = post(gateways[edge], "/predict", rows)
    assert (status, "the limit is 2000" in answer["error"]) == (413, True)
    values = b'[{"x0": 1, "x84": ",", "x5": [' + b",".join([b"1"] * 300_000) + b"]}]"
    status, answer = post(gateways[edge], "/predict", values)
    assert (status, "the limit is 300000" in answer["error"]) == (413, True)


# ---- 5. answers given without reading a large body reach the client ----------------------------

EARLY = [
    ("POST", "/predict", {"Content-Type": "text/plain"}, 415),
    ("PUT", "/predict", JSON, 405),
    ("POST", "/nowhere", JSON, 404),
    ("POST", "/explain?top=x", JSON, 400),
]


def early_answer(port: int, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
    """The status and contract error of one call, or the exception that lost its answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, contract_error(response.read())
    except OSError as error:  # a broken pipe or a reset: the answer never arrived
        return type(error).__name__
    finally:
        connection.close()


@pytest.mark.parametrize("edge", EDGES)
def test_answers_given_without_reading_a_large_body_reach_the_client(
    gateways: dict[str, int], edge: str
) -> None:
    body = b'[{"x0": 1}' + b", {}" * ((MAX_BODY - 20) // 4) + b"]"  # just under the limit
    outcomes = []
    for _ in range(40):
        for method, path, headers, status in EARLY:
            got = early_answer(gateways[edge], method, path, headers, body)
            outcomes.append((path, status, got if isinstance(got, str) else got[0]))
    lost = [outcome for outcome in outcomes if outcome[1] != outcome[2]]
    assert not lost, f"{len(lost)} of {len(outcomes)} answers lost: {lost[:8]}"
    assert predict(gateways[edge], ROW)[0] == 200  # the worker still serves


# ---- 6. every refusal of the front is the contract's JSON ---------------------------------------

ODD_FRAMING = {
    "unknown-coding": "Transfer-Encoding: xchunked\r\n",
    "chunked-then-identity": "Transfer-Encoding: chunked, identity\r\n",
    "gzip-then-chunked": "Transfer-Encoding: gzip, chunked\r\n",
    "tab-before-value": "Transfer-Encoding:\tchunked\r\n",
}


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("header", ODD_FRAMING.values(), ids=ODD_FRAMING.keys())
def test_odd_transfer_encodings_are_refused_or_served_with_json(
    gateways: dict[str, int], edge: str, header: str
) -> None:
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{header}"
    data = (head + "Connection: close\r\n\r\n").encode() + b'b\r\n{"x0": "1"}\r\n0\r\n\r\n'
    status, answer = exchange(gateways[edge], data)
    assert status in (200, 400), answer
    if status != 200:
        contract_error(answer)


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("version", ["HTTP/3.0", "HTTP/2.0", "HTTP/1.2", "HTTP/9.9"])
def test_an_unsupported_http_version_is_refused_with_json(
    gateways: dict[str, int], edge: str, version: str
) -> None:
    status, answer = exchange(gateways[edge], f"GET /healthz {version}\r\nHost: x\r\n\r\n".encode())
    assert status in (200, 400), answer
    if status != 200:
        contract_error(answer)


# ---- the net for the next round: arbitrary bytes in any value, both routes -------------------


def is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("route", ROUTES)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    field=st.sampled_from(COLUMNS),
    raw=st.one_of(
        st.binary(max_size=48),
        st.lists(st.integers(0x20, 0xFF), max_size=24).map(bytes),  # no control characters
        st.text(max_size=24).map(str.encode),
        st.tuples(st.text(max_size=8), st.sampled_from(list(NOT_UTF8.values()))).map(
            lambda parts: parts[0].encode() + parts[1]
        ),
    ),
    quoted=st.booleans(),
    index=st.integers(0, 2),
)
def test_arbitrary_bytes_in_any_value_are_scored_or_a_named_400(
    gateways: dict[str, int],
    edge: str,
    route: str,
    *,
    field: str,
    raw: bytes,
    quoted: bool,
    index: int,
) -> None:
    body = with_raw_value(field, raw, index, quoted=quoted)
    status, headers, answer = request(gateways[edge], "POST", route, body, JSON)
    assert status in (200, 400), (status, answer)
    assert headers["Content-Type"] == "application/json"
    decoded = json.loads(answer)
    if status == 200:
        assert len(decoded) == 3
        assert all(0.0 <= row["probability"] <= 1.0 for row in decoded)
        assert is_utf8(raw)  # bytes that are not UTF-8 are never scored
        return
    contract_error(answer)
    for item in decoded["details"]:
        assert set(item) == {"row", "field", "value", "reason"}
        assert item["row"] is None or 0 <= item["row"] <= 3
    inside_a_string = quoted and b'"' not in raw and b"\\" not in raw
    if inside_a_string and not is_utf8(raw):
        assert {(item["row"], item["field"]) for item in decoded["details"]} == {(index, field)}


# ---- also seen: a budget held for bytes received, not bytes promised ---------------------------


def test_an_idle_upload_holds_budget_for_the_bytes_it_sent_not_for_those_it_promised(
    inference_server: ManagedProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    started = Gateways(tmp_path_factory.mktemp("promised"))
    body = json.dumps(synthetic_records(1000, seed=8)).encode()  # 2.8 MB, ~13 MB estimated
    try:
        port = started.start(
            f"127.0.0.1:{inference_server.ports['grpc']}",
            GATEWAY_EDGE="none",  # behind nginx only complete bodies reach gunicorn
            GATEWAY_MEMORY_BUDGET_BYTES=str(32 * 1024 * 1024),
            **LIMITS,
        ).ports["http"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
            # 3.5 MB promised (6 bytes budgeted per promised byte: 21 MB), 10 bytes sent
            idle.sendall(post_head("Content-Length: 3500000\r\n") + b'[{"x0": 1}')
            time.sleep(0.5)
            for _ in range(3):
                status, _, answer = request(port, "POST", "/predict", body, JSON)
                assert status == 200, answer
    finally:
        started.stop_all()
