"""The /explain answer's shape, order and sums; asking for outputs on the wire."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from gateway.contract import encode
from gateway.convert import Batch
from gateway.errors import ApiError
from gateway.explanations import explanation_rows, parse_top
from proto import inference_pb2 as pb
from proto.codec import (
    CONTRIBUTION_GROUPS,
    CONTRIBUTION_NAMES,
    CodecError,
    ModelSchema,
    TensorSpec,
    decode_outputs,
    encode_request,
)

SCHEMA = ModelSchema("demo", "v1", (TensorSpec("x0", "FP64"), TensorSpec("x1", "BYTES")))
BATCH = Batch(2, (np.array([1.0, 2.0]), [b"a", b"b"]))

NAMES = ("x0", "x1", "x2", "mixture")
GROUPS = {"mixture": ("x0", "x2")}
OUTPUTS = {
    "class": np.array([1, 0]),
    "probability": np.array([0.8, 0.3]),
    "logit": np.array([0.5 + 3.0 - 1.0 + 0.25 - 2.0, 0.5 + 0.0]),
    "base_logit": np.array([0.5, 0.5]),
    "contributions": np.array([[3.0, -1.0, 0.25, -2.0], [0.0, 0.0, 0.0, 0.0]]),
}


def test_rows_list_the_largest_contributions_first_and_sum_the_rest() -> None:
    first, second = orjson.loads(encode(explanation_rows(OUTPUTS, NAMES, GROUPS, top=2)))
    assert first["contributions"] == [
        {"feature": "x0", "contribution": 3.0},
        {"feature": "mixture", "contribution": -2.0, "columns": ["x0", "x2"]},
    ]
    assert first["other"] == -0.75
    assert (first["class"], first["probability"], first["base_logit"]) == (1, 0.8, 0.5)
    listed = sum(e["contribution"] for e in first["contributions"])
    assert first["base_logit"] + listed + first["other"] == first["logit"]
    assert second["other"] == 0.0
    assert len(second["contributions"]) == 2


def test_all_lists_every_name_and_leaves_nothing_over() -> None:
    (row, _) = orjson.loads(encode(explanation_rows(OUTPUTS, NAMES, GROUPS, top=None)))
    assert [e["feature"] for e in row["contributions"]] == ["x0", "mixture", "x1", "x2"]
    assert row["other"] == 0.0


@pytest.mark.parametrize(
    ("text", "expected"), [(None, 7), ("3", 3), (" all ", None), ("ALL", None)]
)
def test_top_is_a_positive_integer_or_all(text: str | None, expected: int | None) -> None:
    assert parse_top(text, 7) == expected


@pytest.mark.parametrize("text", ["0", "-1", "2.5", "", "x", "\u00b2", "\u0663"])
def test_any_other_top_is_a_400(text: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_top(text, 7)
    assert error.value.status == 400


def test_requested_outputs_merge_into_the_request() -> None:
    request = pb.ModelInferRequest.FromString(
        encode_request(SCHEMA, BATCH.columns, 0, 2, ("logit", "contributions"))
    )
    assert [o.name for o in request.outputs] == ["logit", "contributions"]
    assert len(request.raw_input_contents) == len(SCHEMA.inputs)
    plain = pb.ModelInferRequest.FromString(encode_request(SCHEMA, BATCH.columns, 0, 2))
    assert not plain.outputs


def test_outputs_are_shaped_and_checked() -> None:
    response = pb.ModelInferResponse()
    response.outputs.add(name="contributions", datatype="FP64", shape=[2, 3])
    response.raw_output_contents.append(np.arange(6, dtype="<f8").tobytes())
    got = decode_outputs(response, {"contributions": (2, 3)})
    assert got["contributions"].tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(CodecError, match="expected"):
        decode_outputs(response, {"contributions": (3, 3)})
    with pytest.raises(CodecError, match="lacks"):
        decode_outputs(response, {"contributions": (2, 3), "logit": (2,)})


def test_the_schema_reads_the_contributions_names_when_the_server_explains() -> None:
    metadata = pb.ModelMetadataResponse(name="demo", versions=["7"])
    metadata.inputs.add(name="x0", datatype="FP64", shape=[-1])
    for name in ("probability", "class"):
        metadata.outputs.add(name=name, datatype="FP64", shape=[-1])
    assert ModelSchema.from_metadata(metadata).contribution_names == ()  # an older server
    metadata.parameters[CONTRIBUTION_NAMES].string_param = '["x0", "mixture"]'
    metadata.parameters[CONTRIBUTION_GROUPS].string_param = '{"mixture": ["x0"]}'
    schema = ModelSchema.from_metadata(metadata)
    assert schema.contribution_names == ("x0", "mixture")
    assert schema.contribution_groups == {"mixture": ("x0",)}
    metadata.parameters[CONTRIBUTION_GROUPS].string_param = '{"mixture": "x0"}'
    with pytest.raises(CodecError, match=CONTRIBUTION_GROUPS):
        ModelSchema.from_metadata(metadata)


def test_a_server_that_does_not_explain_is_a_501() -> None:
    from gateway.client import InferenceClient
    from gateway.config import Config

    with pytest.raises(ApiError) as error:
        InferenceClient(Config()).explain(SCHEMA, BATCH, 10, 1.0)  # no call is made
    assert error.value.status == 501
