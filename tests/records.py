"""Rows as dictionaries, the way tests write them, cleaned as serving cleans columns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modeling.cleaning import CleanBatch, clean
from modeling.schema import COLUMNS


def clean_records(records: Sequence[Mapping[str, Any]]) -> CleanBatch:
    """Clean row dictionaries as parsed JSON objects come (absent keys are missing)."""
    columns = {c: [record.get(c) for record in records] for c in COLUMNS}
    return clean(columns, len(records))
