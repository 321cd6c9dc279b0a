"""Evaluation tasks at a front-end: a chunk of the evaluation in progress handed to a session,
and a session's result recorded, both through Redis (`evalstate`, `scripts.GUARDED`).

The schedule's pure logic decides: `EvaluationSchedule.next_chunk` (the first unsettled chunk
wanting another result that neither the session nor another session of its party holds or
evaluated) and `EvaluationSchedule.record`; the result is checked at the door as the single
process checks it (`parse_chunk_result`: types, the chunk's example count, per-class counts;
the route bounds impossible values first). The merger settles chunks and completes the
evaluation (`controller.py`).

A lease is written together with the evaluation only if the evaluation is still the revision
read and the run is neither paused nor ended; a result only if its task is still open (a lease
that ran out was given back by the merger: ``409 lease_expired``).
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from webnn.cluster.control import GuardedWriter, command
from webnn.cluster.evalstate import evaluation_to_json, stored_from
from webnn.cluster.keys import RedisClient, RunKeys
from webnn.server.batch_feed import encode_validation
from webnn.server.errors import ProtocolError
from webnn.server.evaluation import (
    EvaluationSchedule,
    Party,
    class_count,
    parse_chunk_result,
)

ATTEMPTS = 16
"""Tries of a guarded write that lost a race with another writer before giving up."""
TASK_KEEP_SECONDS = 120


@dataclass(frozen=True)
class EvalLease:
    """An evaluation task just written: its id, the version evaluated, the chunk."""

    id: str
    evaluation: int
    version: int
    steps: int
    chunk: int
    examples: int
    expires: float


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EvaluationDesk:
    """A front-end's side of evaluations (see the module docstring)."""

    def __init__(self, parts: Any, redis: RedisClient, keys: RunKeys, chunk_size: int) -> None:
        self.parts = parts
        self.redis = redis
        self.keys = keys
        self.chunk_size = chunk_size
        self.writer = GuardedWriter(redis, keys)
        spec = parts.spec
        self.classes = class_count(spec.loss, spec.compiled.output_shape)
        self.frames: list[bytes] = []

    async def load(self) -> None:
        """Encode the validation chunks once (the same frames as the single process's)."""
        if getattr(self.parts.dataset, "num_validation", 0):
            self.frames, _ = await asyncio.to_thread(encode_validation, self.parts.dataset,
                                                     self.chunk_size)

    async def lease(self, token: str, party: Party, lease_seconds: float,
                    max_open_tasks: int) -> EvalLease | None:
        """A chunk of the evaluation in progress for `token`, now leased to it; None when there
        is none it may take (or the run is paused or ended); ``429 too_many_tasks`` when the
        session holds `max_open_tasks` open tasks."""
        if not self.frames:
            return None
        for _ in range(ATTEMPTS):
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(self.keys.evaluation)
            pipe.scard(self.keys.session_tasks(token))
            fields, open_tasks = await pipe.execute()
            stored = stored_from(fields)
            evaluation = stored.evaluation
            if evaluation is None:
                return None
            if open_tasks >= max_open_tasks:
                raise ProtocolError(429, "too_many_tasks",
                                    f"this session holds its cap of {max_open_tasks} open "
                                    "tasks; finish or wait for one", {"Retry-After": "2"})
            schedule = EvaluationSchedule(None, None, quorum=evaluation.quorum)
            schedule.current = evaluation
            found = schedule.next_chunk(token, party)
            if found is None:
                return None
            chunk = found[1]
            task_id = "e-" + secrets.token_hex(8)
            expires = time.time() + lease_seconds
            key = self.keys.task(task_id)
            keep = math.ceil(lease_seconds + TASK_KEEP_SECONDS)
            examples = evaluation.chunk_examples[chunk]
            outcome = await self.writer.write(
                expected=stored.rev, json_text=evaluation_to_json(evaluation),
                guards=[("ne", self.keys.control, "state", "paused"),
                        ("ne", self.keys.control, "state", "ended")],
                commands=[
                    command("HSET", key, "state", "open", "kind", "evaluate",
                            "evaluation", evaluation.id, "chunk", chunk, "examples", examples,
                            "version", evaluation.version, "steps", evaluation.steps,
                            "session", token, "expires", repr(expires)),
                    command("EXPIRE", key, keep),
                    command("ZADD", self.keys.eval_leases, repr(expires), task_id),
                    command("SADD", self.keys.session_tasks(token), task_id),
                    command("EXPIRE", self.keys.session_tasks(token), keep),
                    command("HINCRBY", self.keys.stats, "eval_tasks_issued", 1)])
            if outcome.status == "guard":
                return None
            if outcome.ok:
                return EvalLease(task_id, evaluation.id, evaluation.version, evaluation.steps,
                                 chunk, examples, expires)
        return None

    def parse(self, task: dict[str, str], body: dict) -> Any:
        """The answer checked against its chunk (`ProtocolError` naming the field)."""
        return parse_chunk_result(body, int(task["chunk"]), int(task["examples"]),
                                  self.classes)

    async def record(self, token: str, task_id: str, task: dict[str, str],
                     result: Any) -> dict:
        """Store `token`'s result for its task's chunk and close the task; the answer (kept
        for a retry). A result the evaluation no longer needs (it settled, or ended) is
        accepted and dropped, as in the single process."""
        answer = {"protocol": 1, "accepted": True}
        key = self.keys.task(task_id)
        for _ in range(ATTEMPTS):
            stored = stored_from(await self.redis.hgetall(self.keys.evaluation))
            evaluation = stored.evaluation
            needed = False
            if evaluation is not None:
                schedule = EvaluationSchedule(None, None, quorum=evaluation.quorum)
                schedule.current = evaluation
                needed = schedule.record(int(task["evaluation"]), int(task["chunk"]), token,
                                         result, time.time())
            outcome = await self.writer.write(
                expected=stored.rev if needed else "*",
                json_text=evaluation_to_json(evaluation) if needed and evaluation else "=",
                guards=[("eq", key, "state", "open")],
                commands=[command("HSET", key, "state", "done", "answer", json.dumps(answer)),
                          command("EXPIRE", key, TASK_KEEP_SECONDS),
                          command("ZREM", self.keys.eval_leases, task_id),
                          command("SREM", self.keys.session_tasks(token), task_id),
                          command("HINCRBY", self.keys.session(token), "evaluations", 1),
                          command("HINCRBY", self.keys.stats, "evaluations", 1)])
            if outcome.ok:
                return answer
            if outcome.status == "guard":
                fields = await self.redis.hgetall(key)
                state = _text(fields.get(b"state", b""))
                if state == "done":
                    return json.loads(_text(fields[b"answer"]))
                raise ProtocolError(409, "lease_expired", f"task {task_id}'s lease ran out; "
                                    "its chunk was handed out again. Ask for a new task")
        raise ProtocolError(503, "busy", "the evaluation is being updated by many sessions; "
                            "repeat the request", {"Retry-After": "1"})
