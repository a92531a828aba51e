"""The gateway's error type and the JSON error body of the REST contract.

Every error answer is ``{"error": "...", "details": [...]}`` where each detail names
the offending ``row`` (0-based index in the request) and ``field`` when there is one,
the ``value`` received (shortened when long) and the ``reason``. :func:`error_body`
writes it, for the app, gunicorn's worker and nginx's pages alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from gateway.contract import Detail, Error, encode

_VALUE_PREVIEW_CHARS = 80
UNREADABLE_AS_BAD_REQUEST = frozenset({501, 505})
"""HTTP's statuses for a request the gateway cannot read (a transfer coding it does not
implement, another HTTP version), answered 400: the client's to fix, never counted among
the server's errors (5xx burn the error budget, see deploy/monitoring)."""


def preview(value: Any) -> Any:
    """Return ``value`` as it can be echoed in an error: scalars as-is, long text cut."""
    if isinstance(value, np.generic):  # a number of a binary tensor: a Python scalar for JSON
        value = value.item()
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value).decode()  # arrays and objects as JSON text
        except TypeError:
            if isinstance(value, list | dict):  # nested deeper than orjson writes: no recursion
                text = f"(an {'array' if isinstance(value, list) else 'object'} nested too deeply)"
            else:
                text = repr(value)
    if len(text) > _VALUE_PREVIEW_CHARS:
        return text[:_VALUE_PREVIEW_CHARS] + f"... ({len(text)} chars)"
    return text


def error_body(message: str, details: Sequence[Mapping[str, Any]] = ()) -> bytes:
    """The JSON body of every error answer; ``details`` are :func:`detail` entries."""
    return encode(Error(message, [Detail(**item) for item in details]))


def detail(row: int | None, field_name: str | None, value: Any, reason: str) -> dict[str, Any]:
    """One entry of an error's ``details`` list."""
    return {"row": row, "field": field_name, "value": preview(value), "reason": reason}


@dataclass
class ApiError(Exception):
    """An error answered to the client as a JSON body with an HTTP status.

    Attributes:
        status: HTTP status code.
        message: the ``error`` text.
        details: per-row/field entries (see :func:`detail`).
        headers: extra response headers (``Retry-After`` for 503).
        count: how many problems were found (``details`` may list fewer).

    """

    status: int
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    count: int = 0

    def __post_init__(self) -> None:
        """Make ``str(error)`` the message."""
        super().__init__(self.message)

    def body(self) -> bytes:
        """The JSON body of the error answer."""
        return error_body(self.message, self.details)


def bad_request(message: str, details: list[dict[str, Any]] | None = None) -> ApiError:
    """Build a 400 error."""
    return ApiError(400, message, details or [])


def invalid_input(kind: str, details: list[dict[str, Any]], count: int, cap: int) -> ApiError:
    """Build the 400 for ``count`` invalid rows or values (``kind``), listing ``cap`` of them."""
    shown = min(count, cap)
    message = f"{count} invalid {kind}{'s' if count != 1 else ''}"
    if count > shown:
        message += f" (first {shown} listed)"
    return ApiError(400, message, details[:cap], count=count)


def too_large(limit: int) -> ApiError:
    """Build the 413 for a request body over ``limit`` bytes."""
    return ApiError(413, f"request body larger than {limit} bytes")


def timed_out(message: str, retry_after_s: int) -> ApiError:
    """Build a 504 error with ``Retry-After``."""
    return ApiError(504, message, [], {"Retry-After": str(retry_after_s)})


def unavailable(message: str, retry_after_s: int) -> ApiError:
    """Build a 503 error with ``Retry-After``."""
    return ApiError(503, message, [], {"Retry-After": str(retry_after_s)})
