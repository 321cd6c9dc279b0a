"""Updates waiting for the merge lock, merged in the order they came, several at a time.

While the merge thread works on one update, others arrive and wait. One at a time, each would
take its own pass over the model, its own snapshot of a version nobody will fetch (the next
merge replaces it at once), its own hand-off to the thread and back. `MergeQueue` instead lets
one task (the *drainer*) take the lock and everything queued by then, up to `most()` entries,
and hand them to `run_batch`, which sets each entry's future: its own result or its own error.
Entries are taken first in, first out, so the merges happen in arrival order whatever
`run_batch` does with them (the coordinator merges a batch in one pass when it can, one by one
otherwise: `Coordinator._merge_batch`).

`merge(item)` queues `item` and waits for its entry's result. A caller cancelled before its
entry was taken leaves the queue; once taken, the merge goes on without it (as a merge already
in the thread did before). Nothing here is module-level state; the queue belongs to one served
model's coordinator.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class Entry(Generic[T]):
    """One queued item and the future its caller waits on."""

    item: T
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class MergeQueue(Generic[T]):
    """See the module docstring. `changed(waiting)` is called whenever the number of waiting
    entries changes (the merge-queue gauge, admission's view)."""

    def __init__(self, lock: asyncio.Lock,
                 run_batch: Callable[[list[Entry[T]]], Awaitable[None]],
                 most: Callable[[], int], changed: Callable[[int], None]) -> None:
        self._lock = lock
        self._run_batch = run_batch
        self._most = most
        self._changed = changed
        self._waiting: deque[Entry[T]] = deque()
        self._drainer: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Entries queued and not yet taken into a batch."""
        return len(self._waiting)

    async def drained(self) -> None:
        """Wait until what is queued now has merged (the server stopping: before its last
        checkpoint)."""
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)

    async def merge(self, item: T) -> Any:
        """Queue `item`; its result (or error) once its batch has run."""
        entry: Entry[T] = Entry(item)
        # a caller that stopped waiting must not leave an unretrieved error behind
        entry.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append(entry)
        self._changed(len(self._waiting))
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        try:
            return await asyncio.shield(entry.done)
        except asyncio.CancelledError:
            if entry in self._waiting:  # not taken yet: it never merges
                self._waiting.remove(entry)
                self._changed(len(self._waiting))
            raise

    async def _drain(self) -> None:
        try:
            while self._waiting:
                async with self._lock:
                    count = max(1, min(len(self._waiting), self._most()))
                    batch = [self._waiting.popleft() for _ in range(count)]
                    self._changed(len(self._waiting))
                    try:
                        await self._run_batch(batch)
                    except Exception as error:  # `run_batch` settles its entries; a bug's net
                        for entry in batch:
                            if not entry.done.done():
                                entry.done.set_exception(error)
                    finally:  # cancelled midway (the server stopping)
                        for entry in batch:
                            if not entry.done.done():
                                entry.done.cancel()
        finally:
            self._drainer = None
            if self._waiting:  # only when cancelled: what is still queued never merges
                for entry in self._waiting:
                    entry.done.cancel()
                self._waiting.clear()
                self._changed(0)
