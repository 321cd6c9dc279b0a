"""The batch feed: training batches in data order, the work queue of batches handed back, and the
validation chunks.

Training batches come from ``dataset.train_batches(batch_size * local_steps, seed, start=n)``; each
is encoded once as a frame (`TrainWork`). Work whose lease ran out comes back (`give_back`) and is
handed out again before new batches. `position` (the next batch number) and the batches still out
or queued are what a checkpoint stores; `resume` regenerates those batches, so a restarted server
hands out the same sequence.

With a partition (`webnn.data.partition`) the feed keeps one such sequence per shard: shard s's
batch b is ``shard_batch_indices(shards[s], examples_per_batch, seed, s, start=b)`` read through
``dataset.train_examples``; each shard has its own position and queue of work handed back, and
`take(s)` serves shard s only. Without one (``iid``) there is a single shard 0 whose sequence is
``dataset.train_batches`` exactly as before partitions existed.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from webnn.data.base import shard_batch_indices
from webnn.server.frames import encode_frame
from webnn.server.tasks import TrainWork


def frame_array(array: Any) -> np.ndarray:
    """Batches travel as float32, or int32 for integer data (token ids, class indices)."""
    array = np.asarray(array)
    return array.astype(np.int32 if np.issubdtype(array.dtype, np.integer) else np.float32,
                        copy=False)


class BatchFeed:
    """Training work for one model, per shard; see the module docstring."""

    def __init__(self, dataset: Any, examples_per_batch: int, seed: int,
                 shards: list[np.ndarray] | None = None) -> None:
        self.dataset = dataset
        self.examples_per_batch = examples_per_batch
        self.seed = seed
        self.shards = shards  # None: one iid stream (dataset.train_batches)
        count = 1 if shards is None else len(shards)
        self.positions = [0] * count
        self.queues: list[deque[TrainWork]] = [deque() for _ in range(count)]
        self._batches: list[Iterator[Any] | None] = [None] * count

    @property
    def count(self) -> int:
        """The number of shards (1 without a partition)."""
        return len(self.positions)

    @property
    def position(self) -> int:
        """The next batch number of shard 0 (the whole sequence without a partition)."""
        return self.positions[0]

    @property
    def queue(self) -> deque[TrainWork]:
        """Shard 0's work handed back."""
        return self.queues[0]

    def take(self, shard: int = 0) -> TrainWork:
        """Shard `shard`'s work handed back first, else the next batch of its sequence."""
        if self.queues[shard]:
            return self.queues[shard].popleft()
        batches = self._batches[shard]
        if batches is None:
            batches = self._batches[shard] = self._stream(shard, self.positions[shard])
        work = self._encode(shard, self.positions[shard], next(batches))
        self.positions[shard] += 1
        return work

    def give_back(self, work: TrainWork) -> None:
        """Work whose lease ended unfinished: handed out again next (to its shard's clients)."""
        self.queues[work.shard].appendleft(work)

    def clear(self) -> None:
        for queue in self.queues:
            queue.clear()

    def outstanding(self, leased: Iterable[TrainWork | int], shard: int = 0) -> list[int]:
        """Batch numbers of `shard` not yet merged: queued ones and `leased` ones (for
        checkpoints; plain ints in `leased` count as shard 0's)."""
        numbers = {w.index for w in self.queues[shard]}
        for work in leased:
            if isinstance(work, int):
                if shard == 0:
                    numbers.add(work)
            elif work.shard == shard:
                numbers.add(work.index)
        return sorted(numbers)

    def resume(self, position: int, outstanding: Iterable[int], shard: int = 0) -> None:
        """Continue shard `shard` at `position` with its `outstanding` batches queued first."""
        self.positions[shard] = position
        self._batches[shard] = None
        self.queues[shard].extend(self._regenerate(shard, i) for i in outstanding)

    def examples_of(self, shard: int) -> np.ndarray | None:
        """The training-set positions shard `shard` draws from (None without a partition)."""
        return None if self.shards is None else self.shards[shard]

    def _stream(self, shard: int, start: int) -> Iterator[Any]:
        if self.shards is None:
            return iter(self.dataset.train_batches(self.examples_per_batch, self.seed,
                                                   start=start))
        indices = shard_batch_indices(self.shards[shard], self.examples_per_batch, self.seed,
                                      shard, start)
        return (self.dataset.train_examples(index) for index in indices)

    def _encode(self, shard: int, index: int, batch: Any) -> TrainWork:
        x, y = frame_array(batch.x), frame_array(batch.y)
        frame = encode_frame({"kind": "train", "index": index, "examples": int(x.shape[0])},
                             {"x": x, "y": y})
        return TrainWork(index=index, frame=frame, examples=int(x.shape[0]), shard=shard)

    def _regenerate(self, shard: int, index: int) -> TrainWork:
        batches = self._stream(shard, index)
        try:
            return self._encode(shard, index, next(batches))
        finally:
            with contextlib.suppress(AttributeError):
                batches.close()  # type: ignore[attr-defined]


def encode_validation(dataset: Any, chunk_size: int) -> tuple[list[bytes], list[int]]:
    """The validation set as evaluation frames of `chunk_size` examples, and their sizes."""
    frames, examples = [], []
    for index, batch in enumerate(dataset.validation_chunks(chunk_size)):
        x, y = frame_array(batch.x), frame_array(batch.y)
        frames.append(encode_frame({"kind": "evaluate", "chunk": index,
                                    "examples": int(x.shape[0])}, {"x": x, "y": y}))
        examples.append(int(x.shape[0]))
    return frames, examples
