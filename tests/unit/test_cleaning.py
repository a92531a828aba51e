import math

import numpy as np
import pytest

from modeling.cleaning import clean, normalise_category, parse_money, parse_percent
from modeling.schema import COLUMNS, VOCABULARIES
from tests.records import clean_records


@pytest.mark.parametrize(
    ("column", "raw", "expected"),
    [
        ("x1", "wed", "wednesday"),
        ("x1", "thurday", "thursday"),
        ("x1", "thur", "thursday"),
        ("x1", "Thursday", "thursday"),
        ("x1", "THU", "thursday"),
        ("x1", " fri ", "friday"),
        ("x1", "tues", "tuesday"),
        ("x54", "Dev", "december"),
        ("x54", "Dec", "december"),
        ("x54", "sept.", "september"),
        ("x54", "Sept", "september"),
        ("x54", "July", "july"),
        ("x54", "January", "january"),
        ("x82", "euorpe", "europe"),
        ("x82", "America", "america"),
        ("x84", "volkswagon", "volkswagen"),
        ("x84", "Volkswagen", "volkswagen"),
        ("x84", "chrystler", "chrysler"),
        ("x84", "mercades", "mercedes"),
        ("x84", "Mercedes-Benz", "mercedes"),
        ("x84", "VW", "volkswagen"),
    ],
)
def test_normalise_category_recognises_known_and_unseen_spellings(column, raw, expected):
    assert normalise_category(column, raw) == expected


@pytest.mark.parametrize(("column", "raw"), [("x1", "blursday"), ("x54", "ju"), ("x84", "lada")])
def test_normalise_category_returns_none_for_the_unrecognisable(column, raw):
    assert normalise_category(column, raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$296.43 ", 296.43),
        ("($506.82)", -506.82),
        ("$1,234.56 ", 1234.56),
        ("($1,170.58)", -1170.58),
    ],
)
def test_parse_money(raw, expected):
    assert parse_money(raw) == pytest.approx(expected)


def test_parse_percent():
    assert parse_percent("-0.02%") == pytest.approx(-0.02)
    assert parse_percent("0.01%") == pytest.approx(0.01)


def _row(**values):
    return {c: values.get(c, "1.5") for c in COLUMNS} | {
        "x1": values.get("x1", "wed"),
        "x12": values.get("x12", "$1.00 "),
        "x54": values.get("x54", "Jun"),
        "x79": values.get("x79", "0.01%"),
        "x82": values.get("x82", "asia"),
        "x84": values.get("x84", "Toyota"),
    }


def test_clean_records_types_every_column():
    batch = clean_records([_row(x0="105.79463270000001", x12="($506.82)")])
    row = batch.matrix[0]
    assert batch.matrix.shape == (1, 100)
    assert row[0] == pytest.approx(105.7946327)
    assert row[12] == pytest.approx(-506.82)
    assert row[79] == pytest.approx(0.01)
    assert row[1] == VOCABULARIES["x1"].index("wednesday")
    assert row[84] == VOCABULARIES["x84"].index("toyota")
    assert sum(batch.missing.values()) == 0
    assert sum(batch.unrecognised.values()) == 0


@pytest.mark.parametrize("missing", [None, "", "nan", "NaN", " ", float("nan"), b""])
def test_every_spelling_of_missing_is_nan_and_counted(missing):
    batch = clean_records([_row(x3=missing, x1=missing, x12=missing)])
    assert math.isnan(batch.matrix[0, 3])
    assert math.isnan(batch.matrix[0, 1])
    assert math.isnan(batch.matrix[0, 12])
    assert batch.missing["x3"] == batch.missing["x1"] == batch.missing["x12"] == 1
    assert batch.unrecognised["x3"] == 0


def test_absent_keys_are_missing():
    batch = clean_records([{"x0": "2"}])
    assert batch.matrix[0, 0] == 2.0
    assert np.isnan(batch.matrix[0, 1:]).all()
    assert batch.missing["x99"] == 1


def test_unreadable_values_become_nan_and_are_counted_not_raised():
    batch = clean_records([_row(x3="abc", x1="blursday", x12="$$$", x79="%", x5="1e400")])
    assert np.isnan(batch.matrix[0, [1, 3, 5, 12, 79]]).all()
    assert {c: batch.unrecognised[c] for c in ("x1", "x3", "x5", "x12", "x79")} == dict.fromkeys(
        ("x1", "x3", "x5", "x12", "x79"), 1
    )


def test_float_columns_take_the_fast_path_and_infinities_are_unrecognised():
    columns = {"x0": np.array([1.0, np.nan, np.inf]), "x2": np.array([1, 2, 3])}
    batch = clean(columns, 3)
    assert batch.matrix[:, 0].tolist()[0] == 1.0
    assert np.isnan(batch.matrix[1:, 0]).all()
    assert batch.missing["x0"] == 1
    assert batch.unrecognised["x0"] == 1
    assert batch.matrix[:, 2].tolist() == [1.0, 2.0, 3.0]


def test_bytes_text_columns_match_str_columns():
    as_text = clean({"x1": ["wed", "Dev"], "x12": ["$1.00 ", "($2.00)"]}, 2)
    as_bytes = clean({"x1": [b"wed", b"Dev"], "x12": [b"$1.00 ", b"($2.00)"]}, 2)
    np.testing.assert_array_equal(as_text.matrix[:, [1, 12]], as_bytes.matrix[:, [1, 12]])


def test_numeric_strings_with_blanks_parse_column_wise():
    batch = clean({"x0": np.array(["1.5", "", "-2"])}, 3)
    assert batch.matrix[0, 0] == 1.5
    assert np.isnan(batch.matrix[1, 0])
    assert batch.matrix[2, 0] == -2.0
    assert batch.missing["x0"] == 1


def test_a_column_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="x0 has 2 values, expected 3"):
        clean({"x0": [1.0, 2.0]}, 3)


def test_non_ascii_bytes_beside_text_are_unrecognised_not_an_error():
    # found by hypothesis: numpy could not build one array from [b"\x80", ""]
    batch = clean({"x37": [b"\x80", ""]}, 2)
    assert np.isnan(batch.matrix[:, 37]).all()
    assert batch.missing["x37"] == 1
    assert batch.unrecognised["x37"] == 1
