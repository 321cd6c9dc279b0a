"""A scale-out run's train-task learning rate from the run's live training clients: the single
process's rule (`webnn.server.task_scaling`, docs/scaling.md) across front-ends.

Live training clients here are the sessions in the run's sorted set ``trainers`` (score: Redis's
time of the session's last accepted update or, once it has one, its last training lease) within
the lease time. A session enters the set only with an accepted (durable) update (`accepted`); a
training lease only refreshes a session that still counts (`leased`: ``ZADD XX`` after the
trim), so sessions that take leases and never send an update (a volunteer opening many) do not
raise every client's rate. Each note trims the entries older than the lease time, adds or
refreshes and counts in one script (`scripts.TRAINERS`: O(log n), the trim amortised) on
Redis's clock, so front-ends whose clocks differ agree on the window; a leave removes the
session at once (an update of it accepted after the leave does not add it again: the add
needs the session). So the count is the run's whichever front-end answers; each front-end keeps
its own hysteresis level (`next_level`) over it. When the count cannot be read (a Redis error
after the lease was taken), the task gets the rate of the last count this front-end read rather
than an error. With the default rule nothing touches Redis.

Local steps are not scaled in a scale-out run (its batches are leased by number inside the
`LEASE` script and read whole): a ``local_steps_exponent`` other than 0 is refused when the
front-end is made (`ClusterTaskRate.for_run`), naming the setting; so is an ``lr_warmup``
other than 0 (each front-end keeps its own level: per-front-end ramps would not agree).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from webnn.cluster.scripts import TRAINERS
from webnn.server.task_scaling import TaskScaling, next_level, scaled_learning_rate
from webnn.settings.errors import ConfigError, Problem

log = logging.getLogger("webnn.cluster")


@dataclass
class ClusterTaskRate:
    """The rule, the spec's rate, the live window and the run's ``trainers`` key."""

    scaling: TaskScaling
    learning_rate: float
    window: float
    key: str
    level: int = 1
    script: Any = field(default=None, repr=False)
    """`scripts.TRAINERS` registered with the front-end's client (on first use)."""

    @classmethod
    def for_run(cls, config: Any, learning_rate: float, keys: Any) -> ClusterTaskRate:
        """The rule of a `ServeConfig` for the run of `keys` (`RunKeys`); raises
        `ConfigError` for a local-steps rule, which a scale-out run does not carry out."""
        scaling = TaskScaling.from_config(config)
        if scaling.steps_exponent != 0:
            raise ConfigError([Problem("local_steps_exponent", "local steps are not scaled in a "
                                       "scale-out run (--redis); leave it at 0 (lr_scaling "
                                       "works)")], "ServeConfig")
        if scaling.lr_warmup != 0:
            raise ConfigError([Problem("lr_warmup", "a learning-rate warm-up is not carried "
                                       "out in a scale-out run (--redis: each front-end keeps "
                                       "its own level, so their ramps would not agree); leave "
                                       "--lr-warmup at 0 (lr_scaling works)")], "ServeConfig")
        return cls(scaling, learning_rate, float(config.lease_seconds), keys.key("trainers"))

    def rate(self) -> float:
        """The train tasks' learning rate at the current level."""
        return scaled_learning_rate(self.learning_rate, self.scaling.clients(self.level),
                                    self.scaling.lr_rule)

    async def _note(self, redis: Any, token: str, mode: str, session: str = "") -> None:
        if self.script is None:
            self.script = redis.register_script(TRAINERS)
        count = await self.script(keys=[self.key, session], args=[token, self.window, mode])
        self.level = next_level(self.level, int(count))

    async def leased(self, redis: Any, token: str) -> float:
        """`token` was handed a training lease: refresh it if it is live and return the task's
        learning rate (the last known one when Redis does not answer)."""
        if not self.scaling.active:
            return self.learning_rate
        try:
            await self._note(redis, token, "refresh")
        except Exception as error:  # the lease is taken: answer it at the last known rate
            log.warning("live trainers not counted (%s); the last rate stays", error)
        return self.rate()

    async def accepted(self, redis: Any, token: str, session: str) -> None:
        """`token`'s update was accepted (durable): it counts as a live trainer from now,
        unless its session (key `session`) left meanwhile."""
        if not self.scaling.active:
            return
        try:
            await self._note(redis, token, "add", session)
        except Exception as error:  # the update is durable: its answer does not fail here
            log.warning("live trainers not counted (%s)", error)

    async def left(self, redis: Any, token: str) -> None:
        """`token` left: it stops counting at once."""
        if self.scaling.active:
            await redis.zrem(self.key, token)
