"""The OIP servicer over the data plane, called directly with a real bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from inference.config import Settings
from inference.dataplane import DataPlane, ExplainLimits
from inference.metrics import Metrics
from inference.servicer import SERVER_NAME, InferenceServicer
from modeling.cleaning import MISSING_TEXT as CLEANING_MISSING
from modeling.predictor import Prediction, Predictor
from modeling.schema import COLUMNS, NUMERIC_COLUMNS
from modeling.training.synthetic import synthetic_table
from proto import inference_pb2 as pb
from proto.codec import (
    CONTRIBUTION_GROUPS,
    CONTRIBUTION_NAMES,
    MISSING_TEXT,
    Limits,
    decode_contribution_names,
    decode_texts,
)
from tests.oip import infer_request, oip_columns


class AbortedError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details = code, details


class Context:
    """The part of grpc.ServicerContext the servicer uses."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AbortedError(code, details)


@pytest.fixture(scope="module")
def predictor(quick_bundle: Path) -> Predictor:
    return Predictor.from_bundle(quick_bundle)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def data_plane(predictor: Any, **hooks: Any) -> DataPlane:
    """A data plane with the server's default batching settings."""
    defaults = Settings(bundle=Path("unused"))
    return DataPlane(
        predictor,
        max_batch_rows=defaults.max_batch_rows,
        max_queue_delay_s=defaults.max_queue_delay_ms / 1000,
        limits=Limits(defaults.max_request_rows, defaults.max_text_bytes),
        explain=ExplainLimits(defaults.explain_max_rows, defaults.explain_concurrency),
        **hooks,
    )


@pytest.fixture
def plane(predictor: Predictor, metrics: Metrics):
    plane = data_plane(
        predictor, on_batch=metrics.observe_batch, on_quality=metrics.observe_quality
    )
    plane.warm()
    yield plane
    plane.close()


@pytest.fixture
def servicer(plane: DataPlane, metrics: Metrics) -> InferenceServicer:
    return InferenceServicer(plane, metrics)


def rows(n: int, seed: int = 1) -> dict[str, Any]:
    table, _ = synthetic_table(n, seed)
    return oip_columns(table)


def call(servicer: InferenceServicer, method: str, request: Any) -> Any:
    return getattr(servicer, method)(request, Context())


def test_liveness_readiness_and_server_metadata(predictor: Predictor, metrics: Metrics) -> None:
    plane = data_plane(predictor)
    servicer = InferenceServicer(plane, metrics)
    assert call(servicer, "ServerLive", pb.ServerLiveRequest()).live
    assert not call(servicer, "ServerReady", pb.ServerReadyRequest()).ready
    assert not call(servicer, "ModelReady", pb.ModelReadyRequest(name=predictor.name)).ready
    plane.warm()
    assert call(servicer, "ServerReady", pb.ServerReadyRequest()).ready
    assert call(servicer, "ModelReady", pb.ModelReadyRequest(name=predictor.name)).ready
    assert call(
        servicer, "ModelReady", pb.ModelReadyRequest(name=predictor.name, version=predictor.version)
    ).ready
    assert not call(servicer, "ModelReady", pb.ModelReadyRequest(name="other")).ready
    assert not call(
        servicer, "ModelReady", pb.ModelReadyRequest(name=predictor.name, version="v0")
    ).ready
    assert call(servicer, "ModelReady", pb.ModelReadyRequest(name="")).ready  # the one model
    assert call(servicer, "ServerMetadata", pb.ServerMetadataRequest()).name == SERVER_NAME
    plane.drain()
    assert not call(servicer, "ServerReady", pb.ServerReadyRequest()).ready
    plane.close()
    assert (
        metrics.registry.get_sample_value(
            "inference_requests_total", {"method": "ModelReady", "code": "OK"}
        )
        == 6
    )


def test_model_metadata_lists_the_schema(servicer: InferenceServicer, predictor: Predictor) -> None:
    reply = call(servicer, "ModelMetadata", pb.ModelMetadataRequest(name=predictor.name))
    assert (reply.name, list(reply.versions)) == (predictor.name, [predictor.version])
    assert [i.name for i in reply.inputs] == list(COLUMNS)
    assert call(servicer, "ModelMetadata", pb.ModelMetadataRequest()) == reply  # empty name
    for tensor in reply.inputs:
        assert tensor.datatype == ("FP64" if tensor.name in NUMERIC_COLUMNS else "BYTES")
        assert list(tensor.shape) == [-1]
    assert [(o.name, o.datatype, list(o.shape)) for o in reply.outputs] == [
        ("probability", "FP64", [-1]),
        ("class", "INT64", [-1]),
        ("logit", "FP64", [-1]),
        ("base_logit", "FP64", [-1]),
        ("contributions", "FP64", [-1, -1]),
    ]
    # the texts cleaning counts as missing, published once for every client (the gateway)
    assert decode_texts(reply.parameters[MISSING_TEXT].string_param) == CLEANING_MISSING
    names, groups = decode_contribution_names(
        reply.parameters[CONTRIBUTION_NAMES].string_param,
        reply.parameters[CONTRIBUTION_GROUPS].string_param,
    )
    assert names[: len(COLUMNS)] == COLUMNS
    assert set(names[len(COLUMNS) :]) == set(groups)


@pytest.mark.parametrize(("name", "version"), [("nope", ""), (None, "0")])
def test_another_model_is_not_found(
    servicer: InferenceServicer, predictor: Predictor, name: str | None, version: str
) -> None:
    request = pb.ModelMetadataRequest(name=name or predictor.name, version=version)
    with pytest.raises(AbortedError) as error:
        call(servicer, "ModelMetadata", request)
    assert error.value.code is grpc.StatusCode.NOT_FOUND
    assert predictor.name in error.value.details


def decode(reply: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    kinds = {"FP64": "<f8", "INT64": "<i8"}
    return {
        o.name: np.frombuffer(raw, kinds[o.datatype])
        for o, raw in zip(reply.outputs, reply.raw_output_contents, strict=True)
    }


@pytest.mark.parametrize("raw", [True, False])
def test_infer_equals_the_predictor(
    servicer: InferenceServicer, predictor: Predictor, raw: bool
) -> None:
    columns = rows(25)
    request = infer_request(predictor.name, columns, raw=raw)
    request.id = "req-7"
    reply = call(servicer, "ModelInfer", request)
    assert (reply.id, reply.model_name, reply.model_version) == (
        "req-7",
        predictor.name,
        predictor.version,
    )
    got = decode(reply)
    expected: Prediction = predictor.predict(columns, 25)
    np.testing.assert_array_equal(got["probability"], expected.probability)
    np.testing.assert_array_equal(got["class"], expected.label)
    assert set(np.unique(got["class"])) <= {0, 1}
    np.testing.assert_array_equal(got["class"], got["probability"] >= predictor.threshold)


def test_absent_inputs_score_as_missing(servicer: InferenceServicer, predictor: Predictor) -> None:
    columns = rows(5)
    partial = {name: columns[name] for name in ("x0", "x1", "x12")}
    reply = call(servicer, "ModelInfer", infer_request(predictor.name, partial))
    all_missing = {
        **{name: np.full(5, np.nan) for name in NUMERIC_COLUMNS},
        **{name: [b""] * 5 for name in COLUMNS if name not in NUMERIC_COLUMNS},
        **partial,
    }
    np.testing.assert_array_equal(
        decode(reply)["probability"], predictor.predict(all_missing, 5).probability
    )


def test_requested_outputs_only(servicer: InferenceServicer, predictor: Predictor) -> None:
    request = infer_request(predictor.name, rows(3))
    request.outputs.add(name="class")
    reply = call(servicer, "ModelInfer", request)
    assert [o.name for o in reply.outputs] == ["class"]
    assert len(reply.raw_output_contents) == 1


def explain_request(name: str, columns: dict[str, Any]) -> pb.ModelInferRequest:
    request = infer_request(name, columns)
    for output in ("logit", "base_logit", "contributions", "probability"):
        request.outputs.add(name=output)
    return request


def test_an_explanation_is_answered_only_on_request(
    servicer: InferenceServicer, predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    columns = rows(40, seed=4)
    reply = call(servicer, "ModelInfer", explain_request(predictor.name, columns))
    assert [o.name for o in reply.outputs] == [
        "logit",
        "base_logit",
        "contributions",
        "probability",
    ]
    width = len(servicer._plane.model.contribution_names)
    assert list(reply.outputs[2].shape) == [40, width]
    contributions = np.frombuffer(reply.raw_output_contents[2]).reshape(40, width)
    logit = np.frombuffer(reply.raw_output_contents[0])
    base = np.frombuffer(reply.raw_output_contents[1])
    np.testing.assert_allclose(base + contributions.sum(axis=1), logit, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        np.frombuffer(reply.raw_output_contents[3]), predictor.predict(columns, 40).probability
    )

    def no_explaining(*_: Any) -> None:
        raise AssertionError("a plain request computed an explanation")

    monkeypatch.setattr(predictor, "explain", no_explaining)
    assert len(call(servicer, "ModelInfer", infer_request(predictor.name, columns)).outputs) == 2


def test_explanations_are_bounded_in_rows_and_in_calls_at_once(
    servicer: InferenceServicer, plane: DataPlane, predictor: Predictor
) -> None:
    limit = plane.explain_limits.max_rows
    with pytest.raises(AbortedError) as error:
        call(servicer, "ModelInfer", explain_request(predictor.name, rows(limit + 1)))
    assert error.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {limit}" in error.value.details
    for _ in range(plane.explain_limits.concurrency):  # every slot taken by other calls
        plane._explaining.acquire()
    with pytest.raises(AbortedError) as error:
        call(servicer, "ModelInfer", explain_request(predictor.name, rows(2)))
    assert error.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(call(servicer, "ModelInfer", infer_request(predictor.name, rows(2))).outputs) == 2
    plane._explaining.release()
    assert call(servicer, "ModelInfer", explain_request(predictor.name, rows(2))).outputs


def add_input(request: pb.ModelInferRequest, name: str) -> None:
    request.inputs.add(name=name, datatype="FP64", shape=[3])
    request.raw_input_contents.append(np.zeros(3).tobytes())


@pytest.mark.parametrize(
    ("mutate", "code", "needle"),
    [
        (lambda r: r.inputs[1].__setattr__("datatype", "FP64"), "INVALID_ARGUMENT", "x1"),
        (lambda r: r.inputs[3].shape.__setitem__(0, 2), "INVALID_ARGUMENT", "x3"),
        (lambda r: add_input(r, "x100"), "INVALID_ARGUMENT", "x100"),
        (lambda r: r.outputs.add(name="shap"), "INVALID_ARGUMENT", "shap"),
        (lambda r: [r.outputs.add(name="class") for _ in "ab"], "INVALID_ARGUMENT", "class"),
        (lambda r: r.__setattr__("model_name", "other"), "NOT_FOUND", "other"),
    ],
)
def test_bad_requests_get_a_status_naming_the_problem(
    servicer: InferenceServicer, metrics: Metrics, mutate, code, needle
) -> None:
    request = infer_request(servicer._plane.model.name, rows(3))
    mutate(request)
    with pytest.raises(AbortedError) as error:
        call(servicer, "ModelInfer", request)
    assert error.value.code.name == code
    assert needle in error.value.details
    assert (
        metrics.registry.get_sample_value(
            "inference_requests_total", {"method": "ModelInfer", "code": code}
        )
        == 1
    )


def test_infer_after_close_is_unavailable(
    servicer: InferenceServicer, plane: DataPlane, predictor: Predictor
) -> None:
    plane.close()
    with pytest.raises(AbortedError) as error:
        call(servicer, "ModelInfer", infer_request(predictor.name, rows(1)))
    assert error.value.code is grpc.StatusCode.UNAVAILABLE


class FaultyPredictor(Predictor):
    """Fault injection around the real predictor: scoring itself raises."""

    def __init__(self, real: Predictor) -> None:
        super().__init__(real.stack, real.manifest)

    def predict(self, columns: Any, n_rows: int) -> Prediction:
        raise MemoryError("injected fault")


def test_an_unexpected_error_is_internal_not_a_crash(
    predictor: Predictor, metrics: Metrics
) -> None:
    plane = data_plane(FaultyPredictor(predictor))
    servicer = InferenceServicer(plane, metrics)
    with pytest.raises(AbortedError) as error:
        call(servicer, "ModelInfer", infer_request(predictor.name, rows(1)))
    assert error.value.code is grpc.StatusCode.INTERNAL
    assert "MemoryError: injected fault" in error.value.details
    assert call(servicer, "ServerLive", pb.ServerLiveRequest()).live  # still answering
    plane.close()


def test_metrics_count_rows_batches_and_data_quality(
    servicer: InferenceServicer, predictor: Predictor, metrics: Metrics
) -> None:
    columns = rows(4)
    columns["x5"] = np.array([np.nan, 1.0, np.nan, np.nan])
    columns["x1"] = [b"blursday", b"wed", b"THU", b"nope"]
    del columns["x7"]
    call(servicer, "ModelInfer", infer_request(predictor.name, columns))
    sample = metrics.registry.get_sample_value
    assert sample("inference_rows_scored_total", {"version": predictor.version}) == 4
    assert sample("inference_batch_rows_count") == 1
    assert sample("inference_batch_rows_sum") == 4
    assert sample("inference_batch_requests_sum") == 1
    assert sample("inference_missing_values_total", {"column": "x5"}) == 3
    assert sample("inference_missing_values_total", {"column": "x7"}) == 4
    assert sample("inference_unrecognised_values_total", {"column": "x1"}) == 2
    assert sample("inference_unrecognised_values_total", {"column": "x54"}) == 0
    assert sample("inference_requests_total", {"method": "ModelInfer", "code": "OK"}) == 1
    assert sample("inference_request_duration_seconds_count", {"method": "ModelInfer"}) == 1
