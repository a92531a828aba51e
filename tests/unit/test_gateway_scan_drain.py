"""The byte counts made before decoding (gateway.scan) and the body read after an answer
(gateway.drain)."""

from __future__ import annotations

import io
import json
import socket
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.drain import READ_TIMEOUT_S, read_to_the_end
from gateway.scan import outside_strings

TRICKY = st.text(alphabet='{},[]:"\\ aé\u2028\x00', max_size=12)
"""Strings full of what the counts must skip: braces, commas, quotes and backslashes."""
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False),
        TRICKY,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(TRICKY, inner, max_size=4)
    ),
    max_leaves=12,
)


def objects_and_commas(value: Any) -> tuple[int, int]:
    """What a parse finds: the objects, and the commas between elements and members."""
    if isinstance(value, dict):
        inner = [objects_and_commas(v) for v in value.values()]
        return 1 + sum(o for o, _ in inner), max(len(value) - 1, 0) + sum(c for _, c in inner)
    if isinstance(value, list):
        inner = [objects_and_commas(v) for v in value]
        return sum(o for o, _ in inner), max(len(value) - 1, 0) + sum(c for _, c in inner)
    return 0, 0


@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from(["compact", "spaced", "ascii", "orjson"]))
def test_outside_strings_counts_exactly_what_a_parse_finds(value: Any, style: str) -> None:
    if style == "orjson":
        body = orjson.dumps(value)
    else:
        spaced = style == "spaced"
        body = json.dumps(value, ensure_ascii=style == "ascii", indent=1 if spaced else None)
        body = body.encode()
    assert outside_strings(body) == objects_and_commas(value)


def test_outside_strings_keeps_the_quote_parity_across_chunks() -> None:
    text = "{," * 700_000  # a string longer than one counted chunk
    body = json.dumps([{"x84": text, "x0": 1}, {"x84": "\\" * 3 + '"'}]).encode()
    assert len(body) > 1 << 20
    assert outside_strings(body) == (2, 2)
    assert outside_strings(b"") == (0, 0)


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answers at once, reading none of the body."""
    start_response("415 UNSUPPORTED MEDIA TYPE", [("Content-Type", "application/json")])
    return [b'{"error": "no", "details": []}']


def answer(environ: dict[str, Any], limit: int) -> bytes:
    result = read_to_the_end(app, limit)(environ, lambda *args: None)
    try:
        return b"".join(result)
    finally:
        result.close()  # type: ignore[attr-defined]


def test_the_rest_of_the_body_is_read_after_the_answer_up_to_the_limit() -> None:
    body = io.BytesIO(b"x" * 300_000)
    assert answer({"wsgi.input": body}, 1_000_000) == b'{"error": "no", "details": []}'
    assert body.tell() == 300_000  # every byte read
    huge = io.BytesIO(b"x" * 3_000_000)
    answer({"wsgi.input": huge}, 1_000_000)
    assert 1_000_000 < huge.tell() < 1_100_000  # the limit, give or take one read
    answer({}, 10)  # no body at all


def test_a_broken_or_silent_body_is_left_and_the_socket_s_timeout_restored() -> None:
    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise OSError("reset by peer")

    client, server = socket.socketpair()
    try:
        server.settimeout(None)
        seen = []

        class Watched(io.RawIOBase):
            def read(self, size: int = -1) -> bytes:
                seen.append(server.gettimeout())
                raise TimeoutError

        answer({"wsgi.input": Broken(), "gunicorn.socket": server}, 100)
        answer({"wsgi.input": Watched(), "gunicorn.socket": server}, 100)
        assert seen == [READ_TIMEOUT_S]
        assert server.gettimeout() is None
    finally:
        client.close()
        server.close()
