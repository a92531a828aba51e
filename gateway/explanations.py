"""The ``/explain`` answer: each row's logit and its largest contributions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gateway.contract import Contribution, Explanation
from gateway.errors import ApiError
from proto.codec import BASE_LOGIT, CLASS, CONTRIBUTIONS, LOGIT, PROBABILITY

ALL = "all"
"""``top=all``: every contribution, the zeros of columns the model does not read included."""


def parse_top(value: str | None, default: int) -> int | None:
    """The number of contributions to list per row (``None``: all of them).

    Raises:
        ApiError: 400 when ``value`` is neither a positive integer nor ``all``.

    """
    if value is None:
        return default
    if value.strip().lower() == ALL:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise ApiError(400, f"query parameter top must be a positive integer or {ALL!r}")
    return int(text)


def explanation_rows(
    outputs: Mapping[str, NDArray[Any]],
    names: tuple[str, ...],
    groups: Mapping[str, tuple[str, ...]],
    top: int | None,
) -> list[Explanation]:
    """One explanation per row, contributions largest (in magnitude) first.

    ``base_logit + sum(listed contributions) + other == logit``: ``other`` is the sum of
    the contributions left out by ``top``. A group (a feature read from several input
    columns together) carries its ``columns``.
    """
    values = outputs[CONTRIBUTIONS]
    ranked = np.argsort(-np.abs(values), axis=1, kind="stable")
    order, rest = ranked[:, :top], ranked[:, top:] if top is not None else ranked[:, :0]
    listed = np.take_along_axis(values, order, axis=1)
    other = np.take_along_axis(values, rest, axis=1).sum(axis=1)
    members = {i: list(groups[name]) for i, name in enumerate(names) if name in groups}
    rows = []
    for r, (indices, amounts) in enumerate(zip(order.tolist(), listed.tolist(), strict=True)):
        contributions = [
            Contribution(names[index], amount)
            if index not in members
            else Contribution(names[index], amount, members[index])
            for index, amount in zip(indices, amounts, strict=True)
        ]
        rows.append(
            Explanation(
                int(outputs[CLASS][r]),  # type: ignore[arg-type]  # the model's 0 or 1
                float(outputs[PROBABILITY][r]),
                float(outputs[LOGIT][r]),
                float(outputs[BASE_LOGIT][r]),
                contributions,
                float(other[r]),
            )
        )
    return rows
