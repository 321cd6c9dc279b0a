"""The input layer's pure parts: bounded JSON (wire.py) and the frame-header schema (frames.py)."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webnn.server.frames import (
    MAX_RANK,
    MAX_TENSORS,
    FrameError,
    decode_frame,
    encode_frame,
)
from webnn.server.wire import JsonInputError, dumps, finite, nesting_depth, parse_json

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=20,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(JSON)
def test_nesting_depth_matches_the_structure(value):
    text = json.dumps(value).encode()
    assert nesting_depth(text) == _depth(value)


@pytest.mark.parametrize(("text", "depth"), [
    (b"", 0), (b"1", 0), (b'"[[["', 0), (b'["\\"[", []]', 2), (b'["\\\\", [[]]]', 3),
    (b'{"a": "\\\\\\"]]"}', 1), (b"[" * 40, 40), (b"]]]]", 0),
])
def test_nesting_depth_of_tricky_text(text, depth):
    assert nesting_depth(text) == depth


def test_deep_json_is_refused_before_the_parser_recurses():
    with pytest.raises(JsonInputError, match="100000 levels deep; the limit is 32"):
        parse_json(b"[" * 100_000 + b"]" * 100_000)
    assert parse_json(b"[" * 32 + b"]" * 32) == eval("[" * 31 + "[]" + "]" * 31)


@pytest.mark.parametrize("data", [b"\xff{}", b"{", b"1" * 5000, b"", b'{"a": 1,}'])
def test_bad_json_is_a_json_input_error(data):
    with pytest.raises(JsonInputError):
        parse_json(data)


def test_finite_turns_every_non_finite_float_into_null_at_any_depth():
    payload = {"a": [1.0, math.inf, {"b": (math.nan, -math.inf)}], "c": np.float32(np.inf),
               "d": np.int64(3), "e": "Infinity"}
    assert finite(payload) == {"a": [1.0, None, {"b": [None, None]}], "c": None, "d": 3,
                               "e": "Infinity"}
    assert payload["a"][1] == math.inf  # the original is untouched
    deep: list = []
    for _ in range(200):
        deep = [deep, math.inf]
    assert "Infinity" not in dumps(deep) and "NaN" not in dumps({"x": math.nan})


def _frame(entries: list, payload: bytes, **fields) -> bytes:
    head = json.dumps({**fields, "tensors": entries}).encode()
    return b"WNF1" + struct.pack("<I", len(head)) + head + b"\0" * (-(8 + len(head)) % 8) + payload


def _entry(name="w", dtype="float32", shape=(2,), offset=0, length=8) -> dict:
    return {"name": name, "dtype": dtype, "shape": list(shape), "offset": offset,
            "byteLength": length}


@pytest.mark.parametrize(("entries", "payload", "message"), [
    ([_entry(dtype=["float32"])], bytes(8), "dtype must be one of"),
    ([_entry(dtype={"a": 1})], bytes(8), "dtype must be one of"),
    ([_entry(dtype="float64")], bytes(8), "dtype must be one of"),
    ([_entry(shape=[1] * (MAX_RANK + 1), length=4)], bytes(8), "dimensions; at most 8"),
    ([_entry(shape=[2**20, 2**20, 2**20], length=0)], bytes(8), "more than"),
    ([_entry(shape=[-1], length=0)], bytes(8), "shape[0] must be an integer"),
    ([_entry(shape=[2.0], length=8)], bytes(8), "shape[0] must be an integer"),
    ([_entry(offset=4)], bytes(16), "not a multiple of 8"),
    ([_entry(), _entry(name="x", offset=0)], bytes(8), "overlaps"),
    ([_entry()], bytes(16), "8 trailing bytes"),
    ([_entry(length=12)], bytes(16), "needs 8 bytes"),
    ([_entry(name="")], bytes(8), "name must be"),
    ([_entry(name=f"t{i}", offset=0, shape=(0,), length=0) for i in range(MAX_TENSORS + 1)],
     b"", "at most 64"),
    ([_entry(offset=True)], bytes(8), "offset must be"),
])
def test_frame_schema_refuses(entries, payload, message):
    with pytest.raises(FrameError) as raised:
        decode_frame(_frame(entries, payload))
    assert raised.value.code == "bad_frame" and message in str(raised.value), str(raised.value)


def test_frame_header_depth_is_bounded():
    deep = b"[" * 40 + b"]" * 40
    head = b'{"tensors": [], "x": ' + deep + b"}"
    frame = b"WNF1" + struct.pack("<I", len(head)) + head + b"\0" * (-(8 + len(head)) % 8)
    with pytest.raises(FrameError, match="41 levels deep"):
        decode_frame(frame)


def test_frames_from_the_encoders_still_decode():
    tensors = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "y": np.arange(3, dtype=np.int32),
               "empty": np.zeros((0, 4), dtype=np.float32)}
    frame = decode_frame(encode_frame({"kind": "train"}, tensors))
    assert frame.header == {"kind": "train"}
    for name, array in tensors.items():
        np.testing.assert_array_equal(frame.tensors[name], array)
    unpadded = _frame([_entry(length=4, shape=(1,))], bytes(4))  # no padding after the last
    assert decode_frame(unpadded).tensors["w"].shape == (1,)
