"""Property-based tests of the gateway's JSON -> tensor path (gateway.decode,
gateway.convert, proto.codec).

What the app runs for a request is the typed decode or, when it declines,
``parse_body`` -> ``rows_to_batch``; then ``encode_request``. The typed decode either
declines or gives exactly what the value-by-value path gives. Whatever JSON arrives
(any value in any column, any extra keys, any bytes), the path either yields a batch of
exactly the request's rows or raises the documented :class:`~gateway.errors.ApiError`
with status 400 and a contract body ``{"error": str, "details": [{"row", "field",
"value", "reason"}]}``; nothing else. Valid rows always convert: one element per row in
every tensor, with the values the value-by-value parser gives.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import Config
from gateway.convert import (
    Batch,
    encode_text,
    parse_body,
    parse_number,
    rows_to_batch,
)
from gateway.decode import decoder_for
from gateway.errors import ApiError
from gateway.oip_rest import parse_infer
from modeling.cleaning import MISSING_TEXT as MISSING  # what the server publishes
from modeling.schema import COLUMNS, NUMERIC_COLUMNS
from proto import inference_pb2 as pb
from proto.codec import ModelSchema, TensorSpec, encode_request, unpack_bytes

FP32_MAX = float(np.finfo(np.float32).max)
FP32_RANGE = "number out of range for float32"  # the reason once the FP32 bug is fixed
MAX_TEXT = 64  # a small text limit so that "too long" is reached often
MAX_ERRORS = 7  # a small cap so that capping is exercised
MANY = 40  # rows per generated request at most

# The served model's real inputs (94 FP64, 6 BYTES), as ModelMetadata declares them.
REAL = ModelSchema(
    "real",
    "1",
    tuple(TensorSpec(c, "FP64" if c in NUMERIC_COLUMNS else "BYTES") for c in COLUMNS),
    MISSING,
)
# A small mixed schema (FP32 too) so that full rows and many rows are cheap.
SMALL = ModelSchema(
    "small",
    "1",
    (
        TensorSpec("x0", "FP64"),
        TensorSpec("x1", "BYTES"),
        TensorSpec("x2", "FP32"),
        TensorSpec("x3", "FP64"),
        TensorSpec("x12", "BYTES"),
    ),
    MISSING,
)


def bounded(max_examples: int) -> settings:
    """Settings of one property: a fixed example budget, no per-example deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---- strategies ---------------------------------------------------------------------------

ODD_TEXTS = [
    *("", "nan", "NaN", "NA", "null", " none ", "n/a", "inf", "-Infinity", "1e400", "1e-400"),
    *("1,5", "$12", " 7 ", "0x10", "1_000", "\u0663", "\uff11", "},{", "\u2028", "\x00"),
    *("wed", "Thursday", "($506.82)", "0.01%", "Dev", "volkswagon", "105.79463270000001"),
]
"""Texts at the edges: missing spellings, overflow, separators, non-ASCII digits, controls."""
long_text = st.builds(lambda c, n: c * n, st.characters(), st.integers(MAX_TEXT - 2, 5_000))
texts = st.one_of(
    st.text(max_size=20),
    long_text,
    st.sampled_from(ODD_TEXTS),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
numbers = st.one_of(
    st.integers(),  # mostly small
    st.integers(min_value=2**63 - 5, max_value=2**64 + 5),  # around the 64-bit limits
    st.integers(min_value=-(2**64) - 5, max_value=-(2**63) + 5),
    st.sampled_from([10**300, -(10**300), 10**400, 2**1024]),  # near and beyond float64
    st.floats(allow_nan=False, allow_infinity=False),  # tiny, huge, subnormal, -0.0
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
extra_keys = st.text(max_size=12).filter(lambda key: key not in COLUMNS)
# Values any encoder writes and orjson reads back unchanged (for the extra keys of valid rows).
plain_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=4,
)


def any_row(schema: ModelSchema) -> st.SearchStrategy[dict[str, Any]]:
    """A row with any JSON value under some of the schema's inputs and some extra keys."""
    names = [spec.name for spec in schema.inputs]
    return st.builds(
        lambda known, extra: {**extra, **known},
        st.dictionaries(st.sampled_from(names), json_values, max_size=8),
        st.dictionaries(extra_keys, json_values, max_size=4),
    )


def dumps(value: Any, style: int) -> bytes:
    """JSON text as clients write it: stdlib (NaN/Infinity literals, huge ints) or orjson."""
    if style == 0:
        return json.dumps(value).encode()
    if style == 1:
        return json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8", "surrogatepass")
    return orjson.dumps(value)


# ---- helpers ------------------------------------------------------------------------------


def check_contract_error(error: ApiError, n_rows: int, schema: ModelSchema) -> None:
    """A documented 400 whose body serializes as the contract says."""
    assert error.status == 400, error.message
    body = orjson.loads(error.body())
    assert set(body) == {"error", "details"}
    assert isinstance(body["error"], str)
    assert body["error"]
    assert isinstance(body["details"], list)
    assert len(body["details"]) <= MAX_ERRORS
    names = {spec.name for spec in schema.inputs}
    for item in body["details"]:
        assert set(item) == {"row", "field", "value", "reason"}
        assert 0 <= item["row"] < n_rows
        assert item["field"] is None or item["field"] in names
        assert isinstance(item["reason"], str)
        assert item["reason"]


def convert(rows: list[Any], schema: ModelSchema) -> Batch:
    return rows_to_batch(
        rows, schema.inputs, max_text_chars=MAX_TEXT, max_errors=MAX_ERRORS, missing=MISSING
    )


def expected_column(rows: list[dict[str, Any]], spec: TensorSpec) -> list[Any]:
    """What the value-by-value parsers make of one input of valid rows."""
    values = [row.get(spec.name) for row in rows]
    if spec.datatype == "BYTES":
        return [encode_text(value, MAX_TEXT)[0] for value in values]
    return [parse_number(value, MISSING)[0] for value in values]


def check_batch(batch: Batch, rows: list[dict[str, Any]], schema: ModelSchema) -> None:
    """Right row count in every column, right values, and a well-formed OIP request."""
    n = len(rows)
    assert batch.n_rows == n
    assert len(batch.columns) == len(schema.inputs)
    for spec, column in zip(schema.inputs, batch.columns, strict=True):
        expected = expected_column(rows, spec)
        if spec.datatype == "BYTES":
            assert column == expected
        else:
            assert isinstance(column, np.ndarray)
            assert column.dtype == np.float64
            assert column.shape == (n,)
            assert not np.isinf(column).any()
            np.testing.assert_array_equal(column, np.array(expected, dtype=np.float64))
    request = pb.ModelInferRequest.FromString(encode_request(schema, batch.columns, 0, n))
    assert request.model_name == schema.name
    assert [t.name for t in request.inputs] == [s.name for s in schema.inputs]
    assert len(request.raw_input_contents) == len(schema.inputs)
    for spec, tensor, raw in zip(
        schema.inputs, request.inputs, request.raw_input_contents, strict=True
    ):
        assert list(tensor.shape) == [n]
        assert tensor.datatype == spec.datatype
        if spec.datatype == "BYTES":
            assert len(unpack_bytes(raw, n, spec.name)) == n  # raises unless exactly n
        else:
            assert len(raw) == n * (8 if spec.datatype == "FP64" else 4)


# ---- any input: rows or the documented 400 --------------------------------------------------


@bounded(300)
@given(
    st.one_of(
        st.lists(any_row(REAL), min_size=1, max_size=4),
        any_row(REAL),
        json_values,  # top-level scalars, arrays of non-objects, empty containers
    ),
    st.integers(0, 2),
)
def test_any_json_body_becomes_rows_or_the_documented_400(body: Any, style: int) -> None:
    try:
        raw = dumps(body, style)
    except (TypeError, orjson.JSONEncodeError):  # orjson refuses ints beyond 64 bits
        raw = dumps(body, 0)
    try:
        rows = parse_body(raw)
    except ApiError as error:
        check_contract_error(error, 1, REAL)
        assert not error.details  # noqa: PT017 - the error is the outcome under test
        return
    try:
        batch = convert(rows, REAL)
    except ApiError as error:
        check_contract_error(error, len(rows), REAL)
        return
    assert batch.n_rows == len(rows)
    assert all(len(column) == len(rows) for column in batch.columns)


@bounded(150)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_a_400(raw: bytes) -> None:
    try:
        rows = parse_body(raw)
    except ApiError as error:
        check_contract_error(error, 1, REAL)
        return
    try:
        convert(rows, REAL)
    except ApiError as error:
        check_contract_error(error, len(rows), REAL)


@bounded(250)
@given(st.lists(any_row(SMALL), min_size=1, max_size=MANY))
def test_any_value_in_any_column_converts_exactly_or_is_named(rows: list[dict[str, Any]]) -> None:
    # Decoded as the gateway decodes (orjson), so only values a request can carry remain.
    try:
        rows = orjson.loads(json.dumps(rows))
    except orjson.JSONDecodeError:  # an int literal beyond float64: a 400 upstream
        return
    names = [spec.name for spec in SMALL.inputs]
    try:
        batch = convert(rows, SMALL)
    except ApiError as error:
        check_contract_error(error, len(rows), SMALL)
        # Each listed problem is real: the value-by-value parsers refuse it too.
        for item in error.details:
            row = rows[item["row"]]
            if item["field"] is None:
                assert not isinstance(row, dict) or not set(names) & set(row)
            else:
                spec = next(s for s in SMALL.inputs if s.name == item["field"])
                value = row[spec.name]
                if spec.datatype == "BYTES":
                    assert encode_text(value, MAX_TEXT)[1] == item["reason"]
                elif item["reason"] == FP32_RANGE:
                    assert spec.datatype == "FP32"
                    assert abs(parse_number(value, MISSING)[0]) > FP32_MAX
                else:
                    assert parse_number(value, MISSING)[1] == item["reason"]
        return
    # Accepted: every value is one the value-by-value parsers accept, and converts alike.
    for row in rows:
        assert set(names) & set(row)
        for spec in SMALL.inputs:
            value = row.get(spec.name)
            parse = encode_text(value, MAX_TEXT) if spec.datatype == "BYTES" else None
            assert (parse or parse_number(value, MISSING))[1] is None
    check_batch(batch, rows, SMALL)


# ---- valid rows always convert ----------------------------------------------------------------

valid_numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f" {x!r} "),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from([None, "", "nan", "NaN", "NA", "null", "None", "n/a", " nan "]),
)
valid_texts = st.one_of(
    st.none(),
    st.text(max_size=MAX_TEXT),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(["wed", "thurday", "$296.43 ", "($506.82)", "0.01%", "Dev", "euorpe", "},{"]),
)


valid_fp32 = st.one_of(
    st.floats(min_value=-FP32_MAX, max_value=FP32_MAX),
    st.floats(min_value=-FP32_MAX, max_value=FP32_MAX).map(repr),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([None, "", "nan", " NA "]),
)
VALID = {"FP64": valid_numbers, "FP32": valid_fp32, "BYTES": valid_texts}


def valid_row(schema: ModelSchema, *, full: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A row of valid values (all inputs, or a non-empty subset) plus extra keys."""
    values = {spec.name: VALID[spec.datatype] for spec in schema.inputs}
    if full:
        known = st.fixed_dictionaries(values)
    else:
        known = st.lists(
            st.sampled_from(list(values)), min_size=1, max_size=10, unique=True
        ).flatmap(lambda keys: st.fixed_dictionaries({key: values[key] for key in keys}))
    extra = st.dictionaries(extra_keys, plain_values, max_size=3)
    return st.builds(lambda k, e: {**e, **k}, known, extra)


@bounded(150)
@given(
    st.booleans().flatmap(
        lambda full: st.lists(valid_row(SMALL, full=full), min_size=1, max_size=MANY)
    ),
    st.integers(0, 2),
)
def test_valid_rows_always_convert_with_one_element_per_row(
    rows: list[dict[str, Any]], style: int
) -> None:
    rows = parse_body(dumps(rows, style))  # through the real decoder
    batch = convert(rows, SMALL)
    check_batch(batch, rows, SMALL)
    # Extra keys change nothing.
    names = {spec.name for spec in SMALL.inputs}
    bare = [{k: v for k, v in row.items() if k in names} for row in rows]
    again = convert(bare, SMALL)
    for got, want in zip(batch.columns, again.columns, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@bounded(40)
@given(st.booleans().flatmap(lambda full: st.lists(valid_row(REAL, full=full), max_size=3)))
def test_valid_rows_of_the_real_schema_convert(rows: list[dict[str, Any]]) -> None:
    rows = rows or [dict.fromkeys(COLUMNS)]  # every input null: scored as all missing
    check_batch(convert(parse_body(orjson.dumps(rows)), REAL), rows, REAL)


# ---- large bodies: the byte-level split keeps exactly the rows ---------------------------------


@bounded(300)
@given(
    st.one_of(
        st.lists(any_row(SMALL), min_size=1, max_size=MANY),
        st.lists(valid_row(SMALL, full=True), min_size=1, max_size=MANY),
        any_row(REAL),
        st.lists(valid_row(REAL, full=True), min_size=1, max_size=3),
    ),
    st.integers(0, 2),
)
def test_the_typed_decode_declines_or_equals_the_value_by_value_path(body: Any, style: int) -> None:
    try:
        raw = dumps(body, style)
    except (TypeError, orjson.JSONEncodeError):
        raw = dumps(body, 0)
    for candidate in (SMALL, REAL):
        typed = decoder_for(candidate).batch(raw, MAX_TEXT)
        if typed is None:
            continue
        slow = convert(parse_body(raw), candidate)  # must not raise: the body was regular
        assert typed.n_rows == slow.n_rows
        for got, expected in zip(typed.columns, slow.columns, strict=True):
            if isinstance(expected, np.ndarray):
                np.testing.assert_array_equal(got, expected)
            else:
                assert got == expected


def test_numbers_near_the_float64_limits() -> None:
    # Pinned examples of the boundaries the strategies above reach at random.
    rows = parse_body(b'[{"x0": 1.7976931348623157e308, "x2": 5e-324, "x3": 18446744073709551615}]')
    batch = convert(rows, SMALL)
    assert batch.columns[0][0] == 1.7976931348623157e308
    assert batch.columns[2][0] == 5e-324
    assert batch.columns[3][0] == float(2**64 - 1)
    for literal in (b"1e309", b"-1e400", b"1" + b"0" * 400):
        error = None
        try:
            parse_body(b'{"x0": ' + literal + b"}")
        except ApiError as caught:
            error = caught
        assert error is not None
        assert error.status == 400
        assert error.message.startswith("malformed JSON")


@pytest.mark.parametrize("n_rows", [1, MANY])  # row-major and column-wise paths
def test_a_value_beyond_float32_is_refused_for_an_fp32_input(n_rows: int) -> None:
    rows = [{"x0": 1.0, "x1": "wed", "x2": 1.0, "x3": 1.0, "x12": "a"} for _ in range(n_rows)]
    rows[-1]["x2"] = 1e300
    error = None
    try:
        batch = convert(rows, SMALL)
    except ApiError as caught:
        error = caught
    else:  # what goes on the wire today
        raw = pb.ModelInferRequest.FromString(encode_request(SMALL, batch.columns, 0, n_rows))
        wire = np.frombuffer(raw.raw_input_contents[2], "<f4")
        assert np.isfinite(wire).all(), "an FP32 input sent as inf"
    assert error is not None
    check_contract_error(error, n_rows, SMALL)
    assert error.details[0]["field"] == "x2"
    assert error.details[0]["row"] == n_rows - 1
    assert error.details[0]["reason"] == FP32_RANGE


# ---- OIP REST infer bodies (gateway.oip_rest): tensors or the documented 400/413 -----------

OIP_MAX_ROWS = 30
OIP_CONFIG = Config(max_rows=OIP_MAX_ROWS, max_text_chars=MAX_TEXT, max_error_details=MAX_ERRORS)
shapes = st.one_of(
    st.integers(0, MANY).map(lambda n: [n]),
    st.integers(0, MANY).map(lambda n: [n, 1]),
    st.lists(st.integers(-2, 2**65), max_size=3),  # negative, huge, empty, 3-D
)
datatypes = st.sampled_from(["FP64", "FP32", "INT64", "INT32", "BYTES", "BOOL", "fp64", ""])
any_tensor = st.fixed_dictionaries(
    {"name": st.sampled_from([s.name for s in SMALL.inputs] + ["zz"])},
    optional={
        "datatype": st.one_of(datatypes, json_values),
        "shape": st.one_of(shapes, json_values),
        "data": st.one_of(st.lists(json_values, max_size=MANY), json_values),
        "parameters": st.one_of(
            st.fixed_dictionaries({"binary_data_size": st.integers(-1, 64)}), json_values
        ),
    },
)
any_document = st.one_of(
    st.fixed_dictionaries(
        {"inputs": st.lists(any_tensor, max_size=6)},
        optional={
            "outputs": st.lists(st.fixed_dictionaries({"name": json_values}), max_size=3),
            "id": json_values,
        },
    ),
    json_values,
)


def oip_infer(raw: bytes, header: str | None, schema: ModelSchema) -> tuple[Any, Batch] | None:
    """Parse and convert an infer body; an ApiError must be the documented 400/413."""
    try:
        infer = parse_infer(raw, header)
        return infer, infer.batch(schema, OIP_CONFIG)
    except ApiError as error:
        assert error.status in (400, 413), error.message  # noqa: PT017 - the outcome under test
        body = orjson.loads(error.body())
        assert set(body) == {"error", "details"}
        assert body["error"]
        for item in body["details"]:
            assert set(item) == {"row", "field", "value", "reason"}
        return None


@bounded(400)
@given(any_document, st.integers(0, 2))
def test_any_infer_document_becomes_tensors_or_the_documented_error(
    document: Any, style: int
) -> None:
    try:
        raw = dumps(document, style)
    except (TypeError, orjson.JSONEncodeError):
        raw = dumps(document, 0)
    outcome = oip_infer(raw, None, SMALL)
    if outcome is not None:
        infer, batch = outcome
        assert 0 < batch.n_rows <= OIP_MAX_ROWS
        assert all(len(column) == batch.n_rows for column in batch.columns)
        assert set(infer.inputs) == {spec.name for spec in SMALL.inputs}


@bounded(200)
@given(st.binary(max_size=300), st.one_of(st.none(), st.integers(-5, 400).map(str), st.text()))
def test_arbitrary_bytes_and_header_lengths_are_400_or_tensors(raw: bytes, header: Any) -> None:
    oip_infer(raw, header, SMALL)


@bounded(150)
@given(st.lists(any_row(SMALL), min_size=1, max_size=MANY), st.booleans())
def test_infer_tensors_convert_exactly_as_the_same_rows_on_predict(
    rows: list[dict[str, Any]], binary_numbers: bool
) -> None:
    """The OIP route and /predict give the same batch, or the same 400, for the same values."""
    try:
        rows = orjson.loads(json.dumps(rows))
    except orjson.JSONDecodeError:
        return
    # A row holding no input is a /predict-only refusal (a tensor always holds every row).
    names = [spec.name for spec in SMALL.inputs]
    rows = [row if any(n in row for n in names) else {**row, "x0": None} for row in rows]
    n = len(rows)
    tensors, tail = [], b""
    for spec in SMALL.inputs:
        values = [row.get(spec.name) for row in rows]
        tensor: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype, "shape": [n]}
        numbers = [parse_number(v, MISSING) for v in values]
        if binary_numbers and spec.datatype != "BYTES" and all(r is None for _, r in numbers):
            packed = np.array([x for x, _ in numbers], "<f8").tobytes()
            tensor |= {"datatype": "FP64", "parameters": {"binary_data_size": len(packed)}}
            tail += packed
        else:
            tensor["data"] = values
        tensors.append(tensor)
    header = orjson.dumps({"inputs": tensors})
    try:
        expected = convert(rows, SMALL)
    except ApiError as error:
        expected_error = error
        expected = None
    outcome = oip_infer(header + tail, str(len(header)) if tail else None, SMALL)
    if expected is None:
        assert outcome is None
        assert expected_error.status == 400
        return
    assert outcome is not None
    _, batch = outcome
    assert batch.n_rows == expected.n_rows
    for got, want in zip(batch.columns, expected.columns, strict=True):
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got, want)
        else:
            assert got == want


# ---- bytes spliced into a valid body: the whole path the app runs (issue 17) ------------------


@bounded(300)
@given(
    st.lists(valid_row(SMALL, full=True), min_size=1, max_size=4),
    st.one_of(st.binary(min_size=1, max_size=6), st.sampled_from([b"\xeb", b"\xed\xa0\x80"])),
    st.integers(0, 10**6),
)
def test_bytes_spliced_anywhere_into_a_valid_body_never_raise_anything_but_a_400(
    rows: list[dict[str, Any]], raw: bytes, where: int
) -> None:
    body = orjson.dumps(rows)
    at = where % (len(body) + 1)
    body = body[:at] + raw + body[at:]
    for schema in (SMALL, REAL):  # the typed decode declines or converts, never raises
        typed = decoder_for(schema).batch(body, MAX_TEXT)
        assert typed is None or typed.n_rows >= 1
    try:
        convert(parse_body(body, MAX_ERRORS), SMALL)
    except ApiError as error:
        assert error.status == 400, error.message  # noqa: PT017 - the error is the outcome
        answer = orjson.loads(error.body())  # serialisable: no lone surrogate
        assert set(answer) == {"error", "details"}
        assert len(answer["details"]) <= MAX_ERRORS
        assert all(set(item) == {"row", "field", "value", "reason"} for item in answer["details"])
