"""ArrayDataset and batching: deterministic, resumable training batches; validation covered once."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from webnn.data import ArrayDataset, Batch, DatasetError, batch_indices, chunk_bounds


def numbered(n_train: int, n_val: int) -> ArrayDataset:
    """x[i] = [i, i] (float32), y[i] = i: every batch shows which examples it holds."""
    x = np.repeat(np.arange(n_train, dtype=np.float32)[:, None], 2, axis=1)
    xv = np.repeat(np.arange(100, 100 + n_val, dtype=np.float32)[:, None], 2, axis=1)
    return ArrayDataset(x, np.arange(n_train, dtype=np.int32), xv,
                        np.arange(100, 100 + n_val, dtype=np.int32))


def take(dataset: ArrayDataset, count: int, batch_size: int, seed: int,
         start: int = 0) -> list[Batch]:
    return list(islice(dataset.train_batches(batch_size, seed, start), count))


def test_batches_are_deterministic_for_a_seed() -> None:
    data = numbered(50, 5)
    first, again = take(data, 12, 8, seed=3), take(data, 12, 8, seed=3)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
    other = take(data, 12, 8, seed=4)
    assert any(not np.array_equal(a.y, b.y) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("start", [0, 1, 6, 7, 13])
def test_start_resumes_the_same_sequence(start: int) -> None:
    data = numbered(50, 5)
    whole = take(data, start + 5, 8, seed=11)
    resumed = take(data, 5, 8, seed=11, start=start)
    for a, b in zip(whole[start:], resumed, strict=True):
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.x, b.x)


def test_every_epoch_is_a_fresh_permutation_and_every_batch_is_full() -> None:
    n, batch_size = 10, 3
    data = numbered(n, 5)
    batches = take(data, 20, batch_size, seed=0)  # 60 positions: 6 epochs
    assert all(len(b) == batch_size for b in batches)
    stream = np.concatenate([b.y for b in batches])
    epochs = stream.reshape(6, n)
    for epoch in epochs:
        assert sorted(epoch) == list(range(n))
    assert len({tuple(e) for e in epochs}) > 1  # reshuffled
    for b in batches:  # x stays paired with y
        np.testing.assert_array_equal(b.x[:, 0], b.y.astype(np.float32))


def test_batch_larger_than_the_training_set() -> None:
    data = numbered(3, 1)
    [batch] = take(data, 1, 7, seed=5)
    assert len(batch) == 7
    assert sorted(batch.y[:6]) == [0, 0, 1, 1, 2, 2]


def test_batch_indices_directly() -> None:
    first = list(islice(batch_indices(5, 2, seed=1), 5))
    resumed = list(islice(batch_indices(5, 2, seed=1, start=3), 2))
    np.testing.assert_array_equal(first[3], resumed[0])
    np.testing.assert_array_equal(first[4], resumed[1])
    expected_epoch0 = np.random.default_rng([1, 0]).permutation(5)
    np.testing.assert_array_equal(np.concatenate(first)[:5], expected_epoch0)


@pytest.mark.parametrize(("args", "message"), [
    ((0, 2, 0), "num_examples must be an integer >= 1, got 0"),
    ((5, 0, 0), "batch_size must be an integer >= 1, got 0"),
    ((5, 2, -1), "seed must be an integer >= 0, got -1"),
    ((5, 2, 0, -3), "start must be an integer >= 0, got -3"),
    ((5, 2.5, 0), "batch_size must be an integer >= 1, got 2.5"),
])
def test_bad_batch_arguments_fail_at_the_call(args: tuple, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        batch_indices(*args)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 7, 100])
def test_validation_chunks_cover_everything_once_in_order(chunk_size: int) -> None:
    data = numbered(10, 7)
    chunks = list(data.validation_chunks(chunk_size))
    assert all(len(c) == chunk_size for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= chunk_size
    np.testing.assert_array_equal(np.concatenate([c.y for c in chunks]), np.arange(100, 107))
    np.testing.assert_array_equal(np.concatenate([c.x for c in chunks]), data.x_val)
    assert len(list(data.validation_chunks(chunk_size))) == len(chunks)


def test_chunk_bounds() -> None:
    assert list(chunk_bounds(7, 3)) == [(0, 3), (3, 6), (6, 7)]
    assert list(chunk_bounds(0, 3)) == []
    with pytest.raises(DatasetError, match="chunk_size must be an integer >= 1, got 0"):
        chunk_bounds(7, 0)


def test_declared_attributes_and_description() -> None:
    data = numbered(10, 4)
    assert data.example_shape == (2,) and data.y_shape == ()
    assert data.x_dtype == np.float32 and data.y_dtype == np.int32
    assert data.num_train == 10 and data.num_validation == 4
    assert data.describe() == ("ArrayDataset: 10 training, 4 validation examples; "
                               "x float32 (2,), y int32 ()")


@pytest.mark.parametrize(("arrays", "message"), [
    ((np.zeros((4, 2)), np.zeros(3), np.zeros((1, 2)), np.zeros(1)),
     "x_train has 4 examples but y_train has 3"),
    ((np.zeros((4, 2)), np.zeros(4), np.zeros((2, 2)), np.zeros(1)),
     "x_val has 2 examples but y_val has 1"),
    ((np.zeros((4, 2)), np.zeros(4), np.zeros((1, 3)), np.zeros(1)),
     r"x_val examples have shape \(3,\) but x_train examples have shape \(2,\)"),
    ((np.zeros((4, 2), np.float32), np.zeros(4), np.zeros((1, 2)), np.zeros(1)),
     "x_val is float64 but x_train is float32"),
    ((np.zeros((0, 2)), np.zeros(0), np.zeros((1, 2)), np.zeros(1)), "x_train holds no examples"),
    ((np.float32(1), np.zeros(1), np.zeros((1, 2)), np.zeros(1)),
     "x_train must be an array with one entry per example, got a scalar"),
])
def test_inconsistent_arrays_are_refused(arrays: tuple, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        ArrayDataset(*arrays)


def test_memory_mapped_arrays(tmp_path: Path) -> None:
    data = numbered(20, 3)
    np.save(tmp_path / "x.npy", data.x_train)
    mapped = ArrayDataset(np.load(tmp_path / "x.npy", mmap_mode="r"), data.y_train,
                          data.x_val, data.y_val)
    for a, b in zip(take(mapped, 4, 6, seed=2), take(data, 4, 6, seed=2), strict=True):
        np.testing.assert_array_equal(a.x, b.x)
