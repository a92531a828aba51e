"""The OIP tensor codec: raw and typed contents, validation messages, output encoding."""

from __future__ import annotations

import numpy as np
import pytest

from proto import inference_pb2 as pb
from proto.codec import (
    BYTES,
    FP64,
    INT64,
    CodecError,
    Limits,
    TensorSpec,
    decode_inputs,
    encode_outputs,
    pack_bytes,
    requested_outputs,
)

LIMITS = Limits(max_rows=100, max_text_bytes=64)  # beyond what these requests hold
SPECS = {"a": TensorSpec("a", FP64), "b": TensorSpec("b", BYTES), "c": TensorSpec("c", FP64)}
A = np.array([1.5, np.nan, -3.25])
B = [b"wed", b"", "caf\u00e9".encode()]


def raw_request(a=A, b=B) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="a", datatype=FP64, shape=[len(a)])
    request.raw_input_contents.append(np.asarray(a, "<f8").tobytes())
    request.inputs.add(name="b", datatype=BYTES, shape=[len(b)])
    request.raw_input_contents.append(pack_bytes(b))
    return request


def typed_request(a=A, b=B) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="a", datatype=FP64, shape=[len(a)]).contents.fp64_contents.extend(a)
    request.inputs.add(name="b", datatype=BYTES, shape=[len(b)]).contents.bytes_contents.extend(b)
    return request


@pytest.mark.parametrize("build", [raw_request, typed_request])
def test_raw_and_typed_contents_decode_alike(build) -> None:
    columns, n_rows = decode_inputs(build(), SPECS, LIMITS)
    assert n_rows == 3
    assert set(columns) == {"a", "b"}  # "c" was not sent: absent, the model reads it as missing
    np.testing.assert_array_equal(columns["a"], A)
    assert columns["a"].dtype == np.float64
    assert list(columns["b"]) == B


def _mutations():
    def no_inputs(r):
        del r.inputs[:]
        del r.raw_input_contents[:]

    def unknown(r):
        r.inputs[0].name = "zz"

    def duplicate(r):
        r.inputs[1].name = "a"
        r.inputs[1].datatype = FP64

    def wrong_type(r):
        r.inputs[1].datatype = FP64

    def two_dims(r):
        r.inputs[0].shape[:] = [3, 1]

    def negative(r):
        r.inputs[0].shape[:] = [-1]

    def inconsistent(r):
        r.inputs[1].shape[:] = [2]

    def raw_count(r):
        r.raw_input_contents.append(b"")

    def raw_size(r):
        r.raw_input_contents[0] = r.raw_input_contents[0][:-1]

    def both(r):
        r.inputs[0].contents.fp64_contents.extend(A)

    def zero_rows(r):
        for tensor in r.inputs:
            tensor.shape[:] = [0]
        r.raw_input_contents[:] = [b"", b""]

    return [
        (no_inputs, "no inputs"),
        (unknown, "'zz' is not an input"),
        (duplicate, "input a is given more than once"),
        (wrong_type, "input b: datatype FP64, expected BYTES"),
        (two_dims, r"input a: shape \[3, 1\]"),
        (negative, r"input a: shape \[-1\]"),
        (inconsistent, "input b has 2 rows but input a has 3"),
        (raw_count, "3 raw_input_contents for 2 inputs"),
        (raw_size, "input a: raw contents have 23 bytes, expected 24"),
        (both, "input a: contents given together with raw_input_contents"),
        (zero_rows, "no rows"),
    ]


@pytest.mark.parametrize(("mutate", "message"), _mutations())
def test_invalid_raw_requests_name_the_problem(mutate, message: str) -> None:
    request = raw_request()
    mutate(request)
    with pytest.raises(CodecError, match=message):
        decode_inputs(request, SPECS, LIMITS)


def test_typed_contents_must_match_the_shape() -> None:
    request = typed_request()
    request.inputs[1].shape[:] = [3]
    del request.inputs[1].contents.bytes_contents[-1]
    with pytest.raises(CodecError, match="input b: bytes_contents has 2 values, expected 3"):
        decode_inputs(request, SPECS, LIMITS)
    request = typed_request()
    request.inputs[0].contents.ClearField("fp64_contents")
    with pytest.raises(CodecError, match="input a: fp64_contents has 0 values"):
        decode_inputs(request, SPECS, LIMITS)


def test_requested_outputs() -> None:
    available = ("probability", "class")
    request = pb.ModelInferRequest()
    assert requested_outputs(request, available, available) == ["probability", "class"]
    request.outputs.add(name="class")
    assert requested_outputs(request, available, available) == ["class"]
    request.outputs.add(name="logit")
    with pytest.raises(CodecError, match="'logit' is not an output"):
        requested_outputs(request, available, available)


def test_outputs_are_encoded_as_raw_little_endian() -> None:
    response = pb.ModelInferResponse()
    probability = np.array([0.25, 0.75])
    label = np.array([0, 1])
    encode_outputs(
        response,
        [(TensorSpec("probability", FP64), probability), (TensorSpec("class", INT64), label)],
    )
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("probability", FP64, [2]),
        ("class", INT64, [2]),
    ]
    assert not response.outputs[0].HasField("contents")
    np.testing.assert_array_equal(
        np.frombuffer(response.raw_output_contents[0], "<f8"), probability
    )
    np.testing.assert_array_equal(np.frombuffer(response.raw_output_contents[1], "<i8"), label)


def test_limits_refuse_too_many_rows_and_too_long_texts() -> None:
    limits = Limits(max_rows=3, max_text_bytes=5)  # "café" is 5 bytes of UTF-8
    assert decode_inputs(raw_request(), SPECS, limits)[1] == 3
    with pytest.raises(CodecError, match="input a: 4 rows; at most 3 per request"):
        decode_inputs(raw_request(a=[1.0] * 4, b=[b""] * 4), SPECS, limits)
    with pytest.raises(CodecError, match="input b: row 1 holds 6 bytes; at most 5 per value"):
        decode_inputs(typed_request(b=[b"wed", b"123456", b""]), SPECS, limits)
    assert decode_inputs(typed_request(b=[b"wed", b"12345", b""]), SPECS, limits)[1] == 3
