"""The codec's gateway half: encoding requests, decoding answers and metadata."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.convert import Batch
from proto import inference_pb2 as pb
from proto.codec import (
    CodecError,
    ModelSchema,
    TensorSpec,
    decode_outputs,
    encode_request,
    pack_bytes,
    unpack_bytes,  # the server decodes with it
)

SCHEMA = ModelSchema(
    "demo", "v1", (TensorSpec("x0", "FP64"), TensorSpec("x1", "BYTES"), TensorSpec("x2", "FP32"))
)


def test_request_round_trips_through_protobuf() -> None:
    n = 300  # raw contents longer than 127 bytes: multi-byte varint lengths
    x0 = np.linspace(-1, 1, n)
    x1 = [f"v{i}".encode() for i in range(n)]
    x2 = np.arange(n, dtype=np.float64) / 4
    batch = Batch(n, (x0, x1, x2))
    request = pb.ModelInferRequest.FromString(encode_request(SCHEMA, batch.columns, 10, 260))
    assert request.model_name == "demo"
    assert request.model_version == ""  # any version may answer (replicas mid-rollout)
    assert [(t.name, t.datatype, list(t.shape)) for t in request.inputs] == [
        ("x0", "FP64", [250]),
        ("x1", "BYTES", [250]),
        ("x2", "FP32", [250]),
    ]
    raw0, raw1, raw2 = request.raw_input_contents
    assert np.array_equal(np.frombuffer(raw0, "<f8"), x0[10:260])
    assert unpack_bytes(raw1, 250, "x1").tolist() == x1[10:260]
    assert np.array_equal(np.frombuffer(raw2, "<f4"), x2[10:260].astype("<f4"))


def test_prefix_is_cached_per_row_count() -> None:
    assert SCHEMA.prefix(7) is SCHEMA.prefix(7)
    assert SCHEMA.prefix(7) != SCHEMA.prefix(8)
    request = pb.ModelInferRequest.FromString(SCHEMA.prefix(7))
    assert [list(t.shape) for t in request.inputs] == [[7], [7], [7]]
    for n in range(300):  # the cache stays bounded
        SCHEMA.prefix(n)
    assert len(SCHEMA._prefixes) <= 256


def test_pack_bytes_is_length_prefixed() -> None:
    assert pack_bytes([b"ab", b"", "é".encode()]) == (
        b"\x02\x00\x00\x00ab" + b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00\xc3\xa9"
    )
    assert pack_bytes([]) == b""


def decode_response(response: pb.ModelInferResponse, n: int) -> tuple[np.ndarray, np.ndarray]:
    found = decode_outputs(response, {"probability": (n,), "class": (n,)})
    return found["probability"], found["class"]


def _response(
    probability: list[float], label: list[int], raw: bool = True
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name="demo")
    p = response.outputs.add(name="probability", datatype="FP64", shape=[len(probability)])
    c = response.outputs.add(name="class", datatype="INT64", shape=[len(label)])
    if raw:
        response.raw_output_contents.append(np.array(probability, "<f8").tobytes())
        response.raw_output_contents.append(np.array(label, "<i8").tobytes())
    else:
        p.contents.fp64_contents.extend(probability)
        c.contents.int64_contents.extend(label)
    return response


@pytest.mark.parametrize("raw", [True, False])
def test_decode_raw_and_typed_outputs(raw: bool) -> None:
    probability, label = decode_response(_response([0.25, 0.75], [0, 1], raw), 2)
    assert probability.tolist() == [0.25, 0.75]
    assert label.tolist() == [0, 1]
    assert label.dtype == np.int64  # the wire's INT64


def test_decode_other_output_datatypes_and_extra_outputs() -> None:
    response = pb.ModelInferResponse()
    response.outputs.add(name="extra", datatype="STRING", shape=[1])
    response.outputs.add(
        name="probability", datatype="FP32", shape=[1]
    ).contents.fp32_contents.append(0.5)
    response.outputs.add(name="class", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    probability, label = decode_response(response, 1)
    assert probability.tolist() == [0.5]
    assert label.tolist() == [1]
    response = pb.ModelInferResponse()
    response.outputs.add(name="probability", datatype="FP64").contents.fp64_contents.append(0.9)
    response.outputs.add(name="class", datatype="BOOL").contents.bool_contents.append(True)
    assert decode_response(response, 1)[1].tolist() == [True]


def test_decode_rejects_wrong_length_missing_output_and_bad_datatype() -> None:
    with pytest.raises(CodecError, match=r"2 values, expected \(3,\)"):
        decode_response(_response([0.1, 0.2], [0, 0]), 3)
    response = _response([0.1], [0])
    del response.outputs[1]
    with pytest.raises(CodecError, match="lacks"):
        decode_response(response, 1)
    response = pb.ModelInferResponse()
    response.outputs.add(name="probability", datatype="BYTES")
    with pytest.raises(CodecError, match="unsupported datatype"):
        decode_response(response, 1)


def _metadata(inputs: list[tuple[str, str]], outputs: list[str]) -> pb.ModelMetadataResponse:
    metadata = pb.ModelMetadataResponse(name="demo", versions=["7"], platform="x")
    for name, datatype in inputs:
        metadata.inputs.add(name=name, datatype=datatype, shape=[-1])
    for name in outputs:
        metadata.outputs.add(name=name, datatype="FP64", shape=[-1])
    return metadata


def test_schema_from_metadata() -> None:
    schema = ModelSchema.from_metadata(
        _metadata([("x0", "FP64"), ("x1", "BYTES")], ["probability", "class"])
    )
    outputs = (TensorSpec("probability", "FP64"), TensorSpec("class", "FP64"))
    inputs = (TensorSpec("x0", "FP64"), TensorSpec("x1", "BYTES"))
    assert schema == ModelSchema("demo", "7", inputs, outputs, platform="x")


def test_metadata_round_trips_through_protobuf() -> None:
    schema = ModelSchema(
        "demo",
        "3",
        (TensorSpec("x0", "FP64"), TensorSpec("x1", "BYTES")),
        (
            TensorSpec("probability", "FP64"),
            TensorSpec("class", "INT64"),
            TensorSpec("c", "FP64", (-1, -1)),
        ),
        platform="p",
        missing_text=frozenset({"", "na"}),
        contribution_names=("x0", "pair"),
        contribution_groups={"pair": ("x0", "x1")},
    )
    wire = pb.ModelMetadataResponse.FromString(schema.to_metadata().SerializeToString())
    assert ModelSchema.from_metadata(wire) == schema


@pytest.mark.parametrize(
    ("inputs", "outputs", "match"),
    [
        ([], ["probability", "class"], "no inputs"),
        ([("x0", "INT8")], ["probability", "class"], "unsupported input datatypes: x0:INT8"),
        ([("x0", "FP64")], ["probability"], "lack"),
    ],
)
def test_unusable_metadata(inputs: list[tuple[str, str]], outputs: list[str], match: str) -> None:
    with pytest.raises(CodecError, match=match):
        ModelSchema.from_metadata(_metadata(inputs, outputs))
