"""Pre-aggregation in a front-end: accepted updates of a `combinable` strategy are folded into
one `Partial` and written to the stream as one entry, so the merger reads one model-sized
record for several updates.

A group closes when it holds `max_count` updates; otherwise, from `window` seconds after its
first update on (checked every `window`), as soon as no other body is on its way to it
(`pending`: update bodies this front-end is reading, or read and is still decoding, screening or
claiming), and at the
latest `HOLD_WINDOWS * window` after its first update. So an update that arrives alone waits one
window, while under load a group gathers the bodies already being worked on (more updates per
stream entry: the merger's and Redis's work per update shrink) for a bounded wait. Each update's
answer waits until its group is in the stream (durable). The fold runs in a worker thread (numpy
releases the GIL); groups fold and commit concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from webnn.cluster.records import partial_fields
from webnn.merge.base import Partial, Strategy, Update

Commit = Callable[[list[str], list[str], list[bytes | str]], Awaitable[str]]
HOLD_WINDOWS = 8
"""A group waits for bodies on their way at most this many windows after its first update."""


class CommitLost(Exception):
    """A task of the group (its id is the message) was no longer claimed by this process when
    its entry was written (its claim ran out): nothing of the group was written. The others'
    front-end gives their tasks back to ``open`` (`scripts.UNCLAIM`) so their clients repeat
    the upload; the weights were folded (scratch), so the group cannot be written again."""


@dataclass
class _Group:
    tasks: list[str] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    done: asyncio.Future | None = None
    timer: asyncio.TimerHandle | None = None
    opened: float = 0.0
    """When its first update came (the loop's clock)."""


class Combiner:
    """Groups updates into partials; `add` returns the stream entry id once written."""

    def __init__(self, strategy: Strategy, commit: Commit, max_count: int, window: float,
                 label: str, pending: Callable[[], int] | None = None) -> None:
        self.strategy = strategy
        self.commit = commit
        self.max_count = max_count
        self.window = window
        self.label = label
        self.pending = pending
        """Received bodies on their way to the combiner (None: never wait for them)."""
        self.waiting = 0
        """Updates added whose group is not in the stream yet (open or being written)."""
        self._open: _Group | None = None
        self.sizes: list[int] = []

    async def add(self, task_id: str, update: Update, answer: str) -> str:
        """Add a claimed update (its weights are read until the group folds); wait until its
        group is in the stream. Raises `CommitLost` or the commit's error."""
        loop = asyncio.get_running_loop()
        group = self._open
        if group is None:
            group = self._open = _Group(done=loop.create_future(), opened=loop.time())
            group.timer = loop.call_later(self.window, self._due, group)
        group.tasks.append(task_id)
        group.updates.append(update)
        group.answers.append(answer)
        if len(group.tasks) >= self.max_count:
            self._close(group)
        assert group.done is not None
        self.waiting += 1
        try:
            return await asyncio.shield(group.done)
        finally:
            self.waiting -= 1

    def _due(self, group: _Group) -> None:
        """A window passed: close `group` unless bodies on their way may still join it (until
        `HOLD_WINDOWS` windows after its first update)."""
        if self._open is not group:
            return
        loop = asyncio.get_running_loop()
        held = loop.time() - group.opened
        if (self.pending is not None and self.pending() > 0
                and held + self.window <= HOLD_WINDOWS * self.window):
            group.timer = loop.call_later(self.window, self._due, group)
            return
        self._close(group)

    def _close(self, group: _Group) -> None:
        if self._open is group:
            self._open = None
            if group.timer is not None:
                group.timer.cancel()
            asyncio.ensure_future(self._write(group))

    async def _write(self, group: _Group) -> None:
        assert group.done is not None
        try:
            partial = await asyncio.to_thread(self._fold, group.updates)
            fields = partial_fields(group.tasks, partial, self.label)
            entry = await self.commit(group.tasks, group.answers, fields)
            self.sizes.append(len(group.tasks))
            del self.sizes[:-1000]
            group.done.set_result(entry)
        except BaseException as error:  # every waiting update gets the error
            group.done.set_exception(error)
            if not isinstance(error, Exception):
                raise

    def _fold(self, updates: list[Update]) -> Partial:
        partial: Partial | None = None
        for update in updates:
            partial = self.strategy.fold(partial, update)
        assert partial is not None
        return partial
