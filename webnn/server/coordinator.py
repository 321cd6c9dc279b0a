"""The coordinator: versions, steps t and merges; tasks and leases; evaluations; the end.

Counters: `version` (bumped when the strategy says the model changed), `model.steps` (WebNN's t, set
by the strategy), `merges` (updates handed to the strategy). Each accepted update is merged as it
arrives (no barrier): merges are serialised by an `asyncio.Lock` and run in a worker thread, so the
server keeps answering while it merges. Staleness = current version - the task's base version.

Weights of every version still referenced (by an open train lease, or an evaluation in progress) are
kept as immutable byte snapshots; a version nobody references is dropped. The current version is
always kept. Training batches come from ``dataset.train_batches(batch_size * local_steps, seed,
start=n)``; `n` and the batches still out on lease are checkpointed, so a restarted server hands out
the same sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from webnn.merge.base import ModelState, StrategyState, Update
from webnn.merge.screening import Screen, ScreenResult
from webnn.server.config import ModelParts, ServeConfig
from webnn.server.errors import ProtocolError, bad_field
from webnn.server.evaluation import ChunkResult, Evaluation
from webnn.server.events import EventBus
from webnn.server.export import export_tfjs, model_json
from webnn.server.frames import encode_frame
from webnn.server.metrics import Metrics
from webnn.server.sessions import Session, SessionRegistry
from webnn.server.store import Checkpoint, StateError, Store, layout_fingerprint
from webnn.server.tasks import EvalWork, Task, TaskBook, TrainWork
from webnn.server.updates import UpdateHeader, decode_update, finite_float
from webnn.server.versions import Snapshot, VersionSnapshots

log = logging.getLogger("webnn.server")

INVALID_UPDATE_CODES = frozenset({"wrong_length", "not_finite", "bad_frame", "truncated",
                                  "wrong_content_type", "bad_field", "too_large", "bad_json",
                                  "norm_too_large"})
STATE_FORMAT = 1


def _frame_array(array: np.ndarray) -> np.ndarray:
    """Batches travel as float32, or int32 for integer data (token ids, class indices)."""
    array = np.asarray(array)
    return array.astype(np.int32 if np.issubdtype(array.dtype, np.integer) else np.float32,
                        copy=False)


def _number(body: dict, key: str, *, optional: bool) -> float | None:
    value = body.get(key)
    if value is None:
        if optional:
            return None
        raise bad_field(f"$.{key}", "required number is missing")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_field(f"$.{key}", f"must be a number, got {type(value).__name__}")
    number = finite_float(value)
    if number is None:
        raise ProtocolError(400, "not_finite", f"$.{key} must be a finite number, got {value!r}")
    return number


class Coordinator:
    """Owns one model's training state; the HTTP routes are a thin layer over its methods."""

    def __init__(self, config: ServeConfig, parts: ModelParts, metrics: Metrics, events: EventBus,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self.metrics, self.events, self.clock = config, metrics, events, clock
        self.spec, self.dataset, self.strategy, self.seed = (
            parts.spec, parts.dataset, parts.strategy, parts.seed)
        self.layout = self.spec.compiled.layout
        self.screen = (Screen(parts.screening, self.layout)
                       if parts.screening is not None and parts.screening.checks_norm else None)
        bounds = [config.max_staleness,
                  parts.screening.max_staleness if parts.screening is not None else None]
        # the staleness cutoff: the tighter of max_staleness and screening.max_staleness
        self.max_staleness = min((b for b in bounds if b is not None), default=None)
        training = self.spec.training
        self.batch_size = int(training.batch_size)
        self.local_steps = int(training.local_steps)
        self.eval_every_merges = config.eval_every_merges or training.validation_every_merges
        self.eval_every_seconds = config.eval_every_seconds or training.validation_every_seconds
        self.eval_chunk_size = int(config.eval_chunk_size or training.validation_chunk_size or 256)
        self.store = Store(config.state_dir) if config.state_dir is not None else None
        self.sessions = SessionRegistry()
        self.tasks = TaskBook(keep_seconds=max(600.0, 4 * config.lease_seconds))
        self.lock = asyncio.Lock()

        self.model = ModelState(weights=self.spec.compiled.initial_weights(self.seed), steps=0,
                                version=0)
        self.layout.check(self.model.weights)
        self.merges = 0
        self.updates_accepted = 0
        self.state = "running"
        self.end_reason: str | None = None
        self.finishing_since: float | None = None
        self.history: list[dict] = []
        self.next_batch = 0
        self.train_queue: deque[TrainWork] = deque()
        self.evaluation: Evaluation | None = None
        self.eval_seq = 0
        self.last_eval_merges = 0
        self.last_eval_elapsed = 0.0
        self.elapsed_before = 0.0
        self.started = clock()
        self.last_checkpoint = (0, 0, self.started)  # merges, history length, time
        self._batches: Iterator[Any] | None = None
        self._val_frames: list[bytes] | None = None
        self._val_examples: list[int] = []
        self._background: set[asyncio.Task] = set()
        self.rejected: Counter[str] = Counter()  # refused updates/evaluations by error code
        # submitted task id -> the task leased right after its merge (update header "next")
        self.follow_ups: dict[str, Task | None] = {}
        self._ticker: asyncio.Task | None = None

        checkpoint = self.store.load(self.layout) if self.store is not None else None
        if checkpoint is not None:
            self._resume(checkpoint)
        self.versions = VersionSnapshots(self.model.version, self._snapshot())
        self._update_gauges()

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Prepare validation chunks, start the initial evaluation and the periodic tick."""
        if getattr(self.dataset, "num_validation", 0):
            self._val_frames, self._val_examples = await asyncio.to_thread(self._encode_validation)
        if (self.config.evaluate_initial and self._val_frames and self.state != "ended"
                and not any(h["version"] == 0 for h in self.history)):
            if 0 not in self.versions:
                initial = self.spec.compiled.initial_weights(self.seed)
                self.versions.add(0, Snapshot(bytes(self.layout.to_bytes(initial)), 0))
            self._start_evaluation(0, 0, 0)
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        """Stop the tick, wait for background work and write a last checkpoint."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.store is not None:
            await self.checkpoint()

    def elapsed(self) -> float:
        """Seconds of training so far, across restarts."""
        return self.elapsed_before + self.clock() - self.started

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    # ------------------------------------------------------------------------------ sessions

    def join(self, info: dict) -> Session:
        session = self.sessions.join(info, self.clock())
        self.metrics.active_clients.set(len(self.sessions))
        self.events.publish("client", {"event": "join", "clientId": session.client_id,
                                       "kind": session.kind, "clients": len(self.sessions)})
        return session

    def leave(self, session: Session) -> None:
        now = self.clock()
        for task_id in list(session.open_tasks):
            task = self.tasks.get(task_id)
            if task is not None and task.state == "open" and task.pending is None:
                self._close_and_return(task, now)
        self.sessions.remove(session.token)
        self.metrics.active_clients.set(len(self.sessions))
        self.events.publish("client", {"event": "leave", "clientId": session.client_id,
                                       "clients": len(self.sessions)})

    def session(self, token: str | None) -> Session:
        session = self.sessions.get(token)
        if session is None:
            raise ProtocolError(401, "unknown_session",
                                "unknown or expired session token (X-WebNN-Session); join again")
        session.last_seen = self.clock()
        return session

    def check_cut_off(self, session: Session) -> None:
        wait = session.cut_off_until - self.clock()
        if wait > 0:
            raise ProtocolError(
                429, "cut_off",
                f"too many invalid updates in a row ({self.config.max_invalid_updates}); "
                f"this session is cut off for {wait:.0f} more seconds",
                headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def note_invalid(self, session: Session, code: str) -> None:
        """Count a refused submission; a streak of them cuts the session off for a while."""
        self._count_refusal(code)
        session.updates_rejected += 1
        if code not in INVALID_UPDATE_CODES:
            return
        session.invalid_streak += 1
        if session.invalid_streak >= self.config.max_invalid_updates:
            session.invalid_streak = 0
            session.cut_off_until = self.clock() + self.config.cut_off_seconds
            log.warning("client %s cut off for %.0f s after %d invalid updates",
                        session.client_id, self.config.cut_off_seconds,
                        self.config.max_invalid_updates)

    def _count_refusal(self, code: str) -> None:
        """One refused update or evaluation: the Prometheus counter and `status().rejected`."""
        self.metrics.updates_rejected.labels(code).inc()
        self.rejected[code] += 1

    # --------------------------------------------------------------------------------- tasks

    def next_task(self, session: Session, role: str) -> Task | None:
        """The next task for `session` (evaluation chunks first), or None when there is none."""
        now = self.clock()
        self._expire(now)
        if self.state != "running":
            return None
        evaluation = self.evaluation
        if role in ("evaluate", "any") and evaluation is not None and evaluation.pending:
            chunk = evaluation.pending.popleft()
            work = EvalWork(evaluation.id, chunk, evaluation.chunk_examples[chunk])
            return self._issue("evaluate", work, evaluation.version, evaluation.steps, session,
                               now)
        if role in ("train", "any") and self.finishing_since is None:
            work = self.train_queue.popleft() if self.train_queue else self._new_train_work()
            self.versions.hold(self.model.version)
            return self._issue("train", work, self.model.version, self.current_steps, session,
                               now)
        return None

    def _issue(self, kind: str, work: TrainWork | EvalWork, version: int, steps: int,
               session: Session, now: float) -> Task:
        task = self.tasks.issue(kind, work, version, steps, session.token, now,  # type: ignore[arg-type]
                                self.config.lease_seconds)
        session.open_tasks.add(task.id)
        self.metrics.tasks_issued.labels(kind).inc()
        return task

    def _new_train_work(self) -> TrainWork:
        if self._batches is None:
            self._batches = iter(self.dataset.train_batches(
                self.batch_size * self.local_steps, self.seed, start=self.next_batch))
        batch = next(self._batches)
        work = self._train_work(self.next_batch, batch)
        self.next_batch += 1
        return work

    def _train_work(self, index: int, batch: Any) -> TrainWork:
        x, y = _frame_array(batch.x), _frame_array(batch.y)
        frame = encode_frame({"kind": "train", "index": index, "examples": int(x.shape[0])},
                             {"x": x, "y": y})
        return TrainWork(index=index, frame=frame, examples=int(x.shape[0]))

    def _regenerate_batch(self, index: int) -> TrainWork:
        batches = self.dataset.train_batches(self.batch_size * self.local_steps, self.seed,
                                             start=index)
        try:
            return self._train_work(index, next(iter(batches)))
        finally:
            with contextlib.suppress(AttributeError):
                batches.close()

    def _encode_validation(self) -> tuple[list[bytes], list[int]]:
        frames, examples = [], []
        for index, batch in enumerate(self.dataset.validation_chunks(self.eval_chunk_size)):
            x, y = _frame_array(batch.x), _frame_array(batch.y)
            frames.append(encode_frame({"kind": "evaluate", "chunk": index,
                                        "examples": int(x.shape[0])}, {"x": x, "y": y}))
            examples.append(int(x.shape[0]))
        return frames, examples

    def task(self, session: Session, task_id: str, kind: str | None = None) -> Task:
        """The task `task_id` of `session`; raises unknown_task / not_your_task / lease_expired."""
        self._expire(self.clock())
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

    def batch(self, session: Session, task_id: str) -> bytes:
        """The frame of a task's batch (training batch or validation chunk)."""
        task = self.task(session, task_id)
        if task.state != "open":
            raise ProtocolError(409, "task_closed", f"task {task_id} is already finished")
        if isinstance(task.work, TrainWork):
            return task.work.frame
        assert self._val_frames is not None
        return self._val_frames[task.work.chunk]

    def _expire(self, now: float) -> None:
        for task in self.tasks.due(now):
            self.metrics.leases_expired.labels(task.kind).inc()
            self._close_and_return(task, now)

    def _close_and_return(self, task: Task, now: float) -> None:
        """Close an unfinished task as expired and put its work back to be handed out again."""
        self.tasks.finish(task, "expired", now)
        session = self.sessions.get(task.session)
        if session is not None:
            session.open_tasks.discard(task.id)
        if isinstance(task.work, TrainWork):
            self.versions.release(task.version)
            if self.state != "ended":
                self.train_queue.appendleft(task.work)
        elif (self.evaluation is not None and self.evaluation.id == task.work.evaluation
              and task.work.chunk not in self.evaluation.results):
            self.evaluation.pending.appendleft(task.work.chunk)

    # ------------------------------------------------------------------------------- weights

    def weights(self, version: int | None) -> tuple[int, int, bytes]:
        """``(version, steps, bytes)`` of `version` (None = current); 404 if not held."""
        if version is None:
            version = self.model.version
        snapshot = self.versions.get(version)
        if snapshot is None:
            raise ProtocolError(404, "unknown_version",
                                f"version {version} is not held (current version is "
                                f"{self.model.version}; only versions referenced by open tasks "
                                "are kept)")
        return version, snapshot.steps, snapshot.data

    @property
    def current_steps(self) -> int:
        """Steps t of the current version. ``model.steps`` runs ahead of it while a merge is in
        its worker thread (the version is bumped on the event loop afterwards)."""
        snapshot = self.versions.get(self.model.version)
        assert snapshot is not None  # the current version is always held
        return snapshot.steps

    def _snapshot(self) -> Snapshot:
        """The current weights as an immutable wire copy (clients fetch it while we merge on)."""
        return Snapshot(bytes(self.layout.to_bytes(self.model.weights)), self.model.steps)

    # ------------------------------------------------------------------------------- updates

    async def submit_update(self, session: Session, task: Task, body: bytes) -> dict:
        """Validate and merge one update; a retry of a finished task gets the first answer."""
        if task.result is not None:
            return task.result
        if task.error is not None:
            raise task.error
        if task.pending is not None:
            return await asyncio.shield(task.pending)
        if task.state != "open":
            raise ProtocolError(409, "task_closed", f"task {task.id} is already finished")
        self.check_cut_off(session)
        try:
            weights, header = decode_update(body, self.layout, task_id=task.id,
                                            task_version=task.version,
                                            max_steps=self.local_steps)
        except ProtocolError as error:
            self.note_invalid(session, error.code)
            raise
        self._check_can_merge(session, task)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        task.pending = future
        try:
            result = await self._merge(session, task, weights, header)
        except BaseException as error:
            task.pending = None
            failure = error if isinstance(error, Exception) else RuntimeError("cancelled")
            future.set_exception(failure)
            raise
        future.set_result(result)
        return result

    def _check_can_merge(self, session: Session, task: Task) -> None:
        if self.state == "ended" or self.finishing_since is not None:
            self._close_and_return(task, self.clock())
            self._count_refusal("ended")
            raise ProtocolError(409, "ended", f"training has ended ({self.end_reason}); "
                                "no more updates are merged")
        staleness = self.model.version - task.version
        bound = self.max_staleness
        if bound is not None and staleness > bound:
            error = ProtocolError(409, "too_stale",
                                  f"update is {staleness} versions behind (base {task.version}, "
                                  f"current {self.model.version}); the bound is {bound}. Its "
                                  "batch is handed out again")
            self._close_and_return(task, self.clock())
            task.error = error
            self._count_refusal("too_stale")
            raise error

    async def _merge(self, session: Session, task: Task, weights: np.ndarray,
                     header: UpdateHeader) -> dict:
        work = task.work
        assert isinstance(work, TrainWork)
        async with self.lock:
            # again under the lock: merges queued before this one may have ended the run or made
            # this update staler than the bound since the first check
            self._check_can_merge(session, task)
            staleness = self.model.version - task.version
            base = np.frombuffer(self.versions.get(task.version).data, dtype=np.float32)
            update = Update(weights=weights, base_version=task.version, base_steps=task.steps,
                            local_steps=header.steps, staleness=staleness,
                            client=session.client_id,
                            base_weights=base if self.strategy.needs_base_weights else None,
                            examples=work.examples)
            started = time.perf_counter()
            try:
                verdict, changed, snapshot = await asyncio.to_thread(
                    self._merge_in_thread, update, base)
            except Exception:
                # a failing strategy may have half-written the buffer: restore the current version
                current = self.versions.get(self.model.version)
                self.model.weights[...] = np.frombuffer(current.data, dtype=np.float32)
                self.model.steps = current.steps
                raise
            if verdict is not None and verdict.refused:
                self.note_invalid(session, verdict.reason or "refused")
                raise ProtocolError(400, verdict.reason or "refused", verdict.message)
            self.metrics.merge_seconds.observe(time.perf_counter() - started)
            self.merges += 1
            self.updates_accepted += 1
            if changed:
                self.model.version += 1
                self.versions.advance(self.model.version, snapshot)
        now = self.clock()
        self.tasks.finish(task, "done", now)
        session.open_tasks.discard(task.id)
        self.versions.release(task.version)
        result = {"protocol": 1, "accepted": True, "version": self.model.version,
                  "merged": bool(changed), "staleness": staleness, "steps": self.current_steps,
                  "merges": self.merges,
                  "clipped": verdict is not None and verdict.action == "clipped"}
        task.result = result
        self._record_update(session, work, header, staleness, changed)
        self._after_merge()
        if header.next_role is not None:
            # Leased after the merge: the follow-up starts from the newest version, no staleness.
            self.follow_ups[task.id] = self.next_task(session, header.next_role)
        return result

    def _merge_in_thread(self, update: Update, base: np.ndarray
                         ) -> tuple[ScreenResult | None, bool, Snapshot | None]:
        """Screen the update against its base weights (norm bound / clipping), then merge it."""
        verdict = None
        if self.screen is not None:
            verdict = self.screen.check(update.weights, base)
            if verdict.refused:
                return verdict, False, None
        changed = bool(self.strategy.merge(self.model, update))
        snapshot = self._snapshot() if changed else None
        return verdict, changed, snapshot

    def _record_update(self, session: Session, work: TrainWork, header: UpdateHeader,
                       staleness: int,
                       changed: bool) -> None:
        session.invalid_streak = 0
        session.updates_accepted += 1
        session.examples_trained += work.examples
        session.last_staleness = staleness
        session.compute_seconds += header.timings.get("compute", 0.0)
        if header.loss is not None:
            session.last_loss = header.loss
        if header.accuracy is not None:
            session.last_accuracy = header.accuracy
        self.metrics.merges.inc()
        self.metrics.updates_accepted.inc()
        self.metrics.staleness.observe(staleness)
        if changed:
            self.metrics.versions.inc()
        self._update_gauges()
        self.events.publish("merge", {
            "version": self.model.version, "steps": self.current_steps, "merges": self.merges,
            "staleness": staleness, "merged": changed, "clientId": session.client_id,
            "loss": session.last_loss, "accuracy": session.last_accuracy, "time": self.clock()})

    def _after_merge(self) -> None:
        self._maybe_start_evaluation()
        max_merges = self.config.max_merges
        if max_merges is not None and self.merges >= max_merges:
            self._finish(f"max_merges={max_merges} reached")
        every = self.config.checkpoint_every_merges
        if self.store is not None and every and self.merges - self.last_checkpoint[0] >= every:
            self.last_checkpoint = (self.merges, *self.last_checkpoint[1:])
            self._spawn(self.checkpoint())

    def _update_gauges(self) -> None:
        self.metrics.version.set(self.model.version)
        self.metrics.steps.set(self.current_steps)

    # --------------------------------------------------------------------------- evaluations

    def _start_evaluation(self, version: int, steps: int, merges: int) -> None:
        self.eval_seq += 1
        self.evaluation = Evaluation(id=self.eval_seq, version=version, steps=steps,
                                     merges=merges, started=self.elapsed(),
                                     chunk_examples=list(self._val_examples))
        self.versions.hold(version)

    def _maybe_start_evaluation(self) -> None:
        if self.evaluation is not None or not self._val_frames or self.state == "ended":
            return
        if self.finishing_since is not None:
            due = not any(h["version"] == self.model.version for h in self.history)
        elif self.merges <= self.last_eval_merges:
            return
        else:
            due = bool(self.eval_every_merges
                       and self.merges - self.last_eval_merges >= self.eval_every_merges)
            due |= bool(self.eval_every_seconds
                        and self.elapsed() - self.last_eval_elapsed >= self.eval_every_seconds)
        if due:
            self._start_evaluation(self.model.version, self.current_steps, self.merges)

    def submit_evaluation(self, session: Session, task: Task, body: dict) -> dict:
        """Record one chunk's mean loss/accuracy; the last chunk completes the evaluation."""
        if task.result is not None:
            return task.result
        if task.state != "open":
            raise ProtocolError(409, "task_closed", f"task {task.id} is already finished")
        work = task.work
        assert isinstance(work, EvalWork)
        try:
            loss = _number(body, "loss", optional=True)  # null: the client's loss was not finite
            accuracy = _number(body, "accuracy", optional=True)
            examples = body.get("examples")
            if isinstance(examples, bool) or not isinstance(examples, int):
                raise bad_field("$.examples", f"must be an integer, got {examples!r}")
            if examples != work.examples:
                raise bad_field("$.examples", f"chunk {work.chunk} holds {work.examples} "
                                f"examples, got {examples}")
            if accuracy is not None and not 0 <= accuracy <= 1:
                raise bad_field("$.accuracy", f"must be between 0 and 1, got {accuracy}")
        except ProtocolError as error:
            self.note_invalid(session, error.code)
            raise
        now = self.clock()
        self.tasks.finish(task, "done", now, {"protocol": 1, "accepted": True})
        session.open_tasks.discard(task.id)
        session.evaluations += 1
        session.invalid_streak = 0
        evaluation = self.evaluation
        if evaluation is not None and evaluation.id == work.evaluation:
            evaluation.results[work.chunk] = ChunkResult(loss, accuracy, examples)
            if evaluation.complete:
                self._complete_evaluation(evaluation)
        assert task.result is not None
        return task.result

    def _complete_evaluation(self, evaluation: Evaluation) -> None:
        loss, accuracy, examples = evaluation.combined()
        entry = {"time": self.clock(), "elapsed": round(self.elapsed(), 3),
                 "version": evaluation.version, "steps": evaluation.steps,
                 "merges": evaluation.merges, "valLoss": loss, "valAccuracy": accuracy,
                 "examples": examples}
        self.history.append(entry)
        self.evaluation = None
        self.versions.release(evaluation.version)
        if evaluation.version != 0 or evaluation.merges:
            self.last_eval_merges = evaluation.merges
            self.last_eval_elapsed = evaluation.started
        self.metrics.evaluations.inc()
        if loss is not None:
            self.metrics.val_loss.set(loss)
        if accuracy is not None:
            self.metrics.val_accuracy.set(accuracy)
        self.events.publish("evaluation", entry)
        target = self.config.target_accuracy
        if target is not None and accuracy is not None and accuracy >= target:
            self._end(f"target_accuracy={target} reached ({accuracy:.4f})")
        elif self.finishing_since is not None and evaluation.version == self.model.version:
            self._end(self.end_reason or "finished")
        else:
            self._maybe_start_evaluation()

    # ------------------------------------------------------------------------ state and end

    def pause(self) -> None:
        if self.state == "running":
            self._set_state("paused")

    def resume(self) -> None:
        if self.state == "paused":
            self._set_state("running")

    def _set_state(self, state: str) -> None:
        self.state = state
        self.events.publish("state", self.status())

    def _finish(self, reason: str) -> None:
        """Stop training; end after a final evaluation of the last version (if there is data)."""
        if self.state == "ended" or self.finishing_since is not None:
            return
        evaluated = any(h["version"] == self.model.version for h in self.history)
        if not self._val_frames or evaluated:
            self._end(reason)
            return
        self.end_reason = reason
        self.finishing_since = self.clock()
        self._maybe_start_evaluation()
        self.events.publish("state", self.status())

    def end(self, reason: str) -> None:
        """End now (admin), without a final evaluation."""
        self._end(reason)

    def _end(self, reason: str) -> None:
        if self.state == "ended":
            return
        self.end_reason = reason
        self.finishing_since = None
        now = self.clock()
        for task in self.tasks.open_tasks():
            if task.pending is None:
                self._close_and_return(task, now)
        self.train_queue.clear()
        if self.evaluation is not None:
            self.versions.release(self.evaluation.version)
            self.evaluation = None
        log.info("training ended: %s", reason)
        self._set_state("ended")
        self._spawn(self._finalise())

    async def _finalise(self) -> None:
        targets = [d for d in (self.config.export_dir,
                               self.store.root / "final" if self.store else None) if d]
        async with self.lock:
            weights = self.model.weights.copy()
        for target in targets:
            await asyncio.to_thread(export_tfjs, self.spec, weights, target)
            log.info("final model exported to %s", target)
        if self.store is not None:
            await self.checkpoint()

    def status(self) -> dict:
        last = self.history[-1] if self.history else None
        return {
            "protocol": 1, "name": self.spec.name, "state": self.state,
            "endReason": self.end_reason, "finishing": self.finishing_since is not None,
            "version": self.model.version, "steps": self.current_steps, "merges": self.merges,
            "clients": len(self.sessions), "elapsed": round(self.elapsed(), 3),
            "lastEvaluation": last,
            "evaluating": None if self.evaluation is None else {
                "version": self.evaluation.version, "chunks": len(self.evaluation.chunk_examples),
                "done": len(self.evaluation.results)},
            "strategy": {"name": self.strategy.name,
                         "params": getattr(self.strategy, "param_values", {})},
            "openTasks": len(self.tasks.open_tasks()),
            "rejected": dict(self.rejected),
        }

    # ---------------------------------------------------------------------------- the clock

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_seconds)
            try:
                self.tick()
            except Exception:
                log.exception("coordinator tick failed")

    def tick(self) -> None:
        """Periodic duties: leases, idle sessions, time-based evaluation, end and checkpoint."""
        now = self.clock()
        self._expire(now)
        for session in self.sessions.idle(now, self.config.session_timeout):
            self.leave(session)
        self.tasks.prune(now)
        for task_id in [t for t in self.follow_ups if self.tasks.get(t) is None]:
            del self.follow_ups[task_id]
        if self.state == "running":
            max_seconds = self.config.max_seconds
            if max_seconds is not None and self.elapsed() >= max_seconds:
                self._finish(f"max_seconds={max_seconds} reached")
            self._maybe_start_evaluation()
        if self.finishing_since is not None and (
            now - self.finishing_since > max(60.0, 4 * self.config.lease_seconds)
        ):
            self._end(f"{self.end_reason} (final evaluation not completed in time)")
        every = self.config.checkpoint_every_seconds
        merges, history_len, last_time = self.last_checkpoint
        if (self.store is not None and every and now - last_time >= every
                and (merges != self.merges or history_len != len(self.history))):
            self.last_checkpoint = (self.merges, len(self.history), now)
            self._spawn(self.checkpoint())

    # --------------------------------------------------------------------------- durability

    async def checkpoint(self) -> None:
        """Write an atomic checkpoint of the current state (merges wait meanwhile)."""
        if self.store is None:
            return
        async with self.lock:
            checkpoint = self._checkpoint()
            self.last_checkpoint = (self.merges, len(self.history), self.clock())
            await asyncio.to_thread(self.store.save, checkpoint, self.layout)

    def _checkpoint(self) -> Checkpoint:
        strategy_state = self.strategy.state()
        outstanding = sorted({w.index for w in self.train_queue} | {
            t.work.index for t in self.tasks.open_tasks() if isinstance(t.work, TrainWork)})
        state = {
            "format": STATE_FORMAT, "name": self.spec.name,
            "fingerprint": layout_fingerprint(self.layout), "manifest": self.layout.manifest(),
            "strategy": {"name": self.strategy.name, "meta": strategy_state.meta},
            "screening": self.screen.state() if self.screen is not None else None,
            "version": self.model.version, "steps": self.model.steps, "merges": self.merges,
            "updatesAccepted": self.updates_accepted, "clientsJoined": self.sessions.joined,
            "state": self.state,
            "endReason": self.end_reason, "history": self.history,
            "data": {"nextBatch": self.next_batch, "outstanding": outstanding,
                     "batchExamples": self.batch_size * self.local_steps, "seed": self.seed},
            "evaluation": {"seq": self.eval_seq, "lastMerges": self.last_eval_merges,
                           "lastElapsed": self.last_eval_elapsed},
            "elapsed": self.elapsed(), "savedAt": self.clock(),
        }
        return Checkpoint(weights=self.model.weights.copy(), state=state,
                          model_json=model_json(self.spec),
                          strategy_arrays={k: np.array(v) for k, v in
                                           strategy_state.arrays.items()})

    def _resume(self, checkpoint: Checkpoint) -> None:
        state = checkpoint.state
        stored = state.get("strategy", {}).get("name")
        if stored != self.strategy.name:
            raise StateError(f"state dir {self.config.state_dir} was trained with strategy "
                             f"{stored!r}, not {self.strategy.name!r}; use the same strategy or "
                             "another state dir")
        self.strategy.load_state(StrategyState(arrays=checkpoint.strategy_arrays,
                                               meta=state["strategy"].get("meta", {})))
        if self.screen is not None and state.get("screening"):
            self.screen.load_state(state["screening"])
        self.model.weights = checkpoint.weights
        self.model.steps = int(state["steps"])
        self.model.version = int(state["version"])
        self.merges = int(state["merges"])
        self.updates_accepted = int(state.get("updatesAccepted", 0))
        self.sessions.joined = int(state.get("clientsJoined", 0))
        self.history = list(state.get("history", []))
        self.state = state.get("state", "running")
        self.end_reason = state.get("endReason")
        data = state.get("data", {})
        if (data.get("batchExamples") != self.batch_size * self.local_steps
                or data.get("seed") != self.seed):
            log.warning("batch size or seed changed since the checkpoint; the data sequence "
                        "continues at the stored position with the new settings")
        self.next_batch = int(data.get("nextBatch", 0))
        self.train_queue.extend(self._regenerate_batch(i) for i in data.get("outstanding", []))
        evaluation = state.get("evaluation", {})
        self.eval_seq = int(evaluation.get("seq", 0))
        self.last_eval_merges = int(evaluation.get("lastMerges", 0))
        self.last_eval_elapsed = float(evaluation.get("lastElapsed", 0.0))
        self.elapsed_before = float(state.get("elapsed", 0.0))
        self.last_checkpoint = (self.merges, len(self.history), self.clock())
        log.info("resumed %s at version %d, steps %d, merges %d", self.spec.name,
                 self.model.version, self.model.steps, self.merges)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
