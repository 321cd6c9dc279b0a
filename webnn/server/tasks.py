"""Tasks and their leases, in a book whose every operation costs O(log n) or less.

A unit of work (`TrainWork`: one training batch; `EvalWork`: one validation chunk of one evaluation)
is handed to a client as a `Task` with a lease. When the lease expires (or the client leaves) the
task closes as ``expired`` and its work goes back to be handed out again under a new task id; a late
submission of the old task id is refused with ``lease_expired``. A finished task keeps its answer
for `keep_seconds` so that a retried submission gets the first answer again.

Indexes (none is ever scanned whole by a request):

- leases by expiry: a binary heap of ``(expires, seq, id)`` with lazy deletion; an entry whose task
  is no longer open is skipped when it reaches the top. `due(now)` pops only entries with
  ``expires <= now``: O(k log n) for k due leases.
- finished tasks in finish order: a deque of ``(finished, id)``; `prune(now)` pops from the left
  while the oldest is older than `keep_seconds`.
- open tasks: a dict (for the rare whole-book walks: end of training, checkpoints) and a count per
  kind (for status), both O(1) to keep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import secrets
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Literal

TaskKind = Literal["train", "evaluate"]
TaskState = Literal["open", "done", "expired"]
ROLES = ("train", "evaluate", "any")
"""What a client may ask for: training tasks, evaluation tasks, or whatever is due."""


@dataclass(slots=True)
class TrainWork:
    """Training batch number `index` of shard `shard`'s data sequence, already encoded as a
    frame (shard 0 is the whole training set without a partition)."""

    index: int
    frame: bytes
    examples: int
    shard: int = 0


@dataclass(slots=True)
class EvalWork:
    """Chunk `chunk` of the validation set for evaluation `evaluation`."""

    evaluation: int
    chunk: int
    examples: int


@dataclass
class FollowUp:
    """The task leased right after a merge for the client that asked (update header ``next``),
    and the answer given then: a retry of the update gets this answer again."""

    task: Task | None
    answer: dict


@dataclass(slots=True)
class Task:
    """One lease of one unit of work to one session.

    `base_hold`: the lease holds its version's snapshot until it ends (strategies that need base
    weights); otherwise the version store keeps it only until the client fetched it.
    """

    id: str
    kind: TaskKind
    work: TrainWork | EvalWork
    version: int
    steps: int
    session: str
    issued: float
    expires: float
    state: TaskState = "open"
    finished: float | None = None
    result: dict | None = None
    error: Exception | None = None
    pending: asyncio.Future | None = field(default=None, repr=False)
    follow_up: FollowUp | None = None
    base_hold: bool = False
    uploaded: float | None = None  # when its first update request arrived (admission's T)
    learning_rate: float | None = None  # a train task's rate when not the spec's (task scaling)


class TaskBook:
    """Open tasks and recently finished ones, by id; see the module docstring for the indexes."""

    def __init__(self, keep_seconds: float) -> None:
        self._tasks: dict[str, Task] = {}
        self._open: dict[str, Task] = {}
        self._open_kinds: Counter[str] = Counter()
        self._expiry: list[tuple[float, int, str]] = []
        self._finished: deque[tuple[float, str]] = deque()
        self._seq = itertools.count()
        self.keep_seconds = keep_seconds

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def open_tasks(self) -> list[Task]:
        """Every open task (O(open); for the end of training and checkpoints, not requests)."""
        return list(self._open.values())

    def open_count(self, kind: TaskKind | None = None) -> int:
        """Open tasks (of `kind`), O(1)."""
        return len(self._open) if kind is None else self._open_kinds[kind]

    def issue(self, kind: TaskKind, work: TrainWork | EvalWork, version: int, steps: int,
              session: str, now: float, lease: float) -> Task:
        task = Task(id=f"t-{secrets.token_urlsafe(12)}", kind=kind, work=work, version=version,
                    steps=steps, session=session, issued=now, expires=now + lease)
        self._tasks[task.id] = task
        self._open[task.id] = task
        self._open_kinds[kind] += 1
        heapq.heappush(self._expiry, (task.expires, next(self._seq), task.id))
        return task

    def finish(self, task: Task, state: TaskState, now: float, result: dict | None = None) -> None:
        """Close `task` as `state`; a done training task drops its batch frame (nothing reads it
        again: retries get the stored answer)."""
        if task.state == "open" and self._open.pop(task.id, None) is not None:
            self._open_kinds[task.kind] -= 1
            self._finished.append((now, task.id))
        task.state = state
        task.finished = now
        task.result = result
        if state == "done" and isinstance(task.work, TrainWork):
            task.work = replace(task.work, frame=b"")

    def due(self, now: float) -> list[Task]:
        """Open tasks whose lease has run out, oldest first (submissions in progress excluded:
        they stay indexed and come up again once their submission ended)."""
        found: list[Task] = []
        deferred: list[tuple[float, int, str]] = []
        heap = self._expiry
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            task = self._open.get(entry[2])
            if task is None:
                continue  # finished meanwhile: lazy deletion
            if task.pending is not None:
                deferred.append(entry)
            else:
                found.append(task)
        for entry in deferred:
            heapq.heappush(heap, entry)
        return found

    def prune(self, now: float) -> None:
        """Forget finished tasks older than `keep_seconds` (in finish order, O(pruned))."""
        finished = self._finished
        while finished and now - finished[0][0] > self.keep_seconds:
            _, task_id = finished.popleft()
            task = self._tasks.get(task_id)
            if task is not None and task.state != "open":
                del self._tasks[task_id]
