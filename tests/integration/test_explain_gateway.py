"""``POST /explain`` end to end: gunicorn gateway -> gRPC inference server -> tree SHAP."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeling.predictor import Predictor
from modeling.schema import COLUMNS
from modeling.training.synthetic import synthetic_records, synthetic_table
from tests.integration.conftest import ManagedProcess
from tests.integration.gateway_helpers import JSON, Gateways, predict, request

pytestmark = pytest.mark.integration

ROWS = synthetic_records(450, seed=21)


@pytest.fixture(scope="module")
def gateway(
    inference_server: ManagedProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    gateways = Gateways(tmp_path_factory.mktemp("explain"))
    try:
        started = gateways.start(
            f"127.0.0.1:{inference_server.ports['grpc']}", GATEWAY_EXPLAIN_CHUNK_ROWS="200"
        )
        yield started.ports["http"]
    finally:
        gateways.stop_all()


def explain(port: int, payload: object, query: str = "") -> tuple[int, object]:
    status, _, body = request(port, "POST", f"/explain{query}", json.dumps(payload).encode(), JSON)
    return status, json.loads(body)


def check_adds_up(row: dict) -> None:
    listed = sum(entry["contribution"] for entry in row["contributions"])
    assert row["base_logit"] + listed + row["other"] == pytest.approx(row["logit"], abs=1e-6)
    assert 1 / (1 + math.exp(-row["logit"])) == pytest.approx(row["probability"], rel=1e-9)
    sizes = [abs(entry["contribution"]) for entry in row["contributions"]]
    assert sizes == sorted(sizes, reverse=True)


def test_explanations_add_up_and_agree_with_predict_over_several_chunks(gateway: int) -> None:
    status, answer = explain(gateway, ROWS)  # 3 explanation calls of at most 200 rows
    assert status == 200
    assert isinstance(answer, list)
    assert len(answer) == len(ROWS)
    scores = predict(gateway, ROWS)[2]
    for row, score in zip(answer, scores, strict=True):
        assert set(row) == {"class", "probability", "logit", "base_logit", "contributions", "other"}
        assert row["class"] == score["class"]
        assert row["probability"] == pytest.approx(score["probability"], rel=1e-12, abs=1e-15)
        assert len(row["contributions"]) == 10  # the default top
        check_adds_up(row)


def test_explanations_equal_the_in_process_model(gateway: int, inference_bundle: Path) -> None:
    columns, _ = synthetic_table(450, seed=21)
    expected = Predictor.from_bundle(inference_bundle).explain(columns, 450)
    status, answer = explain(gateway, ROWS, "?top=all")
    assert status == 200
    names = expected.contributions.names
    for i in (0, 199, 200, 449):
        row = answer[i]
        assert row["logit"] == pytest.approx(expected.logit[i], abs=1e-9)
        assert row["other"] == 0.0
        got = {entry["feature"]: entry["contribution"] for entry in row["contributions"]}
        assert sorted(got) == sorted(names)  # every column and group, zeros included
        for j, name in enumerate(names):
            assert got[name] == pytest.approx(expected.contributions.values[i, j], abs=1e-9)
        for entry in row["contributions"]:
            if entry["feature"] not in COLUMNS:  # a group names the columns it reads
                assert set(entry["columns"]) <= set(COLUMNS)
                assert entry["columns"]


def test_one_row_and_a_chosen_top(gateway: int) -> None:
    status, answer = explain(gateway, ROWS[3], "?top=3")
    assert status == 200
    assert len(answer) == 1
    assert len(answer[0]["contributions"]) == 3
    check_adds_up(answer[0])


@pytest.mark.parametrize("top", ["0", "-2", "ten", "1.5", "%C2%B2"])
def test_a_bad_top_is_a_400(gateway: int, top: str) -> None:
    status, answer = explain(gateway, ROWS[0], f"?top={top}")
    assert status == 400
    assert "top" in answer["error"]


def test_a_bad_value_is_named_like_predict_names_it(gateway: int) -> None:
    row = dict(ROWS[0], x5="twelve")
    status, answer = explain(gateway, [ROWS[1], row])
    assert status == 400
    assert answer == predict(gateway, [ROWS[1], row])[2]
    assert {"row": 1, "field": "x5"}.items() <= answer["details"][0].items()


def test_too_many_rows_for_the_answer_s_memory_is_a_413(
    inference_server: ManagedProcess, tmp_path: Path
) -> None:
    gateways = Gateways(tmp_path)
    try:
        port = gateways.start(
            f"127.0.0.1:{inference_server.ports['grpc']}", GATEWAY_MEMORY_BUDGET_BYTES="4000000"
        ).ports["http"]
        status, answer = explain(port, ROWS[:200], "?top=all")  # 200 x 100+ contributions
        assert status == 413
        assert "fewer rows or a smaller top" in answer["error"]
        assert explain(port, ROWS[:5], "?top=2")[0] == 200
    finally:
        gateways.stop_all()
