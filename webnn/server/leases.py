"""Lease hand-out and return for one model: issuing a task to a session, looking a session's task
up (with the protocol's refusals), serving its batch, and closing a lease that ran out or was
abandoned so its work is handed out again.

`Leases` holds values, never the coordinator: the lease book (`tasks.TaskBook`), the sessions,
the batch feed, the evaluation schedule, the version store, the lease time and two counters (tasks
issued and leases expired, by kind). What a lease holds and gives back:

- a training lease holds its version in the version store, either for good (``base_hold``:
  strategies that need the client's base weights, q8 sessions) or until its client fetched it;
  closing it releases that hold, and its batch goes back to the feed unless the run has ended;
- an evaluation lease's chunk goes back to the schedule (to be handed to another session).

Which task a session gets next (evaluation chunks first, training under admission) is the
coordinator's policy; this module only carries it out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from webnn.server.batch_feed import BatchFeed
from webnn.server.errors import ProtocolError
from webnn.server.evaluation import EvaluationSchedule
from webnn.server.sessions import Session, SessionRegistry
from webnn.server.tasks import EvalWork, Task, TaskBook, TaskKind, TrainWork
from webnn.server.versions import VersionSnapshots


@dataclass
class Leases:
    """Issues and takes back the leases of one model (see the module docstring).
    `validation_frames`: the encoded validation chunks, set once they are prepared."""

    tasks: TaskBook
    sessions: SessionRegistry
    feed: BatchFeed
    schedule: EvaluationSchedule
    versions: VersionSnapshots
    lease_seconds: float
    issued: Callable[[str], None]
    expired: Callable[[str], None]
    validation_frames: list[bytes] | None = None

    def issue(self, kind: TaskKind, work: TrainWork | EvalWork, version: int, steps: int,
              session: Session, now: float) -> Task:
        """A new task for `session`, leased for `lease_seconds` from `now`."""
        task = self.tasks.issue(kind, work, version, steps, session.token, now,
                                self.lease_seconds)
        session.open_tasks.add(task.id)
        self.issued(kind)
        return task

    def lookup(self, session: Session, task_id: str, kind: str | None = None) -> Task:
        """The task `task_id` of `session`: ``404 unknown_task`` (unknown, or not of `kind`),
        ``403 not_your_task``, its stored error, or ``409 lease_expired``. Expire due leases
        first (`expire`)."""
        task = self.tasks.get(task_id)
        if task is None:
            raise ProtocolError(404, "unknown_task", f"no task {task_id!r} (never issued, or "
                                "forgotten after a restart); ask for a new task")
        if kind is not None and task.kind != kind:
            raise ProtocolError(404, "unknown_task", f"task {task_id} is a {task.kind} task, "
                                f"not a {kind} task")
        if task.session != session.token:
            raise ProtocolError(403, "not_your_task",
                                f"task {task_id} was handed to another session")
        if task.error is not None:
            raise task.error
        if task.state == "expired":
            raise ProtocolError(409, "lease_expired",
                                f"the lease of task {task_id} ran out; its work was handed out "
                                "again. Ask for a new task")
        return task

    def batch_frame(self, task: Task) -> bytes:
        """The encoded frame of a task's batch (training batch or validation chunk)."""
        if isinstance(task.work, TrainWork):
            return task.work.frame
        assert self.validation_frames is not None
        return self.validation_frames[task.work.chunk]

    def expire(self, now: float, requeue: bool) -> None:
        """Close every lease due at `now` (`close_and_return`), counting each."""
        for task in self.tasks.due(now):
            self.expired(task.kind)
            self.close_and_return(task, now, requeue)

    def close_and_return(self, task: Task, now: float, requeue: bool) -> None:
        """Close an unfinished task as expired and give its work back: a training batch to the
        feed (unless not `requeue`: the run has ended), an evaluation chunk to the schedule."""
        self.tasks.finish(task, "expired", now)
        session = self.sessions.get(task.session)
        if session is not None:
            session.open_tasks.discard(task.id)
        if isinstance(task.work, TrainWork):
            self.release_version(task)
            if requeue:
                self.feed.give_back(task.work)
        else:
            self.schedule.give_back(task.work.evaluation, task.work.chunk, task.session)

    def release_version(self, task: Task) -> None:
        """End what a training lease holds in the version store (its base hold, or its pending
        fetch, which the session's other open leases of the same version keep: at most
        `max_open_tasks` of them, looked up by id)."""
        if task.base_hold:
            task.base_hold = False
            self.versions.release(task.version)
            return
        session = self.sessions.get(task.session)
        others = 0
        for task_id in session.open_tasks if session is not None else ():
            other = self.tasks.get(task_id)
            if (task_id != task.id and other is not None and other.kind == "train"
                    and other.version == task.version and not other.base_hold):
                others += 1
        self.versions.forget_fetch(task.version, task.session, keep=others)
