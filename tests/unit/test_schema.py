from modeling.schema import (
    CATEGORY_COLUMNS,
    CATEGORY_INDEX,
    COLUMNS,
    KINDS,
    NUMERIC_COLUMNS,
    TEXT_COLUMNS,
    Kind,
)


def test_schema_partitions_the_hundred_columns():
    assert len(COLUMNS) == 100
    assert len(NUMERIC_COLUMNS) == 94
    assert TEXT_COLUMNS == ("x1", "x12", "x54", "x79", "x82", "x84")
    assert set(NUMERIC_COLUMNS).isdisjoint(TEXT_COLUMNS)
    assert KINDS["x12"] is Kind.MONEY
    assert KINDS["x79"] is Kind.PERCENT
    assert CATEGORY_INDEX == tuple(COLUMNS.index(c) for c in CATEGORY_COLUMNS) == (1, 54, 82, 84)
