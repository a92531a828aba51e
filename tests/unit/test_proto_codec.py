"""The OIP codec shared by the gateway and the server: BYTES layout, missing texts."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import serialize_byte_tensor

from proto.codec import CodecError, decode_texts, encode_texts, pack_bytes, unpack_bytes


def test_bytes_round_trip_in_the_tritonclient_layout() -> None:
    values = [b"", b"x", "\u00e9t\u00e9".encode(), b"\x00\xff" * 300]
    ours = pack_bytes(values)
    assert ours == serialize_byte_tensor(np.array(values, dtype=object)).item()
    assert list(unpack_bytes(ours, len(values), "t")) == values
    assert pack_bytes([b"wed"]) == b"\x03\x00\x00\x00wed"
    assert pack_bytes([]) == b""


@pytest.mark.parametrize(
    ("raw", "count", "reason"),
    [
        (b"\x03\x00\x00", 1, "end after 0 of 1"),
        (b"\x05\x00\x00\x00abc", 1, "element 0 is truncated"),
        (b"\x01\x00\x00\x00ab", 1, "more than 1"),
        (b"\x01\x00\x00\x00a", 2, "end after 1 of 2"),
    ],
)
def test_malformed_raw_bytes_are_refused(raw: bytes, count: int, reason: str) -> None:
    with pytest.raises(CodecError, match=reason) as error:
        unpack_bytes(raw, count, "x54")
    assert "x54" in str(error.value)


def test_missing_texts_round_trip_lower_case() -> None:
    texts = frozenset({"", "nan", "n/a"})
    assert decode_texts(encode_texts(texts)) == texts
    assert decode_texts('["NA", "None"]') == frozenset({"na", "none"})
    for bad in ("{", '"nan"', "[1]", '{"a": 1}'):
        with pytest.raises(CodecError, match="missing_text"):
            decode_texts(bad)
