"""The flat weight buffer: offsets, views, the TF.js weights.bin wire layout."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from webnn.weights import WeightFormatError, WeightLayout, WeightSpec

LAYOUT = WeightLayout([
    WeightSpec("dense_1/kernel", (3, 2)),
    WeightSpec("dense_1/bias", (2,)),
    WeightSpec("bn_1/moving_mean", (2,)),
])


def test_offsets_size_and_bytes() -> None:
    assert LAYOUT.offsets == (0, 6, 8)
    assert LAYOUT.size == 10
    assert LAYOUT.nbytes == 40
    assert LAYOUT.names == ("dense_1/kernel", "dense_1/bias", "bn_1/moving_mean")


def test_views_write_through_to_the_one_buffer() -> None:
    buffer = np.arange(10, dtype=np.float32)
    views = LAYOUT.views(buffer)
    assert views["dense_1/kernel"].shape == (3, 2)
    assert views["dense_1/kernel"][2, 1] == 5
    views["dense_1/bias"][:] = -1
    assert buffer[6:8].tolist() == [-1, -1]
    assert all(np.shares_memory(v, buffer) for v in views.values())


def test_wire_layout_is_little_endian_float32_in_manifest_order() -> None:
    buffer = np.arange(10, dtype=np.float32) / 4
    wire = bytes(LAYOUT.to_bytes(buffer))
    assert wire == struct.pack("<10f", *buffer.tolist())
    decoded = LAYOUT.from_bytes(wire)
    assert decoded.dtype == np.float32 and decoded.flags.writeable
    np.testing.assert_array_equal(decoded, buffer)


def test_to_bytes_and_from_bytes_without_copy_share_memory() -> None:
    buffer = np.ones(10, dtype=np.float32)
    wire = LAYOUT.to_bytes(buffer)
    assert np.shares_memory(np.frombuffer(wire, dtype=np.float32), buffer)
    data = bytearray(40)
    view = LAYOUT.from_bytes(data, copy=False)
    data[0:4] = struct.pack("<f", 2.5)
    assert view[0] == 2.5


@pytest.mark.parametrize("nbytes", [0, 36, 44, 39])
def test_wrong_byte_length_names_both_counts(nbytes: int) -> None:
    with pytest.raises(WeightFormatError, match=rf"hold {nbytes} bytes; the model needs 40 bytes"):
        LAYOUT.from_bytes(bytes(nbytes))


def test_from_arrays_by_order_and_by_name_checks_shapes() -> None:
    arrays = [np.full((3, 2), 1.0), np.full((2,), 2.0), np.full((2,), 3.0)]
    packed = LAYOUT.from_arrays(arrays)
    assert packed.tolist() == [1.0] * 6 + [2.0] * 2 + [3.0] * 2
    by_name = LAYOUT.from_arrays(dict(zip(LAYOUT.names, arrays, strict=True)))
    np.testing.assert_array_equal(by_name, packed)
    with pytest.raises(WeightFormatError, match=r"'dense_1/bias' has shape \(3,\), expected"):
        LAYOUT.from_arrays([arrays[0], np.zeros(3), arrays[2]])
    with pytest.raises(WeightFormatError, match="missing weights: bn_1/moving_mean"):
        LAYOUT.from_arrays({"dense_1/kernel": arrays[0], "dense_1/bias": arrays[1]})


def test_check_refuses_other_dtypes_and_sizes() -> None:
    with pytest.raises(WeightFormatError, match="flat float32 buffer of 10 values"):
        LAYOUT.views(np.zeros(10, dtype=np.float64))
    with pytest.raises(WeightFormatError, match="flat float32 buffer of 10 values"):
        LAYOUT.views(np.zeros((2, 5), dtype=np.float32))


def test_manifest_round_trip_and_tfjs_group_form() -> None:
    groups = LAYOUT.manifest_json("weights.bin")
    assert groups == [{"paths": ["weights.bin"], "weights": [
        {"name": "dense_1/kernel", "shape": [3, 2], "dtype": "float32"},
        {"name": "dense_1/bias", "shape": [2], "dtype": "float32"},
        {"name": "bn_1/moving_mean", "shape": [2], "dtype": "float32"},
    ]}]
    assert WeightLayout.from_manifest(groups) == LAYOUT
    assert WeightLayout.from_manifest(LAYOUT.manifest()) == LAYOUT


def test_duplicate_names_and_non_float_weights_are_refused() -> None:
    with pytest.raises(WeightFormatError, match="duplicate weight names: a"):
        WeightLayout([WeightSpec("a", (1,)), WeightSpec("a", (2,))])
    with pytest.raises(WeightFormatError, match="only float32"):
        WeightLayout([WeightSpec("ids", (3,), "int32")])


def test_locate_names_the_tensor_and_position_of_a_flat_index() -> None:
    assert LAYOUT.locate(0) == "dense_1/kernel[0, 0] (index 0)"
    assert LAYOUT.locate(5) == "dense_1/kernel[2, 1] (index 5)"
    assert LAYOUT.locate(7) == "dense_1/bias[1] (index 7)"
    assert LAYOUT.locate(8) == "bn_1/moving_mean[0] (index 8)"
    assert LAYOUT.locate(10) == "index 10 (outside the 10 values)"
