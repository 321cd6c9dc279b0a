"""The run's schedule, owned by the active merger: evaluations, history and the end.

The merger is the model's only writer, so it also decides when a version is evaluated and when
the run ends; every write below is fenced by its lock (`scripts.GUARDED` with the lock owner)
and, where it touches the evaluation in progress, by the evaluation's revision. A standby that
takes over continues from Redis alone: the evaluation in progress (``evaluation``), the
schedule's counters (``control.schedule``), the history (``history``) and the run's state
(``control``).

Each tick (every `TICK_SECONDS`, and after each published version) does at most one of, in
order:

1. give back evaluation leases that ran out (or whose session left): `EvaluationSchedule
   .give_back`;
2. end conditions: ``max_seconds`` (and, after a publication, ``max_merges``) start
   *finishing*: front-ends hand out no training and commit no update from then on
   (`scripts.LEASE`, `scripts.COMMIT`); the updates already acknowledged are still merged
   (the stream is drained), then the final evaluation of the last version starts (or the run
   ends at once when there is no validation data or that version was evaluated already); a
   final evaluation not complete within `finish_seconds` ends the run with the last validated
   evaluation as its result (as the single process does);
3. start an evaluation when `EvaluationSchedule.due` says so (the initial one of version 0 for a
   new run, with ``evaluate_initial``);
4. settle the evaluation in progress (`EvaluationSchedule.settle`: quorum of agreeing sessions
   of distinct parties, outliers counted as invalid, bounded waits) and, once complete, append
   its history entry and end the run on a validated ``target_accuracy`` or after the final
   evaluation.

The version under evaluation is pinned: the merger's publication never drops it (`scripts
.PUBLISH`), and it is dropped once its evaluation is over if it fell out of the kept window.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from webnn.cluster import scripts
from webnn.cluster.control import (
    GuardedWriter,
    LostLock,
    Outcome,
    RunState,
    command,
    event_message,
)
from webnn.cluster.evalstate import Stored, evaluation_to_json, schedule_for, stored_from
from webnn.cluster.keys import RedisClient, RunKeys
from webnn.cluster.records import id_order
from webnn.server.batch_feed import frame_array
from webnn.server.cut_off import INVALID_UPDATE_CODES
from webnn.server.evaluation import ANYONE, Evaluation, EvaluationSchedule, Party

if TYPE_CHECKING:
    from webnn.cluster.merger import Merger

log = logging.getLogger("webnn.cluster")
TICK_SECONDS = 0.25


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def finish_seconds(config: Any) -> float:
    """How long a finishing run waits for its final evaluation (as the single process)."""
    return max(60.0, 4 * float(config.lease_seconds))


def end_commands(keys: RunKeys, reason: str, elapsed: float) -> list[list[Any]]:
    """The commands that end a run: its state, reason and frozen elapsed time, the state event."""
    return [command("HSET", keys.control, "state", "ended", "endReason", reason,
                    "finishing", "", "endedElapsed", repr(round(elapsed, 3))),
            command("PUBLISH", keys.events,
                    event_message("state", {"state": "ended", "endReason": reason}))]


class Controller:
    """The schedule owner inside the active merger (see the module docstring)."""

    def __init__(self, merger: Merger, chunk_examples: list[int]) -> None:
        self.merger = merger
        self.config = merger.config
        self.training = merger.parts.spec.training
        self.redis: RedisClient = merger.redis
        self.keys: RunKeys = merger.keys
        self.chunk_examples = chunk_examples
        self.writer = GuardedWriter(self.redis, self.keys)
        self.note_invalid = self.redis.register_script(scripts.NOTE_INVALID)
        self.drop = self.redis.register_script(scripts.DROP)
        self.history: list[dict] = []
        self.started = time.time()
        self.pinned: int | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Read what a previous merger left: the start time, history, pinned version."""
        started = await self.redis.hget(self.keys.meta, "started")
        self.started = float(_text(started)) if started else time.time()
        self.history = [json.loads(h) for h in await self.redis.lrange(self.keys.history, 0, -1)]
        stored = stored_from(await self.redis.hgetall(self.keys.evaluation))
        self.pinned = None if stored.evaluation is None else stored.evaluation.version

    async def loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except LostLock:  # the merger stops leading (its lock watcher noticed too)
                return
            except Exception:
                log.exception("%s: schedule tick failed", self.merger.label)
            await asyncio.sleep(TICK_SECONDS)

    def elapsed(self, run: RunState) -> float:
        if run.ended_elapsed is not None:
            return run.ended_elapsed
        return max(0.0, time.time() - self.started)

    @property
    def evaluated(self) -> set[int]:
        return {h["version"] for h in self.history if h.get("evaluated", True)}

    # -- the tick ----------------------------------------------------------------------------
    async def tick(self, *, after_publish: bool = False) -> None:
        async with self._lock:
            await self._tick(after_publish)

    async def _tick(self, after_publish: bool) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.keys.control)
        pipe.hgetall(self.keys.evaluation)
        fields, evaluation_fields = await pipe.execute()
        run = RunState.from_hash(fields)
        if run.state == "ended":
            return
        stored = stored_from(evaluation_fields)
        schedule = schedule_for(self.config, self.training, self.chunk_examples, run.schedule,
                                stored.evaluation)
        now = time.time()
        if not after_publish and await self._give_back_due(stored, schedule, now):
            return
        model = self.merger.model
        max_merges = self.config.max_merges
        if run.finishing is None:
            reason = None
            if max_merges is not None and self.merger.merges >= max_merges:
                reason = f"max_merges={max_merges} reached"
            elif (run.state == "running" and self.config.max_seconds is not None
                  and self.elapsed(run) >= self.config.max_seconds):
                reason = f"max_seconds={self.config.max_seconds} reached"
            if reason is not None:
                await self._finish(reason)
                return
        else:
            if now - run.finishing > finish_seconds(self.config):
                await self._end_unevaluated(run)
                return
            if not await self._drained():
                return
            if not schedule.has_data or (schedule.current is None
                                         and model.version in self.evaluated):
                await self._end(run.end_reason or "finished", run)
                return
        if await self._maybe_start(run, schedule):
            return
        if not after_publish and schedule.current is not None:
            await self._settle(run, stored, schedule, now)

    # -- leases ------------------------------------------------------------------------------
    async def _give_back_due(self, stored: Stored, schedule: EvaluationSchedule,
                             now: float) -> bool:
        """Evaluation leases past their deadline (or of a session that left) go back; True when
        something was written."""
        due = [_text(t) for t in await self.redis.zrangebyscore(self.keys.eval_leases, "-inf",
                                                                now, start=0, num=64)]
        if not due:
            return False
        pipe = self.redis.pipeline(transaction=False)
        for task_id in due:
            pipe.hmget(self.keys.task(task_id), "state", "evaluation", "chunk", "session")
        guards: list[tuple[str, str, str, str]] = []
        commands: list[list[Any]] = []
        evaluation = schedule.current
        for task_id, (state, evaluation_id, chunk, session) in zip(
                due, await pipe.execute(), strict=True):
            commands.append(command("ZREM", self.keys.eval_leases, task_id))
            if state is None or _text(state) != "open":
                continue
            key = self.keys.task(task_id)
            guards.append(("eq", key, "state", "open"))
            commands.append(command("HSET", key, "state", "expired"))
            commands.append(command("EXPIRE", key, 120))
            commands.append(command("SREM", self.keys.session_tasks(_text(session)), task_id))
            commands.append(command("HINCRBY", self.keys.stats, "eval_leases_expired", 1))
            if evaluation is not None:
                schedule.give_back(int(_text(evaluation_id)), int(_text(chunk)), _text(session))
        json_text = "=" if evaluation is None else evaluation_to_json(evaluation)
        outcome = await self.writer.write(expected=stored.rev if evaluation else "*",
                                          json_text=json_text, owner=self.merger.owner,
                                          guards=guards, commands=commands)
        self._check(outcome)
        return True

    # -- finishing and the end ---------------------------------------------------------------
    async def _finish(self, reason: str) -> None:
        """Stop training (no lease, no commit from now on); the final evaluation follows once
        the acknowledged updates are merged (see `_tick`)."""
        outcome = await self.writer.write(
            expected="*", json_text="=", owner=self.merger.owner,
            guards=[("ne", self.keys.control, "state", "ended"),
                    ("eq", self.keys.control, "finishing", "")],
            commands=[command("HSET", self.keys.control, "finishing", repr(time.time()),
                              "endReason", reason),
                      command("PUBLISH", self.keys.events, event_message(
                          "state", {"state": "running", "finishing": True,
                                    "endReason": reason}))])
        if outcome.ok:
            log.info("%s: finishing: %s", self.merger.label, reason)
        self._check(outcome)

    async def _drained(self) -> bool:
        """Whether every entry written to the stream (none can be added while finishing) is
        merged and published."""
        try:
            info = await self.redis.xinfo_stream(self.keys.stream)
        except Exception:
            return True
        last = _text(info.get("last-generated-id") or info.get(b"last-generated-id") or "0-0")
        merger = self.merger
        return id_order(last) <= id_order(merger.applied) and not merger.unpublished

    async def _end(self, reason: str, run: RunState, entry: dict | None = None) -> None:
        """End the run now (with a last history `entry`, if given) and drop the evaluation in
        progress."""
        before = [] if entry is None else self._history_commands(entry)
        outcome = await self.writer.write(
            expected="*", json_text="", owner=self.merger.owner,
            guards=[("ne", self.keys.control, "state", "ended")],
            commands=[*before, *end_commands(self.keys, reason, self.elapsed(run))])
        if outcome.ok:
            if entry is not None:
                self.history.append(entry)
            log.info("%s: training ended: %s", self.merger.label, reason)
            await self._unpin()
        self._check(outcome)

    def last_validated(self) -> dict | None:
        return next((h for h in reversed(self.history)
                     if h.get("validated") and h.get("evaluated", True)), None)

    async def _end_unevaluated(self, run: RunState) -> None:
        """The final evaluation did not complete in time: the single process's ending (a final
        history entry with null figures naming the last validated evaluation)."""
        last = self.last_validated()
        reference = None if last is None else {
            "version": last["version"], "valLoss": last["valLoss"],
            "valAccuracy": last["valAccuracy"]}
        said = ("no validated evaluation" if last is None else
                f"last validated evaluation: version {last['version']}")
        model = self.merger.model
        entry = {"time": time.time(), "elapsed": round(self.elapsed(run), 3),
                 "version": model.version, "steps": model.steps, "merges": self.merger.merges,
                 "valLoss": None, "valAccuracy": None, "examples": 0, "classAccuracy": None,
                 "worstClassAccuracy": None, "validated": False, "final": True,
                 "evaluated": False, "lastValidated": reference}
        log.warning("%s: the final evaluation did not complete within %.0f s; ending with the "
                    "%s", self.merger.label, finish_seconds(self.config), said)
        await self._end(f"{run.end_reason} (final evaluation not completed in time; {said})",
                        run, entry)

    def _history_commands(self, entry: dict) -> list[list[Any]]:
        text = json.dumps(entry, allow_nan=False)
        return [command("RPUSH", self.keys.history, text),
                command("PUBLISH", self.keys.events, event_message("evaluation", entry))]

    # -- evaluations -------------------------------------------------------------------------
    async def _maybe_start(self, run: RunState, schedule: EvaluationSchedule) -> bool:
        if run.state == "ended" or not schedule.has_data or schedule.current is not None:
            return False
        model = self.merger.model
        finishing = run.finishing is not None
        initial = (schedule.seq == 0 and self.config.evaluate_initial and model.version == 0
                   and not self.history)
        if initial:
            version, steps, merges = 0, 0, 0
        elif (run.state == "running" or finishing) and schedule.due(
                merges=self.merger.merges, elapsed=self.elapsed(run), finishing=finishing,
                evaluated=model.version in self.evaluated):
            version, steps, merges = model.version, model.steps, self.merger.merges
        else:
            return False
        if not await self.redis.exists(self.keys.version(version)):
            return False
        evaluation = schedule.start(version, steps, merges, self.elapsed(run))
        self.pinned = version
        outcome = await self.writer.write(
            expected="", json_text=evaluation_to_json(evaluation), owner=self.merger.owner,
            guards=[("ne", self.keys.control, "state", "ended")],
            commands=[command("HSET", self.keys.control, "schedule",
                              json.dumps(schedule.state()))])
        if not outcome.ok:
            self.pinned = None
        self._check(outcome)
        return True

    async def _parties(self, tokens: list[str]) -> list[tuple[str, Party]]:
        if not self.config.eval_distinct_parties:
            return [(t, ANYONE) for t in tokens]
        out = []
        for start in range(0, len(tokens), 1000):
            part = tokens[start:start + 1000]
            found = await self.redis.hmget(self.keys.parties, part)
            for token, value in zip(part, found, strict=True):
                pair = json.loads(value) if value else [None, None]
                out.append((token, Party(pair[0], pair[1])))
        return out

    async def _settle(self, run: RunState, stored: Stored, schedule: EvaluationSchedule,
                      now: float) -> None:
        evaluation = schedule.current
        assert evaluation is not None
        before = evaluation_to_json(evaluation)
        # who else could evaluate matters only for a chunk with results, no lease and short of
        # its quorum (`Evaluation._could_add`, which then asks `candidates` only): the live
        # sessions are read from Redis only then
        tokens: list[str] = []
        candidates: list[tuple[str, Party]] = []
        if self._asks_candidates(evaluation):
            tokens = [_text(t) for t in await self.redis.zrange(self.keys.sessions, 0, -1)]
            candidates = await self._parties(tokens)
        live = set(tokens)
        settled = schedule.settle(now, live.__contains__, len(live), lambda: candidates)
        if settled.completed is None and not settled.outliers:
            after = evaluation_to_json(evaluation)
            if after != before:
                self._check(await self.writer.write(expected=stored.rev, json_text=after,
                                                    owner=self.merger.owner))
            return
        commands: list[list[Any]] = []
        json_text = evaluation_to_json(evaluation)
        completed = settled.completed
        ending: str | None = None
        entry = None
        if completed is not None:
            entry, ending = self._completed_entry(run, completed)
            schedule.finish(completed)
            commands += self._history_commands(entry)
            commands.append(command("HSET", self.keys.control, "schedule",
                                    json.dumps(schedule.state())))
            json_text = ""
            if ending is not None:
                commands += end_commands(self.keys, ending, self.elapsed(run))
        outcome = await self.writer.write(
            expected=stored.rev, json_text=json_text, owner=self.merger.owner,
            guards=[("ne", self.keys.control, "state", "ended")], commands=commands)
        self._check(outcome)
        if not outcome.ok:
            return
        if entry is not None:
            self.history.append(entry)
            await self._unpin()
            if ending is not None:
                log.info("%s: training ended: %s", self.merger.label, ending)
        for token in settled.outliers:
            await self.note_invalid(
                keys=[self.keys.session(token), self.keys.stats],
                args=["evaluation_disagrees",
                      "1" if "evaluation_disagrees" in INVALID_UPDATE_CODES else "0",
                      self.config.max_invalid_updates, self.config.cut_off_seconds])
            log.warning("an evaluation result disagreed with the majority of its chunk")

    @staticmethod
    def _asks_candidates(evaluation: Evaluation) -> bool:
        """Whether `settle` may ask who else could evaluate (a chunk with results, no lease,
        short of its quorum)."""
        return any(i not in evaluation.results and c.replicas and not c.leased
                   for i, c in enumerate(evaluation.chunks))

    def _completed_entry(self, run: RunState, evaluation: Evaluation
                         ) -> tuple[dict, str | None]:
        """The history entry of a completed evaluation and, when it ends the run, why (the
        single process's `_complete_evaluation`)."""
        loss, accuracy, examples = evaluation.combined()
        counts = evaluation.class_counts()
        validated = evaluation.validated
        final = run.finishing is not None and evaluation.version == self.merger.model.version
        entry: dict[str, Any] = {
            "time": time.time(), "elapsed": round(self.elapsed(run), 3),
            "version": evaluation.version, "steps": evaluation.steps,
            "merges": evaluation.merges, "valLoss": loss, "valAccuracy": accuracy,
            "examples": examples, "validated": validated,
            "classAccuracy": None if counts is None else counts.accuracy(),
            "worstClassAccuracy": None if counts is None else counts.worst()}
        if final:
            entry.update(final=True, evaluated=True)
        target = self.config.target_accuracy
        if validated and target is not None and accuracy is not None and accuracy >= target:
            return entry, f"target_accuracy={target} reached ({accuracy:.4f})"
        if final:
            return entry, run.end_reason or "finished"
        return entry, None

    async def _unpin(self) -> None:
        """The pinned version's evaluation is over: dropped if the publications' sweep passed
        it meanwhile (`scripts.DROP`, fenced by the lock)."""
        version, self.pinned = self.pinned, None
        if version is None:
            return
        keys = self.keys
        await self.drop(keys=[keys.lock, keys.checkpoint, keys.stats, keys.version(version),
                              keys.current],
                        args=[self.merger.owner, version, keys.version(0)[:-1],
                              keys.blob("")])

    def _check(self, outcome: Outcome) -> None:
        if outcome.status == "not_owner":
            raise LostLock()
        if not outcome.ok:
            log.debug("%s: schedule write not applied (%s %s)", self.merger.label,
                      outcome.status, outcome.detail)


async def chunk_sizes(dataset: Any, chunk_size: int) -> list[int]:
    """The validation chunks' example counts (the front-ends' `encode_validation` frames)."""
    if not getattr(dataset, "num_validation", 0):
        return []

    def sizes() -> list[int]:
        return [int(frame_array(batch.x).shape[0])
                for batch in dataset.validation_chunks(chunk_size)]

    return await asyncio.to_thread(sizes)


def eval_chunk_size(config: Any, training: Any) -> int:
    """Validation examples per chunk (the single process's rule)."""
    return int(config.eval_chunk_size or training.validation_chunk_size or 256)

