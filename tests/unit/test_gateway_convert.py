"""JSON bodies -> input columns: the typed decode, the value-by-value path, every error
class, and their agreement."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest

from gateway.convert import (
    encode_text,
    parse_body,
    rows_to_batch,
    text_column,
)
from gateway.decode import RowDecoder
from gateway.errors import ApiError
from modeling.cleaning import MISSING_TEXT as MISSING  # what the server publishes
from modeling.schema import COLUMNS, NUMERIC_COLUMNS
from proto.codec import TensorSpec

SPECS = [
    TensorSpec("x0", "FP64"),
    TensorSpec("x1", "BYTES"),
    TensorSpec("x2", "FP64"),
    TensorSpec("x3", "FP64"),
]
EXERCISE_ROW = {
    "x0": "9.521496806",
    "x1": "wed",
    "x2": "-5.087588682",
    "x3": "-17.21471427",
}


def convert(rows: list[object], **kwargs: int):  # type: ignore[no-untyped-def]
    return rows_to_batch(rows, SPECS, missing=MISSING, **kwargs)


def error_of(rows: list[object], **kwargs: int) -> ApiError:
    with pytest.raises(ApiError) as caught:
        convert(rows, **kwargs)
    assert caught.value.status == 400
    return caught.value


# ---- parse_body ---------------------------------------------------------------------------


def test_object_is_one_row_and_array_is_kept() -> None:
    assert parse_body(b'{"x0": "1"}') == [{"x0": "1"}]
    assert parse_body(b'[{"x0": 1}, {"x0": 2}]') == [{"x0": 1}, {"x0": 2}]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"x0": "1"', "malformed JSON"),  # truncated
        (b"{x0: 1}", "malformed JSON"),
        (b"\xff\xfe{}", "malformed JSON"),  # not UTF-8
        (b'{"x0": NaN}', "malformed JSON"),
        (b'{"x0": Infinity}', "malformed JSON"),
        (b'{"x0": 1e400}', "malformed JSON"),
        (b"", "malformed JSON"),
        (b"3", "got a number"),
        (b'"row"', "got a string"),
        (b"null", "got null"),
        (b"true", "got a boolean"),
        (b"[]", "empty array"),
    ],
)
def test_bad_bodies_are_400(body: bytes, fragment: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_body(body)
    assert caught.value.status == 400
    assert fragment in caught.value.message


def test_duplicate_keys_keep_the_last_value() -> None:
    assert parse_body(b'{"x0": "1", "x0": "2"}') == [{"x0": "2"}]


# ---- numbers ------------------------------------------------------------------------------


def test_exercise_strings_convert_exactly() -> None:
    batch = convert([EXERCISE_ROW, {**EXERCISE_ROW, "x0": "105.79463270000001"}])
    assert batch.n_rows == 2
    x0, x1, _x2, x3 = batch.columns
    assert isinstance(x0, np.ndarray)
    assert x0.tolist() == [9.521496806, 105.79463270000001]
    assert x1 == [b"wed", b"wed"]
    assert x3.tolist() == [-17.21471427, -17.21471427]  # type: ignore[union-attr]


@pytest.mark.parametrize("missing", [None, "", "nan", "NaN", " NA ", "null", "None", "n/a"])
def test_every_spelling_of_missing_is_nan(missing: object) -> None:
    rows = [{**EXERCISE_ROW, "x2": missing}, EXERCISE_ROW]
    x2 = convert(rows).columns[2]
    assert math.isnan(x2[0])  # type: ignore[arg-type]
    assert x2[1] == -5.087588682


def test_absent_key_is_missing_and_extra_keys_are_ignored() -> None:
    row = {"x0": "1.5", "x1": "fri", "unknown": [1, 2], "y": "whatever"}
    x0, x1, x2, x3 = convert([row]).columns
    assert x0.tolist() == [1.5]  # type: ignore[union-attr]
    assert x1 == [b"fri"]
    assert math.isnan(x2[0])
    assert math.isnan(x3[0])


def test_numbers_and_numeric_strings_mix() -> None:
    rows = [
        {"x0": 1, "x2": 2.5, "x3": "3"},
        {"x0": " 4.5 ", "x2": None, "x3": -7},
        {"x0": "1e-3", "x2": "-0.0", "x3": 12345678901234567890},
    ]
    x0, _, x2, x3 = convert(rows).columns
    assert x0.tolist() == [1.0, 4.5, 0.001]  # type: ignore[union-attr]
    assert x2[0] == 2.5
    assert math.isnan(x2[1])
    assert x2[2] == 0.0
    assert x3.tolist() == [3.0, -7.0, 1.2345678901234567e19]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "not a number"),
        ("1,5", "not a number"),
        ("$12", "not a number"),
        ("1e400", "out of range"),
        ("-1e400", "out of range"),
        ("inf", "out of range"),
        ("Infinity", "out of range"),
        (True, "got a boolean"),
        (False, "got a boolean"),
        ([1], "got an array"),
        ({"a": 1}, "got an object"),
    ],
)
def test_bad_numeric_values_name_row_field_value_and_reason(value: object, reason: str) -> None:
    error = error_of([EXERCISE_ROW, {**EXERCISE_ROW, "x2": value}])
    assert error.message == "1 invalid value"
    [item] = error.details
    assert item["row"] == 1
    assert item["field"] == "x2"
    assert reason in item["reason"]
    expected = value if isinstance(value, str | bool) else json.dumps(value, separators=(",", ":"))
    assert item["value"] == expected


def test_a_column_of_one_element_arrays_is_not_flattened() -> None:
    error = error_of([{**EXERCISE_ROW, "x0": [1.0]}, {**EXERCISE_ROW, "x0": [2.0]}])
    assert [(d["row"], d["field"]) for d in error.details] == [(0, "x0"), (1, "x0")]


def test_every_bad_value_is_reported_in_row_then_input_order() -> None:
    rows = [
        {**EXERCISE_ROW, "x3": "bad", "x0": "bad"},
        EXERCISE_ROW,
        {**EXERCISE_ROW, "x2": "bad", "x1": True},
    ]
    error = error_of(rows)
    assert error.message == "4 invalid values"
    assert [(d["row"], d["field"]) for d in error.details] == [
        (0, "x0"),
        (0, "x3"),
        (2, "x1"),
        (2, "x2"),
    ]


def test_error_details_are_capped_but_counted() -> None:
    rows = [{**EXERCISE_ROW, "x0": "bad", "x2": "bad"} for _ in range(30)]
    error = error_of(rows, max_errors=5)
    assert error.count == 60
    assert error.message == "60 invalid values (first 5 listed)"
    assert [(d["row"], d["field"]) for d in error.details] == [
        (0, "x0"),
        (0, "x2"),
        (1, "x0"),
        (1, "x2"),
        (2, "x0"),
    ]


def test_long_values_are_shortened_in_errors() -> None:
    error = error_of([{**EXERCISE_ROW, "x0": "9" * 5000 + "x"}])
    assert error.details[0]["value"].endswith("... (5001 chars)")
    assert len(error.details[0]["value"]) < 120


# ---- rows ---------------------------------------------------------------------------------


def test_non_object_rows_are_all_listed() -> None:
    error = error_of([EXERCISE_ROW, [1, 2], "row", None, 7])
    assert error.message == "4 invalid rows"
    assert [d["row"] for d in error.details] == [1, 2, 3, 4]
    assert error.details[0]["field"] is None
    assert "got an array" in error.details[0]["reason"]
    assert "got null" in error.details[2]["reason"]


def test_rows_without_any_input_are_rejected() -> None:
    error = error_of([EXERCISE_ROW, {}, {"y": 1}])
    assert [d["row"] for d in error.details] == [1, 2]
    assert "none of the model's inputs" in error.details[0]["reason"]


def test_a_row_with_every_input_null_is_scored_as_missing() -> None:
    batch = convert([dict.fromkeys(EXERCISE_ROW)])
    assert math.isnan(batch.columns[0][0])  # type: ignore[arg-type]
    assert batch.columns[1] == [b""]


# ---- text ---------------------------------------------------------------------------------


def test_text_values() -> None:
    rows = [
        {**EXERCISE_ROW, "x1": "$1,296.43 "},
        {**EXERCISE_ROW, "x1": None},
        {**EXERCISE_ROW, "x1": 5},
        {**EXERCISE_ROW, "x1": 0.01},
        {**EXERCISE_ROW, "x1": "Mercedes\u2013Benz \u00fc"},
    ]
    assert convert(rows).columns[1] == [
        b"$1,296.43 ",
        b"",
        b"5",
        b"0.01",
        "Mercedes\u2013Benz \u00fc".encode(),
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "got a boolean"),
        (["wed"], "got an array"),
        ({"day": "wed"}, "got an object"),
        ("w" * 1025, "longer than 1024"),
        ("\ud800", "not valid Unicode"),
    ],
)
def test_bad_text_values(value: object, reason: str) -> None:
    error = error_of([{**EXERCISE_ROW, "x1": value}])
    assert error.details[0]["field"] == "x1"
    assert reason in error.details[0]["reason"]


def test_text_limit_is_configurable() -> None:
    assert convert([{**EXERCISE_ROW, "x1": "w" * 20}], max_text_chars=20).columns[1] == [b"w" * 20]
    error_of([{**EXERCISE_ROW, "x1": "w" * 21}], max_text_chars=20)


def test_encode_text_of_non_finite_number() -> None:
    assert encode_text(math.nan, 10) == (b"nan", None)


def test_text_column_fast_path_keeps_order() -> None:
    errors: list[tuple[int, dict[str, object]]] = []
    assert text_column(("a", "bb", ""), "x1", errors, 10) == [b"a", b"bb", b""]
    assert errors == []


def test_a_single_input_model() -> None:
    batch = rows_to_batch([{"x0": "2"}], [TensorSpec("x0", "FP64")])
    assert batch.columns[0].tolist() == [2.0]  # type: ignore[union-attr]


def test_ten_thousand_string_rows_convert_and_match() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(10_000, 3)) * 100
    rows = [
        {"x0": str(a), "x1": "thur", "x2": "" if i % 7 == 0 else str(b), "x3": str(c)}
        for i, (a, b, c) in enumerate(values.tolist())
    ]
    batch = convert(orjson.loads(orjson.dumps(rows)))
    assert np.array_equal(batch.columns[0], values[:, 0])
    expected_x2 = np.where(np.arange(10_000) % 7 == 0, np.nan, values[:, 1])
    assert np.array_equal(batch.columns[2], expected_x2, equal_nan=True)


def test_one_row_and_many_rows_agree() -> None:
    values = ["1.5", "", "nan", None, 2, -3.25, " 7 ", "1e-3", "NA", "0"]
    rows = [
        {"x0": values[i % 10], "x1": ["a", None, 5][i % 3], "x2": values[(i + 3) % 10], "x3": "4"}
        for i in range(40)
    ]
    whole = convert(rows)  # 40 rows
    for index, row in enumerate(rows):
        one = convert([row])
        for got, expected in zip(one.columns, whole.columns, strict=True):
            if isinstance(expected, np.ndarray):
                assert np.array_equal(got, expected[index : index + 1], equal_nan=True)
            else:
                assert got == expected[index : index + 1]


def test_rows_of_exercise_strings_convert_in_row_order() -> None:
    rows = [{**EXERCISE_ROW, "x2": str(i), "x0": "" if i == 0 else "1"} for i in range(5)]
    x0, _, x2, _ = convert(rows).columns
    assert x2.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # type: ignore[union-attr]
    assert math.isnan(x0[0])  # type: ignore[arg-type]


# ---- the typed decode agrees with the value-by-value path, or declines ----------------------

DECODER = RowDecoder(SPECS, MISSING)


def same_batch(body: bytes) -> None:
    """The typed decode of ``body`` equals what the value-by-value path makes of it."""
    typed = DECODER.batch(body, 1024)
    assert typed is not None, body[:200]
    slow = rows_to_batch(parse_body(body), SPECS, missing=MISSING)
    assert typed.n_rows == slow.n_rows
    for got, expected in zip(typed.columns, slow.columns, strict=True):
        if isinstance(expected, np.ndarray):
            assert np.array_equal(got, expected, equal_nan=True)
        else:
            assert got == expected


@pytest.mark.parametrize("dumps", [orjson.dumps, lambda rows: json.dumps(rows).encode()])
def test_the_typed_decode_matches_the_value_by_value_path(dumps: Callable[[object], bytes]) -> None:
    missing = ["", None, "nan", "NaN"]
    rows = [
        {**EXERCISE_ROW, "x0": str(i / 7), "x1": missing[i % 4] if i % 3 else "thu", "x2": i}
        | ({"x3": missing[i % 4]} if i % 5 == 0 else {})
        | ({"extra": [1, {"a": "b"}], "x99": "?"} if i % 11 == 0 else {})  # skipped
        for i in range(300)
    ]
    same_batch(dumps(rows))
    same_batch(dumps(rows[1]))  # one object is one row
    same_batch(b'  [{"x0": "1e-400", "x1": "a", "x2": -0.0, "x3": 18446744073709551616}]\n')
    same_batch(b'[{"x0": "1", "x1": "a\\"\\"", "x2": "2", "x3": "3"}]')  # quotes in a text
    same_batch(b'[{"x0": "1", "x1": "a", "x2": "2"}, {"x3": 4}]')  # absent keys are missing


def test_the_readmes_curl_row_takes_the_typed_decode() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    body = re.search(r"--url http://localhost:5001/predict .*?--data '(.*?)'", readme, re.S)
    assert body is not None
    specs = [TensorSpec(c, "FP64" if c in NUMERIC_COLUMNS else "BYTES") for c in COLUMNS]
    batch = RowDecoder(specs, MISSING).batch(body.group(1).encode(), 1024)
    assert batch is not None
    assert batch.columns[0].tolist() == [9.521496806]  # type: ignore[union-attr]
    assert batch.columns[1] == [b"wed"]
    assert math.isnan(batch.columns[2][0])  # type: ignore[arg-type]  # absent: missing


@pytest.mark.parametrize(
    "body",
    [
        b'[{"x0": "1", "x1": "a", "x2": "2", "x3": "3"}, {"x9": 1}]',  # a row without inputs
        b'[{"x0": "1", "x1": "a", "x2": "2", "x3": "3", "note": "Citro\xebn"}]',  # not UTF-8
        b'[{"x0": null, "x1": "", "x2": "nan"}]',  # no value at all: named, or taken, there
        b'[{"x0": " 1", "x1": "a", "x2": "2", "x3": "3"}]',  # a spelling it does not parse
        b'[{"x0": "inf", "x1": "a", "x2": "2", "x3": "3"}]',  # infinite
        b'[{"x0": true, "x1": "a", "x2": "2", "x3": "3"}]',  # another type
        b'[{"x0": "1", "x1": 5, "x2": "2", "x3": "3"}]',  # a number as text
        b'[{"x0": "1", "x1": "' + b"a" * 1025 + b'", "x2": "2", "x3": "3"}]',  # too long
        b'[{"x0": "1", "x1": "\\ud800", "x2": "2", "x3": "3"}]',  # not Unicode
        b'[{"x0": "", "x1": "a\\"", "x2": "2", "x3": "3"}]',  # "" kept by an escaped quote
        b'[{"x0": "1", "x1": "a", "x2": "2", "x3": "3", "": 1}]',  # an empty key
        b"[]",
        b"[1]",
        b"{",
    ],
)
def test_the_typed_decode_declines_what_it_cannot_take_exactly(body: bytes) -> None:
    assert DECODER.batch(body, 1024) is None


def test_fp32_inputs_beyond_float32_are_named() -> None:
    specs = [TensorSpec("x0", "FP32"), TensorSpec("x1", "BYTES")]
    rows = [{"x0": 1.0, "x1": "a"}, {"x0": -1e300, "x1": "a"}, {"x0": "3e38", "x1": "a"}]
    assert RowDecoder(specs, MISSING).batch(orjson.dumps(rows), 1024) is None
    with pytest.raises(ApiError) as refused:
        rows_to_batch(rows, specs)
    assert [(d["row"], d["reason"]) for d in refused.value.details] == [
        (1, "number out of range for float32")
    ]


def test_missing_texts_are_the_servers() -> None:
    only_empty = frozenset({""})
    with pytest.raises(ApiError):
        rows_to_batch([{"x0": "NA"}], SPECS[:1], missing=only_empty)
    assert math.isnan(rows_to_batch([{"x0": "NA"}], SPECS[:1], missing=MISSING).columns[0][0])
    body = b'[{"x0": "", "x1": "a", "x2": "1", "x3": "2"}]'
    assert RowDecoder(SPECS, frozenset({"nan"})).batch(body, 1024) is None  # "" not missing
    assert RowDecoder(SPECS, MISSING).batch(body, 1024) is not None
