"""A scale-out run's train-task learning rate from the run's live training clients: the single
process's rule (`webnn.server.task_scaling`, docs/scaling.md) across front-ends.

Live training clients here are the sessions in the run's sorted set ``trainers`` (score: when
each was last handed a training lease) within the lease time. Every training lease adds its
session and trims the set in one pipeline (``ZADD``, ``ZREMRANGEBYSCORE`` of the entries older
than the lease time, ``ZCARD``: O(log n) per lease, the trim amortised), and a leave removes
it, so the count is the run's whichever front-end answers; each front-end keeps its own
hysteresis level (`next_level`) over it. With the default rule nothing touches Redis.

Local steps are not scaled in a scale-out run (its batches are leased by number inside the
`LEASE` script and read whole): a ``local_steps_exponent`` other than 0 is refused when the
front-end is made (`ClusterTaskRate.for_run`), naming the setting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from webnn.server.task_scaling import TaskScaling, next_level, scaled_learning_rate
from webnn.settings.errors import ConfigError, Problem


@dataclass
class ClusterTaskRate:
    """The rule, the spec's rate, the live window and the run's ``trainers`` key."""

    scaling: TaskScaling
    learning_rate: float
    window: float
    key: str
    level: int = 1

    @classmethod
    def for_run(cls, config: Any, learning_rate: float, keys: Any) -> ClusterTaskRate:
        """The rule of a `ServeConfig` for the run of `keys` (`RunKeys`); raises
        `ConfigError` for a local-steps rule, which a scale-out run does not carry out."""
        scaling = TaskScaling.from_config(config)
        if scaling.steps_exponent != 0:
            raise ConfigError([Problem("local_steps_exponent", "local steps are not scaled in a "
                                       "scale-out run (--redis); leave it at 0 (lr_scaling "
                                       "works)")], "ServeConfig")
        return cls(scaling, learning_rate, float(config.lease_seconds), keys.key("trainers"))

    async def leased(self, redis: Any, token: str, now: float | None = None) -> float:
        """`token` was handed a training lease: note it and return the task's learning rate."""
        if not self.scaling.active:
            return self.learning_rate
        now = time.time() if now is None else now
        pipe = redis.pipeline(transaction=False)
        pipe.zadd(self.key, {token: now})
        pipe.zremrangebyscore(self.key, "-inf", now - self.window)
        pipe.zcard(self.key)
        *_, count = await pipe.execute()
        self.level = next_level(self.level, int(count))
        return scaled_learning_rate(self.learning_rate, self.scaling.clients(self.level),
                                    self.scaling.lr_rule)

    async def left(self, redis: Any, token: str) -> None:
        """`token` left: it stops counting at once."""
        if self.scaling.active:
            await redis.zrem(self.key, token)
