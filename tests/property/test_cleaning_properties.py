"""Property-based tests: no raw value, however odd, makes cleaning raise."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from modeling.cleaning import MAX_ABS_VALUE, clean, normalise_category
from modeling.schema import COLUMNS, VOCABULARIES
from tests.records import clean_records

raw_values = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.sampled_from(["", "nan", "NaN", " ", "$1,234.56 ", "($5.00)", "-0.01%", "Dev", "THU"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(COLUMNS), raw_values, max_size=12), max_size=6))
def test_cleaning_never_raises_and_accounts_for_every_value(records):
    batch = clean_records(records)
    assert batch.matrix.shape == (len(records), 100)
    assert not np.isinf(batch.matrix).any()
    for j, column in enumerate(COLUMNS):
        nan_count = int(np.isnan(batch.matrix[:, j]).sum())
        # every NaN is either a missing value or an unrecognised one, never silent
        assert nan_count == batch.missing[column] + batch.unrecognised[column]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(VOCABULARIES)), st.text(max_size=40))
def test_normalised_categories_are_canonical_or_none(column, text):
    result = normalise_category(column, text)
    assert result is None or result in VOCABULARIES[column]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=50))
def test_float_columns_keep_values_within_float32_range_exactly(values):
    batch = clean({"x0": np.array(values, dtype=np.float64)}, len(values))
    for given_value, cleaned in zip(values, batch.matrix[:, 0], strict=True):
        if abs(given_value) <= MAX_ABS_VALUE:
            assert cleaned == given_value
        else:  # NaN, inf, or beyond what the learners can score: unrecognised
            assert math.isnan(cleaned)
