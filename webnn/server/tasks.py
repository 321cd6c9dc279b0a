"""Tasks and their leases.

A unit of work (`TrainWork`: one training batch; `EvalWork`: one validation chunk of one evaluation)
is handed to a client as a `Task` with a lease. When the lease expires (or the client leaves) the
task closes as ``expired`` and its work goes back to be handed out again under a new task id; a late
submission of the old task id is refused with ``lease_expired``. A finished task keeps its answer
for `keep_seconds` so that a retried submission gets the first answer again.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Literal

TaskKind = Literal["train", "evaluate"]
TaskState = Literal["open", "done", "expired"]
ROLES = ("train", "evaluate", "any")
"""What a client may ask for: training tasks, evaluation tasks, or whatever is due."""


@dataclass
class TrainWork:
    """Training batch number `index` of the data sequence, already encoded as a frame."""

    index: int
    frame: bytes
    examples: int


@dataclass
class EvalWork:
    """Chunk `chunk` of the validation set for evaluation `evaluation`."""

    evaluation: int
    chunk: int
    examples: int


@dataclass
class Task:
    """One lease of one unit of work to one session."""

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


class TaskBook:
    """Open tasks and recently finished ones, by id."""

    def __init__(self, keep_seconds: float) -> None:
        self._tasks: dict[str, Task] = {}
        self.keep_seconds = keep_seconds

    def __iter__(self):
        return iter(list(self._tasks.values()))

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def open_tasks(self) -> list[Task]:
        return [t for t in self._tasks.values() if t.state == "open"]

    def issue(self, kind: TaskKind, work: TrainWork | EvalWork, version: int, steps: int,
              session: str, now: float, lease: float) -> Task:
        task = Task(id=f"t-{secrets.token_urlsafe(12)}", kind=kind, work=work, version=version,
                    steps=steps, session=session, issued=now, expires=now + lease)
        self._tasks[task.id] = task
        return task

    def finish(self, task: Task, state: TaskState, now: float, result: dict | None = None) -> None:
        task.state = state
        task.finished = now
        task.result = result

    def due(self, now: float) -> list[Task]:
        """Open tasks whose lease has run out (submission in progress excluded)."""
        return [t for t in self._tasks.values()
                if t.state == "open" and t.expires <= now and t.pending is None]

    def prune(self, now: float) -> None:
        """Forget finished tasks older than `keep_seconds`."""
        old = [i for i, t in self._tasks.items()
               if t.state != "open" and t.finished is not None
               and now - t.finished > self.keep_seconds]
        for task_id in old:
            del self._tasks[task_id]
