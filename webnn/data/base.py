"""The dataset interface: what a data module's ``load()`` returns and what the server reads from it.

Two forms, one interface (the server only calls the methods of `IterableDataset`):

- `ArrayDataset(x_train, y_train, x_val, y_val)`: numpy arrays (memory-mapped arrays from
  ``np.load(path, mmap_mode="r")`` work too, for data larger than memory).
- a subclass of `IterableDataset`, for data that is produced on the fly or streamed.

Training batches are an endless, deterministic stream: epoch e is the permutation
``default_rng([seed, e]).permutation(n)`` of the n training examples, the epochs are concatenated,
and batch b is positions ``b * batch_size ... (b + 1) * batch_size - 1`` of that stream. So every
batch is full, a batch may span two epochs, and batch b can be found without drawing batches
0 ... b-1 (the server persists how many batches it handed out and resumes with ``start``).

Partitioned training (`webnn.data.partition`) needs random access and what to split by: a dataset
gives `train_labels()` (class indices or one-hot rows, for ``dirichlet`` and ``shards``) and/or
`train_keys()` (one key per training example, for ``by_key``), and `train_examples(index)`. The
server then draws shard s's batches from its index array with `shard_batch_indices`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

WIRE_DTYPES = (np.dtype(np.float32), np.dtype(np.int32))
"""The dtypes a batch can carry on the wire (protocol frames)."""


class DatasetError(ValueError):
    """A dataset is malformed (inconsistent lengths or shapes, bad arguments); says where."""


@dataclass(frozen=True)
class Batch:
    """Examples `x` (first axis: examples) and their labels `y`."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])


class IterableDataset(ABC):
    """The interface the server reads data through.

    A subclass sets (as attributes or properties) `example_shape` (shape of one x, without the batch
    axis), `x_dtype`, `y_shape` (shape of one label: ``()`` for class indices, ``(classes,)`` for
    one-hot), `y_dtype`, `num_validation`, and optionally `num_train` (None when unknown), and
    implements `train_batches` and `validation_chunks`.
    """

    example_shape: tuple[int, ...]
    x_dtype: np.dtype
    y_shape: tuple[int, ...]
    y_dtype: np.dtype
    num_validation: int
    num_train: int | None = None

    @abstractmethod
    def train_batches(self, batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        """Endless training batches of exactly `batch_size` examples, reshuffled every epoch.

        The same `seed` gives the same sequence; `start` skips that many batches, so
        ``train_batches(b, s, start=n)`` yields what ``train_batches(b, s)`` yields after n batches.
        """

    @abstractmethod
    def validation_chunks(self, chunk_size: int) -> Iterator[Batch]:
        """The whole validation set once, in order, in chunks of `chunk_size` (the last may be
        shorter)."""

    def train_labels(self) -> np.ndarray | None:
        """The label of every training example in order (for label partitions); None: unknown."""
        return None

    def train_keys(self) -> np.ndarray | None:
        """One key (int or str) per training example, e.g. its document (for ``by_key``
        partitions); None: the data has no keys."""
        return None

    def train_examples(self, index: np.ndarray) -> Batch:
        """The training examples at positions `index` (partitioned training needs this)."""
        raise DatasetError(f"{type(self).__name__} has no random access to training examples "
                           "(train_examples); only the iid partition works with it")

    def describe(self) -> str:
        """One line for logs: sizes, shapes and dtypes."""
        train = "unknown number of" if self.num_train is None else f"{self.num_train}"
        return (f"{type(self).__name__}: {train} training, "
                f"{self.num_validation} validation examples; "
                f"x {np.dtype(self.x_dtype)} {tuple(self.example_shape)}, "
                f"y {np.dtype(self.y_dtype)} {tuple(self.y_shape)}")


Dataset = IterableDataset
"""What a data module's ``load()`` returns."""


def batch_indices(num_examples: int, batch_size: int, seed: int,
                  start: int = 0) -> Iterator[np.ndarray]:
    """Endless index batches over ``range(num_examples)`` (see the module docstring for the order).

    Epoch e is ``np.random.default_rng([seed, e]).permutation(num_examples)``; batch b holds
    positions ``b * batch_size ... (b + 1) * batch_size - 1`` of the concatenated epochs. Use it
    to write `train_batches` for any dataset with random access.
    """
    _check_positive("num_examples", num_examples)
    _check_positive("batch_size", batch_size)
    _check_non_negative("seed", seed)
    _check_non_negative("start", start)
    return _index_stream(int(num_examples), int(batch_size), int(seed), int(start))


def _index_stream(num_examples: int, batch_size: int, seed: int,
                  start: int, stream: tuple[int, ...] = ()) -> Iterator[np.ndarray]:
    position = start * batch_size
    epoch, offset = divmod(position, num_examples)
    order = _epoch_order(num_examples, seed, epoch, stream)
    while True:
        parts, needed = [], batch_size
        while needed:
            if offset == num_examples:
                epoch, offset = epoch + 1, 0
                order = _epoch_order(num_examples, seed, epoch, stream)
            take = min(needed, num_examples - offset)
            parts.append(order[offset:offset + take])
            offset += take
            needed -= take
        yield parts[0] if len(parts) == 1 else np.concatenate(parts)


def shard_batch_indices(indices: np.ndarray, batch_size: int, seed: int, shard: int,
                        start: int = 0) -> Iterator[np.ndarray]:
    """Endless batches of training-set positions drawn from one shard's `indices` only.

    The same construction as `batch_indices` over ``range(len(indices))`` with epoch order
    ``default_rng([seed, shard, e]).permutation(len(indices))``, mapped through `indices`; so the
    sequence is fixed by (seed, shard) and batch b is found without drawing the ones before.
    """
    indices = np.asarray(indices)
    _check_positive("len(indices)", len(indices))
    _check_positive("batch_size", batch_size)
    _check_non_negative("seed", seed)
    _check_non_negative("shard", shard)
    _check_non_negative("start", start)
    return (indices[local] for local in _index_stream(
        len(indices), int(batch_size), int(seed), int(start), stream=(int(shard),)))


def _epoch_order(num_examples: int, seed: int, epoch: int,
                 stream: tuple[int, ...] = ()) -> np.ndarray:
    return np.random.default_rng([int(seed), *stream, int(epoch)]).permutation(num_examples)


def chunk_bounds(total: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks covering ``range(total)`` once, in order."""
    _check_positive("chunk_size", chunk_size)
    return ((begin, min(begin + chunk_size, total)) for begin in range(0, total, chunk_size))


class ArrayDataset(IterableDataset):
    """A dataset held in numpy arrays (or memory-mapped arrays): ``x_*[i]`` is labelled ``y_*[i]``.

    `train_keys` (optional): one key per training example (ints or strings, e.g. the document or
    writer an example comes from), for ``by_key`` partitions. Raises `DatasetError` when the
    arrays do not fit together (lengths, shapes, dtypes of the training and validation parts).
    Whether they fit the model is `check_dataset`'s job.
    """

    def __init__(self, x_train: Any, y_train: Any, x_val: Any, y_val: Any,
                 train_keys: Any = None) -> None:
        self.x_train, self.y_train = _as_array(x_train, "x_train"), _as_array(y_train, "y_train")
        self.x_val, self.y_val = _as_array(x_val, "x_val"), _as_array(y_val, "y_val")
        for x_name, y_name in (("x_train", "y_train"), ("x_val", "y_val")):
            x, y = getattr(self, x_name), getattr(self, y_name)
            if len(x) != len(y):
                raise DatasetError(f"{x_name} has {len(x)} examples but {y_name} has {len(y)}")
        if len(self.x_train) == 0:
            raise DatasetError("x_train holds no examples")
        for train_name, val_name in (("x_train", "x_val"), ("y_train", "y_val")):
            train, val = getattr(self, train_name), getattr(self, val_name)
            if train.shape[1:] != val.shape[1:]:
                raise DatasetError(f"{val_name} examples have shape {val.shape[1:]} but "
                                   f"{train_name} examples have shape {train.shape[1:]}")
            if train.dtype != val.dtype:
                raise DatasetError(f"{val_name} is {val.dtype} but {train_name} is {train.dtype}")
        self.example_shape = tuple(int(d) for d in self.x_train.shape[1:])
        self.x_dtype = self.x_train.dtype
        self.y_shape = tuple(int(d) for d in self.y_train.shape[1:])
        self.y_dtype = self.y_train.dtype
        self.num_train: int = len(self.x_train)
        self.num_validation = len(self.x_val)
        self._keys = None if train_keys is None else _as_array(train_keys, "train_keys")
        if self._keys is not None and (self._keys.ndim != 1 or len(self._keys) != self.num_train):
            raise DatasetError(f"train_keys must hold one key per training example "
                               f"({self.num_train}), got shape {self._keys.shape}")

    def train_labels(self) -> np.ndarray:
        return self.y_train

    def train_keys(self) -> np.ndarray | None:
        return self._keys

    def train_examples(self, index: np.ndarray) -> Batch:
        return Batch(self.x_train[index], self.y_train[index])

    def train_batches(self, batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        indices = batch_indices(self.num_train, batch_size, seed, start)
        return (Batch(self.x_train[index], self.y_train[index]) for index in indices)

    def validation_chunks(self, chunk_size: int) -> Iterator[Batch]:
        bounds = chunk_bounds(self.num_validation, chunk_size)
        return (Batch(self.x_val[begin:stop], self.y_val[begin:stop]) for begin, stop in bounds)


def _as_array(value: Any, name: str) -> np.ndarray:
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.ndim == 0:
        raise DatasetError(f"{name} must be an array with one entry per example, got a scalar")
    return array


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise DatasetError(f"{name} must be an integer >= 1, got {value!r}")


def _check_non_negative(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise DatasetError(f"{name} must be an integer >= 0, got {value!r}")
