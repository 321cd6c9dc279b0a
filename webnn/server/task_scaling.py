"""A train task's learning rate and local steps, chosen from the spec's values and the number of
live training clients N (docs/scaling.md, "Task values that follow the live clients").

Why: N clients whose deltas are averaged (`fedbuff_live`, or `average` in effect) act like one
client with an N-times larger batch, which tolerates a larger learning rate and needs fewer
sequential steps per merge. Measured on the text workload (docs/scaling.md), `fedbuff_live`
paid only with the client's Adam rate raised by sqrt(N) and tasks of fewer local steps.

The rules, for the spec's learning rate ``lr`` and local steps ``L`` and the clients N used
(`TaskScaling.clients`):

- learning rate (`scaled_learning_rate`): ``lr * N ** p`` with ``p`` = 0 for ``none`` (the
  default: the spec's rate whatever N), 1/2 for ``sqrt`` (the square-root rule for adaptive
  optimisers such as Adam: Malladi, Lyu, Panigrahi and Arora 2022, "On the SDEs and Scaling
  Rules for Adaptive Gradient Algorithms"), 1 for ``linear`` (the linear rule for SGD: Goyal et
  al. 2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour"). The spec's rate is
  taken as the one-client rate (N = 1 gives it back exactly).
- local steps (`scaled_local_steps`): ``min(L, max(min_local_steps, round(L * N ** -e)))``
  with the exponent ``e`` = 0 (the default: L whatever N). Local SGD keeps its linear speedup
  only while the local steps shrink as the workers grow (Stich 2019, "Local SGD Converges Fast
  and Communicates Little"); e = 1/2 halves the steps at 4 clients. Steps never exceed the
  spec's L: a task's batch is at most the feed's batch of ``batchSize x L`` examples.
- learning-rate warm-up (`warmup_rate`, `RateWarmup`; ``lr_warmup`` seconds W, 0 = off): when
  the rate rule raises the task rate because the quantised count rose, the rate handed out ramps
  linearly from the rate in use to the new one over W seconds, ``r0 + (r1 - r0) * min(1, t / W)``
  (the gradual warm-up of Goyal et al. 2017, there over the first epochs from the one-worker rate
  to k times it; here over seconds, from the run's start at the spec's rate and again at each
  rise); a fall applies at once (a smaller rate is always safe).
- the N used (`TaskScaling.clients`): ``min(level, max_clients)``, where `level` is the live
  count quantised to powers of two with hysteresis (`next_level`), so one volunteer more or less
  does not change the rate.

Live training clients (`LiveTrainers`): the distinct sessions that had an update accepted
within the last `window` seconds (the lease time), kept live while they go on taking training
leases (`refresh`: a contributing client with a task longer than the window still counts). A
lease alone never adds a session: every client's rate grows with the count, so sessions that
take leases and never train (a stranger opening many) must not raise it; each counted session
has done accepted work. A session that leaves stops counting at once. Kept in an ordered dict
by last training activity, so `note`, `forget` and `count` are O(1) amortised (`count` evicts
only the entries that fell out of the window, oldest first): no request scans the sessions.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

LrRule = Literal["none", "sqrt", "linear"]
LR_RULES: dict[str, float] = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}
"""Each learning-rate rule's exponent p in ``lr * N ** p``."""

FALL_BELOW = 0.75
"""The level falls only when the live count drops below this fraction of it (`next_level`)."""


def scaled_learning_rate(learning_rate: float, clients: int, rule: LrRule) -> float:
    """``learning_rate * clients ** p`` with p of `rule` (`LR_RULES`).

    >>> scaled_learning_rate(0.01, 16, "sqrt"), scaled_learning_rate(0.1, 8, "linear")
    (0.04, 0.8)
    """
    if rule not in LR_RULES:
        raise ValueError(f"lr rule must be one of {list(LR_RULES)}, got {rule!r}")
    if clients < 1:
        raise ValueError(f"clients must be at least 1, got {clients}")
    exponent = LR_RULES[rule]
    return learning_rate if exponent == 0 else learning_rate * clients ** exponent


def scaled_local_steps(local_steps: int, clients: int, exponent: float,
                       min_local_steps: int = 1) -> int:
    """``min(local_steps, max(min_local_steps, round(local_steps * clients ** -exponent)))``
    (Python's round: halves to even).

    >>> scaled_local_steps(10, 4, 0.5), scaled_local_steps(10, 16, 1.0, 2)
    (5, 2)
    """
    if clients < 1:
        raise ValueError(f"clients must be at least 1, got {clients}")
    if exponent == 0:
        return local_steps
    return min(local_steps, max(min_local_steps, round(local_steps * clients ** -exponent)))


def floor_power_of_two(count: int) -> int:
    """The largest power of two at most `count` (1 for counts below 2)."""
    return 1 << (max(1, count).bit_length() - 1)


def next_level(level: int, count: int) -> int:
    """The quantised client count after `level`, given the live `count`.

    Levels are powers of two. The level rises as soon as the count reaches the next power of two
    (``floor_power_of_two(count) > level``) and falls only when the count drops below
    ``FALL_BELOW * level``, to ``floor_power_of_two(count)``; otherwise it stays. So with 8
    clients the level is 8 and stays 8 from 6 to 15 clients; it becomes 16 at 16 and 4 at 5.

    >>> next_level(1, 8), next_level(8, 15), next_level(8, 6), next_level(8, 5), next_level(4, 0)
    (8, 8, 8, 4, 1)
    """
    floor = floor_power_of_two(count)
    if floor > level or count < FALL_BELOW * level:
        return floor
    return level


def warmup_rate(start_rate: float, target_rate: float, elapsed: float, seconds: float) -> float:
    """The rate `elapsed` seconds into a linear warm-up from `start_rate` to `target_rate` over
    `seconds`: ``start + (target - start) * min(1, max(0, elapsed) / seconds)``, the target itself
    when `seconds` is 0 (gradual warm-up: Goyal, Dollar, Girshick et al. 2017, "Accurate, Large
    Minibatch SGD: Training ImageNet in 1 Hour", section 2.2, ramping the rate linearly from the
    small-batch rate to k times it).

    >>> warmup_rate(0.01, 0.04, 5.0, 20.0), warmup_rate(0.01, 0.04, 30.0, 20.0)
    (0.0175, 0.04)
    """
    if seconds < 0:
        raise ValueError(f"lr_warmup: must be at least 0 seconds, got {seconds}")
    if seconds == 0:
        return target_rate
    return start_rate + (target_rate - start_rate) * min(1.0, max(0.0, elapsed) / seconds)


@dataclass
class RateWarmup:
    """The rate handed out under a warm-up of `seconds` (module docstring): a ramp from
    `start_rate` at `started` to `target_rate`.

    `follow(target, now)` is called with the rule's rate of each task: a new target above the
    rate in use starts a new ramp from that rate at `now` (over the full `seconds`); a target at
    or below it (a fall) applies at once. It starts flat at the spec's one-client rate (`at`).
    """

    seconds: float
    start_rate: float
    target_rate: float
    started: float = 0.0

    @classmethod
    def at(cls, seconds: float, rate: float) -> RateWarmup:
        """No ramp under way: `rate` in use (the spec's rate at the start of a run)."""
        if seconds < 0:
            raise ValueError(f"lr_warmup: must be at least 0 seconds, got {seconds}")
        return cls(seconds, rate, rate)

    def rate(self, now: float) -> float:
        """The rate in use at `now` (`warmup_rate`)."""
        return warmup_rate(self.start_rate, self.target_rate, now - self.started, self.seconds)

    def seconds_left(self, now: float) -> float:
        """Seconds until the rate in use reaches the target (0 when it has)."""
        if self.seconds == 0 or self.start_rate == self.target_rate:
            return 0.0
        return max(0.0, self.started + self.seconds - now)

    def follow(self, target: float, now: float) -> float:
        """The rate to hand out at `now` when the rule asks for `target`.

        >>> warmup = RateWarmup.at(20.0, 0.01)
        >>> warmup.follow(0.04, 100.0), warmup.follow(0.04, 110.0), warmup.follow(0.02, 111.0)
        (0.01, 0.025, 0.02)
        """
        if target != self.target_rate:
            current = self.rate(now)
            if target <= current or self.seconds == 0:
                self.start_rate = target
            else:
                self.start_rate = current
            self.target_rate, self.started = target, now
        return self.rate(now)


@dataclass(frozen=True)
class TaskValues:
    """What one train task carries: its learning rate and local steps, and the N they used."""

    learning_rate: float
    local_steps: int
    clients: int


@dataclass(frozen=True)
class TaskScaling:
    """The rule (the settings ``lr_scaling``, ``scaling_max_clients``, ``local_steps_exponent``,
    ``min_local_steps``, ``lr_warmup``); see the module docstring for the formulas."""

    lr_rule: LrRule = "none"
    max_clients: int = 64
    steps_exponent: float = 0.0
    min_local_steps: int = 1
    lr_warmup: float = 0.0

    def __post_init__(self) -> None:
        if self.lr_rule not in LR_RULES:
            raise ValueError(f"lr_scaling: must be one of {list(LR_RULES)}, got "
                             f"{self.lr_rule!r}")
        if self.max_clients < 1:
            raise ValueError(f"scaling_max_clients: must be at least 1, got {self.max_clients}")
        if not 0 <= self.steps_exponent <= 1:
            raise ValueError(f"local_steps_exponent: must be from 0 to 1, got "
                             f"{self.steps_exponent}")
        if self.min_local_steps < 1:
            raise ValueError(f"min_local_steps: must be at least 1, got {self.min_local_steps}")
        if self.lr_warmup < 0:
            raise ValueError(f"lr_warmup: must be at least 0 seconds, got {self.lr_warmup}")
        if self.lr_warmup > 0 and self.lr_rule == "none":
            raise ValueError(f"lr_warmup: {self.lr_warmup} s of warm-up needs a rate rule "
                             "(lr_scaling sqrt or linear); with lr_scaling none the rate never "
                             "rises")

    @classmethod
    def from_config(cls, config: object) -> TaskScaling:
        """The rule of a `ServeConfig` (its five scaling settings)."""
        return cls(lr_rule=getattr(config, "lr_scaling", "none"),
                   max_clients=getattr(config, "scaling_max_clients", 64),
                   steps_exponent=getattr(config, "local_steps_exponent", 0.0),
                   min_local_steps=getattr(config, "min_local_steps", 1),
                   lr_warmup=float(getattr(config, "lr_warmup", 0.0)))

    @property
    def active(self) -> bool:
        """False for the default rule: tasks carry the spec's values, exactly as before."""
        return self.lr_rule != "none" or self.steps_exponent != 0

    def clients(self, level: int) -> int:
        """The N the formulas use: the quantised live count, at least 1, at most
        `max_clients`."""
        return max(1, min(level, self.max_clients))

    def values(self, learning_rate: float, local_steps: int, level: int) -> TaskValues:
        """A train task's values for the spec's `learning_rate` and `local_steps` at `level`.

        >>> TaskScaling("sqrt", steps_exponent=0.5).values(0.01, 10, 16)
        TaskValues(learning_rate=0.04, local_steps=2, clients=16)
        """
        n = self.clients(level)
        return TaskValues(scaled_learning_rate(learning_rate, n, self.lr_rule),
                          scaled_local_steps(local_steps, n, self.steps_exponent,
                                             self.min_local_steps), n)


@dataclass
class LiveTrainers:
    """The live training clients of one model and their quantised level (module docstring).

    `note(token, now)` when a session has an update accepted; `refresh(token, now)` when it is
    handed a training lease (counts only a session already noted); `forget(token)` when it
    leaves or is dropped; `level(now)` is the quantised count (`next_level`), updated on each
    call."""

    window: float
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict, repr=False)
    _level: int = 1

    def note(self, token: str, now: float) -> None:
        """`token` trained at `now` (moves to the young end; entries that fell out of the
        window are evicted, so the table never outgrows the recent trainers)."""
        self._seen[token] = now
        self._seen.move_to_end(token)
        self.count(now)

    def refresh(self, token: str, now: float) -> None:
        """`token`, if it still counts, took a training lease at `now` (keeps it live)."""
        if token in self._seen and now - self._seen[token] <= self.window:
            self.note(token, now)

    def forget(self, token: str) -> None:
        self._seen.pop(token, None)

    def count(self, now: float) -> int:
        """Distinct sessions that trained within `window` of `now` (evicts the others)."""
        seen = self._seen
        while seen:
            token, when = next(iter(seen.items()))
            if now - when <= self.window:
                break
            del seen[token]
        return len(seen)

    def level(self, now: float) -> int:
        """The quantised live count (`next_level` from the previous level)."""
        self._level = next_level(self._level, self.count(now))
        return self._level


def ceil_steps(examples: int, batch_size: int) -> int:
    """The optimiser steps a client runs on `examples` in slices of `batch_size`."""
    return math.ceil(examples / batch_size)
