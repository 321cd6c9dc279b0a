"""Pure parts of the server: the frame codec, atomic checkpoints, evaluation arithmetic, config."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from support.protocol_client import decode_frame as client_decode
from support.protocol_client import encode_frame as client_encode

from webnn.server.config import ConfigError, ServeConfig
from webnn.server.evaluation import ChunkResult, Evaluation
from webnn.server.frames import FrameError, decode_frame, encode_frame
from webnn.server.store import Checkpoint, StateError, Store, layout_fingerprint
from webnn.weights import WeightLayout, WeightSpec


def test_frame_round_trip_and_layout():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = np.array([1, 2, 3], dtype=np.int32)
    data = encode_frame({"kind": "train", "index": 7}, {"x": x, "y": y})
    assert data[:4] == b"WNF1"
    (head_len,) = struct.unpack("<I", data[4:8])
    payload_start = 8 + head_len + (-(8 + head_len) % 8)
    assert payload_start % 8 == 0 and set(data[8 + head_len:payload_start]) <= {0}
    header = json.loads(data[8:8 + head_len])
    assert [t["offset"] % 8 for t in header["tensors"]] == [0, 0]
    frame = decode_frame(data)
    assert frame.header == {"kind": "train", "index": 7}
    np.testing.assert_array_equal(frame.tensors["x"], x)
    np.testing.assert_array_equal(frame.tensors["y"], y)
    # and against the test client's independent codec, both ways
    header2, tensors2 = client_decode(data)
    np.testing.assert_array_equal(tensors2["y"], y)
    frame2 = decode_frame(client_encode({"a": 1}, {"w": x.reshape(-1)}))
    np.testing.assert_array_equal(frame2.tensors["w"], x.reshape(-1))


@pytest.mark.parametrize(("mutate", "code", "fragment"), [
    (lambda d: d[:6], "truncated", "at least 8 bytes"),
    (lambda d: b"ABCD" + d[4:], "bad_frame", "must start with"),
    (lambda d: d[:4] + struct.pack("<I", 10_000) + d[8:], "truncated", "header claims"),
    (lambda d: d[:4] + struct.pack("<I", 1 << 30) + d[8:], "bad_frame", "exceeds"),
    (lambda d: d[:-8], "truncated", "the payload holds"),
])
def test_frame_errors(mutate, code, fragment):
    data = encode_frame({}, {"x": np.ones(5, np.float32)})
    with pytest.raises(FrameError) as error:
        decode_frame(mutate(data))
    assert error.value.code == code and fragment in str(error.value)


@pytest.mark.parametrize(("entry", "fragment"), [
    ({"name": 1, "dtype": "float32", "shape": [1], "offset": 0, "byteLength": 4}, ".name"),
    ({"name": "w", "dtype": "float64", "shape": [1], "offset": 0, "byteLength": 8}, ".dtype"),
    ({"name": "w", "dtype": "float32", "shape": [-1], "offset": 0, "byteLength": 4}, ".shape"),
    ({"name": "w", "dtype": "float32", "shape": [1], "offset": 4, "byteLength": 4}, "multiple"),
    ({"name": "w", "dtype": "float32", "shape": [2], "offset": 0, "byteLength": 4}, "needs 8"),
])
def test_frame_header_errors_name_the_field(entry, fragment):
    head = json.dumps({"tensors": [entry]}).encode()
    data = b"WNF1" + struct.pack("<I", len(head)) + head + b"\0" * (-(8 + len(head)) % 8)
    data += b"\0" * 16
    with pytest.raises(FrameError) as error:
        decode_frame(data)
    assert error.value.code == "bad_frame" and "header.tensors[0]" in str(error.value)
    assert fragment in str(error.value)


LAYOUT = WeightLayout([WeightSpec("d/kernel", (3, 2)), WeightSpec("d/bias", (2,))])


def _checkpoint(value: float, version: int) -> Checkpoint:
    return Checkpoint(weights=np.full(LAYOUT.size, value, np.float32),
                      state={"fingerprint": layout_fingerprint(LAYOUT),
                             "manifest": LAYOUT.manifest(), "version": version},
                      model_json={"modelTopology": {}, "weightsManifest": LAYOUT.manifest_json()},
                      strategy_arrays={"buf": np.arange(3.0)})


def test_store_swaps_whole_checkpoints(tmp_path):
    store = Store(tmp_path)
    assert store.load(LAYOUT) is None
    for version in range(1, 5):
        store.save(_checkpoint(float(version), version), LAYOUT)
    loaded = store.load(LAYOUT)
    assert loaded is not None and loaded.state["version"] == 4
    np.testing.assert_array_equal(loaded.weights, np.full(LAYOUT.size, 4.0))
    np.testing.assert_array_equal(loaded.strategy_arrays["buf"], np.arange(3.0))
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2  # the current one and one before
    # a crash mid-write leaves a temporary directory behind: CURRENT still names a whole checkpoint
    (tmp_path / "checkpoints" / ".tmp-00000009").mkdir()
    (tmp_path / "checkpoints" / ".tmp-00000009" / "weights.bin").write_bytes(b"partial")
    assert store.load(LAYOUT).state["version"] == 4
    store.save(_checkpoint(5.0, 5), LAYOUT)
    assert store.load(LAYOUT).state["version"] == 5


def test_store_refuses_another_layout(tmp_path):
    Store(tmp_path).save(_checkpoint(1.0, 1), LAYOUT)
    other = WeightLayout([WeightSpec("d/kernel", (3, 4)), WeightSpec("d/bias", (4,))])
    message = r"state has d/kernel \[3, 2\], spec has d/kernel \[3, 4\]"
    with pytest.raises(StateError, match=message):
        Store(tmp_path).load(other)


def test_evaluation_combines_chunks_weighted_by_examples():
    evaluation = Evaluation(id=1, version=3, steps=10, merges=2, started=0.0,
                            chunk_examples=[100, 50])
    assert list(evaluation.pending) == [0, 1]
    evaluation.results[0] = ChunkResult(loss=1.0, accuracy=0.9, examples=100)
    assert not evaluation.complete
    evaluation.results[1] = ChunkResult(loss=4.0, accuracy=0.3, examples=50)
    loss, accuracy, examples = evaluation.combined()
    assert loss == pytest.approx(2.0) and accuracy == pytest.approx(0.7) and examples == 150
    evaluation.results[1] = ChunkResult(loss=None, accuracy=0.3, examples=50)
    assert evaluation.combined()[0] is None


def test_config_validation_lists_every_problem():
    # a bad ServeConfig is refused when it is made, with every problem at once
    with pytest.raises(ConfigError) as info:
        ServeConfig(spec={}, data="x", lease_seconds=-1, max_staleness=-3, seed="one",
                    join_token="short", tfjs_url="ftp://x", checkpoint_every_merges=1.5)
    problems = info.value.problems
    for field in ("lease_seconds", "max_staleness", "seed", "join_token", "tfjs_url",
                  "checkpoint_every_merges"):
        assert any(p.startswith(field + ":") for p in problems), field
    # values assigned afterwards are checked again by validate()/check()
    config = ServeConfig(spec={}, data="x")
    config.lease_seconds = -1
    assert config.validate() == ["lease_seconds: must be > 0, got -1"]
    with pytest.raises(ConfigError):
        config.check()
    assert ServeConfig(spec={}, data="x").admin_token  # generated
