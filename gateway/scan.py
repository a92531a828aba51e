r"""Counts on a request body's bytes, made before it is decoded (no JSON object is built).

:func:`outside_strings` counts the ``{`` and ``,`` of a JSON body that are not inside
its strings: the exact number of objects, and of values less one, that the body holds.
Escapes are removed first (every ``\\``, then every ``\"``), so each remaining quote
opens or closes a string; numpy then tracks the quotes' parity a mebibyte at a time.
The count is exact for valid JSON; for an invalid body it is exact up to where a
parser stops reading it, so a decoder never builds more than it counts.
"""

from __future__ import annotations

import numpy as np

_CHUNK_BYTES = 1 << 20
_QUOTE, _BRACE, _COMMA = (ord(c) for c in '"{,')


def outside_strings(body: bytes) -> tuple[int, int]:
    """The ``{`` and the ``,`` bytes of ``body`` that lie outside its JSON strings."""
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    data = np.frombuffer(body, dtype=np.uint8)
    braces = commas = inside = 0
    for start in range(0, len(data), _CHUNK_BYTES):
        chunk = data[start : start + _CHUNK_BYTES]
        # 1 from an opening quote up to its closing one: inside a string
        parity = np.bitwise_xor.accumulate((chunk == _QUOTE).view(np.uint8)) ^ inside
        outside = parity == 0
        braces += int(np.count_nonzero((chunk == _BRACE) & outside))
        commas += int(np.count_nonzero((chunk == _COMMA) & outside))
        inside = int(parity[-1])
    return braces, commas
