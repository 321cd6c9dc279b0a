"""The batch feed: training batches in data order, the work queue of batches handed back, and the
validation chunks.

Training batches come from ``dataset.train_batches(batch_size * local_steps, seed, start=n)``; each
is encoded once as a frame (`TrainWork`). Work whose lease ran out comes back (`give_back`) and is
handed out again before new batches. `position` (the next batch number) and the batches still out
or queued are what a checkpoint stores; `resume` regenerates those batches, so a restarted server
hands out the same sequence.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from webnn.server.frames import encode_frame
from webnn.server.tasks import TrainWork


def frame_array(array: Any) -> np.ndarray:
    """Batches travel as float32, or int32 for integer data (token ids, class indices)."""
    array = np.asarray(array)
    return array.astype(np.int32 if np.issubdtype(array.dtype, np.integer) else np.float32,
                        copy=False)


class BatchFeed:
    """Training work for one model; see the module docstring."""

    def __init__(self, dataset: Any, examples_per_batch: int, seed: int) -> None:
        self.dataset = dataset
        self.examples_per_batch = examples_per_batch
        self.seed = seed
        self.position = 0
        self.queue: deque[TrainWork] = deque()
        self._batches: Iterator[Any] | None = None

    def take(self) -> TrainWork:
        """Work handed back first, else the next batch of the sequence."""
        if self.queue:
            return self.queue.popleft()
        if self._batches is None:
            self._batches = iter(self.dataset.train_batches(
                self.examples_per_batch, self.seed, start=self.position))
        work = self._encode(self.position, next(self._batches))
        self.position += 1
        return work

    def give_back(self, work: TrainWork) -> None:
        """Work whose lease ended unfinished: handed out again next."""
        self.queue.appendleft(work)

    def clear(self) -> None:
        self.queue.clear()

    def outstanding(self, leased: Iterable[int]) -> list[int]:
        """Batch numbers not yet merged: queued ones and `leased` ones (for checkpoints)."""
        return sorted({w.index for w in self.queue} | set(leased))

    def resume(self, position: int, outstanding: Iterable[int]) -> None:
        """Continue at `position` with the `outstanding` batches queued first."""
        self.position = position
        self._batches = None
        self.queue.extend(self._regenerate(i) for i in outstanding)

    def _encode(self, index: int, batch: Any) -> TrainWork:
        x, y = frame_array(batch.x), frame_array(batch.y)
        frame = encode_frame({"kind": "train", "index": index, "examples": int(x.shape[0])},
                             {"x": x, "y": y})
        return TrainWork(index=index, frame=frame, examples=int(x.shape[0]))

    def _regenerate(self, index: int) -> TrainWork:
        batches = self.dataset.train_batches(self.examples_per_batch, self.seed, start=index)
        try:
            return self._encode(index, next(iter(batches)))
        finally:
            with contextlib.suppress(AttributeError):
                batches.close()


def encode_validation(dataset: Any, chunk_size: int) -> tuple[list[bytes], list[int]]:
    """The validation set as evaluation frames of `chunk_size` examples, and their sizes."""
    frames, examples = [], []
    for index, batch in enumerate(dataset.validation_chunks(chunk_size)):
        x, y = frame_array(batch.x), frame_array(batch.y)
        frames.append(encode_frame({"kind": "evaluate", "chunk": index,
                                    "examples": int(x.shape[0])}, {"x": x, "y": y}))
        examples.append(int(x.shape[0]))
    return frames, examples
