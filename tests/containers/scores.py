"""What the in-process predictor answers, to compare a served answer with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modeling.predictor import Predictor
from modeling.schema import COLUMNS


def expected_scores(bundle: Path, rows: list[dict[str, str]]) -> list[dict[str, float]]:
    """What the in-process predictor answers for ``rows`` (exercise-style strings)."""
    predictor = Predictor.from_bundle(bundle)
    columns = {c: [row.get(c, "") for row in rows] for c in COLUMNS}
    prediction = predictor.predict(columns, len(rows))
    return [
        {"class": int(c), "probability": float(p)}
        for c, p in zip(prediction.label, prediction.probability, strict=True)
    ]


def assert_same_scores(got: list[dict[str, float]], expected: list[dict[str, float]]) -> None:
    assert len(got) == len(expected)
    assert [g["class"] for g in got] == [e["class"] for e in expected]
    np.testing.assert_allclose(
        [g["probability"] for g in got], [e["probability"] for e in expected], rtol=1e-12
    )
