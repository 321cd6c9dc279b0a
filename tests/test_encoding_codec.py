"""The encodings codec on the server (webnn.server.encodings): negotiation, the checks of an update
frame's tensors, q8 and f16 decoding (q8 unbiased, measured statistically on decoded frames) and
the version store's float16 copies."""

from __future__ import annotations

import numpy as np
import pytest
from support.protocol_client import encode_frame

from webnn.server.encodings import (
    EncodedUpdate,
    Encodings,
    check_update_tensors,
    negotiate,
    parse_offer,
    to_half,
    update_bytes,
)
from webnn.server.errors import ProtocolError
from webnn.server.frames import decode_frame
from webnn.server.updates import decode_update
from webnn.server.versions import Snapshot, SnapshotPool, VersionSnapshots
from webnn.weights import WeightLayout, WeightSpec

LAYOUT = WeightLayout([WeightSpec("dense/kernel", (6, 5)), WeightSpec("dense/bias", (5,)),
                       WeightSpec("out/kernel", (5, 3)), WeightSpec("out/bias", (3,))])
SIZES = [spec.size for spec in LAYOUT.specs]




def encode_q8(delta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The client's q8 from the formula: s_t = max|d_t|/127, q = floor(d/s_t + u) in [-127, 127]."""
    q = np.zeros(delta.size, dtype=np.int8)
    scales = np.zeros(len(SIZES), dtype=np.float32)
    for t, (offset, size) in enumerate(zip(LAYOUT.offsets, SIZES, strict=True)):
        d = delta[offset:offset + size].astype(np.float64)
        scale = np.float32(np.abs(d).max() / 127)
        scales[t] = scale
        if scale > 0:
            codes = np.floor(d / scale + rng.random(size))
            q[offset:offset + size] = np.clip(codes, -127, 127)
    return q, scales


HEADER = {"baseVersion": 3, "steps": 1, "loss": 1.0, "accuracy": 0.5, "timings": {}}


def decode(body: bytes, encoding: str, base: np.ndarray | None = None) -> np.ndarray:
    """The server's path: decode the frame, check the tensors, decode into a float32 buffer."""
    weights, _ = decode_update(body, LAYOUT, task_id="t-1", task_version=3, max_steps=5,
                               encoding=encoding)
    if isinstance(weights, EncodedUpdate):
        return weights.decode_into(np.empty(LAYOUT.size, np.float32), LAYOUT, base)
    return np.array(weights)


# ----------------------------------------------------------------------------- negotiation

@pytest.mark.parametrize(("offer", "update", "weights", "expected"), [
    (None, "auto", "auto", ("f32", "f32")),
    ({"update": ["q8", "f16", "f32"], "weights": ["f16", "f32"]}, "auto", "auto", ("q8", "f16")),
    ({"update": ["f32", "f16"]}, "auto", "auto", ("f16", "f32")),
    ({"update": ["q8", "f16"], "weights": ["f16"]}, "f16", "f32", ("f16", "f32")),
    ({"update": ["f16"], "weights": ["f32"]}, "q8", "f16", ("f32", "f32")),
    ({"update": ["q4", "zstd", "q8"], "weights": ["bf16"]}, "auto", "auto", ("q8", "f32")),
    ({}, "q8", "f16", ("f32", "f32")),
])
def test_negotiation_picks_the_fewest_bytes_offered_or_f32(offer, update, weights, expected):
    assert negotiate(parse_offer(offer), update, weights) == Encodings(*expected)


@pytest.mark.parametrize(("offer", "path"), [
    ("q8", "$.encodings"), ([1], "$.encodings"), ({"update": "q8"}, "$.encodings.update"),
    ({"weights": [1]}, "$.encodings.weights"), ({"update": ["q8"] * 17}, "$.encodings.update"),
])
def test_a_malformed_offer_is_a_bad_field_naming_its_path(offer, path):
    with pytest.raises(ProtocolError) as caught:
        parse_offer(offer)
    assert caught.value.code == "bad_field" and caught.value.message.startswith(path)


# ---------------------------------------------------------------------------- decoding

def test_q8_frame_decodes_to_base_plus_codes_times_scales():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, LAYOUT.size).astype(np.float32)
    q = rng.integers(-127, 128, LAYOUT.size).astype(np.int8)
    scales = np.array([0.5, 0.0, 2.0 ** -7, 3.0], dtype=np.float32)
    out = decode(encode_frame(HEADER, {"delta_q8": q, "scales": scales}), "q8", base)
    expected = base.copy()
    for t, (offset, size) in enumerate(zip(LAYOUT.offsets, SIZES, strict=True)):
        expected[offset:offset + size] += q[offset:offset + size] * scales[t]
    np.testing.assert_array_equal(out, expected)


def test_q8_decoded_updates_are_unbiased():
    """Decoded q8 frames of one delta average to the delta: each value's rounding error lies within
    one step s_t (variance <= s_t^2 / 4), so the mean of T decodes is within 5 s_t / (2 sqrt T)."""
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, LAYOUT.size).astype(np.float32)
    delta = (rng.normal(0, 0.01, LAYOUT.size) * np.repeat([1, 10, 0.1, 3], SIZES)).astype(
        np.float32)
    trials = 2000
    total = np.zeros(LAYOUT.size)
    for _ in range(trials):
        q, scales = encode_q8(delta, rng)
        total += decode(encode_frame(HEADER, {"delta_q8": q, "scales": scales}), "q8", base) - base
    step = np.repeat([np.abs(delta[o:o + s]).max() / 127
                      for o, s in zip(LAYOUT.offsets, SIZES, strict=True)], SIZES)
    bound = 5 * step / (2 * np.sqrt(trials)) + 1e-6
    error = np.abs(total / trials - delta)
    assert (error <= bound).all(), float((error / bound).max())
    # deterministic rounding to nearest would be biased: check the test could see a bias
    nearest = np.round(delta / step) * step
    assert (np.abs(nearest - delta) > bound).any()


def test_f16_frame_widens_exactly():
    weights = np.random.default_rng(2).normal(0, 1, LAYOUT.size).astype(np.float16)
    out = decode(encode_frame(HEADER, {"weights": weights}), "f16")
    np.testing.assert_array_equal(out, weights.astype(np.float32))


def test_f32_frame_is_a_view_as_before():
    weights = np.arange(LAYOUT.size, dtype=np.float32)
    decoded = decode(encode_frame(HEADER, {"weights": weights}), "f32")
    np.testing.assert_array_equal(decoded, weights)


# ----------------------------------------------------------------------------- refusals

def _refusal(tensors: dict[str, np.ndarray], encoding: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        check_update_tensors(decode_frame(encode_frame(HEADER, tensors)).tensors, LAYOUT, encoding)
    return caught.value


Q = np.zeros(LAYOUT.size, dtype=np.int8)
S = np.ones(len(SIZES), dtype=np.float32)


@pytest.mark.parametrize(("tensors", "encoding", "code", "words"), [
    ({"weights": np.zeros(LAYOUT.size, np.float32)}, "q8", "wrong_encoding", "'q8'"),
    ({"delta_q8": Q, "scales": S}, "f32", "wrong_encoding", "'f32'"),
    ({"weights": np.zeros(LAYOUT.size, np.float16)}, "f32", "wrong_encoding", "'f16'"),
    ({"weights": np.zeros(LAYOUT.size, np.float32)}, "f16", "wrong_encoding", "'f16'"),
    ({"delta_q8": Q, "scales": S[:3]}, "q8", "wrong_length", "12 bytes of scales"),
    ({"delta_q8": Q[:-1], "scales": S}, "q8", "wrong_length",
     f"{LAYOUT.size - 1} bytes of delta_q8"),
    ({"delta_q8": Q, "scales": np.array([1, np.nan, np.inf, 1], np.float32)}, "q8",
     "not_finite", "scales[1]"),
    ({"delta_q8": Q, "scales": np.array([1, -1, 1, 1], np.float32)}, "q8", "bad_frame",
     "scales[1]"),
    ({"delta_q8": Q.astype(np.int32), "scales": S}, "q8", "bad_frame", "must be int8"),
    ({"delta_q8": Q}, "q8", "bad_frame", "'scales'"),
    ({"weights": np.zeros(LAYOUT.size + 1, np.float16)}, "f16", "wrong_length", "bytes of weights"),
])
def test_bad_tensors_are_refused_naming_the_tensor(tensors, encoding, code, words):
    error = _refusal(tensors, encoding)
    assert error.code == code and words in error.message, error.message


def test_update_bytes_per_encoding():
    assert update_bytes(LAYOUT, "f32") == 4 * LAYOUT.size
    assert update_bytes(LAYOUT, "f16") == 2 * LAYOUT.size
    assert update_bytes(LAYOUT, "q8") == LAYOUT.size + (-LAYOUT.size % 8) + 4 * len(SIZES)


# ------------------------------------------------------------------ float16 weight copies

def test_to_half_rounds_like_numpy_and_is_read_only():
    weights = np.array([1.0, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000.0, -1e-8, 0.1], np.float32)
    half = to_half(weights)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(half, weights.astype(np.float16))
    assert not half.flags.writeable


def test_version_store_makes_one_half_copy_and_gives_buffers_back():
    size = LAYOUT.size
    pool, half_pool = SnapshotPool(size, keep=4), SnapshotPool(size, keep=4, dtype="<f2")
    first = pool.acquire()
    first[:] = np.arange(size)
    versions = VersionSnapshots(0, Snapshot(first, 0), pool, half_pool)
    made = []

    def make(weights: np.ndarray, out: np.ndarray) -> np.ndarray:
        made.append(1)
        return to_half(weights, out)

    wire = versions.half_wire(0, make)
    assert bytes(wire) == np.arange(size, dtype="<f2").tobytes()
    assert versions.half_wire(0, make) is not None and len(made) == 1
    assert versions.nbytes == 6 * size
    assert versions.half_wire(7, make) is None
    del wire
    second = pool.acquire()
    versions.advance(1, Snapshot(second, 1))  # version 0 is dropped, its buffers reused
    assert versions.nbytes == 4 * size
    assert half_pool.acquire() is not None and half_pool.allocated == 1


def test_delta_strategies_get_f16_weights_only_with_q8_updates() -> None:
    from webnn.server.encodings import negotiate

    offer = {"update": ("f16", "f32"), "weights": ("f16", "f32")}
    assert negotiate(offer).weights == "f16"  # average mixes weights: rounding is harmless
    chosen = negotiate(offer, exact_base=True)  # fedbuff & co subtract the exact base
    assert (chosen.update, chosen.weights) == ("f16", "f32")
    both = negotiate({"update": ("q8",), "weights": ("f16",)}, exact_base=True)
    assert (both.update, both.weights) == ("q8", "f16")
