"""The run's shared state in Redis (``control`` hash) and the guarded write every process uses.

``control`` fields: ``state`` (running, paused, ended; absent = running), ``finishing`` (the
time finishing began, '' when not), ``endReason``, ``endedElapsed`` (seconds, frozen at the
end), ``schedule`` (the evaluation schedule's counters, JSON). Front-ends read it on every
lease (`scripts.LEASE`) and commit (`scripts.COMMIT`), so a paused, finishing or ended run
hands out no training and takes no update the moment the state changes, whichever front-end
answers; the admin's pause and resume change it through any front-end (`scripts.STATE`); the
merger (the schedule's owner) finishes and ends the run.

Events (``events`` channel): ``{"event": name, "data": {...}}`` published by whoever changed
something (the merger: evaluations and the end; a front-end: joins, leaves, pause, resume);
every front-end relays them to its event stream (`api/v1/events`), so the dashboard is the same
whichever front-end it is connected to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from webnn.cluster import scripts
from webnn.cluster.keys import RedisClient, RunKeys


class LostLock(Exception):
    """This merger no longer holds the lock: it stops writing at once."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class RunState:
    """The ``control`` hash, decoded."""

    state: str = "running"
    finishing: float | None = None
    end_reason: str | None = None
    ended_elapsed: float | None = None
    schedule: dict = field(default_factory=dict)

    @classmethod
    def from_hash(cls, fields: dict) -> RunState:
        get = {_text(k): _text(v) for k, v in fields.items()}
        finishing = get.get("finishing") or ""
        ended = get.get("endedElapsed") or ""
        return cls(state=get.get("state") or "running",
                   finishing=float(finishing) if finishing else None,
                   end_reason=get.get("endReason") or None,
                   ended_elapsed=float(ended) if ended else None,
                   schedule=json.loads(get["schedule"]) if get.get("schedule") else {})


async def read_state(redis: RedisClient, keys: RunKeys) -> RunState:
    return RunState.from_hash(await redis.hgetall(keys.control))


def event_message(event: str, data: dict) -> str:
    """One message of the ``events`` channel."""
    return json.dumps({"event": event, "data": data}, allow_nan=False, default=str)


def command(*args: Any) -> list[Any]:
    """One command of a guarded write: its argument count, then its arguments."""
    return [len(args), *args]


@dataclass
class Outcome:
    """What a guarded write did: ``ok`` (with the evaluation's new revision), ``conflict``
    (another writer changed the evaluation first), ``guard`` (a condition failed: which),
    ``not_owner`` (this merger lost its lock)."""

    status: str
    rev: str = ""
    detail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class GuardedWriter:
    """`scripts.GUARDED` for one run: ``write(...)`` sets (or deletes, or keeps) the evaluation
    in progress if its revision is still `expected` and every guard holds, and runs `commands`
    in the same step."""

    def __init__(self, redis: RedisClient, keys: RunKeys) -> None:
        self.keys = keys
        self.script = redis.register_script(scripts.GUARDED)

    async def write(self, *, expected: str, json_text: str, owner: str = "",
                    guards: list[tuple[str, str, str, str]] | None = None,
                    commands: list[list[Any]] | None = None) -> Outcome:
        args: list[Any] = [owner, expected, json_text, len(guards or [])]
        for guard in guards or []:
            args.extend(guard)
        args.append(len(commands or []))
        for one in commands or []:
            args.extend(one)
        result = await self.script(
            keys=[self.keys.evaluation, self.keys.evaluation_rev, self.keys.lock], args=args)
        status = _text(result[0])
        rest = [_text(r) for r in result[1:]]
        return Outcome(status, rest[0] if status in ("ok", "conflict") and rest else "",
                       rest)
