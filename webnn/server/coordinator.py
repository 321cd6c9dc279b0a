"""The coordinator: the orchestrator of one served model.

It owns the model (`ModelState`: flat weights, WebNN's step count t, `version`) and wires together
collaborators that each do one job and receive values, never the coordinator:

- `tasks.TaskBook` — the lease book (leases indexed by expiry, finished tasks pruned in order);
- `leases.Leases` — issuing, looking up and taking back leases (what a lease holds and returns);
- `batch_feed.BatchFeed` — training batches in data order, work handed back, validation chunks;
- `evaluation.EvaluationSchedule` — when an evaluation is due, its chunks and results;
- `evaluating.Evaluations` — starting evaluations, recording answers, the run's history;
- `versions.VersionSnapshots` — the snapshots clients may still fetch (pooled buffers);
- `admission.Admission` and `ingest.Ingest` — what is refused before memory grows, and the update
  body path (pooled buffer, in-place decode, one-pass checks);
- `merging.MergeWorker` — one merge step in the worker thread (checks, merge, roll-back of a
  non-finite result, the new version's snapshot), or several queued updates in one pass;
- `merge_queue.MergeQueue` — the updates waiting for the merge lock, taken in arrival order;
- `sessions.SessionRegistry` — who is joined, in last-seen order;
- `traffic.Traffic` — update bodies received and weights sent, per encoding;
- `checkpointing` — ``state.json`` built from the run's values and applied back on resume (the
  coordinator keeps when to checkpoint, the lock and the worker-thread hand-off);
- `status` — the ``partition`` and ``capacity`` blocks of the status answer;
- `lifecycle.RunLifecycle` — the run's state, end reason, finishing phase and elapsed seconds;
- `cut_off.CutOff` — which refusals count toward a session's cut-off, and the ``429 cut_off``;
- `events.EventBus` — what happened; the metrics listen to it.

Counters: `version` (bumped when the strategy says the model changed), `model.steps` (WebNN's t,
set by the strategy), `merges` (updates handed to the strategy). Each accepted update is merged as
it arrives (no barrier): merges are serialised by an `asyncio.Lock` and run in a worker thread
(checks, merge and the new version's snapshot copy all happen there), so the event loop does no
model-sized work. Staleness = current version - the task's base version. Updates that arrive
while the thread is busy queue (`MergeQueue`) and are taken together when the lock frees: with
`average`, a batch whose updates would all be accepted as they are merges in one pass, each still
counting as one merge and one version (only the last version is kept: nobody could have fetched
the ones between), the weights bit-identical to merging them one by one; any other batch is
merged one by one (`_merge_batch`). Models small enough to merge on the event loop skip the
queue.

A merge whose result is not finite is rolled back and the update refused with
``merge_not_finite`` (see `merging`).

Screening's norm check measures the update against the weights its client started from when that
version is still kept (always for strategies that need base weights), else against the current
model.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from webnn.merge.base import ModelState, Update
from webnn.merge.screening import Screen, ScreenResult, staleness_cutoff
from webnn.server.admission import (
    BODY_SLACK,
    Admission,
    AdmissionLimits,
    busy,
    join_middleware,
)
from webnn.server.answer_budget import AnswerBudget
from webnn.server.batch_feed import BatchFeed, encode_validation
from webnn.server.checkpointing import RunCounters, build_state, data_state, restore
from webnn.server.checkpointing import write as write_checkpoint
from webnn.server.config import ModelParts, ServeConfig
from webnn.server.cut_off import CutOff
from webnn.server.encodings import EncodedUpdate, Encodings, to_half
from webnn.server.errors import ProtocolError
from webnn.server.evaluating import Evaluations
from webnn.server.evaluation import (
    ANYONE,
    Evaluation,
    EvaluationSchedule,
    Party,
    Settled,
    class_count,
)
from webnn.server.events import EventBus
from webnn.server.export import export_tfjs, final_metadata, model_json
from webnn.server.follow_up import BatchFrame, split_frame
from webnn.server.half_copies import HalfCopies
from webnn.server.ingest import Ingest
from webnn.server.leases import Leases
from webnn.server.lifecycle import RunLifecycle
from webnn.server.merge_queue import Entry, MergeQueue
from webnn.server.merging import MergeWorker
from webnn.server.metrics import Metrics
from webnn.server.scaled_tasks import ScaledTasks
from webnn.server.sessions import Session, SessionRegistry
from webnn.server.shards import ShardAssigner
from webnn.server.status import capacity_status, partition_status
from webnn.server.store import Checkpoint, Store
from webnn.server.tasks import EvalWork, FollowUp, Task, TaskBook, TrainWork
from webnn.server.traffic import Traffic
from webnn.server.updates import UpdateHeader, decode_update
from webnn.server.versions import Snapshot, SnapshotPool, VersionSnapshots

log = logging.getLogger("webnn.server")

SNAPSHOT_POOL_KEEP = 4
"""Free snapshot buffers kept for reuse."""
FRAME_OVERHEAD = 1 << 20
"""Bytes an update body may hold beyond the weights (frame prefix and JSON header)."""
MERGE_BATCH_MAX = 16
"""The most queued updates merged in one pass (`MergeWorker.run_many`). Each one in a batch saves
most of a pass over the model, a snapshot copy and two thread hand-offs; the bound keeps one pass
from holding the lock for long."""
MERGE_BATCH_BYTES = 64 << 20
"""A batch holds at most this many bytes of model-sized float32 weights: compressed updates are
decoded into a pooled buffer each, all at once for a batch. 16 updates at 1M parameters, 8 at
2M, 2 at 8M; above 8,388,608 parameters one at a time, as before batches."""
INLINE_MERGE_MAX_VALUES = 1 << 16
"""Models of at most this many values (256 KiB of float32: every shipped spec) are merged on the
event loop. Their merge step takes tens of microseconds, less than the hand-off to a worker
thread and back (two thread wake-ups and a loop wake-up: 0.1 ms on an idle core, milliseconds on
a busy one), which every update's round trip waits for and which sets how much of a volunteer's
time goes to training at a few local steps per task. Larger models merge in a worker thread, so
that no model-sized work holds the event loop."""


@dataclass(eq=False)
class QueuedUpdate:
    """An update waiting to merge: whose, for which task, its weights (float32, or as encoded)
    and its header."""

    session: Session
    task: Task
    weights: np.ndarray | EncodedUpdate
    header: UpdateHeader


@dataclass(frozen=True)
class Merged:
    """What merging one update decided: the screen's verdict (None: no screening), whether the
    model became a new version, and the update's staleness when it merged."""

    verdict: ScreenResult | None
    changed: bool
    staleness: int


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
        self.max_staleness = staleness_cutoff(config.max_staleness, parts.screening)
        self.needs_base = bool(getattr(self.strategy, "needs_base_weights", False))
        training = self.spec.training
        self.batch_size = int(training.batch_size)
        self.local_steps = int(training.local_steps)
        self.eval_chunk_size = int(config.eval_chunk_size or training.validation_chunk_size or 256)
        self.store = Store(config.state_dir) if config.state_dir is not None else None
        self.cut_off = CutOff(config.max_invalid_updates, config.cut_off_seconds)
        self.sessions = SessionRegistry()
        # a finished task's answer is kept for retries: a client retries a lost answer within
        # its backoff (the JS client: under a minute), so two minutes (two leases if longer)
        self.tasks = TaskBook(keep_seconds=max(120.0, 2 * config.lease_seconds))
        self.partition = parts.partition
        self.feed = BatchFeed(self.dataset, self.batch_size * self.local_steps, self.seed,
                              parts.shards)
        self.assigner = ShardAssigner(self.feed.count)
        self.scaled = ScaledTasks.for_model(config, self.spec.learning_rate, self.local_steps,
                                            self.batch_size)  # task values from live clients
        self.classes = class_count(self.spec.loss, self.spec.compiled.output_shape)
        self.schedule = EvaluationSchedule(
            config.eval_every_merges or training.validation_every_merges,
            config.eval_every_seconds or training.validation_every_seconds,
            quorum=config.eval_quorum, quorum_wait=config.eval_quorum_wait)
        self.lock = asyncio.Lock()
        self.merge_queue: MergeQueue[QueuedUpdate] = MergeQueue(
            self.lock, self._merge_batch, self._batch_room, self._merge_waiting_changed)
        self._inline_waiting = 0  # updates of a small model waiting for the lock
        self.merges_together = 0  # merges done in passes of several updates

        nbytes = self.layout.nbytes
        self.limits = AdmissionLimits.for_model(config, nbytes)
        self.admission = Admission(self.limits, clock)
        self.ingest = Ingest(self.admission, limit=nbytes + FRAME_OVERHEAD,
                             pool_size=nbytes + BODY_SLACK, timeout=config.body_timeout)
        # a new version takes a buffer as an old one goes: a few free ones cover the churn
        self.pool = SnapshotPool(self.layout.size, keep=SNAPSHOT_POOL_KEEP)
        # float16 copies of versions for sessions with f16 weights (see `versions`)
        self.half_pool = SnapshotPool(self.layout.size, keep=SNAPSHOT_POOL_KEEP, dtype="<f2")
        self.half_sessions = 0  # joined sessions receiving f16 weights
        self.traffic = Traffic()  # update bodies in and weights out, per encoding
        self.merger = MergeWorker(self.strategy, self.screen, self.layout, self.pool)

        self.model = ModelState(weights=self.spec.compiled.initial_weights(self.seed), steps=0,
                                version=0)
        self.layout.check(self.model.weights)
        self.merges = 0
        self.updates_accepted = 0
        self.lifecycle = RunLifecycle(started=clock())  # state, end, finishing, elapsed
        self._resumed_history: list[dict] = []
        self.last_checkpoint = (0, 0, self.lifecycle.started)  # merges, history length, time
        self._val_frames: list[bytes] | None = None
        self._background: set[asyncio.Task] = set()
        self.rejected: Counter[str] = Counter()  # refused updates/evaluations by error code
        self.refused: Counter[str] = Counter()  # requests turned away by admission, by code
        # model-sized answers being sent at once (GET weights, follow-up frames): answer_budget
        self.answers = AnswerBudget.for_model(config.answer_budget, nbytes, self.refused,
                                              frozenset(config.trusted_proxies))
        self._ticker: asyncio.Task | None = None

        # tags ETags: version numbers may name other weights after a restart (0 in a new run;
        # after a crash, the versions since the last checkpoint are made again), so the id is
        # new at every start and no cache takes former weights for these
        self.run_id = secrets.token_hex(8)
        checkpoint = self.store.load(self.layout) if self.store is not None else None
        if checkpoint is not None:
            self._resume(checkpoint)
        self.versions = VersionSnapshots(self.model.version, self.merger.snapshot(self.model),
                                         self.pool, self.half_pool)
        # which versions get a float16 copy, and which one an f16 task starts from
        self.half = HalfCopies.for_model(self.versions, self.layout.size)
        self.evaluations = Evaluations(self.schedule, self.versions, events, clock, self.classes,
                                       config.target_accuracy)
        self.evaluations.load(self._resumed_history)
        self.leases = Leases(self.tasks, self.sessions, self.feed, self.schedule, self.versions,
                             config.lease_seconds,
                             issued=lambda kind: metrics.tasks_issued.labels(kind).inc(),
                             expired=lambda kind: metrics.leases_expired.labels(kind).inc())
        events.listen(metrics.on_event)
        self._update_gauges()

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Prepare validation chunks, start the initial evaluation and the periodic tick."""
        if getattr(self.dataset, "num_validation", 0):
            self._val_frames, examples = await asyncio.to_thread(
                encode_validation, self.dataset, self.eval_chunk_size)
            self.leases.validation_frames = self._val_frames
            self.schedule.chunk_examples = examples
        if (self.config.evaluate_initial and self._val_frames and self.state != "ended"
                and 0 not in self._evaluated):
            if 0 not in self.versions:
                initial = self.spec.compiled.initial_weights(self.seed)
                initial.flags.writeable = False
                self.versions.add(0, Snapshot(initial, 0))
            self._start_evaluation(0, 0, 0)
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        """Stop the tick, wait for background work and queued merges, and write a last
        checkpoint."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.merge_queue.drained()
        if self.store is not None:
            await self.checkpoint()

    def elapsed(self) -> float:
        """Seconds of training so far, across restarts; frozen once the run has ended."""
        return self.lifecycle.elapsed(self.clock())

    @property
    def state(self) -> str:
        """``running``, ``paused`` or ``ended`` (`RunLifecycle`)."""
        return self.lifecycle.state

    @property
    def end_reason(self) -> str | None:
        """Why the run ended, or is finishing."""
        return self.lifecycle.end_reason

    @property
    def finishing_since(self) -> float | None:
        """When the run began waiting for its final evaluation (None: it is not)."""
        return self.lifecycle.finishing_since

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    # ------------------------------------------------------------------------------ sessions

    def join_middleware(self) -> Callable:
        """The aiohttp middleware applying this model's join limits (see `admission`)."""
        return join_middleware(self.admission, lambda: len(self.sessions), self._count_admission)

    def join(self, info: dict, encodings: Encodings | None = None,
             address: str | None = None) -> Session:
        """A new session; `address`: the client's (admission's view), which with its volunteer
        id tells evaluation replicas of different parties apart (`evaluation.Party`)."""
        session = self.sessions.join(info, self.clock())
        session.address = address
        if encodings is not None:
            session.encodings = encodings
        if session.encodings.weights == "f16":
            self.half_sessions += 1
        self.events.publish("client", {"event": "join", "clientId": session.client_id,
                                       "kind": session.kind, "clients": len(self.sessions)})
        return session

    def leave(self, session: Session) -> None:
        now = self.clock()
        for task_id in list(session.open_tasks):
            task = self.tasks.get(task_id)
            if task is not None and task.state == "open" and task.pending is None:
                self._close_and_return(task, now)
        self.scaled.live.forget(session.token)
        if self.sessions.remove(session.token) is not None and session.encodings.weights == "f16":
            self.half_sessions -= 1
            if not self.half_sessions:
                self.half.forget()  # no f16 session left: no version kept for its copy
        if session.shard is not None and self.feed.shards is not None:
            self.assigner.release(session.shard, session.volunteer_id)
        self.events.publish("client", {"event": "leave", "clientId": session.client_id,
                                       "clients": len(self.sessions)})

    def session(self, token: str | None) -> Session:
        session = self.sessions.get(token)
        if session is None:
            raise ProtocolError(401, "unknown_session",
                                "unknown or expired session token (X-WebNN-Session); join again")
        self.sessions.touch(session, self.clock())
        return session

    def check_cut_off(self, session: Session) -> None:
        """``429 cut_off`` while `session` serves a cut-off (`cut_off.CutOff`)."""
        self.cut_off.check(session.cut_off_until, self.clock())

    def note_invalid(self, session: Session, code: str) -> None:
        """Count a refused submission; a streak of them cuts the session off for a while."""
        self._count_refusal(code)
        session.updates_rejected += 1
        if self.cut_off.note(session, code, self.clock()):
            log.warning("client %s cut off for %.0f s after %d invalid updates",
                        session.client_id, self.config.cut_off_seconds,
                        self.config.max_invalid_updates)

    def note_busy(self) -> None:
        """An update turned away by admission (503 busy): counted, never held against the client;
        its task stays open for the retry."""
        self._count_admission("busy")
        self.metrics.body_bytes.set(self.admission.bodies.used)

    def _count_admission(self, code: str) -> None:
        """A request turned away by admission control: `status().capacity.refused` (/metrics
        counts it with every error answer, `webnn_requests_refused_total{code}`)."""
        self.refused[code] += 1

    def _count_refusal(self, code: str) -> None:
        """One refused request: the Prometheus counter and `status().rejected`."""
        self.metrics.updates_rejected.labels(code).inc()
        self.rejected[code] += 1

    # --------------------------------------------------------------------------------- tasks

    def next_task(self, session: Session, role: str) -> Task | None:
        """The next task for `session` (evaluation chunks first), or None when there is none.

        While the run is finishing no training is handed out (a training-only client gets None
        and the run ends without it after `finish_seconds`); nor while admission is under
        pressure (bodies in flight or the merge queue past half their limits). Raises ``429
        too_many_tasks`` when the session holds its cap of open tasks and ``503 busy`` when kept
        snapshots fill their budget (strategies needing base weights: each lease keeps its
        version)."""
        now = self.clock()
        self._expire(now)
        if self.state != "running":
            return None
        finishing = self.finishing_since is not None
        evaluation = self.schedule.current
        if (role in ("evaluate", "any") and evaluation is not None
                and self.schedule.has_chunk_for(session.token, self._party(session))):
            self._admit_lease(session)
            found = self.schedule.next_chunk(session.token, self._party(session))
            assert found is not None
            chunk = found[1]
            chunk_work = EvalWork(evaluation.id, chunk, evaluation.chunk_examples[chunk])
            return self.leases.issue("evaluate", chunk_work, evaluation.version,
                                     evaluation.steps, session, now)
        if role in ("train", "any") and not finishing:
            if not self.admission.admit_train_lease(self.tasks.open_count("train"),
                                                    self.merge_waiting):
                self._count_admission("deferred")  # no task now: the client asks again later
                return None
            self._admit_lease(session)
            # q8 deltas are decoded against their base: the lease keeps its version like a
            # strategy's need for base weights does
            holds_base = self.needs_base or session.encodings.update == "q8"
            if holds_base and self.versions.nbytes > self.limits.snapshot_budget:
                self._count_admission("busy")
                raise busy(f"kept snapshots fill their budget of {self.limits.snapshot_budget} "
                           "bytes until open leases finish", self.config.poll_seconds)
            if session.shard is None:
                # iid: everyone reads shard 0 and no volunteer table is kept
                session.shard = (0 if self.feed.shards is None
                                 else self.assigner.assign(session.volunteer_id))
            work, rate = self.scaled.take(self.feed, session.shard, session.token, now)
            version = self.model.version
            if session.encodings.weights == "f16":  # the newest version with its copy made
                version = self.half.lease_version(version, time.monotonic())
            snapshot = self.versions.get(version)
            assert snapshot is not None  # the current version, or one `half` holds
            task = self.leases.issue("train", work, version, snapshot.steps, session, now)
            task.learning_rate = rate
            if holds_base:
                self.versions.hold(version)
                task.base_hold = True
            else:
                self.versions.expect_fetch(version, session.token)
            return task
        return None

    def idle_retry_after(self) -> float:
        """The `retryAfter` of a "no task now" answer: `poll_seconds`, or while training leases
        are deferred, `Admission.defer_seconds` (grows with the share of deferred requests)."""
        poll = self.config.poll_seconds
        if self.state == "running" and self.admission.deferring(
                self.tasks.open_count("train"), self.merge_waiting):
            return self.admission.defer_seconds(poll)
        return poll

    def note_upload(self, task: Task) -> None:
        """An update request for `task` arrived: its lease-to-upload time feeds admission's
        lease bound (the first request for an open task only: a retry after 503 busy is not)."""
        if task.state == "open" and task.uploaded is None:
            task.uploaded = self.clock()
            self.admission.note_upload(task.uploaded - task.issued)

    def _admit_lease(self, session: Session) -> None:
        try:
            self.admission.admit_lease(len(session.open_tasks), self.config.poll_seconds)
        except ProtocolError as error:
            self._count_admission(error.code)
            raise

    def task(self, session: Session, task_id: str, kind: str | None = None) -> Task:
        """The task `task_id` of `session`; raises unknown_task / not_your_task / lease_expired
        (`Leases.lookup`)."""
        self._expire(self.clock())
        return self.leases.lookup(session, task_id, kind)

    def batch(self, session: Session, task_id: str) -> bytes:
        """The frame of a task's batch (training batch or validation chunk)."""
        task = self.task(session, task_id)
        if task.state != "open":
            raise ProtocolError(409, "task_closed", f"task {task_id} is already finished")
        return self.leases.batch_frame(task)

    def _expire(self, now: float) -> None:
        self.leases.expire(now, requeue=self.state != "ended")

    def _close_and_return(self, task: Task, now: float) -> None:
        """Close an unfinished task as expired and put its work back (`Leases`)."""
        self.leases.close_and_return(task, now, requeue=self.state != "ended")

    # ------------------------------------------------------------------------------- weights

    def weights(self, version: int | None, token: str | None = None, encoding: str = "f32"
                ) -> tuple[int, int, memoryview]:
        """``(version, steps, bytes)`` of `version` (None = current) in the weights `encoding`
        (``f32`` or ``f16``); 404 if not held. Fetching a given version satisfies a lease of
        session `token` waiting to fetch it (any lease's, without a token; see `versions`)."""
        asked = version is not None
        if version is None:
            version = self.model.version
        snapshot = self.versions.get(version)
        if snapshot is None:
            raise ProtocolError(404, "unknown_version",
                                f"version {version} is not held (current version is "
                                f"{self.model.version}; only versions referenced by open tasks "
                                "are kept)")
        wire = self._wire(version, encoding)
        session = self.sessions.get(token) if asked else None
        if session is not None:  # only the session's own fetch ends what its lease holds
            self.versions.fetched(version, session.token)
        return version, snapshot.steps, wire

    def follow_up_inputs(self, follow: Task) -> tuple[memoryview, BatchFrame] | None:
        """The weights and batch of a follow-up task, as existing buffers; None when the task is
        no longer open or its version is gone (the answer then goes as JSON)."""
        if follow.state != "open":
            return None
        if self.versions.get(follow.version) is None:
            return None
        encoding = self.weights_encoding(follow.session)
        # the wire bytes first: ending the fetch's hold may drop a version no longer the newest
        # (merges run between this update's merge and its answer), and the wire keeps its buffer
        wire = self._wire(follow.version, encoding)
        self.versions.fetched(follow.version, follow.session)
        self.note_weights_bytes(encoding, len(wire))
        return wire, split_frame(self.leases.batch_frame(follow))

    def note_weights_bytes(self, encoding: str, nbytes: int) -> None:
        """Weights of `nbytes` bytes sent in `encoding` (status ``traffic``)."""
        self.traffic.record_weights(encoding, nbytes)

    def weights_encoding(self, token: str | None) -> str:
        """The weights encoding of session `token` (``f32`` without one)."""
        session = self.sessions.get(token)
        return session.encodings.weights if session is not None else "f32"

    def _wire(self, version: int, encoding: str) -> memoryview:
        """A held version's wire bytes; the float16 copy is made here when none exists yet."""
        if encoding == "f16":
            held = self.versions.get(version)
            made_now = held is not None and held.half is None
            wire = self.versions.half_wire(version, to_half)
            if made_now and version == self.model.version:
                self.half.made(version, time.monotonic())
        else:
            snapshot = self.versions.get(version)
            wire = None if snapshot is None else snapshot.wire()
        assert wire is not None
        return wire

    def note_update_bytes(self, encoding: str, nbytes: int) -> None:
        """An accepted update's body of `nbytes` bytes in `encoding` (status ``traffic`` and
        ``webnn_update_bytes_total{encoding}``)."""
        self.traffic.record_update(encoding, nbytes)
        self.metrics.update_bytes.labels(encoding).inc(nbytes)
        self.metrics.update_bodies.labels(encoding).inc()

    @property
    def current_steps(self) -> int:
        """Steps t of the current version. ``model.steps`` runs ahead of it while a merge is in
        its worker thread (the version is bumped on the event loop afterwards)."""
        snapshot = self.versions.get(self.model.version)
        assert snapshot is not None  # the current version is always held
        return snapshot.steps

    # ------------------------------------------------------------------------------- updates

    def check_update_task(self, session: Session, task: Task) -> bool:
        """Whether an update body must be read for `task` (False: a retry answered from what is
        stored, or a submission in progress to wait for); checks the cut-off first."""
        if task.result is not None or task.pending is not None or task.error is not None:
            return False
        self.check_cut_off(session)
        return True

    async def submit_update(self, session: Session, task: Task, body: Any) -> dict:
        """Validate and merge one update (`body`: its bytes, None for a retry); a retry of a
        finished task gets the first answer."""
        if task.result is not None:
            return task.result
        if task.error is not None:
            raise task.error
        if task.pending is not None:
            return await asyncio.shield(task.pending)
        if task.state != "open":
            raise ProtocolError(409, "task_closed", f"task {task.id} is already finished")
        self.check_cut_off(session)
        if body is None:
            raise ProtocolError(400, "truncated", "the update has no body")
        # a task cut to fewer steps (task scaling) may claim no more than it was given
        max_steps = (self.scaled.task_local_steps(task.work.examples)
                     if isinstance(task.work, TrainWork) else self.local_steps)
        try:
            weights, header = decode_update(body, self.layout, task_id=task.id,
                                            task_version=task.version,
                                            max_steps=max_steps,
                                            encoding=session.encodings.update)
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
        # counted here, once per task: a concurrent copy of this update shares this verdict and a
        # retry is answered from `task.result`; neither brought bytes that were merged
        self.note_update_bytes(session.encodings.update, memoryview(body).nbytes)
        future.set_result(result)
        task.pending = None  # waiters hold the future; the finished task keeps only its answer
        return result

    def _merge_refusal(self, task: Task, version: int) -> tuple[str, ProtocolError] | None:
        """Why an update of `task` could not merge at `version` (the counted reason and the
        error), or None."""
        if self.finishing_since is not None:
            return "finishing", ProtocolError(
                409, "finishing", f"training is finishing ({self.end_reason}) with a final "
                "evaluation; no more updates are merged. Ask for a task: the evaluation's chunks "
                "are handed to every role")
        if self.state == "ended":
            return "ended", ProtocolError(409, "ended", f"training has ended ({self.end_reason}); "
                                          "no more updates are merged")
        staleness = version - task.version
        bound = self.max_staleness
        if bound is not None and staleness > bound:
            return "too_stale", ProtocolError(
                409, "too_stale", f"update is {staleness} versions behind (base {task.version}, "
                f"current {version}); the bound is {bound}. Its batch is handed out again")
        return None

    def _check_can_merge(self, session: Session, task: Task) -> None:
        refusal = self._merge_refusal(task, self.model.version)
        if refusal is None:
            return
        reason, error = refusal
        self._close_and_return(task, self.clock())
        if reason == "too_stale":
            task.error = error
        self._count_refusal(reason)
        raise error

    @property
    def merge_waiting(self) -> int:
        """Updates waiting to be merged: queued, or waiting for the lock to merge inline."""
        return self.merge_queue.waiting + self._inline_waiting

    def _merge_waiting_changed(self, _: int = 0) -> None:
        self.metrics.merge_queue.set(self.merge_waiting)

    def _batch_room(self) -> int:
        """The most queued updates one batch takes: `MERGE_BATCH_MAX`, no more than
        `MERGE_BATCH_BYTES` of model-sized weights, and no more than `max_merges` leaves (the
        run ends at it, as one by one)."""
        room = min(MERGE_BATCH_MAX, MERGE_BATCH_BYTES // self.layout.nbytes)
        if self.config.max_merges is not None:
            room = min(room, self.config.max_merges - self.merges)
        return max(1, room)

    async def _merge(self, session: Session, task: Task, weights: np.ndarray | EncodedUpdate,
                     header: UpdateHeader) -> dict:
        work = task.work
        assert isinstance(work, TrainWork)
        queued = QueuedUpdate(session, task, weights, header)
        del weights
        if self.layout.size <= INLINE_MERGE_MAX_VALUES:
            self._inline_waiting += 1
            self._merge_waiting_changed()
            try:
                await self.lock.acquire()
            finally:
                self._inline_waiting -= 1
                self._merge_waiting_changed()
            try:
                merged = await self._merge_one(queued)
            finally:
                self.lock.release()
        else:
            merged = await self.merge_queue.merge(queued)
        del queued
        verdict, changed, staleness = merged.verdict, merged.changed, merged.staleness
        now = self.clock()
        self.tasks.finish(task, "done", now)
        session.open_tasks.discard(task.id)
        self.leases.release_version(task)
        result = {"protocol": 1, "accepted": True, "version": self.model.version,
                  "merged": bool(changed), "staleness": staleness, "steps": self.current_steps,
                  "merges": self.merges,
                  "clipped": verdict is not None and verdict.action == "clipped"}
        task.result = result
        self._record_update(session, work, header, staleness, changed)
        self._after_merge()
        if header.next_role is not None and self.sessions.get(session.token) is session:
            # Leased after the merge (not for a session that left meanwhile): the follow-up
            # starts from the newest version, no staleness.
            try:
                follow = self.next_task(session, header.next_role)
            except ProtocolError:
                follow = None  # busy or at its task cap: the client asks on its own later
            task.follow_up = FollowUp(follow, {})
        return result

    async def _merge_batch(self, entries: list[Entry[QueuedUpdate]]) -> None:
        """With the lock held: merge the queued updates of `entries` in order, together when
        `_merge_together` can, else one by one; each entry gets its `Merged` or its error."""
        if len(entries) > 1 and self.merger.fused is not None:
            together = await self._merge_together([entry.item for entry in entries])
            if together is not None:
                for entry, merged in zip(entries, together, strict=True):
                    entry.done.set_result(merged)
                return
        for entry in entries:
            try:
                entry.done.set_result(await self._merge_one(entry.item))
            except Exception as error:
                entry.done.set_exception(error)

    def _merge_fields(self, queued: QueuedUpdate, staleness: int,
                      base: np.ndarray | None) -> dict:
        work = queued.task.work
        assert isinstance(work, TrainWork)
        return dict(base_version=queued.task.version, base_steps=queued.task.steps,
                    local_steps=queued.header.steps, staleness=staleness,
                    client=queued.session.client_id,
                    base_weights=base if self.needs_base else None, examples=work.examples)

    def _kept_base(self, queued: QueuedUpdate) -> np.ndarray | None:
        """The update's base weights when its version is kept (None: not kept); a strategy
        that needs them, and a q8 update, cannot do without."""
        kept = self.versions.get(queued.task.version)
        base = kept.array() if kept is not None else None
        weights = queued.weights
        if (self.needs_base or isinstance(weights, EncodedUpdate)
                and weights.encoding == "q8") and base is None:
            raise RuntimeError(f"version {queued.task.version} of a base-holding lease is gone")
        return base

    async def _merge_one(self, queued: QueuedUpdate) -> Merged:
        """With the lock held: check, merge (in the worker thread, or inline for a small
        model) and count one update; raises its refusal."""
        session, task = queued.session, queued.task
        # again under the lock: merges queued before this one may have ended the run or made
        # this update staler than the bound since the first check
        self._check_can_merge(session, task)
        staleness = self.model.version - task.version
        base = self._kept_base(queued)
        fields = self._merge_fields(queued, staleness, base)
        started = time.perf_counter()
        current = self.versions.get(self.model.version)
        assert current is not None
        copied_at = time.monotonic()
        make_half = self.half_sessions > 0 and self.half.due(copied_at)
        merge_args = (queued.weights, fields, base, current, make_half)
        if self.layout.size <= INLINE_MERGE_MAX_VALUES:
            outcome = self._run_merge(*merge_args)
        else:
            outcome = await asyncio.to_thread(self._run_merge, *merge_args)
        # drop our references to snapshot arrays, so a dropped version's buffer is reused
        del merge_args, fields, base, current
        verdict, changed, snapshot = outcome.verdict, outcome.changed, outcome.snapshot
        if verdict is not None and verdict.refused:
            self.note_invalid(session, verdict.reason or "refused")
            raise ProtocolError(400, verdict.reason or "refused", verdict.message)
        self.metrics.merge_seconds.observe(time.perf_counter() - started)
        self.admission.note_merged()  # the CPU clock is read on the tick, not per merge
        self.merges += 1
        self.updates_accepted += 1
        if changed:
            assert snapshot is not None
            self._advance(self.model.version + 1, snapshot, copied_at)
        return Merged(verdict, changed, staleness)

    async def _merge_together(self, batch: list[QueuedUpdate]) -> list[Merged] | None:
        """With the lock held: merge `batch` in one pass (`MergeWorker.run_many`) when every
        update passes its checks at the version it would merge at and would be accepted as it
        is; None (nothing changed, nothing counted) when not."""
        version = self.model.version
        args: list[tuple[np.ndarray | EncodedUpdate, dict, np.ndarray | None]] = []
        for i, queued in enumerate(batch):
            if self._merge_refusal(queued.task, version + i) is not None:
                return None
            try:
                base = self._kept_base(queued)
            except RuntimeError:
                return None  # one by one, where it is refused as before
            args.append((queued.weights,
                         self._merge_fields(queued, version + i - queued.task.version, base),
                         base))
        started = time.perf_counter()
        current = self.versions.get(version)
        assert current is not None
        copied_at = time.monotonic()
        make_half = self.half_sessions > 0 and self.half.due(copied_at)
        outcomes = await asyncio.to_thread(self._run_merges, args, current, make_half)
        del args, current
        if outcomes is None:
            return None
        share = (time.perf_counter() - started) / len(batch)
        for _ in batch:
            self.metrics.merge_seconds.observe(share)
            self.admission.note_merged()
        self.merges += len(batch)
        self.updates_accepted += len(batch)
        self.merges_together += len(batch)
        snapshot = outcomes[-1].snapshot
        assert snapshot is not None
        self._advance(version + len(batch), snapshot, copied_at)
        return [Merged(outcome.verdict, True, version + i - queued.task.version)
                for i, (queued, outcome) in enumerate(zip(batch, outcomes, strict=True))]

    def _advance(self, version: int, snapshot: Snapshot, copied_at: float) -> None:
        """Make `version` (with `snapshot`) the model's current version."""
        self.model.version = version
        self.versions.advance(version, snapshot)
        if snapshot.half is not None:
            self.half.made(version, copied_at)
        if not self.needs_base:
            self.versions.trim(self.limits.snapshot_budget)

    def _decoded(self, weights: np.ndarray | EncodedUpdate, base: np.ndarray | None,
                 buffers: list[np.ndarray]) -> np.ndarray:
        """`weights` as float32 (a compressed update decoded into a pooled buffer, appended to
        `buffers` for the caller to give back)."""
        if not isinstance(weights, EncodedUpdate):
            return weights
        buffers.append(self.pool.acquire())
        return weights.decode_into(buffers[-1], self.layout, base)

    def _with_half(self, outcome: Any, half: bool) -> Any:
        """`outcome` with a float16 copy of its snapshot when `half` (`HalfCopies.due`)."""
        if not half or outcome.snapshot is None:
            return outcome
        snapshot = outcome.snapshot
        copy = to_half(snapshot.array(), self.half_pool.acquire())
        return dataclasses.replace(outcome, snapshot=Snapshot(snapshot.data, snapshot.steps, copy))

    def _run_merge(self, weights: np.ndarray | EncodedUpdate, fields: dict,
                   base: np.ndarray | None, current: Snapshot, half: bool) -> Any:
        """In a worker thread (on the event loop for a model of at most
        `INLINE_MERGE_MAX_VALUES`): decode a compressed update into a pooled float32 buffer
        (`EncodedUpdate.decode_into`: f16 widened, q8 as base + q * s), run the merge step, and
        give the new version a float16 copy when `half` (`HalfCopies.due`, while sessions
        receive f16 weights)."""
        buffers: list[np.ndarray] = []
        try:
            update = Update(weights=self._decoded(weights, base, buffers), **fields)
            del weights
            outcome = self.merger.run(self.model, update, base, current)
            del update  # no reference to a decode buffer once it is given back
        finally:
            for buffer in buffers:
                self.pool.give_back(buffer)
            del buffers
        return self._with_half(outcome, half)

    def _run_merges(self, args: list[tuple[np.ndarray | EncodedUpdate, dict, np.ndarray | None]],
                    current: Snapshot, half: bool) -> list[Any] | None:
        """In a worker thread: `_run_merge` for several updates in one pass
        (`MergeWorker.run_many`); None when they must be merged one by one."""
        buffers: list[np.ndarray] = []
        try:
            updates = [Update(weights=self._decoded(weights, base, buffers), **fields)
                       for weights, fields, base in args]
            outcomes = self.merger.run_many(self.model, updates, [base for *_, base in args],
                                            current)
            del updates  # no reference to a decode buffer once it is given back
        finally:
            for buffer in buffers:
                self.pool.give_back(buffer)
            del buffers
        if outcomes is None:
            return None
        outcomes[-1] = self._with_half(outcomes[-1], half)
        return outcomes

    def _record_update(self, session: Session, work: TrainWork, header: UpdateHeader,
                       staleness: int, changed: bool) -> None:
        session.invalid_streak = 0
        session.updates_accepted += 1
        if self.sessions.get(session.token) is session:  # not one that left while it merged
            self.scaled.live.note(session.token, self.clock())
        session.examples_trained += work.examples
        session.last_staleness = staleness
        session.compute_seconds += header.timings.get("compute", 0.0)
        if header.loss is not None:
            session.last_loss = header.loss
        if header.accuracy is not None:
            session.last_accuracy = header.accuracy
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
        self.metrics.body_bytes.set(self.admission.bodies.used)
        self.metrics.snapshot_bytes.set(self.versions.nbytes)

    # --------------------------------------------------------------------------- evaluations

    @property
    def history(self) -> list[dict]:
        """The run's history (`Evaluations.history`)."""
        return self.evaluations.history

    @property
    def _evaluated(self) -> set[int]:
        return self.evaluations.evaluated

    def _start_evaluation(self, version: int, steps: int, merges: int) -> None:
        self.evaluations.start(version, steps, merges, self.elapsed())

    def _maybe_start_evaluation(self) -> None:
        if self.state == "ended":
            return
        self.evaluations.maybe_start(version=self.model.version, steps=self.current_steps,
                                     merges=self.merges, elapsed=self.elapsed(),
                                     finishing=self.lifecycle.finishing)

    @property
    def evaluation(self) -> Evaluation | None:
        """The evaluation in progress, if any."""
        return self.evaluations.current

    def submit_evaluation(self, session: Session, task: Task, body: dict) -> dict:
        """Record one chunk's mean loss/accuracy; the last chunk completes the evaluation."""
        if task.result is not None:
            return task.result
        if task.state != "open":
            raise ProtocolError(409, "task_closed", f"task {task.id} is already finished")
        work = task.work
        assert isinstance(work, EvalWork)
        now = self.clock()
        try:
            settle = self.evaluations.record(work, session.token, body, now)
        except ProtocolError as error:
            self.note_invalid(session, error.code)
            raise
        self.tasks.finish(task, "done", now, {"protocol": 1, "accepted": True})
        session.open_tasks.discard(task.id)
        session.evaluations += 1
        # the invalid streak is not reset here: a well-formed answer may still disagree with the
        # other replicas, and junk evaluations must not hide a streak of bad updates
        if settle:
            self._settle_evaluation(now)
        assert task.result is not None
        return task.result

    def _party(self, session: Session) -> Party:
        """Who is behind `session`, for the independence of evaluation replicas (everyone is
        their own party with ``eval_distinct_parties`` off)."""
        if not self.config.eval_distinct_parties:
            return ANYONE
        return Party.of(session.address, session.volunteer_id)

    def _settle_evaluation(self, now: float) -> None:
        """Settle the chunks of the evaluation in progress that can be (quorum reached, or no
        other live session to ask, or waited long enough); count the outliers; complete it."""
        settled: Settled = self.evaluations.settle(
            now, lambda t: self.sessions.get(t) is not None, len(self.sessions),
            lambda: ((s.token, self._party(s)) for s in self.sessions))
        for token in settled.outliers:
            outlier = self.sessions.get(token)
            if outlier is not None:
                self.note_invalid(outlier, "evaluation_disagrees")
            else:
                self._count_refusal("evaluation_disagrees")
            log.warning("an evaluation result disagreed with the majority of its chunk "
                        "(session %s)", outlier.client_id if outlier is not None else "gone")
        if settled.completed is not None:
            self._complete_evaluation(settled.completed)

    def _complete_evaluation(self, evaluation: Evaluation) -> None:
        final = (self.lifecycle.finishing
                 and evaluation.version == self.model.version)
        done = self.evaluations.complete(evaluation, elapsed=self.elapsed(), final=final,
                                         finishing_reason=self.end_reason)
        if done.end_reason is not None:
            self._end(done.end_reason)
        else:
            self._maybe_start_evaluation()

    def last_validated(self) -> dict | None:
        """The newest history entry of a validated evaluation, if any."""
        return self.evaluations.last_validated()

    def _end_unevaluated(self) -> None:
        """The final evaluation did not complete in time: end with the last validated evaluation
        as the run's result, said in `endReason`, a final history entry
        (`Evaluations.unevaluated`) and the export's metadata."""
        _, said = self.evaluations.unevaluated(elapsed=self.elapsed(), version=self.model.version,
                                               steps=self.current_steps, merges=self.merges)
        log.warning("the final evaluation did not complete within %.0f s; ending with the %s",
                    self.finish_seconds, said)
        self._end(f"{self.end_reason} (final evaluation not completed in time; {said})")

    # ------------------------------------------------------------------------ state and end

    def pause(self) -> None:
        if self.lifecycle.pause():
            self._publish_state()

    def resume(self) -> None:
        if self.lifecycle.unpause():
            self._publish_state()

    def _publish_state(self) -> None:
        self.events.publish("state", self.status())

    def _finish(self, reason: str) -> None:
        """Stop training; end after a final evaluation of the last version (if there is data).

        While finishing, no training is handed out or merged (updates get ``409 finishing``, so
        their clients stay and ask for a task) and the final evaluation's chunks go to whoever
        asks for evaluation or any task; if it is not complete within `finish_seconds` the run ends
        without it
        (the end reason says so)."""
        if self.state == "ended" or self.lifecycle.finishing:
            return
        if not self._val_frames or self.model.version in self._evaluated:
            self._end(reason)
            return
        self.lifecycle.begin_finishing(reason, self.clock())
        self.feed.clear()
        self._maybe_start_evaluation()
        self._publish_state()

    @property
    def finish_seconds(self) -> float:
        """How long a finishing run waits for its final evaluation."""
        return max(60.0, 4 * self.config.lease_seconds)

    def end(self, reason: str) -> None:
        """End now (admin), without a final evaluation."""
        self._end(reason)

    def _end(self, reason: str) -> None:
        now = self.clock()
        # ended before the leases close: their work is not queued again
        if not self.lifecycle.end(reason, now):
            return
        for task in self.tasks.open_tasks():
            if task.pending is None:
                self._close_and_return(task, now)
        self.feed.clear()
        evaluation = self.schedule.abandon()
        if evaluation is not None:
            self.versions.release(evaluation.version)
        log.info("training ended: %s", reason)
        self._publish_state()
        self._spawn(self._finalise())

    async def _finalise(self) -> None:
        targets = [d for d in (self.config.export_dir,
                               self.store.root / "final" if self.store else None) if d]
        async with self.lock:
            weights = await asyncio.to_thread(self.model.weights.copy)
            metadata = final_metadata(self.history, end_reason=self.end_reason,
                                      version=self.model.version, steps=self.current_steps,
                                      merges=self.merges)
        for target in targets:
            await asyncio.to_thread(export_tfjs, self.spec, weights, target, metadata)
            log.info("final model exported to %s", target)
        if self.store is not None:
            await self.checkpoint()

    def status(self) -> dict:
        last = self.history[-1] if self.history else None
        evaluation = self.schedule.current
        return {
            "protocol": 1, "name": self.spec.name, "state": self.state,
            "endReason": self.end_reason, "finishing": self.lifecycle.finishing,
            "finishingDeadline": self.lifecycle.finishing_deadline(self.finish_seconds),
            "version": self.model.version, "steps": self.current_steps, "merges": self.merges,
            "clients": len(self.sessions), "elapsed": round(self.elapsed(), 3),
            "lastEvaluation": last,
            "lastValidatedEvaluation": self.last_validated(),
            "evaluating": None if evaluation is None else {
                "version": evaluation.version, "chunks": len(evaluation.chunk_examples),
                "done": len(evaluation.results), "quorum": evaluation.quorum},
            "strategy": {"name": self.strategy.name,
                         "params": self.strategy.effective_params(),
                         "report": self.strategy.report()},
            "project": self.spec.project_public(),
            "endConditions": {"targetAccuracy": self.config.target_accuracy,
                              "maxMerges": self.config.max_merges,
                              "maxSeconds": self.config.max_seconds},
            "partition": partition_status(
                self._partition_public(), self.feed, len(self.sessions),
                (s.shard for s in self.sessions), self.dataset.num_train,
                len(self.assigner.volunteers)),
            "taskScaling": self.scaled.status(self.clock()),
            "openTasks": self.tasks.open_count(),
            "rejected": dict(self.rejected),
            "httpRefused": dict(self.metrics.http_refusals),
            "traffic": self.traffic.summary(),
            "capacity": {**capacity_status(
                self.admission, self.versions, train_leases=self.tasks.open_count("train"),
                merge_queue=self.merge_waiting, refused=self.refused,
                merges_together=self.merges_together), **self.answers.public()},
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
        self.admission.sample()
        self._expire(now)
        for session in self.sessions.idle(now, self.config.session_timeout):
            self.leave(session)
        self.tasks.prune(now)
        if self.state == "running":
            max_seconds = self.config.max_seconds
            if max_seconds is not None and self.elapsed() >= max_seconds:
                self._finish(f"max_seconds={max_seconds} reached")
            self._maybe_start_evaluation()
        if self.schedule.current is not None:
            self._settle_evaluation(now)
        if self.finishing_since is not None and now - self.finishing_since > self.finish_seconds:
            self._end_unevaluated()
        self._update_gauges()
        every = self.config.checkpoint_every_seconds
        merges, history_len, last_time = self.last_checkpoint
        if (self.store is not None and every and now - last_time >= every
                and (merges != self.merges or history_len != len(self.history))):
            self.last_checkpoint = (self.merges, len(self.history), now)
            self._spawn(self.checkpoint())

    # --------------------------------------------------------------------------- durability

    async def checkpoint(self) -> None:
        """Write an atomic checkpoint of the current state (merges wait meanwhile). The small
        state is gathered on the event loop; the strategy's arrays and the weights are read and
        written in a worker thread (the lock keeps them still), so no model-sized copy runs on
        the loop."""
        if self.store is None:
            return
        async with self.lock:
            state = self._checkpoint_state()
            self.last_checkpoint = (self.merges, len(self.history), self.clock())
            await asyncio.to_thread(self._save_checkpoint, state)

    def _checkpoint_state(self) -> dict:
        """The checkpoint's ``state.json`` from the run's values (`checkpointing.build_state`)."""
        leased = (t.work for t in self.tasks.open_tasks() if isinstance(t.work, TrainWork))
        counters = RunCounters(version=self.model.version, steps=self.model.steps,
                               merges=self.merges, updates_accepted=self.updates_accepted,
                               clients_joined=self.sessions.joined, state=self.state,
                               end_reason=self.end_reason, elapsed=self.elapsed())
        return build_state(
            name=self.spec.name, layout=self.layout, strategy=self.strategy.name,
            screening=self.screen.state() if self.screen is not None else None,
            counters=counters, history=self.history,
            data=data_state(self.feed, leased, self._partition_public(), self.assigner),
            evaluation=self.schedule.state(), traffic=self.traffic.state(),
            saved_at=self.clock())

    def _save_checkpoint(self, state: dict) -> None:
        """In a worker thread, with the merge lock held: add the strategy's state and write
        (`checkpointing.write`)."""
        assert self.store is not None
        write_checkpoint(self.store, state, self.model.weights, self.strategy,
                         model_json(self.spec), self.layout)

    def _resume(self, checkpoint: Checkpoint) -> None:
        """Continue the run of `checkpoint`: the collaborators take their parts back
        (`checkpointing.restore`), the model and the run's counters are set here."""
        restored = restore(checkpoint, strategy=self.strategy, screen=self.screen,
                           schedule=self.schedule, feed=self.feed, traffic=self.traffic,
                           partition=self._partition_public(), state_dir=self.config.state_dir)
        run = restored.counters
        self.model.weights = restored.weights
        self.model.steps, self.model.version = run.steps, run.version
        self.merges, self.updates_accepted = run.merges, run.updates_accepted
        self.sessions.joined = run.clients_joined
        # read by `Evaluations.load` once the version store exists (entries from before
        # replication count as not validated there)
        self._resumed_history = restored.history
        self.lifecycle.restore(run.state, run.end_reason, run.elapsed)
        if restored.assigner is not None:  # None: the partition changed, a fresh table
            self.assigner = restored.assigner
        self.last_checkpoint = (self.merges, len(self._resumed_history), self.clock())
        log.info("resumed %s at version %d, steps %d, merges %d", self.spec.name,
                 self.model.version, self.model.steps, self.merges)

    def _partition_public(self) -> dict | None:
        """The partition's public settings (None: iid)."""
        return None if self.partition is None else self.partition.public()


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
