"""Partitions of the training set (webnn.data.partition): worked examples and properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from webnn.data.base import ArrayDataset, DatasetError, shard_batch_indices
from webnn.data.partition import (
    PartitionConfig,
    PartitionError,
    class_labels,
    label_counts,
    partition,
)


def _labels(per_class: int = 50, classes: int = 10, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(classes), per_class))


def _check_complete_and_disjoint(shards: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(shards)
    assert len(joined) == n, "every example in exactly one shard"
    assert np.array_equal(np.sort(joined), np.arange(n))


def test_iid_is_one_shard_of_everything() -> None:
    shards = partition(PartitionConfig("iid"), seed=0, num_examples=7)
    assert [s.tolist() for s in shards] == [list(range(7))]


def test_by_key_worked_example() -> None:
    keys = np.array(["b", "a", "b", "c", "a"])
    shards = partition(PartitionConfig("by_key"), seed=0, keys=keys)
    # distinct keys in sorted order a, b, c: one shard each
    assert [s.tolist() for s in shards] == [[1, 4], [0, 2], [3]]
    grouped = partition(PartitionConfig("by_key", shards=2), seed=0, keys=keys)
    # key i goes to shard i mod 2: a -> 0, b -> 1, c -> 0
    assert [s.tolist() for s in grouped] == [[1, 3, 4], [0, 2]]


def test_by_key_needs_keys_and_enough_of_them() -> None:
    with pytest.raises(PartitionError, match="train_keys"):
        partition(PartitionConfig("by_key"), seed=0, labels=np.zeros(4))
    with pytest.raises(PartitionError, match="partition.shards: 3 shards .* 2 distinct keys"):
        partition(PartitionConfig("by_key", shards=3), seed=0, keys=np.array([1, 2, 1]))


def test_shards_worked_example_each_shard_holds_k_labels() -> None:
    # 4 labels x 2 examples, P=2 shards x k=2 pieces: 4 pieces of 2, each one label
    labels = np.array([3, 0, 2, 1, 0, 3, 1, 2])
    shards = partition(PartitionConfig("shards", shards=2, classes=2), seed=5, labels=labels)
    _check_complete_and_disjoint(shards, 8)
    for shard in shards:
        assert len(shard) == 4
        assert len(set(labels[shard].tolist())) == 2  # two whole label pieces
        assert all((labels[shard] == c).sum() == 2 for c in set(labels[shard].tolist()))


def test_shards_mcmahan_digits_like_split() -> None:
    labels = _labels(per_class=60)  # 600 examples, 10 labels
    shards = partition(PartitionConfig("shards", shards=10, classes=2), seed=1, labels=labels)
    _check_complete_and_disjoint(shards, 600)
    assert all(len(s) == 60 for s in shards)  # 20 pieces of 30 examples
    assert all(len(np.unique(labels[s])) <= 2 for s in shards)


def test_dirichlet_tiny_alpha_gives_each_class_to_one_shard() -> None:
    labels = _labels(per_class=20, classes=4)
    shards = partition(PartitionConfig("dirichlet", shards=4, alpha=1e-3), seed=2,
                       labels=labels)
    counts = label_counts(labels, shards)
    # Dirichlet(0.001) puts (all but rounding) of each class on one shard
    assert np.all(counts.max(axis=0) >= 19)
    _check_complete_and_disjoint(shards, len(labels))


def test_dirichlet_cut_formula_on_a_given_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shard j gets positions [round(n_c Q_{j-1}), round(n_c Q_j)) of each shuffled class."""
    labels = np.array([0] * 10 + [1] * 4)
    draws = iter([np.array([0.25, 0.25, 0.5]), np.array([0.1, 0.6, 0.3])])
    real = np.random.Generator

    class Fixed:
        def __init__(self, inner: np.random.Generator) -> None:
            self.inner = inner

        def permutation(self, x: np.ndarray) -> np.ndarray:
            return np.asarray(x)  # identity order: the cut is visible

        def dirichlet(self, alpha: np.ndarray) -> np.ndarray:
            return next(draws)

    monkeypatch.setattr(np.random, "default_rng", lambda seed: Fixed(real(np.random.PCG64(1))))
    shards = partition(PartitionConfig("dirichlet", shards=3, alpha=0.3), seed=0, labels=labels)
    # class 0 (n=10): cuts round(2.5)=2, round(5.0)=5, 10 -> [0,1] [2,3,4] [5..9]
    # class 1 (n=4, indices 10..13): cuts round(0.4)=0, round(2.8)=3, 4 -> [] [10,11,12] [13]
    assert [s.tolist() for s in shards] == [[0, 1], [2, 3, 4, 10, 11, 12],
                                            [5, 6, 7, 8, 9, 13]]


def test_dirichlet_skew_grows_as_alpha_falls() -> None:
    labels = _labels(per_class=100)

    def skew(alpha: float) -> float:
        """Mean over shards of the largest class share (1/10 = iid, 1 = one class)."""
        shards = partition(PartitionConfig("dirichlet", shards=8, alpha=alpha), seed=4,
                           labels=labels)
        _check_complete_and_disjoint(shards, len(labels))
        counts = label_counts(labels, shards)
        return float(np.mean(counts.max(axis=1) / counts.sum(axis=1)))

    values = [skew(a) for a in (100.0, 1.0, 0.1, 0.01)]
    assert values == sorted(values)
    assert values[0] < 0.2 and values[-1] > 0.8


@pytest.mark.parametrize("kind", ["dirichlet", "shards"])
def test_label_partitions_are_deterministic_per_seed(kind: str) -> None:
    labels = _labels()
    config = PartitionConfig(kind, shards=16, alpha=0.1)
    first = partition(config, seed=7, labels=labels)
    again = partition(config, seed=7, labels=labels)
    other = partition(config, seed=8, labels=labels)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    assert len(first) == 16 and all(len(s) >= 1 for s in first)
    _check_complete_and_disjoint(first, len(labels))


def test_one_hot_labels_count_as_their_class() -> None:
    assert class_labels(np.eye(3)[[2, 0, 1]]).tolist() == [2, 0, 1]
    with pytest.raises(PartitionError, match="not class indices"):
        class_labels(np.array([0.5, 1.0]))


@pytest.mark.parametrize(("table", "message"), [
    ({"kind": "skewed"}, "partition.kind: expected one of iid, dirichlet, shards, by_key"),
    ({"kind": "dirichlet", "alpha": 0}, "partition.alpha: expected a number > 0"),
    ({"kind": "dirichlet", "alpha": "x"}, "partition.alpha"),
    ({"kind": "shards", "classes": 0}, "partition.classes"),
    ({"kind": "shards", "shards": 1.5}, "partition.shards"),
    ({"kind": "iid", "alfa": 1}, "partition.alfa: unknown key"),
])
def test_bad_settings_name_their_key(table: dict, message: str) -> None:
    with pytest.raises(PartitionError, match=message):
        PartitionConfig.from_mapping(table)


def test_too_many_shards_for_the_data() -> None:
    with pytest.raises(PartitionError, match="partition.classes"):
        partition(PartitionConfig("shards", shards=4, classes=3), seed=0, labels=np.arange(10))
    with pytest.raises(PartitionError, match="partition.min_examples"):
        partition(PartitionConfig("dirichlet", shards=4, min_examples=3), seed=0,
                  labels=np.zeros(10, dtype=int))


def test_shard_batches_stay_in_their_shard_and_resume() -> None:
    indices = np.array([3, 8, 11, 20, 21])
    stream = shard_batch_indices(indices, 3, seed=1, shard=2)
    batches = [next(stream) for _ in range(6)]
    assert all(set(b.tolist()) <= set(indices.tolist()) for b in batches)
    # the concatenated stream is a permutation of the shard per epoch (18 = 3 epochs + 3)
    flat = np.concatenate(batches)
    for epoch in range(3):
        assert sorted(flat[epoch * 5:(epoch + 1) * 5].tolist()) == indices.tolist()
    resumed = shard_batch_indices(indices, 3, seed=1, shard=2, start=4)
    assert [next(resumed).tolist() for _ in range(2)] == [b.tolist() for b in batches[4:]]
    other = shard_batch_indices(indices, 3, seed=1, shard=3)
    assert [b.tolist() for b in itertools.islice(other, 6)] != [b.tolist() for b in batches]


def test_array_dataset_keys_and_random_access() -> None:
    x, y = np.arange(8, dtype=np.float32).reshape(4, 2), np.array([0, 1, 0, 1], np.int32)
    data = ArrayDataset(x, y, x, y, train_keys=["u", "v", "u", "w"])
    assert data.train_keys().tolist() == ["u", "v", "u", "w"]
    assert data.train_labels().tolist() == [0, 1, 0, 1]
    batch = data.train_examples(np.array([2, 0]))
    assert batch.x.tolist() == [[4, 5], [0, 1]] and batch.y.tolist() == [0, 0]
    with pytest.raises(DatasetError, match="train_keys must hold one key per training example"):
        ArrayDataset(x, y, x, y, train_keys=["u"])
